//! MoldUDP64 gateway over any datagram port (kernel UDP or DPDK).
//!
//! Receive path, per burst: one `receive` takes in a burst of datagrams,
//! which the port then lends one by one (no copy: a message is copied once,
//! into its ring slot); each is validated as a whole MoldUDP64 packet (a
//! packet with broken framing is dropped and counted: its block boundaries
//! cannot be trusted), its session
//! looked up by name in the configured [`SessionDirectory`] and checked to
//! be bound to the datagram's source address, and each block checked
//! (length, type, version). Good blocks are staged into the input ring with
//! client sequence = packet sequence + block index; bad ones get a Reject.
//! If the ring lacks room for a packet's blocks, the packet and the rest of
//! the burst stay held in the port for the next poll (back-pressure: the
//! socket buffer absorbs what follows); if the ring stays full longer than `busy_after`, new
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
//! the session's reply log. A cluster node that is not the leader refuses
//! every login with LoginRejected `L` carrying the leader's id and address
//! for this gateway (see [`crate::leadership`]).
//!
//! Everything that decides (login, dedup, reordering, gaps, rate limit,
//! Busy) is the shared [`crate::session_core::SessionCore`]; this file is
//! the MoldUDP64 framing and address binding around it.
//!
//! Transmit path: replies drained from the output ring in one burst are
//! packed per session into MoldUDP64 packets (up to 14 per datagram) and
//! sent with one `send` (one `sendmmsg`).
//!
//! Edges, each a stated rule rather than an accident of the code:
//! - Any datagram the port delivers is handled whole, however many blocks
//!   it has (a kernel UDP port delivers up to 65,507 bytes; a DPDK port up
//!   to its MTU): silently losing a well-formed datagram would leave its
//!   client resending it for ever. Replies still leave in 1,472-byte
//!   datagrams, the client's path MTU.
//! - A header with count 0xFFFF (End of Session) from the bound address is
//!   a Logout, answered like one: a client that says it is done is done.
//! - A request for replies gets exactly the requested ones still kept; if
//!   some are gone, an unsequenced TooOld notice says so first, naming the
//!   first reply still kept (in its `order_id` field), so a client never
//!   takes later replies for the ones it asked for.
//! - Client sequence numbers never wrap: a block whose number would pass
//!   2^64 − 1 counts as far ahead of the session (refused past the reorder
//!   window), never as a copy of an early message.

use crate::directory::{LoginError, SessionDirectory};
use crate::gateway_core::GatewayCore;
use crate::options::GatewayOptions;
use crate::replies::Framing;
use crate::session_core::{
    Action, Backpressure, LoginRequest, LoginVerdict, Replay, ReplyRange, SessionCore,
};
use crate::GatewayLoop;
use crate::GatewayRings;
use peregrine_netio::{clock, DatagramPort, Peer, Port};
use peregrine_wire::message::{
    Login, LoginAccepted, LoginRejected, MessageType, Reject, RejectReason, LAYOUT_VERSION, MESSAGE_LEN,
};
use peregrine_wire::moldudp64::{
    write_header_only, MoldBuilder, MoldPacket, RetransmissionRequest, SessionName, END_OF_SESSION,
    HEADER_LEN, MAX_MESSAGES_PER_PACKET, MAX_PAYLOAD,
};
use std::net::SocketAddr;
use std::sync::Arc;
use zerocopy::FromBytes;

/// A MoldUDP64 gateway owning one datagram port.
pub struct UdpGateway<P: DatagramPort> {
    port: P,
    /// Receive messages per burst (see `DatagramPort::receive`).
    rx_burst: usize,
    mold: MoldUdp,
}

/// Everything but the port, so a datagram the port lends can be handled
/// with the rest mutable.
struct MoldUdp {
    gw: GatewayCore,
    /// Blocks of the pending datagram already handled (see
    /// `handle_datagram`).
    block_pos: usize,
    /// Original replies to resend once the current datagram is handled:
    /// (session, first reply sequence, end).
    resend: Option<(u32, u64, u64)>,
}

