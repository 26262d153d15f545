//! SoupBinTCP gateway over a stream port (kernel TCP).
//!
//! Each connection has a reassembly buffer: received chunks are appended and
//! whole SoupBinTCP packets parsed off the front, so a packet split across
//! reads (or many packets in one read) is handled the same way. A
//! connection must log in before sending data: the session (the requested
//! session, or the username when blank) must be configured in the
//! [`SessionDirectory`] and the password must be its secret, else Login
//! Rejected `A`; a session live on another connection (policy `reject`) or
//! held by another gateway gets `S`. A non-zero requested sequence number
//! replays the session's replies from there out of its reply log, so a
//! client that lost its connection recovers every reply it missed.
//! Unsequenced Data packets carry one 100-byte message each; the client
//! sequence is implicit (1, 2, ... per session). Replies leave as Sequenced
//! Data packets, many per write.
//!
//! Protocol violations: an oversize or zero-length packet makes the byte
//! stream untrustworthy, so the connection is closed; other bad packets are
//! skipped and counted; data before login closes the connection. When the
//! input ring is full the connection's remaining bytes stay buffered and the
//! gateway stops reading until the sequencer catches up, so TCP flow control
//! pushes back on the client; nothing accepted is dropped.

use crate::counters::GatewayCounters;
use crate::directory::{LoginError, LoginPolicy, SessionDirectory};
use crate::replies::{Framing, ReplyPath};
use crate::session::SessionTable;
use crate::udp::{GatewayOptions, Timer};
use crate::GatewayLoop;
use crate::GatewayRings;
use peregrine_netio::{clock, ConnId, PacketBatch, Peer, Port, PortCounters, RxEvent, SLOT_BYTES};
use peregrine_ring::Producer;
use peregrine_sequencer::slot::{InboundSlot, SessionRef};
use peregrine_wire::message::{classify_inbound, RejectReason};
use peregrine_wire::moldudp64::SessionName;
use peregrine_wire::soupbintcp::{
    frame_len, kind, parse_packet, write_login_accepted, write_packet, SoupError, SoupPacket, LENGTH_PREFIX,
    MAX_PACKET_LEN,
};
use std::sync::Arc;

/// Reassembly buffer size: one receive chunk plus one partial packet.
const REASSEMBLY_BYTES: usize = SLOT_BYTES + LENGTH_PREFIX + MAX_PACKET_LEN;

struct ConnState {
    id: ConnId,
    open: bool,
    session: Option<u32>,
    buf: Vec<u8>,
}

/// A SoupBinTCP gateway owning one stream port.
pub struct TcpGateway<P: Port> {
    port: P,
    rx: PacketBatch,
    rx_pos: usize,
    /// A connection whose buffered packets wait for ring room.
    blocked: Option<u32>,
    core: TcpCore,
}

struct TcpCore {
    id: u16,
    rate_limit: crate::session::RateLimit,
    timer: Timer,
    heartbeat_ns: u64,
    idle_ns: u64,
    to_sequencer: Producer<InboundSlot>,
    rx_ns: u64,
    sessions: SessionTable,
    directory: Arc<SessionDirectory>,
    policy: LoginPolicy,
    conns: Vec<ConnState>,
    replies: ReplyPath,
    counters: GatewayCounters,
}

/// Outcome of handling buffered packets.
enum Progress {
    /// Everything complete was handled.
    Done,
    /// The input ring is full; packets remain buffered.
    Blocked,
}

