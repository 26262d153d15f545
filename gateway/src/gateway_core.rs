//! What every gateway owns besides its port and its framing: the session
//! core, the input ring it stages into, the reply path and the timer.
//!
//! The UDP and TCP gateways each wrap one [`GatewayCore`] and keep only
//! what their transport needs (datagram parsing and address binding;
//! connections, reassembly and SoupBinTCP). The methods here turn the
//! session core's decisions into ring slots and packets, so each gateway
//! calls one method with the few values that differ instead of threading
//! the session table, counters, clock and port through every call.

use crate::counters::GatewayCounters;
use crate::directory::SessionDirectory;
use crate::options::{nanos, GatewayOptions, Timer};
use crate::replies::{Framing, ReplyPath};
use crate::session_core::SessionCore;
use crate::GatewayRings;
use peregrine_netio::{Peer, Port};
use peregrine_ring::Producer;
use peregrine_sequencer::slot::InboundSlot;
use peregrine_wire::message::{RejectReason, MESSAGE_LEN};
use peregrine_wire::moldudp64::SessionName;
use std::sync::Arc;

/// The transport-independent half of a gateway.
pub(crate) struct GatewayCore {
    pub(crate) core: SessionCore,
    pub(crate) to_sequencer: Producer<InboundSlot>,
    pub(crate) replies: ReplyPath,
    /// Names of the sessions, for opening one a follower restores.
    directory: Arc<SessionDirectory>,
    timer: Timer,
}

impl GatewayCore {
    /// Gateway `id` framing replies with `framing`; `reorder` gives each
    /// session a reorder window (datagram transports).
    pub(crate) fn new(
        id: u16,
        framing: Framing,
        rings: GatewayRings,
        directory: Arc<SessionDirectory>,
        opts: &GatewayOptions,
        reorder: bool,
    ) -> Self {
        let n = directory.len();
        GatewayCore {
            core: SessionCore::new(id, Arc::clone(&directory), opts, reorder),
            directory,
            to_sequencer: rings.to_sequencer,
            replies: ReplyPath::new(
                framing,
                rings.from_sequencer,
                n,
                opts.tx_burst,
                opts.reply_burst,
                nanos(opts.heartbeat_interval),
                nanos(opts.idle_timeout),
            )
            .with_latency_recording(opts.latency_histograms),
            timer: Timer::default(),
        }
    }

    /// A receive burst arrived at `now_ns`: its coarse clock.
    #[inline]
    pub(crate) fn begin_burst(&mut self, now_ns: u64) {
        self.core.set_now(now_ns);
        self.replies.set_now(now_ns);
    }

    /// Counters, for the events the transports count themselves.
    #[inline]
    pub(crate) fn counters_mut(&mut self) -> &mut GatewayCounters {
        &mut self.core.counters
    }

    /// True when the input ring has room for one more message.
    #[inline]
    pub(crate) fn ring_has_room(&mut self) -> bool {
        self.to_sequencer.has_room(1)
    }

    /// Stages `block` of session `session` as client message `client_seq`
    /// (the caller checked room; the core accepted it).
    #[inline]
    pub(crate) fn stage(&mut self, session: u32, client_seq: u64, block: &[u8]) {
        let (origin, rx_ns) = (self.core.origin(session), self.core.now());
        self.to_sequencer.stage_with(|s| {
            s.msg.copy_from_slice(block);
            s.origin = origin;
            s.client_seq = client_seq;
            s.gateway_rx_ns = rx_ns;
        });
    }

    /// Stages the run of `blocks` (`want` of them left in the datagram)
    /// that session `session` takes in order from client sequence `first`
    /// without per-message decisions ([`SessionCore::take_in_order_run`],
    /// bounded by the ring's free slots); returns how many, with `blocks`
    /// left at the first not taken.
    #[inline]
    pub(crate) fn stage_in_order_run<'a, I, B>(
        &mut self,
        session: u32,
        first: u64,
        want: usize,
        blocks: &mut I,
    ) -> usize
    where
        I: Iterator<Item = &'a B> + Clone,
        B: AsRef<[u8]> + ?Sized + 'a,
    {
        let (origin, rx_ns) = (self.core.origin(session), self.core.now());
        // One room check for the run: the consumer's index is read from
        // shared memory only when the private copy says the datagram might
        // not fit.
        let mut claim = self.to_sequencer.claim(want);
        let room = claim.room();
        self.core
            .take_in_order_run(session, first, blocks, room, |client_seq, block| {
                let staged = claim.stage_with(|s| {
                    // A fixed-size block (`B = [u8; 100]`) is copied
                    // by a fixed run of moves.
                    s.msg.copy_from_slice(block.as_ref());
                    s.origin = origin;
                    s.client_seq = client_seq;
                    s.gateway_rx_ns = rx_ns;
                });
                debug_assert!(staged, "the run is bounded by the claim");
            })
    }

    /// Makes what was staged visible to the sequencer (once per burst).
    #[inline]
    pub(crate) fn publish(&mut self) {
        self.to_sequencer.publish();
    }

    /// Sends session `session` a session-layer Reject for client message
    /// `client_seq` (whose bytes were `block`).
    pub(crate) fn refuse(
        &mut self,
        session: u32,
        block: &[u8],
        reason: RejectReason,
        client_seq: u64,
        port: &mut (impl Port + ?Sized),
    ) {
        if let Some((peer, name, bytes)) = self.core.reject_message(session, block, reason, client_seq) {
            self.replies.push_unsequenced(peer, &name, &bytes, port);
        }
    }

    /// Sends session `session` a reject it was sent before, again.
    pub(crate) fn resend_reject(
        &mut self,
        session: u32,
        bytes: &[u8; MESSAGE_LEN],
        port: &mut (impl Port + ?Sized),
    ) {
        if let Some((peer, name)) = self.core.route(session) {
            self.replies.push_unsequenced(peer, &name, bytes, port);
            self.core.counters.replies_retransmitted += 1;
        }
    }

    /// Sends `msg` unsequenced to `peer` for session `name` (login
    /// answers).
    pub(crate) fn send_unsequenced(
        &mut self,
        peer: Peer,
        name: &SessionName,
        msg: &[u8; MESSAGE_LEN],
        port: &mut (impl Port + ?Sized),
    ) {
        self.replies.push_unsequenced(peer, name, msg, port);
    }

    /// The timer's tick, if due: its time.
    #[inline]
    pub(crate) fn timer_due(&mut self) -> Option<u64> {
        self.timer.due()
    }

    /// Heartbeats to sessions sent nothing for a while (timer tick `now`).
    pub(crate) fn heartbeats(&mut self, now_ns: u64, port: &mut (impl Port + ?Sized)) {
        self.replies
            .heartbeats(&mut self.core.sessions, now_ns, port, &mut self.core.counters);
    }

    /// One transmit round: drains replies from the sequencer, packs, sends.
    pub(crate) fn drain(&mut self, port: &mut (impl Port + ?Sized)) -> usize {
        let gateway = self.core.gateway();
        self.replies.drain(
            &mut self.core.sessions,
            &self.directory,
            gateway,
            port,
            &mut self.core.counters,
        )
    }
}
