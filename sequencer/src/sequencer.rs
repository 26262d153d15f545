//! The sequencer loop: totally orders the gateways' input rings.
//!
//! Each [`Sequencer::poll`] first pushes out any replies held back by a full
//! output ring; while any are held back it takes no new input, which is how
//! back-pressure travels from a slow gateway to the input rings and from
//! there to the sockets. Then it visits every input ring once, round-robin
//! from a rotating start, taking at most `batch_limit` messages from each so
//! no gateway starves another. The clock is read once per poll, input slots
//! are released and output slots published once per ring per poll.

use crate::app::{Application, ReadyLatency, ReplySink, SinkMode};
use crate::slot::{InboundSlot, OutboundSlot, SessionRef};
use peregrine_journal::Sequenced;
use peregrine_journal::{FlushPolicy, JournalWriter};
use peregrine_ring::{Consumer, Producer};
use replicated::ReplicationTap;
use std::collections::VecDeque;

mod replicated;
pub use replicated::{ApplyError, RecordBatch, ReplyRelease};

/// Declares a set of `u64` counters once: the struct (one `pub u64` field
/// per counter, deriving `Default`), `NAMES` (the field names, which the
/// counters file and `peregrine stat` show), `values()` in the same order,
/// and `add()`, which sums another set into this one.
///
/// Why a macro: a counter added to the struct but forgotten in the names,
/// the values or the sum would silently vanish from the counters file or
/// from the totals; listed once, it cannot.
///
/// ```
/// peregrine_sequencer::counter_set! {
///     /// Two counters.
///     pub struct Pair {
///         /// First.
///         a,
///         /// Second.
///         b,
///     }
/// }
/// let mut p = Pair { a: 1, b: 2 };
/// p.add(&Pair { a: 10, b: 20 });
/// assert_eq!((Pair::NAMES, p.values()), (["a", "b"], [11, 22]));
/// ```
#[macro_export]
macro_rules! counter_set {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$field_meta:meta])* $field:ident,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        $vis struct $name {
            $($(#[$field_meta])* pub $field: u64,)+
        }

        impl $name {
            /// Counter names (the field names), in
            #[doc = concat!("[`", stringify!($name), "::values`] order.")]
            pub const NAMES: [&'static str; [$(stringify!($field)),+].len()] = [$(stringify!($field)),+];

            /// Counter values, in
            #[doc = concat!("[`", stringify!($name), "::NAMES`] order.")]
            #[inline]
            pub fn values(&self) -> [u64; [$(stringify!($field)),+].len()] {
                [$(self.$field),+]
            }

            /// Adds every counter of `other` into `self`.
            #[inline]
            pub fn add(&mut self, other: &$name) {
                $(self.$field += other.$field;)+
            }
        }
    };
}

counter_set! {
    /// Counters owned by the sequencer thread.
    pub struct SequencerCounters {
        /// Messages sequenced (= last global sequence number assigned).
        sequenced,
        /// Replies produced by the application.
        replies,
        /// Replies that found their output ring full and waited in overflow.
        replies_overflowed,
        /// Replies addressed to a gateway that does not exist (dropped).
        replies_misrouted,
        /// Polls that took no input because replies were held back.
        backpressure_polls,
        /// Records appended to the journal.
        journaled,
        /// Journal flushes (durable mode: one per poll that sequenced anything).
        journal_flushes,
        /// Journal write or flush failures (the sequencer stops at the first).
        journal_errors,
        /// Cluster: messages applied from the replicated log that another
        /// node (or an earlier term) sequenced.
        replicated_applied,
        /// Cluster: replies released to the gateways once their log entry
        /// committed.
        replies_released,
    }
}

/// When replies may leave relative to the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalMode {
    /// Replies leave as soon as messages are sequenced; the record is in
    /// the mapped journal (so it survives a process crash) and the OS writes
    /// it back behind.
    Async,
    /// A reply leaves only after its record is flushed with this policy:
    /// one flush per poll (group commit) before the poll's replies are
    /// published.
    Durable(FlushPolicy),
}

/// A journal attached to the sequencer.
pub struct AttachedJournal {
    /// The writer, positioned at the sequencer's next sequence number.
    pub writer: JournalWriter,
    /// Async or durable.
    pub mode: JournalMode,
}

