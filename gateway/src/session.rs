//! Client sessions as a gateway sees them.

use peregrine_netio::Peer;
use peregrine_wire::message::{msg_type_of, reply_client_seq, MESSAGE_LEN};
use peregrine_wire::moldudp64::SessionName;

/// One client session.
#[derive(Clone, Debug)]
pub struct Session {
    /// The session name (MoldUDP64 session field / SoupBinTCP session).
    pub name: SessionName,
    /// Where replies go: the UDP source address, or the TCP connection
    /// currently logged in; `None` while a TCP session is disconnected.
    pub peer: Option<Peer>,
    /// TCP: the implicit client sequence of the next unsequenced message.
    pub next_client_seq: u64,
    /// Sequence number of the next reply (MoldUDP64 downstream sequence,
    /// SoupBinTCP implicit sequence), from 1.
    pub next_reply_seq: u64,
    /// When the client last sent anything, ns (coarse: receive-burst time).
    pub last_rx_ns: u64,
    /// When we last sent this session anything, ns (coarse: timer tick).
    pub last_tx_ns: u64,
    /// The replies most recently sent to this session, by reply sequence,
    /// to answer a retransmitted message with its original reply.
    pub log: ReplyLog,
    /// Messages that arrived ahead of a gap, waiting for it to fill.
    pub window: ReorderWindow,
    /// The expected client sequence for which a gap was already reported
    /// (one SequenceGap reject per gap, not one per message past it).
    pub gap_reported_for: u64,
    /// When that gap was last reported, ns.
    pub gap_reported_ns: u64,
    /// Highest client sequence any reply to this session has answered: a
    /// retransmission above it is still in flight (its reply will come).
    pub replied_client_seq: u64,
    /// The session-layer rejects most recently sent (unsequenced: rate
    /// limit, malformed), to answer a retransmission of a refused message
    /// the same way.
    pub rejects: RejectLog,
    /// Client sequence of the last message handed to the sequencer: a
    /// retransmission at or below it and above `replied_client_seq` is in
    /// flight (its reply will come); anything else not found is TooOld.
    pub last_staged: u64,
    /// Rate limiter: tokens in nano-messages (1e9 = one message).
    tokens: u64,
    /// Rate limiter: when `tokens` was last refilled, ns.
    tokens_at_ns: u64,
}

/// A per-session message rate limit: `per_second` sustained, `burst` at
/// once. `per_second == 0` turns it off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained messages per second (0: unlimited).
    pub per_second: u64,
    /// Messages allowed at once after a quiet period.
    pub burst: u64,
}

const NANO: u64 = 1_000_000_000;

impl Session {
    /// Keeps reply `seq` in the reply log and notes the client message it
    /// answers (every reply layout carries it: [`reply_client_seq`]).
    #[inline]
    pub fn log_reply(&mut self, seq: u64, msg: &[u8; MESSAGE_LEN]) {
        self.log_replies(seq, std::slice::from_ref(msg));
    }

    /// Keeps replies `first_seq..` in the reply log and notes the client
    /// messages they answer, as [`Session::log_reply`] does for one.
    #[inline]
    pub fn log_replies(&mut self, first_seq: u64, msgs: &[[u8; MESSAGE_LEN]]) {
        self.log_replies_with(first_seq, msgs.len(), |k| &msgs[k], |_| {});
    }

    /// [`Session::log_replies`] for `count` replies wherever they lie,
    /// reply `k` read from `msg(k)` (the output ring's slots, say), and
    /// handed to `each` too, once per reply in order (whatever the log
    /// keeps), so a caller that also packs them into a packet reads each
    /// reply once for both copies.
    #[inline]
    pub fn log_replies_with<'m>(
        &mut self,
        first_seq: u64,
        count: usize,
        msg: impl Fn(usize) -> &'m [u8; MESSAGE_LEN],
        mut each: impl FnMut(&'m [u8; MESSAGE_LEN]),
    ) {
        let mut newest = 0;
        if self.log.keeps(count) {
            // One pass: each reply is read once, for its copy into the
            // log, its client sequence and `each`.
            self.log.push_with(first_seq, count, |k| {
                let m = msg(k);
                newest = newest.max(reply_client_seq(m));
                each(m);
                m
            });
        } else {
            self.log.push_with(first_seq, count, &msg);
            for k in 0..count {
                let m = msg(k);
                newest = newest.max(reply_client_seq(m));
                each(m);
            }
        }
        self.replied_client_seq = self.replied_client_seq.max(newest);
    }

