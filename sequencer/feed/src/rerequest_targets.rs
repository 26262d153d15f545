//! [`RerequestTargets`]: which re-request server a consumer asks.
//!
//! Why a list: in a cluster every node can answer re-requests from its own
//! journal, but not every node holds every record. A node that installed
//! its leader's snapshot never held the records the snapshot covers, and a
//! node may simply be down. A consumer therefore knows several servers (its
//! own node's first) and moves on when one does not answer. The signal is
//! the consumer's own: a request for the same first sequence as the one
//! before it means the earlier one went unanswered for the request
//! timeout (an answer slower than that counts as none). Any progress (a
//! different first sequence) keeps the current server; the list is walked
//! round and round, so the first server is asked again after the others.

use std::net::SocketAddr;

/// An ordered list of re-request servers and the one currently asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RerequestTargets {
    servers: Vec<SocketAddr>,
    current: usize,
    /// First sequence of the last request sent.
    last_seq: Option<u64>,
    switches: u64,
}

impl RerequestTargets {
    /// Asks `primary` first, then each of `fallbacks` in turn, round and
    /// round. Duplicates are dropped (the first occurrence keeps its place).
    pub fn new(primary: Option<SocketAddr>, fallbacks: &[SocketAddr]) -> RerequestTargets {
        let mut servers = Vec::with_capacity(1 + fallbacks.len());
        for s in primary.iter().chain(fallbacks) {
            if !servers.contains(s) {
                servers.push(*s);
            }
        }
        RerequestTargets {
            servers,
            current: 0,
            last_seq: None,
            switches: 0,
        }
    }

    /// Where the request starting at `seq` goes: the current server, or
    /// the next one when the previous request started at the same `seq`
    /// (it went unanswered). `None` when there is no server.
    pub fn target_for(&mut self, seq: u64) -> Option<SocketAddr> {
        if self.servers.is_empty() {
            return None;
        }
        if self.last_seq == Some(seq) && self.servers.len() > 1 {
            self.current = (self.current + 1) % self.servers.len();
            self.switches += 1;
        }
        self.last_seq = Some(seq);
        Some(self.servers[self.current])
    }

    /// Replaces the first server (`None` removes every server: requests
    /// stop), keeping the fallbacks (one equal to the new first is dropped).
    pub fn set_primary(&mut self, primary: Option<SocketAddr>) {
        match primary {
            None => self.servers.clear(),
            Some(p) => {
                match self.servers.first_mut() {
                    Some(first) => *first = p,
                    None => self.servers.push(p),
                }
                // Keep the first `p` (now at the front) only.
                let mut first = true;
                self.servers.retain(|s| *s != p || std::mem::take(&mut first));
            }
        }
        self.current = 0;
        self.last_seq = None;
    }

    /// The server asked now.
    pub fn current(&self) -> Option<SocketAddr> {
        self.servers.get(self.current).copied()
    }

    /// Times the consumer moved on to the next server.
    pub fn switches(&self) -> u64 {
        self.switches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn progress_keeps_the_server_and_a_repeat_moves_on_round_and_round() {
        let mut t = RerequestTargets::new(Some(addr(1)), &[addr(2), addr(1), addr(3)]);
        assert_eq!(t.target_for(10), Some(addr(1)));
        assert_eq!(t.target_for(20), Some(addr(1)), "progress: same server");
        assert_eq!(t.target_for(20), Some(addr(2)), "unanswered: next");
        assert_eq!(t.target_for(20), Some(addr(3)), "duplicates dropped");
        assert_eq!(t.target_for(20), Some(addr(1)), "round and round");
        assert_eq!(t.target_for(25), Some(addr(1)));
        assert_eq!(t.switches(), 3);
        t.set_primary(Some(addr(3)));
        assert_eq!(t.target_for(25), Some(addr(3)), "a new primary starts afresh");
        assert_eq!(t.target_for(25), Some(addr(2)), "the old primary is gone");
        assert_eq!(t.target_for(25), Some(addr(3)), "and the duplicate fallback");
        t.set_primary(None);
        assert_eq!(t.target_for(25), None);
        assert_eq!(t.current(), None);
    }

    #[test]
    fn one_server_is_asked_again() {
        let mut t = RerequestTargets::new(Some(addr(1)), &[]);
        assert_eq!(t.target_for(5), Some(addr(1)));
        assert_eq!(t.target_for(5), Some(addr(1)));
        assert_eq!(t.switches(), 0);
        assert_eq!(RerequestTargets::new(None, &[]).target_for(1), None);
        let mut only_fallbacks = RerequestTargets::new(None, &[addr(7)]);
        assert_eq!(only_fallbacks.target_for(1), Some(addr(7)));
    }
}