/// Replies each gateway's overflow queue holds without growing: at least
/// this many, however small its output ring, so that a poll whose replies
/// outrun a small ring (a matching engine's sweep reports every fill
/// twice) does not allocate. Reserved address space (8 MiB per gateway),
/// touched only when used, unless the server locks its memory, which
/// faults it in at start.
pub const MIN_OVERFLOW_REPLIES: usize = 1 << 16;

/// The single thread that assigns global sequence numbers.
pub struct Sequencer<A> {
    inputs: Vec<Consumer<InboundSlot>>,
    outputs: Vec<Producer<OutboundSlot>>,
    overflow: Vec<VecDeque<OutboundSlot>>,
    app: A,
    next_seq: u64,
    batch_limit: usize,
    next_input: usize,
    counters: SequencerCounters,
    journal: Option<AttachedJournal>,
    replication: Option<ReplicationTap>,
    failed: Option<String>,
    ready_latency: ReadyLatency,
    record_latency: bool,
}

impl<A: Application> Sequencer<A> {
    /// A sequencer over gateway ring pairs: `rings[g]` is gateway `g`'s
    /// (input consumer, output producer). `first_seq` is the first global
    /// sequence number to assign (1 on a fresh start). `batch_limit` bounds
    /// how many messages are taken from one ring per poll.
    pub fn new(
        rings: Vec<(Consumer<InboundSlot>, Producer<OutboundSlot>)>,
        app: A,
        first_seq: u64,
        batch_limit: usize,
    ) -> Self {
        let n = rings.len();
        let mut inputs = Vec::with_capacity(n);
        let mut outputs = Vec::with_capacity(n);
        let mut overflow = Vec::with_capacity(n);
        for (i, o) in rings {
            overflow.push(VecDeque::with_capacity(o.capacity().max(MIN_OVERFLOW_REPLIES)));
            inputs.push(i);
            outputs.push(o);
        }
        Sequencer {
            inputs,
            outputs,
            overflow,
            app,
            next_seq: first_seq.max(1),
            batch_limit: batch_limit.max(1),
            next_input: 0,
            counters: SequencerCounters::default(),
            journal: None,
            replication: None,
            failed: None,
            ready_latency: ReadyLatency::new(),
            record_latency: true,
        }
    }

    /// Turns recording of [`ready_latency`](Self::ready_latency) on (the
    /// default) or off. Off, a poll takes no clock reading after publishing
    /// and records nothing, so the histogram stays empty.
    pub fn with_latency_recording(mut self, on: bool) -> Self {
        self.record_latency = on;
        self
    }

