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

/// Sequencer → gateway: one reply for one session. Two cache lines.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct OutboundSlot {
    /// The 100-byte reply.
    pub msg: [u8; MESSAGE_LEN],
    /// Destination session.
    pub to: SessionRef,
}

impl Default for OutboundSlot {
    fn default() -> Self {
        OutboundSlot {
            msg: [0; MESSAGE_LEN],
            to: SessionRef::default(),
        }
    }
}

const _: () = assert!(std::mem::size_of::<InboundSlot>() == 128);
const _: () = assert!(std::mem::size_of::<OutboundSlot>() == 128);
