//! Records round trips and tracks which messages were answered.
//!
//! Everything the receive loop touches per reply is allocated (and its
//! pages faulted in) when the recorder is made: the histogram has fixed
//! bounds and is cleared once up front, the answer trackers are rings
//! sized from the messages expected in flight
//! ([`super::seq_tracker`]). Only the optional `global_seqs` and
//! `answers` lists (tests and crash checks) grow with the run.

use hdrhistogram::Histogram;

pub use super::seq_tracker::{Mark, SeqTracker};

/// What a reply says about the message it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// Ack (or the raw echo of the message in a baseline run).
    Ack,
    /// Reject.
    Reject,
    /// An execution report (Accepted, Fill, ...).
    Report,
}

/// One decoded reply.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    /// Client session index.
    pub session: usize,
    /// Client sequence of the answered message (0: not this session's).
    pub client_seq: u64,
    /// The client timestamp echoed (the intended send time).
    pub client_ts_ns: u64,
    /// Kind.
    pub kind: ReplyKind,
    /// Global sequence number when the reply carries one.
    pub global_seq: u64,
    /// The order id (execution reports, rejects) or the Echo tag (acks).
    pub order_id: u64,
}

/// Answer-tracker slots a recorder's sessions share at least (2 MiB):
/// how far back a second answer is still compared with the first.
pub const HISTORY_SLOTS: usize = 1 << 18;

/// Histogram plus answer accounting.
pub struct Recorder {
    /// Round trips in ns, from the intended send time.
    pub hist: Histogram<u64>,
    /// Messages whose intended send time is before this are warm-up.
    pub warmup_end_ns: u64,
    /// End of the measured window (intended send time).
    pub measure_end_ns: u64,
    /// Distinct messages answered by an Ack or the first report.
    pub answered: u64,
    /// Of which rejects.
    pub rejected: u64,
    /// Answers in the measured window.
    pub answered_in_window: u64,
    /// Acks for a message already acked under another global sequence
    /// number: the message was sequenced twice.
    pub duplicates: u64,
    /// Execution reports received (all).
    pub reports: u64,
    /// Answers naming a client sequence this session never sent (not
    /// counted as answered).
    pub never_sent: u64,
    /// Global sequence numbers seen in acks, when asked to keep them.
    pub global_seqs: Option<Vec<u64>>,
    /// Every first answer, when asked to keep them (crash tests compare
    /// them with the journal).
    pub answers: Option<Vec<Reply>>,
    sessions: Vec<SeqTracker>,
}

impl Recorder {
    /// A recorder for `sessions` sessions, each with up to about
    /// `in_flight` messages unanswered at once (more only grows a
    /// session's tracker, once per doubling). Each session's tracker holds
    /// at least `HISTORY_SLOTS / sessions` messages, so a second answer
    /// that many messages later is still compared with the first.
    pub fn new(sessions: usize, warmup_end_ns: u64, measure_end_ns: u64, in_flight: usize) -> Self {
        let per_session = in_flight.max(HISTORY_SLOTS / sessions.max(1));
        let mut hist = Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("static histogram bounds");
        // The counts are allocated zeroed but not yet touched: clearing
        // writes every counter, so no page fault lands in the timed loop.
        hist.reset();
        Recorder {
            hist,
            warmup_end_ns,
            measure_end_ns,
            answered: 0,
            rejected: 0,
            answered_in_window: 0,
            duplicates: 0,
            reports: 0,
            never_sent: 0,
            global_seqs: None,
            answers: None,
            sessions: (0..sessions)
                .map(|_| SeqTracker::with_in_flight(per_session))
                .collect(),
        }
    }

    /// Records that session `session` sent messages `first..first +
    /// count` (a resend of one already sent changes nothing).
    #[inline]
    pub fn on_sent(&mut self, session: usize, first: u64, count: u64) {
        if let Some(t) = self.sessions.get_mut(session) {
            t.sent(first, count);
        }
    }

    /// Keeps every answer's global sequence for the whole run (the
    /// trackers then grow with the messages sent, as the `answers` and
    /// `global_seqs` lists of a verification run do), so a message
    /// sequenced twice is counted in `duplicates` however late its second
    /// answer comes.
    pub fn keep_full_history(&mut self) {
        for t in &mut self.sessions {
            t.keep_full_history();
        }
    }

    /// Messages sent and not answered yet, all sessions.
    pub fn pending(&self) -> u64 {
        self.sessions.iter().map(SeqTracker::pending).sum()
    }

    /// The largest session answer tracker's ring, slots: what it was
    /// sized for unless more messages than that were in flight at once.
    pub fn tracker_slots(&self) -> usize {
        self.sessions.iter().map(SeqTracker::slots).max().unwrap_or(0)
    }

    /// Accounts one reply received at `now_ns`; true when it answered a
    /// message for the first time.
    #[inline]
    pub fn on_reply(&mut self, r: &Reply, now_ns: u64) -> bool {
        if r.kind == ReplyKind::Report {
            self.reports += 1;
        }
        if r.client_seq == 0 || r.session >= self.sessions.len() {
            return false;
        }
        match self.sessions[r.session].mark(r.client_seq, r.global_seq) {
            Mark::First => {}
            Mark::Repeat => return false,
            Mark::NeverSent => {
                self.never_sent += 1;
                return false;
            }
            Mark::Resequenced => {
                if r.kind == ReplyKind::Ack {
                    self.duplicates += 1;
                }
                return false;
            }
        }
        self.answered += 1;
        if r.kind == ReplyKind::Reject {
            self.rejected += 1;
        }
        if let Some(g) = self.global_seqs.as_mut() {
            if r.global_seq != 0 {
                g.push(r.global_seq);
            }
        }
        if let Some(a) = self.answers.as_mut() {
            a.push(*r);
        }
        if r.client_ts_ns >= self.warmup_end_ns && r.client_ts_ns < self.measure_end_ns {
            self.answered_in_window += 1;
            self.hist
                .saturating_record(now_ns.saturating_sub(r.client_ts_ns).max(1));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_first_answers_and_duplicates() {
        let mut r = Recorder::new(1, 100, 1000, 16);
        r.on_sent(0, 1, 2);
        let ack = |seq, ts| Reply {
            session: 0,
            client_seq: seq,
            client_ts_ns: ts,
            kind: ReplyKind::Ack,
            global_seq: seq,
            order_id: 0,
        };
        assert!(r.on_reply(&ack(1, 50), 60)); // warm-up: answered, not recorded
        assert!(r.on_reply(&ack(2, 200), 260));
        assert!(
            !r.on_reply(&ack(2, 200), 300),
            "same reply again: harmless repeat"
        );
        assert_eq!(r.duplicates, 0);
        let mut again = ack(2, 200);
        again.global_seq = 99;
        assert!(
            !r.on_reply(&again, 310),
            "another global sequence: sequenced twice"
        );
        assert_eq!((r.answered, r.duplicates, r.answered_in_window), (2, 1, 1));
        assert_eq!(r.hist.len(), 1);
        assert_eq!(r.hist.max(), 60);
        assert!(!r.on_reply(&ack(3, 200), 320), "never sent");
        assert_eq!((r.answered, r.never_sent, r.pending()), (2, 1, 0));
    }
}
