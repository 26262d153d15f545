//! The fault model shared by the relay (`peregrine relay`) and the client
//! simulator's lossy link: per datagram and direction, drop it with
//! probability `drop`; else, when nothing is held already, hold it back
//! behind the next datagram with probability `reorder`; else pass it on
//! and, with probability `duplicate`, pass it on twice. A held datagram
//! goes out right after the next datagram of its direction arrives
//! (forwarded or dropped), or, when the injector has a hold bound, once it
//! has waited that long (a real network delays a reordered packet by a
//! bounded time; a relay that only forwards what arrives has no clock to
//! release it by and leaves it to the next datagram).
//!
//! The draws come from one seeded [`SplitMix64`] in a fixed order (drop,
//! then reorder, then duplicate), so a seed replays the same faults for the
//! same arrival order.

use peregrine_engine::flow::SplitMix64;

/// Fault probabilities, each in `0.0..=1.0`, applied per datagram and
/// direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Probability a datagram is dropped.
    pub drop: f64,
    /// Probability a datagram is sent twice.
    pub duplicate: f64,
    /// Probability a datagram is held back and sent after the next one.
    pub reorder: f64,
}

impl Faults {
    /// The same probability `p` for drop, duplicate and reorder.
    pub fn uniform(p: f64) -> Faults {
        Faults {
            drop: p,
            duplicate: p,
            reorder: p,
        }
    }
}

/// What an injector did, per direction (0: client → server, 1: server →
/// client).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Datagrams received.
    pub received: [u64; 2],
    /// Datagrams forwarded (duplicates included).
    pub forwarded: [u64; 2],
    /// Dropped on purpose, or because there was no room to pass them on.
    pub dropped: [u64; 2],
    /// Sent twice on purpose.
    pub duplicated: [u64; 2],
    /// Held back behind the next datagram on purpose.
    pub reordered: [u64; 2],
}

/// A datagram held back in one direction, with where it goes (`P`) and
/// since when (ns). The buffer is reused, so holding does not allocate once
/// it has held the largest datagram.
#[derive(Debug)]
pub struct Held<P> {
    full: bool,
    peer: Option<P>,
    data: Vec<u8>,
    since_ns: u64,
}

impl<P> Default for Held<P> {
    fn default() -> Self {
        Held::with_capacity(0)
    }
}

impl<P> Held<P> {
    /// Nothing held, with room for a datagram of `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Held<P> {
        Held {
            full: false,
            peer: None,
            data: Vec::with_capacity(capacity),
            since_ns: 0,
        }
    }

    /// True when a datagram is held.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// The held datagram's bytes (empty when none is).
    pub fn data(&self) -> &[u8] {
        if self.full {
            &self.data
        } else {
            &[]
        }
    }
}

/// The fault decisions and the counters.
pub struct FaultInjector {
    rng: SplitMix64,
    faults: Faults,
    counters: FaultCounters,
    /// Longest a held datagram waits for the next one, ns (None: no bound).
    hold_ns: Option<u64>,
}

impl FaultInjector {
    /// An injector applying `faults`, drawing from a generator seeded with
    /// `seed`, releasing held datagrams after `hold_ns` (None: only behind
    /// the next datagram).
    pub fn new(faults: Faults, seed: u64, hold_ns: Option<u64>) -> FaultInjector {
        FaultInjector {
            rng: SplitMix64::new(seed),
            faults,
            counters: FaultCounters::default(),
            hold_ns,
        }
    }

    /// What it did so far.
    pub fn counters(&self) -> FaultCounters {
        self.counters
    }

