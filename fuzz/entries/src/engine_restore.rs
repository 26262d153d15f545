//! `Engine::restore` on arbitrary bytes.
//!
//! The first byte picks a mode. Mode 0 hands the rest straight to
//! `Engine::restore`. Any other mode decodes the rest as a command script
//! (so the engine holds a real book), snapshots it, then damages the
//! snapshot with the script's tail (xor masks at chosen offsets, then a
//! truncation), so the fuzzer reaches the deep fields of valid-looking
//! snapshots. Either way: no panic; a restored engine passes its
//! invariants, re-snapshots to exactly the bytes it came from, and keeps
//! working; the undamaged snapshot always restores to the same state hash.

use crate::Bytes;
use peregrine_engine::{
    Cancel, Command, Engine, EngineConfig, InstrumentConfig, NewOrder, OrderKind, Replace, Report,
    SelfTradePrevention, Side, TimeInForce,
};

/// Two small instruments, a small pool: restores are cheap and fill up.
pub(crate) fn config() -> EngineConfig {
    let instrument = |symbol: &str, id, tick_size, lot_size, price_min, price_max| InstrumentConfig {
        symbol: symbol.to_string(),
        id,
        tick_size,
        lot_size,
        price_min,
        price_max,
        max_quantity: 100 * lot_size,
    };
    EngineConfig {
        instruments: vec![
            instrument("A", 1, 1, 1, 90, 110),
            instrument("B", 2, 5, 10, 50, 150),
        ],
        max_orders: 32,
    }
}

/// One command from the script (5 bytes).
pub(crate) fn command(b: &mut Bytes<'_>) -> Command {
    let op = b.u8();
    let session = u32::from(b.u8() % 3);
    let order_id = u64::from(b.u8() % 12);
    let instrument = 1 + u32::from(op >> 6 & 1);
    let (tick, lot) = if instrument == 1 { (1, 1) } else { (5, 10) };
    let arg = b.u8();
    let price = 100 + (i64::from(arg % 13) - 6) * tick;
    let quantity = (1 + u64::from(b.u8() % 8)) * lot;
    let side = if op & 1 == 0 { Side::Buy } else { Side::Sell };
    match op >> 1 & 7 {
        0..=3 => Command::New(NewOrder {
            session,
            order_id,
            instrument,
            side,
            kind: if op >> 4 & 3 == 3 {
                OrderKind::Market
            } else {
                OrderKind::Limit
            },
            tif: match arg >> 5 {
                0 => TimeInForce::Ioc,
                1 => TimeInForce::Fok,
                _ => TimeInForce::Gtc,
            },
            post_only: arg >> 4 & 1 == 1 && op >> 4 & 3 == 0,
            stp: match op >> 7 {
                0 => SelfTradePrevention::None,
                _ => SelfTradePrevention::CancelResting,
            },
            price,
            quantity,
        }),
        4 | 5 => Command::Cancel(Cancel {
            session,
            order_id,
            instrument,
        }),
        _ => Command::Replace(Replace {
            session,
            order_id,
            instrument,
            new_price: price,
            new_quantity: quantity,
        }),
    }
}

/// Checks a restore of `bytes`: error, or a consistent engine that
/// snapshots back to `bytes` and still trades.
fn restore_checked(config: &EngineConfig, bytes: &[u8]) {
    let Ok(mut engine) = Engine::restore(config, bytes) else {
        return;
    };
    if let Err(v) = engine.check_invariants() {
        panic!("restored engine: {v}");
    }
    assert_eq!(
        engine.snapshot(),
        bytes,
        "restore accepts only the canonical encoding"
    );
    let mut sink: Vec<(u32, Report)> = Vec::new();
    for side in [Side::Buy, Side::Sell] {
        engine.apply(
            &Command::New(NewOrder {
                session: 7,
                order_id: 1,
                instrument: 1,
                side,
                kind: OrderKind::Market,
                tif: TimeInForce::Ioc,
                post_only: false,
                stp: SelfTradePrevention::None,
                price: 0,
                quantity: 1000,
            }),
            &mut sink,
        );
    }
    if let Err(v) = engine.check_invariants() {
        panic!("restored engine after trading: {v}");
    }
}

pub(crate) fn run(data: &[u8]) {
    let config = config();
    let mut b = Bytes::new(data);
    if b.u8() == 0 {
        restore_checked(&config, b.take(usize::MAX));
        return;
    }
    let commands = usize::from(b.u8());
    let mut engine = Engine::new(&config).expect("valid config");
    let mut sink: Vec<(u32, Report)> = Vec::new();
    for _ in 0..commands {
        engine.apply(&command(&mut b), &mut sink);
    }
    let snapshot = engine.snapshot();
    let restored = Engine::restore(&config, &snapshot).expect("an engine's own snapshot restores");
    assert_eq!(restored.state_hash(), engine.state_hash());
    let mut damaged = snapshot;
    let flips = usize::from(b.u8() % 8);
    for _ in 0..flips {
        let at = usize::from(b.u16()) % damaged.len();
        damaged[at] ^= b.u8();
    }
    let keep = usize::from(b.u16());
    if keep != 0 && keep < damaged.len() {
        damaged.truncate(keep);
    }
    restore_checked(&config, &damaged);
}
