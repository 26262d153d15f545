//! Peregrine's matching engine: deterministic price-time order books.
//!
//! The sequencer hands the engine a totally ordered stream of [`Command`]s; the
//! engine answers each with execution [`Report`]s addressed to sessions. It is
//! a pure function of that stream (no clocks, no randomness, no I/O), so a
//! journal replay rebuilds the same state, proven by [`Engine::state_hash`].
//!
//! It is built for one core and a steady state without allocation: orders live
//! in a preallocated pool linked by index, live orders are found by
//! `(session, order id)` through an open-addressing table with a fixed hash,
//! and each book's price levels are a flat array over its bounded price band
//! with a hierarchical bitmap to find the next best level.
//!
//! ```
//! use peregrine_engine::*;
//!
//! let mut engine = Engine::new(&EngineConfig::sample()).unwrap();
//! let order = |session, order_id, side, price| NewOrder {
//!     session, order_id, instrument: 1, side, kind: OrderKind::Limit,
//!     tif: TimeInForce::Gtc, post_only: false, stp: SelfTradePrevention::None,
//!     price, quantity: 10,
//! };
//! let mut reports: Vec<(u32, Report)> = Vec::new();
//! engine.new_order(&order(7, 1, Side::Sell, 100), &mut reports);
//! engine.new_order(&order(8, 1, Side::Buy, 101), &mut reports);
//! // Accepted to 7; Accepted to 8; Fill to 8 (taker) and to 7 (maker) at 100.
//! assert_eq!(reports.len(), 4);
//! assert_eq!(reports[3].0, 7);
//! assert_eq!(reports[3].1.price, 100);
//! assert_eq!(reports[3].1.liquidity, Liquidity::Maker);
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod book;
mod book_side;
mod cancel;
mod command;
mod config;
mod engine;
pub mod flow;
mod huge_page_vec;
mod invariants;
mod level_bitmap;
mod matching;
mod new_order;
mod order_index;
mod order_pool;
mod prefetch;
mod replace;
mod report;
mod snapshot;
mod state_hash;
pub mod touch;

pub use command::{Cancel, Command, NewOrder, OrderKind, Replace, SelfTradePrevention, Side, TimeInForce};
pub use config::{
    ConfigError, EngineConfig, InstrumentConfig, DEFAULT_MAX_ORDERS, DEFAULT_MAX_QUANTITY,
    MAX_LEVELS_PER_BOOK, MAX_POOL_CAPACITY,
};
pub use engine::{Engine, OrderView};
pub use huge_page_vec::{HugePageVec, HUGE_PAGE_BYTES};
pub use invariants::InvariantViolation;
pub use report::{CountingSink, Liquidity, RejectReason, Report, ReportKind, ReportSink};
pub use snapshot::{SnapshotError, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use state_hash::{StateHasher, SIDE_END};
