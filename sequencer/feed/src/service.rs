//! [`FeedService`]: the feed thread. One thread runs both streams and both
//! re-request servers, so nothing is shared but the watermark (read) and
//! the counters (written now and then, never waited for).
//!
//! Each round: send what is queued; if the queues are short, read up to
//! [`READ_BATCH`] records below the watermark from the journal tail, pack
//! them (and the market-data blocks the [`PublicOutput`] derives from
//! them) into packets and send; heartbeats when due; answer up to
//! [`REQUESTS_PER_ROUND`] re-requests per server. A lagging feed therefore
//! catches up in full packets, and a socket that pushes back stops the
//! journal reads instead of losing anything. Idle rounds spin briefly,
//! then sleep [`IDLE_SLEEP`] between polls (the feed is not on the order
//! path; pin it with `core` and it still sleeps when idle).
//!
//! Publisher lag, per record: the feed's clock reading of the round that
//! packs it (read once per round, again if a record is newer than it)
//! minus the record's `sequencer_ns`. Both are the host's
//! `CLOCK_MONOTONIC` (`peregrine_netio::clock::now_ns`, what the sequencer
//! stamps), so the figure means something only when the feed runs on the
//! host that sequenced (a cluster follower's journal carries the leader's
//! stamps).

use crate::block::{
    emit_sequenced, FeedRecord, MarketBlock, LEVEL_BLOCK_LEN, MAX_BLOCK_LEN, RECORD_BLOCK_LEN,
};
use crate::publisher::{PacketSink, Publisher, PublisherStats};
use crate::rerequest::{JournalSource, RerequestServer, RerequestStats, RetainedBlocks};
use crate::{FeedConfig, FeedError, PublicOutput, Watermark};
use hdrhistogram::Histogram;
use peregrine_journal::JournalTail;
use peregrine_wire::moldudp64::session_name;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most records read from the journal per round.
pub const READ_BATCH: usize = 1024;
/// Packets queued per stream beyond which the journal is not read.
pub const MAX_QUEUED_PACKETS: usize = 256;
/// Re-requests handled per server per round.
pub const REQUESTS_PER_ROUND: usize = 64;
/// Idle rounds spun before sleeping.
pub const IDLE_SPINS: u32 = 200;
/// Sleep between idle rounds after that.
pub const IDLE_SLEEP: Duration = Duration::from_micros(50);
/// End of Session packets sent per stream at stop.
pub const END_OF_SESSION_REPEATS: u32 = 3;
/// How often the shared counters are refreshed.
const COUNTERS_EVERY: Duration = Duration::from_millis(50);

/// A snapshot of the feed thread's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedCounters {
    /// Order stream: data packets sent.
    pub packets: u64,
    /// Order stream: records published.
    pub records: u64,
    /// Order stream: heartbeats sent.
    pub heartbeats: u64,
    /// Bytes sent on both streams (all destinations, answers excluded).
    pub bytes: u64,
    /// Order stream: next global sequence to publish.
    pub next_seq: u64,
    /// Order stream: sequences passed over because the journal no longer
    /// held them when the feed reached them (a cluster node that installed
    /// its leader's snapshot); consumers get them from another node.
    pub skipped: u64,
    /// Records committed (at or below the watermark) not yet published.
    pub lag: u64,
    /// Sends refused for now and retried (both streams).
    pub would_block: u64,
    /// Sends that failed otherwise (both streams).
    pub send_errors: u64,
    /// Order stream re-request server.
    pub rerequest: RerequestStats,
    /// Market data: data packets sent.
    pub md_packets: u64,
    /// Market data: blocks published.
    pub md_blocks: u64,
    /// Market data: heartbeats sent.
    pub md_heartbeats: u64,
    /// Market data: next sequence.
    pub md_next_seq: u64,
    /// Market data: the stream was ended early (End of Session) because
    /// its derivation could not continue past skipped records.
    pub md_ended: bool,
    /// Market-data re-request server.
    pub md_rerequest: RerequestStats,
    /// Publisher lag samples (one per record).
    pub lag_samples: u64,
    /// Publisher lag, ns: median.
    pub lag_p50_ns: u64,
    /// 99th percentile.
    pub lag_p99_ns: u64,
    /// 99.9th percentile.
    pub lag_p999_ns: u64,
    /// Maximum.
    pub lag_max_ns: u64,
}

