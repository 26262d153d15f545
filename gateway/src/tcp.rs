//! SoupBinTCP gateway over a stream port (kernel TCP).
//!
//! Each connection has a reassembly buffer: received chunks are appended and
//! whole SoupBinTCP packets parsed off the front, so a packet split across
//! reads (or many packets in one read) is handled the same way. A
//! connection must log in before sending data: the session (the requested
//! session, or the username when blank) must be configured in the
//! [`SessionDirectory`] and the password must be its secret, else Login
//! Rejected `A`; a session live on another connection (policy `reject`) or
//! held by another gateway gets `S`; a cluster node that is not the leader
//! answers every login `L` (see [`crate::leadership`]). A non-zero requested sequence number
//! replays the session's replies from there out of its reply log, so a
//! client that lost its connection recovers every reply it missed.
//! Unsequenced Data packets carry one 100-byte message each; the client
//! sequence is implicit (1, 2, ... per session). Replies leave as Sequenced
//! Data packets, many per write.
//!
//! Protocol violations: an oversize or zero-length packet makes the byte
//! stream untrustworthy, so the connection is closed; a Login Request that
//! cannot be read (wrong length, bad number) on a connection not logged in
//! gets Login Rejected `A` and the connection is closed, so the client
//! learns why; other bad packets are skipped and counted; data before login
//! closes the connection. When the
//! input ring is full the connection's remaining bytes stay buffered and the
//! gateway stops reading until the sequencer catches up, so TCP flow control
//! pushes back on the client; nothing accepted is dropped.

use crate::directory::{LoginError, SessionDirectory};
use crate::gateway_core::GatewayCore;
use crate::options::GatewayOptions;
use crate::replies::Framing;
use crate::session_core::{Action, LoginRequest, LoginVerdict, Replay, SessionCore};
use crate::GatewayLoop;
use crate::GatewayRings;
use peregrine_netio::{clock, ConnId, PacketBatch, Peer, Port, RxEvent, StreamPort, SLOT_BYTES};
use peregrine_wire::alpha::alpha_field;
use peregrine_wire::moldudp64::SessionName;
use peregrine_wire::soupbintcp::{
    frame_len, kind, parse_packet, reject_reason, write_login_accepted, write_login_rejected, write_packet,
    SoupError, SoupPacket, LENGTH_PREFIX, MAX_PACKET_LEN,
};
use std::sync::Arc;

/// Bytes per receive chunk (a baseline echo measured against the gateway
/// reads the same): a client streaming at full rate has many
/// packets waiting, and a chunk per connection per poll must carry enough
/// of them for a poll loop that is busy elsewhere (a cluster leader's
/// rounds last hundreds of microseconds in throughput runs). A ping-pong
/// message still arrives in one small read.
pub const RX_CHUNK_BYTES: usize = 16 << 10;

/// Most reads per [`GatewayLoop::poll_rx`] while chunks keep coming back
/// full (more is waiting).
const RX_READS_PER_POLL: usize = 4;

/// With no connection open, the port (its listener) is polled every this
/// many calls only: a node with no TCP clients, like a cluster leader whose
/// clients all use UDP, then pays one `epoll_wait` per 16 rounds instead of
/// one per round, and a new connection waits at most 16 rounds (tens of
/// microseconds) to be accepted.
pub const IDLE_LISTEN_POLLS: u32 = 16;

/// Reassembly buffer size: one receive chunk plus one partial packet.
const REASSEMBLY_BYTES: usize = RX_CHUNK_BYTES + LENGTH_PREFIX + MAX_PACKET_LEN;

struct ConnState {
    id: ConnId,
    open: bool,
    session: Option<u32>,
    buf: Vec<u8>,
}

/// A SoupBinTCP gateway owning one stream port.
pub struct TcpGateway<P: StreamPort> {
    port: P,
    rx: PacketBatch,
    rx_pos: usize,
    /// A connection whose buffered packets wait for ring room.
    blocked: Option<u32>,
    /// Calls to `poll_rx` while no connection was open (see
    /// [`IDLE_LISTEN_POLLS`]).
    idle_polls: u32,
    core: SoupTcp,
}

/// Everything but the port and the receive batch: the shared gateway core
/// and the connections.
struct SoupTcp {
    gw: GatewayCore,
    conns: Vec<ConnState>,
    /// Connections open now.
    open: usize,
}

/// Outcome of handling buffered packets.
enum Progress {
    /// Everything complete was handled.
    Done,
    /// The input ring is full; packets remain buffered.
    Blocked,
}

