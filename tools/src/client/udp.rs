//! UDP client: all sessions share one socket (sessions are told apart by
//! the MoldUDP64 session name, `PG` + 8 digits), datagrams batched with
//! `sendmmsg`/`recvmmsg` through the same netio port the server uses.
//!
//! Each session logs in first (a Login message with the secret) and resumes
//! at the client sequence the server expects. Replies carry the session's
//! reply sequence; when one goes missing (a later packet or a heartbeat
//! shows a gap that does not fill within [`REREQUEST_AFTER_NS`]), the client
//! asks for it again with a MoldUDP64 retransmission request.

use super::faults::{LossyLink, DOWN, UP};
use super::flow::Flow;
use super::recorder::Reply;
use super::rto::Rto;
use super::transport::{decode_reply, ClientTransport};
use peregrine_netio::{DatagramPort, PacketBatch, Peer, Port, UdpOptions, UdpPort};
use peregrine_wire::message::MESSAGE_LEN;
use peregrine_wire::moldudp64::{MoldBuilder, MoldPacket, SessionName};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;

/// Session name of client session `i`.
pub fn client_session_name(i: usize) -> SessionName {
    let mut n = [b'0'; 10];
    n[0] = b'P';
    n[1] = b'G';
    let mut x = i;
    for k in (2..10).rev() {
        n[k] = b'0' + (x % 10) as u8;
        x /= 10;
    }
    n
}

/// Client session index from a session name made by [`client_session_name`].
pub fn client_session_index(n: &SessionName) -> Option<usize> {
    if &n[..2] != b"PG" {
        return None;
    }
    let mut v = 0usize;
    for &c in &n[2..] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as usize;
    }
    Some(v)
}

/// Datagram `i` of `rx`: its session's index among the `count` sessions
/// numbered from `first`, and the packet, when it is a valid MoldUDP64
/// packet for one of them.
fn received(rx: &PacketBatch, i: usize, first: usize, count: usize) -> Option<(usize, MoldPacket<'_>)> {
    let p = MoldPacket::new_checked(rx.get(i).2).ok()?;
    let s = client_session_index(&p.session())?
        .checked_sub(first)
        .filter(|&s| s < count)?;
    Some((s, p))
}

/// The UDP simulator's transport.
pub struct UdpClient {
    port: UdpPort,
    server: SocketAddr,
    tx: PacketBatch,
    rx: PacketBatch,
    names: Vec<SessionName>,
    /// Number of the first session's name (PG + 8 digits).
    first_session: usize,
    next_seq: Vec<u64>,
    /// Retransmission floor, ns (None: never retransmit).
    rto_ns: Option<u64>,
    /// The retransmission timeout in force (backed off while the oldest
    /// message stays unanswered).
    rto: Rto,
    /// Per session: messages sent and not yet answered, oldest first
    /// (consecutive client sequence numbers).
    outstanding: Vec<VecDeque<Outstanding>>,
    /// Per session: the message the server reported missing (SequenceGap),
    /// to resend now.
    missing: Vec<Option<u64>>,
    resent: u64,
    /// Per session: which replies have arrived (by reply sequence).
    replies: Vec<ReplyTrack>,
    /// With retransmission on, a session stops sending new messages while
    /// this many are unanswered (from the window the server advertises at
    /// login), so a loss never pushes later messages out of the server's
    /// reorder window or the answer out of its reply log.
    max_unanswered: usize,
    /// Fault injection on both directions, with its scratch batches (what
    /// passes up, what passes down; each room for every datagram twice).
    link: Option<(LossyLink, PacketBatch, PacketBatch)>,
}

/// Wait this long for a reply gap to fill by itself (reordering) before
/// asking for the missing replies.
pub const REREQUEST_AFTER_NS: u64 = 2_000_000;

