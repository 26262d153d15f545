//! Typed messages a session sends.

use peregrine_wire::message::{Cancel, Echo, NewOrder, Replace, MESSAGE_LEN};
pub use peregrine_wire::message::{OrderKind, Side, TimeInForce};
use zerocopy::little_endian::{I64, U32, U64};
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

impl Outbound {
    /// An Echo stamped `client_ts_ns` (ns, echoed in the Ack) with `tag`.
    pub fn echo(client_ts_ns: u64, tag: u64) -> Outbound {
        Outbound::Echo(Echo::new(client_ts_ns, tag))
    }

    /// A limit order: `quantity` units of `instrument` at `price` (in the
    /// instrument's ticks), identified by the session's own `order_id`
    /// (unique per session), stamped `client_ts_ns`.
    pub fn limit(
        order_id: u64,
        instrument: u32,
        side: Side,
        price: i64,
        quantity: u64,
        tif: TimeInForce,
        client_ts_ns: u64,
    ) -> Outbound {
        let mut m = NewOrder::empty();
        m.set_side(side);
        m.set_order_kind(OrderKind::Limit);
        m.set_time_in_force(tif);
        m.client_ts_ns = U64::new(client_ts_ns);
        m.order_id = U64::new(order_id);
        m.instrument = U32::new(instrument);
        m.price = I64::new(price);
        m.quantity = U64::new(quantity);
        Outbound::NewOrder(m)
    }

    /// A market order (immediate or cancel): `quantity` units of
    /// `instrument` at any price.
    pub fn market(order_id: u64, instrument: u32, side: Side, quantity: u64, client_ts_ns: u64) -> Outbound {
        let mut o = Outbound::limit(
            order_id,
            instrument,
            side,
            0,
            quantity,
            TimeInForce::Ioc,
            client_ts_ns,
        );
        if let Outbound::NewOrder(m) = &mut o {
            m.set_order_kind(OrderKind::Market);
        }
        o
    }

    /// Cancels the session's order `order_id` on `instrument`.
    pub fn cancel(order_id: u64, instrument: u32, client_ts_ns: u64) -> Outbound {
        let mut m = Cancel::empty();
        m.client_ts_ns = U64::new(client_ts_ns);
        m.order_id = U64::new(order_id);
        m.instrument = U32::new(instrument);
        Outbound::Cancel(m)
    }

    /// Replaces the session's order `order_id`: new price (ticks) and new
    /// total quantity (units, filled part included).
    pub fn replace(
        order_id: u64,
        instrument: u32,
        new_price: i64,
        new_quantity: u64,
        client_ts_ns: u64,
    ) -> Outbound {
        let mut m = Replace::empty();
        m.client_ts_ns = U64::new(client_ts_ns);
        m.order_id = U64::new(order_id);
        m.instrument = U32::new(instrument);
        m.new_price = I64::new(new_price);
        m.new_quantity = U64::new(new_quantity);
        Outbound::Replace(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_wire::message::{parse_inbound, Inbound};

    #[test]
    fn typed_messages_encode_to_what_the_server_parses() {
        let o = Outbound::limit(7, 1, Side::Sell, 100, 10, TimeInForce::Gtc, 5);
        match parse_inbound(o.as_block()).unwrap() {
            Inbound::NewOrder(m) => {
                assert_eq!(
                    (m.order_id.get(), m.side, m.price.get(), m.quantity.get()),
                    (7, 2, 100, 10)
                );
                assert_eq!((m.order_kind, m.time_in_force, m.client_ts_ns.get()), (1, 1, 5));
            }
            _ => panic!("a new order"),
        }
        match parse_inbound(Outbound::market(8, 1, Side::Buy, 3, 0).as_block()).unwrap() {
            Inbound::NewOrder(m) => assert_eq!((m.order_kind, m.time_in_force, m.side), (2, 2, 1)),
            _ => panic!("a new order"),
        }
        assert!(matches!(
            parse_inbound(Outbound::cancel(7, 1, 0).as_block()).unwrap(),
            Inbound::Cancel(c) if c.order_id.get() == 7
        ));
        assert!(matches!(
            parse_inbound(Outbound::replace(7, 1, 99, 20, 0).as_block()).unwrap(),
            Inbound::Replace(r) if r.new_price.get() == 99 && r.new_quantity.get() == 20
        ));
        let mut out = [0u8; MESSAGE_LEN];
        Outbound::echo(1, 2).write(&mut out);
        assert!(matches!(parse_inbound(&out).unwrap(), Inbound::Echo(_)));
    }
}