    /// Recovery: a journaled message of this session, client sequence
    /// `client_seq`, was sequenced before the restart.
    pub fn restore_input(&mut self, client_seq: u64) {
        self.next_client_seq = self.next_client_seq.max(client_seq.saturating_add(1));
        self.last_staged = self.last_staged.max(client_seq);
    }

    /// Recovery: the application sent this session `msg` before the
    /// restart; it takes the next reply sequence, as it did then.
    pub fn restore_reply(&mut self, msg: &[u8; MESSAGE_LEN]) {
        let seq = self.next_reply_seq;
        self.log_reply(seq, msg);
        self.next_reply_seq += 1;
    }

    /// Takes one message's worth of tokens at time `now_ns`; false when the
    /// session is over its rate (token bucket, integer arithmetic, no
    /// allocation).
    #[inline]
    pub fn admit(&mut self, now_ns: u64, limit: RateLimit) -> bool {
        if limit.per_second == 0 {
            return true;
        }
        let cap = limit.burst.max(1).saturating_mul(NANO);
        let elapsed = now_ns.saturating_sub(self.tokens_at_ns).min(10 * NANO);
        self.tokens = self
            .tokens
            .saturating_add(elapsed.saturating_mul(limit.per_second))
            .min(cap);
        self.tokens_at_ns = now_ns.max(self.tokens_at_ns);
        if self.tokens >= NANO {
            self.tokens -= NANO;
            true
        } else {
            false
        }
    }
}

/// A gateway's sessions, indexed by session id (the position in the
/// [`SessionDirectory`](crate::directory::SessionDirectory), the `u32` the
/// sequencer routes replies with). A session's state is allocated when it
/// first logs in on this gateway (a control-plane event, not the message
/// path) and kept for the life of the process.
#[derive(Debug)]
pub struct SessionTable {
    sessions: Vec<Option<Session>>,
    open: usize,
    log_depth: usize,
    window: usize,
}

/// The last few session-layer rejects of one session (fixed size, no
/// allocation after creation).
#[derive(Clone, Debug)]
pub struct RejectLog {
    msgs: Vec<[u8; MESSAGE_LEN]>,
    next: usize,
}

impl RejectLog {
    /// Keeps the last `depth` rejects.
    pub fn new(depth: usize) -> RejectLog {
        RejectLog {
            msgs: vec![[0u8; MESSAGE_LEN]; depth],
            next: 0,
        }
    }

    /// Records a reject (client sequence at bytes 16..24).
    pub fn push(&mut self, msg: &[u8; MESSAGE_LEN]) {
        let n = self.msgs.len();
        if n > 0 {
            self.msgs[self.next % n] = *msg;
            self.next = self.next.wrapping_add(1);
        }
    }

    /// The reject that answered client message `client_seq`, if kept.
    pub fn find(&self, client_seq: u64) -> Option<&[u8; MESSAGE_LEN]> {
        let kept = self.next.min(self.msgs.len());
        self.msgs[..kept]
            .iter()
            .find(|m| msg_type_of(&m[..]) != 0 && reply_client_seq(m) == client_seq)
    }
}

/// Session-layer rejects kept per session.
const REJECT_LOG_DEPTH: usize = 64;

/// Messages received ahead of a client-sequence gap, held (not sequenced)
/// until the gap fills, so one lost or reordered datagram does not force
/// the client to resend everything after it. Fixed size, allocated when the
/// session is created; slot = client sequence modulo the size.
#[derive(Clone, Debug)]
pub struct ReorderWindow {
    msgs: Vec<[u8; MESSAGE_LEN]>,
    /// Each held block's real length (a block of the wrong length is held
    /// too, and rejected for it when its turn comes).
    lens: Vec<u16>,
    held: Vec<u64>,
    count: usize,
}

impl ReorderWindow {
    /// A window holding up to `size` messages ahead of the expected one
    /// (0: none; messages past a gap are then rejected).
    pub fn new(size: usize) -> ReorderWindow {
        ReorderWindow {
            msgs: vec![[0u8; MESSAGE_LEN]; size],
            lens: vec![0; size],
            held: vec![0; size],
            count: 0,
        }
    }