impl<P: Port> TcpGateway<P> {
    /// Gateway `id` over the stream `port`, admitting the sessions of
    /// `directory`.
    pub fn new(
        id: u16,
        port: P,
        rings: GatewayRings,
        directory: Arc<SessionDirectory>,
        opts: GatewayOptions,
    ) -> Self {
        let n = directory.len();
        TcpGateway {
            port,
            rx: PacketBatch::new(opts.rx_burst.max(1)),
            rx_pos: 0,
            blocked: None,
            core: TcpCore {
                id,
                rate_limit: opts.rate_limit,
                timer: Timer::default(),
                heartbeat_ns: opts.heartbeat_interval.as_nanos() as u64,
                idle_ns: opts.idle_timeout.as_nanos() as u64,
                to_sequencer: rings.to_sequencer,
                rx_ns: 0,
                sessions: SessionTable::with_reply_log(n, opts.reply_log_depth),
                directory,
                policy: opts.login_policy,
                conns: Vec::new(),
                replies: ReplyPath::new(
                    Framing::SoupBinTcp,
                    rings.from_sequencer,
                    n,
                    opts.tx_burst,
                    opts.reply_burst,
                ),
                counters: GatewayCounters::default(),
            },
        }
    }

    /// The port.
    pub fn port(&self) -> &P {
        &self.port
    }
}

