//! Property tests for engine snapshots: snapshot at any point, restore, and
//! continue must give exactly the reports and the final state hash of the
//! engine that never stopped; corrupt snapshots are typed errors.
#![forbid(unsafe_code)]

mod support;

use peregrine_engine::flow::{FlowConfig, FlowGenerator};
use peregrine_engine::*;
use proptest::prelude::*;
use support::{small_config, COARSE, FINE, UNKNOWN};

/// One random command over a small id space, so that duplicates, unknown
/// orders, self-trades, post-only crosses, pool-full and fills all happen.
fn command() -> impl Strategy<Value = Command> {
    let instrument = prop_oneof![8 => Just(FINE), 4 => Just(COARSE), 1 => Just(UNKNOWN)];
    let side = prop_oneof![Just(Side::Buy), Just(Side::Sell)];
    let stp = prop_oneof![
        Just(SelfTradePrevention::None),
        Just(SelfTradePrevention::CancelResting),
        Just(SelfTradePrevention::CancelIncoming)
    ];
    let tif =
        prop_oneof![6 => Just(TimeInForce::Gtc), 1 => Just(TimeInForce::Ioc), 1 => Just(TimeInForce::Fok)];
    (
        0u8..10,
        0u32..3,
        0u64..12,
        instrument,
        side,
        stp,
        tif,
        any::<bool>(),
        -6i64..=6,
        1u64..6,
    )
        .prop_map(
            |(kind, session, order_id, instrument, side, stp, tif, post_only, ticks, lots)| {
                let (tick, lot, middle) = if instrument == COARSE {
                    (5, 10, 100)
                } else {
                    (1, 1, 100)
                };
                let price = middle + ticks * tick;
                let quantity = lots * lot;
                match kind {
                    0..=5 => Command::New(NewOrder {
                        session,
                        order_id,
                        instrument,
                        side,
                        kind: if kind == 5 {
                            OrderKind::Market
                        } else {
                            OrderKind::Limit
                        },
                        tif,
                        post_only: post_only && kind == 0,
                        stp,
                        price,
                        quantity,
                    }),
                    6 | 7 => Command::Cancel(Cancel {
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
            },
        )
}

/// Runs `commands` straight through, and again with a snapshot + restore
/// after `cut` of them; both must agree on every report and the final hash.
fn check_cut(config: &EngineConfig, commands: &[Command], cut: usize) -> Result<(), TestCaseError> {
    let cut = cut.min(commands.len());
    let mut straight = Engine::new(config).unwrap();
    let mut expected: Vec<(u32, Report)> = Vec::new();
    for c in commands {
        straight.apply(c, &mut expected);
    }

    let mut first = Engine::new(config).unwrap();
    let mut got: Vec<(u32, Report)> = Vec::new();
    for c in &commands[..cut] {
        first.apply(c, &mut got);
    }
    let bytes = first.snapshot();
    let mut restored = Engine::restore(config, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(restored.state_hash(), first.state_hash());
    prop_assert_eq!(
        restored.snapshot(),
        bytes,
        "a restored engine snapshots to the same bytes"
    );
    prop_assert_eq!(restored.resting_count(), first.resting_count());
    for c in &commands[cut..] {
        restored.apply(c, &mut got);
    }
    prop_assert_eq!(&got, &expected);
    prop_assert_eq!(restored.state_hash(), straight.state_hash());
    prop_assert_eq!(restored.next_match_id(), straight.next_match_id());
    restored
        .check_invariants()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn restore_then_continue_equals_never_stopping(
        max_orders in prop_oneof![Just(4usize), Just(64)],
        commands in prop::collection::vec(command(), 0..80),
        cut in 0usize..80,
    ) {
        check_cut(&small_config(max_orders), &commands, cut)?;
    }

}

proptest! {
    // Each case builds three engines over the sample config's wide bands.
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn generated_flows_survive_a_snapshot(seed in any::<u64>(), cut in 0usize..1_500) {
        let mut config = EngineConfig::sample();
        config.max_orders = 512;
        let flow = FlowConfig { seed, sessions: 8, resting_target: 200, ..FlowConfig::standard() };
        let mut generator = FlowGenerator::new(&config, &flow).unwrap();
        let commands: Vec<Command> = (0..1_500u32).map(|i| generator.next_for(i % 8)).collect();
        check_cut(&config, &commands, cut)?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn any_damage_is_an_error_or_a_consistent_engine(
        commands in prop::collection::vec(command(), 0..40),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        truncate in any::<prop::sample::Index>(),
    ) {
        let config = small_config(64);
        let mut engine = Engine::new(&config).unwrap();
        let mut sink: Vec<(u32, Report)> = Vec::new();
        for c in &commands {
            engine.apply(c, &mut sink);
        }
        let bytes = engine.snapshot();
        let mut damaged = bytes.clone();
        for (at, mask) in &flips {
            let i = at.index(damaged.len());
            damaged[i] ^= mask;
        }
        if let Ok(e) = Engine::restore(&config, &damaged) {
            e.check_invariants().map_err(|v| TestCaseError::fail(v.to_string()))?;
        }
        let cut = truncate.index(bytes.len());
        let truncated = Engine::restore(&config, &bytes[..cut]);
        prop_assert!(
            matches!(truncated, Err(SnapshotError::Truncated { .. }) | Err(SnapshotError::BadMagic)),
            "{:?}", truncated.err()
        );
    }
}

#[test]
fn wrong_magic_version_config_and_trailing_bytes_are_typed_errors() {
    let config = small_config(64);
    let mut engine = Engine::new(&config).unwrap();
    let mut sink: Vec<(u32, Report)> = Vec::new();
    engine.apply(&Command::New(support::limit(1, 1, Side::Buy, 100, 5)), &mut sink);
    let bytes = engine.snapshot();
    assert!(Engine::restore(&config, &bytes).is_ok());

    let mut bad = bytes.clone();
    bad[0] ^= 1;
    assert_eq!(
        Engine::restore(&config, &bad).unwrap_err(),
        SnapshotError::BadMagic
    );
    let mut bad = bytes.clone();
    bad[8] = 9;
    assert_eq!(
        Engine::restore(&config, &bad).unwrap_err(),
        SnapshotError::UnsupportedVersion(9)
    );
    let mut bad = bytes.clone();
    bad.push(0);
    assert_eq!(
        Engine::restore(&config, &bad).unwrap_err(),
        SnapshotError::TrailingBytes(1)
    );
    assert!(matches!(
        Engine::restore(&small_config(65), &bytes).unwrap_err(),
        SnapshotError::ConfigMismatch(_)
    ));
    assert!(matches!(
        Engine::restore(&EngineConfig::sample(), &bytes).unwrap_err(),
        SnapshotError::ConfigMismatch(_)
    ));
    assert!(matches!(
        Engine::restore(&small_config(0), &bytes).unwrap_err(),
        SnapshotError::Config(_)
    ));
    assert_eq!(
        Engine::restore(&config, &[]).unwrap_err(),
        SnapshotError::Truncated { at: 0, needed: 8 }
    );
}

#[test]
fn a_crossed_book_in_a_snapshot_is_refused() {
    let config = small_config(64);
    let mut engine = Engine::new(&config).unwrap();
    let mut sink: Vec<(u32, Report)> = Vec::new();
    engine.apply(&Command::New(support::limit(1, 1, Side::Buy, 100, 5)), &mut sink);
    engine.apply(&Command::New(support::limit(2, 1, Side::Sell, 101, 5)), &mut sink);
    let mut bytes = engine.snapshot();
    // The ask is the last order: its price field starts 8 + 8 + 8 + 1 + 1
    // bytes before the end, and later sides of COARSE are empty (2 x 8 bytes).
    let ask_price_at = bytes.len() - 16 - (8 + 8 + 8 + 1 + 1);
    bytes[ask_price_at..ask_price_at + 8].copy_from_slice(&99i64.to_le_bytes());
    assert!(matches!(
        Engine::restore(&config, &bytes).unwrap_err(),
        SnapshotError::Inconsistent(_)
    ));
}
