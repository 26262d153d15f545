//! Which replies of a session have arrived, and which to ask for again.
//!
//! Replies carry the session's reply sequence. A gap (a later packet or a
//! heartbeat shows replies that did not arrive) may only be reordering, so
//! it is asked for with a MoldUDP64 retransmission request only after it
//! has lasted [`REREQUEST_AFTER_NS`], and not again within four times that.

use std::collections::BTreeMap;

/// Wait this long (ns) for a reply gap to fill by itself (reordering)
/// before asking for the missing replies.
pub const REREQUEST_AFTER_NS: u64 = 2_000_000;

/// The replies of one session that have arrived, by reply sequence: all
/// below `next`, plus the ranges in `ahead`; `known_end` is one past the
/// highest sequence the server has shown to exist (heartbeats included).
/// `ahead` holds one entry per run of replies that arrived past a gap, so
/// it stays small unless the network loses a lot.
#[derive(Clone, Debug, Default)]
pub struct ReplyTrack {
    next: u64,
    ahead: BTreeMap<u64, u64>,
    known_end: u64,
    gap_since_ns: u64,
    requested_ns: u64,
}

impl ReplyTrack {
    /// Starts at reply sequence `next`.
    pub fn new(next: u64) -> ReplyTrack {
        ReplyTrack {
            next,
            known_end: next,
            ..ReplyTrack::default()
        }
    }

    /// The first reply sequence not yet received (every one below it has
    /// been); where a new login would ask the server to resume.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Replies `first..end` arrived at `now_ns` (`first == end`: a
    /// heartbeat saying replies up to `end` exist).
    pub fn arrived(&mut self, first: u64, end: u64, now_ns: u64) {
        self.known_end = self.known_end.max(end);
        if end > first && end > self.next {
            if first <= self.next {
                self.next = end;
            } else {
                let e = self.ahead.entry(first).or_insert(end);
                *e = (*e).max(end);
            }
        }
        while let Some((&s, &e)) = self.ahead.first_key_value() {
            if s > self.next {
                break;
            }
            self.ahead.pop_first();
            self.next = self.next.max(e);
        }
        if self.next >= self.known_end {
            self.gap_since_ns = 0;
        } else if self.gap_since_ns == 0 {
            self.gap_since_ns = now_ns;
        }
    }

    /// The missing range to ask for at `now_ns` (first sequence, count), if
    /// a gap has lasted long enough and was not asked for recently.
    pub fn request(&mut self, now_ns: u64) -> Option<(u64, u16)> {
        if self.gap_since_ns == 0
            || now_ns.saturating_sub(self.gap_since_ns) < REREQUEST_AFTER_NS
            || now_ns.saturating_sub(self.requested_ns) < 4 * REREQUEST_AFTER_NS
        {
            return None;
        }
        let end = self.ahead.keys().next().copied().unwrap_or(self.known_end);
        let count = (end - self.next).min(u16::MAX as u64 - 1) as u16;
        self.requested_ns = now_ns;
        (count > 0).then_some((self.next, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_track_asks_for_a_lasting_gap_once_and_forgets_a_filled_one() {
        let ms = 1_000_000;
        let mut t = ReplyTrack::new(1);
        t.arrived(1, 15, 0);
        assert_eq!(t.request(100 * ms), None, "no gap");
        t.arrived(29, 43, 100 * ms); // 15..29 missing
        assert_eq!(t.request(101 * ms), None, "may still be reordered");
        assert_eq!(t.request(103 * ms), Some((15, 14)));
        assert_eq!(t.request(104 * ms), None, "just asked");
        t.arrived(15, 29, 105 * ms);
        assert_eq!(t.next, 43);
        assert_eq!(t.request(200 * ms), None, "filled");
        // A heartbeat shows a lost tail.
        t.arrived(50, 50, 300 * ms);
        assert_eq!(t.request(303 * ms), Some((43, 7)));
        t.arrived(43, 50, 304 * ms);
        assert_eq!(t.request(400 * ms), None);
        // Duplicates and old packets change nothing.
        t.arrived(1, 15, 401 * ms);
        assert_eq!(t.next, 50);
    }
}
