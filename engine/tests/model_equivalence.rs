//! Property tests: random order flow through the engine and the reference
//! book must give identical report sequences, identical books and identical
//! state hashes, with the engine's invariants and quantity conservation
//! checked after every event.
//!
//! `cargo test` runs 10,000 random flows (override with `PROPTEST_CASES`).
#![forbid(unsafe_code)]

mod support;

use peregrine_engine::*;
use proptest::prelude::*;
use support::reference_book::ReferenceEngine;
use support::{small_config, COARSE, FINE, UNKNOWN};

const FLOWS: u32 = 10_000;
const MAX_FLOW_LEN: usize = 64;
const SESSIONS: u32 = 3;
const ORDER_IDS: u64 = 16;

/// Number of random flows: `PROPTEST_CASES` if set, else [`FLOWS`].
fn flows() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(FLOWS)
}

fn instrument() -> impl Strategy<Value = u32> {
    prop_oneof![16 => Just(FINE), 5 => Just(COARSE), 1 => Just(UNKNOWN)]
}

/// (tick, lot, band low, band high) of the test instruments.
fn rules(instrument: u32) -> (i64, u64, i64, i64) {
    match instrument {
        COARSE => (5, 10, 50, 150),
        _ => (1, 1, 90, 110),
    }
}

/// A price near the middle of the band, shifted by `skew` ticks (buyers bid
/// lower and sellers offer higher, so a book builds up and crosses only
/// sometimes); occasionally outside the band or off the tick grid.
fn price(instrument: u32, skew: i64) -> impl Strategy<Value = i64> {
    let (tick, _, low, high) = rules(instrument);
    let middle = (low + high) / 2 / tick * tick;
    (-6i64..=6, 0..40u8).prop_map(move |(ticks, oddity)| {
        let price = middle + (ticks + skew) * tick;
        match oddity {
            0 if tick > 1 => price + 1,
            1 => high + tick,
            2 => low - tick,
            _ => price,
        }
    })
}

/// The price skew for an order side.
fn skew(side: Side) -> i64 {
    match side {
        Side::Buy => -3,
        Side::Sell => 3,
    }
}

