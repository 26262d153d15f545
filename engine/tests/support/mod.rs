//! Helpers shared by the integration tests: a small config, command builders,
//! and a runner that collects reports.

#![allow(dead_code)]

pub mod reference_book;

use peregrine_engine::*;

/// Instrument 1: tick 1, lot 1, band 90..=110, max quantity 50.
pub const FINE: u32 = 1;
/// Instrument 2: tick 5, lot 10, band 50..=150, max quantity 200.
pub const COARSE: u32 = 2;
/// An instrument id that is not configured.
pub const UNKNOWN: u32 = 99;

/// Two small instruments and a pool of `max_orders`.
pub fn small_config(max_orders: usize) -> EngineConfig {
    EngineConfig {
        instruments: vec![
            InstrumentConfig {
                symbol: "FINE".into(),
                id: FINE,
                tick_size: 1,
                lot_size: 1,
                price_min: 90,
                price_max: 110,
                max_quantity: 50,
            },
            InstrumentConfig {
                symbol: "COARSE".into(),
                id: COARSE,
                tick_size: 5,
                lot_size: 10,
                price_min: 50,
                price_max: 150,
                max_quantity: 200,
            },
        ],
        max_orders,
    }
}

pub fn engine() -> Engine {
    Engine::new(&small_config(64)).expect("valid config")
}

/// A GTC limit order on instrument [`FINE`] without STP or post-only.
pub fn limit(session: u32, order_id: u64, side: Side, price: i64, quantity: u64) -> NewOrder {
    NewOrder {
        session,
        order_id,
        instrument: FINE,
        side,
        kind: OrderKind::Limit,
        tif: TimeInForce::Gtc,
        post_only: false,
        stp: SelfTradePrevention::None,
        price,
        quantity,
    }
}

/// A market order on instrument [`FINE`].
pub fn market(session: u32, order_id: u64, side: Side, quantity: u64) -> NewOrder {
    NewOrder {
        kind: OrderKind::Market,
        tif: TimeInForce::Ioc,
        price: 0,
        ..limit(session, order_id, side, 0, quantity)
    }
}

pub fn cancel(session: u32, order_id: u64) -> Cancel {
    Cancel {
        session,
        order_id,
        instrument: FINE,
    }
}

pub fn replace(session: u32, order_id: u64, new_price: i64, new_quantity: u64) -> Replace {
    Replace {
        session,
        order_id,
        instrument: FINE,
        new_price,
        new_quantity,
    }
}

/// Applies one command, checks invariants, and returns its reports.
pub fn run(engine: &mut Engine, command: impl Into<Command>) -> Vec<(u32, Report)> {
    let mut reports = Vec::new();
    engine.apply(&command.into(), &mut reports);
    engine.check_invariants().expect("invariants hold");
    reports
}

/// The kinds of a report sequence, for compact assertions.
pub fn kinds(reports: &[(u32, Report)]) -> Vec<ReportKind> {
    reports.iter().map(|(_, r)| r.kind).collect()
}

/// The single report of a command that must produce exactly one.
pub fn only(reports: &[(u32, Report)]) -> Report {
    assert_eq!(reports.len(), 1, "expected one report, got {reports:#?}");
    reports[0].1
}
