// Over 600 lines: one example test per order type and reject reason; splitting them would scatter the catalogue.
//! Example-based tests: every order type, every reject reason, the report
//! contents and their routing to sessions.
#![forbid(unsafe_code)]

mod support;

use peregrine_engine::*;
use support::*;

use ReportKind::*;
use Side::{Buy, Sell};

#[test]
fn gtc_limit_rests_and_is_visible() {
    let mut e = engine();
    let r = only(&run(&mut e, limit(1, 10, Buy, 100, 5)));
    assert_eq!(
        (r.kind, r.order_id, r.price, r.quantity, r.leaves),
        (Accepted, 10, 100, 5, 5)
    );
    assert_eq!(e.best_bid(FINE), Some(100));
    assert_eq!(e.best_ask(FINE), None);
    assert_eq!(e.depth_at(FINE, Buy, 100), 5);
    let view = e.order(1, 10).unwrap();
    assert_eq!((view.side, view.price, view.leaves), (Buy, 100, 5));
}

#[test]
fn fill_goes_to_taker_and_maker_at_resting_price() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 5));
    let reports = run(&mut e, limit(2, 7, Buy, 103, 5));
    assert_eq!(kinds(&reports), [Accepted, Fill, Fill]);
    let (taker_session, taker) = reports[1];
    let (maker_session, maker) = reports[2];
    assert_eq!((taker_session, maker_session), (2, 1));
    assert_eq!(
        (taker.order_id, taker.liquidity, taker.price),
        (7, Liquidity::Taker, 100)
    );
    assert_eq!(
        (maker.order_id, maker.liquidity, maker.price),
        (1, Liquidity::Maker, 100)
    );
    assert_eq!(taker.match_id, 1);
    assert_eq!(maker.match_id, 1);
    assert_eq!((taker.leaves, maker.leaves), (0, 0));
    assert_eq!(e.resting_count(), 0);
    assert_eq!(e.next_match_id(), 2);
}

#[test]
fn partial_fill_rests_remainder_and_keeps_maker_remainder() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 3));
    let reports = run(&mut e, limit(2, 2, Buy, 100, 5));
    assert_eq!(kinds(&reports), [Accepted, Fill, Fill]);
    assert_eq!(reports[1].1.leaves, 2);
    assert_eq!(e.best_bid(FINE), Some(100));
    assert_eq!(e.order(2, 2).unwrap().leaves, 2);

    let reports = run(&mut e, limit(3, 3, Sell, 100, 1));
    assert_eq!(kinds(&reports), [Accepted, Fill, Fill]);
    assert_eq!(reports[2].1.leaves, 1, "maker keeps the rest");
    assert_eq!(e.order(2, 2).unwrap().leaves, 1);
}

#[test]
fn sweep_walks_levels_in_price_then_time_order_up_to_the_limit() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 102, 2));
    run(&mut e, limit(1, 2, Sell, 101, 2));
    run(&mut e, limit(3, 3, Sell, 101, 2));
    run(&mut e, limit(1, 4, Sell, 104, 2));
    let reports = run(&mut e, limit(2, 9, Buy, 102, 10));
    let fills: Vec<(u64, i64, u64)> = reports
        .iter()
        .filter(|(_, r)| r.kind == Fill && r.liquidity == Liquidity::Maker)
        .map(|(_, r)| (r.order_id, r.price, r.quantity))
        .collect();
    assert_eq!(fills, [(2, 101, 2), (3, 101, 2), (1, 102, 2)]);
    assert_eq!(e.order(2, 9).unwrap().leaves, 4);
    assert_eq!(e.best_bid(FINE), Some(102));
    assert_eq!(e.best_ask(FINE), Some(104));
}

