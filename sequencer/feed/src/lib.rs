//! The sequenced feed: Peregrine's totally ordered stream, published from
//! the journal as MoldUDP64, with re-requests, and consumed in order.
//!
//! * [`block`]: the blocks carried (order-stream records, market-data
//!   trades and level updates), fixed-size, big-endian, documented in
//!   `docs/PROTOCOL.md` ("Sequenced feed (MoldUDP64)").
//! * [`Publisher`]: one stream's packing and sending (never drops: a
//!   refused send is retried, the stream lags instead).
//! * [`RerequestServer`]: answers retransmission requests, rate-limited.
//! * [`FeedService`]: the feed thread that follows the journal
//!   ([`peregrine_journal::JournalTail`]) up to a [`Watermark`] and runs
//!   both streams and their re-request servers.
//! * [`FeedConsumer`] (over [`Reassembler`]): joins, fills gaps by
//!   re-request, delivers each sequence exactly once, in order.
//!
//! Why the journal and not a ring from the sequencer: the journal already
//! holds every sequenced record in order, durable and readable by any
//! number of readers without slowing the sequencer; re-requests of any age
//! are answered from the same files; and a feed restarted at any sequence
//! resumes exactly where it was. The watermark keeps it from publishing
//! what a cluster may still discard.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod block;
mod config;
mod consumer;
mod publisher;
mod reassembly;
mod rerequest;
mod rerequest_targets;
mod service;

pub use block::{BlockError, BookSide, FeedRecord, MarketBlock, RecordBlock};
pub use config::{ConsumerConfig, FeedConfig, MarketDataFeedConfig};
pub use consumer::FeedConsumer;
pub use publisher::{NullSink, PacketSink, Publisher, PublisherStats};
pub use reassembly::{ConsumerStats, Reassembler};
pub use rerequest::{JournalSource, RerequestServer, RerequestStats, RetainedBlocks, RetransmitSource};
pub use rerequest_targets::RerequestTargets;
pub use service::{
    FeedCounters, FeedHandle, FeedService, END_OF_SESSION_REPEATS, IDLE_SLEEP, IDLE_SPINS,
    MAX_QUEUED_PACKETS, READ_BATCH, REQUESTS_PER_ROUND,
};

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Highest global sequence that may be published: records with
/// `global_seq <= watermark` are committed (durable, or replicated by the
/// cluster). The server stores it with `Release`; the feed loads it with
/// `Acquire`. 0 = nothing yet.
pub type Watermark = Arc<AtomicU64>;

/// Turns order-stream records into market-data blocks. The server
/// implements it with a replica matching engine (only it can decode
/// messages into engine commands); `on_record` is called once per record,
/// in sequence order, on the feed thread, and may `emit` any number of
/// blocks (each gets the next market-data sequence).
pub trait PublicOutput: Send {
    /// Derives the blocks caused by `rec`.
    fn on_record(&mut self, rec: &FeedRecord, emit: &mut dyn FnMut(&MarketBlock));
    /// Market-data sequence of the next block this derivation emits: 1 for
    /// one that starts with the order stream; more for one that has already
    /// been fed the records before the feed's first (a restarted server),
    /// so the stream continues under the same numbers.
    fn next_block_seq(&self) -> u64 {
        1
    }
    /// The journal no longer holds the records from the feed's position
    /// up to `held_first - 1` (a cluster node that installed its leader's
    /// snapshot restarts its log after it). A derivation that can move to
    /// a state at or past `held_first - 1` does so and returns the
    /// market-data sequence of its next block (never lower than before);
    /// it then ignores records it already covers. An `Err` says why it
    /// cannot, and the feed ends the market-data stream (End of Session)
    /// rather than publish numbers that would differ from other nodes'.
    fn rebase(&mut self, held_first: u64) -> Result<u64, String> {
        Err(format!(
            "this derivation cannot skip to sequence {held_first} without the records before it"
        ))
    }
}

/// Everything that can go wrong in the feed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// A socket operation failed.
    #[error("feed: {what} ({addr}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The address involved.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] peregrine_journal::JournalError),
    /// Invalid settings.
    #[error("{0}")]
    Config(String),
    /// The feed thread could not start or died.
    #[error("feed thread: {0}")]
    Thread(String),
}

impl FeedError {
    pub(crate) fn io(what: &'static str, addr: SocketAddr, source: std::io::Error) -> FeedError {
        FeedError::Io { what, addr, source }
    }
}
