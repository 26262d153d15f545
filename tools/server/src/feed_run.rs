//! The sequenced feed beside a node's sequencer: its thread reads the
//! journal up to the watermark the sequencing thread raises (journaled
//! records on a single node, committed ones on a cluster node) and
//! publishes them, so sequencing never waits for it.
//!
//! The feed outlives a cluster node's incarnations: the journal directory
//! and the watermark stay the same while the sequencing side is rebuilt,
//! and a rebuilt node's watermark only ever moves forward.

use crate::config::ServeConfig;
use crate::error::ServeError;
use crate::market_data::{MarketDataBuilder, SnapshotReader};
use crate::snapshot::engine_config;
use peregrine_feed::{FeedCounters, FeedHandle, FeedService, PublicOutput, Watermark};
use peregrine_journal::Journal;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A running feed thread.
pub struct FeedRun {
    handle: FeedHandle,
    stop: Arc<AtomicBool>,
    watermark: Watermark,
    note: String,
}

impl FeedRun {
    /// Starts the feed of `cfg.feed` (if any) over the journal in
    /// `journal_dir`, publishing from `first_seq` (the first sequence this
    /// run will sequence or commit: older records are served by the
    /// re-request server). With a market-data stream, the replica engine
    /// first replays the journal before `first_seq` so the stream continues
    /// under the same numbers it had; a journal that no longer starts at 1
    /// is replayed from the state snapshot `snapshots` gives (a cluster
    /// node's), which also lets the replica follow the journal when it is
    /// later replaced by a snapshot.
    pub fn start(
        cfg: &ServeConfig,
        journal_dir: &Path,
        first_seq: u64,
        snapshots: Option<SnapshotReader>,
    ) -> Result<Option<FeedRun>, ServeError> {
        let Some(feed) = &cfg.feed else {
            return Ok(None);
        };
        let journal_err = |source| ServeError::Journal {
            dir: journal_dir.to_path_buf(),
            source,
        };
        let mut note = format!("feed from sequence {first_seq}");
        let output: Option<Box<dyn PublicOutput>> = match &feed.market_data {
            Some(_) => {
                let mut b = MarketDataBuilder::new(&engine_config(cfg))?;
                if let Some(r) = snapshots {
                    b = b.with_snapshots(r);
                }
                if first_seq > 1 {
                    let journal = Journal::open_read_only(journal_dir).map_err(journal_err)?;
                    if journal.first_seq() > 1 {
                        // The records before the journal's first are in the
                        // snapshot only: start from its state and position.
                        match b.rebase(journal.first_seq()) {
                            Ok(_) => note.push_str(&format!(
                                "; market data from the snapshot at sequence {}",
                                b.last_seq()
                            )),
                            Err(why) => tracing::warn!(
                                first = journal.first_seq(),
                                reason = %why,
                                "journal compacted and no snapshot gives the market-data position: \
                                 the market-data stream restarts at 1 from an empty derivation"
                            ),
                        }
                    }
                    if journal.first_seq() <= b.last_seq() + 1 {
                        b.catch_up(journal.range(b.last_seq() + 1..first_seq));
                    }
                }
                note.push_str(&format!("; market data from block {}", b.blocks_emitted() + 1));
                Some(Box::new(b))
            }
            None => None,
        };
        let watermark: Watermark = Arc::new(AtomicU64::new(first_seq.saturating_sub(1)));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = FeedService::spawn(
            feed.clone(),
            journal_dir.to_path_buf(),
            first_seq,
            Arc::clone(&watermark),
            output,
            Arc::clone(&stop),
        )?;
        if let Some(a) = handle.rerequest_addr() {
            note.push_str(&format!("; re-requests on {a}"));
        }
        Ok(Some(FeedRun {
            handle,
            stop,
            watermark,
            note,
        }))
    }

    /// What the sequencing thread raises (see
    /// [`RuntimeConfig::watermark`](crate::runtime::RuntimeConfig::watermark)).
    pub fn watermark(&self) -> Watermark {
        Arc::clone(&self.watermark)
    }

    /// The order stream's re-request server address (port 0 resolved).
    pub fn rerequest_addr(&self) -> Option<SocketAddr> {
        self.handle.rerequest_addr()
    }

    /// A line for the start-up log.
    pub fn note(&self) -> &str {
        &self.note
    }

    /// Counters as of the feed thread's last refresh.
    pub fn counters(&self) -> FeedCounters {
        self.handle.counters()
    }

    /// Stops the feed once the sequencing side has stopped (the watermark
    /// is final): it publishes everything up to the watermark, ends its
    /// sessions, and returns its counters.
    pub fn finish(self) -> Result<FeedCounters, ServeError> {
        self.stop.store(true, Ordering::Release);
        Ok(self.handle.join()?)
    }
}

/// One line of feed counters for the shutdown report.
pub fn format_feed(c: &FeedCounters) -> String {
    let us = |ns: u64| ns as f64 / 1_000.0;
    format!(
        "feed: published {} records in {} packets (next seq {}), heartbeats {}, lag {} records; \
         publisher lag (sequenced -> sent) p50 {:.1} us p99 {:.1} us p99.9 {:.1} us max {:.1} us over {} records; \
         skipped (not held) {}; sends retried {} failed {}; re-requests {} served {} ({} messages), ignored: future {} other session {} \
         unavailable {}, rate-limited {}, malformed {}; market data: {} blocks in {} packets (next seq {}){}",
        c.records,
        c.packets,
        c.next_seq,
        c.heartbeats,
        c.lag,
        us(c.lag_p50_ns),
        us(c.lag_p99_ns),
        us(c.lag_p999_ns),
        us(c.lag_max_ns),
        c.lag_samples,
        c.skipped,
        c.would_block,
        c.send_errors,
        c.rerequest.received,
        c.rerequest.served,
        c.rerequest.messages,
        c.rerequest.ignored_future,
        c.rerequest.ignored_session,
        c.rerequest.ignored_unavailable,
        c.rerequest.rate_limited,
        c.rerequest.malformed,
        c.md_blocks,
        c.md_packets,
        c.md_next_seq,
        if c.md_ended {
            ", ended early: its derivation could not follow the journal"
        } else {
            ""
        },
    )
}
