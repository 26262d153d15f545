//! A preallocated batch of packets, the unit every port moves.

use crate::port::{Peer, RxEvent};

/// Bytes per batch slot: room for a full 1,500-byte-MTU UDP payload.
pub const SLOT_BYTES: usize = 2048;

/// A fixed-capacity batch of byte chunks with their peers.
///
/// All memory is allocated once in [`PacketBatch::new`]; filling, reading and
/// clearing never allocate. Slots are laid out back to back so a backend can
/// point a `recvmmsg` iovec array (or DPDK copies) straight at them.
pub struct PacketBatch {
    bufs: Box<[u8]>,
    lens: Box<[u16]>,
    peers: Box<[Peer]>,
    events: Box<[RxEvent]>,
    len: usize,
}

impl PacketBatch {
    /// A batch of `capacity` slots of [`SLOT_BYTES`] each.
    ///
    /// # Panics
    /// If `capacity` is 0 (a configuration error, caught at start-up).
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a packet batch needs at least one slot");
        PacketBatch {
            bufs: vec![0u8; capacity * SLOT_BYTES].into_boxed_slice(),
            lens: vec![0u16; capacity].into_boxed_slice(),
            peers: vec![Peer::NONE; capacity].into_boxed_slice(),
            events: vec![RxEvent::Data; capacity].into_boxed_slice(),
            len: 0,
        }
    }

    /// Number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Number of filled entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is filled.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when every slot is filled.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    /// Forgets every entry (no memory is released).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Entry `i`: its peer, its event and its bytes (empty for events).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    #[inline]
    pub fn get(&self, i: usize) -> (Peer, RxEvent, &[u8]) {
        assert!(i < self.len);
        let start = i * SLOT_BYTES;
        let n = self.lens[i] as usize;
        (self.peers[i], self.events[i], &self.bufs[start..start + n])
    }

    /// Copies `data` into the next slot, addressed to/from `peer`.
    /// Returns false (and stores nothing) when the batch is full or `data`
    /// exceeds [`SLOT_BYTES`].
    #[inline]
    pub fn push(&mut self, peer: Peer, data: &[u8]) -> bool {
        if self.is_full() || data.len() > SLOT_BYTES {
            return false;
        }
        let i = self.len;
        let start = i * SLOT_BYTES;
        self.bufs[start..start + data.len()].copy_from_slice(data);
        self.lens[i] = data.len() as u16;
        self.peers[i] = peer;
        self.events[i] = RxEvent::Data;
        self.len += 1;
        true
    }

    /// Records a connection event in the next slot. Returns false when full.
    #[inline]
    pub fn push_event(&mut self, peer: Peer, event: RxEvent) -> bool {
        if self.is_full() {
            return false;
        }
        let i = self.len;
        self.lens[i] = 0;
        self.peers[i] = peer;
        self.events[i] = event;
        self.len += 1;
        true
    }

    /// The next free slot's whole buffer, to build an entry in place; finish
    /// with [`PacketBatch::commit`]. `None` when full.
    #[inline]
    pub fn next_slot(&mut self) -> Option<&mut [u8]> {
        if self.is_full() {
            return None;
        }
        let start = self.len * SLOT_BYTES;
        Some(&mut self.bufs[start..start + SLOT_BYTES])
    }

    /// Commits the slot last returned by [`PacketBatch::next_slot`] with its
    /// first `len` bytes as data for `peer`. Does nothing when full; `len`
    /// is clamped to [`SLOT_BYTES`].
    #[inline]
    pub fn commit(&mut self, peer: Peer, len: usize) {
        if self.is_full() {
            return;
        }
        let i = self.len;
        self.lens[i] = len.min(SLOT_BYTES) as u16;
        self.peers[i] = peer;
        self.events[i] = RxEvent::Data;
        self.len += 1;
    }

    /// Backend access: base pointer of slot storage (slot `i` starts at
    /// `i * SLOT_BYTES`).
    #[inline]
    pub(crate) fn slots_ptr(&mut self) -> *mut u8 {
        self.bufs.as_mut_ptr()
    }

    /// Backend access: marks the first `n` slots filled after a bulk receive
    /// whose lengths and peers were written with `set_entry`.
    #[inline]
    pub(crate) fn set_len(&mut self, n: usize) {
        self.len = n.min(self.capacity());
    }

    /// Backend access: sets slot `i`'s metadata after a bulk receive.
    #[inline]
    pub(crate) fn set_entry(&mut self, i: usize, peer: Peer, len: usize) {
        self.lens[i] = len.min(SLOT_BYTES) as u16;
        self.peers[i] = peer;
        self.events[i] = RxEvent::Data;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn push_get_clear_round_trip() {
        let mut b = PacketBatch::new(2);
        let p = Peer::Addr("127.0.0.1:9".parse::<SocketAddr>().unwrap());
        assert!(b.push(p, b"abc"));
        assert!(b.push_event(Peer::NONE, RxEvent::Closed));
        assert!(b.is_full());
        assert!(!b.push(p, b"x"), "full batch must refuse");
        assert_eq!(b.get(0), (p, RxEvent::Data, &b"abc"[..]));
        assert_eq!(b.get(1).1, RxEvent::Closed);
        b.clear();
        assert!(b.is_empty());
        assert!(!b.push(p, &[0u8; SLOT_BYTES + 1]), "oversize must refuse");
    }

    #[test]
    fn in_place_slot_commit() {
        let mut b = PacketBatch::new(1);
        let s = b.next_slot().unwrap();
        s[..2].copy_from_slice(b"hi");
        b.commit(Peer::NONE, 2);
        assert_eq!(b.get(0).2, b"hi");
        assert!(b.next_slot().is_none());
    }
}
