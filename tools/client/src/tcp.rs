//! TCP sessions: one SoupBinTCP connection per session, non-blocking after
//! login, partial writes kept and retried.
//!
//! TCP delivers in order and without loss, so there is no retransmission
//! on a live connection. The session's reply position (the sequence number
//! of the next Sequenced Data packet) is tracked from the Login Accepted on.
//!
//! # Failover
//!
//! [`TcpClient::connect`] looks for the node that serves: a connection
//! refused, a login unanswered within the login timeout, or a Login
//! Rejected `L` (not the leader; SoupBinTCP carries no hint) moves to the
//! next address. With [`TcpClient::with_failover`], every message sent is
//! also kept until it is answered, and a session whose connection closes
//! (or fails) logs in again on the next node that serves, asking for the
//! replies from its reply position (the Login Request's requested
//! sequence). SoupBinTCP numbers messages implicitly and does not say which
//! client sequence the node expects next, so the client learns what the
//! node has from its replies: it first logs in asking for no replay, which
//! makes the Login Accepted carry the node's next reply sequence `end`;
//! when replies are missing it logs out and in again asking for them, and
//! the node replays them up to `end`. Those replies answer every message
//! the node had sequenced; the client holds new messages back until the
//! replay has reached `end` (or every kept message is answered). The
//! messages still unanswered then are the ones the node never sequenced,
//! and they are written again, in order, ahead of anything new.
//! Reconnecting blocks the calling
//! [`TcpClient::poll`] or [`TcpClient::flush`] (up to the login timeout per
//! address); it happens only when a node fails.

