//! The contract between the sequencer and the application it feeds.

use crate::slot::OutboundSlot;
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

/// Where an application's replies go: straight into the destination
/// gateway's output ring, or, when that ring is full, into a per-gateway
/// overflow queue the sequencer drains before taking new input
/// (back-pressure, never a drop).
pub struct ReplySink<'a> {
    pub(crate) outputs: &'a mut [Producer<OutboundSlot>],
    pub(crate) overflow: &'a mut [VecDeque<OutboundSlot>],
    pub(crate) sent: u64,
    pub(crate) overflowed: u64,
    pub(crate) misrouted: u64,
    /// Replay: replies go here instead of to the rings.
    pub(crate) replay: Option<&'a mut ReplayReplies<'a>>,
}

impl ReplySink<'_> {
    /// Queues `msg` for session `to`. Replies to one session keep their
    /// order. A reply for a gateway that does not exist is counted and
    /// dropped (a bug in the application, not a runtime condition).
    #[inline]
    pub fn send(&mut self, to: SessionRef, msg: &[u8; MESSAGE_LEN]) {
        if let Some(r) = self.replay.as_mut() {
            r(to, msg);
            self.sent += 1;
            return;
        }
        let g = to.gateway as usize;
        let (Some(out), Some(over)) = (self.outputs.get_mut(g), self.overflow.get_mut(g)) else {
            self.misrouted += 1;
            return;
        };
        if !over.is_empty()
            || !out.stage_with(|s| {
                s.msg = *msg;
                s.to = to;
            })
        {
            over.push_back(OutboundSlot { msg: *msg, to });
            self.overflowed += 1;
        }
        self.sent += 1;
    }
}