    /// Forgets every held message (their senders resend them).
    pub fn clear(&mut self) {
        self.held.iter_mut().for_each(|h| *h = 0);
        self.count = 0;
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when `seq` (> `expected`) fits in the window.
    #[inline]
    pub fn holds(&self, expected: u64, seq: u64) -> bool {
        seq > expected && seq - expected <= self.msgs.len() as u64
    }

    /// Keeps message `seq`; false when it was already held.
    pub fn insert(&mut self, seq: u64, block: &[u8]) -> bool {
        let n = self.msgs.len() as u64;
        if n == 0 {
            return false;
        }
        let i = (seq % n) as usize;
        if self.held[i] == seq {
            return false;
        }
        if self.held[i] == 0 {
            self.count += 1;
        }
        let kept = block.len().min(MESSAGE_LEN);
        self.msgs[i] = [0u8; MESSAGE_LEN];
        self.msgs[i][..kept].copy_from_slice(&block[..kept]);
        self.lens[i] = block.len().min(u16::MAX as usize) as u16;
        self.held[i] = seq;
        true
    }

    /// Takes message `seq` if held: its bytes and real length (a block
    /// longer than a message keeps only its first 100 bytes, and its length
    /// says it is wrong).
    pub fn take(&mut self, seq: u64) -> Option<([u8; MESSAGE_LEN], usize)> {
        let n = self.msgs.len() as u64;
        // Asked after every message: with nothing held (in order), answer
        // without touching the window's memory.
        if self.count == 0 || seq == 0 {
            return None;
        }
        let i = (seq % n) as usize;
        (self.held[i] == seq).then(|| {
            self.held[i] = 0;
            self.count -= 1;
            (self.msgs[i], self.lens[i] as usize)
        })
    }
}

/// A ring of the last `depth` replies sent to one session, each with its
/// reply sequence number. Memory is allocated once, when the session is
/// created; pushing never allocates.
#[derive(Clone, Debug)]
pub struct ReplyLog {
    msgs: Vec<[u8; MESSAGE_LEN]>,
    /// Reply sequence of the oldest kept reply.
    first: u64,
    /// Replies kept.
    len: usize,
    /// Where the next reply goes: its sequence modulo the depth, kept
    /// running so a push needs no division.
    next_at: usize,
}

impl ReplyLog {
    /// An empty log keeping up to `depth` replies (0 keeps none).
    pub fn new(depth: usize) -> ReplyLog {
        ReplyLog {
            msgs: vec![[0u8; MESSAGE_LEN]; depth],
            first: 1,
            len: 0,
            next_at: 0,
        }
    }

    /// Records reply `seq` (must follow the previous one).
    #[inline]
    pub fn push(&mut self, seq: u64, msg: &[u8; MESSAGE_LEN]) {
        self.push_run(seq, std::slice::from_ref(msg));
    }

    /// Records replies `first_seq..first_seq + msgs.len()` (the first must
    /// follow the previous reply); the oldest leave when the log is full.
    pub fn push_run(&mut self, first_seq: u64, msgs: &[[u8; MESSAGE_LEN]]) {
        self.push_with(first_seq, msgs.len(), |k| &msgs[k]);
    }

    /// Records replies `first_seq..first_seq + count`, reply `k` read from
    /// `msg(k)` (the first must follow the previous reply), each copied
    /// once into its place; the oldest leave when the log is full.
    #[inline]
    pub fn push_with<'m>(
        &mut self,
        first_seq: u64,
        count: usize,
        mut msg: impl FnMut(usize) -> &'m [u8; MESSAGE_LEN],
    ) {
        let cap = self.msgs.len();
        if cap == 0 || count == 0 {
            return;
        }
        if self.len == 0 {
            self.start_at(first_seq);
        }
        // Only the newest `cap` can stay; the rest only move the position.
        let skip = count.saturating_sub(cap);
        if skip > 0 {
            self.next_at = (self.next_at + skip) % cap;
        }
        // At most two contiguous stretches (before and after the wrap),
        // each copied without a position check per reply.
        let mut k = skip;
        while k < count {
            let start = self.next_at.min(cap - 1);
            let n = (count - k).min(cap - start);
            for (place, j) in self.msgs[start..start + n].iter_mut().zip(k..) {
                *place = *msg(j);
            }
            k += n;
            self.next_at = if start + n == cap { 0 } else { start + n };
        }
        let kept = self.len + count;
        if kept > cap {
            self.first += (kept - cap) as u64;
            self.len = cap;
        } else {
            self.len = kept;
        }
    }

    /// Whether a run of `count` replies pushed now would all be read and
    /// kept ([`push_with`](Self::push_with) reads only the newest
    /// `depth` of a longer run, and none when the depth is 0).
    #[inline]
    pub fn keeps(&self, count: usize) -> bool {
        !self.msgs.is_empty() && count <= self.msgs.len()
    }

    /// An empty log's first reply will be `seq`.
    fn start_at(&mut self, seq: u64) {
        self.first = seq;
        self.next_at = (seq % self.msgs.len() as u64) as usize;
    }

    /// True when replies have been dropped to make room.
    pub fn is_full(&self) -> bool {
        !self.msgs.is_empty() && self.len == self.msgs.len()
    }

