//! The simulator's view of a transport: queue packets, flush, poll replies.

use super::flow::Flow;
use super::recorder::{Reply, ReplyKind};
use peregrine_wire::message::{Ack, ExecReport, MessageType, Reject, RejectReason, MESSAGE_LEN};
use zerocopy::FromBytes;

/// A client-side transport carrying many sessions.
pub trait ClientTransport {
    /// Queues one packet for session `s` of one message per entry of
    /// `stamps`, message k stamped `stamps[k]` (its intended send time, ns);
    /// returns the client sequence of the first.
    fn queue(&mut self, s: usize, stamps: &[u64], flow: &mut Flow) -> std::io::Result<u64>;
    /// Sends everything queued (or as much as the socket takes now).
    fn flush(&mut self) -> std::io::Result<()>;
    /// Receives what is pending; calls `f` for every reply with the time
    /// (ns) its packet was received (one clock read per receive call).
    fn poll(&mut self, f: &mut dyn FnMut(Reply, u64)) -> std::io::Result<usize>;
    /// Resends messages left unanswered longer than the retransmission
    /// timeout, if this transport retransmits; returns messages resent.
    fn retransmit(&mut self, _now_ns: u64) -> std::io::Result<usize> {
        Ok(0)
    }
    /// Messages resent so far.
    fn retransmitted(&self) -> u64 {
        0
    }
    /// False while session `s` may not send new messages yet (flow
    /// control: too many unanswered). Due messages then wait; their latency
    /// still counts from their intended send time.
    fn ready(&self, _s: usize) -> bool {
        true
    }
}

/// Decodes one 100-byte reply block for session `s`. `echo_seq` is the
/// client sequence to use for a raw-echoed Echo (baseline runs).
#[inline]
pub fn decode_reply(s: usize, block: &[u8], echo_seq: u64) -> Option<Reply> {
    if block.len() != MESSAGE_LEN {
        return None;
    }
    let t = MessageType::from_code(block[0])?;
    Some(match t {
        MessageType::Ack => {
            let a = Ack::ref_from_bytes(block).ok()?;
            Reply {
                session: s,
                client_seq: a.client_seq.get(),
                client_ts_ns: a.client_ts_ns.get(),
                kind: ReplyKind::Ack,
                global_seq: a.global_seq.get(),
                order_id: a.client_tag.get(),
            }
        }
        MessageType::Reject => {
            let j = Reject::ref_from_bytes(block).ok()?;
            if j.reason.get() == RejectReason::SequenceGap as u16
                || j.reason.get() == RejectReason::Busy as u16
            {
                // Not an answer: an earlier message went missing (or the
                // server is overloaded) and this one must be sent again.
                return None;
            }
            Reply {
                session: s,
                client_seq: j.client_seq.get(),
                client_ts_ns: j.client_ts_ns.get(),
                kind: ReplyKind::Reject,
                global_seq: j.global_seq.get(),
                order_id: j.order_id.get(),
            }
        }
        MessageType::Echo | MessageType::NewOrder | MessageType::Cancel | MessageType::Replace => Reply {
            // Baseline: our own message echoed back untouched.
            session: s,
            client_seq: echo_seq,
            client_ts_ns: peregrine_wire::message::client_ts_of(block),
            kind: ReplyKind::Ack,
            global_seq: 0,
            order_id: u64::from_le_bytes(block[16..24].try_into().unwrap_or([0; 8])),
        },
        // Session control, not an answer to a message.
        MessageType::Login
        | MessageType::Logout
        | MessageType::LoginAccepted
        | MessageType::LoginRejected => return None,
        _ => {
            let e = ExecReport::ref_from_bytes(block).ok()?;
            Reply {
                session: s,
                client_seq: e.client_seq.get(),
                client_ts_ns: e.client_ts_ns.get(),
                kind: ReplyKind::Report,
                global_seq: e.global_seq.get(),
                order_id: e.order_id.get(),
            }
        }
    })
}
