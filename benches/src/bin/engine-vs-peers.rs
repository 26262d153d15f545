//! Runs the standard mixed order flow through Peregrine's engine and, in the
//! same process and run, through the published `orderbook-rs` and `lobster`
//! crates, and reports throughput and per-operation latency.
//!
//! ```text
//! cargo run --release -p peregrine-benches --bin engine-vs-peers -- --json FILE
//!     [--ops N] [--resting N] [--runs N] [--peer-runs N] [--prefetch N]
//! ```
//!
//! Method:
//! * The flow (see `peregrine_engine::flow`) is generated once, up front:
//!   about 60% new limit orders near the touch, 25% cancels, 10% replaces and
//!   5% market orders on one instrument, after an untimed setup phase that
//!   builds the book to `--resting` orders. Peers get the same operations,
//!   translated to their APIs before timing starts; a replace is the peer's
//!   modify call (`orderbook-rs`) or cancel + new limit (`lobster`, which has
//!   no modify), counted as one operation.
//! * Throughput: a fresh book per run, the whole flow applied in a tight loop
//!   timed by one `Instant` pair; `ops_per_s` is the median over `--runs`
//!   (default 3) for ours and `--peer-runs` (default 1: the peers are an
//!   order of magnitude slower, and the run should stay short) for each peer.
//! * Ours is driven as the sequencer drives it: each command's order-index
//!   line is prefetched `--prefetch` commands ahead (default
//!   `Engine::PREFETCH_DISTANCE`; the sequencer does the same within each
//!   burst it drains). Runs without prefetch alternate with those runs, and
//!   the report gives both medians and their ratio, so the gain is measured
//!   in the same run; `--prefetch 0` drives it without.
//! * Latency (ours): another fresh run with a timestamp pair around every
//!   operation: the `lfence`d time stamp counter on x86_64 (a few ns a
//!   pair, calibrated against `Instant` over 100 ms at start; an `Instant`
//!   pair costs about 20 ns, as much as an operation), `Instant` elsewhere
//!   (see `peregrine_benches::timer`). The median cost of an empty pair,
//!   measured first and printed, is subtracted from each sample (floored
//!   at 1 ns), so the figures are the operation's own cost within the
//!   timer's resolution; values are recorded in an HdrHistogram with 3
//!   significant digits.
//! * Memory floor: the engine's resident set is measured (growth of the
//!   process's RSS while a first engine is built and runs the flow), then
//!   the same number of samples, each one random dependent cache-line read
//!   over a buffer that size, are timed the same way
//!   (`peregrine_benches::memory_floor`). The engine's p99.9 is reported
//!   against the floor's: the target is p99.9 under 1 µs, or at most 1.25x
//!   the floor.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use peregrine_benches::engine_workload::{engine_config, kind_index, KINDS};
use peregrine_benches::memory_floor::{resident_bytes, Chain};
use peregrine_benches::timer::{instant_pair_cost_ns, tsc_is_invariant, Timer};
use peregrine_engine::flow::{generate, FlowConfig, OrderFlow};
use peregrine_engine::{
    Command, CountingSink, Engine, EngineConfig, OrderKind, ReportKind, ReportSink, Side,
};

const DEFAULT_OPS: usize = 1_000_000;
const DEFAULT_RUNS: usize = 3;

