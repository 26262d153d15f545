//! Which client sequence numbers of one session were sent and answered,
//! in memory bounded by the messages in flight.
//!
//! Why a ring and not a table indexed by sequence: a table grows with
//! every message sent, and each time it doubles it copies everything in the
//! receive loop (at 2^25 messages: 256 MB copied, 512 MB touched, one stall
//! of tens of milliseconds in the middle of a throughput run). The ring
//! holds only the most recent sequences, `[base, end)`: it is sized from
//! the expected number of messages in flight, allocated and written once
//! (so every page is faulted in) before the run, and doubles only when the
//! in-flight window itself outgrows it: when a new send needs the slot of
//! a message that is still unanswered. Past [`MAX_SLOTS`] it stops
//! growing; such a long-unanswered message (lost, or answered very late)
//! moves to a small side set, so it is still answered exactly once.
//!
//! What is kept per slot: not sent, sent and unanswered, or the global
//! sequence of its first answer, so a second answer is told apart as a
//! harmless repeat or as the message sequenced twice. That check covers the
//! ring's span (at least its initial size in messages after the answered
//! one); an answer for a sequence already dropped from the ring is a
//! repeat. Runs that verify exactly-once delivery keep the full history
//! ([`SeqTracker::keep_full_history`]): the ring then grows instead of
//! dropping answered sequences, as such runs keep every answer anyway.

use std::collections::BTreeSet;

/// Slot value: sequence never sent (a gap the session skipped, or not yet
/// reached). Also what the ring is filled with up front.
const NOT_SENT: u64 = u64::MAX;
/// Slot value: sent, no answer yet.
const PENDING: u64 = 0;

/// Most slots one session's ring grows to (8 MB of `u64`); beyond it the
/// oldest unanswered messages move to the side set.
pub const MAX_SLOTS: usize = 1 << 20;

/// Most slots a ring keeping the full history grows to (8 GB of `u64`:
/// in practice, never full).
const FULL_HISTORY_MAX_SLOTS: usize = 1 << 30;

/// Fewest slots a ring starts with.
pub const MIN_SLOTS: usize = 64;

/// What an answer means for its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// The first answer.
    First,
    /// Answered before, with the same global sequence (or one of the two
    /// carried none, or the first answer is too old to compare): a
    /// retransmitted or duplicated reply, harmless.
    Repeat,
    /// Answered before with a different global sequence: the message was
    /// sequenced twice.
    Resequenced,
    /// No message with this sequence was sent.
    NeverSent,
}

/// The sent and answered client sequences of one session.
///
/// Memory: one `u64` per slot, `slots` a power of two at least the
/// in-flight hint given to [`SeqTracker::with_in_flight`], doubling only
/// when more messages than that are unanswered at once (up to
/// [`MAX_SLOTS`]), plus one set entry per message left unanswered for
/// longer than [`MAX_SLOTS`] later sends.
#[derive(Clone, Debug)]
pub struct SeqTracker {
    /// Slot `seq & (len - 1)` describes `seq` for `seq` in `[base, end)`:
    /// [`NOT_SENT`], [`PENDING`] or the answer's global sequence (1 when
    /// the answer carried none).
    slots: Vec<u64>,
    /// Lowest sequence the ring describes.
    base: u64,
    /// One past the highest sequence sent.
    end: u64,
    /// Lowest sequence ever sent (`u64::MAX` before the first send).
    first: u64,
    /// Unanswered sequences that fell out of the ring's span.
    stragglers: BTreeSet<u64>,
    /// Sent and not yet answered (ring and stragglers).
    pending: u64,
    /// Most slots the ring grows to.
    max_slots: usize,
    /// Never drop an answered sequence: grow instead.
    full_history: bool,
}

impl Default for SeqTracker {
    fn default() -> Self {
        SeqTracker::with_in_flight(MIN_SLOTS)
    }
}

