//! Ring → `Sequencer<MatchApp>` → ring: the engine's standard order flow
//! as wire messages through the sequencer, with the application's prefetch
//! and without it, in one run.
//!
//! Why: the engine's cost per command is mostly one cache miss, the
//! order-index line its `(session, order id)` hashes to. The sequencer shows
//! the application each message a few places ahead of its turn within the
//! burst it drains (`Application::prefetch`), so those misses overlap. This
//! measures that on the real path (wire decode, engine, execution reports
//! encoded into the output ring) rather than in the engine's own loop
//! (`engine-vs-peers` measures that one), against the same application with
//! its prefetch distance set to 0.
//!
//! Method: the `shared` layout on one thread. Each iteration is one fresh
//! engine: the flow's setup orders go through the sequencer untimed, then
//! the flow's 200,000 operations (60% limit, 25% cancel, 10% replace, 5%
//! market on a book of 10,000 resting orders) are timed: stage a batch of
//! up to 1,024 into the input ring, poll the sequencer once, drain the
//! output ring, until every operation is sequenced. The two cases
//! alternate within the run; compare their medians. The counters must show
//! every message sequenced and nothing misrouted, and both cases must send
//! the same number of reports.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use peregrine_benches::engine_workload::engine_config;
use peregrine_engine::flow::{generate, FlowConfig};
use peregrine_engine::{Command, Engine, EngineConfig};
use peregrine_ring::{ring, Consumer, Producer};
use peregrine_sequencer::{Application, InboundSlot, OutboundSlot, ReplySink, Sequenced, Sequencer};
use peregrine_server::engine_codec::encode;
use peregrine_server::match_app::{session_ref, MatchApp};
use peregrine_wire::message::MESSAGE_LEN;

/// Operations timed per iteration.
const OPS: usize = 200_000;
/// Slots in the input and the output ring.
const RING_CAPACITY: usize = 16 * 1024;
/// Messages staged per step, and the sequencer's per-poll limit.
const BATCH: usize = 1024;

/// [`MatchApp`] with the prefetch switched off: the baseline.
struct WithoutPrefetch(MatchApp);

impl Application for WithoutPrefetch {
    fn on_message(&mut self, m: &Sequenced<'_>, out: &mut ReplySink<'_>) {
        self.0.on_message(m, out);
    }
}

/// The flow's commands as the input slots a gateway would stage.
fn slots(commands: &[Command]) -> Vec<InboundSlot> {
    commands
        .iter()
        .enumerate()
        .map(|(i, command)| {
            let mut msg = [0u8; MESSAGE_LEN];
            encode(command, i as u64, &mut msg);
            InboundSlot {
                msg,
                origin: session_ref(command.session()),
                client_seq: i as u64 + 1,
                ..InboundSlot::default()
            }
        })
        .collect()
}

/// One sequencer over one ring pair, and the gateway's ends of it.
struct Path<A> {
    input: Producer<InboundSlot>,
    output: Consumer<OutboundSlot>,
    seq: Sequencer<A>,
    replies: u64,
}

impl<A: Application> Path<A> {
    fn new(app: A) -> Self {
        let (input, ic) = ring::<InboundSlot>(RING_CAPACITY).expect("ring");
        let (op, output) = ring::<OutboundSlot>(RING_CAPACITY).expect("ring");
        Path {
            input,
            output,
            seq: Sequencer::new(vec![(ic, op)], app, 1, BATCH),
            replies: 0,
        }
    }

    /// Stages, sequences and drains every slot of `msgs`.
    fn run(&mut self, msgs: &[InboundSlot]) {
        let mut next = 0;
        let mut done = 0;
        while done < msgs.len() {
            while next < msgs.len() && next - done < BATCH && self.input.stage(msgs[next]) {
                next += 1;
            }
            self.input.publish();
            done += self.seq.poll();
            while self.output.pop().is_some() {
                self.replies += 1;
            }
        }
        while self.seq.poll() > 0 || self.output.pop().is_some() {}
    }
}

struct Workload {
    config: EngineConfig,
    setup: Vec<InboundSlot>,
    flow: Vec<InboundSlot>,
}

impl Workload {
    fn new() -> Self {
        let config = engine_config(FlowConfig::standard().resting_target);
        let flow = generate(&config, &FlowConfig::standard(), OPS).expect("valid config");
        Workload {
            setup: slots(&flow.setup),
            flow: slots(&flow.commands),
            config,
        }
    }

    /// Times `iters` fresh engines through the flow; returns the time and
    /// the replies sent per engine.
    fn timed<A: Application>(&self, iters: u64, app: impl Fn(&EngineConfig) -> A) -> (Duration, u64) {
        let mut total = Duration::ZERO;
        let mut replies = 0;
        for _ in 0..iters {
            let mut path = Path::new(app(&self.config));
            path.run(&self.setup);
            let before = path.replies;
            let t0 = Instant::now();
            path.run(&self.flow);
            total += t0.elapsed();
            let c = path.seq.counters();
            assert_eq!(
                c.sequenced as usize,
                self.setup.len() + self.flow.len(),
                "all sequenced"
            );
            assert_eq!(c.replies_misrouted, 0);
            replies = path.replies - before;
        }
        (total, replies)
    }
}

fn sequencer_match(c: &mut Criterion) {
    let work = Workload::new();
    let with = |config: &EngineConfig| MatchApp::new(config).expect("config");
    let without = |config: &EngineConfig| WithoutPrefetch(MatchApp::new(config).expect("config"));
    let (_, replies_with) = work.timed(1, with);
    let (_, replies_without) = work.timed(1, without);
    assert_eq!(replies_with, replies_without, "the prefetch changes no reply");
    println!(
        "\nring -> Sequencer<MatchApp> -> ring: {OPS} operations after {} setup orders, \
         {replies_with} reports; batch {BATCH}, prefetch distance {}\n",
        work.setup.len(),
        Engine::PREFETCH_DISTANCE
    );
    let mut group = c.benchmark_group("sequencer_match");
    group.throughput(Throughput::Elements(OPS as u64));
    group.bench_function(BenchmarkId::new("prefetch", Engine::PREFETCH_DISTANCE), |b| {
        b.iter_custom(|iters| work.timed(iters, with).0)
    });
    group.bench_function(BenchmarkId::new("prefetch", 0), |b| {
        b.iter_custom(|iters| work.timed(iters, without).0)
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = sequencer_match
}
criterion_main!(benches);
