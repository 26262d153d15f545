//! MoldUDP64 gateway over any datagram port (kernel UDP or DPDK).
//!
//! Receive path, per burst: one `recv` fills a batch of datagrams; each is
//! validated as a whole MoldUDP64 packet (a packet with broken framing is
//! dropped and counted: its block boundaries cannot be trusted), its session
//! looked up by name in the configured [`SessionDirectory`] and checked to
//! be bound to the datagram's source address, and each block checked
//! (length, type, version). Good blocks are staged into the input ring with
//! client sequence = packet sequence + block index; bad ones get a Reject.
//! If the ring lacks room for a packet's blocks, the packet and the rest of
//! the burst wait for the next poll (back-pressure: the socket buffer
//! absorbs it); if the ring stays full longer than `busy_after`, new
//! messages are answered Busy instead (not sequenced, the client resends),
//! so a client learns of the overload instead of losing datagrams to a full
//! socket buffer. One ring publish per burst.
//!
//! Sessions: a client logs in with a Login message (alone in a packet)
//! carrying the session's secret; the session is then bound to the source
//! address, and datagrams naming it from any other address, like datagrams
//! for unknown sessions or sessions not logged in, are dropped and counted
//! without an answer (answering would make us a reflector). A header-only
//! packet with a count is a MoldUDP64 retransmission request, answered from
//! the session's reply log.
//!
//! Transmit path: replies drained from the output ring in one burst are
//! packed per session into MoldUDP64 packets (up to 14 per datagram) and
//! sent with one `send` (one `sendmmsg`).

use crate::counters::GatewayCounters;
use crate::directory::{LoginError, LoginPolicy, SessionDirectory};
use crate::replies::{Framing, ReplyPath};
use crate::session::{RateLimit, SessionTable};
use crate::GatewayLoop;
use crate::GatewayRings;
use peregrine_netio::{clock, PacketBatch, Peer, Port, PortCounters};
use peregrine_ring::Producer;
use peregrine_sequencer::slot::{InboundSlot, SessionRef};
use peregrine_wire::message::{
    classify_inbound, Login, LoginAccepted, LoginRejected, MessageError, MessageType, RejectReason,
    LAYOUT_VERSION, MESSAGE_LEN,
};
use peregrine_wire::moldudp64::{
    MoldBuilder, MoldPacket, RetransmissionRequest, SessionName, MAX_MESSAGES_PER_PACKET, MAX_PAYLOAD,
};
use std::net::SocketAddr;
use std::sync::Arc;
use zerocopy::FromBytes;

/// Sizing of a gateway.
#[derive(Clone, Copy, Debug)]
pub struct GatewayOptions {
    /// Packets per receive burst.
    pub rx_burst: usize,
    /// Reply packets per transmit burst.
    pub tx_burst: usize,
    /// Most replies drained from the output ring per poll.
    pub reply_burst: usize,
    /// Send a heartbeat to a session we have sent nothing for this long.
    pub heartbeat_interval: std::time::Duration,
    /// A client silent this long is gone: TCP connections are closed, UDP
    /// sessions get no more heartbeats (replies still go out).
    pub idle_timeout: std::time::Duration,
    /// Per-session message rate limit (off by default).
    pub rate_limit: RateLimit,
    /// Replies kept per session to answer retransmitted messages with
    /// their original replies (memory: 100 bytes each, per session).
    pub reply_log_depth: usize,
    /// UDP: messages per session held when they arrive ahead of a gap
    /// (memory: ~108 bytes each, per session); 0 rejects them instead.
    pub reorder_window: usize,
    /// A second login to a session that is live elsewhere: refused or
    /// taking over.
    pub login_policy: LoginPolicy,
    /// UDP: once the input ring has been full this long, new messages get
    /// a Busy reject instead of waiting in the socket buffer.
    pub busy_after: std::time::Duration,
}

/// How often gateways look at the clock for heartbeats and timeouts (in
/// `poll_tx` calls; the clock is read only then). 64: a few microseconds
/// when spinning (a vDSO clock read is ~20 ns), and at most 64 ms with the
/// `backoff` idle strategy, whose sleeps grow to 1 ms (at 1,024 a
/// backing-off gateway sent heartbeats a second late).
pub(crate) const TIMER_POLLS: u32 = 64;
/// Timer resolution.
pub(crate) const TIMER_TICK_NS: u64 = 50_000_000;
/// A gap still open this long after it was reported is reported again.
pub const GAP_REPORT_REPEAT_NS: u64 = 2_000_000;