use crate::event::{decode_block, Event, LoginRejection};
use crate::failover::{FailoverOptions, FailoverStats, Servers};
use crate::names::session_name;
use crate::outbound::Outbound;
use crate::resend::ResendQueue;
use crate::ClientError;
use peregrine_netio::clock::now_ns;
use peregrine_wire::message::MESSAGE_LEN;
use peregrine_wire::soupbintcp::{
    kind, parse_packet, reject_reason, write_login_request, write_packet, SoupPacket,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bytes of received stream kept per connection (many replies; a frame is
/// at most 103 bytes).
const INBUF: usize = 1 << 16;
/// Initial room for bytes waiting to be written per connection; it grows
/// only if the server stops reading for long.
const OUTBUF: usize = 1 << 20;
/// The longest [`TcpClient::connect`] looks for a node that serves.
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// Pause after every address refused or failed in a row, before trying
/// them again (an election in progress).
const ROUND_PAUSE: Duration = Duration::from_millis(50);

struct Conn {
    /// `None` while the session has no connection (between a failure and
    /// the next login).
    stream: Option<TcpStream>,
    /// The node the connection goes to.
    addr: SocketAddr,
    out: Vec<u8>,
    out_start: usize,
    inbuf: Vec<u8>,
    in_len: usize,
    next_seq: u64,
    /// Sequence number of the next Sequenced Data packet.
    next_reply: u64,
    /// Our own messages echoed back (raw echo baseline).
    echoed: u64,
    /// Messages sent and not answered yet (failover on).
    kept: ResendQueue,
    /// After a resuming login: when the connection was last heard from,
    /// while the replay may still be arriving (new messages wait).
    replaying: Option<u64>,
}

/// Any number of TCP sessions, one connection each.
pub struct TcpClient {
    conns: Vec<Conn>,
    servers: Servers,
    secret: String,
    raw: bool,
    failover: FailoverOptions,
    /// Keep messages and reconnect when a connection fails.
    reconnect: bool,
    stats: FailoverStats,
    last_reply_ns: u64,
    /// A failover in progress: when the old node's replies stopped.
    gap_from: Option<u64>,
    /// Number in the first session's name.
    first: usize,
    /// The node the last failover left.
    failed_from: Option<SocketAddr>,
}

/// How one login attempt ended.
enum Attempt {
    /// Logged in; the next Sequenced Data sequence, bytes read past the
    /// Login Accepted (the start of a replay), and where the replay ends
    /// (the node's next reply sequence at login; `None`: no replay).
    Accepted(TcpStream, u64, Vec<u8>, Option<u64>),
    /// Refused `L`: try another node.
    NotLeader,
    /// Refused for good (`A`, `S`).
    Refused(LoginRejection),
    /// Connection refused, closed, or no answer in time: try another node.
    Failed,
}

impl TcpClient {
    /// Connects `sessions` sessions named PG`first`, PG`first + 1`, ... to
    /// the node of `servers` that serves and logs each in with `secret`;
    /// `raw`: the peer is a raw echo that speaks no SoupBinTCP (baseline),
    /// so no login. Addresses are tried in order (a refused connection, no
    /// answer within 1 s, or a Login Rejected `L` moves to the next) for up
    /// to 5 s; a Login Rejected `A` or `S` fails at once.
    pub fn connect(
        servers: &[SocketAddr],
        sessions: usize,
        first: usize,
        raw: bool,
        secret: &str,
    ) -> Result<Self, ClientError> {
        let servers = Servers::new(servers)?;
        let mut c = TcpClient {
            conns: Vec::with_capacity(sessions),
            servers,
            secret: secret.to_string(),
            raw,
            failover: FailoverOptions::default(),
            reconnect: false,
            stats: FailoverStats::default(),
            last_reply_ns: 0,
            gap_from: None,
            first,
            failed_from: None,
        };
        for s in 0..sessions {
            c.conns.push(Conn {
                stream: None,
                addr: c.servers.current(),
                out: Vec::with_capacity(OUTBUF),
                out_start: 0,
                inbuf: vec![0u8; INBUF],
                in_len: 0,
                next_seq: 1,
                next_reply: 0,
                echoed: 0,
                kept: ResendQueue::default(),
                replaying: None,
            });
            c.open(s, first + s, CONNECT_WAIT)?;
        }
        Ok(c)
    }

    /// Keeps every message until it is answered and, when a session's
    /// connection fails, logs it in again on the node that serves and
    /// resumes exactly (see the module documentation); `opts` says how
    /// long to wait for a login and for a replay to go quiet. Call it
    /// before sending: messages sent earlier are not kept.
    pub fn with_failover(mut self, opts: FailoverOptions) -> Self {
        self.failover = opts;
        self.reconnect = true;
        self
    }

    /// The failovers so far.
    pub fn failover_stats(&self) -> FailoverStats {
        self.stats
    }

    /// The address of the node in use.
    pub fn server(&self) -> SocketAddr {
        self.servers.current()
    }

    /// Number of sessions.
    pub fn sessions(&self) -> usize {
        self.conns.len()
    }

    /// False while session `s` should not send new messages: its
    /// connection is being re-established, or the replay after a failover
    /// is still arriving. Messages sent anyway are queued behind the
    /// resent ones.
    pub fn ready(&self, s: usize) -> bool {
        self.conns
            .get(s)
            .is_some_and(|c| c.stream.is_some() && c.replaying.is_none())
    }

    /// Logs session `s` (named PG`number`) in on the first node that
    /// serves, starting at the address in use, for up to `wait`, resuming
    /// at its reply position when it has one. Returns where the replay of
    /// the replies it missed ends (`None`: nothing missed).
    fn open(&mut self, s: usize, number: usize, wait: Duration) -> Result<Option<u64>, ClientError> {
        let name = session_name(number);
        let deadline = Instant::now() + wait;
        let per_try = self.failover.login_timeout;
        let mut failed_in_a_row = 0;
        loop {
            let addr = self.servers.current();
            let requested = self.conns[s].next_reply;
            let attempt = if self.raw {
                match TcpStream::connect_timeout(&addr, per_try) {
                    Ok(stream) => Attempt::Accepted(stream, 0, Vec::new(), None),
                    Err(_) => Attempt::Failed,
                }
            } else if requested == 0 {
                login(addr, &name, &self.secret, 0, per_try)
            } else {
                resume(addr, &name, &self.secret, requested, per_try)
            };
            match attempt {
                Attempt::Accepted(stream, next_reply, rest, replay_end) => {
                    stream.set_nodelay(true)?;
                    stream.set_nonblocking(true)?;
                    let c = &mut self.conns[s];
                    c.stream = Some(stream);
                    c.addr = addr;
                    c.next_reply = next_reply;
                    let n = rest.len().min(c.inbuf.len());
                    c.inbuf[..n].copy_from_slice(&rest[..n]);
                    c.in_len = n;
                    return Ok(replay_end);
                }
                Attempt::Refused(reason) => {
                    return Err(ClientError::LoginRejected {
                        session: String::from_utf8_lossy(&name).trim_end().to_string(),
                        reason,
                    })
                }
                Attempt::NotLeader | Attempt::Failed => {
                    if matches!(attempt, Attempt::NotLeader) {
                        self.stats.refused_not_leader += 1;
                    }
                    if Instant::now() >= deadline {
                        return Err(ClientError::LoginTimeout(addr));
                    }
                    failed_in_a_row += 1;
                    if failed_in_a_row % self.servers.list().len() == 0 {
                        std::thread::sleep(ROUND_PAUSE);
                    }
                    self.servers.next();
                    self.stats.address_switches += 1;
                }
            }
        }
    }

    /// Session `s`'s connection failed: without failover an error; with it,
    /// the session logs in again on the node that serves (not the one that
    /// failed, unless it is the only one) and waits for the replay.
    fn lost(&mut self, s: usize, e: ClientError) -> Result<(), ClientError> {
        if !self.reconnect {
            return Err(e);
        }
        let now = now_ns();
        if self.failed_from != Some(self.conns[s].addr) {
            // The first session to lose this node: one failover for all
            // the sessions that follow it.
            self.failed_from = Some(self.conns[s].addr);
            self.stats.failovers += 1;
            self.gap_from = Some(if self.last_reply_ns != 0 {
                self.last_reply_ns
            } else {
                now
            });
        }
        let c = &mut self.conns[s];
        c.stream = None;
        c.out.clear();
        c.out_start = 0;
        c.in_len = 0;
        if self.servers.current() == c.addr {
            // The first session to notice moves on; the others follow it.
            self.servers.next();
            self.stats.address_switches += 1;
        }
        let wait = CONNECT_WAIT.max(self.failover.login_timeout * 3 * self.servers.list().len() as u32);
        let replay_end = self.open(s, self.first + s, wait)?;
        self.conns[s].replaying = Some(replay_end.unwrap_or(0));
        self.end_replay(s, now_ns());
        Ok(())
    }

    /// Ends session `s`'s replay wait once it is over: every kept message
    /// answered, or the replay arrived up to where it ends. The kept
    /// messages still unanswered then were never sequenced by this node:
    /// they are written again, in order, ahead of anything new (sent at
    /// `now`).
    fn end_replay(&mut self, s: usize, now: u64) {
        let c = &mut self.conns[s];
        let Some(end) = c.replaying else {
            return;
        };
        if !c.kept.is_empty() && c.next_reply < end {
            return;
        }
        c.replaying = None;
        c.out.clear();
        c.out_start = 0;
        let mut frame = [0u8; 3 + MESSAGE_LEN];
        let out = &mut c.out;
        let resent = c.kept.resend_span(c.kept.first_seq().unwrap_or(0), now, |m| {
            let len = write_packet(&mut frame, kind::UNSEQUENCED_DATA, m).unwrap_or(0);
            out.extend_from_slice(&frame[..len]);
            true
        });
        self.stats.resent += resent as u64;
    }

    /// Queues `messages` on session `s`; returns the client sequence number
    /// of the first (counted by the client: SoupBinTCP numbers unsequenced
    /// messages implicitly). Written at the next [`TcpClient::flush`].
    pub fn send(&mut self, s: usize, messages: &[Outbound]) -> Result<u64, ClientError> {
        self.send_with(s, messages.len(), |k, _, out| messages[k].write(out))
    }

    /// Queues `count` messages on session `s`, each written by
    /// `fill(k, client_seq, out)`; returns the client sequence number of
    /// the first. With failover on, each is also kept until answered.
    pub fn send_with(
        &mut self,
        s: usize,
        count: usize,
        mut fill: impl FnMut(usize, u64, &mut [u8; MESSAGE_LEN]),
    ) -> Result<u64, ClientError> {
        let keep = self.reconnect;
        let c = self.conns.get_mut(s).ok_or(ClientError::NoSession(s))?;
        let first = c.next_seq;
        let mut msg = [0u8; MESSAGE_LEN];
        let mut frame = [0u8; 3 + MESSAGE_LEN];
        let now = if keep { now_ns() } else { 0 };
        for k in 0..count {
            let seq = first + k as u64;
            fill(k, seq, &mut msg);
            let len = write_packet(&mut frame, kind::UNSEQUENCED_DATA, &msg).unwrap_or(0);
            c.out.extend_from_slice(&frame[..len]);
            if keep {
                c.kept.keep(seq, &msg, now);
            }
        }
        c.next_seq += count as u64;
        Ok(first)
    }

    /// Writes what is queued, as much as each socket takes now (nothing on
    /// a session still waiting for its replay). With failover on, a
    /// connection that fails is re-established here.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        for s in 0..self.conns.len() {
            if let Err(e) = write_out(&mut self.conns[s]) {
                self.lost(s, e)?;
            }
        }
        Ok(())
    }

    /// Reads what is pending on every connection (never waiting, except to
    /// re-establish a failed connection with failover on) and calls `f`
    /// for each event with the time (ns) it was read. Returns the number of
    /// events.
    pub fn poll(&mut self, mut f: impl FnMut(Event, u64)) -> Result<usize, ClientError> {
        let mut got = 0;
        for s in 0..self.conns.len() {
            match self.read(s, &mut f) {
                Ok(n) => got += n,
                Err(e) => self.lost(s, e)?,
            }
            if self.conns[s].replaying.is_some() {
                self.end_replay(s, now_ns());
            }
        }
        Ok(got)
    }

    /// Reads and handles what session `s`'s connection has pending.
    fn read(&mut self, s: usize, f: &mut impl FnMut(Event, u64)) -> Result<usize, ClientError> {
        let c = &mut self.conns[s];
        let Some(stream) = c.stream.as_mut() else {
            return Ok(0);
        };
        match stream.read(&mut c.inbuf[c.in_len..]) {
            Ok(0) => return Err(ClientError::Closed),
            Ok(n) => c.in_len += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        if c.in_len == 0 {
            return Ok(0);
        }
        let now = now_ns();
        let mut got = 0;
        let mut at = 0;
        loop {
            match parse_packet(&c.inbuf[at..c.in_len]) {
                Ok(Some((pkt, used))) => {
                    let e = match pkt {
                        SoupPacket::SequencedData(block) => {
                            c.next_reply += 1;
                            decode_block(s, block, 0)
                        }
                        // Session-layer rejects; or, from a raw echo
                        // (baseline), our own message back.
                        SoupPacket::UnsequencedData(block) => {
                            c.echoed += 1;
                            decode_block(s, block, c.echoed)
                        }
                        SoupPacket::EndOfSession => Some(Event::EndOfSession { session: s }),
                        _ => None,
                    };
                    at += used;
                    let Some(e) = e else { continue };
                    let answered = match e {
                        Event::Ack { client_seq, .. }
                        | Event::Reject { client_seq, .. }
                        | Event::NotTaken { client_seq, .. }
                        | Event::Echoed { client_seq, .. } => client_seq,
                        Event::Report { report, .. } => report.client_seq,
                        _ => 0,
                    };
                    if answered != 0 {
                        c.kept.answered(answered);
                        self.last_reply_ns = now;
                        if let Some(from) = self.gap_from.take() {
                            self.stats.completed(from, now);
                        }
                    }
                    f(e, now);
                    got += 1;
                }
                Ok(None) => break,
                Err(e) => return Err(ClientError::BadStream(e.to_string())),
            }
        }
        c.inbuf.copy_within(at..c.in_len, 0);
        c.in_len -= at;
        Ok(got)
    }

    /// Sends a Logout Request on every session (best effort).
    pub fn logout(&mut self) -> Result<(), ClientError> {
        let mut frame = [0u8; 3];
        let len = write_packet(&mut frame, kind::LOGOUT_REQUEST, &[]).unwrap_or(0);
        for c in &mut self.conns {
            c.out.extend_from_slice(&frame[..len]);
            c.replaying = None;
        }
        for c in &mut self.conns {
            write_out(c)?;
        }
        Ok(())
    }

    /// Writes raw bytes on session `s`'s connection (malformed-input tests).
    pub fn send_raw(&mut self, s: usize, bytes: &[u8]) -> Result<(), ClientError> {
        let c = self.conns.get_mut(s).ok_or(ClientError::NoSession(s))?;
        c.out.extend_from_slice(bytes);
        write_out(c)
    }

    /// Blocks up to `timeout` waiting for session `s`'s connection to close.
    pub fn wait_closed(&mut self, s: usize, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let Some(stream) = self.conns.get_mut(s).and_then(|c| c.stream.as_mut()) else {
            return true;
        };
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            match stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(_) => return true,
            }
        }
        false
    }
}

