//! The pieces behind the `peregrine` binary, as a library so integration
//! tests drive exactly what the binary runs.
//!
//! - [`baseline`]: minimal raw echo servers for same-run baselines.
//! - [`client`]: the UDP and TCP client simulators (load generation,
//!   timing, the latency recorder) over `peregrine-client` sessions.
//! - [`faults`]: the fault model (drop, duplicate, reorder) shared by the
//!   relay and the simulator's lossy link.
//! - [`exporter`]: the counters over HTTP for Prometheus.
//! - [`local_cluster`]: in-process cluster nodes on loopback (the cluster
//!   bench and tests).
//! - [`relay`]: a lossy UDP relay for fault injection between processes.
//! - [`report`]: report table, JSON summary and HdrHistogram text output.
//! - [`plot`]: latency percentile plots as SVG.
//! - [`bench`]: the harness tying them together.
//! - `kafka` (feature `kafka`): the sequenced feed into a Kafka partition,
//!   exactly once across restarts; librdkafka's mock cluster for tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod baseline;
pub mod bench;
pub mod client;
#[cfg(feature = "dpdk")]
pub mod dpdk_ring;
pub mod exporter;
pub mod faults;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod local_cluster;
pub mod plot;
pub mod relay;
pub mod report;
