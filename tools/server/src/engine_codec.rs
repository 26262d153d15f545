//! The pairing between the matching engine's commands and reports and the
//! wire messages that carry them: the engine knows no wire codes and the
//! wire crate knows no engine, so the maps live here, once, and both
//! directions are written side by side (the server decodes orders, the
//! simulator encodes them). The wire enumerations own the numbers; these
//! functions only pair variants.

use peregrine_engine::{
    Cancel, Command, Liquidity, NewOrder, OrderKind, Replace, SelfTradePrevention, Side, TimeInForce,
};
use peregrine_wire::message::{self as wire, Inbound, UnknownCode, MESSAGE_LEN};
use zerocopy::little_endian::{I64, U32, U64};
use zerocopy::IntoBytes;

/// The engine's side for a wire side. The engine knows no wire codes; the
/// wire enumerations own them, and these maps only pair the variants.
#[inline]
pub fn engine_side(s: wire::Side) -> Side {
    match s {
        wire::Side::Buy => Side::Buy,
        wire::Side::Sell => Side::Sell,
    }
}

/// The wire side for an engine side.
#[inline]
pub fn wire_side(s: Side) -> wire::Side {
    match s {
        Side::Buy => wire::Side::Buy,
        Side::Sell => wire::Side::Sell,
    }
}

/// The engine's order kind for a wire order kind.
#[inline]
pub fn engine_kind(k: wire::OrderKind) -> OrderKind {
    match k {
        wire::OrderKind::Limit => OrderKind::Limit,
        wire::OrderKind::Market => OrderKind::Market,
    }
}

/// The engine's time in force for a wire time in force.
#[inline]
pub fn engine_tif(t: wire::TimeInForce) -> TimeInForce {
    match t {
        wire::TimeInForce::Gtc => TimeInForce::Gtc,
        wire::TimeInForce::Ioc => TimeInForce::Ioc,
        wire::TimeInForce::Fok => TimeInForce::Fok,
    }
}

/// The engine's self-trade prevention mode for a wire one.
#[inline]
pub fn engine_stp(m: wire::SelfTrade) -> SelfTradePrevention {
    match m {
        wire::SelfTrade::None => SelfTradePrevention::None,
        wire::SelfTrade::CancelResting => SelfTradePrevention::CancelResting,
        wire::SelfTrade::CancelIncoming => SelfTradePrevention::CancelIncoming,
    }
}

/// The wire liquidity for an engine liquidity.
#[inline]
pub fn wire_liquidity(l: Liquidity) -> wire::Liquidity {
    match l {
        Liquidity::None => wire::Liquidity::None,
        Liquidity::Maker => wire::Liquidity::Maker,
        Liquidity::Taker => wire::Liquidity::Taker,
    }
}

/// The engine command for an order message; `Err` when a coded field holds
/// an undefined value (or for an Echo, which is no command).
pub fn decode(msg: Inbound<'_>, session: u32) -> Result<Command, UnknownCode> {
    Ok(match msg {
        Inbound::NewOrder(o) => Command::New(NewOrder {
            session,
            order_id: o.order_id.get(),
            instrument: o.instrument.get(),
            side: engine_side(o.side()?),
            kind: engine_kind(o.order_kind()?),
            tif: engine_tif(o.time_in_force()?),
            post_only: o.post_only(),
            stp: engine_stp(o.self_trade()?),
            price: o.price.get(),
            quantity: o.quantity.get(),
        }),
        Inbound::Cancel(c) => Command::Cancel(Cancel {
            session,
            order_id: c.order_id.get(),
            instrument: c.instrument.get(),
        }),
        Inbound::Replace(r) => Command::Replace(Replace {
            session,
            order_id: r.order_id.get(),
            instrument: r.instrument.get(),
            new_price: r.new_price.get(),
            new_quantity: r.new_quantity.get(),
        }),
        Inbound::Echo(e) => {
            return Err(UnknownCode {
                field: "msg_type",
                value: e.msg_type.into(),
            })
        }
    })
}

/// The engine's order kind as the wire codes it.
#[inline]
pub fn wire_kind(k: OrderKind) -> wire::OrderKind {
    match k {
        OrderKind::Limit => wire::OrderKind::Limit,
        OrderKind::Market => wire::OrderKind::Market,
    }
}

