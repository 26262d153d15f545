//! Thread layouts: who polls what, on which core.
//!
//! - `shared`: one thread polls every gateway's receive side, the
//!   sequencer, then every gateway's transmit side, round after round. No
//!   cross-core handoff at all: the right layout for small machines and the
//!   only sensible one on a 2-core box with a client beside it.
//! - `dedicated`: the sequencer and each gateway on its own pinned core,
//!   talking only through the SPSC rings: for bare metal with isolated cores.
//!
//! Every loop checks a shared stop flag (a relaxed load of a line nobody
//! writes until shutdown) and hands its work count to the idle strategy.

use crate::counters_file::{CounterBlock, CountersFile, LatencyBlock};
use crate::idle::{IdleKind, IdleStrategy, Idler};
use crate::pinning::{check_cores, pin_current, PinError};
use crate::stage::{sequencer_names, SequencerStage, StageStop, LOOP_NAMES};
use peregrine_gateway::GatewayCounters;
use peregrine_gateway::LatencyBuckets;
use peregrine_gateway::{GatewayLoop, SequencerRings};
use peregrine_netio::PortCounters;
use peregrine_sequencer::{Application, AttachedJournal, ReadyLatency, Sequencer, SequencerCounters};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Thread layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// Everything on one thread.
    #[default]
    Shared,
    /// Sequencer and each gateway on their own threads.
    Dedicated,
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "shared" => Ok(Layout::Shared),
            "dedicated" => Ok(Layout::Dedicated),
            o => Err(format!("unknown layout {o:?} (shared, dedicated)")),
        }
    }
}

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RuntimeConfig {
    /// Thread layout.
    pub layout: Layout,
    /// Cores to pin to: `shared` uses the first; `dedicated` gives the first
    /// to the sequencer and the next ones to gateways in order. Threads
    /// beyond the list run unpinned. Empty: nothing pinned.
    pub cores: Vec<usize>,
    /// Idle strategy for every loop.
    pub idle: IdleKind,
    /// Shared-memory counters file for `peregrine stat` (none if absent).
    pub counters_file: Option<std::path::PathBuf>,
    /// Record the sequencer's reply-ready latency (the gateways' switch is
    /// [`GatewayOptions::latency_histograms`](peregrine_gateway::options::GatewayOptions)).
    pub latency_histograms: bool,
    /// Raised by the sequencing thread to the stage's
    /// [`publishable_seq`](SequencerStage::publishable_seq) after every
    /// round that did work (one store when it changed): what a journal
    /// reader on another thread (the sequenced feed) may publish.
    pub watermark: Option<Arc<AtomicU64>>,
    /// `shared` layout only: run the loop on this colocation's thread,
    /// round-robin with other servers' loops, instead of on a thread of its
    /// own (see [`Colocation`](crate::colocation::Colocation)).
    pub colocation: Option<crate::colocation::ColocationHandle>,
}

/// The sequencing thread's side of [`RuntimeConfig::watermark`]: stores
/// only when the value moved, so an idle loop writes nothing and the
/// reader's cache line is not pulled away needlessly.
struct WatermarkRaiser {
    shared: Option<Arc<AtomicU64>>,
    last: u64,
}

impl WatermarkRaiser {
    fn new(shared: Option<Arc<AtomicU64>>) -> Self {
        WatermarkRaiser { shared, last: 0 }
    }

