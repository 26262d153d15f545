//! Criterion benchmarks of the matching engine on the standard mixed flow
//! (about 60% new limit near the touch, 25% cancel, 10% replace, 5% market),
//! pre-generated deterministically by `peregrine_engine::flow`.
//!
//! Each iteration replays the whole flow into a fresh engine whose book was
//! built by the untimed setup phase, so every iteration sees the same states.
//! Throughput is reported in operations (commands) per second.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use peregrine_engine::flow::{generate, FlowConfig, OrderFlow};
use peregrine_engine::{CountingSink, Engine, EngineConfig};

const FLOW_OPS: usize = 100_000;

fn config() -> EngineConfig {
    let mut config = EngineConfig::sample();
    config.max_orders = 1 << 16;
    config
}

fn prepared(config: &EngineConfig, flow: &OrderFlow) -> Engine {
    let mut engine = Engine::new(config).expect("valid config");
    let mut sink = CountingSink::default();
    for command in &flow.setup {
        engine.apply(command, &mut sink);
    }
    engine
}

fn bench_flow(c: &mut Criterion, name: &str, resting: usize) {
    let config = config();
    let flow_config = FlowConfig {
        resting_target: resting,
        ..FlowConfig::standard()
    };
    let flow = generate(&config, &flow_config, FLOW_OPS).expect("valid config");
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(flow.commands.len() as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.bench_function(name, |b| {
        b.iter_batched(
            || prepared(&config, &flow),
            |mut engine| {
                let mut sink = CountingSink::default();
                for command in &flow.commands {
                    engine.apply(black_box(command), &mut sink);
                }
                black_box(sink);
                engine
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn mixed_flow(c: &mut Criterion) {
    bench_flow(c, "mixed_flow_10k_resting", 10_000);
    bench_flow(c, "mixed_flow_1k_resting", 1_000);
}

fn state_hash(c: &mut Criterion) {
    let config = config();
    let flow = generate(&config, &FlowConfig::standard(), 0).expect("valid config");
    let engine = prepared(&config, &flow);
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(1));
    group.bench_function("state_hash_10k_resting", |b| {
        b.iter(|| black_box(engine.state_hash()))
    });
    group.finish();
}

criterion_group!(benches, mixed_flow, state_hash);
criterion_main!(benches);