    /// Journals every sequenced message before the application sees it.
    /// The writer's next sequence must equal the sequencer's.
    pub fn with_journal(mut self, journal: AttachedJournal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Why the sequencer stopped (a journal failure), if it did. A stopped
    /// sequencer takes no more input, so nothing unjournaled is ever acked.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The journal writer, if one is attached.
    pub fn journal(&self) -> Option<&JournalWriter> {
        self.journal.as_ref().map(|j| &j.writer)
    }

    /// Highest global sequence whose journal record is as firm as its
    /// reply: durable under [`JournalMode::Durable`], written (in the
    /// mapped journal, surviving a process crash) under
    /// [`JournalMode::Async`]; 0 without a journal. A reader of the journal
    /// (the sequenced feed) may publish records up to here and never has to
    /// take one back.
    pub fn publishable_seq(&self) -> u64 {
        self.journal.as_ref().map_or(0, |j| match j.mode {
            JournalMode::Async => j.writer.written_seq(),
            JournalMode::Durable(_) => j.writer.durable_seq(),
        })
    }

    /// The next global sequence number to be assigned.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The application, mutably (for inspection between polls).
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// Consumes the sequencer, returning its application.
    pub fn into_app(self) -> A {
        self.app
    }

    /// Counters so far.
    pub fn counters(&self) -> SequencerCounters {
        self.counters
    }

    /// Time from sequencing to a reply being visible to its gateway, for
    /// the replies [`poll`](Self::poll) sends directly (a cluster leader's
    /// replies held for commit are not measured).
    pub fn ready_latency(&self) -> &ReadyLatency {
        &self.ready_latency
    }

    /// Replies waiting for room in output rings.
    pub fn held_back(&self) -> usize {
        self.overflow.iter().map(VecDeque::len).sum()
    }

    /// Moves replies (or session-state notices) held back by full output
    /// rings into their rings; true when none remain. [`poll`](Self::poll)
    /// does this first; a cluster follower, which does not poll for input,
    /// calls it on every loop instead.
    pub fn flush_overflow(&mut self) -> bool {
        let mut clear = true;
        for (over, out) in self.overflow.iter_mut().zip(self.outputs.iter_mut()) {
            while let Some(slot) = over.front() {
                if !out.stage(*slot) {
                    break;
                }
                over.pop_front();
            }
            out.publish();
            clear &= over.is_empty();
        }
        clear
    }

    /// One round: flush held-back replies, then sequence up to
    /// `batch_limit` messages from every input ring. Returns the number of
    /// messages sequenced (0 = idle or back-pressured).
    pub fn poll(&mut self) -> usize {
        if self.failed.is_some() {
            return 0;
        }
        if !self.flush_overflow() || self.replication.as_ref().is_some_and(ReplicationTap::is_full) {
            self.counters.backpressure_polls += 1;
            return 0;
        }
        let n = self.inputs.len();
        if n == 0 {
            return 0;
        }
        let mut now = 0u64;
        let mut work = 0usize;
        let (mut batch, mode) = match self.replication.as_mut() {
            Some(r) => {
                let (batch, mode) = r.sequencing();
                (Some(batch), mode)
            }
            None => (None, SinkMode::Send),
        };
        let mut sink = ReplySink::new(&mut self.outputs, &mut self.overflow, mode);
        for k in 0..n {
            let i = (self.next_input + k) % n;
            let input = &mut self.inputs[i];
            let avail = input.available().min(self.batch_limit);
            if avail == 0 {
                continue;
            }
            if now == 0 {
                now = peregrine_netio::clock::now_ns();
            }
            let mut done = 0usize;
            let ahead = self.app.prefetch_distance();
            for j in 0..ahead.min(avail) {
                if let Some(slot) = input.peek(j) {
                    self.app.prefetch(&slot.msg, slot.origin);
                }
            }
            // The slots as (at most) two contiguous runs, before and after
            // the ring's wrap: no index check or wrap per message.
            let (first, second) = input.readable();
            'runs: for run in [first, second] {
                for slot in &run[..run.len().min(avail - done)] {
                    if ahead > 0 && done + ahead < avail {
                        if let Some(next) = input.peek(done + ahead) {
                            self.app.prefetch(&next.msg, next.origin);
                        }
                    }
                    let m = Sequenced {
                        global_seq: self.next_seq,
                        origin: slot.origin,
                        client_seq: slot.client_seq,
                        gateway_rx_ns: slot.gateway_rx_ns,
                        sequencer_ns: now,
                        msg: &slot.msg,
                    };
                    if let Some(jr) = self.journal.as_mut() {
                        if let Err(e) = jr.writer.append_sequenced(&m) {
                            // Stop before the application (and any reply) sees
                            // a message the journal does not hold; the message
                            // stays in its ring, unacknowledged.
                            self.counters.journal_errors += 1;
                            self.failed = Some(format!("journal append of sequence {}: {e}", m.global_seq));
                            break 'runs;
                        }
                        self.counters.journaled += 1;
                    }
                    if let Some(b) = batch.as_mut() {
                        b.push(&m);
                    }
                    self.next_seq += 1;
                    sink.current_rx_ns = m.gateway_rx_ns;
                    self.app.on_message(&m, &mut sink);
                    done += 1;
                }
            }
            input.advance(done);
            input.release();
            work += done;
            if sink.overflowed > 0 || self.failed.is_some() {
                // Output is backing up: take no more input this round.
                break;
            }
        }
        if work > 0 {
            if let Some(AttachedJournal {
                writer,
                mode: JournalMode::Durable(policy),
            }) = self.journal.as_mut()
            {
                // Group commit: one flush for everything this poll
                // sequenced, before any of its replies becomes visible.
                if let Err(e) = writer.flush(*policy) {
                    self.counters.journal_errors += 1;
                    self.failed = Some(format!("journal flush: {e}"));
                    // Replies stay staged and unpublished: never sent.
                    self.counters.sequenced += work as u64;
                    return 0;
                }
                self.counters.journal_flushes += 1;
            }
        }
        for out in sink.outputs.iter_mut() {
            out.publish();
        }
        let ready = sink.sent.saturating_sub(sink.misrouted);
        if self.record_latency && ready > 0 && matches!(sink.mode, SinkMode::Send) {
            // One clock reading per poll: every reply of the poll shares
            // its sequencing time `now`.
            let ready_ns = peregrine_netio::clock::now_ns();
            self.ready_latency.record_n(ready_ns.saturating_sub(now), ready);
        }
        self.counters.sequenced += work as u64;
        self.counters.replies += sink.sent;
        self.counters.replies_overflowed += sink.overflowed;
        self.counters.replies_misrouted += sink.misrouted;
        self.next_input = (self.next_input + 1) % n;
        work
    }
}