/// When the next timer check is due; shared by both gateways.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    polls: u32,
    next_ns: u64,
}

impl Timer {
    /// Counts a poll; every `TIMER_POLLS` polls reads the clock and returns
    /// it when a tick is due.
    #[inline]
    pub(crate) fn due(&mut self) -> Option<u64> {
        self.polls += 1;
        if self.polls < TIMER_POLLS {
            return None;
        }
        self.polls = 0;
        let now = clock::now_ns();
        if now < self.next_ns {
            return None;
        }
        self.next_ns = now + TIMER_TICK_NS;
        Some(now)
    }
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            rx_burst: 32,
            tx_burst: 64,
            reply_burst: 1024,
            heartbeat_interval: std::time::Duration::from_secs(1),
            idle_timeout: std::time::Duration::from_secs(15),
            rate_limit: RateLimit::default(),
            reply_log_depth: 8192,
            reorder_window: 8192,
            login_policy: LoginPolicy::Reject,
            busy_after: std::time::Duration::from_millis(5),
        }
    }
}

/// A MoldUDP64 gateway owning one datagram port.
pub struct UdpGateway<P: Port> {
    port: P,
    rx: PacketBatch,
    rx_pos: usize,
    core: UdpCore,
}

/// Everything but the port and the receive batch, so a datagram borrowed
/// from the batch can be handled with the rest mutable.
struct UdpCore {
    id: u16,
    rate_limit: RateLimit,
    timer: Timer,
    heartbeat_ns: u64,
    idle_ns: u64,
    /// Blocks of the pending datagram already handled (see
    /// `handle_datagram`).
    block_pos: usize,
    to_sequencer: Producer<InboundSlot>,
    rx_ns: u64,
    sessions: SessionTable,
    directory: Arc<SessionDirectory>,
    policy: LoginPolicy,
    busy_after_ns: u64,
    /// Original replies to resend once the current datagram is handled:
    /// (session, first reply sequence, end).
    resend: Option<(u32, u64, u64)>,
    /// Flow-control window advertised at login: what the reorder window
    /// and the reply log both cover.
    window: u32,
    /// When the input ring was first seen full in the current stretch (0:
    /// it has room).
    full_since_ns: u64,
    replies: ReplyPath,
    counters: GatewayCounters,
}

