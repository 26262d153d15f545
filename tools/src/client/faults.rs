//! Fault injection inside the UDP simulator: its outgoing datagrams and the
//! datagrams it receives pass through a lossy "link" that drops, duplicates
//! and reorders them, as a bad network would, in both directions.
//!
//! Why in the simulator and not only in the relay (`peregrine relay`): a
//! relay is a third busy thread with its own socket hops, and on a 2-core
//! machine it, not Peregrine, becomes what limits a 200,000 messages/s run.
//! Here the faults cost a random draw per datagram on the client's thread,
//! and the server sees exactly what a lossy network would deliver.
//!
//! The model and its random draws are the relay's ([`crate::faults`]); the
//! link adds a bound on how long a reordered datagram is held, since a
//! simulator's datagrams may stop coming when it waits for answers.

use crate::faults::{FaultCounters, FaultInjector, Faults, Held};
use peregrine_client::{Direction, Link};
use peregrine_netio::{PacketBatch, Peer};

/// Direction: client to server.
pub const UP: usize = Direction::Up as usize;
/// Direction: server to client.
pub const DOWN: usize = Direction::Down as usize;

/// Longest a reordered datagram is held back, ns.
pub const HOLD_NS: u64 = 1_000_000;

/// The lossy link: the shared fault model ([`crate::faults`]) on both
/// directions, a held datagram released after [`HOLD_NS`] at most. Seeded,
/// so a run repeats for the same traffic.
pub struct LossyLink {
    injector: FaultInjector,
    held: [Held<Peer>; 2],
}

impl LossyLink {
    /// A link applying `faults` in both directions.
    pub fn new(faults: Faults, seed: u64) -> LossyLink {
        LossyLink {
            injector: FaultInjector::new(faults, seed, Some(HOLD_NS)),
            held: [
                Held::with_capacity(peregrine_netio::SLOT_BYTES),
                Held::with_capacity(peregrine_netio::SLOT_BYTES),
            ],
        }
    }

    /// What the link did so far (the relay's counters, same meaning).
    pub fn counters(&self) -> FaultCounters {
        self.injector.counters()
    }

    /// Passes every datagram of `from` through the link in direction `dir`
    /// into `to` (cleared first). `to` needs room for twice `from` plus one
    /// (every datagram duplicated, plus one held from before); what does
    /// not fit is counted as dropped.
    ///
    /// A datagram held for [`HOLD_NS`] by `now_ns` goes out first; call this
    /// with an empty `from` to let it out when no traffic comes.
    pub fn pass(&mut self, dir: usize, from: &PacketBatch, to: &mut PacketBatch, now_ns: u64) {
        to.clear();
        let mut emit = |peer: Peer, data: &[u8]| to.push(peer, data);
        self.injector
            .release_due(dir, &mut self.held[dir], now_ns, &mut emit);
        for i in 0..from.len() {
            let (peer, _, data) = from.get(i);
            self.injector
                .pass(dir, peer, data, &mut self.held[dir], now_ns, &mut emit);
        }
    }

    /// True when a datagram is held back in direction `dir`.
    pub fn holds(&self, dir: usize) -> bool {
        self.held[dir].is_full()
    }
}

impl Link for LossyLink {
    fn pass(&mut self, dir: Direction, from: &PacketBatch, to: &mut PacketBatch, now_ns: u64) {
        LossyLink::pass(self, dir as usize, from, to, now_ns);
    }

    fn holds(&self, dir: Direction) -> bool {
        LossyLink::holds(self, dir as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> PacketBatch {
        let mut b = PacketBatch::new(n);
        let to = Peer::Addr("127.0.0.1:9".parse().unwrap());
        for i in 0..n {
            b.push(to, &(i as u32).to_le_bytes());
        }
        b
    }

    fn ids(b: &PacketBatch) -> Vec<u32> {
        (0..b.len())
            .map(|i| u32::from_le_bytes(b.get(i).2.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn a_clean_link_passes_everything_in_order() {
        let mut l = LossyLink::new(Faults::uniform(0.0), 1);
        let mut out = PacketBatch::new(64);
        l.pass(UP, &batch(50), &mut out, 0);
        assert_eq!(ids(&out), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn faults_happen_at_about_their_rate_and_nothing_else_is_lost() {
        let mut l = LossyLink::new(Faults::uniform(0.05), 7);
        let mut out = PacketBatch::new(200);
        let mut seen = vec![0u32; 64];
        for _ in 0..2000 {
            for dir in [UP, DOWN] {
                l.pass(dir, &batch(64), &mut out, 0);
                for id in ids(&out) {
                    seen[id as usize] += 1;
                }
            }
        }
        let c = l.counters();
        for dir in [UP, DOWN] {
            let n = c.received[dir] as f64;
            for (what, k) in [
                ("dropped", c.dropped[dir]),
                ("duplicated", c.duplicated[dir]),
                ("reordered", c.reordered[dir]),
            ] {
                let rate = k as f64 / n;
                assert!(
                    (0.04..0.06).contains(&rate),
                    "{what} rate {rate} in direction {dir}"
                );
            }
            // Every datagram is forwarded once (twice when duplicated) unless
            // dropped, except one that may still be held at the end.
            let held =
                (c.received[dir] - c.dropped[dir] + c.duplicated[dir]) as i64 - c.forwarded[dir] as i64;
            assert!((0..=1).contains(&held), "direction {dir}: {held} unaccounted");
        }
        assert!(
            seen.iter().all(|&k| k > 3000),
            "every datagram got through most of the time"
        );
    }

    #[test]
    fn a_held_datagram_follows_the_next_one() {
        let mut l = LossyLink::new(
            Faults {
                drop: 0.0,
                duplicate: 0.0,
                reorder: 1.0,
            },
            3,
        );
        let mut out = PacketBatch::new(8);
        l.pass(UP, &batch(4), &mut out, 0);
        // 0 is held, 1 overtakes it, then 0; 2 is held, 3 overtakes it, then 2.
        assert_eq!(ids(&out), vec![1, 0, 3, 2]);
        // A datagram held with nothing after it comes out after HOLD_NS.
        l.pass(UP, &batch(1), &mut out, 0);
        assert!(out.is_empty() && l.holds(UP));
        l.pass(UP, &PacketBatch::new(1), &mut out, HOLD_NS - 1);
        assert!(out.is_empty());
        l.pass(UP, &PacketBatch::new(1), &mut out, HOLD_NS);
        assert_eq!(ids(&out), vec![0]);
        assert!(!l.holds(UP));
    }
}
