//! The Peregrine server as a library: what `peregrine serve` runs, so
//! integration tests and embedders drive exactly the production code.
//!
//! - [`config`]: the TOML configuration (every key also a flag of `serve`).
//! - [`serve`]: builds ports, gateways, rings, the journal and the
//!   sequencer from a config, recovers from the journal, and runs them.
//! - [`runtime`]: the `shared` and `dedicated` thread layouts that poll the
//!   gateways and the sequencer.
//! - [`idle`]: what a polling loop does when it found no work.
//! - [`counters_file`]: the shared-memory counters `peregrine stat` reads.
//! - [`match_app`]: the matching engine behind the sequencer's
//!   `Application` trait; [`engine_codec`]: engine commands and reports to
//!   and from wire messages.
//! - [`pinning`]: the one place threads are pinned to cores.
//! - [`doctor`]: checks a host against what a configuration needs.
//! - [`metrics`]: the counters in Prometheus/OpenMetrics text.
//! - [`snapshot`]: application and session state at a global sequence
//!   number, as a checksummed file, and the replay that builds it.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod cluster_node;
mod cluster_serve;
pub mod cluster_status;
pub mod colocation;
pub mod config;
pub mod counters_file;
pub mod doctor;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod engine_codec;
mod error;
pub mod feed_run;
pub mod idle;
pub mod market_data;
pub mod match_app;
pub mod memory_lock;
pub mod metrics;
pub mod pinning;
pub mod runtime;
pub mod serve;
pub mod snapshot;
pub mod stage;

pub use error::ServeError;
