//! Deterministic simulation of 3- and 5-node clusters under message loss,
//! delay, duplication, reordering, partitions, crashes and restarts; see
//! `sim/mod.rs` for the model and the invariants.
//!
//! * `cargo test -p peregrine-cluster --test simulation` runs 1,000 seeds.
//! * `SIM_SEED=1234` replays one seed exactly (`SIM_TRACE=1` narrates it).
//! * `SIM_SEEDS=100000` (with `--ignored`) sweeps that many seeds;
//!   `SIM_FIRST_SEED` moves the start.

mod sim;

use sim::{Sim, SimParams, SimStats};
use std::time::Instant;

/// Steps of faults per seed in the default run: short runs, many seeds.
const FAULT_STEPS: u64 = 300;

fn run_seed(seed: u64, fault_steps: u64) -> Result<SimStats, String> {
    let params = SimParams::for_seed(seed, fault_steps);
    let outcome = std::panic::catch_unwind(|| Sim::new(seed, params).run());
    match outcome {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("seed {seed}: panicked: {what}"))
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
}

fn sweep(first: u64, count: u64, fault_steps: u64) {
    let started = Instant::now();
    let mut total = SimStats::default();
    for seed in first..first + count {
        match run_seed(seed, fault_steps) {
            Ok(s) => {
                total.steps += s.steps;
                total.committed_entries += s.committed_entries;
                total.records += s.records;
                total.leader_changes += s.leader_changes;
                total.crashes += s.crashes;
                total.partitions += s.partitions;
                total.dropped += s.dropped;
                total.duplicated += s.duplicated;
                total.liveness_steps = total.liveness_steps.max(s.liveness_steps);
            }
            Err(e) => panic!("{e}\nreplay with SIM_SEED={seed} (SIM_TRACE=1 to narrate)"),
        }
    }
    println!(
        "{count} seeds from {first} in {:.1?}: {} steps, {} committed entries, {} records sequenced, {} elections won, \
         {} crashes, {} partitions, {} messages dropped, {} duplicated; slowest recovery {} ticks",
        started.elapsed(),
        total.steps,
        total.committed_entries,
        total.records,
        total.leader_changes,
        total.crashes,
        total.partitions,
        total.dropped,
        total.duplicated,
        total.liveness_steps
    );
}

#[test]
fn thousand_seeds() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let stats =
            run_seed(seed, env_u64("SIM_STEPS").unwrap_or(FAULT_STEPS)).unwrap_or_else(|e| panic!("{e}"));
        println!("seed {seed}: {stats:?}");
        return;
    }
    sweep(0, 1_000, FAULT_STEPS);
}

#[test]
#[ignore = "long sweep: SIM_SEEDS=100000 cargo test -p peregrine-cluster --test simulation -- --ignored"]
fn long_sweep() {
    let count = env_u64("SIM_SEEDS").unwrap_or(100_000);
    let first = env_u64("SIM_FIRST_SEED").unwrap_or(1_000_000);
    sweep(first, count, env_u64("SIM_STEPS").unwrap_or(1_000));
}

#[test]
fn same_seed_same_run() {
    let a = run_seed(42, 150).unwrap();
    let b = run_seed(42, 150).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[test]
fn a_quiet_cluster_elects_one_leader_and_commits() {
    for nodes in [3, 5] {
        let params = SimParams {
            nodes,
            fault_steps: 100,
            liveness_bound: 200,
            drop_percent: 0,
            duplicate_percent: 0,
            max_delay_steps: 1,
            crash_per_mille: 0,
            bounce_per_mille: 0,
            restart_percent: 0,
            partition_per_mille: 0,
            heal_percent: 0,
            clients: 3,
        };
        let stats = Sim::new(7, params).run().unwrap();
        assert_eq!(stats.leader_changes, 1, "{stats:?}");
        assert!(stats.records > 0 && stats.committed_entries > 0, "{stats:?}");
    }
}