struct Args {
    json: Option<String>,
    ops: usize,
    resting: usize,
    runs: usize,
    peer_runs: usize,
    prefetch: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        json: None,
        ops: DEFAULT_OPS,
        resting: FlowConfig::standard().resting_target,
        runs: DEFAULT_RUNS,
        peer_runs: 1,
        prefetch: Engine::PREFETCH_DISTANCE,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |text: String| {
            text.replace('_', "")
                .parse::<usize>()
                .map_err(|e| format!("{text}: {e}"))
        };
        match flag.as_str() {
            "--json" => args.json = Some(value()?),
            "--ops" => args.ops = number(value()?)?,
            "--resting" => args.resting = number(value()?)?,
            "--runs" => args.runs = number(value()?)?.max(1),
            "--peer-runs" => args.peer_runs = number(value()?)?.max(1),
            "--prefetch" => args.prefetch = number(value()?)?,
            "-h" | "--help" => {
                return Err(
                    "usage: engine-vs-peers [--json FILE] [--ops N] [--resting N] [--runs N] [--peer-runs N] [--prefetch N]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// Throughput of one timed pass.
fn ops_per_s(ops: usize, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

// ---------------------------------------------------------------- ours

fn prepared_engine(config: &EngineConfig, flow: &OrderFlow) -> Engine {
    let mut engine = Engine::new(config).expect("sample config is valid");
    let mut sink = CountingSink::default();
    for command in &flow.setup {
        engine.apply(command, &mut sink);
    }
    engine
}

/// What the sequencer prefetches before handing over command `i` of a
/// burst, `prefetch` commands ahead (nothing when 0): the first `prefetch`
/// commands at the start, then command `i + prefetch`.
#[inline]
fn prefetch_before(engine: &Engine, commands: &[Command], i: usize, prefetch: usize) {
    if prefetch == 0 {
        return;
    }
    if i == 0 {
        for command in commands.iter().take(prefetch) {
            engine.prefetch(command);
        }
    }
    if let Some(ahead) = commands.get(i + prefetch) {
        engine.prefetch(ahead);
    }
}

fn ours_throughput(config: &EngineConfig, flow: &OrderFlow, prefetch: usize) -> (f64, CountingSink, Engine) {
    let mut engine = prepared_engine(config, flow);
    let mut sink = CountingSink::default();
    let commands = &flow.commands;
    let start = Instant::now();
    for (i, command) in commands.iter().enumerate() {
        prefetch_before(&engine, commands, i, prefetch);
        engine.apply(black_box(command), &mut sink);
    }
    let elapsed = start.elapsed();
    (ops_per_s(flow.commands.len(), elapsed), black_box(sink), engine)
}

/// Bytes the engine holds resident after building the book and running
/// the flow once: the growth of the process's resident set over it (the
/// first engine of the process, so the heap has no freed memory to reuse).
/// None where the resident set cannot be read.
fn engine_resident_bytes(config: &EngineConfig, flow: &OrderFlow) -> Option<u64> {
    let before = resident_bytes()?;
    let mut engine = prepared_engine(config, flow);
    let mut sink = CountingSink::default();
    for command in &flow.commands {
        engine.apply(command, &mut sink);
    }
    let after = resident_bytes()?;
    black_box(&engine);
    Some(after.saturating_sub(before))
}

/// The memory floor: `samples` random dependent cache-line reads over
/// `bytes`, timed like the engine's operations.
fn memory_floor(timer: &Timer, bytes: u64, samples: usize, overhead_ns: f64) -> (Histogram<u64>, usize) {
    let chain = Chain::new(bytes as usize, 0x5eed);
    chain.warm();
    let mut hist = new_histogram();
    chain.time_reads(timer, samples, overhead_ns, &mut hist);
    (hist, chain.bytes())
}

/// A histogram whose counters are all written once (clearing them), so
/// recording never takes a page fault in the timed loops.
fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    h.reset();
    h
}

/// Per-operation latency: all operations, and one histogram per kind.
fn ours_latency(
    config: &EngineConfig,
    flow: &OrderFlow,
    timer: &Timer,
    overhead_ns: f64,
    prefetch: usize,
) -> (Histogram<u64>, Vec<Histogram<u64>>) {
    let mut all = new_histogram();
    let mut by_kind: Vec<Histogram<u64>> = KINDS.iter().map(|_| new_histogram()).collect();
    let mut engine = prepared_engine(config, flow);
    let mut sink = CountingSink::default();
    let commands = &flow.commands;
    for (i, command) in commands.iter().enumerate() {
        let t0 = timer.now();
        // The prefetch is part of what the sequencer does per message.
        prefetch_before(&engine, commands, i, prefetch);
        engine.apply(black_box(command), &mut sink);
        let t1 = timer.now();
        let ns = (timer.ns(t1.wrapping_sub(t0)) - overhead_ns).max(1.0) as u64;
        all.saturating_record(ns);
        by_kind[kind_index(command)].saturating_record(ns);
    }
    black_box(sink);
    (all, by_kind)
}

// ---------------------------------------------------------------- lobster

fn lobster_id(session: u32, order_id: u64) -> u128 {
    (u128::from(session) << 64) | u128::from(order_id)
}

fn lobster_side(side: Side) -> lobster::Side {
    match side {
        Side::Buy => lobster::Side::Bid,
        Side::Sell => lobster::Side::Ask,
    }
}

/// One flow operation as lobster calls (a replace is cancel + limit).
fn lobster_ops(flow: &OrderFlow, commands: &[Command]) -> Vec<Vec<lobster::OrderType>> {
    let mut details = flow.replace_details.iter();
    commands
        .iter()
        .map(|command| match command {
            Command::New(order) if order.kind == OrderKind::Market => {
                vec![lobster::OrderType::Market {
                    id: lobster_id(order.session, order.order_id),
                    side: lobster_side(order.side),
                    qty: order.quantity,
                }]
            }
            Command::New(order) => vec![lobster::OrderType::Limit {
                id: lobster_id(order.session, order.order_id),
                side: lobster_side(order.side),
                qty: order.quantity,
                price: order.price as u64,
            }],
            Command::Cancel(cancel) => vec![lobster::OrderType::Cancel {
                id: lobster_id(cancel.session, cancel.order_id),
            }],
            Command::Replace(replace) => {
                let detail = details.next().copied();
                let id = lobster_id(replace.session, replace.order_id);
                let (side, qty) =
                    detail.map_or((Side::Buy, replace.new_quantity), |d| (d.side, d.new_leaves));
                vec![
                    lobster::OrderType::Cancel { id },
                    lobster::OrderType::Limit {
                        id,
                        side: lobster_side(side),
                        qty,
                        price: replace.new_price as u64,
                    },
                ]
            }
        })
        .collect()
}

fn lobster_book(resting: usize, setup: &[Vec<lobster::OrderType>]) -> lobster::OrderBook {
    let mut book = lobster::OrderBook::new(resting * 4, 16, false);
    for op in setup.iter().flatten() {
        book.execute(*op);
    }
    book
}

fn lobster_throughput(
    resting: usize,
    setup: &[Vec<lobster::OrderType>],
    ops: &[Vec<lobster::OrderType>],
) -> f64 {
    let mut book = lobster_book(resting, setup);
    let start = Instant::now();
    for op in ops {
        for part in op {
            black_box(book.execute(*part));
        }
    }
    let elapsed = start.elapsed();
    black_box(&book);
    ops_per_s(ops.len(), elapsed)
}

// ---------------------------------------------------------------- orderbook-rs

enum ObOp {
    Limit {
        id: orderbook_rs::Id,
        price: u128,
        quantity: u64,
        side: orderbook_rs::Side,
        user: pricelevel::Hash32,
    },
    Market {
        id: orderbook_rs::Id,
        quantity: u64,
        side: orderbook_rs::Side,
        user: pricelevel::Hash32,
    },
    Cancel(orderbook_rs::Id),
    Update(pricelevel::OrderUpdate),
}

fn ob_id(session: u32, order_id: u64) -> orderbook_rs::Id {
    orderbook_rs::Id::from_u64((u64::from(session) << 40) | order_id)
}

/// orderbook-rs tracks orders per owner; give each session its own owner id
/// (one owner for every order would be an unrealistic worst case for it).
fn ob_user(session: u32) -> pricelevel::Hash32 {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&(session + 1).to_le_bytes());
    pricelevel::Hash32::new(bytes)
}

fn ob_side(side: Side) -> orderbook_rs::Side {
    match side {
        Side::Buy => orderbook_rs::Side::Buy,
        Side::Sell => orderbook_rs::Side::Sell,
    }
}

fn orderbook_rs_ops(flow: &OrderFlow, commands: &[Command]) -> Vec<ObOp> {
    let mut details = flow.replace_details.iter();
    commands
        .iter()
        .map(|command| match command {
            Command::New(order) if order.kind == OrderKind::Market => ObOp::Market {
                id: ob_id(order.session, order.order_id),
                quantity: order.quantity,
                side: ob_side(order.side),
                user: ob_user(order.session),
            },
            Command::New(order) => ObOp::Limit {
                id: ob_id(order.session, order.order_id),
                price: order.price as u128,
                quantity: order.quantity,
                side: ob_side(order.side),
                user: ob_user(order.session),
            },
            Command::Cancel(cancel) => ObOp::Cancel(ob_id(cancel.session, cancel.order_id)),
            Command::Replace(replace) => {
                let detail = details.next().copied();
                let order_id = ob_id(replace.session, replace.order_id);
                let leaves = detail.map_or(replace.new_quantity, |d| d.new_leaves);
                let new_quantity = pricelevel::Quantity::new(leaves);
                ObOp::Update(if detail.is_some_and(|d| d.price_changed) {
                    pricelevel::OrderUpdate::UpdatePriceAndQuantity {
                        order_id,
                        new_price: pricelevel::Price::new(replace.new_price as u128),
                        new_quantity,
                    }
                } else {
                    pricelevel::OrderUpdate::UpdateQuantity {
                        order_id,
                        new_quantity,
                    }
                })
            }
        })
        .collect()
}

/// Applies one operation; returns whether the book accepted it.
fn ob_apply(book: &orderbook_rs::OrderBook<()>, op: &ObOp) -> bool {
    match op {
        ObOp::Limit {
            id,
            price,
            quantity,
            side,
            user,
        } => book
            .add_limit_order_with_user(
                *id,
                *price,
                *quantity,
                *side,
                orderbook_rs::TimeInForce::Gtc,
                *user,
                None,
            )
            .is_ok(),
        ObOp::Market {
            id,
            quantity,
            side,
            user,
        } => book
            .submit_market_order_with_user(*id, *quantity, *side, *user)
            .is_ok(),
        ObOp::Cancel(id) => book.cancel_order(*id).is_ok(),
        ObOp::Update(update) => book.update_order(*update).is_ok(),
    }
}

fn orderbook_rs_throughput(setup: &[ObOp], ops: &[ObOp]) -> (f64, usize) {
    let book = orderbook_rs::OrderBook::<()>::new("PGN-USD");
    for op in setup {
        ob_apply(&book, op);
    }
    let mut failed = 0;
    let start = Instant::now();
    for op in ops {
        failed += usize::from(!ob_apply(&book, black_box(op)));
    }
    let elapsed = start.elapsed();
    black_box(&book);
    (ops_per_s(ops.len(), elapsed), failed)
}

// ---------------------------------------------------------------- report

struct FillCounter(u64);

impl ReportSink for FillCounter {
    fn report(&mut self, _session: u32, report: &peregrine_engine::Report) {
        self.0 += u64::from(report.kind == ReportKind::Fill);
    }
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let config = engine_config(args.resting);
    let flow_config = FlowConfig {
        resting_target: args.resting,
        ..FlowConfig::standard()
    };
    let flow = generate(&config, &flow_config, args.ops).expect("valid config");
    let mix = flow.mix();
    let ops = flow.commands.len();
    // Measured first: the heap has nothing freed yet to hide growth in.
    let engine_bytes = engine_resident_bytes(&config, &flow);
    let timer = Timer::calibrated(Duration::from_millis(100));
    let pair_ns = timer.pair_cost_ns(200_000);
    let instant_pair_ns = instant_pair_cost_ns(200_000);

    // Ours: throughput (median of runs), then per-op latency.
    let mut ours_runs = Vec::new();
    let mut unprefetched_runs = Vec::new();
    let mut final_state = None;
    for _ in 0..args.runs {
        if args.prefetch > 0 {
            unprefetched_runs.push(ours_throughput(&config, &flow, 0).0);
        }
        let (rate, sink, engine) = ours_throughput(&config, &flow, args.prefetch);
        ours_runs.push(rate);
        final_state = Some((
            sink,
            engine.resting_count(),
            engine.best_bid(1),
            engine.best_ask(1),
        ));
    }
    let ours = median(ours_runs.clone());
    let unprefetched = (!unprefetched_runs.is_empty()).then(|| median(unprefetched_runs.clone()));
    let overhead = pair_ns.round() as u64;
    let (latency, by_kind) = ours_latency(&config, &flow, &timer, pair_ns, args.prefetch);
    // A working set of the engine's size; 64 MiB when it cannot be measured.
    let floor_bytes = engine_bytes.filter(|&b| b > 0).unwrap_or(64 << 20);
    let (floor, floor_bytes) = memory_floor(&timer, floor_bytes, ops, pair_ns);
    let mut fills = FillCounter(0);
    let mut check = prepared_engine(&config, &flow);
    for command in &flow.commands {
        check.apply(command, &mut fills);
    }

    // Peers, same flow, translated before timing.
    let lobster_setup = lobster_ops(&OrderFlow::default(), &flow.setup);
    let lobster_flow = lobster_ops(&flow, &flow.commands);
    let lobster_rate = median(
        (0..args.peer_runs)
            .map(|_| lobster_throughput(args.resting, &lobster_setup, &lobster_flow))
            .collect(),
    );
    let ob_setup = orderbook_rs_ops(&OrderFlow::default(), &flow.setup);
    let ob_flow = orderbook_rs_ops(&flow, &flow.commands);
    let mut ob_failed = 0;
    let ob_rate = median(
        (0..args.peer_runs)
            .map(|_| {
                let (rate, failed) = orderbook_rs_throughput(&ob_setup, &ob_flow);
                ob_failed = failed;
                rate
            })
            .collect(),
    );

    let (sink, resting, bid, ask) = final_state.expect("at least one run");
    let p = |q: f64| latency.value_at_quantile(q);
    println!(
        "flow: {ops} ops after {} setup orders (limit {} / cancel {} / replace {} / market {}), \
         {} reports, {} fills; final book {resting} orders, bid {bid:?} ask {ask:?}",
        flow.setup.len(),
        mix.limits,
        mix.cancels,
        mix.replaces,
        mix.markets,
        sink.reports,
        fills.0 / 2,
    );
    println!(
        "timer overhead subtracted from latency samples: {overhead} ns (median empty {} pair)",
        timer.kind().name()
    );
    println!(
        "timer: {} at {:.3} GHz (calibrated against Instant over 100 ms{}); empty pair {pair_ns:.1} ns, Instant pair {instant_pair_ns} ns",
        timer.kind().name(),
        timer.ticks_per_s() / 1e9,
        match tsc_is_invariant() {
            Some(true) => ", invariant TSC",
            Some(false) => ", TSC NOT invariant: figures may drift",
            None => "",
        }
    );
    println!();
    println!("{:<14} {:>14} {:>10}", "engine", "ops/s", "vs ours");
    println!("{:<14} {:>14.0} {:>10}", "peregrine", ours, "1.00x");
    for (name, rate) in [("orderbook-rs", ob_rate), ("lobster", lobster_rate)] {
        println!("{:<14} {:>14.0} {:>9.2}x", name, rate, rate / ours);
    }
    println!();
    println!(
        "peregrine per-op latency (ns): p50 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  mean {:.1}",
        p(0.50),
        p(0.99),
        p(0.999),
        p(0.9999),
        latency.max(),
        latency.mean()
    );
    let fp = |q: f64| floor.value_at_quantile(q);
    println!(
        "memory floor per read (ns): p50 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  mean {:.1} \
         ({ops} random dependent cache-line reads over {:.1} MiB, {})",
        fp(0.50),
        fp(0.99),
        fp(0.999),
        fp(0.9999),
        floor.max(),
        floor.mean(),
        floor_bytes as f64 / (1 << 20) as f64,
        match engine_bytes {
            Some(b) if b > 0 => format!(
                "the engine's resident set grew {:.1} MiB",
                b as f64 / (1 << 20) as f64
            ),
            _ => "engine resident set unknown: 64 MiB".to_string(),
        }
    );
    let floor_ratio = p(0.999) as f64 / fp(0.999).max(1) as f64;
    let target_met = p(0.999) < 1000 || floor_ratio <= 1.25;
    println!(
        "peregrine p99.9 / memory floor p99.9: {floor_ratio:.2}x (target: p99.9 < 1000 ns or <= 1.25x the floor: {})",
        if target_met { "met" } else { "NOT met" }
    );
    for (name, histogram) in KINDS.iter().zip(&by_kind) {
        println!(
            "  {name:<8} n={:<8} p50 {:>5}  p99 {:>5}  p99.9 {:>6}  max {:>7}",
            histogram.len(),
            histogram.value_at_quantile(0.5),
            histogram.value_at_quantile(0.99),
            histogram.value_at_quantile(0.999),
            histogram.max()
        );
    }
    println!(
        "peregrine / orderbook-rs throughput: {:.1}x (orderbook-rs rejected {ob_failed} of {ops} ops)",
        ours / ob_rate
    );
    println!(
        "ours, each run (ops/s), prefetching {} ahead: {ours_runs:.0?}",
        args.prefetch
    );
    if let Some(without) = unprefetched {
        println!(
            "ours without prefetch, alternating with those runs (ops/s): {unprefetched_runs:.0?}; \
             median {without:.0}, prefetch gain {:.2}x",
            ours / without
        );
    }

    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "ops_per_s": ours.round(),
            "prefetch_distance": args.prefetch,
            "ops_per_s_without_prefetch": unprefetched.map(f64::round),
            "latency_ns": {
                "p50": p(0.50),
                "p99": p(0.99),
                "p999": p(0.999),
                "p9999": p(0.9999),
                "max": latency.max(),
                "mean": latency.mean(),
            },
            "peers": {
                "orderbook_rs": { "ops_per_s": ob_rate.round(), "rejected_ops": ob_failed },
                "lobster": { "ops_per_s": lobster_rate.round() },
            },
            "speedup_vs_orderbook_rs": ours / ob_rate,
            "speedup_vs_lobster": ours / lobster_rate,
            "ops": ops,
            "setup_orders": flow.setup.len(),
            "mix": {
                "limit": mix.limits,
                "cancel": mix.cancels,
                "replace": mix.replaces,
                "market": mix.markets,
            },
            "runs": args.runs,
            "peer_runs": args.peer_runs,
            "timer_overhead_ns": overhead,
            "timer": {
                "kind": timer.kind().name(),
                "ticks_per_s": timer.ticks_per_s().round(),
                "pair_ns": pair_ns,
                "instant_pair_ns": instant_pair_ns,
                "tsc_invariant": tsc_is_invariant(),
            },
            "engine_resident_bytes": engine_bytes,
            "memory_floor": {
                "bytes": floor_bytes,
                "samples": floor.len(),
                "latency_ns": {
                    "p50": fp(0.50),
                    "p99": fp(0.99),
                    "p999": fp(0.999),
                    "p9999": fp(0.9999),
                    "max": floor.max(),
                    "mean": floor.mean(),
                },
            },
            "p999_vs_floor": floor_ratio,
            "latency_target_met": target_met,
        });
        let text = serde_json::to_string_pretty(&json).expect("json");
        if let Err(error) = std::fs::write(path, text + "\n") {
            eprintln!("cannot write {path}: {error}");
            std::process::exit(1);
        }
        println!("wrote {path}");
    }
}
