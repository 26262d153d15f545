//! Benchmarks only: criterion benches in `benches/` and the side-by-side
//! engine comparison in `src/bin/engine-vs-peers.rs`.
#![forbid(unsafe_code)]