impl<P: StreamPort> TcpGateway<P> {
    /// Gateway `id` over the stream `port`, admitting the sessions of
    /// `directory`.
    pub fn new(
        id: u16,
        port: P,
        rings: GatewayRings,
        directory: Arc<SessionDirectory>,
        opts: GatewayOptions,
    ) -> Self {
        TcpGateway {
            port,
            rx: PacketBatch::with_slot_bytes(opts.rx_burst.max(1), RX_CHUNK_BYTES),
            rx_pos: 0,
            blocked: None,
            idle_polls: 0,
            core: SoupTcp {
                gw: GatewayCore::new(id, Framing::SoupBinTcp, rings, directory, &opts, false),
                conns: Vec::new(),
                open: 0,
            },
        }
    }

    /// The port.
    pub fn port(&self) -> &P {
        &self.port
    }
}

impl SoupTcp {
    fn conn_index(&self, id: ConnId) -> Option<usize> {
        let c = self.conns.get(id.index as usize)?;
        (c.open && c.id == id).then_some(id.index as usize)
    }

    fn opened(&mut self, id: ConnId) {
        let i = id.index as usize;
        while self.conns.len() <= i {
            self.conns.push(ConnState {
                id,
                open: false,
                session: None,
                buf: Vec::new(),
            });
        }
        let c = &mut self.conns[i];
        if !c.open {
            self.open += 1;
        }
        c.id = id;
        c.open = true;
        c.session = None;
        c.buf.clear();
        c.buf.reserve(REASSEMBLY_BYTES);
    }

    fn closed(&mut self, id: ConnId) {
        let Some(i) = self.conn_index(id) else { return };
        let c = &mut self.conns[i];
        c.open = false;
        self.open -= 1;
        c.buf.clear();
        if let Some(s) = c.session.take() {
            self.gw.core.unbind(s, Peer::Conn(id));
        }
    }

    fn close(&mut self, i: usize, port: &mut impl StreamPort) {
        let id = self.conns[i].id;
        self.gw.replies.send(port);
        port.close(id);
        self.closed(id);
    }

    /// Appends a chunk to connection `id`'s buffer and handles its packets.
    fn on_data(&mut self, id: ConnId, data: &[u8], port: &mut impl StreamPort) -> Progress {
        let Some(i) = self.conn_index(id) else {
            return Progress::Done;
        };
        let c = &mut self.conns[i];
        if c.buf.len() + data.len() > REASSEMBLY_BYTES {
            // Cannot happen while the buffer only ever holds one partial
            // packet between chunks; treat as a protocol violation.
            self.gw.counters_mut().dropped_malformed += 1;
            self.close(i, port);
            return Progress::Done;
        }
        c.buf.extend_from_slice(data);
        self.process(i, port)
    }

    /// Handles every complete packet buffered for connection `i`.
    fn process(&mut self, i: usize, port: &mut impl StreamPort) -> Progress {
        // Take the buffer out so packets can borrow it while `self` is
        // mutated; `take` leaves an empty Vec and allocates nothing.
        let mut buf = std::mem::take(&mut self.conns[i].buf);
        let mut at = 0usize;
        let mut progress = Progress::Done;
        let mut keep = true;
        while at < buf.len() {
            match parse_packet(&buf[at..]) {
                Ok(None) => break,
                Ok(Some((pkt, n))) => match self.on_packet(i, pkt, port) {
                    PacketOutcome::Consumed => at += n,
                    PacketOutcome::Blocked => {
                        progress = Progress::Blocked;
                        break;
                    }
                    PacketOutcome::Closed => {
                        keep = false;
                        break;
                    }
                },
                Err(SoupError::Oversize(_)) | Err(SoupError::Empty) => {
                    self.gw.counters_mut().closed_oversize_frame += 1;
                    self.close(i, port);
                    keep = false;
                    break;
                }
                Err(_) => {
                    self.gw.counters_mut().dropped_malformed += 1;
                    let login = buf.get(at + LENGTH_PREFIX) == Some(&kind::LOGIN_REQUEST);
                    if login && self.conns[i].session.is_none() {
                        // A Login Request that cannot be read: refused as
                        // not authorised and the connection closed, so the
                        // client learns why instead of waiting.
                        self.gw.counters_mut().logins_rejected += 1;
                        self.reject_login(i, LoginError::NotAuthorised, port);
                        keep = false;
                        break;
                    }
                    match frame_len(&buf[at..]) {
                        Ok(Some(n)) => at += n,
                        _ => break,
                    }
                }
            }
        }
        if keep && self.conns[i].open {
            buf.drain(..at);
            self.conns[i].buf = buf;
        } else {
            buf.clear();
            self.conns[i].buf = buf;
        }
        progress
    }