/// The feed thread's entry point.
#[derive(Debug)]
pub struct FeedService;

/// The running feed thread.
#[derive(Debug)]
pub struct FeedHandle {
    thread: Option<JoinHandle<Result<FeedCounters, FeedError>>>,
    shared: Arc<Mutex<FeedCounters>>,
    rerequest_addr: Option<SocketAddr>,
    md_rerequest_addr: Option<SocketAddr>,
}

impl FeedHandle {
    /// The latest snapshot (refreshed by the thread every ~50 ms).
    pub fn counters(&self) -> FeedCounters {
        match self.shared.lock() {
            Ok(c) => *c,
            Err(p) => *p.into_inner(),
        }
    }

    /// The order stream's re-request server address, as bound.
    pub fn rerequest_addr(&self) -> Option<SocketAddr> {
        self.rerequest_addr
    }

    /// The market-data re-request server address, as bound.
    pub fn md_rerequest_addr(&self) -> Option<SocketAddr> {
        self.md_rerequest_addr
    }

    /// Waits for the thread (set `stop` first) and returns its final
    /// counters, or the error that ended it.
    pub fn join(mut self) -> Result<FeedCounters, FeedError> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(FeedError::Thread("the feed thread panicked".into())),
            None => Err(FeedError::Thread("already joined".into())),
        }
    }
}

/// The sending socket of both streams, with the multicast settings.
fn publisher_socket(cfg: &FeedConfig) -> Result<UdpSocket, FeedError> {
    let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let io = |what: &'static str| move |e| FeedError::io(what, any, e);
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io("feed socket"))?;
    if let Some(ifc) = cfg.interface {
        s.set_multicast_if_v4(&ifc).map_err(io("IP_MULTICAST_IF"))?;
    }
    s.set_multicast_ttl_v4(cfg.multicast_ttl)
        .map_err(io("IP_MULTICAST_TTL"))?;
    s.set_multicast_loop_v4(cfg.multicast_loop)
        .map_err(io("IP_MULTICAST_LOOP"))?;
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&any.into()).map_err(io("bind feed socket"))?;
    s.set_nonblocking(true).map_err(io("O_NONBLOCK"))?;
    Ok(s.into())
}

/// Everything the thread owns.
struct Feed {
    tail: JournalTail,
    order: Publisher,
    order_rr: Option<(RerequestServer, JournalSource)>,
    md: Option<(Publisher, RetainedBlocks, Option<RerequestServer>)>,
    output: Option<Box<dyn PublicOutput>>,
    watermark: Watermark,
    lag: Histogram<u64>,
    shared: Arc<Mutex<FeedCounters>>,
    /// How long re-requests are still answered after End of Session once
    /// they stop coming.
    linger: Duration,
    /// The market-data stream ended early (see [`FeedCounters::md_ended`]).
    md_ended: bool,
}

