//! Typed messages a session sends.

use peregrine_wire::message::{Cancel, Echo, NewOrder, Replace, MESSAGE_LEN};
use zerocopy::IntoBytes;

/// A message to send: one of the client→server layouts of
/// [`peregrine_wire::message`]. The client sequence number is not part of
/// the message (the packet carries it); the client timestamp is, and the
/// server echoes it in every answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// Pure sequencing; answered with an Ack.
    Echo(Echo),
    /// A new order.
    NewOrder(NewOrder),
    /// Cancel an order.
    Cancel(Cancel),
    /// Replace an order's price and quantity.
    Replace(Replace),
}

impl Outbound {
    /// The 100 bytes on the wire.
    pub fn as_block(&self) -> &[u8; MESSAGE_LEN] {
        let b = match self {
            Outbound::Echo(m) => m.as_bytes(),
            Outbound::NewOrder(m) => m.as_bytes(),
            Outbound::Cancel(m) => m.as_bytes(),
            Outbound::Replace(m) => m.as_bytes(),
        };
        // Every layout is MESSAGE_LEN bytes (checked where they are defined).
        <&[u8; MESSAGE_LEN]>::try_from(b).unwrap_or(&[0; MESSAGE_LEN])
    }

    /// Writes the message into `out`.
    pub fn write(&self, out: &mut [u8; MESSAGE_LEN]) {
        out.copy_from_slice(self.as_block());
    }
}