    /// Changes the probabilities (tests).
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    /// Decides the fate of datagram `data` for `peer` travelling in `dir`
    /// at `now_ns`, with `held` the direction's held datagram: what goes
    /// out is handed to `emit`, in order, which returns false when it has
    /// no room (the datagram then counts as dropped; a held one stays held).
    pub fn pass<P: Copy>(
        &mut self,
        dir: usize,
        peer: P,
        data: &[u8],
        held: &mut Held<P>,
        now_ns: u64,
        emit: &mut impl FnMut(P, &[u8]) -> bool,
    ) {
        self.counters.received[dir] += 1;
        if self.chance(self.faults.drop) {
            self.counters.dropped[dir] += 1;
        } else if !held.full && self.chance(self.faults.reorder) {
            self.counters.reordered[dir] += 1;
            held.data.clear();
            held.data.extend_from_slice(data);
            held.peer = Some(peer);
            held.since_ns = now_ns;
            held.full = true;
            return;
        } else {
            let copies = if self.chance(self.faults.duplicate) {
                self.counters.duplicated[dir] += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                if emit(peer, data) {
                    self.counters.forwarded[dir] += 1;
                } else {
                    self.counters.dropped[dir] += 1;
                }
            }
        }
        // A held datagram goes out after the one that overtook it.
        self.release(dir, held, emit);
    }

    /// Lets the held datagram of `dir` out if it has waited the hold bound
    /// by `now_ns`; call it when no traffic comes.
    pub fn release_due<P: Copy>(
        &mut self,
        dir: usize,
        held: &mut Held<P>,
        now_ns: u64,
        emit: &mut impl FnMut(P, &[u8]) -> bool,
    ) {
        if held.full
            && self
                .hold_ns
                .is_some_and(|h| now_ns.saturating_sub(held.since_ns) >= h)
        {
            self.release(dir, held, emit);
        }
    }

    fn release<P: Copy>(&mut self, dir: usize, held: &mut Held<P>, emit: &mut impl FnMut(P, &[u8]) -> bool) {
        let Some(peer) = held.peer.filter(|_| held.full) else {
            return;
        };
        if emit(peer, &held.data) {
            held.full = false;
            self.counters.forwarded[dir] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_datagram_goes_out_right_after_the_next_one() {
        let mut f = FaultInjector::new(
            Faults {
                drop: 0.0,
                duplicate: 0.0,
                reorder: 1.0,
            },
            1,
            None,
        );
        let mut held = Held::<()>::default();
        let mut out: Vec<u8> = Vec::new();
        let mut emit = |_: (), d: &[u8]| {
            out.push(d[0]);
            true
        };
        for i in 1..=5u8 {
            f.pass(0, (), &[i], &mut held, 0, &mut emit);
        }
        // 1 is held and follows 2, 3 follows 4, 5 waits for a sixth.
        assert!(held.is_full() && held.data() == [5]);
        assert_eq!(f.counters().reordered[0], 3);
        assert_eq!(f.counters().forwarded[0], 4);
        // No hold bound: time alone does not let it out.
        f.release_due(0, &mut held, u64::MAX, &mut emit);
        assert!(held.is_full());
        // A dropped datagram still lets the held one go.
        f.set_faults(Faults {
            drop: 1.0,
            duplicate: 0.0,
            reorder: 0.0,
        });
        f.pass(0, (), &[6], &mut held, 0, &mut emit);
        assert!(!held.is_full());
        assert_eq!(out, [2, 1, 4, 3, 5]);
    }

    #[test]
    fn with_a_hold_bound_a_held_datagram_comes_out_in_time() {
        let mut f = FaultInjector::new(
            Faults {
                drop: 0.0,
                duplicate: 0.0,
                reorder: 1.0,
            },
            1,
            Some(1000),
        );
        let mut held = Held::<u8>::default();
        let mut out: Vec<(u8, u8)> = Vec::new();
        let mut emit = |p: u8, d: &[u8]| {
            out.push((p, d[0]));
            true
        };
        f.pass(1, 9, &[1], &mut held, 0, &mut emit);
        f.release_due(1, &mut held, 999, &mut emit);
        assert!(held.is_full());
        f.release_due(1, &mut held, 1000, &mut emit);
        assert!(!held.is_full());
        assert_eq!(out, [(9, 1)], "to the peer it was going to");
    }
}
