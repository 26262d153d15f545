//! Benchmarks only: criterion benches in `benches/` and the side-by-side
//! engine comparison in `src/bin/engine-vs-peers.rs`, with the pieces it
//! times with:
//!
//! - [`timer`]: a fenced time stamp counter calibrated against `Instant`
//!   (`Instant` elsewhere), cheap enough to time one engine operation.
//! - [`memory_floor`]: random dependent cache-line reads over a working
//!   set the engine's size, the same-run floor its tail is judged against.
//! - [`engine_workload`]: the engine configuration and operation kinds the
//!   engine binaries share.
//!
//! `unsafe` is denied except for the counter read in [`timer`].
#![deny(unsafe_code)]

pub mod engine_workload;
pub mod memory_floor;
pub mod timer;