impl FeedService {
    /// Opens the journal tail at `from_seq`, binds the sockets (errors are
    /// returned here, before any thread starts), then starts the feed
    /// thread: it publishes every record with `global_seq <= watermark`
    /// from `from_seq` on, and, when `cfg.market_data` is set and
    /// `public_output` given, the market-data blocks derived from them,
    /// until `stop` is set. At stop it publishes what is still below the
    /// watermark, sends End of Session (count 0xFFFF, next sequence)
    /// [`END_OF_SESSION_REPEATS`] times on every stream and returns its
    /// counters through [`FeedHandle::join`].
    ///
    /// The order stream's sequence is the global sequence, so a feed
    /// spawned again at the next sequence continues the same stream. The
    /// market-data stream starts at `public_output`'s
    /// [`next_block_seq`](PublicOutput::next_block_seq): 1 for a fresh
    /// derivation, further for one that replayed the records before
    /// `from_seq`, which continues the stream's numbering. After End of
    /// Session the re-request servers answer until requests stop for
    /// `rerequest_linger_ms`.
    pub fn spawn(
        cfg: FeedConfig,
        journal_dir: PathBuf,
        from_seq: u64,
        watermark: Watermark,
        public_output: Option<Box<dyn PublicOutput>>,
        stop: Arc<AtomicBool>,
    ) -> Result<FeedHandle, FeedError> {
        cfg.validate().map_err(FeedError::Config)?;
        if from_seq == 0 {
            return Err(FeedError::Config("feed: from_seq must be at least 1".into()));
        }
        let tail = JournalTail::open(&journal_dir, from_seq)?;
        let socket = publisher_socket(&cfg)?;
        let heartbeat = Duration::from_millis(cfg.heartbeat_ms);
        let sink = |s: &UdpSocket| -> Result<Box<dyn PacketSink>, FeedError> {
            let c = s
                .try_clone()
                .map_err(|e| FeedError::io("clone feed socket", SocketAddr::from(([0, 0, 0, 0], 0)), e))?;
            Ok(Box::new(c))
        };
        let order = Publisher::new(
            &cfg.session,
            from_seq,
            sink(&socket)?,
            cfg.destinations.clone(),
            cfg.max_payload,
            heartbeat,
        );
        let order_rr = match cfg.rerequest {
            Some(addr) => Some((
                RerequestServer::bind(
                    addr,
                    session_name(&cfg.session),
                    cfg.rerequest_max_count,
                    cfg.max_payload,
                    RECORD_BLOCK_LEN,
                    cfg.rerequest_rate,
                )?
                .with_max_packets(cfg.rerequest_max_packets),
                JournalSource::open(&journal_dir)?,
            )),
            None => None,
        };
        // A derivation caught up on the records before `from_seq` continues
        // the market-data stream where those records left it.
        let md_first = public_output.as_ref().map_or(1, |o| o.next_block_seq());
        let md = match &cfg.market_data {
            Some(m) => {
                let p = Publisher::new(
                    &m.session,
                    md_first,
                    sink(&socket)?,
                    m.destinations.clone(),
                    cfg.max_payload,
                    heartbeat,
                );
                let rr = match m.rerequest {
                    Some(addr) => Some(
                        RerequestServer::bind(
                            addr,
                            session_name(&m.session),
                            cfg.rerequest_max_count,
                            cfg.max_payload,
                            LEVEL_BLOCK_LEN,
                            cfg.rerequest_rate,
                        )?
                        .with_max_packets(cfg.rerequest_max_packets),
                    ),
                    None => None,
                };
                Some((p, RetainedBlocks::new(m.retain, md_first), rr))
            }
            None => None,
        };
        if public_output.is_some() && md.is_none() {
            tracing::warn!("feed: a public output was given but [feed.market_data] is not set; no market data is published");
        }
        let rerequest_addr = order_rr.as_ref().map(|(s, _)| s.local_addr());
        tracing::info!(
            session = %cfg.session,
            destinations = ?cfg.destinations,
            rerequest = ?rerequest_addr,
            from_seq,
            "feed starting"
        );
        let md_rerequest_addr = md
            .as_ref()
            .and_then(|(_, _, r)| r.as_ref().map(|s| s.local_addr()));
        let shared = Arc::new(Mutex::new(FeedCounters {
            next_seq: from_seq,
            md_next_seq: md_first,
            ..FeedCounters::default()
        }));
        let lag = Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .map_err(|e| FeedError::Config(format!("lag histogram: {e}")))?;
        let mut feed = Feed {
            tail,
            order,
            order_rr,
            md,
            output: public_output,
            watermark,
            lag,
            shared: shared.clone(),
            linger: Duration::from_millis(cfg.rerequest_linger_ms),
            md_ended: false,
        };
        let core = cfg.core;
        let thread = std::thread::Builder::new()
            .name("peregrine-feed".into())
            .spawn(move || {
                if let Some(id) = core {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                        tracing::warn!(core = id, "feed thread not pinned");
                    }
                }
                let r = feed.run(&stop);
                if let Err(e) = &r {
                    tracing::error!(error = %e, "feed thread stopped");
                }
                r
            })
            .map_err(|e| FeedError::Thread(format!("spawn: {e}")))?;
        Ok(FeedHandle {
            thread: Some(thread),
            shared,
            rerequest_addr,
            md_rerequest_addr,
        })
    }
}

