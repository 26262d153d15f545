//! The messages of one session kept for retransmission, and the decisions
//! of what to resend.
//!
//! The server answers a session's messages strictly in order and holds
//! those that arrive ahead of a gap, so an unanswered message behind the
//! oldest one is most likely held, not lost: resending it would only add
//! load. Resent are the message the server reports missing (a SequenceGap
//! reject), and the oldest unanswered one when the retransmission timer
//! runs out (a lost report, a lost resend or a lost reply). Each comes with
//! the unanswered messages that were sent in its datagram: they were most
//! likely lost with it.

use peregrine_wire::message::MESSAGE_LEN;
use std::collections::VecDeque;

/// A message kept until it is answered.
#[derive(Clone, Copy, Debug)]
struct Kept {
    seq: u64,
    msg: [u8; MESSAGE_LEN],
    /// When it was last sent, ns; messages sent in one datagram share it.
    sent_ns: u64,
    /// Sent more than once.
    resent: bool,
    answered: bool,
}

/// One session's unanswered messages, oldest first (consecutive client
/// sequence numbers), and the one the server reported missing. The queue
/// holds at most the flow-control limit the owner enforces; its storage
/// grows to that once and is reused.
#[derive(Clone, Debug, Default)]
pub struct ResendQueue {
    kept: VecDeque<Kept>,
    missing: Option<u64>,
}

impl ResendQueue {
    /// An empty queue with room for `capacity` messages.
    pub fn with_capacity(capacity: usize) -> ResendQueue {
        ResendQueue {
            kept: VecDeque::with_capacity(capacity),
            missing: None,
        }
    }

    /// Messages sent and not answered (or answered out of order behind an
    /// unanswered one).
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// The client sequence of the oldest message kept.
    pub fn first_seq(&self) -> Option<u64> {
        self.kept.front().map(|o| o.seq)
    }

    /// True when every message sent has been answered.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Keeps message `seq` (the next after the last kept), sent at
    /// `sent_ns` (pass the same time for the messages of one datagram).
    pub fn keep(&mut self, seq: u64, msg: &[u8; MESSAGE_LEN], sent_ns: u64) {
        self.kept.push_back(Kept {
            seq,
            msg: *msg,
            sent_ns,
            resent: false,
            answered: false,
        });
    }

    /// The server reports message `seq` missing: resend it at the next
    /// [`ResendQueue::take_missing`].
    pub fn report_missing(&mut self, seq: u64) {
        self.missing = Some(seq);
    }

    /// The message reported missing, if any, forgetting the report.
    pub fn take_missing(&mut self) -> Option<u64> {
        self.missing.take()
    }

    /// Marks message `seq` answered and forgets the answered prefix; true
    /// when the oldest unanswered message changed (progress: the caller
    /// resets its timer).
    pub fn answered(&mut self, seq: u64) -> bool {
        let Some(front) = self.kept.front().map(|o| o.seq) else {
            return false;
        };
        if seq < front {
            return false;
        }
        if let Some(o) = self.kept.get_mut((seq - front) as usize) {
            o.answered = true;
        }
        let mut advanced = false;
        while self.kept.front().is_some_and(|o| o.answered) {
            self.kept.pop_front();
            advanced = true;
        }
        advanced
    }

    /// The oldest unanswered message if it has waited `rto_ns` or longer by
    /// `now_ns`: its sequence, and whether it had been resent already (a
    /// second timeout: the caller backs its timer off).
    pub fn timed_out(&self, now_ns: u64, rto_ns: u64) -> Option<(u64, bool)> {
        let front = self.kept.front()?;
        (now_ns.saturating_sub(front.sent_ns) >= rto_ns).then_some((front.seq, front.resent))
    }

    /// Resends message `seq`, if it is still unanswered, with the
    /// unanswered messages after it that were sent in the same datagram:
    /// hands each to `push` (which returns false when its packet is full)
    /// and marks them sent at `now_ns`. Returns how many were pushed.
    pub fn resend_run(
        &mut self,
        seq: u64,
        now_ns: u64,
        mut push: impl FnMut(&[u8; MESSAGE_LEN]) -> bool,
    ) -> usize {
        let Some(front) = self.kept.front().map(|o| o.seq) else {
            return 0;
        };
        let Some(at) = seq.checked_sub(front).map(|i| i as usize) else {
            return 0;
        };
        let Some(first) = self.kept.get(at).filter(|o| !o.answered) else {
            return 0;
        };
        let batch_ns = first.sent_ns;
        let mut n = 0;
        while let Some(o) = self.kept.get_mut(at + n) {
            let same_datagram = n == 0 || (o.sent_ns == batch_ns && !o.answered);
            if !same_datagram || !push(&o.msg) {
                break;
            }
            o.sent_ns = now_ns;
            o.resent = true;
            n += 1;
        }
        n
    }

