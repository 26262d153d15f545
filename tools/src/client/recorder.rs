//! Records round trips and tracks which messages were answered.

use hdrhistogram::Histogram;

/// Which client sequence numbers of one session have been answered.
#[derive(Clone, Debug, Default)]
pub struct SeqTracker {
    /// Global sequence number of each answered client sequence (1 when the
    /// answer carried none, 0 = not answered yet).
    globals: Vec<u64>,
}

/// What an answer means for its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// The first answer.
    First,
    /// Answered before, with the same global sequence: a retransmitted or
    /// duplicated reply, harmless.
    Repeat,
    /// Answered before with a different global sequence: the message was
    /// sequenced twice.
    Resequenced,
}

impl SeqTracker {
    /// Records an answer to `seq` carrying `global` (0: none).
    pub fn mark(&mut self, seq: u64, global: u64) -> Mark {
        let i = seq as usize;
        if i >= self.globals.len() {
            self.globals.resize((i + 1).next_power_of_two(), 0);
        }
        let g = global.max(1);
        match self.globals[i] {
            0 => {
                self.globals[i] = g;
                Mark::First
            }
            old if old == g || g == 1 || old == 1 => Mark::Repeat,
            _ => Mark::Resequenced,
        }
    }
}

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
    /// Global sequence numbers seen in acks, when asked to keep them.
    pub global_seqs: Option<Vec<u64>>,
    /// Every first answer, when asked to keep them (crash tests compare
    /// them with the journal).
    pub answers: Option<Vec<Reply>>,
    sessions: Vec<SeqTracker>,
}

impl Recorder {
    /// A recorder for `sessions` sessions.
    pub fn new(sessions: usize, warmup_end_ns: u64, measure_end_ns: u64) -> Self {
        Recorder {
            hist: Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("static histogram bounds"),
            warmup_end_ns,
            measure_end_ns,
            answered: 0,
            rejected: 0,
            answered_in_window: 0,
            duplicates: 0,
            reports: 0,
            global_seqs: None,
            answers: None,
            sessions: vec![SeqTracker::default(); sessions],
        }
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
        let mut r = Recorder::new(1, 100, 1000);
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
    }
}