impl Feed {
    fn run(&mut self, stop: &AtomicBool) -> Result<FeedCounters, FeedError> {
        let mut idle = 0u32;
        let mut last_counters = Instant::now();
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let now = Instant::now();
            let limit = self.watermark.load(Ordering::Acquire).saturating_add(1);
            let mut work = self.publish_round(limit, now)?;
            work |= self.order.heartbeat_if_due(now);
            if let (Some((p, _, _)), false) = (&mut self.md, self.md_ended) {
                work |= p.heartbeat_if_due(now);
            }
            work |= self.serve_requests(now)?;
            if stopping {
                // Everything committed goes out before End of Session.
                let deadline = Instant::now() + Duration::from_secs(5);
                while self.publish_round(limit, Instant::now())? && Instant::now() < deadline {}
                self.order
                    .end_of_session(Duration::from_secs(1), END_OF_SESSION_REPEATS);
                if let (Some((p, _, _)), false) = (&mut self.md, self.md_ended) {
                    p.end_of_session(Duration::from_secs(1), END_OF_SESSION_REPEATS);
                }
                // Consumers that learnt the end from End of Session may
                // still be filling gaps: answer until they go quiet.
                let mut last_request = Instant::now();
                while last_request.elapsed() < self.linger {
                    if self.serve_requests(Instant::now())? {
                        last_request = Instant::now();
                    } else {
                        std::thread::sleep(IDLE_SLEEP);
                    }
                }
                let c = self.counters();
                match self.shared.lock() {
                    Ok(mut g) => *g = c,
                    Err(p) => *p.into_inner() = c,
                }
                return Ok(c);
            }
            if now.duration_since(last_counters) >= COUNTERS_EVERY {
                last_counters = now;
                let c = self.counters();
                self.store(c);
            }
            if work {
                idle = 0;
            } else if idle < IDLE_SPINS {
                idle += 1;
                std::hint::spin_loop();
            } else {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
    }

    /// Sends queued packets, then reads and packs a batch if the queues
    /// allow. True when anything was read or sent.
    fn publish_round(&mut self, limit: u64, now: Instant) -> Result<bool, FeedError> {
        let before = self.order.stats().packets;
        let mut drained = self.order.flush(now);
        if let Some((p, _, _)) = &mut self.md {
            drained &= p.flush(now);
        }
        let md_queued = self.md.as_ref().map_or(0, |(p, _, _)| p.queued_packets());
        let mut read = 0;
        if self.order.queued_packets() < MAX_QUEUED_PACKETS && md_queued < MAX_QUEUED_PACKETS {
            let mut now_ns = peregrine_netio::clock::now_ns();
            let Feed {
                tail,
                order,
                md,
                output,
                lag,
                ..
            } = self;
            let mut block = [0u8; RECORD_BLOCK_LEN];
            let mut md_block = [0u8; MAX_BLOCK_LEN];
            let result = tail.read(limit, READ_BATCH, |r| {
                emit_sequenced(r, &mut block);
                let _ = order.push(&block);
                if r.sequencer_ns > now_ns {
                    // Sequenced after this round's clock reading.
                    now_ns = peregrine_netio::clock::now_ns();
                }
                let _ = lag.record(now_ns.saturating_sub(r.sequencer_ns).max(1));
                if let (Some(out), Some((mdp, retained, _))) = (output.as_mut(), md.as_mut()) {
                    let rec = FeedRecord::from_sequenced_record(r);
                    out.on_record(&rec, &mut |m: &MarketBlock| {
                        let n = m.emit(&mut md_block);
                        if n > 0 && mdp.push(&md_block[..n]).is_some() {
                            retained.push(&md_block[..n]);
                        }
                    });
                }
            });
            read = match result {
                Ok(n) => n,
                Err(peregrine_journal::JournalError::OutOfRange { held_first, .. })
                    if held_first > self.tail.next_seq() =>
                {
                    self.rebase(held_first)?;
                    1
                }
                Err(e) => return Err(e.into()),
            };
            self.order.seal();
            self.order.flush(now);
            if let Some((p, _, _)) = &mut self.md {
                p.seal();
                p.flush(now);
            }
        }
        Ok(read > 0 || self.order.stats().packets != before || !drained)
    }

    /// The journal no longer holds the records from the tail's position
    /// to `held_first - 1`: a cluster node that installed its leader's
    /// snapshot dropped its log and restarted it after the snapshot. The
    /// order stream jumps to `held_first` (its numbers are global
    /// sequences, so a gap is all consumers see, and they fill it from
    /// another node). The market-data derivation moves to the snapshot's
    /// state if it can, and the stream jumps to the number that state
    /// implies; if it cannot, the stream ends rather than publish numbers
    /// other nodes would not.
    fn rebase(&mut self, held_first: u64) -> Result<(), FeedError> {
        let from = self.tail.next_seq();
        // The journal may move again (another snapshot) while we look.
        let mut held_first = held_first;
        loop {
            match self.tail.seek(held_first) {
                Ok(()) => break,
                Err(peregrine_journal::JournalError::OutOfRange { held_first: h, .. }) if h > held_first => {
                    held_first = h;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let skipped = self.order.skip_to(held_first);
        tracing::warn!(
            from,
            held_first,
            skipped,
            "feed: the journal no longer holds the next records (a snapshot replaced the log); the order stream skips them"
        );
        let Some(out) = self.output.as_mut() else {
            return Ok(());
        };
        match out.rebase(held_first) {
            Ok(next_block) => {
                if let Some((p, retained, _)) = &mut self.md {
                    let skipped = p.skip_to(next_block);
                    retained.skip_to(next_block);
                    tracing::info!(
                        next_block,
                        skipped,
                        "feed: market data continues from the snapshot's state"
                    );
                }
            }
            Err(why) => {
                tracing::error!(reason = %why, "feed: the market-data derivation cannot continue; ending its stream");
                self.output = None;
                if let Some((p, _, _)) = &mut self.md {
                    // A short drain: the order stream is waiting.
                    p.end_of_session(Duration::from_millis(20), END_OF_SESSION_REPEATS);
                }
                self.md_ended = true;
            }
        }
        Ok(())
    }

    fn serve_requests(&mut self, now: Instant) -> Result<bool, FeedError> {
        let mut n = 0;
        if let Some((server, source)) = &mut self.order_rr {
            n += server.poll(source, self.order.next_seq(), now, REQUESTS_PER_ROUND)?;
        }
        if let Some((p, retained, Some(server))) = &mut self.md {
            n += server.poll(retained, p.next_seq(), now, REQUESTS_PER_ROUND)?;
        }
        Ok(n > 0)
    }

    fn counters(&self) -> FeedCounters {
        let o: PublisherStats = self.order.stats();
        let m = self.md.as_ref().map(|(p, _, _)| p.stats()).unwrap_or_default();
        let wm = self.watermark.load(Ordering::Acquire);
        FeedCounters {
            packets: o.packets,
            records: o.blocks,
            heartbeats: o.heartbeats,
            bytes: o.bytes + m.bytes,
            next_seq: self.order.next_seq(),
            skipped: o.skipped,
            lag: wm.saturating_add(1).saturating_sub(self.order.next_seq()),
            would_block: o.would_block + m.would_block,
            send_errors: o.send_errors + m.send_errors,
            rerequest: self.order_rr.as_ref().map(|(s, _)| s.stats()).unwrap_or_default(),
            md_packets: m.packets,
            md_blocks: m.blocks,
            md_heartbeats: m.heartbeats,
            md_next_seq: self.md.as_ref().map_or(1, |(p, _, _)| p.next_seq()),
            md_ended: self.md_ended,
            md_rerequest: self
                .md
                .as_ref()
                .and_then(|(_, _, r)| r.as_ref().map(|s| s.stats()))
                .unwrap_or_default(),
            lag_samples: self.lag.len(),
            lag_p50_ns: self.lag.value_at_quantile(0.5),
            lag_p99_ns: self.lag.value_at_quantile(0.99),
            lag_p999_ns: self.lag.value_at_quantile(0.999),
            lag_max_ns: self.lag.max(),
        }
    }

    /// Publishes a snapshot unless a reader holds the lock right now.
    fn store(&self, c: FeedCounters) {
        if let Ok(mut g) = self.shared.try_lock() {
            *g = c;
        }
    }
}
