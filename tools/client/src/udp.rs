//! UDP sessions: all of a client's sessions share one socket (they are
//! told apart by the MoldUDP64 session name, `PG` + 8 digits), and
//! datagrams go out and come in batches with `sendmmsg`/`recvmmsg` through
//! the same netio port the server uses.
//!
//! Each session logs in first (a Login message with the secret) and resumes
//! at the client sequence the server expects. Replies carry the session's
//! reply sequence; when one goes missing (a later packet or a heartbeat
//! shows a gap that does not fill within
//! [`crate::reply_track::REREQUEST_AFTER_NS`]), the client asks for it
//! again with a MoldUDP64 retransmission request.
//!
//! Sending only queues: [`UdpClient::send`] builds the datagram in place in
//! the transmit batch, and [`UdpClient::flush`] hands the batch to the
//! kernel in one call. [`UdpClient::poll`] never waits.

use crate::event::{decode_block, Event};
use crate::link::{Direction, Link, NoLink};
use crate::names::{secret_field, session_index, session_name};
use crate::outbound::Outbound;
use crate::reply_track::ReplyTrack;
use crate::resend::ResendQueue;
use crate::rto::Rto;
use crate::ClientError;
use peregrine_netio::clock::now_ns;
use peregrine_netio::{DatagramPort, PacketBatch, Peer, Port, UdpOptions, UdpPort};
use peregrine_wire::message::{Login, Logout, RejectReason, MESSAGE_LEN};
use peregrine_wire::moldudp64::{write_header_only, MoldBuilder, MoldPacket, SessionName, HEADER_LEN};
use std::net::SocketAddr;
use std::time::Duration;
use zerocopy::IntoBytes;

/// Datagrams per `sendmmsg`/`recvmmsg`.
const BATCH: usize = 64;
/// Logins are resent this often (ns) until answered.
const LOGIN_RETRY_NS: u64 = 200_000_000;
/// Longest retransmission timeout after backing off, ns.
const RTO_CEILING_NS: u64 = 1_000_000_000;
/// Unanswered messages a session may have before the server's window is
/// known.
const DEFAULT_MAX_UNANSWERED: usize = 4096;

/// Datagram `i` of `rx`: its session's index among the `count` sessions
/// numbered from `first`, and the packet, when it is a valid MoldUDP64
/// packet for one of them.
fn received(rx: &PacketBatch, i: usize, first: usize, count: usize) -> Option<(usize, MoldPacket<'_>)> {
    let p = MoldPacket::new_checked(rx.get(i).2).ok()?;
    let s = session_index(&p.session())?
        .checked_sub(first)
        .filter(|&s| s < count)?;
    Some((s, p))
}

/// Any number of UDP sessions on one socket, talking to one server.
///
/// `L` is what datagrams pass through on the way to and from the socket
/// ([`NoLink`]: nothing).
pub struct UdpClient<L: Link = NoLink> {
    port: UdpPort,
    /// Addresses of the server (cluster nodes), in order of preference.
    servers: Vec<SocketAddr>,
    /// The one in use.
    server: SocketAddr,
    tx: PacketBatch,
    rx: PacketBatch,
    names: Vec<SessionName>,
    /// Number of the first session's name (PG + 8 digits).
    first_session: usize,
    /// Per session: the client sequence number of its next new message.
    next_seq: Vec<u64>,
    /// Retransmission on.
    retransmit: bool,
    /// The retransmission timeout in force (backed off while the oldest
    /// message stays unanswered).
    rto: Rto,
    /// Per session: messages sent and not yet answered (retransmission on).
    queues: Vec<ResendQueue>,
    resent: u64,
    /// Per session: which replies have arrived (by reply sequence).
    replies: Vec<ReplyTrack>,
    /// With retransmission on, a session stops sending new messages while
    /// this many are unanswered (from the window the server advertises at
    /// login), so a loss never pushes later messages out of the server's
    /// reorder window or the answer out of its reply log.
    max_unanswered: usize,
    /// Per session: a login sent and not answered yet.
    logging_in: Vec<bool>,
    /// The secret the sessions log in with.
    secret: [u8; 10],
    /// When to resend unanswered logins, ns.
    next_login_ns: u64,
    /// What datagrams pass through, with its scratch batches (what passes
    /// up, what passes down; each room for every datagram twice).
    link: L,
    link_batches: Option<(PacketBatch, PacketBatch)>,
}

