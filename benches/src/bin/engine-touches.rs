//! How many cache lines and pages of the engine's structures each kind of
//! operation touches, on the same flow `engine-vs-peers` times (1M
//! operations on a book of 10k resting orders by default).
//!
//! Why: on a book larger than the caches, an operation's latency is mostly
//! the lines it has to bring in, so this census says what the latency
//! figures are made of and how far each kind is from its floor (one line
//! per lookup). It needs the engine built with its `touch-count` feature,
//! which records every access to the order pool, the id index, the price
//! levels and the level bitmap (see `peregrine_engine::touch`):
//!
//! ```text
//! cargo run --release -p peregrine-benches --features touch-count --bin engine-touches [-- --ops N --resting N]
//! ```
//!
//! A census, not a timing: the recording itself is slow and allocates.

use peregrine_benches::engine_workload::{engine_config, kind_index, KINDS};
use peregrine_engine::flow::{generate, FlowConfig};
use peregrine_engine::touch::{self, Structure, Touches};
use peregrine_engine::{CountingSink, Engine};

fn number(flag: &str, value: Option<String>) -> usize {
    value
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or_else(|| {
            eprintln!("{flag} needs a number");
            std::process::exit(2)
        })
}

/// `p`-quantile of `values` (sorted in place), 0 when empty.
fn quantile(values: &mut [u32], p: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    values[((values.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let (mut ops, mut resting) = (1_000_000usize, FlowConfig::standard().resting_target);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--ops" => ops = number(&flag, args.next()),
            "--resting" => resting = number(&flag, args.next()),
            _ => {
                eprintln!("usage: engine-touches [--ops N] [--resting N]");
                std::process::exit(2)
            }
        }
    }
    const { assert!(touch::ENABLED, "built without peregrine-engine/touch-count") };
    // The engine and flow engine-vs-peers uses.
    let config = engine_config(resting);
    let flow_config = FlowConfig {
        resting_target: resting,
        ..FlowConfig::standard()
    };
    let flow = generate(&config, &flow_config, ops).expect("sample config is valid");
    let mut engine = Engine::new(&config).expect("sample config is valid");
    let mut sink = CountingSink::default();
    for command in &flow.setup {
        engine.apply(command, &mut sink);
    }
    let mut lines: Vec<Vec<u32>> = KINDS.iter().map(|_| Vec::new()).collect();
    let mut pages: Vec<Vec<u32>> = KINDS.iter().map(|_| Vec::new()).collect();
    let mut by_structure = [[0u64; 4]; 4];
    for command in &flow.commands {
        touch::take();
        engine.apply(command, &mut sink);
        let Touches {
            lines: l,
            pages: p,
            lines_in,
        } = touch::take();
        let k = kind_index(command);
        lines[k].push(l);
        pages[k].push(p);
        for (sum, n) in by_structure[k].iter_mut().zip(lines_in) {
            *sum += u64::from(n);
        }
    }
    println!(
        "distinct cache lines ({} B) and pages ({} B) of the order pool, id index, price levels and level bitmap touched per operation",
        touch::LINE_BYTES,
        touch::PAGE_BYTES
    );
    println!(
        "{} operations after {} setup orders; book of {} resting orders at the end",
        flow.commands.len(),
        flow.setup.len(),
        engine.resting_count()
    );
    println!(
        "{:<8} {:>8}  {:>6} {:>5} {:>5} {:>5}  {:>6} {:>5} {:>5} {:>5}   mean lines in {}",
        "kind",
        "n",
        "lines",
        "p50",
        "p99",
        "max",
        "pages",
        "p50",
        "p99",
        "max",
        Structure::ALL.map(Structure::name).join(" / ")
    );
    for (k, name) in KINDS.iter().enumerate() {
        let (l, p) = (&mut lines[k], &mut pages[k]);
        let n = l.len();
        let mean = |v: &[u32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64;
        let (lm, pm) = (mean(l), mean(p));
        let split: Vec<String> = by_structure[k]
            .iter()
            .map(|&sum| format!("{:.2}", sum as f64 / n.max(1) as f64))
            .collect();
        println!(
            "{:<8} {:>8}  {:>6.2} {:>5} {:>5} {:>5}  {:>6.2} {:>5} {:>5} {:>5}   {}",
            name,
            n,
            lm,
            quantile(l, 0.5),
            quantile(l, 0.99),
            quantile(l, 1.0),
            pm,
            quantile(p, 0.5),
            quantile(p, 0.99),
            quantile(p, 1.0),
            split.join(" / ")
        );
    }
    println!("(lines and pages columns: mean, then p50, p99, max)");
}