    #[inline]
    fn raise<St: SequencerStage>(&mut self, stage: &St) {
        if let Some(w) = &self.shared {
            let seq = stage.publishable_seq();
            if seq > self.last {
                self.last = seq;
                w.fetch_max(seq, Ordering::Release);
            }
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A requested core does not exist, or a thread could not be pinned.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The counters file could not be created.
    #[error("counters file: {0}")]
    Counters(#[from] crate::counters_file::CountersFileError),
    /// A thread could not be started or panicked.
    #[error("thread {0} failed")]
    Thread(String),
}

/// What the server did, reported at shutdown.
#[derive(Clone, Debug, Default)]
pub struct ServerReport {
    /// Sequencer counters.
    pub sequencer: SequencerCounters,
    /// Per gateway: description, gateway counters, port counters,
    /// backend-specific port counters (text, may be empty).
    pub gateways: Vec<(String, GatewayCounters, PortCounters, String)>,
    /// Loop iterations that found work, summed over threads.
    pub busy_loops: u64,
    /// Loop iterations that found none.
    pub idle_loops: u64,
    /// The next global sequence number (last assigned + 1).
    pub next_seq: u64,
    /// Why the sequencer stopped early (journal failure, a cluster leader
    /// stepping down), if it did.
    pub failure: Option<StageStop>,
    /// Highest sequence number known durable in the journal (0: none/async).
    pub journal_durable_seq: u64,
    /// The sequenced feed's counters at its end, when it ran.
    pub feed: Option<peregrine_feed::FeedCounters>,
}

/// Runs gateways and sequencer until `stop` is set, then returns counters
/// and the application (for inspection after shutdown).
///
/// `gateways[g]` must own the gateway ends of ring pair `g` and
/// `sequencer_rings[g]` the sequencer ends. `first_seq` is the first global
/// sequence number (1 on a fresh start). Blocks the calling thread; the
/// polling loops run on threads of their own so they can be pinned.
pub fn run<A: Application + Send + 'static>(
    gateways: Vec<Box<dyn GatewayLoop>>,
    sequencer_rings: Vec<SequencerRings>,
    app: A,
    first_seq: u64,
    journal: Option<AttachedJournal>,
    config: &RuntimeConfig,
    stop: Arc<AtomicBool>,
) -> Result<(ServerReport, A), RunError> {
    let mut seq = Sequencer::new(sequencer_rings, app, first_seq, SEQUENCER_BATCH)
        .with_latency_recording(config.latency_histograms);
    if let Some(j) = journal {
        seq = seq.with_journal(j);
    }
    run_stage(gateways, seq, config, stop)
}

/// Runs gateways and a sequencing stage (a single node's sequencer or a
/// cluster node) until `stop` is set or the stage stops by itself, then
/// returns counters and the application. See [`run`].
pub fn run_stage<St: SequencerStage>(
    gateways: Vec<Box<dyn GatewayLoop>>,
    seq: St,
    config: &RuntimeConfig,
    stop: Arc<AtomicBool>,
) -> Result<(ServerReport, St::App), RunError> {
    check_cores(&config.cores)?;
    let (blocks, latency, seq_latency) = match &config.counters_file {
        Some(path) => {
            let mut layout = counters_layout(&gateways);
            layout.extend(seq.extra_layout());
            let mut titles: Vec<String> = gateways.iter().map(|g| g.describe()).collect();
            titles.push(SEQUENCER_LATENCY_TITLE.to_string());
            let file = CountersFile::create_with_latency(path, &layout, &titles)?;
            let mut latency: Vec<LatencyBlock> = file.latency_blocks();
            let seq_latency = latency.pop().map(ReadyPublisher::new);
            (
                file.blocks(),
                latency.into_iter().map(LatencyPublisher::new).collect(),
                seq_latency,
            )
        }
        None => (Vec::new(), Vec::new(), None),
    };
    match config.layout {
        Layout::Shared => run_shared(gateways, seq, config, stop, blocks, latency, seq_latency),
        Layout::Dedicated => run_dedicated(gateways, seq, config, stop, blocks, latency, seq_latency),
    }
}

/// Title of the sequencer's latency block: sequencing to reply ready.
pub const SEQUENCER_LATENCY_TITLE: &str = "sequencer";

/// Publishes the sequencer's readiness latency (see
/// [`peregrine_sequencer::ReadyLatency`]) every [`LATENCY_INTERVAL_NS`].
/// The sequencer keeps only a since-start histogram (the runtime sees it
/// through a shared reference), so the interval view is the difference
/// between this publication's since-start buckets and the previous one's.
struct ReadyPublisher {
    block: LatencyBlock,
    since_start: Box<LatencyBuckets>,
    previous: Box<LatencyBuckets>,
    interval: Box<LatencyBuckets>,
    previous_ns: u64,
    next_ns: u64,
}

impl ReadyPublisher {
    fn new(block: LatencyBlock) -> Self {
        ReadyPublisher {
            block,
            since_start: Box::default(),
            previous: Box::default(),
            interval: Box::default(),
            previous_ns: 0,
            next_ns: 0,
        }
    }

    /// Publishes when the interval is over (or always, when `force`).
    fn maybe_publish(&mut self, lat: &ReadyLatency, force: bool) {
        let now = peregrine_netio::clock::now_ns();
        if !force && now < self.next_ns {
            return;
        }
        self.next_ns = now + LATENCY_INTERVAL_NS;
        self.since_start
            .fill_from(lat.histogram(), lat.sum_ns(), lat.out_of_range());
        self.interval.set_difference(&self.since_start, &self.previous);
        let interval_ns = if self.previous_ns == 0 {
            0
        } else {
            now - self.previous_ns
        };
        self.block
            .publish(&self.since_start, &self.interval, interval_ns, now);
        std::mem::swap(&mut self.previous, &mut self.since_start);
        self.previous_ns = now;
    }
}

/// Interval between two publications of a gateway's latency histograms,
/// ns: the length of the "last interval" view `peregrine stat` shows.
/// Slower than the counters' cadence because a publication walks the
/// histograms (microseconds, not nanoseconds).
pub const LATENCY_INTERVAL_NS: u64 = 100_000_000;

/// Copies one gateway's latency histograms into its block of the counters
/// file every [`LATENCY_INTERVAL_NS`], then starts a new interval. Runs on
/// the gateway's polling thread; its buffers are allocated here, once.
struct LatencyPublisher {
    block: LatencyBlock,
    since_start: Box<LatencyBuckets>,
    interval: Box<LatencyBuckets>,
    next_ns: u64,
}

impl LatencyPublisher {
    fn new(block: LatencyBlock) -> Self {
        LatencyPublisher {
            block,
            since_start: Box::default(),
            interval: Box::default(),
            next_ns: 0,
        }
    }

    /// Publishes when the interval is over (or always, when `force`).
    /// Called when the loop's counters are due, so it reads the clock at
    /// most once a millisecond.
    fn maybe_publish(&mut self, g: &mut dyn GatewayLoop, force: bool) {
        let now = peregrine_netio::clock::now_ns();
        if !force && now < self.next_ns {
            return;
        }
        let Some(lat) = g.latency_mut() else { return };
        if self.next_ns == 0 && !force {
            // First call: the first interval starts now.
            lat.reset_interval(now);
            self.next_ns = now + LATENCY_INTERVAL_NS;
            return;
        }
        self.next_ns = now + LATENCY_INTERVAL_NS;
        lat.fill(&mut self.since_start, &mut self.interval);
        let start = lat.interval_start_ns();
        let interval_ns = if start == 0 { 0 } else { now.saturating_sub(start) };
        self.block
            .publish(&self.since_start, &self.interval, interval_ns, now);
        lat.reset_interval(now);
    }
}

/// Interval between two copies of a loop's counters into the counters
/// file, ns: `peregrine stat` is at most about this far behind.
const PUBLISH_INTERVAL_NS: u64 = 1_000_000;

/// Busy loop iterations between two clock readings of [`PublishTimer`].
const CLOCK_EVERY_BUSY: u32 = 64;

/// When a polling loop next copies its counters into the counters file.
///
/// Publishing goes by elapsed time, not by iteration count, so the file is
/// as fresh under an idle strategy that sleeps (`backoff`, whose loop may
/// iterate only a few hundred times a second) as under `spin`. The clock
/// is read on every iteration that found no work (the loop is about to
/// idle anyway) and on every [`CLOCK_EVERY_BUSY`]th busy one, so a loop
/// under load pays a clock reading only once in many polls.
struct PublishTimer {
    next_ns: u64,
    busy: u32,
}

impl PublishTimer {
    fn new() -> Self {
        PublishTimer { next_ns: 0, busy: 0 }
    }

    /// True when the counters are due, given the last iteration's `work`.
    #[inline]
    fn due(&mut self, work: usize) -> bool {
        if work != 0 {
            self.busy += 1;
            if self.busy < CLOCK_EVERY_BUSY {
                return false;
            }
        }
        self.busy = 0;
        let now = peregrine_netio::clock::now_ns();
        if now < self.next_ns {
            return false;
        }
        self.next_ns = now + PUBLISH_INTERVAL_NS;
        true
    }
}

fn counters_layout(gateways: &[Box<dyn GatewayLoop>]) -> Vec<(String, Vec<&'static str>)> {
    let mut layout = vec![("sequencer".to_string(), sequencer_names())];
    for g in gateways {
        layout.push((
            g.describe(),
            GatewayCounters::NAMES
                .iter()
                .chain(PortCounters::NAMES.iter())
                .copied()
                .collect(),
        ));
    }
    layout
}

/// Publishes the stage's blocks: the sequencer's (`blocks[0]`) and its
/// extra ones (`blocks[extra_from..]`).
#[inline]
fn publish_stage<St: SequencerStage>(blocks: &[CounterBlock], extra_from: usize, stage: &St, idle: &Idler) {
    publish_sequencer(blocks.first(), stage.sequencer(), idle);
    if let Some(extra) = blocks.get(extra_from..) {
        stage.publish_extra(extra);
    }
}

#[inline]
fn publish_sequencer<A: Application>(block: Option<&CounterBlock>, seq: &Sequencer<A>, idle: &Idler) {
    if let Some(b) = block {
        const S: usize = SequencerCounters::NAMES.len();
        let mut v = [0u64; S + LOOP_NAMES.len()];
        v[..S].copy_from_slice(&seq.counters().values());
        v[S] = idle.busy_loops();
        v[S + 1] = idle.idle_loops();
        v[S + 2] = seq.next_seq();
        if let Some(j) = seq.journal() {
            v[S + 3] = j.written_seq() * peregrine_journal::RECORD_LEN as u64;
            v[S + 4] = j.durable_seq();
            // Records written but not yet known durable (async mode: what a
            // power loss could take; durable mode: at most one poll's worth).
            v[S + 5] = j.written_seq().saturating_sub(j.durable_seq());
        }
        b.publish(&v);
    }
}

#[inline]
fn publish_gateway(block: Option<&CounterBlock>, g: &dyn GatewayLoop) {
    if let Some(b) = block {
        const G: usize = GatewayCounters::NAMES.len();
        const P: usize = PortCounters::NAMES.len();
        let mut v = [0u64; G + P];
        v[..G].copy_from_slice(&g.counters().values());
        v[G..].copy_from_slice(&g.port_counters().values());
        b.publish(&v);
    }
}

/// Most messages the sequencer takes from one input ring per poll.
pub(crate) const SEQUENCER_BATCH: usize = 1024;
/// Polls spent draining replies after the stop flag is seen.
const DRAIN_POLLS: usize = 10_000;

/// Colocated: the gateways of a stage that serves no clients are polled
/// every this many rounds (see [`SequencerStage::serves_clients`]).
const IDLE_GATEWAY_ROUNDS: u32 = 16;

fn run_shared<St: SequencerStage>(
    gateways: Vec<Box<dyn GatewayLoop>>,
    seq: St,
    config: &RuntimeConfig,
    stop: Arc<AtomicBool>,
    blocks: Vec<CounterBlock>,
    latency: Vec<LatencyPublisher>,
    seq_latency: Option<ReadyPublisher>,
) -> Result<(ServerReport, St::App), RunError> {
    let core = config.cores.first().copied();
    // Colocated, the loop only counts its idle rounds: the colocation
    // thread idles once for every loop it runs.
    let kind = match config.colocation {
        Some(_) => IdleKind::Spin,
        None => config.idle,
    };
    let mut l = SharedLoop {
        gateways,
        seq,
        stop,
        blocks,
        latency,
        seq_latency,
        idle: Idler::new(kind),
        timer: PublishTimer::new(),
        raiser: WatermarkRaiser::new(config.watermark.clone()),
        work: 0,
        rounds: 0,
        thin_idle_gateways: false,
    };
    if let Some(place) = &config.colocation {
        // Another thread polls this loop among others'; this one waits for
        // its result.
        let (done, result) = std::sync::mpsc::channel();
        l.thin_idle_gateways = true;
        place.add(Box::new(ColocatedLoop { l: Some(l), done }));
        return result
            .recv()
            .map_err(|_| RunError::Thread("the colocation thread ended first".into()));
    }
    let handle = std::thread::Builder::new()
        .name("peregrine-shared".into())
        .spawn(move || -> Result<(ServerReport, St::App), RunError> {
            pin_current(core)?;
            while let Some(work) = l.round() {
                if work != 0 || !l.seq.park() {
                    l.idle.idle(work);
                }
            }
            Ok(l.finish())
        })
        .map_err(|e| RunError::Thread(e.to_string()))?;
    handle
        .join()
        .map_err(|_| RunError::Thread("peregrine-shared panicked".into()))?
}

/// The `shared` layout's loop, one round at a time: every gateway's
/// receive side, the stage, every gateway's transmit side. Its own thread
/// runs it (`run_shared`), or a [`Colocation`](crate::colocation::Colocation)
/// thread runs it among other servers' loops.
struct SharedLoop<St: SequencerStage> {
    gateways: Vec<Box<dyn GatewayLoop>>,
    seq: St,
    stop: Arc<AtomicBool>,
    blocks: Vec<CounterBlock>,
    latency: Vec<LatencyPublisher>,
    seq_latency: Option<ReadyPublisher>,
    idle: Idler,
    timer: PublishTimer,
    raiser: WatermarkRaiser,
    work: usize,
    rounds: u32,
    /// Colocated: poll the gateways of a stage that serves no clients only
    /// now and then (see [`SequencerStage::serves_clients`]). On a thread
    /// of its own a follower parks on its peers' sockets instead.
    thin_idle_gateways: bool,
}

impl<St: SequencerStage> SharedLoop<St> {
    fn publish(&self) {
        let extra_from = 1 + self.gateways.len();
        publish_stage(&self.blocks, extra_from, &self.seq, &self.idle);
        for (i, g) in self.gateways.iter().enumerate() {
            publish_gateway(self.blocks.get(1 + i), g.as_ref());
        }
    }

    /// One round; the work it did, or `None` when the loop is over (stop
    /// asked, or the stage stopped by itself). The caller idles.
    #[inline]
    fn round(&mut self) -> Option<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        if self.timer.due(self.work) {
            self.publish();
            for (g, l) in self.gateways.iter_mut().zip(self.latency.iter_mut()) {
                l.maybe_publish(g.as_mut(), false);
            }
            if let Some(l) = self.seq_latency.as_mut() {
                l.maybe_publish(self.seq.sequencer().ready_latency(), false);
            }
        }
        let mut work = 0;
        self.rounds = self.rounds.wrapping_add(1);
        let gateways_due =
            !self.thin_idle_gateways || self.rounds % IDLE_GATEWAY_ROUNDS == 0 || self.seq.serves_clients();
        if gateways_due {
            for g in self.gateways.iter_mut() {
                work += g.poll_rx();
            }
        }
        let sequenced = self.seq.poll();
        work += sequenced;
        if sequenced != 0 {
            self.raiser.raise(&self.seq);
        }
        if gateways_due || sequenced != 0 {
            for g in self.gateways.iter_mut() {
                work += g.poll_tx();
            }
        }
        self.work = work;
        if sequenced == 0 && self.seq.stopped().is_some() {
            return None;
        }
        Some(work)
    }

    /// Sends what was already sequenced (so no ack is left behind),
    /// publishes the counters one last time, and reports.
    fn finish(mut self) -> (ServerReport, St::App) {
        for _ in 0..DRAIN_POLLS {
            let mut work = self.seq.poll();
            for g in self.gateways.iter_mut() {
                work += g.poll_tx();
            }
            if work == 0 && self.seq.held_back() == 0 {
                break;
            }
        }
        self.raiser.raise(&self.seq);
        self.publish();
        for (g, l) in self.gateways.iter_mut().zip(self.latency.iter_mut()) {
            l.maybe_publish(g.as_mut(), true);
        }
        if let Some(l) = self.seq_latency.as_mut() {
            l.maybe_publish(self.seq.sequencer().ready_latency(), true);
        }
        let report = report(
            &self.seq,
            &self.gateways,
            self.idle.busy_loops(),
            self.idle.idle_loops(),
        );
        (report, self.seq.into_app())
    }
}

/// A [`SharedLoop`] handed to a colocation thread, with where its result
/// goes.
struct ColocatedLoop<St: SequencerStage> {
    l: Option<SharedLoop<St>>,
    done: std::sync::mpsc::Sender<(ServerReport, St::App)>,
}

impl<St: SequencerStage> crate::colocation::ColocatedUnit for ColocatedLoop<St> {
    fn round(&mut self) -> Option<usize> {
        let l = self.l.as_mut()?;
        let work = l.round();
        if let Some(w) = work {
            // A spin idler: counts the round, waits one pause at most; the
            // colocation thread decides how to idle for everyone.
            l.idle.idle(w);
        }
        work
    }