    /// Resends the kept messages from `seq` on, in order, whatever
    /// datagrams they travelled in (a resume on a new node: none of them
    /// was sequenced there): hands each to `push` until it returns false
    /// (its packet is full) and marks them sent at `now_ns`. Returns how
    /// many were pushed; 0 when `seq` is not kept.
    pub fn resend_span(
        &mut self,
        seq: u64,
        now_ns: u64,
        mut push: impl FnMut(&[u8; MESSAGE_LEN]) -> bool,
    ) -> usize {
        let Some(front) = self.kept.front().map(|o| o.seq) else {
            return 0;
        };
        let Some(at) = seq.checked_sub(front).map(|i| i as usize) else {
            return 0;
        };
        let mut n = 0;
        while let Some(o) = self.kept.get_mut(at + n) {
            if !push(&o.msg) {
                break;
            }
            o.sent_ns = now_ns;
            o.resent = true;
            n += 1;
        }
        n
    }

    /// True when message `seq` is kept and unanswered.
    pub fn is_unanswered(&self, seq: u64) -> bool {
        let Some(front) = self.kept.front().map(|o| o.seq) else {
            return false;
        };
        seq.checked_sub(front)
            .and_then(|i| self.kept.get(i as usize))
            .is_some_and(|o| !o.answered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: u8) -> [u8; MESSAGE_LEN] {
        [i; MESSAGE_LEN]
    }

    #[test]
    fn a_resend_takes_the_unanswered_rest_of_its_datagram_only() {
        let mut q = ResendQueue::default();
        for s in 1..=3 {
            q.keep(s, &msg(s as u8), 100); // one datagram
        }
        for s in 4..=5 {
            q.keep(s, &msg(s as u8), 200); // the next
        }
        q.answered(3);
        let mut out = Vec::new();
        let n = q.resend_run(1, 300, |m| {
            out.push(m[0]);
            true
        });
        assert_eq!((n, out), (2, vec![1, 2]), "3 was answered, 4 travelled apart");
        // 4 alone, and a full packet stops the run.
        let mut out = Vec::new();
        assert_eq!(
            q.resend_run(4, 300, |m| {
                out.push(m[0]);
                false
            }),
            0
        );
        assert_eq!(q.resend_run(9, 300, |_| true), 0, "not kept");
    }

    #[test]
    fn only_the_oldest_times_out_and_answers_advance_the_queue() {
        let mut q = ResendQueue::default();
        q.keep(1, &msg(1), 0);
        q.keep(2, &msg(2), 10);
        assert_eq!(q.timed_out(4, 5), None);
        assert_eq!(q.timed_out(5, 5), Some((1, false)));
        q.resend_run(1, 5, |_| true);
        assert_eq!(q.timed_out(10, 5), Some((1, true)), "a second timeout");
        assert!(!q.answered(2), "answered out of order: the oldest is still 1");
        assert!(q.is_unanswered(1) && !q.is_unanswered(2));
        assert!(q.answered(1));
        assert!(q.is_empty(), "2 was answered before");
        q.report_missing(7);
        assert_eq!((q.take_missing(), q.take_missing()), (Some(7), None));
    }

    #[test]
    fn a_span_resend_crosses_datagrams_until_the_packet_is_full() {
        let mut q = ResendQueue::default();
        for s in 1..=5 {
            q.keep(s, &msg(s as u8), s * 10); // one datagram each
        }
        let mut out = Vec::new();
        let n = q.resend_span(2, 99, |m| {
            out.push(m[0]);
            out.len() < 3
        });
        assert_eq!((n, out), (2, vec![2, 3, 4]), "the third did not fit");
        assert_eq!(q.timed_out(99, 1000), None, "the oldest was not resent");
        assert_eq!(q.resend_span(0, 99, |_| true), 0, "below the queue");
        assert_eq!(q.resend_span(9, 99, |_| true), 0, "not kept");
    }
}
