//! The matching engine as the sequencer's application: decodes the wire
//! messages into engine commands and encodes the engine's reports as wire
//! execution reports, routed to the sessions the engine names.
//!
//! Engine sessions are `u32`s: the gateway id in the top 8 bits, the
//! gateway's session index in the low 24, so a report can be routed back
//! without a lookup.

use crate::engine_codec::{decode, wire_liquidity, wire_side};
use peregrine_engine::{Engine, EngineConfig, Report, ReportKind, ReportSink};
use peregrine_sequencer::{Application, EchoApp, ReplySink, Sequenced, SessionRef};
use peregrine_wire::message::{
    parse_inbound, ExecReport, Inbound, MessageType, Reject, RejectReason, ENGINE_REASON_BASE, MESSAGE_LEN,
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

    /// The application's state as bytes: the engine snapshot (the echo
    /// part is stateless). See [`Engine::snapshot`].
    pub fn snapshot(&self) -> Vec<u8> {
        self.engine.snapshot()
    }

    /// The application holding the state `bytes` (from
    /// [`MatchApp::snapshot`] under the same engine config) describe.
    pub fn restore(cfg: &EngineConfig, bytes: &[u8]) -> Result<Self, peregrine_engine::SnapshotError> {
        Ok(MatchApp {
            engine: Engine::restore(cfg, bytes)?,
            echo: EchoApp::new(),
        })
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
        let WireSink {
            msg_type,
            global_seq,
            client_seq,
            client_ts_ns,
            gateway_rx_ns,
            sequencer_ns,
            ..
        } = *self;
        // Built where it goes (see `ReplySink::send_with`).
        if r.kind == ReportKind::Rejected {
            self.out.send_with(session_ref(session), |bytes| {
                let j: &mut Reject = zerocopy::transmute_mut!(bytes);
                *j = Reject::for_block(
                    &[],
                    ENGINE_REASON_BASE + r.reason.code(),
                    client_seq,
                    gateway_rx_ns,
                );
                j.rejected_type = msg_type;
                j.global_seq = U64::new(global_seq);
                j.client_ts_ns = U64::new(client_ts_ns);
                j.order_id = U64::new(r.order_id);
                j.sequencer_ns = U64::new(sequencer_ns);
            });
            return;
        }
        let t = match r.kind {
            ReportKind::Accepted => MessageType::Accepted,
            ReportKind::Fill => MessageType::Fill,
            ReportKind::Cancelled => MessageType::Cancelled,
            ReportKind::Replaced => MessageType::Replaced,
            _ => MessageType::Expired,
        };
        self.out.send_with(session_ref(session), |bytes| {
            let e: &mut ExecReport = zerocopy::transmute_mut!(bytes);
            *e = ExecReport::empty(t);
            e.set_side(wire_side(r.side));
            e.set_liquidity(wire_liquidity(r.liquidity));
            e.reason = U16::new(r.reason.code());
            e.global_seq = U64::new(global_seq);
            if mine {
                e.client_seq = U64::new(client_seq);
                e.client_ts_ns = U64::new(client_ts_ns);
            }
            e.order_id = U64::new(r.order_id);
            e.instrument = U32::new(r.instrument);
            e.price = I64::new(r.price);
            e.quantity = U64::new(r.quantity);
            e.leaves = U64::new(r.leaves);
            e.match_id = U64::new(r.match_id);
            e.sequencer_ns = U64::new(sequencer_ns);
        });
    }
}

impl Application for MatchApp {
    #[inline]
    fn prefetch_distance(&self) -> usize {
        Engine::PREFETCH_DISTANCE
    }

    /// Starts loading the engine's order-index line for an order message
    /// (the line its duplicate check, cancel or replace looks up).
    #[inline]
    fn prefetch(&self, msg: &[u8; MESSAGE_LEN], origin: SessionRef) {
        match parse_inbound(msg) {
            Ok(Inbound::Echo(_)) | Err(_) => {}
            Ok(order) => self
                .engine
                .prefetch_order(engine_session(origin), order.order_id_or_tag()),
        }
    }

    // Out of line: a call costs nothing beside an order's matching, and
    // kept out of [`ServerApp`](crate::serve::ServerApp)'s dispatch it
    // leaves that dispatch without this function's large stack frame.
    #[inline(never)]
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
}