/// Mostly small lot multiples; sometimes zero, off-lot or too large.
fn quantity(instrument: u32) -> impl Strategy<Value = u64> {
    let (_, lot, _, _) = rules(instrument);
    (1u64..=6, 0..40u8).prop_map(move |(lots, oddity)| match oddity {
        0 => 0,
        1 if lot > 1 => lots * lot + 1,
        2 => 10_000 * lot,
        _ => lots * lot,
    })
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn new_order() -> impl Strategy<Value = Command> {
    (instrument(), side()).prop_flat_map(|(instrument, side)| {
        (
            (0..SESSIONS, 0..ORDER_IDS),
            prop_oneof![8 => Just(OrderKind::Limit), 1 => Just(OrderKind::Market)],
            prop_oneof![
                6 => Just(TimeInForce::Gtc),
                1 => Just(TimeInForce::Ioc),
                1 => Just(TimeInForce::Fok)
            ],
            prop::bool::weighted(0.1),
            prop_oneof![
                4 => Just(SelfTradePrevention::None),
                1 => Just(SelfTradePrevention::CancelResting),
                1 => Just(SelfTradePrevention::CancelIncoming)
            ],
            price(instrument, skew(side)),
            quantity(instrument),
        )
            .prop_map(
                move |((session, order_id), kind, tif, post_only, stp, price, quantity)| {
                    Command::New(NewOrder {
                        session,
                        order_id,
                        instrument,
                        side,
                        kind,
                        tif,
                        post_only,
                        stp,
                        price,
                        quantity,
                    })
                },
            )
    })
}

fn cancel() -> impl Strategy<Value = Command> {
    (0..SESSIONS, 0..ORDER_IDS, instrument()).prop_map(|(session, order_id, instrument)| {
        Command::Cancel(Cancel {
            session,
            order_id,
            instrument,
        })
    })
}

fn replace() -> impl Strategy<Value = Command> {
    instrument().prop_flat_map(|instrument| {
        (
            0..SESSIONS,
            0..ORDER_IDS,
            price(instrument, 0),
            quantity(instrument),
        )
            .prop_map(move |(session, order_id, new_price, new_quantity)| {
                Command::Replace(Replace {
                    session,
                    order_id,
                    instrument,
                    new_price,
                    new_quantity,
                })
            })
    })
}

/// One generated step. Cancels and replaces of arbitrary ids mostly miss, so
/// half of them instead pick a live order when the step runs (`pick` indexes
/// the reference book's live orders), keeping the book busy while the flow
/// stays a plain, shrinkable value.
#[derive(Debug, Clone)]
enum Step {
    Direct(Command),
    CancelLive {
        pick: usize,
    },
    ReplaceLive {
        pick: usize,
        /// Price change in ticks of the order's instrument.
        ticks: i64,
        /// New open quantity in lots (0 asks for the filled quantity: rejected).
        lots: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        14 => new_order().prop_map(Step::Direct),
        1 => cancel().prop_map(Step::Direct),
        1 => replace().prop_map(Step::Direct),
        2 => any::<usize>().prop_map(|pick| Step::CancelLive { pick }),
        3 => (any::<usize>(), -4i64..=4, 0u64..=6)
            .prop_map(|(pick, ticks, lots)| Step::ReplaceLive { pick, ticks, lots }),
    ]
}

fn flow() -> impl Strategy<Value = (usize, Vec<Step>)> {
    (2usize..=32, prop::collection::vec(step(), 1..=MAX_FLOW_LEN))
}

/// The command a step stands for, given the reference book's live orders.
fn resolve(step: &Step, reference: &ReferenceEngine) -> Command {
    let live = &reference.orders;
    let fallback = Command::Cancel(Cancel {
        session: 0,
        order_id: 0,
        instrument: FINE,
    });
    match *step {
        Step::Direct(command) => command,
        Step::CancelLive { pick } => match live.get(pick % live.len().max(1)) {
            Some(order) => Command::Cancel(Cancel {
                session: order.session,
                order_id: order.order_id,
                instrument: order.instrument,
            }),
            None => fallback,
        },
        Step::ReplaceLive { pick, ticks, lots } => match live.get(pick % live.len().max(1)) {
            Some(order) => {
                let (tick, lot, _, _) = rules(order.instrument);
                Command::Replace(Replace {
                    session: order.session,
                    order_id: order.order_id,
                    instrument: order.instrument,
                    new_price: order.price + ticks * tick,
                    new_quantity: order.quantity - order.leaves + lots * lot,
                })
            }
            None => fallback,
        },
    }
}

fn total_leaves(engine: &Engine) -> u64 {
    engine
        .instruments()
        .flat_map(|instrument| {
            [Side::Buy, Side::Sell]
                .into_iter()
                .flat_map(move |side| engine.resting_orders(instrument, side))
        })
        .map(|order| order.leaves)
        .sum()
}

/// Quantity conservation and fill pairing for one event.
fn check_event(
    engine_before_leaves: u64,
    replaced_old_leaves: Option<u64>,
    first_match_id: u64,
    reports: &[(u32, Report)],
    engine: &Engine,
) -> Result<(), TestCaseError> {
    let mut added = 0u64;
    let mut removed = 0u64;
    let mut next_match_id = first_match_id;
    let mut i = 0;
    while i < reports.len() {
        let report = reports[i].1;
        match report.kind {
            ReportKind::Accepted => added += report.quantity,
            ReportKind::Replaced => {
                let old = replaced_old_leaves.expect("Replaced only answers a replace");
                added += report.leaves;
                removed += old;
            }
            ReportKind::Fill => {
                prop_assert_eq!(report.liquidity, Liquidity::Taker);
                let maker = reports.get(i + 1).map(|(_, r)| *r);
                let maker = maker.ok_or_else(|| TestCaseError::fail("taker fill without maker"))?;
                prop_assert_eq!(maker.kind, ReportKind::Fill);
                prop_assert_eq!(maker.liquidity, Liquidity::Maker);
                prop_assert_eq!(maker.match_id, report.match_id);
                prop_assert_eq!(maker.match_id, next_match_id);
                prop_assert_eq!(maker.quantity, report.quantity);
                prop_assert_eq!(maker.price, report.price);
                prop_assert_ne!(maker.side, report.side);
                prop_assert!(report.quantity > 0);
                next_match_id += 1;
                removed += 2 * report.quantity;
                i += 1;
            }
            ReportKind::Cancelled | ReportKind::Expired => removed += report.quantity,
            ReportKind::Rejected => {}
        }
        i += 1;
    }
    prop_assert_eq!(engine.next_match_id(), next_match_id);
    prop_assert_eq!(
        engine_before_leaves + added,
        total_leaves(engine) + removed,
        "quantity not conserved: {:#?}",
        reports
    );
    Ok(())
}

fn run_flow(max_orders: usize, steps: &[Step]) -> Result<(), TestCaseError> {
    let config = small_config(max_orders);
    let mut engine = Engine::new(&config).expect("valid config");
    let mut reference = ReferenceEngine::new(&config);
    let mut all_reports = Vec::new();
    let mut commands = Vec::new();
    for (step, generated) in steps.iter().enumerate() {
        let command = &resolve(generated, &reference);
        commands.push(*command);
        let before_leaves = total_leaves(&engine);
        let first_match_id = engine.next_match_id();
        let replaced_old_leaves = match command {
            Command::Replace(r) => engine.order(r.session, r.order_id).map(|o| o.leaves),
            _ => None,
        };
        let mut got = Vec::new();
        let mut expected = Vec::new();
        engine.apply(command, &mut got);
        reference.apply(command, &mut expected);
        prop_assert_eq!(&got, &expected, "step {}: {:?}", step, command);
        prop_assert!(!got.is_empty());
        if let Err(violation) = engine.check_invariants() {
            return Err(TestCaseError::fail(format!("step {step}: {violation}")));
        }
        check_event(before_leaves, replaced_old_leaves, first_match_id, &got, &engine)?;
        for instrument in [FINE, COARSE] {
            for side in [Side::Buy, Side::Sell] {
                let books: Vec<OrderView> = engine.resting_orders(instrument, side).collect();
                prop_assert_eq!(books, reference.views(instrument, side), "step {}", step);
            }
        }
        prop_assert_eq!(engine.state_hash(), reference.state_hash(), "step {}", step);
        all_reports.extend(got);
    }
    // Determinism: a replay of the same flow gives the same reports and hash.
    let mut replay = Engine::new(&config).expect("valid config");
    let mut replay_reports = Vec::new();
    for command in &commands {
        replay.apply(command, &mut replay_reports);
    }
    prop_assert_eq!(replay_reports, all_reports);
    prop_assert_eq!(replay.state_hash(), engine.state_hash());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: flows(),
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_reference_book((max_orders, steps) in flow()) {
        run_flow(max_orders, &steps)?;
    }
}