/// Writes what connection `c` has queued, as much as its socket takes now;
/// nothing while it has no connection or waits for its replay.
fn write_out(c: &mut Conn) -> Result<(), ClientError> {
    let Some(stream) = c.stream.as_mut().filter(|_| c.replaying.is_none()) else {
        return Ok(());
    };
    while c.out_start < c.out.len() {
        match stream.write(&c.out[c.out_start..]) {
            Ok(0) => return Err(ClientError::Closed),
            Ok(n) => c.out_start += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
    if c.out_start == c.out.len() {
        c.out.clear();
        c.out_start = 0;
    }
    Ok(())
}

/// Logs `name` in on `addr` to resume at reply sequence `from`: first
/// asking for no replay, which makes the node say its next reply sequence
/// `end`; when replies from `from` on are missing there (`from < end`),
/// logs out, waits for the node to close the connection, and logs in again
/// asking for them. The replay then ends at `end`: the replies to every
/// message the node had sequenced are below it (SoupBinTCP does not say
/// which client sequence the node expects next; this tells which messages
/// it has).
fn resume(addr: SocketAddr, name: &[u8; 10], secret: &str, from: u64, timeout: Duration) -> Attempt {
    let (mut stream, end, rest) = match login(addr, name, secret, 0, timeout) {
        Attempt::Accepted(stream, end, rest, _) => (stream, end, rest),
        other => return other,
    };
    if from >= end {
        return Attempt::Accepted(stream, end, rest, None);
    }
    let mut frame = [0u8; 3];
    let n = write_packet(&mut frame, kind::LOGOUT_REQUEST, &[]).unwrap_or(0);
    if stream.write_all(&frame[..n]).is_err() {
        return Attempt::Failed;
    }
    // The session is free again once the node has closed this connection.
    let until = Instant::now() + timeout;
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(_) if Instant::now() < until => continue,
            Ok(_) | Err(_) => return Attempt::Failed,
        }
    }
    match login(addr, name, secret, from, timeout) {
        Attempt::Accepted(stream, next, rest, _) => Attempt::Accepted(stream, next, rest, Some(end)),
        other => other,
    }
}