    fn on_packet(&mut self, i: usize, pkt: SoupPacket<'_>, port: &mut impl StreamPort) -> PacketOutcome {
        if let Some(session) = self.conns[i].session {
            self.gw.core.heard_from(session);
        }
        match pkt {
            SoupPacket::LoginRequest {
                username,
                password,
                session,
                sequence,
            } => self.login(i, username, password, session, sequence, port),
            SoupPacket::UnsequencedData(block) => self.data(i, block, port),
            SoupPacket::ClientHeartbeat => {
                self.gw.counters_mut().heartbeats += 1;
                PacketOutcome::Consumed
            }
            SoupPacket::LogoutRequest => {
                self.close(i, port);
                PacketOutcome::Closed
            }
            SoupPacket::Debug(_) => PacketOutcome::Consumed,
            // Server→client packet types sent by a client.
            _ => {
                self.gw.counters_mut().dropped_malformed += 1;
                PacketOutcome::Consumed
            }
        }
    }

    /// A Login Request on connection `i`: the session is the requested
    /// one, or the username when blank; the requested sequence says where
    /// replies resume (0: from now on).
    fn login(
        &mut self,
        i: usize,
        username: [u8; 6],
        password: [u8; 10],
        session: SessionName,
        sequence: u64,
        port: &mut impl StreamPort,
    ) -> PacketOutcome {
        if self.conns[i].session.is_some() {
            self.gw.counters_mut().dropped_not_logged_in += 1;
            return PacketOutcome::Consumed;
        }
        let mut name: SessionName = session;
        if name.iter().all(|&c| c == b' ') {
            name = alpha_field(&username);
        }
        let id = self.conns[i].id;
        let req = LoginRequest {
            name,
            secret: password,
            peer: Peer::Conn(id),
        };
        let (session, next) = match self.gw.core.login(&req, Replay::Strict(sequence)) {
            LoginVerdict::Accepted {
                session,
                next_reply_seq,
                taken_over,
                ..
            } => {
                let old = taken_over.and_then(|p| match p {
                    Peer::Conn(old) => self.conn_index(old),
                    Peer::Addr(_) => None,
                });
                if let Some(j) = old {
                    self.close(j, port);
                }
                (session, next_reply_seq)
            }
            LoginVerdict::Rejected(e) => {
                self.reject_login(i, e, port);
                return PacketOutcome::Closed;
            }
            // SoupBinTCP has no room for the leader's address: `L` alone,
            // and the client tries its next node.
            LoginVerdict::NotLeader { .. } => {
                self.refuse_login(i, reject_reason::NOT_LEADER, port);
                return PacketOutcome::Closed;
            }
        };
        self.conns[i].session = Some(session);
        // Requested sequence 0 or past the end: from now on.
        let from = if sequence == 0 || sequence > next {
            next
        } else {
            sequence
        };
        let mut out = [0u8; 33];
        let n = write_login_accepted(&mut out, &name, from);
        self.gw.replies.push_control(Peer::Conn(id), &out[..n], port);
        self.replay(session, from, next, port);
        PacketOutcome::Consumed
    }

    /// An Unsequenced Data packet on connection `i`: one message, client
    /// sequence implicit.
    fn data(&mut self, i: usize, block: &[u8], port: &mut impl StreamPort) -> PacketOutcome {
        let Some(session) = self.conns[i].session else {
            self.gw.counters_mut().dropped_not_logged_in += 1;
            self.close(i, port);
            return PacketOutcome::Closed;
        };
        let room = self.gw.ring_has_room();
        match self.gw.core.inbound_next(session, block, room) {
            Action::RingFull => return PacketOutcome::Blocked,
            Action::Stage { client_seq } => self.gw.stage(session, client_seq, block),
            Action::Reject { reason, client_seq } | Action::Refuse { reason, client_seq } => {
                self.gw.refuse(session, block, reason, client_seq, port)
            }
            // In order by construction: nothing to hold or answer.
            _ => {}
        }
        PacketOutcome::Consumed
    }

