//! The contract between the sequencer and the application it feeds.

use crate::slot::{OutboundKind, OutboundSlot};
use hdrhistogram::Histogram;
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
    /// How many messages ahead of [`on_message`](Self::on_message) the
    /// sequencer shows each message to [`prefetch`](Self::prefetch), within
    /// the burst it drains from one input ring (read once per burst). 0
    /// (the default): never.
    #[inline]
    fn prefetch_distance(&self) -> usize {
        0
    }

    /// Handles one sequenced message.
    fn on_message(&mut self, msg: &Sequenced<'_>, out: &mut ReplySink<'_>);

    /// A message that will be handed to [`on_message`](Self::on_message)
    /// soon, [`prefetch_distance`](Self::prefetch_distance) messages from
    /// now (or sooner, at the start
    /// of a burst), from session `origin`: the application may start
    /// loading the memory it will touch. Must not change any state the
    /// replies depend on: the message may be any bytes the gateway
    /// accepted, and is sequenced only once `on_message` sees it.
    #[inline]
    fn prefetch(&self, _msg: &[u8; MESSAGE_LEN], _origin: SessionRef) {}
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

impl<'a> ReplySink<'a> {
    /// A sink over the sequencer's output rings and overflow queues, with
    /// every count at zero.
    pub(crate) fn new(
        outputs: &'a mut [Producer<OutboundSlot>],
        overflow: &'a mut [VecDeque<OutboundSlot>],
        mode: SinkMode<'a>,
    ) -> Self {
        ReplySink {
            outputs,
            overflow,
            sent: 0,
            overflowed: 0,
            misrouted: 0,
            mode,
            current_rx_ns: 0,
        }
    }

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

    /// Queues a reply for session `to` built by `fill`, as [`send`] would
    /// queue the bytes `fill` writes. `fill` is given the reply's 100
    /// bytes with unspecified contents and must write every one of them.
    ///
    /// Why: when the reply can go straight into its gateway's output ring
    /// (the common case) it is built in the ring slot, where it leaves
    /// from. A reply assembled on the stack field by field and then copied
    /// is read back over narrow stores that are still in flight, and the
    /// processor makes that read wait for them.
    ///
    /// [`send`]: Self::send
    // Always inlined: left to the compiler, it went out of line under the
    // server's application enum, a call per reply.
    #[inline(always)]
    pub fn send_with(&mut self, to: SessionRef, fill: impl FnOnce(&mut [u8; MESSAGE_LEN])) {
        if matches!(self.mode, SinkMode::Send) {
            let g = usize::from(to.gateway);
            if let (Some(out), Some(over)) = (self.outputs.get_mut(g), self.overflow.get_mut(g)) {
                if over.is_empty() {
                    // One room check (the claim's), not one to decide and
                    // another to stage.
                    let mut claim = out.claim(1);
                    if claim.room() == 1 {
                        let rx_ns = self.current_rx_ns;
                        let staged = claim.stage_with(|s| {
                            fill(&mut s.msg);
                            s.to = to;
                            s.kind = OutboundKind::Reply;
                            s.client_seq = 0;
                            s.rx_ns = rx_ns;
                        });
                        debug_assert!(staged, "the claim has room");
                        self.sent += 1;
                        return;
                    }
                }
            }
        }
        let mut msg = [0u8; MESSAGE_LEN];
        fill(&mut msg);
        self.send(to, &msg);
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

/// The sequencer's reply readiness latency: per reply, the time from the
/// sequencing of the message it answers (`sequencer_ns`) to the reply
/// becoming visible to its gateway, ns. An HdrHistogram allocated at
/// start-up (1 ns to 60 s, 3 significant digits); recording never
/// allocates, and a value above the range is counted in
/// [`out_of_range`](Self::out_of_range) and recorded as the highest.
pub struct ReadyLatency {
    histogram: Histogram<u64>,
    sum_ns: u64,
    out_of_range: u64,
}

impl std::fmt::Debug for ReadyLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyLatency")
            .field("count", &self.histogram.len())
            .finish()
    }
}

impl Default for ReadyLatency {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadyLatency {
    /// Highest recordable value, ns (60 s).
    pub const HIGHEST_NS: u64 = 60_000_000_000;