    fn finish(&mut self) {
        if let Some(l) = self.l.take() {
            // The server thread waiting for it may have gone: nothing to do.
            let _ = self.done.send(l.finish());
        }
    }
}

fn run_dedicated<St: SequencerStage>(
    gateways: Vec<Box<dyn GatewayLoop>>,
    mut seq: St,
    config: &RuntimeConfig,
    stop: Arc<AtomicBool>,
    blocks: Vec<CounterBlock>,
    latency: Vec<LatencyPublisher>,
    mut seq_latency: Option<ReadyPublisher>,
) -> Result<(ServerReport, St::App), RunError> {
    let kind = config.idle;
    let n_gateways = gateways.len();
    let mut seq_blocks: Vec<CounterBlock> = Vec::new();
    let mut gw_blocks: Vec<Option<CounterBlock>> = Vec::new();
    for (i, b) in blocks.into_iter().enumerate() {
        if i == 0 || i > n_gateways {
            seq_blocks.push(b);
        } else {
            gw_blocks.push(Some(b));
        }
    }
    gw_blocks.resize_with(n_gateways, || None);
    let mut gw_latency: Vec<Option<LatencyPublisher>> = latency.into_iter().map(Some).collect();
    gw_latency.resize_with(n_gateways, || None);
    let seq_core = config.cores.first().copied();
    let seq_stop = Arc::clone(&stop);
    let watermark = config.watermark.clone();
    let seq_handle = std::thread::Builder::new()
        .name("peregrine-seq".into())
        .spawn(move || -> Result<(St, u64, u64), RunError> {
            pin_current(seq_core)?;
            let mut idle = Idler::new(kind);
            let mut timer = PublishTimer::new();
            let mut raiser = WatermarkRaiser::new(watermark);
            let mut n = 0;
            while !seq_stop.load(Ordering::Relaxed) {
                if timer.due(n) {
                    publish_stage(&seq_blocks, 1, &seq, &idle);
                    if let Some(l) = seq_latency.as_mut() {
                        l.maybe_publish(seq.sequencer().ready_latency(), false);
                    }
                }
                n = seq.poll();
                if n != 0 {
                    raiser.raise(&seq);
                }
                if n == 0 && seq.stopped().is_some() {
                    // Stop everyone: nothing more can be sequenced.
                    seq_stop.store(true, Ordering::Relaxed);
                    break;
                }
                if n != 0 || !seq.park() {
                    idle.idle(n);
                }
            }
            for _ in 0..DRAIN_POLLS {
                if seq.poll() == 0 && seq.held_back() == 0 {
                    break;
                }
            }
            raiser.raise(&seq);
            publish_stage(&seq_blocks, 1, &seq, &idle);
            if let Some(l) = seq_latency.as_mut() {
                l.maybe_publish(seq.sequencer().ready_latency(), true);
            }
            Ok((seq, idle.busy_loops(), idle.idle_loops()))
        })
        .map_err(|e| RunError::Thread(e.to_string()))?;
    let mut gw_handles = Vec::new();
    for (((i, mut g), block), mut latency) in gateways.into_iter().enumerate().zip(gw_blocks).zip(gw_latency)
    {
        let core = config.cores.get(i + 1).copied();
        let stop = Arc::clone(&stop);
        let h = std::thread::Builder::new()
            .name(format!("peregrine-gw{i}"))
            .spawn(move || -> Result<(Box<dyn GatewayLoop>, u64, u64), RunError> {
                pin_current(core)?;
                let mut idle = Idler::new(kind);
                let mut timer = PublishTimer::new();
                let mut work = 0;
                while !stop.load(Ordering::Relaxed) {
                    if timer.due(work) {
                        publish_gateway(block.as_ref(), g.as_ref());
                        if let Some(l) = latency.as_mut() {
                            l.maybe_publish(g.as_mut(), false);
                        }
                    }
                    work = g.poll_rx() + g.poll_tx();
                    idle.idle(work);
                }
                // Give the sequencer's last replies time to arrive (~1 ms).
                let until = std::time::Instant::now() + std::time::Duration::from_millis(1);
                while std::time::Instant::now() < until {
                    g.poll_tx();
                }
                publish_gateway(block.as_ref(), g.as_ref());
                if let Some(l) = latency.as_mut() {
                    l.maybe_publish(g.as_mut(), true);
                }
                Ok((g, idle.busy_loops(), idle.idle_loops()))
            })
            .map_err(|e| RunError::Thread(e.to_string()))?;
        gw_handles.push(h);
    }
    let (seq, mut busy, mut idle) = seq_handle
        .join()
        .map_err(|_| RunError::Thread("peregrine-seq panicked".into()))??;
    let mut gws = Vec::new();
    let mut first_err = None;
    for h in gw_handles {
        match h.join() {
            Ok(Ok((g, b, i))) => {
                busy += b;
                idle += i;
                gws.push(g);
            }
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => first_err = first_err.or(Some(RunError::Thread("gateway panicked".into()))),
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let report = report(&seq, &gws, busy, idle);
    Ok((report, seq.into_app()))
}

fn report<St: SequencerStage>(
    stage: &St,
    gateways: &[Box<dyn GatewayLoop>],
    busy: u64,
    idle: u64,
) -> ServerReport {
    let seq = stage.sequencer();
    ServerReport {
        sequencer: seq.counters(),
        gateways: gateways
            .iter()
            .map(|g| (g.describe(), g.counters(), g.port_counters(), g.port_detail()))
            .collect(),
        busy_loops: busy,
        idle_loops: idle,
        next_seq: seq.next_seq(),
        failure: stage.stopped(),
        journal_durable_seq: stage.durable_seq(),
        feed: None,
    }
}
