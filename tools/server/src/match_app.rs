//! The matching engine as the sequencer's application: decodes the wire
//! messages into engine commands and encodes the engine's reports as wire
//! execution reports, routed to the sessions the engine names.
//!
//! Engine sessions are `u32`s: the gateway id in the top 8 bits, the
//! gateway's session index in the low 24, so a report can be routed back
//! without a lookup.

use peregrine_engine::{
    Cancel, Command, Engine, EngineConfig, Liquidity, NewOrder, OrderKind, Replace, Report, ReportKind,
    ReportSink, SelfTradePrevention, Side, TimeInForce,
};
use peregrine_sequencer::{Application, EchoApp, ReplySink, Sequenced, SessionRef};
use peregrine_wire::message::{
    self as wire, parse_inbound, ExecReport, Inbound, MessageType, Reject, RejectReason, UnknownCode,
    ENGINE_REASON_BASE, MESSAGE_LEN,
};
use zerocopy::little_endian::{I64, U16, U32, U64};

/// Most sessions a gateway may have under the match app (24 bits).
pub const MAX_SESSIONS_PER_GATEWAY: u32 = 1 << 24;

/// Engine session id for a gateway session.
#[inline]
pub fn engine_session(r: SessionRef) -> u32 {
    ((r.gateway as u32) << 24) | (r.index & (MAX_SESSIONS_PER_GATEWAY - 1))
}

/// The gateway session for an engine session id.
#[inline]
pub fn session_ref(s: u32) -> SessionRef {
    SessionRef::new((s >> 24) as u16, s & (MAX_SESSIONS_PER_GATEWAY - 1))
}

/// Matching engine behind the sequencer.
pub struct MatchApp {
    engine: Engine,
    echo: EchoApp,
}

impl MatchApp {
    /// A fresh engine over `cfg`'s instruments.
    pub fn new(cfg: &EngineConfig) -> Result<Self, peregrine_engine::ConfigError> {
        Ok(MatchApp {
            engine: Engine::new(cfg)?,
            echo: EchoApp::new(),
        })
    }