    /// Allocates the histogram (a few hundred KiB), once.
    pub fn new() -> Self {
        ReadyLatency {
            histogram: Histogram::new_with_bounds(1, Self::HIGHEST_NS, 3)
                .expect("constant histogram bounds are valid"),
            sum_ns: 0,
            out_of_range: 0,
        }
    }

    /// Records `n` replies that became ready `ns` after their sequencing.
    #[inline]
    pub fn record_n(&mut self, ns: u64, n: u64) {
        let v = ns.max(1);
        if v > Self::HIGHEST_NS {
            self.out_of_range += n;
        }
        self.histogram.saturating_record_n(v, n);
        self.sum_ns = self.sum_ns.saturating_add(v.saturating_mul(n));
    }

    /// The histogram since start, ns.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// Sum of the values recorded, ns (saturating).
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns
    }

    /// Values above [`HIGHEST_NS`](Self::HIGHEST_NS).
    pub fn out_of_range(&self) -> u64 {
        self.out_of_range
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_ring::ring;

    fn reply(k: u8) -> [u8; MESSAGE_LEN] {
        let mut m = [0u8; MESSAGE_LEN];
        for (i, b) in m.iter_mut().enumerate() {
            *b = k.wrapping_add(i as u8);
        }
        m
    }

    #[derive(Clone, Copy)]
    enum Mode {
        Send,
        Restore,
        Hold,
    }

    /// What a sink in `mode` leaves in a 2-slot ring and its overflow queue
    /// after five replies to gateway 0 and one to a gateway that does not
    /// exist, sent with `send_with` or `send`; and its counts.
    fn outcome(build_in_place: bool, mode: Mode) -> (Vec<String>, Vec<String>, Vec<String>, [u64; 3]) {
        let (p, mut c) = ring::<OutboundSlot>(2).unwrap();
        // The ring's slots hold stale bytes that must not show through.
        let (mut outputs, mut overflow) = (vec![p], vec![VecDeque::new()]);
        outputs[0].stage(OutboundSlot {
            client_seq: 99,
            rx_ns: 99,
            ..OutboundSlot::reply(SessionRef::new(0, 9), &[0xee; MESSAGE_LEN])
        });
        outputs[0].publish();
        let _ = c.pop();
        let mut held = VecDeque::new();
        let counts = {
            let mode = match mode {
                Mode::Send => SinkMode::Send,
                Mode::Restore => SinkMode::Restore,
                Mode::Hold => SinkMode::Hold(&mut held),
            };
            let mut sink = ReplySink::new(&mut outputs, &mut overflow, mode);
            for k in 0..6u8 {
                sink.current_rx_ns = 1_000 + u64::from(k);
                let to = SessionRef::new(if k == 3 { 7 } else { 0 }, u32::from(k));
                if build_in_place {
                    sink.send_with(to, |m| *m = reply(k));
                } else {
                    sink.send(to, &reply(k));
                }
            }
            [sink.sent, sink.overflowed, sink.misrouted]
        };
        outputs[0].publish();
        let show = |s: &OutboundSlot| format!("{:?}", s);
        let in_ring = std::iter::from_fn(|| c.pop()).map(|s| show(&s)).collect();
        let queued = overflow[0].iter().map(show).collect();
        (in_ring, queued, held.iter().map(show).collect(), counts)
    }

    #[test]
    fn a_reply_built_in_place_is_queued_as_the_same_reply_sent() {
        for in_place in [false, true] {
            let (ring, over, held, counts) = outcome(in_place, Mode::Send);
            assert_eq!(
                (ring.len(), over.len(), held.len()),
                (2, 3, 0),
                "in place: {in_place}"
            );
            assert_eq!(counts, [6, 3, 1], "in place: {in_place}");
        }
        for mode in [Mode::Send, Mode::Restore, Mode::Hold] {
            assert_eq!(outcome(true, mode), outcome(false, mode));
        }
        let held = outcome(true, Mode::Hold);
        assert_eq!(
            (held.0.len(), held.2.len()),
            (0, 6),
            "all held; routing comes later"
        );
    }
}
