//! The engine workload the engine binaries share (`engine-vs-peers` times
//! it, `engine-touches` counts what it touches), so both measure the same
//! book and report by the same operation kinds.

use peregrine_engine::{Command, EngineConfig, OrderKind};

/// Operation kinds reported separately, in [`kind_index`] order.
pub const KINDS: [&str; 4] = ["limit", "cancel", "replace", "market"];

/// Which of [`KINDS`] `command` is.
pub fn kind_index(command: &Command) -> usize {
    match command {
        Command::New(order) if order.kind == OrderKind::Market => 3,
        Command::New(_) => 0,
        Command::Cancel(_) => 1,
        Command::Replace(_) => 2,
    }
}

/// The sample instrument with an order pool sized for `resting` orders
/// (four times over, at least 65,536, a power of two).
pub fn engine_config(resting: usize) -> EngineConfig {
    let mut config = EngineConfig::sample();
    config.max_orders = (resting * 4).max(1 << 16).next_power_of_two();
    config
}