#[test]
fn ioc_remainder_expires() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 2));
    let order = NewOrder {
        tif: TimeInForce::Ioc,
        ..limit(2, 2, Buy, 100, 5)
    };
    let reports = run(&mut e, order);
    assert_eq!(kinds(&reports), [Accepted, Fill, Fill, Expired]);
    let expired = reports[3].1;
    assert_eq!((expired.quantity, expired.leaves), (3, 0));
    assert_eq!(expired.reason, RejectReason::ImmediateOrCancel);
    assert_eq!(e.resting_count(), 0);
}

#[test]
fn ioc_that_does_not_cross_expires_whole() {
    let mut e = engine();
    let order = NewOrder {
        tif: TimeInForce::Ioc,
        ..limit(2, 2, Buy, 100, 5)
    };
    let reports = run(&mut e, order);
    assert_eq!(kinds(&reports), [Accepted, Expired]);
    assert_eq!(reports[1].1.quantity, 5);
}

#[test]
fn fok_fills_completely_across_levels() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 2));
    run(&mut e, limit(1, 2, Sell, 101, 3));
    let order = NewOrder {
        tif: TimeInForce::Fok,
        ..limit(2, 2, Buy, 101, 5)
    };
    let reports = run(&mut e, order);
    assert_eq!(kinds(&reports), [Accepted, Fill, Fill, Fill, Fill]);
    assert_eq!(e.resting_count(), 0);
}

#[test]
fn fok_that_cannot_fill_is_rejected_with_nothing_touched() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 2));
    run(&mut e, limit(1, 2, Sell, 102, 3));
    let before = e.state_hash();
    let order = NewOrder {
        tif: TimeInForce::Fok,
        ..limit(2, 2, Buy, 101, 5)
    };
    let r = only(&run(&mut e, order));
    assert_eq!((r.kind, r.reason), (Rejected, RejectReason::FokCannotFill));
    assert_eq!(e.state_hash(), before);
}

#[test]
fn fok_counts_own_orders_as_stp_would_treat_them() {
    let mut e = engine();
    run(&mut e, limit(2, 1, Sell, 100, 3)); // own order, first in line
    run(&mut e, limit(1, 2, Sell, 100, 3));
    let fok = |stp| NewOrder {
        tif: TimeInForce::Fok,
        stp,
        ..limit(2, 9, Buy, 100, 3)
    };
    // CancelIncoming stops at the own order: cannot fill.
    let r = only(&run(&mut e, fok(SelfTradePrevention::CancelIncoming)));
    assert_eq!(r.reason, RejectReason::FokCannotFill);
    // CancelResting cancels the own order and fills from session 1.
    let reports = run(&mut e, fok(SelfTradePrevention::CancelResting));
    assert_eq!(kinds(&reports), [Accepted, Cancelled, Fill, Fill]);
    assert_eq!(reports[1].1.reason, RejectReason::SelfTradePrevention);
    assert_eq!(e.resting_count(), 0);
}

#[test]
fn market_order_sweeps_and_never_rests() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Buy, 95, 2));
    run(&mut e, limit(1, 2, Buy, 92, 2));
    let reports = run(&mut e, market(2, 5, Sell, 6));
    assert_eq!(kinds(&reports), [Accepted, Fill, Fill, Fill, Fill, Expired]);
    assert_eq!(reports[1].1.price, 95);
    assert_eq!(reports[3].1.price, 92);
    assert_eq!(reports[5].1.quantity, 2);
    assert_eq!(e.resting_count(), 0);
    assert_eq!(e.order(2, 5), None);
}

#[test]
fn market_fok_is_fill_or_kill() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Buy, 95, 2));
    let order = NewOrder {
        tif: TimeInForce::Fok,
        ..market(2, 5, Sell, 3)
    };
    assert_eq!(only(&run(&mut e, order)).reason, RejectReason::FokCannotFill);
}

#[test]
fn market_into_empty_side_is_rejected_no_liquidity() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 2)); // same side as the market sell
    let r = only(&run(&mut e, market(2, 5, Sell, 1)));
    assert_eq!((r.kind, r.reason), (Rejected, RejectReason::NoLiquidity));
}