/// Feeds journaled records to `app` in sequence order, as the sequencer
/// did before a restart, so a deterministic application rebuilds the same
/// state. Replies are discarded: they went out before the restart. Returns
/// the number of records replayed.
pub fn replay_journal<A: Application>(
    app: &mut A,
    records: impl Iterator<Item = peregrine_journal::SequencedRecord>,
) -> u64 {
    replay_journal_with(app, records, |_| {}, |_, _| {})
}

/// As [`replay_journal`], showing each record to `on_record` before the
/// application sees it and each reply the application produces to
/// `on_reply`, in the order they were produced before the restart (so the
/// gateways can rebuild sessions' expected client sequences, reply
/// sequences and reply logs).
pub fn replay_journal_with<A: Application>(
    app: &mut A,
    records: impl Iterator<Item = peregrine_journal::SequencedRecord>,
    mut on_record: impl FnMut(&peregrine_journal::SequencedRecord),
    mut on_reply: impl FnMut(SessionRef, &[u8; peregrine_wire::message::MESSAGE_LEN]),
) -> u64 {
    let mut outputs: [Producer<OutboundSlot>; 0] = [];
    let mut overflow: [VecDeque<OutboundSlot>; 0] = [];
    let mut sink = ReplySink::new(&mut outputs, &mut overflow, SinkMode::Replay(&mut on_reply));
    let mut n = 0;
    for r in records {
        on_record(&r);
        app.on_message(&r.as_sequenced(), &mut sink);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::EchoApp;
    use peregrine_ring::ring;
    use peregrine_wire::message::{Ack, Echo, MessageType, MESSAGE_LEN};
    use zerocopy::little_endian::U64;
    use zerocopy::{FromBytes, IntoBytes};

    type Rings = (
        Vec<Producer<InboundSlot>>,
        Vec<Consumer<OutboundSlot>>,
        Sequencer<EchoApp>,
    );

    fn setup(gateways: usize, in_cap: usize, out_cap: usize, batch: usize) -> Rings {
        let mut ins = Vec::new();
        let mut outs = Vec::new();
        let mut pairs = Vec::new();
        for _ in 0..gateways {
            let (ip, ic) = ring::<InboundSlot>(in_cap).unwrap();
            let (op, oc) = ring::<OutboundSlot>(out_cap).unwrap();
            ins.push(ip);
            outs.push(oc);
            pairs.push((ic, op));
        }
        (ins, outs, Sequencer::new(pairs, EchoApp::new(), 1, batch))
    }

    fn echo_slot(g: u16, session: u32, client_seq: u64) -> InboundSlot {
        let mut s = InboundSlot::default();
        s.msg
            .copy_from_slice(Echo::new(client_seq * 10, client_seq).as_bytes());
        s.origin = SessionRef::new(g, session);
        s.client_seq = client_seq;
        s
    }

    #[test]
    fn gap_free_across_gateways_and_replies_routed_home() {
        let (mut ins, mut outs, mut seq) = setup(2, 64, 64, 4);
        for c in 1..=10 {
            assert!(ins[0].stage(echo_slot(0, 3, c)));
            assert!(ins[1].stage(echo_slot(1, 5, c)));
        }
        ins[0].publish();
        ins[1].publish();
        while seq.poll() > 0 {}
        let mut globals = Vec::new();
        for (g, out) in outs.iter_mut().enumerate() {
            let mut expect_client = 1;
            while let Some(r) = out.pop() {
                assert_eq!(r.to.gateway as usize, g);
                let ack = Ack::read_from_bytes(&r.msg).unwrap();
                assert_eq!(ack.client_seq.get(), expect_client, "per-session order kept");
                assert_eq!(ack.client_ts_ns.get(), expect_client * 10);
                expect_client += 1;
                globals.push(ack.global_seq.get());
            }
            assert_eq!(expect_client, 11);
        }
        globals.sort();
        assert_eq!(globals, (1..=20).collect::<Vec<_>>());
        // Round-robin with batch 4: the first 8 sequence numbers alternate
        // gateways in blocks of 4.
        assert_eq!(seq.counters().sequenced, 20);
    }

    #[test]
    fn sequencing_across_the_input_rings_wrap_keeps_order_and_the_batch_limit() {
        // An 8-slot input ring filled in waves of every free slot and a
        // batch limit of 5: polls start at every offset, and many bursts
        // straddle the wrap.
        let (mut ins, mut outs, mut seq) = setup(1, 8, 256, 5);
        let (mut staged, mut acked) = (0u64, Vec::new());
        while acked.len() < 200 {
            while staged < 200 && ins[0].stage(echo_slot(0, 2, staged + 1)) {
                staged += 1;
            }
            ins[0].publish();
            let n = seq.poll();
            assert!((1..=5).contains(&n), "a poll sequences 1 to 5 messages, not {n}");
            while let Some(r) = outs[0].pop() {
                let ack = Ack::read_from_bytes(&r.msg).unwrap();
                acked.push((ack.global_seq.get(), ack.client_seq.get()));
            }
        }
        let expect: Vec<(u64, u64)> = (1..=200).map(|c| (c, c)).collect();
        assert_eq!(acked, expect);
    }

    /// Records, in order, which messages (by client sequence) were shown to
    /// `prefetch` and which were handled.
    #[derive(Default)]
    struct PrefetchLog {
        events: std::cell::RefCell<Vec<(char, u64)>>,
    }

    impl Application for PrefetchLog {
        fn prefetch_distance(&self) -> usize {
            3
        }

        fn on_message(&mut self, m: &Sequenced<'_>, _out: &mut ReplySink<'_>) {
            self.events.get_mut().push(('H', m.client_seq));
        }

        fn prefetch(&self, msg: &[u8; MESSAGE_LEN], _origin: SessionRef) {
            let e = Echo::read_from_bytes(msg).unwrap();
            self.events.borrow_mut().push(('P', e.client_tag.get()));
        }
    }

    /// The events a burst of `first..=last` should produce with distance 3:
    /// the first three shown, then each message handled after the one three
    /// places on is shown, never past the burst.
    fn burst_events(first: u64, last: u64) -> Vec<(char, u64)> {
        let mut v: Vec<(char, u64)> = (first..=last.min(first + 2)).map(|c| ('P', c)).collect();
        for c in first..=last {
            if c + 3 <= last {
                v.push(('P', c + 3));
            }
            v.push(('H', c));
        }
        v
    }

    #[test]
    fn the_application_sees_each_message_prefetched_ahead_within_its_burst() {
        for (batch, bursts) in [(16, vec![(1, 10)]), (4, vec![(1, 4), (5, 8), (9, 10)])] {
            let (ic, mut ip) = {
                let (ip, ic) = ring::<InboundSlot>(64).unwrap();
                (ic, ip)
            };
            let (op, _oc) = ring::<OutboundSlot>(64).unwrap();
            let mut seq = Sequencer::new(vec![(ic, op)], PrefetchLog::default(), 1, batch);
            for c in 1..=10 {
                assert!(ip.stage(echo_slot(0, 1, c)));
            }
            ip.publish();
            while seq.poll() > 0 {}
            let want: Vec<(char, u64)> = bursts.iter().flat_map(|&(a, b)| burst_events(a, b)).collect();
            assert_eq!(*seq.app.events.borrow(), want, "batch limit {batch}");
        }
    }

    #[test]
    fn an_ack_is_whole_whatever_its_ring_slot_held_before() {
        let (to_seq, from_gw) = ring::<InboundSlot>(8).unwrap();
        let (mut op, mut oc) = ring::<OutboundSlot>(4).unwrap();
        // Every output slot holds garbage (written and read back) before
        // the acks are built over it.
        for _ in 0..4 {
            assert!(op.stage(OutboundSlot::reply(SessionRef::new(0, 9), &[0xEE; MESSAGE_LEN])));
        }
        op.publish();
        while oc.pop().is_some() {}
        let mut seq = Sequencer::new(vec![(from_gw, op)], EchoApp::new(), 1, 4);
        let (mut ins, mut outs) = (vec![to_seq], vec![oc]);
        for c in 1..=6u64 {
            let mut s = echo_slot(0, 2, c);
            s.gateway_rx_ns = 77;
            assert!(ins[0].stage(s));
        }
        ins[0].publish();
        let mut got = Vec::new();
        while got.len() < 6 {
            seq.poll();
            while let Some(r) = outs[0].pop() {
                got.push(r.msg);
            }
        }
        for (k, msg) in got.iter().enumerate() {
            let c = k as u64 + 1;
            let mut want = Ack::empty();
            want.acked_type = MessageType::Echo as u8;
            want.global_seq = U64::new(c);
            want.client_seq = U64::new(c);
            want.client_ts_ns = U64::new(c * 10);
            want.gateway_rx_ns = U64::new(77);
            want.sequencer_ns = Ack::read_from_bytes(msg).unwrap().sequencer_ns;
            want.client_tag = U64::new(c);
            assert_eq!(msg, want.as_bytes(), "ack {c}");
        }
    }

    #[test]
    fn replies_carry_the_receive_timestamp_of_the_message_they_answer() {
        let (mut ins, mut outs, mut seq) = setup(1, 64, 64, 16);
        for c in 1..=5u64 {
            let mut s = echo_slot(0, 1, c);
            s.gateway_rx_ns = 1_000 + c;
            assert!(ins[0].stage(s));
        }
        ins[0].publish();
        while seq.poll() > 0 {}
        let mut got = Vec::new();
        while let Some(r) = outs[0].pop() {
            got.push((Ack::read_from_bytes(&r.msg).unwrap().client_seq.get(), r.rx_ns));
        }
        assert_eq!(got, (1..=5u64).map(|c| (c, 1_000 + c)).collect::<Vec<_>>());
    }

    #[test]
    fn each_reply_sent_is_one_readiness_sample() {
        let (mut ins, mut outs, mut seq) = setup(1, 64, 64, 16);
        for c in 1..=7u64 {
            assert!(ins[0].stage(echo_slot(0, 1, c)));
        }
        ins[0].publish();
        while seq.poll() > 0 {}
        assert_eq!(std::iter::from_fn(|| outs[0].pop()).count(), 7);
        let h = seq.ready_latency().histogram();
        assert_eq!(h.len(), 7);
        assert!(h.max() < 1_000_000_000 && h.min() >= 1);
    }

    #[test]
    fn with_recording_off_replies_flow_and_nothing_is_recorded() {
        let (mut ins, mut outs, seq) = setup(1, 64, 64, 16);
        let mut seq = seq.with_latency_recording(false);
        for c in 1..=7u64 {
            assert!(ins[0].stage(echo_slot(0, 1, c)));
        }
        ins[0].publish();
        while seq.poll() > 0 {}
        assert_eq!(std::iter::from_fn(|| outs[0].pop()).count(), 7);
        assert_eq!(seq.counters().replies, 7);
        assert_eq!(seq.ready_latency().histogram().len(), 0);
    }

    fn journal_in(name: &str) -> (std::path::PathBuf, peregrine_journal::JournalWriter) {
        let dir = std::env::temp_dir().join(format!("peregrine-seq-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let w = peregrine_journal::Journal::open(&dir)
            .unwrap()
            .into_writer(peregrine_journal::WriterConfig {
                segment_size: 1 << 16,
                ..Default::default()
            })
            .unwrap();
        (dir, w)
    }

    #[test]
    fn durable_journal_holds_every_acked_message() {
        let (dir, writer) = journal_in("durable");
        let (mut ins, mut outs, seq) = setup(1, 64, 64, 16);
        let mut seq = seq.with_journal(AttachedJournal {
            writer,
            mode: JournalMode::Durable(peregrine_journal::FlushPolicy::Msync),
        });
        for c in 1..=40 {
            assert!(ins[0].stage(echo_slot(0, 2, c)));
        }
        ins[0].publish();
        while seq.poll() > 0 {}
        let mut acked = 0;
        while let Some(r) = outs[0].pop() {
            let g = Ack::read_from_bytes(&r.msg).unwrap().global_seq.get();
            assert!(
                g <= seq.journal().unwrap().durable_seq(),
                "ack {g} left before its record was durable"
            );
            acked += 1;
        }
        assert_eq!(acked, 40);
        assert_eq!(seq.counters().journaled, 40);
        drop(seq);
        let rec = peregrine_journal::Journal::open_read_only(&dir).unwrap();
        let clients: Vec<u64> = rec.records().map(|r| r.client_seq).collect();
        assert_eq!(clients, (1..=40).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn publishable_sequence_follows_what_the_journal_holds_per_mode() {
        let (_, _, plain) = setup(1, 64, 64, 16);
        assert_eq!(plain.publishable_seq(), 0, "no journal: nothing to publish from");
        for (name, mode) in [
            ("pub-async", JournalMode::Async),
            (
                "pub-durable",
                JournalMode::Durable(peregrine_journal::FlushPolicy::Msync),
            ),
        ] {
            let (dir, writer) = journal_in(name);
            let (mut ins, _outs, seq) = setup(1, 64, 64, 16);
            let mut seq = seq.with_journal(AttachedJournal { writer, mode });
            assert_eq!(seq.publishable_seq(), 0);
            for c in 1..=10 {
                assert!(ins[0].stage(echo_slot(0, 1, c)));
            }
            ins[0].publish();
            while seq.poll() > 0 {}
            let j = seq.journal().unwrap();
            let expected = match mode {
                JournalMode::Async => j.written_seq(),
                JournalMode::Durable(_) => j.durable_seq(),
            };
            assert_eq!(expected, 10, "{name}: every record journaled");
            assert_eq!(seq.publishable_seq(), 10, "{name}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn journal_failure_stops_sequencing_and_acks_nothing() {
        let (dir, writer) = journal_in("fail");
        // The writer expects sequence 1; a sequencer starting at 5 makes the
        // first append fail (non-consecutive), as a failing disk would.
        let mut ins = Vec::new();
        let (mut ip, mut ic) = ring::<InboundSlot>(4).unwrap();
        // Three slots used and freed before the sequencer takes the ring,
        // so the three messages below straddle its wrap (one slot before,
        // two after): the failure must stop the run after the wrap too.
        for c in 1..=3 {
            assert!(ip.stage(echo_slot(0, 0, c)));
        }
        ip.publish();
        assert_eq!(ic.available(), 3);
        ic.advance(3);
        ic.release();
        let (op, mut oc) = ring::<OutboundSlot>(64).unwrap();
        ins.push(ip);
        let mut seq = Sequencer::new(vec![(ic, op)], EchoApp::new(), 5, 16).with_journal(AttachedJournal {
            writer,
            mode: JournalMode::Async,
        });
        for c in 1..=3 {
            assert!(ins[0].stage(echo_slot(0, 0, c)));
        }
        ins[0].publish();
        assert_eq!(seq.poll(), 0);
        assert!(seq.failed().is_some());
        assert_eq!(seq.poll(), 0, "stays stopped");
        assert!(oc.pop().is_none(), "nothing acknowledged");
        assert_eq!(seq.counters().journal_errors, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn full_output_ring_backpressures_without_loss() {
        let (mut ins, mut outs, mut seq) = setup(1, 64, 4, 16);
        for c in 1..=40 {
            assert!(ins[0].stage(echo_slot(0, 0, c)));
        }
        ins[0].publish();
        let mut received = Vec::new();
        let mut rounds = 0;
        while received.len() < 40 {
            seq.poll();
            if rounds % 3 == 0 {
                // Drain slowly: one reply per few polls.
                if let Some(r) = outs[0].pop() {
                    received.push(Ack::read_from_bytes(&r.msg).unwrap().global_seq.get());
                }
            }
            rounds += 1;
            assert!(rounds < 100_000);
        }
        assert_eq!(received, (1..=40).collect::<Vec<_>>());
        assert!(seq.counters().backpressure_polls > 0);
        assert!(seq.held_back() == 0);
    }
}
