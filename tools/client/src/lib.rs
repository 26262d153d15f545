//! A Peregrine client session, to embed in a trading application (and the
//! session layer under Peregrine's own load simulator).
//!
//! What it does, per session:
//! - **Login**: UDP sessions send a Login message (secret, space padded) in
//!   a MoldUDP64 packet named by the session and resume at the client
//!   sequence and reply sequence the server reports in LoginAccepted (a
//!   restarted client continues where its session left off); TCP sessions
//!   send a SoupBinTCP Login Request.
//! - **Sending**: typed messages ([`Outbound`]: Echo, NewOrder, Cancel,
//!   Replace from [`peregrine_wire::message`]), numbered with consecutive
//!   client sequence numbers, several to a datagram.
//! - **Retransmission** (UDP, opt-in): every message is kept until it is
//!   answered; the one the server reports missing (a SequenceGap reject) is
//!   resent at once with the messages that travelled in its datagram, and
//!   the oldest unanswered one is resent when the [`rto::Rto`] timer runs
//!   out (doubling while it keeps timing out). The server recognises a copy
//!   by its client sequence and answers it with the original reply, so each
//!   message is sequenced exactly once. Replies that go missing (a gap in
//!   the reply sequence that lasts) are asked for again with a MoldUDP64
//!   retransmission request ([`reply_track::ReplyTrack`]).
//! - **Replies** arrive as typed [`Event`]s from a non-blocking `poll`.
//! - **Logout**.
//!
//! # Shape
//!
//! Nothing blocks except the explicit login helpers (which wait with a
//! timeout); `poll` returns at once when nothing arrived. Buffers are sized
//! up front (the datagram batches, the per-session state), so a steady flow
//! of messages does not allocate: the retransmission queues grow to the
//! flow-control window once and are reused. Errors are typed
//! ([`ClientError`]). A client carries any number of sessions on one UDP
//! socket (sessions are told apart by the MoldUDP64 session name) or one
//! TCP connection each: an application uses one, the load simulator
//! thousands.
//!
//! # Failover (not implemented yet; the shape allows it)
//!
//! A [`UdpClient`] is built from a list of server addresses and talks to
//! the first. A failover will move to the next address when the current one
//! stays silent, log every session in again asking for replies from the
//! next reply sequence it has not seen ([`reply_track::ReplyTrack::next`]),
//! continue at the client sequence the new node reports in LoginAccepted,
//! and resend the messages still unanswered with their original client
//! sequence numbers (the cluster recognises those already sequenced and
//! answers them with the original replies). The session state needed for
//! that (next client sequence, reply position, unanswered messages) is
//! kept per session independently of the socket for this reason.
//!
//! # Sequenced feeds
//!
//! Decoding is separate from the transport: [`decode_block`] turns any
//! 100-byte reply block into an [`Event`], so a consumer of a sequenced
//! feed can reuse it and [`reply_track::ReplyTrack`] to find its gaps.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod event;
pub mod failover;
pub mod link;
pub mod names;
pub mod outbound;
pub mod reply_track;
pub mod resend;
pub mod rto;
pub mod tcp;
pub mod udp;

pub use error::ClientError;
pub use event::{decode_block, Event, ExecutionReport, LoginRejection};
pub use failover::{FailoverOptions, FailoverStats};
pub use link::{Direction, Link, NoLink};
pub use names::{session_index, session_name};
pub use outbound::{OrderKind, Outbound, Side, TimeInForce};
pub use peregrine_wire::message::{Liquidity, RejectReason};
pub use tcp::TcpClient;
pub use udp::UdpClient;

/// Most messages one packet carries (14 fill a MoldUDP64 datagram).
pub const MAX_PACK: usize = peregrine_wire::moldudp64::MAX_MESSAGES_PER_PACKET;