impl SeqTracker {
    /// A tracker whose ring holds `in_flight` messages (rounded up to a
    /// power of two, at least [`MIN_SLOTS`], at most [`MAX_SLOTS`])
    /// without growing. The ring is allocated and written here, so its
    /// pages are faulted in before any message is timed.
    pub fn with_in_flight(in_flight: usize) -> Self {
        SeqTracker::with_limits(in_flight, MAX_SLOTS)
    }

    /// As [`SeqTracker::with_in_flight`], growing to at most `max_slots`
    /// (rounded up to a power of two, at least the initial size).
    pub fn with_limits(in_flight: usize, max_slots: usize) -> Self {
        let n = in_flight.clamp(MIN_SLOTS, MAX_SLOTS).next_power_of_two();
        SeqTracker {
            max_slots: max_slots.next_power_of_two().max(n),
            slots: vec![NOT_SENT; n],
            base: 0,
            end: 0,
            first: u64::MAX,
            stragglers: BTreeSet::new(),
            pending: 0,
            full_history: false,
        }
    }

    /// From now on keeps every sequence's first answer for the rest of the
    /// run: the ring grows with the messages sent (and copies itself when
    /// it doubles) instead of dropping answered sequences, so a message
    /// sequenced twice is caught however late its second answer comes.
    /// For verification runs, not for timing.
    pub fn keep_full_history(&mut self) {
        self.full_history = true;
        self.max_slots = self.max_slots.max(FULL_HISTORY_MAX_SLOTS);
    }

    /// Slots in the ring now.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Messages sent and not answered yet.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Lowest sequence whose answer's global sequence is still known:
    /// an answer below it is at most a [`Mark::Repeat`] (or the first
    /// answer of a message that was left unanswered that long).
    pub fn base(&self) -> u64 {
        self.base
    }

    #[inline]
    fn slot(&self, seq: u64) -> usize {
        (seq & (self.slots.len() as u64 - 1)) as usize
    }

    /// Records that messages `first..first + count` were sent (a resend of
    /// a sequence already sent changes nothing).
    #[inline]
    pub fn sent(&mut self, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        if self.first == u64::MAX {
            self.first = first;
            self.base = first;
            self.end = first;
        }
        if first > self.end && first - self.end >= self.slots.len() as u64 {
            self.jump_to(first);
        }
        for seq in first..first.saturating_add(count) {
            if seq >= self.end {
                // Sequences between the old end and `seq` were skipped.
                while self.end <= seq {
                    self.make_room();
                    let i = self.slot(self.end);
                    self.slots[i] = NOT_SENT;
                    self.end += 1;
                }
            }
            if seq >= self.base {
                let i = self.slot(seq);
                if self.slots[i] == NOT_SENT {
                    self.slots[i] = PENDING;
                    self.pending += 1;
                }
            } else if seq < self.first {
                // Below everything sent so far (a session rewound before its
                // first message): tracked from the side set.
                self.first = seq;
                if self.stragglers.insert(seq) {
                    self.pending += 1;
                }
            }
        }
    }

    /// Frees the slot for sequence `end`: drops the oldest one when the
    /// ring is full, doubling the ring instead while that one is still
    /// unanswered (up to [`MAX_SLOTS`], then it moves to the side set).
    #[inline]
    fn make_room(&mut self) {
        if self.end - self.base < self.slots.len() as u64 {
            return;
        }
        let i = self.slot(self.base);
        let pending = self.slots[i] == PENDING;
        if pending || self.full_history {
            if self.slots.len() < self.max_slots {
                self.grow();
                return;
            }
            if pending {
                self.stragglers.insert(self.base);
            }
        }
        self.base += 1;
    }

    /// The session skipped past everything the ring holds (a resumed
    /// session continuing far ahead): the unanswered ones move to the side
    /// set and the ring restarts empty at `seq`. An answer to a skipped
    /// sequence then reads as a repeat, not as never sent.
    #[cold]
    fn jump_to(&mut self, seq: u64) {
        for s in self.base..self.end {
            let i = self.slot(s);
            if self.slots[i] == PENDING {
                self.stragglers.insert(s);
            }
            self.slots[i] = NOT_SENT;
        }
        self.base = seq;
        self.end = seq;
    }