#[test]
fn post_only_rests_when_passive_and_is_rejected_when_it_would_cross() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 2));
    let post = |id, price| NewOrder {
        post_only: true,
        ..limit(2, id, Buy, price, 1)
    };
    assert_eq!(only(&run(&mut e, post(1, 99))).kind, Accepted);
    let r = only(&run(&mut e, post(2, 100)));
    assert_eq!((r.kind, r.reason), (Rejected, RejectReason::PostOnlyWouldCross));
    assert_eq!(e.depth_at(FINE, Sell, 100), 2);
}

#[test]
fn post_only_needs_gtc_limit() {
    let mut e = engine();
    for order in [
        NewOrder {
            post_only: true,
            tif: TimeInForce::Ioc,
            ..limit(1, 1, Buy, 100, 1)
        },
        NewOrder {
            post_only: true,
            tif: TimeInForce::Fok,
            ..limit(1, 1, Buy, 100, 1)
        },
        NewOrder {
            post_only: true,
            ..market(1, 1, Buy, 1)
        },
    ] {
        assert_eq!(
            only(&run(&mut e, order)).reason,
            RejectReason::PostOnlyNotGtcLimit
        );
    }
}

#[test]
fn stp_cancel_resting_cancels_own_orders_and_continues() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 2));
    run(&mut e, limit(2, 2, Sell, 100, 2));
    let order = NewOrder {
        stp: SelfTradePrevention::CancelResting,
        ..limit(1, 3, Buy, 100, 2)
    };
    let reports = run(&mut e, order);
    assert_eq!(kinds(&reports), [Accepted, Cancelled, Fill, Fill]);
    let (session, cancelled) = reports[1];
    assert_eq!((session, cancelled.order_id, cancelled.quantity), (1, 1, 2));
    assert_eq!(cancelled.reason, RejectReason::SelfTradePrevention);
    assert_eq!(reports[3].0, 2);
}

#[test]
fn stp_cancel_incoming_cancels_the_rest_of_the_incoming_order() {
    let mut e = engine();
    run(&mut e, limit(2, 1, Sell, 100, 1));
    run(&mut e, limit(1, 2, Sell, 100, 2));
    let order = NewOrder {
        stp: SelfTradePrevention::CancelIncoming,
        ..limit(1, 3, Buy, 100, 5)
    };
    let reports = run(&mut e, order);
    assert_eq!(kinds(&reports), [Accepted, Fill, Fill, Cancelled]);
    let (session, cancelled) = reports[3];
    assert_eq!((session, cancelled.order_id, cancelled.quantity), (1, 3, 4));
    assert_eq!(cancelled.reason, RejectReason::SelfTradePrevention);
    assert_eq!(e.order(1, 2).unwrap().leaves, 2, "resting own order stays");
    assert_eq!(e.order(1, 3), None);
}

#[test]
fn self_trade_allowed_without_stp() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 2));
    let reports = run(&mut e, limit(1, 2, Buy, 100, 2));
    assert_eq!(kinds(&reports), [Accepted, Fill, Fill]);
}

#[test]
fn cancel_removes_order_and_reports_open_quantity() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Buy, 100, 5));
    run(&mut e, limit(2, 1, Sell, 100, 2));
    let r = only(&run(&mut e, cancel(1, 1)));
    assert_eq!((r.kind, r.quantity, r.leaves, r.price), (Cancelled, 3, 0, 100));
    assert_eq!(r.reason, RejectReason::UserRequested);
    assert_eq!(e.best_bid(FINE), None);
    // The id is free again.
    assert_eq!(only(&run(&mut e, limit(1, 1, Buy, 99, 1))).kind, Accepted);
}

