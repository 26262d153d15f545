//! Fault injection inside the UDP simulator: its outgoing datagrams and the
//! datagrams it receives pass through a lossy "link" that drops, duplicates
//! and reorders them, as a bad network would, in both directions.
//!
//! Why in the simulator and not only in the relay (`peregrine relay`): a
//! relay is a third busy thread with its own socket hops, and on a 2-core
//! machine it, not Peregrine, becomes what limits a 200,000 messages/s run.
//! Here the faults cost a random draw per datagram on the client's thread,
//! and the server sees exactly what a lossy network would deliver.

use super::flow::Rng;
use crate::relay::{Faults, RelayCounters};
use peregrine_netio::PacketBatch;

/// Direction: client to server.
pub const UP: usize = 0;
/// Direction: server to client.
pub const DOWN: usize = 1;

/// The lossy link, per direction: each datagram is dropped with
/// probability `drop`, else held back behind the next one (or for
/// [`HOLD_NS`] at most, as a real network delays a reordered packet by a
/// bounded time) with probability `reorder`, else passed on and, with
/// probability `duplicate`, passed on twice. Seeded, so a run repeats for
/// the same traffic.
pub struct LossyLink {
    rng: Rng,
    faults: Faults,
    counters: RelayCounters,
    held: [Held; 2],
}

/// Longest a reordered datagram is held back, ns.
pub const HOLD_NS: u64 = 1_000_000;

/// A datagram held back, and since when (ns); the buffer is reused.
struct Held {
    full: bool,
    peer: peregrine_netio::Peer,
    data: Vec<u8>,
    since_ns: u64,
}

impl Held {
    fn empty() -> Held {
        Held {
            full: false,
            peer: peregrine_netio::Peer::NONE,
            data: Vec::with_capacity(peregrine_netio::SLOT_BYTES),
            since_ns: 0,
        }
    }
}

impl LossyLink {
    /// A link applying `faults` in both directions.
    pub fn new(faults: Faults, seed: u64) -> LossyLink {
        LossyLink {
            rng: Rng::new(seed),
            faults,
            counters: RelayCounters::default(),
            held: [Held::empty(), Held::empty()],
        }
    }

    /// What the link did so far (the relay's counters, same meaning).
    pub fn counters(&self) -> RelayCounters {
        self.counters
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
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
        if self.held[dir].full && now_ns.saturating_sub(self.held[dir].since_ns) >= HOLD_NS {
            self.release(dir, to);
        }
        for i in 0..from.len() {
            let (peer, _, data) = from.get(i);
            self.counters.received[dir] += 1;
            if self.chance(self.faults.drop) {
                self.counters.dropped[dir] += 1;
                continue;
            }
            if !self.held[dir].full && self.chance(self.faults.reorder) {
                self.counters.reordered[dir] += 1;
                let h = &mut self.held[dir];
                h.full = true;
                h.peer = peer;
                h.data.clear();
                h.data.extend_from_slice(data);
                h.since_ns = now_ns;
                continue;
            }
            let copies = if self.chance(self.faults.duplicate) {
                self.counters.duplicated[dir] += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                if to.push(peer, data) {
                    self.counters.forwarded[dir] += 1;
                } else {
                    self.counters.dropped[dir] += 1;
                }
            }
            // A held datagram goes out after the one that overtook it.
            self.release(dir, to);
        }
    }

    /// Lets the held datagram of `dir`, if any, out into `to`.
    fn release(&mut self, dir: usize, to: &mut PacketBatch) {
        let h = &mut self.held[dir];
        if h.full && to.push(h.peer, &h.data) {
            h.full = false;
            self.counters.forwarded[dir] += 1;
        }
    }

    /// True when a datagram is held back in direction `dir`.
    pub fn holds(&self, dir: usize) -> bool {
        self.held[dir].full
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_netio::Peer;

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
