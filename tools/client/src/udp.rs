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
//!
//! # Failover
//!
//! The client is given every cluster node's address for its gateway. A
//! login refused `L` moves to the hinted address (or the next one), and so
//! does a login unanswered for [`FailoverOptions::login_timeout`]. With
//! [`UdpClient::with_failover`], a logged-in client that hears nothing from
//! its node for [`FailoverOptions::silence`] (its heartbeats stopped) logs
//! every session in again on the next node, asking in the Login for the
//! replies from the first one it has not received. The LoginAccepted's
//! next client sequence `N` says what the new node has sequenced: messages
//! below `N` are answered by the replayed replies, and the kept messages
//! from `N` on (retransmission must be on to keep them) are resent at once
//! with their original numbers. Nothing is resent that the cluster already
//! sequenced, and the server's dedup would answer such a copy with its
//! original reply anyway.

use crate::event::{decode_block, Event};
use crate::failover::{FailoverOptions, FailoverStats, Servers};
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
    /// Addresses of the server (cluster nodes), in order of preference,
    /// and the one in use.
    servers: Servers,
    /// When to give up on a node.
    failover: FailoverOptions,
    /// Fail over when the node goes silent (else only logins move).
    detect_silence: bool,
    stats: FailoverStats,
    /// When the node in use was last heard from, ns (0: not yet).
    last_heard_ns: u64,
    /// When the last answer to a message arrived, ns.
    last_reply_ns: u64,
    /// When something was last sent, ns (client heartbeats).
    last_sent_ns: u64,
    /// A failover in progress: when the old node's replies stopped.
    gap_from: Option<u64>,
    /// When logins to the address in use started, ns.
    attempt_ns: u64,
    /// Per session: logged in before, so a new login resumes (asks for the
    /// replies it missed, resends what the node has not sequenced).
    resume: Vec<bool>,
    /// Per session: after a resuming login, resend the kept messages from
    /// this client sequence on (done at the end of the poll).
    resend_from: Vec<Option<u64>>,
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
    /// Binds an ephemeral socket (any address of the first server's
    /// family) for `sessions` sessions talking to `servers[0]` first: the
    /// addresses of every cluster node's gateway, in order of preference
    /// (see the module documentation for how the client moves among them).
    /// Fails when `servers` is empty or the socket cannot be set up.
    pub fn new(servers: &[SocketAddr], sessions: usize) -> Result<Self, ClientError> {
        let servers = Servers::new(servers)?;
        let local: SocketAddr = if servers.current().is_ipv4() {
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
            servers,
            failover: FailoverOptions::default(),
            detect_silence: false,
            stats: FailoverStats::default(),
            last_heard_ns: 0,
            last_reply_ns: 0,
            last_sent_ns: 0,
            gap_from: None,
            attempt_ns: 0,
            resume: vec![false; sessions],
            resend_from: vec![None; sessions],
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
            failover: self.failover,
            detect_silence: self.detect_silence,
            stats: self.stats,
            last_heard_ns: self.last_heard_ns,
            last_reply_ns: self.last_reply_ns,
            last_sent_ns: self.last_sent_ns,
            gap_from: self.gap_from,
            attempt_ns: self.attempt_ns,
            resume: self.resume,
            resend_from: self.resend_from,
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

    /// Fails over by itself: when the node in use stays silent for
    /// `opts.silence` (see the module documentation), and with
    /// `opts.login_timeout` per address while looking for the leader. Turn
    /// retransmission on too: the messages the new node never sequenced
    /// are resent from the retransmission queues.
    pub fn with_failover(mut self, opts: FailoverOptions) -> Self {
        self.failover = opts;
        self.detect_silence = true;
        self
    }

    /// The failovers so far.
    pub fn failover_stats(&self) -> FailoverStats {
        self.stats
    }

    /// Number of sessions.
    pub fn sessions(&self) -> usize {
        self.names.len()
    }

    /// The server address in use.
    pub fn server(&self) -> SocketAddr {
        self.servers.current()
    }

    /// The server addresses this client was given, in order of preference.
    pub fn servers(&self) -> &[SocketAddr] {
        self.servers.list()
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
        let now = now_ns();
        self.attempt_ns = now;
        self.send_logins(now)
    }

    /// True while a session's login is unanswered.
    pub fn logging_in(&self) -> bool {
        self.logging_in.iter().any(|&p| p)
    }

    /// Logs every session in with `secret` and waits (polling) until each
    /// is accepted, one is refused ([`ClientError::LoginRejected`]) or
    /// `timeout` passes ([`ClientError::LoginTimeout`]). Other replies that
    /// arrive meanwhile are dropped. Looks for the leader on the way: a
    /// refusal `L` moves to the hinted (or next) address, and so does an
    /// address that leaves the logins unanswered for the login timeout of
    /// [`FailoverOptions`].
    pub fn login(&mut self, secret: &str, timeout: Duration) -> Result<(), ClientError> {
        self.start_login(secret)?;
        let deadline = now_ns() + timeout.as_nanos() as u64;
        let mut refused = None;
        while self.logging_in() {
            let now = now_ns();
            if now >= deadline {
                return Err(ClientError::LoginTimeout(self.server()));
            }
            self.login_progress(now);
            self.send_logins(now)?;
            self.poll(|e, _| {
                if let Event::LoginRejected { session, reason } = e {
                    if !reason.is_not_leader() {
                        refused.get_or_insert((session, reason));
                    }
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

    /// Sends the unanswered logins, if it is time. A session that was
    /// logged in before asks for the replies from the first one it has not
    /// received.
    fn send_logins(&mut self, now: u64) -> Result<(), ClientError> {
        if now < self.next_login_ns || !self.logging_in() {
            return Ok(());
        }
        for s in 0..self.names.len() {
            if self.logging_in[s] {
                let from = if self.resume[s] { self.replies[s].next() } else { 0 };
                let login = Login::new(self.secret, from, now);
                self.push_control(s, login.as_bytes())?;
            }
        }
        self.next_login_ns = now + LOGIN_RETRY_NS;
        self.flush()
    }

    /// While logging in: an address that left the logins unanswered for
    /// the login timeout is given up for the next.
    fn login_progress(&mut self, now: u64) {
        let timeout = self.failover.login_timeout.as_nanos() as u64;
        if self.logging_in() && now.saturating_sub(self.attempt_ns) >= timeout {
            self.servers.next();
            self.switched(now, true);
        }
    }

    /// The address in use changed: logins start again there (at once, or
    /// after a short pause when no node is known to serve).
    fn switched(&mut self, now: u64, at_once: bool) {
        self.stats.address_switches += 1;
        self.attempt_ns = now;
        self.next_login_ns = if at_once { 0 } else { now + LOGIN_RETRY_NS / 4 };
    }

    /// The node in use went silent (or refused a login mid-run): logs every
    /// session in again on the next address.
    fn start_failover(&mut self, now: u64) {
        self.stats.failovers += 1;
        self.gap_from.get_or_insert(if self.last_reply_ns != 0 {
            self.last_reply_ns
        } else {
            now
        });
        self.logging_in.iter_mut().for_each(|p| *p = true);
        self.last_heard_ns = now;
        self.servers.next();
        self.switched(now, true);
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
        self.tx.commit(Peer::Addr(self.servers.current()), n);
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
    /// Also false while the session is logging in (again, after a
    /// failover).
    pub fn ready(&self, s: usize) -> bool {
        if self.logging_in.get(s).copied().unwrap_or(false) {
            return false;
        }
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
        self.tx.commit(Peer::Addr(self.servers.current()), len);
        self.next_seq[s] += k as u64;
        Ok(first)
    }

    /// Sends everything queued (or as much as the socket takes now; the
    /// rest is dropped, as a full network would).
    pub fn flush(&mut self) -> Result<(), ClientError> {
        if self.tx.is_empty() && !self.link.holds(Direction::Up) {
            return Ok(());
        }
        self.last_sent_ns = now_ns();
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
        // With more than one node, only the node in use is listened to: a
        // late answer from one left behind must not move a session.
        let only = (self.detect_silence || self.servers.list().len() > 1)
            .then(|| Peer::Addr(self.servers.current()));
        for i in 0..n {
            if only.is_some_and(|from| self.rx.get(i).0 != from) {
                continue;
            }
            let Some((s, p)) = received(&self.rx, i, self.first_session, self.names.len()) else {
                continue;
            };
            self.last_heard_ns = now;
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
                        // Keep a quarter of the window in reserve: an
                        // application may send several replies per
                        // message, and the reply log must still hold the
                        // oldest unanswered one's.
                        let w = window as usize;
                        self.max_unanswered = (w - w / 4).max(1);
                        if self.resume[s] {
                            // A failover: replies up to `next_reply_seq`
                            // exist (a lost replay is asked for again).
                            // Messages below `next_client_seq` were
                            // sequenced, their replies come with the
                            // replay; the kept ones from it on were not and
                            // are resent at the end of the poll.
                            self.replies[s].arrived(next_reply_seq, next_reply_seq, now);
                            if !self.retransmit
                                || self.queues[s].is_empty()
                                || next_client_seq >= self.next_seq[s]
                            {
                                // Nothing kept to resend: continue where
                                // the node is.
                                self.next_seq[s] = next_client_seq;
                            } else {
                                // From the oldest kept at the earliest:
                                // below it everything was answered.
                                let front = self.queues[s].first_seq().unwrap_or(next_client_seq);
                                self.resend_from[s] = Some(next_client_seq.max(front));
                            }
                        } else {
                            self.next_seq[s] = next_client_seq;
                            self.replies[s] = ReplyTrack::new(next_reply_seq);
                        }
                        self.resume[s] = true;
                        self.logging_in[s] = false;
                        0
                    }
                    Event::LoginRejected { reason, .. } if self.logging_in[s] && reason.is_not_leader() => {
                        self.stats.refused_not_leader += 1;
                        let hint = match reason {
                            crate::LoginRejection::NotLeader { leader, .. } => leader,
                            _ => None,
                        };
                        let to = self.servers.after_not_leader(hint);
                        // Straight to a named leader; after a bare `L`
                        // (an election), a short pause per address.
                        self.stats.address_switches += 1;
                        self.attempt_ns = now;
                        self.next_login_ns = if hint == Some(to) {
                            0
                        } else {
                            now + LOGIN_RETRY_NS / 4
                        };
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
                if answered != 0 {
                    self.last_reply_ns = now;
                    if let Some(from) = self.gap_from.take() {
                        self.stats.completed(from, now);
                    }
                }
                if self.retransmit && answered != 0 && self.queues[s].answered(answered) {
                    self.rto.reset();
                }
                f(e, now);
            }
            if only.is_some_and(|from| from != Peer::Addr(self.servers.current())) {
                // A refusal moved the client: the rest of the burst is
                // from the node left behind.
                break;
            }
        }
        if swapped {
            if let Some((_, delivered)) = &mut self.link_batches {
                std::mem::swap(&mut self.rx, delivered);
            }
        }
        self.resend_after_resume(now)?;
        Ok(n)
    }

    /// Does what is due at `now_ns`: resends unanswered logins, asks for
    /// replies whose gap has lasted, and (retransmission on) resends the
    /// messages the server reported missing and the oldest unanswered
    /// message of any session whose timer ran out. Call it after every
    /// [`UdpClient::poll`]. Returns the number of messages resent.
    pub fn tick(&mut self, now_ns: u64) -> Result<usize, ClientError> {
        if self.detect_silence {
            self.watch_node(now_ns)?;
        }
        self.send_logins(now_ns)?;
        self.request_missing(now_ns)?;
        if !self.retransmit {
            return Ok(0);
        }
        let rto = self.rto.current_ns();
        let mut timed_out = false;
        let mut resent = 0;
        for s in 0..self.queues.len() {
            if self.logging_in[s] {
                // Not logged in on the node in use yet: the resume resends.
                continue;
            }
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
        self.tx.commit(Peer::Addr(self.servers.current()), len);
        Ok(n)
    }

    /// Failover watch, at `now`: a login unanswered too long moves to the
    /// next address; a logged-in client whose node has been silent for
    /// the silence timeout fails over; one with nothing to send keeps its
    /// sessions live with heartbeats.
    fn watch_node(&mut self, now: u64) -> Result<(), ClientError> {
        let silence = self.failover.silence.as_nanos() as u64;
        if self.logging_in() {
            self.login_progress(now);
        } else if self.last_heard_ns != 0 && now.saturating_sub(self.last_heard_ns) >= silence {
            self.start_failover(now);
        } else if now.saturating_sub(self.last_sent_ns) >= silence / 3 {
            for s in 0..self.names.len() {
                let mut h = [0u8; HEADER_LEN];
                write_header_only(&mut h, &self.names[s], self.next_seq[s], 0);
                if self.tx.is_full() {
                    self.flush()?;
                }
                self.tx.push(Peer::Addr(self.servers.current()), &h);
            }
            self.flush()?;
        }
        Ok(())
    }

    /// Resends, for each session that resumed on a new node, its kept
    /// messages from the node's next client sequence on, with their
    /// original numbers, packed in full datagrams.
    fn resend_after_resume(&mut self, now: u64) -> Result<(), ClientError> {
        let mut resent = 0;
        for s in 0..self.resend_from.len() {
            let Some(mut seq) = self.resend_from[s].take() else {
                continue;
            };
            while seq < self.next_seq[s] {
                if self.tx.is_full() {
                    self.flush()?;
                }
                let name = self.names[s];
                let Some(slot) = self.tx.next_slot() else {
                    break;
                };
                let Some(mut b) = MoldBuilder::new(slot, &name, seq) else {
                    break;
                };
                let n = self.queues[s].resend_span(seq, now, |m| b.push(m));
                if n == 0 {
                    break;
                }
                let len = b.finish();
                self.tx.commit(Peer::Addr(self.servers.current()), len);
                seq += n as u64;
                resent += n;
            }
        }
        if resent > 0 {
            self.resent += resent as u64;
            self.stats.resent += resent as u64;
            self.flush()?;
        }
        Ok(())
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
            self.tx.push(Peer::Addr(self.servers.current()), &h);
        }
        self.flush()
    }

    /// Sends a raw datagram to the server (tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.flush()?;
        self.tx.push(Peer::Addr(self.servers.current()), bytes);
        self.flush()
    }
}