#[test]
fn cancel_in_the_middle_of_a_level_keeps_fifo_order() {
    let mut e = engine();
    for id in 1..=3 {
        run(&mut e, limit(1, id, Sell, 100, 1));
    }
    run(&mut e, cancel(1, 2));
    let reports = run(&mut e, limit(2, 9, Buy, 100, 2));
    let makers: Vec<u64> = reports
        .iter()
        .filter(|(_, r)| r.liquidity == Liquidity::Maker)
        .map(|(_, r)| r.order_id)
        .collect();
    assert_eq!(makers, [1, 3]);
}

#[test]
fn replace_decrease_keeps_priority() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 5));
    run(&mut e, limit(2, 2, Sell, 100, 5));
    let r = only(&run(&mut e, replace(1, 1, 100, 3)));
    assert_eq!((r.kind, r.price, r.quantity, r.leaves), (Replaced, 100, 3, 3));
    assert_eq!(e.depth_at(FINE, Sell, 100), 8);
    let reports = run(&mut e, limit(3, 3, Buy, 100, 1));
    assert_eq!(reports[2].1.order_id, 1, "order 1 still first");
}

#[test]
fn replace_increase_loses_priority() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 5));
    run(&mut e, limit(2, 2, Sell, 100, 5));
    run(&mut e, replace(1, 1, 100, 6));
    let reports = run(&mut e, limit(3, 3, Buy, 100, 1));
    assert_eq!(reports[2].1.order_id, 2, "order 1 went to the back");
}

#[test]
fn replace_price_change_loses_priority_and_moves_level() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Buy, 98, 5));
    run(&mut e, limit(2, 2, Buy, 99, 5));
    run(&mut e, replace(1, 1, 99, 5));
    assert_eq!(e.depth_at(FINE, Buy, 98), 0);
    assert_eq!(e.depth_at(FINE, Buy, 99), 10);
    let reports = run(&mut e, limit(3, 3, Sell, 99, 1));
    assert_eq!(reports[2].1.order_id, 2);
}

#[test]
fn replace_quantity_is_total_including_filled() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Sell, 100, 5));
    run(&mut e, limit(2, 2, Buy, 100, 2)); // fills 2, leaves 3
    let r = only(&run(&mut e, replace(1, 1, 100, 4)));
    assert_eq!((r.quantity, r.leaves), (4, 2));
    let r = only(&run(&mut e, replace(1, 1, 100, 2)));
    assert_eq!(
        (r.kind, r.reason),
        (Rejected, RejectReason::QuantityNotAboveFilled)
    );
    assert_eq!(r.leaves, 2, "reject reports the unchanged open quantity");
    assert_eq!(r.side, Sell);
}

#[test]
fn replace_to_crossing_price_trades_then_rests() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Buy, 98, 5));
    run(&mut e, limit(2, 2, Sell, 100, 2));
    let reports = run(&mut e, replace(1, 1, 101, 5));
    assert_eq!(kinds(&reports), [Replaced, Fill, Fill]);
    assert_eq!(reports[1].1.liquidity, Liquidity::Taker);
    assert_eq!(reports[1].1.price, 100);
    assert_eq!(e.order(1, 1).unwrap().leaves, 3);
    assert_eq!(e.best_bid(FINE), Some(101));
}

#[test]
fn replace_crossing_fully_filled_removes_order() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Buy, 98, 2));
    run(&mut e, limit(2, 2, Sell, 100, 5));
    let reports = run(&mut e, replace(1, 1, 100, 2));
    assert_eq!(kinds(&reports), [Replaced, Fill, Fill]);
    assert_eq!(e.order(1, 1), None);
}

#[test]
fn replace_crossing_with_stp_cancel_incoming_cancels_the_order() {
    let mut e = engine();
    let bid = NewOrder {
        stp: SelfTradePrevention::CancelIncoming,
        ..limit(1, 1, Buy, 98, 2)
    };
    run(&mut e, bid);
    run(&mut e, limit(1, 2, Sell, 100, 5));
    let reports = run(&mut e, replace(1, 1, 100, 2));
    assert_eq!(kinds(&reports), [Replaced, Cancelled]);
    assert_eq!(reports[1].1.reason, RejectReason::SelfTradePrevention);
    assert_eq!(e.order(1, 1), None);
}

