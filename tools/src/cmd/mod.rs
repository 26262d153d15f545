//! One file per `peregrine` subcommand: its flags and what it runs.

pub mod bench;
pub mod client;
pub mod cluster;
pub mod doctor;
pub mod exporter;
pub mod feed;
#[cfg(feature = "kafka")]
pub mod kafka_bridge;
#[cfg(feature = "kafka")]
pub mod kafka_mock;
pub mod load;
pub mod relay;
pub mod replay;
pub mod serve;
pub mod snapshot;
pub mod stat;
pub mod tail;

/// Where `serve` puts its counters and `stat` reads them unless told otherwise.
pub const DEFAULT_COUNTERS_FILE: &str = "/dev/shm/peregrine.stats";