/// Connects to `addr` and logs `name` in with `secret`, asking for replies
/// from `requested` (0: from now on), waiting up to `timeout` for the
/// connection and again for the answer.
fn login(addr: SocketAddr, name: &[u8; 10], secret: &str, requested: u64, timeout: Duration) -> Attempt {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return Attempt::Failed;
    };
    let mut req = [0u8; 49];
    let n = write_login_request(
        &mut req,
        "pg",
        secret,
        std::str::from_utf8(name).unwrap_or(""),
        requested,
    );
    if stream.write_all(&req[..n]).is_err() || stream.set_read_timeout(Some(timeout)).is_err() {
        return Attempt::Failed;
    }
    let mut buf = vec![0u8; INBUF];
    let mut have = 0;
    loop {
        let r = match stream.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return Attempt::Failed,
            Ok(r) => r,
        };
        have += r;
        match parse_packet(&buf[..have]) {
            Ok(Some((SoupPacket::LoginAccepted { sequence, .. }, used))) => {
                return Attempt::Accepted(stream, sequence, buf[used..have].to_vec(), None);
            }
            Ok(Some((SoupPacket::LoginRejected(reject_reason::NOT_LEADER), _))) => return Attempt::NotLeader,
            Ok(Some((SoupPacket::LoginRejected(r), _))) => {
                return Attempt::Refused(LoginRejection::from_code(r))
            }
            Ok(Some(_)) | Err(_) => return Attempt::Failed,
            Ok(None) if have == buf.len() => return Attempt::Failed,
            Ok(None) => continue,
        }
    }
}