    #[cold]
    fn grow(&mut self) {
        let mut bigger = vec![NOT_SENT; self.slots.len() * 2];
        let mask = bigger.len() as u64 - 1;
        for seq in self.base..self.end {
            bigger[(seq & mask) as usize] = self.slots[self.slot(seq)];
        }
        self.slots = bigger;
    }

    /// Records an answer to `seq` carrying `global` (0: none).
    #[inline]
    pub fn mark(&mut self, seq: u64, global: u64) -> Mark {
        if seq >= self.end || seq < self.first {
            return Mark::NeverSent;
        }
        let g = global.max(1);
        if seq < self.base {
            if self.stragglers.remove(&seq) {
                self.pending -= 1;
                return Mark::First;
            }
            return Mark::Repeat;
        }
        let i = self.slot(seq);
        match self.slots[i] {
            NOT_SENT => Mark::NeverSent,
            PENDING => {
                self.slots[i] = g;
                self.pending -= 1;
                Mark::First
            }
            old if old == g || g == 1 || old == 1 => Mark::Repeat,
            _ => Mark::Resequenced,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    /// The simple model: every sequence sent, every first answer's global.
    #[derive(Default)]
    struct Model {
        sent: HashSet<u64>,
        answered: HashMap<u64, u64>,
    }

    impl Model {
        fn mark(&mut self, seq: u64, global: u64) -> Mark {
            if !self.sent.contains(&seq) {
                return Mark::NeverSent;
            }
            let g = global.max(1);
            match self.answered.get(&seq) {
                None => {
                    self.answered.insert(seq, g);
                    Mark::First
                }
                Some(&old) if old == g || g == 1 || old == 1 => Mark::Repeat,
                Some(_) => Mark::Resequenced,
            }
        }
        fn pending(&self) -> u64 {
            (self.sent.len() - self.answered.len()) as u64
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Send the next `n` messages, after skipping `skip` sequences.
        Send { n: u64, skip: u64 },
        /// Answer the `back`-th most recently sent sequence (offset from
        /// the end), with a global sequence kind.
        Answer { back: u64, global: GlobalKind },
        /// Answer a sequence at or past the end, or below the first.
        Stray { past: bool, off: u64 },
        /// Resend the `back`-th most recent sequence.
        Resend { back: u64 },
        /// Answer the `k`-th lowest unanswered sequence (lets the ring's
        /// base move on).
        AnswerOldest { k: usize },
    }

    #[derive(Clone, Copy, Debug)]
    enum GlobalKind {
        Own,
        None,
        Other,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u64..15, prop_oneof![9 => Just(0u64), 1 => 1u64..5])
                .prop_map(|(n, skip)| Op::Send { n, skip }),
            6 => (0u64..40, prop_oneof![6 => Just(GlobalKind::Own), 1 => Just(GlobalKind::None), 1 => Just(GlobalKind::Other)])
                .prop_map(|(back, global)| Op::Answer { back, global }),
            1 => (any::<bool>(), 0u64..3).prop_map(|(past, off)| Op::Stray { past, off }),
            1 => (0u64..40).prop_map(|back| Op::Resend { back }),
            5 => (0usize..4).prop_map(|k| Op::AnswerOldest { k }),
        ]
    }

    /// Runs `ops` on a tracker of `hint` slots and the model; checks every
    /// answer's verdict and the pending count. The tracker may only say
    /// Repeat where the model says Resequenced or NeverSent for a sequence
    /// below its base (too old to compare), nothing else differs. Returns
    /// the tracker and how many verdicts were excused that way.
    fn check(
        ops: &[Op],
        start: u64,
        hint: usize,
        max: usize,
        full: bool,
    ) -> Result<(SeqTracker, usize), TestCaseError> {
        let mut excuses = 0;
        let mut t = SeqTracker::with_limits(hint, max);
        if full {
            t.keep_full_history();
        }
        let mut m = Model::default();
        let mut next = start;
        for op in ops {
            match *op {
                Op::Send { n, skip } => {
                    next += skip;
                    t.sent(next, n);
                    m.sent.extend(next..next + n);
                    next += n;
                }
                Op::Resend { back } => {
                    if next > start + back {
                        let s = next - 1 - back;
                        if m.sent.contains(&s) {
                            t.sent(s, 1);
                        }
                    }
                }
                Op::Answer { back, global } => {
                    if next <= start + back {
                        continue;
                    }
                    let s = next - 1 - back;
                    let g = match global {
                        GlobalKind::Own => s + 1000,
                        GlobalKind::None => 0,
                        GlobalKind::Other => s + 5000,
                    };
                    let below = s < t.base();
                    let (got, want) = (t.mark(s, g), m.mark(s, g));
                    let excused =
                        below && got == Mark::Repeat && matches!(want, Mark::Resequenced | Mark::NeverSent);
                    prop_assert!(got == want || excused, "seq {s}: {got:?} vs model {want:?}");
                    excuses += usize::from(got != want);
                }
                Op::AnswerOldest { k } => {
                    let mut unanswered: Vec<u64> = m
                        .sent
                        .iter()
                        .copied()
                        .filter(|s| !m.answered.contains_key(s))
                        .collect();
                    unanswered.sort_unstable();
                    if let Some(&s) = unanswered.get(k) {
                        prop_assert_eq!(m.mark(s, s + 1000), Mark::First);
                        prop_assert_eq!(t.mark(s, s + 1000), Mark::First, "seq {}", s);
                    }
                }
                Op::Stray { past, off } => {
                    let s = if past {
                        next + off
                    } else {
                        start.saturating_sub(1 + off)
                    };
                    if s < start || s >= next {
                        let want = m.mark(s, 7);
                        prop_assert_eq!(want, Mark::NeverSent);
                        prop_assert_eq!(t.mark(s, 7), Mark::NeverSent);
                    }
                }
            }
            prop_assert_eq!(t.pending(), m.pending());
        }
        Ok((t, excuses))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn agrees_with_the_model(
            ops in proptest::collection::vec(op(), 1..400),
            start in prop_oneof![Just(1u64), 1u64..1_000_000],
        ) {
            check(&ops, start, MIN_SLOTS, MAX_SLOTS, false)?;
        }

        #[test]
        fn agrees_exactly_with_the_model_keeping_the_full_history(
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            // Nothing is dropped, so nothing is excused.
            let (_, excused) = check(&ops, 1, MIN_SLOTS, 128, true)?;
            prop_assert_eq!(excused, 0);
        }

        #[test]
        fn agrees_with_the_model_when_the_ring_stops_growing(
            ops in proptest::collection::vec(op(), 1..600),
        ) {
            // A ring capped at 128 slots: long-unanswered messages go to
            // the side set, answered ones are dropped from the ring.
            let (t, _) = check(&ops, 1, MIN_SLOTS, 128, false)?;
            prop_assert!(t.slots() <= 128);
        }

        #[test]
        fn every_message_is_answered_once_in_any_order(
            n in 1u64..3000,
            seed in any::<u64>(),
            dup_every in 2u64..9,
        ) {
            // Send n, then answer all of them in a shuffled order with
            // duplicates: n Firsts, no Resequenced, nothing pending.
            let mut t = SeqTracker::with_in_flight(MIN_SLOTS);
            t.sent(1, n);
            let mut order: Vec<u64> = (1..=n).collect();
            let mut x = seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut firsts = 0;
            for (k, &s) in order.iter().enumerate() {
                prop_assert_eq!(t.mark(s, s), Mark::First);
                firsts += 1;
                if k as u64 % dup_every == 0 {
                    prop_assert_eq!(t.mark(s, s), Mark::Repeat);
                }
            }
            prop_assert_eq!(firsts, n);
            prop_assert_eq!(t.pending(), 0);
            prop_assert!(t.slots() <= (n as usize).next_power_of_two().max(MIN_SLOTS));
        }
    }

    #[test]
    fn memory_follows_the_window_not_the_messages() {
        // Ten million messages, at most 100 in flight: the ring never grows.
        let mut t = SeqTracker::with_in_flight(128);
        let mut next = 1u64;
        let mut oldest = 1u64;
        while next < 10_000_000 {
            t.sent(next, 10);
            next += 10;
            while next - oldest > 100 {
                assert_eq!(t.mark(oldest, oldest), Mark::First);
                oldest += 1;
            }
        }
        assert_eq!(t.slots(), 128);
        assert_eq!(t.pending(), next - oldest);
    }

    #[test]
    fn the_ring_doubles_when_the_window_does_and_a_lost_message_stays_countable() {
        let mut t = SeqTracker::with_in_flight(64);
        t.sent(1, 200); // 200 in flight: the ring grows to 256
        assert_eq!(t.slots(), 256);
        for s in 2..=200 {
            assert_eq!(t.mark(s, s), Mark::First);
        }
        // Message 1 is never answered while MAX_SLOTS more are sent: it
        // leaves the ring for the side set and is still pending.
        let mut next = 201;
        while next < 201 + 2 * MAX_SLOTS as u64 {
            t.sent(next, 1);
            assert_eq!(t.mark(next, next), Mark::First);
            next += 1;
        }
        assert_eq!(t.slots(), MAX_SLOTS);
        assert_eq!(t.pending(), 1);
        assert!(t.base() > 1);
        assert_eq!(t.mark(1, 1), Mark::First, "a very late first answer");
        assert_eq!(t.mark(1, 1), Mark::Repeat);
        assert_eq!(t.pending(), 0);
        assert_eq!(t.mark(next, 1), Mark::NeverSent);
        assert_eq!(t.mark(0, 1), Mark::NeverSent);
    }

    #[test]
    fn the_full_history_catches_a_late_second_sequencing() {
        let mut t = SeqTracker::with_in_flight(64);
        t.keep_full_history();
        t.sent(1, 10_000);
        for s in 1..=10_000 {
            assert_eq!(t.mark(s, s + 100), Mark::First);
        }
        t.sent(10_001, 10_000);
        assert_eq!(t.base(), 1, "nothing dropped");
        assert_eq!(t.mark(1, 5), Mark::Resequenced);
        assert_eq!(t.mark(2, 102), Mark::Repeat);
        assert_eq!(t.pending(), 10_000);
        // Without it, the ring stays at the window's size (10,000 were in
        // flight at once) and an answer that old is a repeat.
        let mut t = SeqTracker::with_in_flight(64);
        t.sent(1, 10_000);
        for s in 1..=10_000 {
            assert_eq!(t.mark(s, s + 100), Mark::First);
        }
        assert_eq!(t.slots(), 16_384);
        t.sent(10_001, 10_000);
        assert_eq!(t.slots(), 16_384);
        assert!(t.base() > 1);
        assert_eq!(t.mark(1, 5), Mark::Repeat);
    }

    #[test]
    fn a_skipped_sequence_is_never_sent() {
        let mut t = SeqTracker::default();
        t.sent(10, 2);
        t.sent(15, 1);
        assert_eq!(t.mark(12, 1), Mark::NeverSent);
        assert_eq!(t.mark(9, 1), Mark::NeverSent);
        assert_eq!(t.mark(15, 3), Mark::First);
        assert_eq!(t.mark(15, 4), Mark::Resequenced);
        assert_eq!(t.mark(15, 0), Mark::Repeat);
        assert_eq!(t.pending(), 2);
        // A jump far past the ring: the unanswered message stays pending.
        t.sent(1_000_000, 1);
        assert_eq!(t.slots(), MIN_SLOTS);
        assert_eq!(t.pending(), 3);
        assert_eq!(t.mark(10, 10), Mark::First);
        assert_eq!(t.mark(1_000_000, 5), Mark::First);
        assert_eq!(t.mark(1_000_001, 5), Mark::NeverSent);
        assert_eq!(t.pending(), 1);
    }
}