    /// Reply `seq`, if still kept.
    pub fn get(&self, seq: u64) -> Option<&[u8; MESSAGE_LEN]> {
        let cap = self.msgs.len() as u64;
        (seq >= self.first && seq < self.first + self.len as u64).then(|| &self.msgs[(seq % cap) as usize])
    }

    /// Reply sequence of the oldest reply kept, if any.
    pub fn oldest(&self) -> Option<u64> {
        (self.len > 0).then_some(self.first)
    }

    /// The replies answering the client's message `client_seq` (every reply
    /// layout carries the client sequence: [`reply_client_seq`]): the first such
    /// reply's sequence and how many follow it contiguously. Searched from
    /// the newest; `None` when not (or no longer) kept.
    pub fn find(&self, client_seq: u64) -> Option<(u64, usize)> {
        let end = self.first + self.len as u64;
        let mut s = end;
        while s > self.first {
            s -= 1;
            let m = self.get(s)?;
            if reply_client_seq(m) == client_seq {
                let mut first = s;
                while first > self.first
                    && self
                        .get(first - 1)
                        .is_some_and(|p| reply_client_seq(p) == client_seq)
                {
                    first -= 1;
                }
                return Some((first, (s - first + 1) as usize));
            }
        }
        None
    }
}

impl SessionTable {
    /// An empty table for session ids `0..max`.
    pub fn new(max: usize) -> Self {
        Self::with_reply_log(max, 0)
    }

    /// As [`SessionTable::new`], each session keeping its last `log_depth`
    /// replies.
    pub fn with_reply_log(max: usize, log_depth: usize) -> Self {
        Self::with_windows(max, log_depth, 0)
    }

    /// As [`SessionTable::with_reply_log`], each session also holding up
    /// to `reorder_window` messages received ahead of a gap.
    pub fn with_windows(max: usize, log_depth: usize, reorder_window: usize) -> Self {
        SessionTable {
            sessions: (0..max).map(|_| None).collect(),
            open: 0,
            log_depth,
            window: reorder_window,
        }
    }

    /// Session `id`, created (disconnected, sequences from 1) if this
    /// gateway has not held it before; `None` when `id` is out of range.
    pub fn open(&mut self, id: u32, name: SessionName) -> Option<&mut Session> {
        let slot = self.sessions.get_mut(id as usize)?;
        if slot.is_none() {
            *slot = Some(Session {
                name,
                peer: None,
                next_client_seq: 1,
                next_reply_seq: 1,
                last_rx_ns: 0,
                last_tx_ns: 0,
                log: ReplyLog::new(self.log_depth),
                replied_client_seq: 0,
                gap_reported_for: 0,
                gap_reported_ns: 0,
                window: ReorderWindow::new(self.window),
                rejects: RejectLog::new(REJECT_LOG_DEPTH),
                last_staged: 0,
                tokens: u64::MAX / 2,
                tokens_at_ns: 0,
            });
            self.open += 1;
        }
        slot.as_mut()
    }

    /// Opens the first unused id for `name` with `peer` (tests and tools
    /// that do not need configured ids); `None` when every id is used.
    pub fn add(&mut self, name: SessionName, peer: Option<Peer>) -> Option<u32> {
        let id = self.sessions.iter().position(Option::is_none)? as u32;
        self.open(id, name)?.peer = peer;
        Some(id)
    }

    /// Session `i`, if this gateway holds it.
    #[inline]
    pub fn get(&self, i: u32) -> Option<&Session> {
        self.sessions.get(i as usize)?.as_ref()
    }

    /// Session `i`, mutably.
    #[inline]
    pub fn get_mut(&mut self, i: u32) -> Option<&mut Session> {
        self.sessions.get_mut(i as usize)?.as_mut()
    }

