//! `peregrine feed`: publish a journal as the sequenced feed (MoldUDP64 +
//! re-request server) without a server: a cluster follower or a replay
//! host publishing from its own journal, or a test that needs a feed.
//!
//! The publisher never goes past the watermark. Without `--follow` it is
//! the journal's last complete record at start; with `--follow` a thread
//! walks the journal's written end (a `JournalTail`, which treats a slot
//! that is zero or fails its CRC as not written yet) and raises the
//! watermark only over complete records.

use super::tail::config_table;
use anyhow::Context;
use clap::Args;
use peregrine_feed::{FeedConfig, FeedService, Watermark};
use peregrine_journal::{Journal, JournalTail};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct FeedArgs {
    /// Journal directory to publish.
    #[arg(long)]
    journal: PathBuf,
    /// Config file whose [feed] table configures the publisher
    /// (destinations, session, heartbeat, re-request server).
    #[arg(long)]
    config: PathBuf,
    /// First global sequence to publish (default: the journal's first).
    #[arg(long)]
    from: Option<u64>,
    /// Publish nothing past this sequence (the watermark never exceeds it).
    #[arg(long)]
    to: Option<u64>,
    /// Keep following the journal as another process appends to it.
    #[arg(long)]
    follow: bool,
    /// With --follow: how often the journal's written end is re-read.
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    follow_interval: Duration,
}

/// The `[feed]` table of `path`.
pub fn feed_config(path: &Path) -> anyhow::Result<FeedConfig> {
    let t = config_table(path, "feed")?.with_context(|| format!("{} has no [feed] table", path.display()))?;
    t.try_into()
        .with_context(|| format!("{}: the [feed] table", path.display()))
}

/// Raises `watermark` to the last complete record of the journal in `dir`
/// every `interval` until `stop`.
fn follow(
    dir: PathBuf,
    watermark: Watermark,
    cap: u64,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut tail = JournalTail::open(&dir, watermark.load(Ordering::Acquire) + 1)
        .with_context(|| format!("following {}", dir.display()))?;
    while !stop.load(Ordering::Relaxed) {
        while tail.read(cap.saturating_add(1), 1 << 16, |_| {})? > 0 {}
        watermark.fetch_max(tail.next_seq() - 1, Ordering::Release);
        std::thread::sleep(interval);
    }
    Ok(())
}

pub fn run(a: FeedArgs) -> anyhow::Result<()> {
    let cfg = feed_config(&a.config)?;
    let rec =
        Journal::open_read_only(&a.journal).with_context(|| format!("reading {}", a.journal.display()))?;
    let cap = a.to.unwrap_or(u64::MAX);
    let last = rec
        .last_seq()
        .unwrap_or(rec.first_seq().saturating_sub(1))
        .min(cap);
    let from = a.from.unwrap_or(rec.first_seq()).max(1);
    drop(rec);
    let watermark: Watermark = Arc::new(AtomicU64::new(last));
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::Relaxed)).context("installing signal handler")?;
    let destinations = cfg.destinations.clone();
    let handle = FeedService::spawn(
        cfg,
        a.journal.clone(),
        from,
        watermark.clone(),
        None,
        stop.clone(),
    )?;
    let follower = a.follow.then(|| {
        let (dir, wm, st, every) = (
            a.journal.clone(),
            watermark.clone(),
            stop.clone(),
            a.follow_interval,
        );
        std::thread::Builder::new()
            .name("feed-follow".into())
            .spawn(move || {
                let r = follow(dir, wm, cap, every, st.clone());
                if r.is_err() {
                    // The publisher would otherwise serve a frozen watermark forever.
                    st.store(true, Ordering::Relaxed);
                }
                r
            })
    });
    let follower = follower.transpose().context("spawning the journal follower")?;
    println!(
        "feed publishing {} from sequence {from}, watermark {last}{} to {destinations:?}, re-requests at {}",
        a.journal.display(),
        if a.follow { " (following)" } else { "" },
        handle.rerequest_addr().map_or("-".into(), |r| r.to_string())
    );
    println!("feed ready");
    let counters = handle.join()?;
    stop.store(true, Ordering::Relaxed);
    if let Some(f) = follower {
        f.join()
            .map_err(|_| anyhow::anyhow!("journal follower panicked"))??;
    }
    let r = &counters.rerequest;
    println!(
        "feed stopped: {} records in {} packets ({} bytes), {} heartbeats, next sequence {}, {} sends retried, {} send errors",
        counters.records,
        counters.packets,
        counters.bytes,
        counters.heartbeats,
        counters.next_seq,
        counters.would_block,
        counters.send_errors
    );
    println!(
        "feed re-requests: {} received, {} served with {} messages; ignored: {} other session, {} future, {} unavailable; {} rate limited, {} malformed, {} answers refused by the socket",
        r.received,
        r.served,
        r.messages,
        r.ignored_session,
        r.ignored_future,
        r.ignored_unavailable,
        r.rate_limited,
        r.malformed,
        r.send_failed
    );
    println!(
        "feed publisher lag (publish - sequencer_ns): p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns over {} records",
        counters.lag_p50_ns, counters.lag_p99_ns, counters.lag_p999_ns, counters.lag_max_ns, counters.lag_samples
    );
    Ok(())
}
