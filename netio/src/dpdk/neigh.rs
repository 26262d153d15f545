//! A small fixed-size IPv4 → MAC table (no allocation after creation).

use crate::wire::EthernetAddress;
use std::net::Ipv4Addr;

const SLOTS: usize = 256;
const PROBES: usize = 4;

#[derive(Clone, Copy, Default)]
struct Entry {
    ip: u32,
    mac: EthernetAddress,
    used: bool,
}

/// Open addressing over 256 slots with 4 probes; when all 4 are taken the
/// home slot is overwritten (the evicted peer is re-learned from its next
/// frame or ARP).
pub(crate) struct NeighbourTable {
    slots: Box<[Entry; SLOTS]>,
}

#[inline]
fn home(ip: u32) -> usize {
    (ip.wrapping_mul(0x9e37_79b9) >> 24) as usize
}

impl NeighbourTable {
    pub(crate) fn new() -> Self {
        NeighbourTable {
            slots: Box::new([Entry::default(); SLOTS]),
        }
    }

    #[inline]
    pub(crate) fn lookup(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        let key = u32::from(ip);
        let h = home(key);
        for i in 0..PROBES {
            let e = &self.slots[(h + i) % SLOTS];
            if !e.used {
                return None;
            }
            if e.ip == key {
                return Some(e.mac);
            }
        }
        None
    }

    /// Inserts or refreshes `ip → mac`.
    #[inline]
    pub(crate) fn learn(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
        let key = u32::from(ip);
        let h = home(key);
        for i in 0..PROBES {
            let e = &mut self.slots[(h + i) % SLOTS];
            if !e.used || e.ip == key {
                e.used = true;
                e.ip = key;
                e.mac = mac;
                return;
            }
        }
        self.slots[h] = Entry {
            ip: key,
            mac,
            used: true,
        };
    }

    /// Updates `ip` only if already known (ARP traffic not addressed to us).
    #[inline]
    pub(crate) fn refresh(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
        if self.lookup(ip).is_some() {
            self.learn(ip, mac);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_lookup_evict() {
        let mut t = NeighbourTable::new();
        let a = Ipv4Addr::new(198, 18, 0, 2);
        assert_eq!(t.lookup(a), None);
        t.refresh(a, EthernetAddress([1; 6]));
        assert_eq!(t.lookup(a), None, "refresh does not add");
        t.learn(a, EthernetAddress([2; 6]));
        assert_eq!(t.lookup(a), Some(EthernetAddress([2; 6])));
        t.refresh(a, EthernetAddress([3; 6]));
        assert_eq!(t.lookup(a), Some(EthernetAddress([3; 6])));
        for i in 0..2000u32 {
            t.learn(Ipv4Addr::from(0x0a00_0000 + i), EthernetAddress([4; 6]));
        }
        let last = Ipv4Addr::from(0x0a00_0000 + 1999);
        assert_eq!(t.lookup(last), Some(EthernetAddress([4; 6])));
    }
}