impl TcpCore {
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
        c.buf.clear();
        if let Some(s) = c.session.take() {
            if let Some(sess) = self.sessions.get_mut(s) {
                if sess.peer == Some(Peer::Conn(id)) {
                    sess.peer = None;
                }
            }
        }
    }

    fn close(&mut self, i: usize, port: &mut impl Port) {
        let id = self.conns[i].id;
        self.replies.send(port);
        port.close(Peer::Conn(id));
        self.closed(id);
    }

    /// Appends a chunk to connection `id`'s buffer and handles its packets.
    fn on_data(&mut self, id: ConnId, data: &[u8], port: &mut impl Port) -> Progress {
        let Some(i) = self.conn_index(id) else {
            return Progress::Done;
        };
        let c = &mut self.conns[i];
        if c.buf.len() + data.len() > REASSEMBLY_BYTES {
            // Cannot happen while the buffer only ever holds one partial
            // packet between chunks; treat as a protocol violation.
            self.counters.dropped_malformed += 1;
            self.close(i, port);
            return Progress::Done;
        }
        c.buf.extend_from_slice(data);
        self.process(i, port)
    }

    /// Handles every complete packet buffered for connection `i`.
    fn process(&mut self, i: usize, port: &mut impl Port) -> Progress {
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
                    self.counters.closed_oversize_frame += 1;
                    self.close(i, port);
                    keep = false;
                    break;
                }
                Err(_) => {
                    self.counters.dropped_malformed += 1;
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

    fn on_packet(&mut self, i: usize, pkt: SoupPacket<'_>, port: &mut impl Port) -> PacketOutcome {
        let id = self.conns[i].id;
        if let Some(sess) = self.conns[i].session.and_then(|s| self.sessions.get_mut(s)) {
            sess.last_rx_ns = self.rx_ns;
        }
        match pkt {
            SoupPacket::LoginRequest {
                username,
                password,
                session,
                sequence,
            } => {
                if self.conns[i].session.is_some() {
                    self.counters.dropped_not_logged_in += 1;
                    return PacketOutcome::Consumed;
                }
                let mut name: SessionName = session;
                if name.iter().all(|&c| c == b' ') {
                    name = [b' '; 10];
                    name[..6].copy_from_slice(&username);
                }
                let idx = match self.directory.authenticate(&name, &password, self.id) {
                    Ok(idx) => idx,
                    Err(e) => {
                        self.reject_login(i, e, port);
                        return PacketOutcome::Closed;
                    }
                };
                let fresh = self.sessions.get(idx).is_none();
                let Some(sess) = self.sessions.open(idx, name) else {
                    self.reject_login(i, LoginError::Unavailable, port);
                    return PacketOutcome::Closed;
                };
                let next = sess.next_reply_seq;
                // Requested sequence 0: from now on. Otherwise the replies
                // from there on must still be in the log.
                let from = if sequence == 0 || sequence > next {
                    next
                } else {
                    sequence
                };
                let replayable = from == next || sess.log.get(from).is_some();
                let live = match sess.peer {
                    Some(Peer::Conn(old)) => Some(old),
                    _ => None,
                };
                if !replayable || (live.is_some() && self.policy == LoginPolicy::Reject) {
                    self.reject_login(i, LoginError::Unavailable, port);
                    return PacketOutcome::Closed;
                }
                if let Some(old) = live {
                    if let Some(j) = self.conn_index(old) {
                        self.counters.logins_taken_over += 1;
                        self.close(j, port);
                    }
                }
                let Some(sess) = self.sessions.get_mut(idx) else {
                    return PacketOutcome::Consumed;
                };
                sess.peer = Some(Peer::Conn(id));
                sess.last_rx_ns = self.rx_ns;
                sess.last_tx_ns = self.rx_ns;
                self.conns[i].session = Some(idx);
                self.counters.logins += 1;
                self.counters.sessions += fresh as u64;
                let mut out = [0u8; 33];
                let n = write_login_accepted(&mut out, &name, from);
                self.replies.push_control(Peer::Conn(id), &out[..n], port);
                self.replay(idx, from, next, port);
                PacketOutcome::Consumed
            }
            SoupPacket::UnsequencedData(block) => {
                let Some(session) = self.conns[i].session else {
                    self.counters.dropped_not_logged_in += 1;
                    self.close(i, port);
                    return PacketOutcome::Closed;
                };
                if !self.to_sequencer.has_room(1) {
                    self.counters.ring_full += 1;
                    return PacketOutcome::Blocked;
                }
                let Some(sess) = self.sessions.get_mut(session) else {
                    return PacketOutcome::Consumed;
                };
                let client_seq = sess.next_client_seq;
                sess.next_client_seq += 1;
                self.counters.rx_messages += 1;
                let (now, limit) = (self.rx_ns, self.rate_limit);
                let admitted = classify_inbound(block).is_err() || sess.admit(now, limit);
                if !admitted {
                    self.counters.rejected_rate_limited += 1;
                    self.refuse(session, block, RejectReason::RateLimited, client_seq, port);
                    return PacketOutcome::Consumed;
                }
                match classify_inbound(block) {
                    Ok(_) => {
                        let (origin, rx_ns) = (SessionRef::new(self.id, session), self.rx_ns);
                        self.to_sequencer.stage_with(|s| {
                            s.msg.copy_from_slice(block);
                            s.origin = origin;
                            s.client_seq = client_seq;
                            s.gateway_rx_ns = rx_ns;
                        });
                        self.counters.accepted += 1;
                    }
                    Err(e) => {
                        self.counters.count_malformed(e);
                        self.refuse(session, block, e.reason(), client_seq, port);
                    }
                }
                PacketOutcome::Consumed
            }
            SoupPacket::ClientHeartbeat => {
                self.counters.heartbeats += 1;
                PacketOutcome::Consumed
            }
            SoupPacket::LogoutRequest => {
                self.close(i, port);
                PacketOutcome::Closed
            }
            SoupPacket::Debug(_) => PacketOutcome::Consumed,
            // Server→client packet types sent by a client.
            _ => {
                self.counters.dropped_malformed += 1;
                PacketOutcome::Consumed
            }
        }
    }

    /// Sends session `session` a session-layer Reject for client message
    /// `client_seq` (whose bytes were `block`), stamped with this read's
    /// receive time.
    fn refuse(
        &mut self,
        session: u32,
        block: &[u8],
        reason: RejectReason,
        client_seq: u64,
        port: &mut impl Port,
    ) {
        self.replies.reject(
            &mut self.sessions,
            session,
            block,
            reason as u16,
            client_seq,
            self.rx_ns,
            port,
            &mut self.counters,
        );
    }

    /// Closes logged-in connections whose client sent nothing (not even a
    /// heartbeat) for the idle timeout. SoupBinTCP clients heartbeat every
    /// second when idle, so silence means the peer is gone.
    fn close_idle(&mut self, now_ns: u64, port: &mut impl Port) {
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let Some(s) = c.session.filter(|_| c.open) else {
                continue;
            };
            let silent = self
                .sessions
                .get(s)
                .is_some_and(|sess| now_ns.saturating_sub(sess.last_rx_ns) > self.idle_ns);
            if silent {
                self.counters.closed_idle += 1;
                self.close(i, port);
            }
        }
    }

    /// Sends replies `from..to` of session `idx` again, from its reply log,
    /// as Sequenced Data packets (a re-login with a sequence number).
    fn replay(&mut self, idx: u32, from: u64, to: u64, port: &mut impl Port) {
        let Some(s) = self.sessions.get(idx) else { return };
        let Some(peer) = s.peer else { return };
        let mut buf = [0u8; SLOT_BYTES];
        let mut at = 0;
        let mut sent = 0u64;
        for seq in from..to {
            let Some(m) = s.log.get(seq) else { break };
            if buf.len() - at < LENGTH_PREFIX + 1 + m.len() {
                self.replies.push_control(peer, &buf[..at], port);
                at = 0;
            }
            at += write_packet(&mut buf[at..], kind::SEQUENCED_DATA, m).unwrap_or(0);
            sent += 1;
        }
        if at > 0 {
            self.replies.push_control(peer, &buf[..at], port);
        }
        self.counters.replies_retransmitted += sent;
    }

    fn reject_login(&mut self, i: usize, e: LoginError, port: &mut impl Port) {
        self.counters.logins_rejected += 1;
        let mut out = [0u8; 4];
        let n = write_packet(&mut out, kind::LOGIN_REJECTED, &[e.code()]).unwrap_or(0);
        self.replies
            .push_control(Peer::Conn(self.conns[i].id), &out[..n], port);
        self.close(i, port);
    }
}