#[test]
fn replace_of_post_only_to_crossing_price_is_rejected() {
    let mut e = engine();
    run(&mut e, limit(2, 2, Sell, 100, 5));
    let bid = NewOrder {
        post_only: true,
        ..limit(1, 1, Buy, 98, 2)
    };
    run(&mut e, bid);
    let r = only(&run(&mut e, replace(1, 1, 100, 2)));
    assert_eq!(r.reason, RejectReason::PostOnlyWouldCross);
    assert_eq!(e.order(1, 1).unwrap().price, 98);
}

#[test]
fn every_new_order_reject_reason() {
    let mut e = Engine::new(&small_config(1)).unwrap();
    let coarse = |price, quantity| NewOrder {
        instrument: COARSE,
        ..limit(1, 50, Buy, price, quantity)
    };
    let cases = [
        (
            NewOrder {
                instrument: UNKNOWN,
                ..limit(1, 1, Buy, 100, 1)
            },
            RejectReason::UnknownInstrument,
        ),
        (limit(1, 1, Buy, 100, 0), RejectReason::ZeroQuantity),
        (coarse(100, 15), RejectReason::OffLot),
        (limit(1, 1, Buy, 100, 51), RejectReason::QuantityTooLarge),
        (coarse(101, 10), RejectReason::OffTick),
        (limit(1, 1, Buy, 111, 1), RejectReason::OutsideBand),
        (limit(1, 1, Buy, 89, 1), RejectReason::OutsideBand),
    ];
    for (order, reason) in cases {
        let r = only(&run(&mut e, order));
        assert_eq!((r.kind, r.reason), (Rejected, reason), "{order:?}");
        assert_eq!(
            (r.order_id, r.quantity, r.leaves),
            (order.order_id, order.quantity, 0)
        );
    }
    // Pool of one: the first rests, a duplicate id is rejected, then the pool is full.
    assert_eq!(only(&run(&mut e, limit(1, 1, Buy, 100, 1))).kind, Accepted);
    let r = only(&run(&mut e, limit(1, 1, Sell, 105, 1)));
    assert_eq!(r.reason, RejectReason::DuplicateOrderId);
    let r = only(&run(&mut e, limit(2, 1, Buy, 99, 1)));
    assert_eq!(r.reason, RejectReason::PoolFull);
    // A full pool still lets a crossing order trade (and rest its remainder
    // in the slot the maker freed).
    let reports = run(&mut e, limit(2, 1, Sell, 100, 3));
    assert_eq!(kinds(&reports), [Accepted, Fill, Fill]);
    assert_eq!(e.order(2, 1).unwrap().leaves, 2);
}

#[test]
fn duplicate_id_check_is_per_session_and_live_orders_only() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Buy, 100, 1));
    assert_eq!(only(&run(&mut e, limit(2, 1, Buy, 100, 1))).kind, Accepted);
    // An IOC never becomes live, so its id may be reused right away.
    let ioc = NewOrder {
        tif: TimeInForce::Ioc,
        ..limit(3, 5, Buy, 100, 1)
    };
    run(&mut e, ioc);
    assert_eq!(only(&run(&mut e, limit(3, 5, Buy, 100, 1))).kind, Accepted);
}

