//! The pieces behind the `peregrine` binary, as a library so integration
//! tests drive exactly what the binary runs.
//!
//! - [`config`]: the server's TOML configuration, every key also a flag.
//! - [`server`]: builds gateways, rings and the sequencer and runs them.
//! - [`baseline`]: minimal raw echo servers for same-run baselines.
//! - [`client`]: UDP and TCP client simulators and the latency recorder.
//! - [`report`]: report table, JSON summary and HdrHistogram text output.
//! - [`bench`]: the harness tying them together.

pub mod baseline;
pub mod bench;
pub mod client;
pub mod config;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod match_app;
pub mod pinning;
pub mod relay;
pub mod report;
pub mod server;