impl UdpClient<NoLink> {
    /// Binds an ephemeral socket (any address of the server's family) for
    /// `sessions` sessions talking to `servers[0]`. The other addresses are
    /// for a failover (see the crate documentation). Fails when `servers`
    /// is empty or the socket cannot be set up.
    pub fn new(servers: &[SocketAddr], sessions: usize) -> Result<Self, ClientError> {
        let server = *servers.first().ok_or(ClientError::NoServer)?;
        let local: SocketAddr = if server.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let port = UdpPort::bind(
            local,
            UdpOptions {
                max_batch: BATCH,
                ..UdpOptions::default()
            },
        )?;
        Ok(UdpClient {
            port,
            servers: servers.to_vec(),
            server,
            tx: PacketBatch::new(BATCH),
            rx: PacketBatch::new(BATCH),
            names: (0..sessions).map(session_name).collect(),
            first_session: 0,
            next_seq: vec![1; sessions],
            retransmit: false,
            rto: Rto::new(5_000_000, RTO_CEILING_NS),
            queues: vec![ResendQueue::default(); sessions],
            resent: 0,
            replies: vec![ReplyTrack::new(1); sessions],
            max_unanswered: DEFAULT_MAX_UNANSWERED,
            logging_in: vec![false; sessions],
            secret: [b' '; 10],
            next_login_ns: 0,
            link: NoLink,
            link_batches: None,
        })
    }
}

impl<L: Link> UdpClient<L> {
    /// Passes every datagram sent and received through `link` (fault
    /// injection).
    pub fn with_link<M: Link>(self, link: M) -> UdpClient<M> {
        let link_batches = link.active().then(|| {
            (
                PacketBatch::new(self.tx.capacity() * 2 + 1),
                PacketBatch::new(self.rx.capacity() * 2 + 1),
            )
        });
        UdpClient {
            port: self.port,
            servers: self.servers,
            server: self.server,
            tx: self.tx,
            rx: self.rx,
            names: self.names,
            first_session: self.first_session,
            next_seq: self.next_seq,
            retransmit: self.retransmit,
            rto: self.rto,
            queues: self.queues,
            resent: self.resent,
            replies: self.replies,
            max_unanswered: self.max_unanswered,
            logging_in: self.logging_in,
            secret: self.secret,
            next_login_ns: self.next_login_ns,
            link,
            link_batches,
        }
    }

    /// The link datagrams pass through.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// Names the sessions PG`first`, PG`first + 1`, ... instead of from 0
    /// (several clients against one server each need their own).
    pub fn with_first_session(mut self, first: usize) -> Self {
        self.first_session = first;
        self.names = (first..first + self.names.len()).map(session_name).collect();
        self
    }

    /// Keeps every message until it is answered and resends it (with its
    /// original client sequence number) after `rto` without an answer (the
    /// timer doubles, up to 1 s, while the same message keeps timing out).
    /// The server recognises the copy and answers with the original reply,
    /// so each message is sequenced exactly once. Sessions then also obey
    /// the server's flow-control window (see [`UdpClient::ready`]).
    pub fn with_retransmission(mut self, rto: Duration) -> Self {
        let rto_ns = rto.as_nanos() as u64;
        self.retransmit = true;
        self.rto = Rto::new(rto_ns, RTO_CEILING_NS);
        self
    }

    /// Number of sessions.
    pub fn sessions(&self) -> usize {
        self.names.len()
    }

    /// The server address in use.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The server addresses this client was given, in order of preference.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Session `s`'s name.
    pub fn session_name(&self, s: usize) -> Option<&SessionName> {
        self.names.get(s)
    }

    /// The client sequence number session `s`'s next new message gets.
    pub fn next_client_seq(&self, s: usize) -> Option<u64> {
        self.next_seq.get(s).copied()
    }

    /// Session `s`'s reply position: every reply below it has arrived.
    pub fn next_reply_seq(&self, s: usize) -> Option<u64> {
        self.replies.get(s).map(ReplyTrack::next)
    }