#[test]
fn cancel_and_replace_reject_reasons() {
    let mut e = engine();
    run(&mut e, limit(1, 1, Buy, 100, 10));
    let r = only(&run(
        &mut e,
        Cancel {
            instrument: UNKNOWN,
            ..cancel(1, 1)
        },
    ));
    assert_eq!(r.reason, RejectReason::UnknownInstrument);
    assert_eq!(
        only(&run(&mut e, cancel(1, 2))).reason,
        RejectReason::UnknownOrder
    );
    assert_eq!(
        only(&run(&mut e, cancel(2, 1))).reason,
        RejectReason::UnknownOrder
    );
    let wrong_book = Cancel {
        instrument: COARSE,
        ..cancel(1, 1)
    };
    assert_eq!(only(&run(&mut e, wrong_book)).reason, RejectReason::UnknownOrder);

    let replace_cases = [
        (
            Replace {
                instrument: UNKNOWN,
                ..replace(1, 1, 100, 5)
            },
            RejectReason::UnknownInstrument,
        ),
        (replace(1, 2, 100, 5), RejectReason::UnknownOrder),
        (replace(1, 1, 100, 0), RejectReason::ZeroQuantity),
        (replace(1, 1, 100, 51), RejectReason::QuantityTooLarge),
        (replace(1, 1, 120, 5), RejectReason::OutsideBand),
    ];
    for (cmd, reason) in replace_cases {
        let r = only(&run(&mut e, cmd));
        assert_eq!((r.kind, r.reason), (Rejected, reason), "{cmd:?}");
    }
    let coarse = NewOrder {
        instrument: COARSE,
        ..limit(1, 7, Buy, 100, 20)
    };
    run(&mut e, coarse);
    let coarse_replace = |price, quantity| Replace {
        instrument: COARSE,
        ..replace(1, 7, price, quantity)
    };
    assert_eq!(
        only(&run(&mut e, coarse_replace(100, 25))).reason,
        RejectReason::OffLot
    );
    assert_eq!(
        only(&run(&mut e, coarse_replace(102, 20))).reason,
        RejectReason::OffTick
    );
    assert_eq!(e.order(1, 1).unwrap().leaves, 10);
}

#[test]
fn reject_reason_codes_are_stable() {
    use RejectReason::*;
    let codes = [
        (None, 0),
        (UnknownInstrument, 1),
        (ZeroQuantity, 2),
        (OffLot, 3),
        (OffTick, 4),
        (OutsideBand, 5),
        (DuplicateOrderId, 6),
        (UnknownOrder, 7),
        (PostOnlyWouldCross, 8),
        (FokCannotFill, 9),
        (PoolFull, 10),
        (NoLiquidity, 11),
        (PostOnlyNotGtcLimit, 12),
        (QuantityNotAboveFilled, 13),
        (QuantityTooLarge, 14),
        (UserRequested, 100),
        (SelfTradePrevention, 101),
        (ImmediateOrCancel, 102),
    ];
    for (reason, code) in codes {
        assert_eq!(reason.code(), code, "{reason:?}");
    }
}

#[test]
fn negative_prices_work_when_the_band_allows_them() {
    let config = EngineConfig {
        instruments: vec![InstrumentConfig {
            symbol: "SPREAD".into(),
            id: 1,
            tick_size: 5,
            lot_size: 1,
            price_min: -100,
            price_max: 100,
            max_quantity: 100,
        }],
        max_orders: 16,
    };
    let mut e = Engine::new(&config).unwrap();
    run(&mut e, limit(1, 1, Sell, -20, 3));
    assert_eq!(
        only(&run(&mut e, limit(2, 2, Buy, -21, 1))).reason,
        RejectReason::OffTick
    );
    let reports = run(&mut e, limit(2, 2, Buy, -15, 1));
    assert_eq!(kinds(&reports), [Accepted, Fill, Fill]);
    assert_eq!(reports[1].1.price, -20);
    assert_eq!(e.best_ask(1), Some(-20));
}

