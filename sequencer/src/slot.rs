//! What travels on the rings: a message inline plus routing metadata.

use peregrine_wire::message::MESSAGE_LEN;
pub use peregrine_wire::SessionRef;

/// Gateway → sequencer: one validated client message. Two cache lines.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct InboundSlot {
    /// The 100-byte message as received (validated: type, version, length).
    pub msg: [u8; MESSAGE_LEN],
    /// Sending session.
    pub origin: SessionRef,
    /// The client's sequence number of this message within its session.
    pub client_seq: u64,
    /// Gateway receive timestamp, ns.
    pub gateway_rx_ns: u64,
}

impl Default for InboundSlot {
    fn default() -> Self {
        InboundSlot {
            msg: [0; MESSAGE_LEN],
            origin: SessionRef::default(),
            client_seq: 0,
            gateway_rx_ns: 0,
        }
    }
}

/// What an [`OutboundSlot`] asks of its gateway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum OutboundKind {
    /// Send `msg` to session `to` (the only kind a leader or a single node
    /// produces).
    #[default]
    Reply,
    /// A follower applied client message `client_seq` of session `to` from
    /// the replicated log: the session's dedup state moves past it, as
    /// recovery from the journal does, so the node can serve the session
    /// if it becomes leader. Nothing is sent.
    RestoreInput,
    /// A follower's application produced `msg` for session `to` while
    /// applying the replicated log: it takes the session's next reply
    /// sequence and enters its reply log. Nothing is sent.
    RestoreReply,
}

/// Sequencer → gateway: one reply for one session (or, on a follower, one
/// piece of session state to restore). Two cache lines.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct OutboundSlot {
    /// The 100-byte reply.
    pub msg: [u8; MESSAGE_LEN],
    /// Destination session.
    pub to: SessionRef,
    /// Reply, or session state to restore.
    pub kind: OutboundKind,
    /// [`OutboundKind::RestoreInput`]: the client sequence applied.
    pub client_seq: u64,
    /// Gateway receive timestamp (ns, the gateway's clock) of the message
    /// this reply answers, copied from [`InboundSlot::gateway_rx_ns`] by the
    /// sequencer; 0 when the reply answers no message (the gateway then
    /// records no latency for it).
    pub rx_ns: u64,
}

impl OutboundSlot {
    /// A reply to send.
    #[inline]
    pub fn reply(to: SessionRef, msg: &[u8; MESSAGE_LEN]) -> OutboundSlot {
        OutboundSlot {
            msg: *msg,
            to,
            kind: OutboundKind::Reply,
            client_seq: 0,
            rx_ns: 0,
        }
    }
}

impl Default for OutboundSlot {
    fn default() -> Self {
        OutboundSlot {
            msg: [0; MESSAGE_LEN],
            to: SessionRef::default(),
            kind: OutboundKind::Reply,
            client_seq: 0,
            rx_ns: 0,
        }
    }
}

const _: () = assert!(std::mem::size_of::<InboundSlot>() == 128);
const _: () = assert!(std::mem::size_of::<OutboundSlot>() == 128);