    /// The engine (state hash, books).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

struct WireSink<'s, 'o> {
    out: &'s mut ReplySink<'o>,
    origin: u32,
    msg_type: u8,
    global_seq: u64,
    client_seq: u64,
    client_ts_ns: u64,
    gateway_rx_ns: u64,
    sequencer_ns: u64,
}

impl ReportSink for WireSink<'_, '_> {
    #[inline]
    fn report(&mut self, session: u32, r: &Report) {
        let mine = session == self.origin;
        let bytes: [u8; MESSAGE_LEN] = if r.kind == ReportKind::Rejected {
            let mut j = Reject::for_block(
                &[],
                ENGINE_REASON_BASE + r.reason.code(),
                self.client_seq,
                self.gateway_rx_ns,
            );
            j.rejected_type = self.msg_type;
            j.global_seq = U64::new(self.global_seq);
            j.client_ts_ns = U64::new(self.client_ts_ns);
            j.order_id = U64::new(r.order_id);
            j.sequencer_ns = U64::new(self.sequencer_ns);
            zerocopy::transmute!(j)
        } else {
            let t = match r.kind {
                ReportKind::Accepted => MessageType::Accepted,
                ReportKind::Fill => MessageType::Fill,
                ReportKind::Cancelled => MessageType::Cancelled,
                ReportKind::Replaced => MessageType::Replaced,
                _ => MessageType::Expired,
            };
            let mut e = ExecReport::empty(t);
            e.set_side(wire_side(r.side));
            e.set_liquidity(wire_liquidity(r.liquidity));
            e.reason = U16::new(r.reason.code());
            e.global_seq = U64::new(self.global_seq);
            if mine {
                e.client_seq = U64::new(self.client_seq);
                e.client_ts_ns = U64::new(self.client_ts_ns);
            }
            e.order_id = U64::new(r.order_id);
            e.instrument = U32::new(r.instrument);
            e.price = I64::new(r.price);
            e.quantity = U64::new(r.quantity);
            e.leaves = U64::new(r.leaves);
            e.match_id = U64::new(r.match_id);
            e.sequencer_ns = U64::new(self.sequencer_ns);
            zerocopy::transmute!(e)
        };
        self.out.send(session_ref(session), &bytes);
    }
}

/// The engine's side for a wire side. The engine knows no wire codes; the
/// wire enumerations own them, and these maps only pair the variants.
#[inline]
fn engine_side(s: wire::Side) -> Side {
    match s {
        wire::Side::Buy => Side::Buy,
        wire::Side::Sell => Side::Sell,
    }
}

/// The wire side for an engine side.
#[inline]
fn wire_side(s: Side) -> wire::Side {
    match s {
        Side::Buy => wire::Side::Buy,
        Side::Sell => wire::Side::Sell,
    }
}

/// The engine's order kind for a wire order kind.
#[inline]
fn engine_kind(k: wire::OrderKind) -> OrderKind {
    match k {
        wire::OrderKind::Limit => OrderKind::Limit,
        wire::OrderKind::Market => OrderKind::Market,
    }
}

/// The engine's time in force for a wire time in force.
#[inline]
fn engine_tif(t: wire::TimeInForce) -> TimeInForce {
    match t {
        wire::TimeInForce::Gtc => TimeInForce::Gtc,
        wire::TimeInForce::Ioc => TimeInForce::Ioc,
        wire::TimeInForce::Fok => TimeInForce::Fok,
    }
}

/// The engine's self-trade prevention mode for a wire one.
#[inline]
fn engine_stp(m: wire::SelfTrade) -> SelfTradePrevention {
    match m {
        wire::SelfTrade::None => SelfTradePrevention::None,
        wire::SelfTrade::CancelResting => SelfTradePrevention::CancelResting,
        wire::SelfTrade::CancelIncoming => SelfTradePrevention::CancelIncoming,
    }
}

/// The wire liquidity for an engine liquidity.
#[inline]
fn wire_liquidity(l: Liquidity) -> wire::Liquidity {
    match l {
        Liquidity::None => wire::Liquidity::None,
        Liquidity::Maker => wire::Liquidity::Maker,
        Liquidity::Taker => wire::Liquidity::Taker,
    }
}

/// The engine command for an order message; `Err` when a coded field holds
/// an undefined value (or for an Echo, which is no command).
fn decode(msg: Inbound<'_>, session: u32) -> Result<Command, UnknownCode> {
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

impl Application for MatchApp {
    #[inline]
    fn on_message(&mut self, m: &Sequenced<'_>, out: &mut ReplySink<'_>) {
        let Ok(inbound) = parse_inbound(m.msg) else {
            // The gateway validated the block; nothing else can arrive.
            return;
        };
        if let Inbound::Echo(_) = inbound {
            self.echo.on_message(m, out);
            return;
        }
        let session = engine_session(m.origin);
        match decode(inbound, session) {
            Ok(cmd) => {
                let mut sink = WireSink {
                    out,
                    origin: session,
                    msg_type: inbound.msg_type().code(),
                    global_seq: m.global_seq,
                    client_seq: m.client_seq,
                    client_ts_ns: inbound.client_ts_ns(),
                    gateway_rx_ns: m.gateway_rx_ns,
                    sequencer_ns: m.sequencer_ns,
                };
                self.engine.apply(&cmd, &mut sink);
            }
            Err(_) => {
                let mut j = Reject::for_block(
                    m.msg,
                    RejectReason::InvalidField as u16,
                    m.client_seq,
                    m.gateway_rx_ns,
                );
                j.global_seq = U64::new(m.global_seq);
                j.order_id = U64::new(inbound.order_id_or_tag());
                j.sequencer_ns = U64::new(m.sequencer_ns);
                let bytes: [u8; MESSAGE_LEN] = zerocopy::transmute!(j);
                out.send(m.origin, &bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip() {
        for r in [
            SessionRef::new(0, 0),
            SessionRef::new(3, 77),
            SessionRef::new(255, (1 << 24) - 1),
        ] {
            assert_eq!(session_ref(engine_session(r)), r);
        }
    }

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
        }
        for &t in wire::TimeInForce::ALL {
            assert_eq!(engine_tif(t) as u8, t.code());
        }
        for &m in wire::SelfTrade::ALL {
            assert_eq!(engine_stp(m) as u8, m.code());
        }
        for l in [Liquidity::None, Liquidity::Maker, Liquidity::Taker] {
            assert_eq!(wire_liquidity(l).code(), l as u8);
        }
    }
}