/// The engine's time in force as the wire codes it.
#[inline]
pub fn wire_tif(t: TimeInForce) -> wire::TimeInForce {
    match t {
        TimeInForce::Gtc => wire::TimeInForce::Gtc,
        TimeInForce::Ioc => wire::TimeInForce::Ioc,
        TimeInForce::Fok => wire::TimeInForce::Fok,
    }
}

/// The engine's self-trade prevention mode as the wire codes it.
#[inline]
pub fn wire_stp(m: SelfTradePrevention) -> wire::SelfTrade {
    match m {
        SelfTradePrevention::None => wire::SelfTrade::None,
        SelfTradePrevention::CancelResting => wire::SelfTrade::CancelResting,
        SelfTradePrevention::CancelIncoming => wire::SelfTrade::CancelIncoming,
    }
}

/// Writes `command` as the wire message a client sends for it, stamped
/// `ts_ns` (the session is the sender's, so it is not written): the inverse
/// of [`decode`].
pub fn encode(command: &Command, ts_ns: u64, out: &mut [u8; MESSAGE_LEN]) {
    match command {
        Command::New(o) => {
            let mut m = wire::NewOrder::empty();
            m.set_side(wire_side(o.side));
            m.set_order_kind(wire_kind(o.kind));
            m.set_time_in_force(wire_tif(o.tif));
            m.set_post_only(o.post_only);
            m.set_self_trade(wire_stp(o.stp));
            m.client_ts_ns = U64::new(ts_ns);
            m.order_id = U64::new(o.order_id);
            m.instrument = U32::new(o.instrument);
            m.price = I64::new(o.price);
            m.quantity = U64::new(o.quantity);
            out.copy_from_slice(m.as_bytes());
        }
        Command::Cancel(c) => {
            let mut m = wire::Cancel::empty();
            m.client_ts_ns = U64::new(ts_ns);
            m.order_id = U64::new(c.order_id);
            m.instrument = U32::new(c.instrument);
            out.copy_from_slice(m.as_bytes());
        }
        Command::Replace(r) => {
            let mut m = wire::Replace::empty();
            m.client_ts_ns = U64::new(ts_ns);
            m.order_id = U64::new(r.order_id);
            m.instrument = U32::new(r.instrument);
            m.new_price = I64::new(r.new_price);
            m.new_quantity = U64::new(r.new_quantity);
            out.copy_from_slice(m.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_wire::message::parse_inbound;

    /// The maps pair variants: the engine's discriminants are the same
    /// numbers as the wire codes, so a mismatched arm would show here.
    #[test]
    fn enum_maps_pair_the_same_values() {
        for &s in wire::Side::ALL {
            assert_eq!(engine_side(s) as u8, s.code());
            assert_eq!(wire_side(engine_side(s)), s);
        }
        for &k in wire::OrderKind::ALL {
            assert_eq!(engine_kind(k) as u8, k.code());
            assert_eq!(wire_kind(engine_kind(k)), k);
        }
        for &t in wire::TimeInForce::ALL {
            assert_eq!(engine_tif(t) as u8, t.code());
            assert_eq!(wire_tif(engine_tif(t)), t);
        }
        for &m in wire::SelfTrade::ALL {
            assert_eq!(engine_stp(m) as u8, m.code());
            assert_eq!(wire_stp(engine_stp(m)), m);
        }
        for l in [Liquidity::None, Liquidity::Maker, Liquidity::Taker] {
            assert_eq!(wire_liquidity(l).code(), l as u8);
        }
    }

    /// Encoding a command and decoding it gives the same command back.
    #[test]
    fn encode_then_decode_is_the_identity() {
        let cmds = [
            Command::New(NewOrder {
                session: 9,
                order_id: 7,
                instrument: 1,
                side: Side::Sell,
                kind: OrderKind::Limit,
                tif: TimeInForce::Fok,
                post_only: true,
                stp: SelfTradePrevention::CancelIncoming,
                price: 101,
                quantity: 5,
            }),
            Command::Cancel(Cancel {
                session: 9,
                order_id: 7,
                instrument: 1,
            }),
            Command::Replace(Replace {
                session: 9,
                order_id: 7,
                instrument: 1,
                new_price: 99,
                new_quantity: 4,
            }),
        ];
        for c in cmds {
            let mut m = [0u8; MESSAGE_LEN];
            encode(&c, 3, &mut m);
            let inbound = parse_inbound(&m).expect("a valid message");
            assert_eq!(inbound.client_ts_ns(), 3);
            assert_eq!(decode(inbound, 9), Ok(c));
        }
    }
}