    /// Every session this gateway holds, with its id.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut Session)> {
        self.sessions
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| Some((i as u32, s.as_mut()?)))
    }

    /// Number of sessions held.
    pub fn len(&self) -> usize {
        self.open
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.open == 0
    }

    /// Highest session id + 1 (the table's capacity).
    pub fn capacity(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_wire::message::set_reply_client_seq;

    fn reply(client_seq: u64, tag: u8) -> [u8; MESSAGE_LEN] {
        let mut m = [tag; MESSAGE_LEN];
        set_reply_client_seq(&mut m, client_seq);
        m
    }

    #[test]
    fn sessions_are_opened_by_configured_id_and_restored_in_order() {
        let mut t = SessionTable::with_windows(4, 8, 4);
        assert!(t.get(2).is_none() && t.is_empty());
        assert!(t.open(9, [b'X'; 10]).is_none(), "ids beyond the directory");
        let s = t.open(2, [b'C'; 10]).unwrap();
        s.restore_input(1);
        s.restore_reply(&reply(1, 1));
        s.restore_input(2);
        s.restore_reply(&reply(2, 2));
        s.restore_reply(&reply(2, 3));
        let s = t.get(2).unwrap();
        assert_eq!((s.next_client_seq, s.next_reply_seq, s.last_staged), (3, 4, 2));
        assert_eq!(s.log.find(2), Some((2, 2)));
        assert_eq!(s.replied_client_seq, 2);
        assert_eq!((t.len(), t.capacity()), (1, 4));
        assert_eq!(t.add([b'A'; 10], None), Some(0), "first unused id");
        assert_eq!(t.iter_mut().map(|(i, _)| i).collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn reject_log_keeps_the_latest_rejects_by_client_sequence() {
        let mut log = RejectLog::new(2);
        assert!(log.find(1).is_none());
        log.push(&reply(1, b'J'));
        log.push(&reply(2, b'J'));
        assert_eq!(log.find(1).map(|m| m[0]), Some(b'J'));
        log.push(&reply(3, b'J'));
        assert!(log.find(1).is_none(), "evicted");
        assert!(log.find(2).is_some() && log.find(3).is_some());
        assert!(log.find(0).is_none(), "empty slots never match");
    }

    proptest::proptest! {
        /// Against a model (the newest `depth` replies, each under its
        /// sequence), over runs of consecutive reply sequences from any
        /// start, through several wraps of the log's storage.
        #[test]
        fn the_log_keeps_exactly_the_newest_replies(
            depth in 0usize..9,
            first in 1u64..1_000,
            pushes in 0usize..40,
        ) {
            let mut log = ReplyLog::new(depth);
            let mut model = std::collections::VecDeque::new();
            for k in 0..pushes as u64 {
                let seq = first + k;
                let m = reply(seq, (seq % 251) as u8);
                log.push(seq, &m);
                model.push_back((seq, m));
                if model.len() > depth {
                    model.pop_front();
                }
                proptest::prop_assert_eq!(log.oldest(), model.front().map(|(s, _)| *s));
                for probe in first.saturating_sub(2)..=seq + 2 {
                    let want = model.iter().find(|(s, _)| *s == probe).map(|(_, m)| m);
                    proptest::prop_assert_eq!(log.get(probe), want);
                }
            }
        }
    }

    proptest::proptest! {
        /// Runs of replies logged at once leave the log exactly as the
        /// same replies pushed one by one.
        #[test]
        fn a_run_is_logged_as_its_replies_one_by_one(
            depth in 0usize..9,
            first in 1u64..1_000,
            runs in proptest::collection::vec(0usize..20, 0..12),
        ) {
            let (mut one_by_one, mut in_runs) = (ReplyLog::new(depth), ReplyLog::new(depth));
            let mut seq = first;
            for n in runs {
                let msgs: Vec<[u8; MESSAGE_LEN]> =
                    (0..n as u64).map(|k| reply(seq + k, ((seq + k) % 251) as u8)).collect();
                for (k, m) in msgs.iter().enumerate() {
                    one_by_one.push(seq + k as u64, m);
                }
                in_runs.push_run(seq, &msgs);
                seq += n as u64;
                proptest::prop_assert_eq!(in_runs.oldest(), one_by_one.oldest());
                for probe in first.saturating_sub(2)..=seq + 2 {
                    proptest::prop_assert_eq!(in_runs.get(probe), one_by_one.get(probe));
                }
            }
        }
    }

    #[test]
    fn log_finds_the_replies_of_a_client_message_and_forgets_old_ones() {
        let mut log = ReplyLog::new(4);
        log.push(1, &reply(1, 1));
        log.push(2, &reply(2, 2));
        log.push(3, &reply(2, 3)); // a second reply to client message 2
        log.push(4, &reply(0, 4)); // a maker fill (not this session's input)
        assert_eq!(log.find(2), Some((2, 2)));
        assert_eq!(log.find(1), Some((1, 1)));
        assert_eq!(log.get(3).unwrap()[0], 3);
        log.push(5, &reply(3, 5)); // evicts reply 1
        assert_eq!(log.find(1), None);
        assert_eq!(log.get(1), None);
        assert_eq!(log.find(3), Some((5, 1)));
        assert_eq!(log.find(9), None);
        let mut none = ReplyLog::new(0);
        none.push(1, &reply(1, 1));
        assert_eq!(none.find(1), None);
    }
}
