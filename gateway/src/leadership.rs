//! Whether this node serves clients now, and where the leader is when it
//! does not.
//!
//! In a cluster only the leader serves clients. The sequencer thread learns
//! of leadership changes and writes them here; every gateway of the node
//! reads them, but only when a login arrives: the per-message path never
//! looks (a node that stops serving while sessions are live restarts its
//! gateways, so no session stays logged in on a follower). That is why a
//! pair of atomics suffices and no gateway needs to be told of a change.
//!
//! A refused login carries a hint: the leader's node id and the leader's
//! address for the same gateway (gateway ids are positions in a layout all
//! nodes share), taken from a table fixed at start-up from the cluster
//! configuration.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One node's leadership, shared (`Arc`) by all of its gateways; written by
/// the sequencer thread, read by gateways at login.
#[derive(Debug)]
pub struct Leadership {
    /// True while this node is the leader and serves clients.
    serving: AtomicBool,
    /// Node id of the leader as last known, 0 unknown.
    leader: AtomicU64,
    /// Per node id, its client-facing addresses indexed by gateway id.
    hints: Vec<(u64, Vec<SocketAddr>)>,
}

impl Leadership {
    /// A node that does not serve yet and knows no leader, with the
    /// cluster's client-facing addresses: for each member, its node id and
    /// its addresses in gateway-id order (UDP listeners first, then TCP,
    /// then DPDK). The table never changes afterwards.
    pub fn new(hints: Vec<(u64, Vec<SocketAddr>)>) -> Leadership {
        Leadership {
            serving: AtomicBool::new(false),
            leader: AtomicU64::new(0),
            hints,
        }
    }

    /// Records a leadership change: whether this node serves clients now,
    /// and the leader's node id (`None`: unknown, e.g. during an election).
    /// Called by the sequencer thread; the leader is published before the
    /// serving flag (both with Release), so a gateway that sees the flag
    /// also sees the leader that came with it.
    pub fn set(&self, serving: bool, leader: Option<u64>) {
        self.leader.store(leader.unwrap_or(0), Ordering::Release);
        self.serving.store(serving, Ordering::Release);
    }

    /// True while this node serves clients (Acquire).
    #[inline]
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// The leader's node id, if known.
    #[inline]
    pub fn leader(&self) -> Option<u64> {
        Some(self.leader.load(Ordering::Acquire)).filter(|&id| id != 0)
    }

    /// The hint a refused login on gateway `gateway` carries: the leader's
    /// node id (if known) and the leader's address for that gateway (if the
    /// leader is known, listed in the table and has that gateway).
    pub fn leader_hint(&self, gateway: u16) -> (Option<u64>, Option<SocketAddr>) {
        let Some(id) = self.leader() else {
            return (None, None);
        };
        let addr = self
            .hints
            .iter()
            .find(|(node, _)| *node == id)
            .and_then(|(_, addrs)| addrs.get(gateway as usize).copied());
        (Some(id), addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn starts_not_serving_and_hints_follow_the_leader_and_gateway() {
        let l = Leadership::new(vec![
            (1, vec![addr("10.0.0.1:9000"), addr("10.0.0.1:9100")]),
            (2, vec![addr("10.0.0.2:9000"), addr("10.0.0.2:9100")]),
            (3, vec![addr("10.0.0.3:9000")]),
        ]);
        assert!(!l.serving());
        assert_eq!(l.leader_hint(0), (None, None));
        l.set(false, Some(2));
        assert_eq!(l.leader_hint(1), (Some(2), Some(addr("10.0.0.2:9100"))));
        l.set(false, Some(3));
        assert_eq!(l.leader_hint(1), (Some(3), None), "node 3 has no gateway 1");
        l.set(false, Some(9));
        assert_eq!(l.leader_hint(0), (Some(9), None), "not in the table");
        l.set(true, Some(1));
        assert!(l.serving());
        l.set(false, None);
        assert!(!l.serving());
        assert_eq!(l.leader_hint(0), (None, None));
    }
}