    /// Sends a Login with `secret` for every session and returns at once;
    /// [`UdpClient::tick`] resends it every 200 ms until answered, and
    /// [`UdpClient::poll`] delivers the answers ([`Event::LoginAccepted`]:
    /// the session continues at the sequences the server reports;
    /// [`Event::LoginRejected`]). Fails for a secret the wire cannot carry.
    pub fn start_login(&mut self, secret: &str) -> Result<(), ClientError> {
        self.secret = secret_field(secret)?;
        self.logging_in.iter_mut().for_each(|p| *p = true);
        self.next_login_ns = 0;
        self.send_logins(now_ns())
    }

    /// True while a session's login is unanswered.
    pub fn logging_in(&self) -> bool {
        self.logging_in.iter().any(|&p| p)
    }

    /// Logs every session in with `secret` and waits (polling) until each
    /// is accepted, one is refused ([`ClientError::LoginRejected`]) or
    /// `timeout` passes ([`ClientError::LoginTimeout`]). Other replies that
    /// arrive meanwhile are dropped.
    pub fn login(&mut self, secret: &str, timeout: Duration) -> Result<(), ClientError> {
        self.start_login(secret)?;
        let deadline = now_ns() + timeout.as_nanos() as u64;
        let mut refused = None;
        while self.logging_in() {
            let now = now_ns();
            if now >= deadline {
                return Err(ClientError::LoginTimeout(self.server));
            }
            self.send_logins(now)?;
            self.poll(|e, _| {
                if let Event::LoginRejected { session, reason } = e {
                    refused.get_or_insert((session, reason));
                }
            })?;
            if let Some((s, reason)) = refused {
                let name = self.names.get(s).copied().unwrap_or([b' '; 10]);
                return Err(ClientError::LoginRejected {
                    session: String::from_utf8_lossy(&name).trim_end().to_string(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// Sends the unanswered logins, if it is time.
    fn send_logins(&mut self, now: u64) -> Result<(), ClientError> {
        if now < self.next_login_ns || !self.logging_in() {
            return Ok(());
        }
        let login = Login::new(self.secret, 0, now);
        for s in 0..self.names.len() {
            if self.logging_in[s] {
                self.push_control(s, login.as_bytes())?;
            }
        }
        self.next_login_ns = now + LOGIN_RETRY_NS;
        self.flush()
    }

    /// Queues a datagram of session `s` with the single block `block` and
    /// sequence 0 (session control).
    fn push_control(&mut self, s: usize, block: &[u8]) -> Result<(), ClientError> {
        if self.tx.is_full() {
            self.flush()?;
        }
        let name = self.names[s];
        let Some(slot) = self.tx.next_slot() else {
            return Ok(());
        };
        let Some(mut b) = MoldBuilder::new(slot, &name, 0) else {
            return Ok(());
        };
        b.push(block);
        let n = b.finish();
        self.tx.commit(Peer::Addr(self.server), n);
        Ok(())
    }

    /// Logs every session out (best effort, one datagram each), so the
    /// sessions can log in again at once from another address.
    pub fn logout(&mut self) -> Result<(), ClientError> {
        let logout = Logout::new(now_ns());
        for s in 0..self.names.len() {
            self.push_control(s, logout.as_bytes())?;
        }
        self.flush()
    }

    /// False while session `s` may not send new messages (retransmission on
    /// and three quarters of the server's window unanswered: the reserve
    /// leaves room for applications that answer one message with several
    /// replies). New messages should then wait; sending anyway risks them
    /// falling out of the server's reorder window after a loss.
    pub fn ready(&self, s: usize) -> bool {
        !self.retransmit || self.queues.get(s).is_none_or(|q| q.len() < self.max_unanswered)
    }

    /// Queues one datagram for session `s` with `messages` (at most
    /// [`crate::MAX_PACK`], else [`ClientError::TooMany`]); returns the
    /// client sequence number of the first. Sent at the next
    /// [`UdpClient::flush`]; when the transmit batch (64 datagrams) is
    /// full, it is flushed first. The message is copied: the caller keeps
    /// `messages`.
    ///
    /// The flow-control window is not enforced here: check
    /// [`UdpClient::ready`] first. Messages sent past it are still kept for
    /// retransmission, but the server may refuse those beyond its reorder
    /// window after a loss.
    pub fn send(&mut self, s: usize, messages: &[Outbound]) -> Result<u64, ClientError> {
        if messages.len() > crate::MAX_PACK {
            return Err(ClientError::TooMany(messages.len()));
        }
        self.send_with(s, messages.len(), |k, _, out| messages[k].write(out))
    }

    /// Queues one datagram for session `s` with `count` messages (at most
    /// [`crate::MAX_PACK`]; more are not sent), each written by
    /// `fill(k, client_seq, out)` straight into the datagram (no copy, no
    /// allocation). Returns the client sequence number of the first.
    pub fn send_with(
        &mut self,
        s: usize,
        count: usize,
        mut fill: impl FnMut(usize, u64, &mut [u8; MESSAGE_LEN]),
    ) -> Result<u64, ClientError> {
        if s >= self.names.len() {
            return Err(ClientError::NoSession(s));
        }
        if self.tx.is_full() {
            self.flush()?;
        }
        let first = self.next_seq[s];
        let name = self.names[s];
        let Some(slot) = self.tx.next_slot() else {
            return Err(std::io::Error::other("tx batch full").into());
        };
        let Some(mut b) = MoldBuilder::new(slot, &name, first) else {
            return Err(std::io::Error::other("slot too small").into());
        };
        let mut msg = [0u8; MESSAGE_LEN];
        let mut k = 0;
        // One time for the whole datagram: a resend recognises the messages
        // that travelled (and were lost) together by it.
        let sent_ns = now_ns();
        while k < count {
            let seq = first + k as u64;
            fill(k, seq, &mut msg);
            if !b.push(&msg) {
                break;
            }
            if self.retransmit {
                self.queues[s].keep(seq, &msg, sent_ns);
            }
            k += 1;
        }
        let len = b.finish();
        self.tx.commit(Peer::Addr(self.server), len);
        self.next_seq[s] += k as u64;
        Ok(first)
    }

    /// Sends everything queued (or as much as the socket takes now; the
    /// rest is dropped, as a full network would).
    pub fn flush(&mut self) -> Result<(), ClientError> {
        if self.tx.is_empty() && !self.link.holds(Direction::Up) {
            return Ok(());
        }
        match &mut self.link_batches {
            Some((out, _)) => {
                self.link.pass(Direction::Up, &self.tx, out, now_ns());
                self.tx.clear();
                if !out.is_empty() {
                    self.port.send(out)?;
                }
            }
            None => {
                self.port.send(&mut self.tx)?;
            }
        }
        Ok(())
    }

    /// Receives what is pending (one `recvmmsg`, never waiting) and calls
    /// `f` for each event with the time (ns) its batch was received. Keeps
    /// the session state up to date on the way (login answers, reply
    /// positions, answered messages, messages the server reports missing).
    /// Returns the number of datagrams received.
    pub fn poll(&mut self, mut f: impl FnMut(Event, u64)) -> Result<usize, ClientError> {
        let mut n = self.port.recv(&mut self.rx)?;
        // With a link, what it delivers is handled in place of what arrived
        // (the batches are swapped back at the end); it may also let out a
        // datagram it held back when nothing arrived.
        let mut swapped = false;
        if let Some((_, delivered)) = &mut self.link_batches {
            if n > 0 || self.link.holds(Direction::Down) {
                self.link.pass(Direction::Down, &self.rx, delivered, now_ns());
                std::mem::swap(&mut self.rx, delivered);
                n = self.rx.len();
                if n == 0 {
                    std::mem::swap(&mut self.rx, delivered);
                    return Ok(0);
                }
                swapped = true;
            }
        }
        if n == 0 {
            return Ok(0);
        }
        let now = now_ns();
        for i in 0..n {
            let Some((s, p)) = received(&self.rx, i, self.first_session, self.names.len()) else {
                continue;
            };
            let first = p.sequence();
            if p.is_end_of_session() {
                f(Event::EndOfSession { session: s }, now);
                continue;
            }
            // Sequence 0: unsequenced (session-layer rejects, login answers).
            if first != 0 {
                let end = first + p.count() as u64;
                self.replies[s].arrived(first, end, now);
            }
            for (k, block) in p.blocks().enumerate() {
                // A raw echo returns our own packet: its sequence is ours.
                let Some(e) = decode_block(s, block, first + k as u64) else {
                    continue;
                };
                let answered = match e {
                    Event::LoginAccepted {
                        next_client_seq,
                        next_reply_seq,
                        window,
                        ..
                    } if self.logging_in[s] => {
                        // Only the answer to a login in progress: a late or
                        // duplicated one must not rewind a running session.
                        self.next_seq[s] = next_client_seq;
                        // Keep a quarter of the window in reserve: an
                        // application may send several replies per
                        // message, and the reply log must still hold the
                        // oldest unanswered one's.
                        let w = window as usize;
                        self.max_unanswered = (w - w / 4).max(1);
                        self.replies[s] = ReplyTrack::new(next_reply_seq);
                        self.logging_in[s] = false;
                        0
                    }
                    Event::NotTaken {
                        client_seq, reason, ..
                    } => {
                        if reason == RejectReason::SequenceGap as u16 {
                            // The server names the message it waits for:
                            // resend exactly that one, without waiting for
                            // a timeout.
                            self.queues[s].report_missing(client_seq);
                        }
                        0
                    }
                    Event::Ack { client_seq, .. }
                    | Event::Reject { client_seq, .. }
                    | Event::Echoed { client_seq, .. } => client_seq,
                    Event::Report { report, .. } => report.client_seq,
                    Event::LoginAccepted { .. }
                    | Event::LoginRejected { .. }
                    | Event::EndOfSession { .. } => 0,
                };
                if self.retransmit && answered != 0 && self.queues[s].answered(answered) {
                    self.rto.reset();
                }
                f(e, now);
            }
        }
        if swapped {
            if let Some((_, delivered)) = &mut self.link_batches {
                std::mem::swap(&mut self.rx, delivered);
            }
        }
        Ok(n)
    }

    /// Does what is due at `now_ns`: resends unanswered logins, asks for
    /// replies whose gap has lasted, and (retransmission on) resends the
    /// messages the server reported missing and the oldest unanswered
    /// message of any session whose timer ran out. Call it after every
    /// [`UdpClient::poll`]. Returns the number of messages resent.
    pub fn tick(&mut self, now_ns: u64) -> Result<usize, ClientError> {
        self.send_logins(now_ns)?;
        self.request_missing(now_ns)?;
        if !self.retransmit {
            return Ok(0);
        }
        let rto = self.rto.current_ns();
        let mut timed_out = false;
        let mut resent = 0;
        for s in 0..self.queues.len() {
            if let Some(k) = self.queues[s].take_missing() {
                resent += self.resend_run(s, k, now_ns)?;
            }
            if let Some((seq, again)) = self.queues[s].timed_out(now_ns, rto) {
                // A second timeout of the same message backs the timer off,
                // as TCP's does.
                timed_out |= again;
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

    /// Messages resent so far.
    pub fn retransmitted(&self) -> u64 {
        self.resent
    }

    /// Resends message `seq` of session `s` with the rest of its datagram;
    /// returns how many.
    fn resend_run(&mut self, s: usize, seq: u64, now_ns: u64) -> Result<usize, ClientError> {
        if !self.queues[s].is_unanswered(seq) {
            return Ok(0);
        }
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
        let n = self.queues[s].resend_run(seq, now_ns, |m| b.push(m));
        let len = b.finish();
        self.tx.commit(Peer::Addr(self.server), len);
        Ok(n)
    }

    /// Asks for the replies of any session whose reply gap has lasted.
    fn request_missing(&mut self, now_ns: u64) -> Result<(), ClientError> {
        for s in 0..self.replies.len() {
            let Some((first, count)) = self.replies[s].request(now_ns) else {
                continue;
            };
            let mut h = [0u8; HEADER_LEN];
            write_header_only(&mut h, &self.names[s], first, count);
            if self.tx.is_full() {
                self.flush()?;
            }
            self.tx.push(Peer::Addr(self.server), &h);
        }
        self.flush()
    }

    /// Sends a raw datagram to the server (tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.flush()?;
        self.tx.push(Peer::Addr(self.server), bytes);
        self.flush()
    }
}