/// The replies of one session that have arrived, by reply sequence: all
/// below `next`, plus the ranges in `ahead`; `known_end` is one past the
/// highest sequence the server has shown to exist (heartbeats included).
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

    /// Replies `first..end` arrived (`first == end`: a heartbeat saying
    /// replies up to `end` exist).
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

    /// The missing range to ask for now, if a gap has lasted long enough
    /// and was not asked for recently.
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

/// A message kept for retransmission.
struct Outstanding {
    seq: u64,
    msg: [u8; MESSAGE_LEN],
    sent_ns: u64,
    /// Sent more than once.
    resent: bool,
    answered: bool,
}

impl UdpClient {
    /// Binds an ephemeral loopback-or-any socket for `sessions` sessions
    /// talking to `server`.
    pub fn new(server: SocketAddr, sessions: usize) -> anyhow::Result<Self> {
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let port = UdpPort::bind(
            local,
            UdpOptions {
                max_batch: 64,
                ..UdpOptions::default()
            },
        )?;
        Ok(UdpClient {
            port,
            server,
            tx: PacketBatch::new(64),
            rx: PacketBatch::new(64),
            names: (0..sessions).map(client_session_name).collect(),
            first_session: 0,
            next_seq: vec![1; sessions],
            rto_ns: None,
            rto: Rto::new(5_000_000, 1_000_000_000),
            outstanding: (0..sessions).map(|_| VecDeque::new()).collect(),
            missing: vec![None; sessions],
            resent: 0,
            replies: vec![ReplyTrack::new(1); sessions],
            link: None,
            max_unanswered: 4096,
        })
    }