    /// Closes logged-in connections whose client sent nothing (not even a
    /// heartbeat) for the idle timeout. SoupBinTCP clients heartbeat every
    /// second when idle, so silence means the peer is gone.
    fn close_idle(&mut self, now_ns: u64, port: &mut impl StreamPort) {
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let Some(s) = c.session.filter(|_| c.open) else {
                continue;
            };
            let idle_ns = self.gw.core.idle_ns();
            let silent = self
                .gw
                .core
                .session(s)
                .is_some_and(|sess| now_ns.saturating_sub(sess.last_rx_ns) > idle_ns);
            if silent {
                self.gw.counters_mut().closed_idle += 1;
                self.close(i, port);
            }
        }
    }

    /// Sends replies `from..to` of session `idx` again, from its reply log,
    /// as Sequenced Data packets (a re-login with a sequence number).
    fn replay(&mut self, idx: u32, from: u64, to: u64, port: &mut impl StreamPort) {
        let Some(s) = self.gw.core.session(idx) else {
            return;
        };
        let Some(peer) = s.peer else { return };
        let mut buf = [0u8; SLOT_BYTES];
        let mut at = 0;
        let mut sent = 0u64;
        for seq in from..to {
            let Some(m) = s.log.get(seq) else { break };
            if buf.len() - at < LENGTH_PREFIX + 1 + m.len() {
                self.gw.replies.push_control(peer, &buf[..at], port);
                at = 0;
            }
            at += write_packet(&mut buf[at..], kind::SEQUENCED_DATA, m).unwrap_or(0);
            sent += 1;
        }
        if at > 0 {
            self.gw.replies.push_control(peer, &buf[..at], port);
        }
        self.gw.counters_mut().replies_retransmitted += sent;
    }

    fn reject_login(&mut self, i: usize, e: LoginError, port: &mut impl StreamPort) {
        self.refuse_login(i, e.code(), port);
    }

    /// Answers connection `i`'s login with Login Rejected `reason` and
    /// closes it.
    fn refuse_login(&mut self, i: usize, reason: u8, port: &mut impl StreamPort) {
        let mut out = [0u8; 4];
        let n = write_login_rejected(&mut out, reason);
        self.gw
            .replies
            .push_control(Peer::Conn(self.conns[i].id), &out[..n], port);
        self.close(i, port);
    }
}

enum PacketOutcome {
    Consumed,
    Blocked,
    Closed,
}

impl<P: StreamPort + Send> GatewayLoop for TcpGateway<P> {
    fn poll_rx(&mut self) -> usize {
        let mut work = 0;
        if let Some(i) = self.blocked {
            let i = i as usize;
            if self.core.conns.get(i).is_some_and(|c| c.open) {
                if let Progress::Blocked = self.core.process(i, &mut self.port) {
                    self.core.gw.publish();
                    return 0;
                }
            }
            self.blocked = None;
            work += 1;
        }
        if self.core.open == 0 && self.rx_pos >= self.rx.len() {
            self.idle_polls = self.idle_polls.wrapping_add(1);
            if self.idle_polls % IDLE_LISTEN_POLLS != 1 {
                self.core.gw.publish();
                return work;
            }
        }
        for _ in 0..RX_READS_PER_POLL {
            if self.rx_pos >= self.rx.len() {
                self.rx_pos = 0;
                match self.port.recv(&mut self.rx) {
                    Ok(0) | Err(_) => {
                        self.rx.clear();
                        break;
                    }
                    Ok(_) => self.core.gw.begin_burst(clock::now_ns()),
                }
            }
            while self.rx_pos < self.rx.len() {
                let (peer, event, data) = self.rx.get(self.rx_pos);
                self.rx_pos += 1;
                work += 1;
                let Peer::Conn(id) = peer else { continue };
                match event {
                    RxEvent::Opened => self.core.opened(id),
                    RxEvent::Closed => self.core.closed(id),
                    RxEvent::Data => {
                        self.core.gw.counters_mut().rx_packets += 1;
                        if let Progress::Blocked = self.core.on_data(id, data, &mut self.port) {
                            self.blocked = Some(id.index);
                            break;
                        }
                    }
                }
            }
            if self.blocked.is_some() || !self.rx.may_have_more() {
                break;
            }
        }
        self.core.gw.publish();
        work
    }

    fn poll_tx(&mut self) -> usize {
        let c = &mut self.core;
        if let Some(now) = c.gw.timer_due() {
            c.close_idle(now, &mut self.port);
            c.gw.heartbeats(now, &mut self.port);
        }
        let avail = c.gw.drain(&mut self.port);
        let _ = self.port.poll_tx();
        avail
    }

    fn latency_mut(&mut self) -> Option<&mut crate::latency::ReplyLatency> {
        Some(self.core.gw.replies.latency_mut())
    }

    fn core(&self) -> &SessionCore {
        &self.core.gw.core
    }

    fn core_mut(&mut self) -> &mut SessionCore {
        &mut self.core.gw.core
    }

    fn port(&self) -> &dyn Port {
        &self.port
    }

    fn transport(&self) -> &'static str {
        "tcp"
    }
}