impl<P: DatagramPort> UdpGateway<P> {
    /// Gateway `id` (its index at the sequencer) over `port`, admitting the
    /// sessions of `directory`.
    pub fn new(
        id: u16,
        port: P,
        rings: GatewayRings,
        directory: Arc<SessionDirectory>,
        opts: GatewayOptions,
    ) -> Self {
        UdpGateway {
            port,
            rx_burst: opts.rx_burst.max(1),
            mold: MoldUdp {
                gw: GatewayCore::new(id, Framing::MoldUdp64, rings, directory, &opts, true),
                block_pos: 0,
                resend: None,
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

impl MoldUdp {
    /// Processes one datagram from block `self.block_pos` on; false when
    /// the input ring filled up first: the blocks handled so far stay
    /// handled (`block_pos` says where to resume), the rest wait. A datagram
    /// is staged whole when the ring has room for all of it, so it is split
    /// only when it carries more messages than the ring can ever hold at
    /// once (a tiny ring) or the sequencer is behind.
    fn handle_datagram(&mut self, addr: SocketAddr, data: &[u8], port: &mut dyn Port) -> bool {
        let Ok(pkt) = MoldPacket::new_checked(data) else {
            self.not_a_packet(addr, data, port);
            return true;
        };
        if let Some(block) = self.session_control_block(&pkt) {
            self.session_control(addr, pkt.session(), block, port);
            return true;
        }
        let Some(session) = self.gw.core.bound_session(Peer::Addr(addr), &pkt.session()) else {
            self.gw.counters_mut().dropped_unauthenticated += 1;
            return true;
        };
        self.gw.core.heard_from(session);
        if pkt.is_end_of_session() {
            // The client's End of Session: a Logout.
            self.end_session(session, addr, pkt.session(), port);
            return true;
        }
        if pkt.is_heartbeat() {
            self.gw.counters_mut().heartbeats += 1;
            return true;
        }
        if !self.take_blocks(session, &pkt, port) {
            return false;
        }
        self.finish_datagram(session, port);
        true
    }

    /// A datagram without valid MoldUDP64 framing: a retransmission request
    /// (a header with a count and no blocks) from a bound address is
    /// answered from the reply log; anything else is dropped, counted.
    fn not_a_packet(&mut self, addr: SocketAddr, data: &[u8], port: &mut dyn Port) {
        let Some(req) = RetransmissionRequest::parse(data) else {
            self.gw.counters_mut().dropped_malformed += 1;
            return;
        };
        match self.gw.core.bound_session(Peer::Addr(addr), &req.session) {
            Some(id) => {
                self.gw.counters_mut().rerequests += 1;
                self.resend_range(id, req.sequence, req.count as u64, port);
            }
            None => self.gw.counters_mut().dropped_unauthenticated += 1,
        }
    }

    /// The block of a Login or Logout packet (alone in its packet, and not
    /// the resumption of a datagram half taken).
    fn session_control_block<'a>(&self, pkt: &MoldPacket<'a>) -> Option<&'a [u8]> {
        if pkt.count() != 1 || self.block_pos != 0 {
            return None;
        }
        let block = pkt.blocks().next()?;
        MessageType::from_code(block.first().copied().unwrap_or(0))
            .is_some_and(MessageType::is_session_control)
            .then_some(block)
    }

    /// Stages, holds or answers the datagram's blocks from `block_pos` on
    /// (block k has client sequence = packet sequence + k); false when the
    /// ring filled up first and the rest waits.
    fn take_blocks(&mut self, session: u32, pkt: &MoldPacket<'_>, port: &mut dyn Port) -> bool {
        let first = pkt.sequence();
        // Held messages that follow on but did not fit the ring last time.
        self.drain_held(session, port);
        // The usual datagram (in order, nothing held, room in the ring) is
        // staged in one pass; whatever it stops at is decided one by one.
        // A packet of 100-byte blocks (every well-formed one) is read as
        // fixed-size messages, without a length read per block.
        let start = self.block_pos;
        let want = usize::from(pkt.count()).saturating_sub(start);
        let run_first = first.saturating_add(start as u64);
        let run = match pkt.fixed_blocks::<MESSAGE_LEN>() {
            Some(mut fixed) => {
                if start > 0 {
                    fixed.nth(start - 1);
                }
                self.gw.stage_in_order_run(session, run_first, want, &mut fixed)
            }
            None => self
                .gw
                .stage_in_order_run(session, run_first, want, &mut pkt.blocks_from(start)),
        };
        let blocks = pkt.blocks_from(start + run);
        for (k, block) in blocks.enumerate().map(|(i, b)| (start + run + i, b)) {
            // Never wraps: past 2^64 - 1 is far ahead, not a copy.
            let client_seq = first.saturating_add(k as u64);
            let room = self.gw.ring_has_room();
            match self.gw.core.inbound(session, client_seq, block, room) {
                Action::RingFull => match self.gw.core.ring_full(clock::now_ns()) {
                    Backpressure::Wait => {
                        self.block_pos = k;
                        self.flush_resend(port);
                        return false;
                    }
                    Backpressure::Busy => {
                        // Full for too long: answer Busy for the first
                        // message not taken (the client resends from it)
                        // and leave the rest of the datagram untaken.
                        self.gw.core.refused_busy(pkt.count() as u64 - k as u64);
                        self.gw
                            .refuse(session, block, RejectReason::Busy, client_seq, port);
                        break;
                    }
                },
                Action::Stage { client_seq } => {
                    self.gw.stage(session, client_seq, block);
                    self.drain_held(session, port);
                }
                Action::Reject { reason, client_seq } => {
                    self.gw.refuse(session, block, reason, client_seq, port);
                    // The message took its number: held ones may follow on.
                    self.drain_held(session, port);
                }
                Action::Refuse { reason, client_seq } => {
                    self.gw.refuse(session, block, reason, client_seq, port)
                }
                action => self.answer(session, action, port),
            }
        }
        true
    }

    /// Answers a copy or a gap: the original replies (deferred to the end
    /// of the datagram, so the replies of a run of retransmitted messages
    /// go back packed, not one per packet), a reject again, or nothing.
    fn answer(&mut self, session: u32, action: Action, port: &mut dyn Port) {
        match action {
            Action::ResendReplies { first, end } => match &mut self.resend {
                Some(r) if r.0 == session && r.2 == first => r.2 = end,
                _ => {
                    self.flush_resend(port);
                    self.resend = Some((session, first, end));
                }
            },
            Action::ResendReject(bytes) => self.gw.resend_reject(session, &bytes, port),
            Action::Hold | Action::Ignore => {}
            // Handled by the caller.
            Action::Stage { .. } | Action::Reject { .. } | Action::Refuse { .. } | Action::RingFull => {}
        }
    }

    /// Takes, in order, the messages that arrived ahead of a gap and now
    /// follow on, while the ring has room (what does not fit stays held
    /// and is taken when the session's next datagram arrives).
    fn drain_held(&mut self, session: u32, port: &mut dyn Port) {
        loop {
            let room = self.gw.ring_has_room();
            let Some((action, msg, len)) = self.gw.core.take_held(session, room) else {
                return;
            };
            match action {
                Action::Stage { client_seq } => self.gw.stage(session, client_seq, &msg[..len]),
                Action::Reject { reason, client_seq } | Action::Refuse { reason, client_seq } => {
                    self.gw.refuse(session, &msg[..len], reason, client_seq, port)
                }
                _ => {}
            }
        }
    }

    /// The datagram is done: if messages are still held behind a gap, name
    /// the missing one (paced by the core), then send deferred resends.
    fn finish_datagram(&mut self, session: u32, port: &mut dyn Port) {
        if let Action::Refuse { reason, client_seq } = self.gw.core.gap_after_datagram(session) {
            self.gw.refuse(session, &[], reason, client_seq, port);
        }
        self.flush_resend(port);
        self.block_pos = 0;
    }

    /// A Login (or Logout) packet: `block` is its only message.
    fn session_control(&mut self, addr: SocketAddr, name: SessionName, block: &[u8], port: &mut dyn Port) {
        let Ok(login) = Login::ref_from_bytes(block) else {
            self.gw.counters_mut().dropped_malformed += 1;
            return;
        };
        if login.version != LAYOUT_VERSION {
            self.gw.counters_mut().dropped_malformed += 1;
            return;
        }
        if login.msg_type == MessageType::Logout as u8 {
            return self.logout(addr, name, port);
        }
        let ts = login.client_ts_ns.get();
        let req = LoginRequest {
            name,
            secret: login.secret,
            peer: Peer::Addr(addr),
        };
        let replay_from = login.reply_seq.get();
        match self.gw.core.login(&req, Replay::BestEffort(replay_from)) {
            LoginVerdict::Accepted {
                session,
                next_client_seq,
                next_reply_seq,
                ..
            } => {
                let ok = LoginAccepted::new(ts, next_client_seq, next_reply_seq, self.gw.core.window());
                let bytes: [u8; MESSAGE_LEN] = zerocopy::transmute!(ok);
                self.gw.send_unsequenced(Peer::Addr(addr), &name, &bytes, port);
                if replay_from != 0 && replay_from < next_reply_seq {
                    self.resend_range(session, replay_from, next_reply_seq - replay_from, port);
                }
            }
            LoginVerdict::Rejected(e) => self.reject_login(addr, name, e, ts, port),
            LoginVerdict::NotLeader { leader_id, leader } => {
                let r = LoginRejected::not_leader(ts, leader_id, leader);
                let bytes: [u8; MESSAGE_LEN] = zerocopy::transmute!(r);
                self.gw.send_unsequenced(Peer::Addr(addr), &name, &bytes, port);
            }
        }
    }

    /// Logout: only the bound address may log a session out; it gets an
    /// end-of-session packet.
    fn logout(&mut self, addr: SocketAddr, name: SessionName, port: &mut dyn Port) {
        let Some(id) = self.gw.core.bound_session(Peer::Addr(addr), &name) else {
            self.gw.counters_mut().dropped_unauthenticated += 1;
            return;
        };
        self.end_session(id, addr, name, port);
    }

    /// Ends session `id`, bound to `addr` (a Logout, or a client's End of
    /// Session header): unbound, answered with an end-of-session packet
    /// carrying the next reply sequence, counted `logouts`.
    fn end_session(&mut self, id: u32, addr: SocketAddr, name: SessionName, port: &mut dyn Port) {
        self.gw.counters_mut().logouts += 1;
        self.gw.core.unbind(id, Peer::Addr(addr));
        let mut eos = [0u8; HEADER_LEN];
        let next = self.gw.core.session(id).map_or(0, |s| s.next_reply_seq);
        write_header_only(&mut eos, &name, next, END_OF_SESSION);
        self.gw.replies.push_control(Peer::Addr(addr), &eos, port);
    }

    fn reject_login(
        &mut self,
        addr: SocketAddr,
        name: SessionName,
        e: LoginError,
        ts: u64,
        port: &mut dyn Port,
    ) {
        let r = LoginRejected::new(e.code(), ts);
        let bytes: [u8; MESSAGE_LEN] = zerocopy::transmute!(r);
        self.gw.send_unsequenced(Peer::Addr(addr), &name, &bytes, port);
    }

    /// Resends up to `count` replies from reply sequence `first` on, as far
    /// as the reply log still has them, in full packets, preceded by a
    /// TooOld notice when some of them are gone (see
    /// [`SessionCore::reply_range`]). Returns how many replies were resent.
    fn resend_range(&mut self, session: u32, first: u64, count: u64, port: &mut dyn Port) -> u64 {
        /// Most replies resent for one request (a client asks again for more).
        const MAX_RESEND: u64 = 64 * MAX_MESSAGES_PER_PACKET as u64;
        let Some(ReplyRange {
            first,
            end,
            gone_before,
        }) = self.gw.core.reply_range(session, first, count, MAX_RESEND)
        else {
            return 0;
        };
        let Some((peer, name)) = self.gw.core.route(session) else {
            return 0;
        };
        if let Some(oldest) = gone_before {
            let notice = replies_gone_notice(oldest, self.gw.core.now());
            self.gw.send_unsequenced(peer, &name, &notice, port);
            let c = self.gw.counters_mut();
            c.tx_replies += 1;
            c.tx_packets += 1;
        }
        let Some(s) = self.gw.core.session(session) else {
            return 0;
        };
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
            self.gw.replies.push_control(peer, &buf[..len], port);
            seq += n;
            sent += n;
            if n == 0 {
                break;
            }
        }
        self.gw.counters_mut().replies_retransmitted += sent;
        sent
    }

    /// Sends the deferred original replies (see `answer`).
    fn flush_resend(&mut self, port: &mut dyn Port) {
        if let Some((session, first, end)) = self.resend.take() {
            self.resend_range(session, first, end - first, port);
        }
    }
}

/// The unsequenced notice that requested replies have left the reply log:
/// a TooOld Reject answering no message (`rejected_type` 0, `client_seq`
/// 0) whose `order_id` field carries `oldest`, the first reply sequence
/// still kept.
fn replies_gone_notice(oldest: u64, now_ns: u64) -> [u8; MESSAGE_LEN] {
    let mut r = Reject::for_block(&[], RejectReason::TooOld as u16, 0, now_ns);
    r.order_id = oldest.into();
    zerocopy::transmute!(r)
}

impl<P: DatagramPort + Send> GatewayLoop for UdpGateway<P> {
    /// One receive burst (unless datagrams of the last one still wait for
    /// ring room), its datagrams handled as the port lends them; one ring
    /// publish.
    fn poll_rx(&mut self) -> usize {
        match self.port.receive(self.rx_burst) {
            Ok(0) => {}
            Ok(n) => {
                self.mold.gw.begin_burst(clock::now_ns());
                self.mold.gw.counters_mut().rx_packets += n as u64;
            }
            Err(_) => return 0,
        }
        let mold = &mut self.mold;
        let handled = self
            .port
            .consume(|from, data, port| mold.handle_datagram(from, data, port));
        self.mold.gw.publish();
        handled
    }

    fn poll_tx(&mut self) -> usize {
        let gw = &mut self.mold.gw;
        if let Some(now) = gw.timer_due() {
            gw.heartbeats(now, &mut self.port);
        }
        gw.drain(&mut self.port)
    }

    fn core(&self) -> &SessionCore {
        &self.mold.gw.core
    }

    fn core_mut(&mut self) -> &mut SessionCore {
        &mut self.mold.gw.core
    }

    fn port(&self) -> &dyn Port {
        &self.port
    }

    fn transport(&self) -> &'static str {
        "udp"
    }

    fn latency_mut(&mut self) -> Option<&mut crate::latency::ReplyLatency> {
        Some(self.mold.gw.replies.latency_mut())
    }
}