    /// Logs every session in with `secret`, resending Logins every 200 ms
    /// until each is answered or `timeout` passes. Each session then
    /// continues at the client sequence and reply sequence the server
    /// reports (a restarted client resumes where its session left off).
    pub fn login(&mut self, secret: &str, timeout: std::time::Duration) -> anyhow::Result<()> {
        use peregrine_wire::message::{Login, LoginAccepted, LoginRejected, MessageType};
        use zerocopy::FromBytes;
        let secret = peregrine_gateway::directory::alpha::<10>(secret)
            .map_err(|e| anyhow::anyhow!("secret {e} (pass --secret)"))?;
        let start = peregrine_netio::clock::now_ns();
        let deadline = start + timeout.as_nanos() as u64;
        let mut pending: Vec<bool> = vec![true; self.names.len()];
        let mut next_try = start;
        while pending.iter().any(|&p| p) {
            let now = peregrine_netio::clock::now_ns();
            anyhow::ensure!(now < deadline, "no answer to the UDP login from {}", self.server);
            if now >= next_try {
                for s in (0..pending.len()).filter(|&s| pending[s]) {
                    let mut buf = [0u8; 128];
                    let Some(mut b) = MoldBuilder::new(&mut buf, &self.names[s], 0) else {
                        continue;
                    };
                    b.push(zerocopy::IntoBytes::as_bytes(&Login::new(secret, 0, now)));
                    let n = b.finish();
                    if self.tx.is_full() {
                        self.flush()?;
                    }
                    self.tx.push(Peer::Addr(self.server), &buf[..n]);
                }
                self.flush()?;
                next_try = now + 200_000_000;
            }
            let n = self.port.recv(&mut self.rx).map_err(io::Error::other)?;
            for i in 0..n {
                let Some((s, p)) = received(&self.rx, i, self.first_session, self.names.len()) else {
                    continue;
                };
                for block in p.blocks() {
                    match block.first().copied().and_then(MessageType::from_code) {
                        Some(MessageType::LoginAccepted) => {
                            let Ok(a) = LoginAccepted::ref_from_bytes(block) else {
                                continue;
                            };
                            self.next_seq[s] = a.next_client_seq.get();
                            // Keep a quarter of the window in reserve: an
                            // application may send several replies per
                            // message, and the reply log must still hold
                            // the oldest unanswered one's.
                            let w = a.window.get() as usize;
                            self.max_unanswered = (w - w / 4).max(1);
                            self.replies[s] = ReplyTrack::new(a.next_reply_seq.get());
                            pending[s] = false;
                        }
                        Some(MessageType::LoginRejected) => {
                            let Ok(r) = LoginRejected::ref_from_bytes(block) else {
                                continue;
                            };
                            anyhow::bail!(
                                "login of session {} rejected: {}",
                                String::from_utf8_lossy(&self.names[s]).trim_end(),
                                super::tcp::login_rejection(r.reason)
                            );
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Logs every session out (best effort, one datagram each), so the
    /// sessions can log in again at once from another address.
    pub fn logout(&mut self) -> io::Result<()> {
        let now = peregrine_netio::clock::now_ns();
        for s in 0..self.names.len() {
            let mut buf = [0u8; 128];
            let Some(mut b) = MoldBuilder::new(&mut buf, &self.names[s], 0) else {
                continue;
            };
            b.push(zerocopy::IntoBytes::as_bytes(
                &peregrine_wire::message::Logout::new(now),
            ));
            let n = b.finish();
            if self.tx.is_full() {
                self.flush()?;
            }
            self.tx.push(Peer::Addr(self.server), &buf[..n]);
        }
        self.flush()
    }

    /// Resends message `seq` of session `s`, if it is still unanswered,
    /// with the unanswered messages after it that were sent in the same
    /// datagram (they were most likely lost with it); returns how many.
    fn resend_run(&mut self, s: usize, seq: u64, now_ns: u64) -> io::Result<usize> {
        let Some(front) = self.outstanding[s].front().map(|o| o.seq) else {
            return Ok(0);
        };
        let Some(at) = seq.checked_sub(front).map(|i| i as usize) else {
            return Ok(0);
        };
        let Some(first) = self.outstanding[s].get(at).filter(|o| !o.answered) else {
            return Ok(0);
        };
        let batch_ns = first.sent_ns;
        if self.tx.is_full() {
            self.flush()?;
        }
        let name = self.names[s];
        let Some(slot) = self.tx.next_slot() else {
            return Ok(0);
        };
        let Some(mut b) = MoldBuilder::new(slot, &name, seq) else {
            return Ok(0);
        };
        let q = &mut self.outstanding[s];
        let mut n = 0;
        while let Some(o) = q.get_mut(at + n) {
            let same_datagram = n == 0 || (o.sent_ns == batch_ns && !o.answered);
            if !same_datagram || !b.push(&o.msg) {
                break;
            }
            o.sent_ns = now_ns;
            o.resent = true;
            n += 1;
        }
        let len = b.finish();
        self.tx.commit(Peer::Addr(self.server), len);
        Ok(n)
    }

    /// Asks for the replies of any session whose reply gap has lasted.
    fn request_missing(&mut self, now_ns: u64) -> io::Result<()> {
        for s in 0..self.replies.len() {
            let Some((first, count)) = self.replies[s].request(now_ns) else {
                continue;
            };
            let mut h = [0u8; peregrine_wire::moldudp64::HEADER_LEN];
            peregrine_wire::moldudp64::write_header_only(&mut h, &self.names[s], first, count);
            if self.tx.is_full() {
                self.flush()?;
            }
            self.tx.push(Peer::Addr(self.server), &h);
        }
        self.flush()
    }

    /// Passes every datagram sent and received through a lossy link (drop,
    /// duplicate, reorder with the given probabilities, both directions).
    pub fn with_faults(mut self, faults: crate::relay::Faults, seed: u64) -> Self {
        self.link = Some((
            LossyLink::new(faults, seed),
            PacketBatch::new(self.tx.capacity() * 2 + 1),
            PacketBatch::new(self.rx.capacity() * 2 + 1),
        ));
        self
    }

    /// What the lossy link did, if there is one.
    pub fn link_counters(&self) -> Option<crate::relay::RelayCounters> {
        self.link.as_ref().map(|(l, _, _)| l.counters())
    }

    /// Names the sessions PG`first`, PG`first + 1`, ... instead of from 0
    /// (several simulators against one server each need their own).
    pub fn with_first_session(mut self, first: usize) -> Self {
        self.first_session = first;
        self.names = (first..first + self.names.len())
            .map(client_session_name)
            .collect();
        self
    }

    /// Keeps every message until it is answered and resends it (with its
    /// original client sequence number) after `rto` without an answer.
    /// The server recognises the copy and answers with the original reply,
    /// so each message is sequenced exactly once.
    pub fn with_retransmission(mut self, rto: std::time::Duration) -> Self {
        self.rto_ns = Some(rto.as_nanos() as u64);
        self.rto = Rto::new(rto.as_nanos() as u64, 1_000_000_000);
        self
    }

    /// Sends a raw datagram to the server (tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush()?;
        self.tx.push(Peer::Addr(self.server), bytes);
        self.flush()
    }
}

/// For a SequenceGap reject, the client sequence the server is missing.
fn gap_reported(block: &[u8]) -> Option<u64> {
    let r = <peregrine_wire::message::Reject as zerocopy::FromBytes>::ref_from_bytes(block).ok()?;
    (r.msg_type == peregrine_wire::message::MessageType::Reject as u8
        && r.reason.get() == peregrine_wire::message::RejectReason::SequenceGap as u16)
        .then(|| r.client_seq.get())
}

/// Marks message `seq` of session `s` answered and forgets the answered
/// prefix; true when the oldest unanswered message changed.
fn mark_answered(outstanding: &mut [VecDeque<Outstanding>], s: usize, seq: u64) -> bool {
    let Some(q) = outstanding.get_mut(s) else {
        return false;
    };
    let Some(front) = q.front().map(|o| o.seq) else {
        return false;
    };
    if seq < front {
        return false;
    }
    if let Some(o) = q.get_mut((seq - front) as usize) {
        o.answered = true;
    }
    let mut advanced = false;
    while q.front().is_some_and(|o| o.answered) {
        q.pop_front();
        advanced = true;
    }
    advanced
}

impl ClientTransport for UdpClient {
    fn queue(&mut self, s: usize, stamps: &[u64], flow: &mut Flow) -> io::Result<u64> {
        let n = stamps.len();
        if self.tx.is_full() {
            self.flush()?;
        }
        let first = self.next_seq[s];
        let name = self.names[s];
        let Some(slot) = self.tx.next_slot() else {
            return Err(io::Error::other("tx batch full"));
        };
        let Some(mut b) = MoldBuilder::new(slot, &name, first) else {
            return Err(io::Error::other("slot too small"));
        };
        let mut msg = [0u8; MESSAGE_LEN];
        let mut k = 0;
        // One time for the whole datagram: a resend recognises the messages
        // that travelled (and were lost) together by it.
        let sent_ns = peregrine_netio::clock::now_ns();
        while k < n {
            flow.next(s, stamps[k], first + k as u64, &mut msg);
            if !b.push(&msg) {
                break;
            }
            if self.rto_ns.is_some() {
                self.outstanding[s].push_back(Outstanding {
                    seq: first + k as u64,
                    msg,
                    sent_ns,
                    answered: false,
                    resent: false,
                });
            }
            k += 1;
        }
        let len = b.finish();
        self.tx.commit(Peer::Addr(self.server), len);
        self.next_seq[s] += k as u64;
        Ok(first)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.tx.is_empty() && !self.link.as_ref().is_some_and(|(l, _, _)| l.holds(UP)) {
            return Ok(());
        }
        match &mut self.link {
            Some((link, out, _)) => {
                link.pass(UP, &self.tx, out, peregrine_netio::clock::now_ns());
                self.tx.clear();
                if !out.is_empty() {
                    self.port.send(out).map_err(io::Error::other)?;
                }
            }
            None => {
                self.port.send(&mut self.tx).map_err(io::Error::other)?;
            }
        }
        Ok(())
    }

    fn poll(&mut self, f: &mut dyn FnMut(Reply, u64)) -> io::Result<usize> {
        let mut n = self.port.recv(&mut self.rx).map_err(io::Error::other)?;
        // With a lossy link, what it delivers is handled in place of what
        // arrived (the batches are swapped back at the end); it may also
        // let out a datagram it held back when nothing arrived.
        if let Some((link, _, delivered)) = &mut self.link {
            if n > 0 || link.holds(DOWN) {
                link.pass(DOWN, &self.rx, delivered, peregrine_netio::clock::now_ns());
                std::mem::swap(&mut self.rx, delivered);
                n = self.rx.len();
                if n == 0 {
                    std::mem::swap(&mut self.rx, delivered);
                    return Ok(0);
                }
            }
        }
        if n == 0 {
            return Ok(0);
        }
        let now = peregrine_netio::clock::now_ns();
        for i in 0..n {
            let Some((s, p)) = received(&self.rx, i, self.first_session, self.names.len()) else {
                continue;
            };
            let first = p.sequence();
            // Sequence 0: unsequenced (session-layer rejects, login answers).
            if first != 0 && s < self.replies.len() && !p.is_end_of_session() {
                let end = first + p.count() as u64;
                self.replies[s].arrived(first, end, now);
            }
            for (k, block) in p.blocks().enumerate() {
                if let Some(missing) = gap_reported(block) {
                    // The server names the message it waits for: resend
                    // exactly that one, without waiting for a timeout.
                    if let Some(m) = self.missing.get_mut(s) {
                        *m = Some(missing);
                    }
                    continue;
                }
                // A raw echo returns our own packet: its sequence is ours.
                if let Some(r) = decode_reply(s, block, first + k as u64) {
                    if self.rto_ns.is_some()
                        && r.client_seq != 0
                        && mark_answered(&mut self.outstanding, s, r.client_seq)
                    {
                        self.rto.reset();
                    }
                    f(r, now);
                }
            }
        }
        if let Some((_, _, delivered)) = &mut self.link {
            std::mem::swap(&mut self.rx, delivered);
        }
        Ok(n)
    }

    fn retransmit(&mut self, now_ns: u64) -> io::Result<usize> {
        self.request_missing(now_ns)?;
        if self.rto_ns.is_none() {
            return Ok(0);
        }
        let rto = self.rto.current_ns();
        let mut timed_out = false;
        let mut resent = 0;
        for s in 0..self.outstanding.len() {
            // The server answers a session's messages strictly in order and
            // holds those that arrive ahead of a gap, so an unanswered
            // message behind the oldest one is most likely held, not lost:
            // resending it would only add load. Resent are the message the
            // server reports missing (SequenceGap), and the oldest
            // unanswered one when its timer runs out (a lost report, a lost
            // resend or a lost reply); its second timeout backs the timer
            // off, as TCP's does.
            if let Some(k) = self.missing[s].take() {
                resent += self.resend_run(s, k, now_ns)?;
            }
            let Some(front) = self.outstanding[s].front() else {
                continue;
            };
            if now_ns.saturating_sub(front.sent_ns) >= rto {
                timed_out |= front.resent;
                let seq = front.seq;
                resent += self.resend_run(s, seq, now_ns)?;
            }
        }
        if timed_out {
            self.rto.back_off();
        }
        if resent > 0 {
            self.flush()?;
            self.resent += resent as u64;
        }
        Ok(resent)
    }

    fn retransmitted(&self) -> u64 {
        self.resent
    }

    fn ready(&self, s: usize) -> bool {
        self.rto_ns.is_none()
            || self
                .outstanding
                .get(s)
                .is_none_or(|q| q.len() < self.max_unanswered)
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

    #[test]
    fn session_names_round_trip() {
        for i in [0, 1, 42, 99_999_999] {
            assert_eq!(client_session_index(&client_session_name(i)), Some(i));
        }
        assert_eq!(client_session_index(b"XX00000000"), None);
    }
}
