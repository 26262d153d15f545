//! Gateways: the busy-polled loops that own network ports and client
//! sessions, turn framed packets into validated ring slots for the
//! sequencer, and pack the sequencer's replies back into packets.
//!
//! - [`udp::UdpGateway`]: MoldUDP64 over any
//!   [`peregrine_netio::DatagramPort`] (kernel UDP or DPDK).
//! - [`tcp::TcpGateway`]: SoupBinTCP over a [`peregrine_netio::StreamPort`]
//!   (kernel TCP).
//! - [`session_core::SessionCore`]: the session layer both share, as a
//!   state machine without I/O; [`options::GatewayOptions`] their sizing.
//! - [`GatewayLoop`]: the polling surface the server's thread layouts drive.
//! - [`latency::ReplyLatency`]: each gateway's live receive-to-transmit
//!   reply latency (HdrHistograms, since start and per interval).
//! - [`Leadership`]: whether the node serves clients (only a cluster's
//!   leader does); followers refuse logins with a hint naming the leader.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod counters;
pub mod directory;
pub mod fxhash;
mod gateway_core;
mod gateway_loop;
pub mod latency;
pub mod leadership;
pub mod options;
pub mod replies;
pub mod restore;
pub mod session;
pub mod session_core;
pub mod snapshot;
pub mod tcp;
pub mod udp;

pub use counters::GatewayCounters;
pub use gateway_loop::GatewayLoop;
pub use latency::{LatencyBuckets, ReplyLatency};
pub use leadership::Leadership;
pub use options::GatewayOptions;
pub use session_core::SessionCore;
pub use tcp::TcpGateway;
pub use udp::UdpGateway;

use peregrine_ring::{ring, Consumer, Producer, RingError};
use peregrine_sequencer::slot::{InboundSlot, OutboundSlot};

/// The gateway's ends of its ring pair.
pub struct GatewayRings {
    /// Validated client messages towards the sequencer.
    pub to_sequencer: Producer<InboundSlot>,
    /// Replies from the sequencer.
    pub from_sequencer: Consumer<OutboundSlot>,
}

/// The sequencer's ends of one gateway's ring pair.
pub type SequencerRings = (Consumer<InboundSlot>, Producer<OutboundSlot>);

/// Gateways ready to run, and the sequencer's ends of their rings, in the
/// same order.
pub type GatewaySet = (Vec<Box<dyn GatewayLoop>>, Vec<SequencerRings>);

/// Creates one gateway's ring pair, each of `capacity` slots (power of two).
pub fn ring_pair(capacity: usize) -> Result<(GatewayRings, SequencerRings), RingError> {
    let (ip, ic) = ring::<InboundSlot>(capacity)?;
    let (op, oc) = ring::<OutboundSlot>(capacity)?;
    Ok((
        GatewayRings {
            to_sequencer: ip,
            from_sequencer: oc,
        },
        (ic, op),
    ))
}