#[test]
fn best_price_recovers_across_a_wide_sparse_band() {
    let mut config = EngineConfig::sample();
    config.max_orders = 1024;
    let mut e = Engine::new(&config).unwrap();
    let wide = |id, side, price| NewOrder {
        instrument: 1,
        ..limit(1, id, side, price, 1)
    };
    run(&mut e, wide(1, Sell, 99_999));
    run(&mut e, wide(2, Sell, 5));
    run(&mut e, wide(3, Buy, 1));
    run(&mut e, wide(4, Buy, 4));
    assert_eq!(e.best_ask(1), Some(5));
    run(
        &mut e,
        Cancel {
            instrument: 1,
            ..cancel(1, 2)
        },
    );
    assert_eq!(e.best_ask(1), Some(99_999));
    run(
        &mut e,
        Cancel {
            instrument: 1,
            ..cancel(1, 4)
        },
    );
    assert_eq!(e.best_bid(1), Some(1));
}

#[test]
fn same_input_gives_same_reports_and_hash() {
    let script: Vec<Command> = vec![
        limit(1, 1, Sell, 101, 5).into(),
        limit(2, 1, Sell, 100, 5).into(),
        limit(3, 1, Buy, 100, 7).into(),
        replace(1, 1, 100, 9).into(),
        cancel(3, 1).into(),
        market(3, 2, Buy, 4).into(),
    ];
    let play = || {
        let mut e = engine();
        let mut reports = Vec::new();
        for command in &script {
            e.apply(command, &mut reports);
        }
        (reports, e.state_hash())
    };
    let (first, first_hash) = play();
    let (second, second_hash) = play();
    assert_eq!(first, second);
    assert_eq!(first_hash, second_hash);
    assert_ne!(first_hash, engine().state_hash());
}

#[test]
fn config_errors_are_reported() {
    let bad = |edit: fn(&mut EngineConfig)| {
        let mut config = small_config(8);
        edit(&mut config);
        Engine::new(&config).unwrap_err()
    };
    assert_eq!(bad(|c| c.instruments.clear()), ConfigError::NoInstruments);
    assert_eq!(bad(|c| c.max_orders = 0), ConfigError::InvalidMaxOrders(0));
    assert_eq!(
        bad(|c| c.instruments[1].id = FINE),
        ConfigError::DuplicateInstrumentId(FINE)
    );
    assert!(matches!(
        bad(|c| c.instruments[1].symbol = "FINE".into()),
        ConfigError::DuplicateSymbol(_)
    ));
    assert!(matches!(
        bad(|c| c.instruments[0].tick_size = 0),
        ConfigError::InvalidTickSize { .. }
    ));
    assert!(matches!(
        bad(|c| c.instruments[0].lot_size = 0),
        ConfigError::InvalidLotSize { .. }
    ));
    assert!(matches!(
        bad(|c| c.instruments[1].max_quantity = 15),
        ConfigError::InvalidMaxQuantity { .. }
    ));
    assert!(matches!(
        bad(|c| c.instruments[1].price_min = 51),
        ConfigError::InvalidBand { .. }
    ));
    assert!(matches!(
        bad(|c| c.instruments[0].price_max = 10),
        ConfigError::InvalidBand { .. }
    ));
    assert!(matches!(
        bad(|c| {
            c.instruments[0].price_min = i64::MIN;
            c.instruments[0].price_max = i64::MAX - 1;
        }),
        ConfigError::InvalidBand { .. }
    ));
    assert!(matches!(
        bad(|c| c.instruments[0].max_quantity = u64::MAX),
        ConfigError::QuantityOverflow { .. }
    ));
}

#[test]
fn config_deserializes_from_toml() {
    let text = r#"
        max_orders = 4096
        [[instruments]]
        symbol = "PGN-USD"
        id = 1
        tick_size = 1
        lot_size = 1
        price_min = 1
        price_max = 100000
    "#;
    let config: EngineConfig = toml::from_str(text).unwrap();
    assert_eq!(config.max_orders, 4096);
    assert_eq!(config.instruments[0].max_quantity, DEFAULT_MAX_QUANTITY);
    Engine::new(&config).unwrap();
    Engine::new(&EngineConfig::sample()).unwrap();
}