enum PacketOutcome {
    Consumed,
    Blocked,
    Closed,
}

impl<P: Port + Send> GatewayLoop for TcpGateway<P> {
    fn poll_rx(&mut self) -> usize {
        let mut work = 0;
        if let Some(i) = self.blocked {
            let i = i as usize;
            if self.core.conns.get(i).is_some_and(|c| c.open) {
                if let Progress::Blocked = self.core.process(i, &mut self.port) {
                    self.core.to_sequencer.publish();
                    return 0;
                }
            }
            self.blocked = None;
            work += 1;
        }
        if self.rx_pos >= self.rx.len() {
            self.rx_pos = 0;
            match self.port.recv(&mut self.rx) {
                Ok(0) | Err(_) => {
                    self.rx.clear();
                    self.core.to_sequencer.publish();
                    return work;
                }
                Ok(_) => {
                    self.core.rx_ns = clock::now_ns();
                    self.core.replies.set_now(self.core.rx_ns);
                }
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
                    self.core.counters.rx_packets += 1;
                    if let Progress::Blocked = self.core.on_data(id, data, &mut self.port) {
                        self.blocked = Some(id.index);
                        break;
                    }
                }
            }
        }
        self.core.to_sequencer.publish();
        work
    }

    fn poll_tx(&mut self) -> usize {
        let c = &mut self.core;
        if let Some(now) = c.timer.due() {
            c.close_idle(now, &mut self.port);
            c.replies.heartbeats(
                &mut c.sessions,
                now,
                c.heartbeat_ns,
                c.idle_ns,
                &mut self.port,
                &mut c.counters,
            );
        }
        let avail = c.replies.drain(&mut c.sessions, &mut self.port, &mut c.counters);
        let _ = self.port.poll_tx();
        avail
    }

    fn counters(&self) -> GatewayCounters {
        self.core.counters
    }

    fn port_counters(&self) -> PortCounters {
        self.port.counters()
    }

    fn port_detail(&self) -> String {
        self.port.detail()
    }

    fn describe(&self) -> String {
        format!("tcp gateway {} on {}", self.core.id, self.port.local_addr())
    }

    fn sessions_mut(&mut self) -> Option<&mut crate::session::SessionTable> {
        Some(&mut self.core.sessions)
    }
}
