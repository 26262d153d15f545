//! The simulator's view of a transport: queue packets, flush, poll replies.
//! The sessions behind it are `peregrine-client`'s; this adds only what the
//! load generator needs (messages from the flow, replies as the recorder
//! counts them).

use super::faults::LossyLink;
use super::flow::Flow;
use super::recorder::{Reply, ReplyKind};
use peregrine_client::{ClientError, Event, FailoverStats, TcpClient, UdpClient};

/// The simulator's UDP client: its sessions, optionally behind a lossy link.
pub type SimUdpClient = UdpClient<Option<LossyLink>>;

/// A client-side transport carrying many sessions.
pub trait ClientTransport {
    /// Queues one packet for session `s` of one message per entry of
    /// `stamps` (at most [`super::MAX_PACK`]), message k stamped `stamps[k]`
    /// (its intended send time, ns); returns the client sequence of the
    /// first.
    fn queue(&mut self, s: usize, stamps: &[u64], flow: &mut Flow) -> Result<u64, ClientError>;
    /// Sends everything queued (or as much as the socket takes now).
    fn flush(&mut self) -> Result<(), ClientError>;
    /// Receives what is pending; calls `f` for every reply with the time
    /// (ns) its packet was received (one clock read per receive call).
    fn poll(&mut self, f: &mut dyn FnMut(Reply, u64)) -> Result<usize, ClientError>;
    /// Resends messages left unanswered longer than the retransmission
    /// timeout, if this transport retransmits; returns messages resent.
    fn retransmit(&mut self, _now_ns: u64) -> Result<usize, ClientError> {
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
    /// The failovers so far (none for a transport that does not fail over).
    fn failover_stats(&self) -> FailoverStats {
        FailoverStats::default()
    }
}

/// What an event means to the recorder: the answers to messages (acks,
/// rejects, execution reports, our own messages echoed by a raw peer).
/// Session events and messages the server did not take are not answers.
#[inline]
pub fn reply_of(e: Event) -> Option<Reply> {
    Some(match e {
        Event::Ack {
            session,
            client_seq,
            client_ts_ns,
            global_seq,
            tag,
        } => Reply {
            session,
            client_seq,
            client_ts_ns,
            kind: ReplyKind::Ack,
            global_seq,
            order_id: tag,
        },
        Event::Reject {
            session,
            client_seq,
            client_ts_ns,
            global_seq,
            order_id,
            ..
        } => Reply {
            session,
            client_seq,
            client_ts_ns,
            kind: ReplyKind::Reject,
            global_seq,
            order_id,
        },
        Event::Report { session, report } => Reply {
            session,
            client_seq: report.client_seq,
            client_ts_ns: report.client_ts_ns,
            kind: ReplyKind::Report,
            global_seq: report.global_seq,
            order_id: report.order_id,
        },
        Event::Echoed {
            session,
            client_seq,
            client_ts_ns,
            tag,
        } => Reply {
            session,
            client_seq,
            client_ts_ns,
            kind: ReplyKind::Ack,
            global_seq: 0,
            order_id: tag,
        },
        Event::LoginAccepted { .. }
        | Event::LoginRejected { .. }
        | Event::NotTaken { .. }
        | Event::EndOfSession { .. } => return None,
    })
}

impl ClientTransport for SimUdpClient {
    fn queue(&mut self, s: usize, stamps: &[u64], flow: &mut Flow) -> Result<u64, ClientError> {
        self.send_with(s, stamps.len(), |k, seq, out| flow.next(s, stamps[k], seq, out))
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        UdpClient::flush(self)
    }

    fn poll(&mut self, f: &mut dyn FnMut(Reply, u64)) -> Result<usize, ClientError> {
        UdpClient::poll(self, |e, now| {
            if let Some(r) = reply_of(e) {
                f(r, now);
            }
        })
    }

    fn retransmit(&mut self, now_ns: u64) -> Result<usize, ClientError> {
        self.tick(now_ns)
    }

    fn retransmitted(&self) -> u64 {
        UdpClient::retransmitted(self)
    }

    fn ready(&self, s: usize) -> bool {
        UdpClient::ready(self, s)
    }

    fn failover_stats(&self) -> FailoverStats {
        UdpClient::failover_stats(self)
    }
}

impl ClientTransport for TcpClient {
    fn queue(&mut self, s: usize, stamps: &[u64], flow: &mut Flow) -> Result<u64, ClientError> {
        self.send_with(s, stamps.len(), |k, seq, out| flow.next(s, stamps[k], seq, out))
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        TcpClient::flush(self)
    }

    fn poll(&mut self, f: &mut dyn FnMut(Reply, u64)) -> Result<usize, ClientError> {
        let mut got = 0;
        TcpClient::poll(self, |e, now| {
            if let Some(r) = reply_of(e) {
                f(r, now);
                got += 1;
            }
        })?;
        Ok(got)
    }

    fn ready(&self, s: usize) -> bool {
        TcpClient::ready(self, s)
    }

    fn failover_stats(&self) -> FailoverStats {
        TcpClient::failover_stats(self)
    }
}