impl<P: Port> UdpGateway<P> {
    /// Gateway `id` (its index at the sequencer) over `port`, admitting the
    /// sessions of `directory`.
    pub fn new(
        id: u16,
        port: P,
        rings: GatewayRings,
        directory: Arc<SessionDirectory>,
        opts: GatewayOptions,
    ) -> Self {
        let n = directory.len();
        UdpGateway {
            port,
            rx: PacketBatch::new(opts.rx_burst.max(1)),
            rx_pos: 0,
            core: UdpCore {
                id,
                rate_limit: opts.rate_limit,
                timer: Timer::default(),
                heartbeat_ns: opts.heartbeat_interval.as_nanos() as u64,
                idle_ns: opts.idle_timeout.as_nanos() as u64,
                block_pos: 0,
                to_sequencer: rings.to_sequencer,
                rx_ns: 0,
                sessions: SessionTable::with_windows(n, opts.reply_log_depth, opts.reorder_window),
                directory,
                policy: opts.login_policy,
                busy_after_ns: opts.busy_after.as_nanos() as u64,
                resend: None,
                window: opts
                    .reorder_window
                    .min(opts.reply_log_depth)
                    .min(u32::MAX as usize) as u32,
                full_since_ns: 0,
                replies: ReplyPath::new(
                    Framing::MoldUdp64,
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

    /// The port, mutably (traffic injection in benchmarks, diagnostics).
    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }
}

impl UdpCore {
    /// The session `name` if it is logged in here and bound to `addr`.
    #[inline]
    fn bound_session(&self, addr: SocketAddr, name: &SessionName) -> Option<u32> {
        let id = self.directory.id(name)?;
        let s = self.sessions.get(id)?;
        (s.peer == Some(Peer::Addr(addr))).then_some(id)
    }

    /// A Login (or Logout) packet: `block` is its only message.
    fn session_control(&mut self, addr: SocketAddr, name: SessionName, block: &[u8], port: &mut impl Port) {
        let Ok(login) = Login::ref_from_bytes(block) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        if login.version != LAYOUT_VERSION {
            self.counters.dropped_malformed += 1;
            return;
        }
        let ts = login.client_ts_ns.get();
        if login.msg_type == MessageType::Logout as u8 {
            // Only the bound address may log a session out.
            match self.bound_session(addr, &name) {
                Some(id) => {
                    if let Some(s) = self.sessions.get_mut(id) {
                        s.peer = None;
                    }
                    let mut eos = [0u8; peregrine_wire::moldudp64::HEADER_LEN];
                    let next = self.sessions.get(id).map_or(0, |s| s.next_reply_seq);
                    peregrine_wire::moldudp64::write_header_only(
                        &mut eos,
                        &name,
                        next,
                        peregrine_wire::moldudp64::END_OF_SESSION,
                    );
                    self.replies.push_control(Peer::Addr(addr), &eos, port);
                }
                None => self.counters.dropped_unauthenticated += 1,
            }
            return;
        }
        let id = match self.directory.authenticate(&name, &login.secret, self.id) {
            Ok(id) => id,
            Err(e) => return self.reject_login(addr, name, e, ts, port),
        };
        let (now, idle, policy) = (self.rx_ns, self.idle_ns, self.policy);
        let fresh = self.sessions.get(id).is_none();
        let Some(s) = self.sessions.open(id, name) else {
            return self.reject_login(addr, name, LoginError::Unavailable, ts, port);
        };
        let taken_over = match s.peer {
            Some(Peer::Addr(old)) if old != addr && now.saturating_sub(s.last_rx_ns) <= idle => {
                if policy == LoginPolicy::Reject {
                    return self.reject_login(addr, name, LoginError::Unavailable, ts, port);
                }
                true
            }
            _ => false,
        };
        s.peer = Some(Peer::Addr(addr));
        s.last_rx_ns = now;
        s.last_tx_ns = now;
        // Held messages were neither taken nor answered: a (re)starting
        // client sends them again from `next_client_seq`, and a stale copy
        // must not stand in for its new message with the same number.
        s.window.clear();
        s.gap_reported_for = 0;
        let ok = LoginAccepted::new(ts, s.next_client_seq, s.next_reply_seq, self.window);
        let (replay_from, next_reply) = (login.reply_seq.get(), s.next_reply_seq);
        let bytes: [u8; MESSAGE_LEN] = zerocopy::transmute!(ok);
        self.replies
            .push_unsequenced(Peer::Addr(addr), &name, &bytes, port);
        self.counters.logins += 1;
        self.counters.sessions += fresh as u64;
        self.counters.logins_taken_over += taken_over as u64;
        if replay_from != 0 && replay_from < next_reply {
            self.resend_range(id, replay_from, next_reply - replay_from, port);
        }
    }

    fn reject_login(
        &mut self,
        addr: SocketAddr,
        name: SessionName,
        e: LoginError,
        ts: u64,
        port: &mut impl Port,
    ) {
        self.counters.logins_rejected += 1;
        let r = LoginRejected::new(e.code(), ts);
        let bytes: [u8; MESSAGE_LEN] = zerocopy::transmute!(r);
        self.replies
            .push_unsequenced(Peer::Addr(addr), &name, &bytes, port);
    }

    /// Resends up to `count` replies from reply sequence `first` on, as far
    /// as the reply log still has them, in full packets. Returns how many.
    fn resend_range(&mut self, session: u32, first: u64, count: u64, port: &mut impl Port) -> u64 {
        /// Most replies resent for one request (a client asks again for more).
        const MAX_RESEND: u64 = 64 * MAX_MESSAGES_PER_PACKET as u64;
        let Some(s) = self.sessions.get(session) else {
            return 0;
        };
        let Some(peer) = s.peer else { return 0 };
        // Replies no longer kept are skipped: start at the oldest kept.
        let first = first.max(s.log.oldest().unwrap_or(first));
        let end = first.saturating_add(count.min(MAX_RESEND)).min(s.next_reply_seq);
        let mut seq = first;
        let mut sent = 0u64;
        while seq < end && s.log.get(seq).is_some() {
            let mut buf = [0u8; MAX_PAYLOAD];
            let Some(mut b) = MoldBuilder::new(&mut buf, &s.name, seq) else {
                break;
            };
            let mut n = 0u64;
            while seq + n < end && (n as usize) < MAX_MESSAGES_PER_PACKET {
                match s.log.get(seq + n) {
                    Some(m) if b.push(m) => n += 1,
                    _ => break,
                }
            }
            let len = b.finish();
            self.replies.push_control(peer, &buf[..len], port);
            seq += n;
            sent += n;
            if n == 0 {
                break;
            }
        }
        self.counters.replies_retransmitted += sent;
        sent
    }

    fn reject(
        &mut self,
        session: u32,
        block: &[u8],
        err: MessageError,
        client_seq: u64,
        port: &mut impl Port,
    ) {
        self.counters.count_malformed(err);
        self.refuse(session, block, err.reason(), client_seq, port);
    }

    /// Sends session `session` a session-layer Reject for client message
    /// `client_seq` (whose bytes were `block`), stamped with this burst's
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

    /// Processes one datagram from block `self.block_pos` on; false when
    /// the input ring filled up first: the blocks handled so far stay
    /// handled (`block_pos` says where to resume), the rest wait. A datagram
    /// is staged whole when the ring has room for all of it, so it is split
    /// only when it carries more messages than the ring can ever hold at
    /// once (a tiny ring) or the sequencer is behind.
    fn handle_datagram(&mut self, peer: Peer, data: &[u8], port: &mut impl Port) -> bool {
        let Peer::Addr(addr) = peer else {
            self.counters.dropped_malformed += 1;
            return true;
        };
        let Ok(pkt) = MoldPacket::new_checked(data) else {
            if let Some(req) = RetransmissionRequest::parse(data) {
                match self.bound_session(addr, &req.session) {
                    Some(id) => {
                        self.counters.rerequests += 1;
                        self.resend_range(id, req.sequence, req.count as u64, port);
                    }
                    None => self.counters.dropped_unauthenticated += 1,
                }
            } else {
                self.counters.dropped_malformed += 1;
            }
            return true;
        };
        let name = pkt.session();
        if pkt.count() == 1 && self.block_pos == 0 {
            if let Some(block) = pkt.blocks().next() {
                if MessageType::from_code(block.first().copied().unwrap_or(0))
                    .is_some_and(MessageType::is_session_control)
                {
                    self.session_control(addr, name, block, port);
                    return true;
                }
            }
        }
        let Some(session) = self.bound_session(addr, &name) else {
            self.counters.dropped_unauthenticated += 1;
            return true;
        };
        if let Some(sess) = self.sessions.get_mut(session) {
            sess.last_rx_ns = self.rx_ns;
        }
        if pkt.is_heartbeat() || pkt.is_end_of_session() {
            self.counters.heartbeats += 1;
            return true;
        }
        let first = pkt.sequence();
        let origin = SessionRef::new(self.id, session);
        // Held messages that follow on but did not fit the ring last time.
        self.drain_window(session, origin, port);
        for (k, block) in pkt.blocks().enumerate().skip(self.block_pos) {
            let client_seq = first.wrapping_add(k as u64);
            let expected = self
                .sessions
                .get(session)
                .map_or(client_seq, |s| s.next_client_seq);
            if client_seq < expected {
                // Seen before: never sequenced twice; answer with the
                // original reply (at-most-once + client retransmission =
                // exactly-once).
                self.counters.rx_messages += 1;
                self.resend_original(session, block, client_seq, port);
                continue;
            }
            // Ahead of a gap but within the reorder window: keep it until
            // the gap fills (a copy already kept is a duplicate).
            let held = match self.sessions.get_mut(session) {
                Some(s) if client_seq > expected && s.window.holds(expected, client_seq) => {
                    Some(s.window.insert(client_seq, block))
                }
                _ => None,
            };
            match held {
                Some(true) => {
                    self.counters.reordered_held += 1;
                    continue;
                }
                Some(false) => {
                    self.counters.rx_messages += 1;
                    self.counters.dedup_hits += 1;
                    continue;
                }
                None => {}
            }
            if client_seq > expected {
                // Beyond the reorder window: refused (the client sends it
                // again once the gap has filled), and the gap reported.
                self.counters.rx_messages += 1;
                self.counters.rejected_gap += 1;
                if !self.report_gap(session, block, expected, port) {
                    self.counters.dropped_gap += 1;
                }
                continue;
            }
            if !self.to_sequencer.has_room(1) {
                self.counters.ring_full += 1;
                let now = clock::now_ns();
                if self.full_since_ns == 0 {
                    self.full_since_ns = now;
                }
                if now.saturating_sub(self.full_since_ns) < self.busy_after_ns {
                    self.block_pos = k;
                    self.flush_resend(port);
                    return false;
                }
                // Full for too long: answer Busy for the first message not
                // taken (the client resends from it) and leave the rest of
                // the datagram untaken (counted).
                let untaken = pkt.count() as u64 - k as u64;
                self.counters.rx_messages += untaken;
                self.counters.rejected_busy += untaken;
                self.refuse(session, block, RejectReason::Busy, client_seq, port);
                break;
            }
            self.full_since_ns = 0;
            if let Some(s) = self.sessions.get_mut(session) {
                // A copy held earlier (the ring was full) is this message.
                s.window.take(client_seq);
            }
            self.take_in_order(session, origin, client_seq, block, port);
            self.drain_window(session, origin, port);
        }
        // Still holding messages behind a gap once the datagram is done:
        // name the missing one (paced by `report_gap`).
        if let Some(expected) = self
            .sessions
            .get(session)
            .filter(|s| !s.window.is_empty())
            .map(|s| s.next_client_seq)
        {
            self.report_gap(session, &[], expected, port);
        }
        self.flush_resend(port);
        self.block_pos = 0;
        true
    }

    /// Tells the client which message is missing: a SequenceGap reject whose
    /// client sequence is `expected`, the one the session waits for. Called
    /// when a datagram leaves messages held behind a gap or refused past the
    /// window; sent for a new gap at once, for the same gap again only after
    /// [`GAP_REPORT_REPEAT_NS`] (the resend may have been lost too); false
    /// when not due. The client resends exactly that
    /// message instead of guessing from timeouts, which at high rates would
    /// resend every message held behind the gap.
    fn report_gap(&mut self, session: u32, block: &[u8], expected: u64, port: &mut impl Port) -> bool {
        let now = self.rx_ns;
        let due = self.sessions.get_mut(session).is_some_and(|s| {
            let due = s.gap_reported_for != expected
                || now.saturating_sub(s.gap_reported_ns) >= GAP_REPORT_REPEAT_NS;
            if due {
                s.gap_reported_for = expected;
                s.gap_reported_ns = now;
            }
            due
        });
        if due {
            self.counters.gap_notices += 1;
            self.refuse(session, block, RejectReason::SequenceGap, expected, port);
        }
        due
    }

    /// Takes the session's next expected message (the caller checked ring
    /// room): validated, rate-limited, staged for the sequencer, or
    /// rejected; either way it consumes the client sequence number.
    fn take_in_order(
        &mut self,
        session: u32,
        origin: SessionRef,
        client_seq: u64,
        block: &[u8],
        port: &mut impl Port,
    ) {
        self.counters.rx_messages += 1;
        self.advance_client_seq(session);
        if let Err(e) = classify_inbound(block) {
            self.reject(session, block, e, client_seq, port);
            return;
        }
        let (now, limit) = (self.rx_ns, self.rate_limit);
        if !self
            .sessions
            .get_mut(session)
            .is_some_and(|s| s.admit(now, limit))
        {
            self.counters.rejected_rate_limited += 1;
            self.refuse(session, block, RejectReason::RateLimited, client_seq, port);
            return;
        }
        self.to_sequencer.stage_with(|s| {
            s.msg.copy_from_slice(block);
            s.origin = origin;
            s.client_seq = client_seq;
            s.gateway_rx_ns = now;
        });
        if let Some(s) = self.sessions.get_mut(session) {
            s.last_staged = client_seq;
        }
        self.counters.accepted += 1;
    }

    /// Takes, in order, the messages that arrived ahead of a gap and now
    /// follow on, while the ring has room (what does not fit stays in the
    /// window and is taken when the session's next datagram arrives).
    fn drain_window(&mut self, session: u32, origin: SessionRef, port: &mut impl Port) {
        loop {
            if !self.to_sequencer.has_room(1) {
                return;
            }
            let Some(s) = self.sessions.get_mut(session) else {
                return;
            };
            let seq = s.next_client_seq;
            let Some((msg, len)) = s.window.take(seq) else {
                return;
            };
            self.take_in_order(session, origin, seq, &msg[..len.min(MESSAGE_LEN)], port);
        }
    }

    #[inline]
    fn advance_client_seq(&mut self, session: u32) {
        if let Some(s) = self.sessions.get_mut(session) {
            s.next_client_seq += 1;
        }
    }

    /// Sends the deferred original replies (see `resend_original`).
    fn flush_resend(&mut self, port: &mut impl Port) {
        if let Some((session, first, end)) = self.resend.take() {
            self.resend_range(session, first, end - first, port);
        }
    }

    /// Answers a retransmitted message: its original replies again (with
    /// their original reply sequence numbers), nothing while its reply is
    /// still in flight, or TooOld when the reply log no longer has it.
    fn resend_original(&mut self, session: u32, block: &[u8], client_seq: u64, port: &mut impl Port) {
        self.counters.dedup_hits += 1;
        let Some(s) = self.sessions.get(session) else {
            return;
        };
        let Some(peer) = s.peer else { return };
        if let Some(r) = s.rejects.find(client_seq) {
            // Refused at the session layer: the same answer again.
            let (r, name) = (*r, s.name);
            self.replies.push_unsequenced(peer, &name, &r, port);
            self.counters.replies_retransmitted += 1;
        } else if let Some((first, n)) = (client_seq <= s.replied_client_seq)
            .then(|| s.log.find(client_seq))
            .flatten()
        {
            // Deferred to the end of the datagram, so the replies of a run
            // of retransmitted messages go back packed, not one per packet.
            let end = first + n as u64;
            match &mut self.resend {
                Some(r) if r.0 == session && r.2 == first => r.2 = end,
                _ => {
                    self.flush_resend(port);
                    self.resend = Some((session, first, end));
                }
            }
        } else if client_seq <= s.replied_client_seq || client_seq > s.last_staged {
            // Neither in flight (taken, reply not yet sent) nor kept: its
            // answer (a reply, or a reject whose log entry was overwritten)
            // is gone.
            self.counters.rejected_too_old += 1;
            self.refuse(session, block, RejectReason::TooOld, client_seq, port);
        }
        // Otherwise the original is still being sequenced: its reply will
        // answer this copy too.
    }
}

impl<P: Port + Send> GatewayLoop for UdpGateway<P> {
    fn poll_rx(&mut self) -> usize {
        if self.rx_pos >= self.rx.len() {
            self.rx_pos = 0;
            match self.port.recv(&mut self.rx) {
                Ok(0) | Err(_) => {
                    self.rx.clear();
                    return 0;
                }
                Ok(n) => {
                    self.core.rx_ns = clock::now_ns();
                    self.core.replies.set_now(self.core.rx_ns);
                    self.core.counters.rx_packets += n as u64;
                }
            }
        }
        let start = self.rx_pos;
        while self.rx_pos < self.rx.len() {
            let (peer, _, data) = self.rx.get(self.rx_pos);
            if !self.core.handle_datagram(peer, data, &mut self.port) {
                break;
            }
            self.rx_pos += 1;
        }
        self.core.to_sequencer.publish();
        self.rx_pos - start
    }

    fn poll_tx(&mut self) -> usize {
        let c = &mut self.core;
        if let Some(now) = c.timer.due() {
            c.replies.heartbeats(
                &mut c.sessions,
                now,
                c.heartbeat_ns,
                c.idle_ns,
                &mut self.port,
                &mut c.counters,
            );
        }
        c.replies.drain(&mut c.sessions, &mut self.port, &mut c.counters)
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
        format!("udp gateway {} on {}", self.core.id, self.port.local_addr())
    }

    fn sessions_mut(&mut self) -> Option<&mut crate::session::SessionTable> {
        Some(&mut self.core.sessions)
    }
}
