//! The pieces behind the `peregrine` binary, as a library so integration
//! tests drive exactly what the binary runs.
//!
//! - [`baseline`]: minimal raw echo servers for same-run baselines.
//! - [`client`]: UDP and TCP client simulators and the latency recorder.
//! - [`report`]: report table, JSON summary and HdrHistogram text output.
//! - [`bench`]: the harness tying them together.

pub mod baseline;
pub mod bench;
pub mod client;
#[cfg(feature = "dpdk")]
pub mod dpdk_ring;
pub mod relay;
pub mod report;
