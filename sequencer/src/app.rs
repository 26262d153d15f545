//! The contract between the sequencer and the application it feeds.

use crate::slot::{OutboundKind, OutboundSlot};
use peregrine_journal::Sequenced;
use peregrine_ring::Producer;
use peregrine_wire::message::MESSAGE_LEN;
use peregrine_wire::SessionRef;
use std::collections::VecDeque;

/// A deterministic state machine fed the sequenced stream.
///
/// Contract: called on the sequencer thread, once per message, in global
/// sequence order. Must not block or allocate in steady state. Replies go
/// through `out` to any session (a fill goes to taker and maker).
pub trait Application {
    /// Handles one sequenced message.
    fn on_message(&mut self, msg: &Sequenced<'_>, out: &mut ReplySink<'_>);
}

/// During journal replay: where the application's replies are shown
/// instead of being sent.
pub(crate) type ReplayReplies<'a> = dyn FnMut(SessionRef, &[u8; MESSAGE_LEN]) + 'a;

/// Where a [`ReplySink`]'s replies go.
pub(crate) enum SinkMode<'a> {
    /// Into the destination gateway's output ring, to be sent.
    Send,
    /// Into a queue, held until the poll's log entry is committed (a
    /// cluster leader with replicated acknowledgement).
    Hold(&'a mut VecDeque<OutboundSlot>),
    /// Into the output ring as session state to restore, not to send (a
    /// follower applying the replicated log).
    Restore,
    /// Shown to a closure (journal replay at start-up).
    Replay(&'a mut ReplayReplies<'a>),
}

/// Where an application's replies go: straight into the destination
/// gateway's output ring, or, when that ring is full, into a per-gateway
/// overflow queue the sequencer drains before taking new input
/// (back-pressure, never a drop). In a cluster the leader may hold them
/// until they are replicated, and a follower turns them into session state.
pub struct ReplySink<'a> {
    pub(crate) outputs: &'a mut [Producer<OutboundSlot>],
    pub(crate) overflow: &'a mut [VecDeque<OutboundSlot>],
    pub(crate) sent: u64,
    pub(crate) overflowed: u64,
    pub(crate) misrouted: u64,
    pub(crate) mode: SinkMode<'a>,
    /// Gateway receive timestamp (ns) of the message being handled, stamped
    /// on every reply as [`OutboundSlot::rx_ns`]; 0 outside a message.
    pub(crate) current_rx_ns: u64,
}

impl ReplySink<'_> {
    /// Queues `msg` for session `to`. Replies to one session keep their
    /// order. A reply for a gateway that does not exist is counted and
    /// dropped (a bug in the application, not a runtime condition).
    #[inline]
    pub fn send(&mut self, to: SessionRef, msg: &[u8; MESSAGE_LEN]) {
        self.sent += 1;
        let reply = OutboundSlot {
            rx_ns: self.current_rx_ns,
            ..OutboundSlot::reply(to, msg)
        };
        match &mut self.mode {
            SinkMode::Send => self.push(reply),
            SinkMode::Hold(q) => q.push_back(reply),
            SinkMode::Restore => self.push(OutboundSlot {
                kind: OutboundKind::RestoreReply,
                ..reply
            }),
            SinkMode::Replay(r) => r(to, msg),
        }
    }

    /// Routes `slot` to its gateway's output ring, or to that gateway's
    /// overflow queue when the ring is full or already backed up.
    #[inline]
    pub(crate) fn push(&mut self, slot: OutboundSlot) {
        let g = slot.to.gateway as usize;
        let (Some(out), Some(over)) = (self.outputs.get_mut(g), self.overflow.get_mut(g)) else {
            self.misrouted += 1;
            return;
        };
        if !over.is_empty() || !out.stage_with(|s| *s = slot) {
            over.push_back(slot);
            self.overflowed += 1;
        }
    }
}
