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
//! # Failover
//!
//! In a Peregrine cluster only the leader serves clients. A client is built
//! from every node's address for its gateway (`UdpClient::new(&[a, b, c],
//! ..)`, `TcpClient::connect(&[a, b, c], ..)`) and finds the leader at
//! login: a node that is not the leader refuses with `L`
//! ([`LoginRejection::NotLeader`]; over UDP naming the leader's address,
//! which the client goes to straight away), and a refusal without a hint,
//! a refused connection or a login unanswered within
//! [`FailoverOptions::login_timeout`] moves to the next address.
//!
//! With failover on ([`UdpClient::with_failover`] together with
//! [`UdpClient::with_retransmission`]; [`TcpClient::with_failover`]) the
//! client also moves by itself when its node fails: over UDP when it has
//! heard nothing (no reply, no heartbeat) for [`FailoverOptions::silence`],
//! over TCP when a connection closes or fails. Every session logs in again
//! on the node that now serves and resumes exactly where the cluster is
//! (the new leader rebuilt every session from the replicated log):
//! - it asks for the replies it has not received, from its reply position
//!   ([`reply_track::ReplyTrack::next`]; UDP: the Login's `reply_seq`, TCP:
//!   the Login Request's requested sequence number);
//! - it resends only what the new node never sequenced: over UDP the kept
//!   messages from the LoginAccepted's next client sequence on, with their
//!   original numbers; over TCP, where the next client sequence is
//!   implicit, the messages the replayed replies leave unanswered (the
//!   client learns where the replay ends from a first login that asks for
//!   none, and holds new messages back until it has arrived);
//! - so every message is answered exactly once: none sequenced twice, none
//!   lost. A message the old node sequenced but had not replicated is not
//!   in the new node's log; it is resent and sequenced there, once.
//!
//! [`FailoverStats`] counts failovers, refusals `L`, address switches,
//! messages resent after a failover and the time from the last reply of
//! the old node to the first reply of the new one. The wire side of all
//! this is the "Cluster" section of `docs/PROTOCOL.md`.
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
