//! Our SPSC ring (`peregrine_ring`) against `crossbeam_queue::ArrayQueue`
//! and `rtrb::RingBuffer`, side by side in the same run, all three carrying the
//! same 128-byte `InboundSlot` values that travel from gateways to the sequencer.
//!
//! Why: we chose a hand-written ring (batch claim/commit, cached opposite
//! index, slots inline) and keep it only while it beats both crates. Two measurements decide that:
//!
//! * `ring_hop`: one item in flight, ping-pong between two threads pinned to
//!   cores 0 and 1 through a pair of rings (A→B, B→A). Criterion reports the
//!   mean round trip (two hops) per iteration (`iter_custom` times N round
//!   trips). Before Criterion runs, each queue's single round trips are also
//!   timed one by one (200k per queue, interleaved in rounds so drift in the
//!   VM hits every queue alike) and p50/p99/p99.9 are printed, because a
//!   latency claim needs its tail, not only a mean.
//! * `ring_throughput`: a producer thread pushes in batches of 32 (ours:
//!   32 × `stage`, one `publish`; rtrb: `push_partial_slice`, one commit per
//!   batch; crossbeam: a `push` loop, it has no batch API) and the consumer
//!   drains up to 32 at a time (ours: `available`/`peek`/`advance`/`release`;
//!   rtrb: `read_chunk`/`commit_all`; crossbeam: a `pop` loop). Reported in
//!   elements/s. Before Criterion runs, the three also take turns moving 1M
//!   items each over 7 rounds and the median rates are printed: on a shared
//!   2-core VM the same-time ratio is steadier than Criterion's back-to-back
//!   groups, which can land in different load conditions.
//!
//! Every received value is checked (its `client_seq` must be the next
//! expected), so a queue cannot win by losing or reordering items.
#![forbid(unsafe_code)]

use std::hint::spin_loop;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use hdrhistogram::Histogram;
use peregrine_ring::{ring, Consumer, Producer};
use peregrine_sequencer::InboundSlot;
use peregrine_server::pinning::pin_if_multicore;

/// Slots per queue (a power of two, as our ring requires).
const CAPACITY: usize = 1024;
/// Producer batch and consumer drain size.
const BATCH: usize = 32;
/// Items per Criterion iteration in the throughput group.
const ITEMS_PER_ITER: u64 = 32 * 1024;
/// Items per queue per round of the interleaved throughput comparison.
const INTERLEAVED_ITEMS: u64 = 1 << 20;
/// Rounds of the interleaved throughput comparison.
const INTERLEAVED_ROUNDS: usize = 7;
/// Single round trips timed per queue for the percentile table.
const PCT_ROUND_TRIPS: u64 = 200_000;
/// The percentile table's round trips are split into this many interleaved rounds.
const PCT_ROUNDS: u64 = 4;
/// Untimed round trips before each percentile round.
const PCT_WARMUP: u64 = 10_000;

// ---------------------------------------------------------------------------
// One small interface over the three queues, monomorphised per queue.

/// The sending end of a queue.
trait Tx: Send + 'static {
    /// Pushes one value and makes it visible; false when full.
    fn try_push(&mut self, v: InboundSlot) -> bool;
    /// Pushes a prefix of `batch` that fits, made visible together where the
    /// queue allows it; returns how many were pushed.
    fn push_batch(&mut self, batch: &[InboundSlot]) -> usize;
}

/// The receiving end of a queue.
trait Rx: Send + 'static {
    /// Takes one value.
    fn try_pop(&mut self) -> Option<InboundSlot>;
    /// Hands up to `max` values to `f` and frees their slots; returns how many.
    fn drain(&mut self, max: usize, f: impl FnMut(&InboundSlot)) -> usize;
}

impl Tx for Producer<InboundSlot> {
    #[inline]
    fn try_push(&mut self, v: InboundSlot) -> bool {
        self.push(v).is_ok()
    }

    #[inline]
    fn push_batch(&mut self, batch: &[InboundSlot]) -> usize {
        let n = self.stage_slice(batch);
        self.publish();
        n
    }
}

impl Rx for Consumer<InboundSlot> {
    #[inline]
    fn try_pop(&mut self) -> Option<InboundSlot> {
        self.pop()
    }

    #[inline]
    fn drain(&mut self, max: usize, mut f: impl FnMut(&InboundSlot)) -> usize {
        let n = self.available().min(max);
        for i in 0..n {
            if let Some(v) = self.peek(i) {
                f(v);
            }
        }
        self.advance(n);
        self.release();
        n
    }
}

/// Both ends of a crossbeam `ArrayQueue` (an MPMC queue used SPSC here).
struct Crossbeam(Arc<ArrayQueue<InboundSlot>>);

impl Tx for Crossbeam {
    #[inline]
    fn try_push(&mut self, v: InboundSlot) -> bool {
        self.0.push(v).is_ok()
    }

    #[inline]
    fn push_batch(&mut self, batch: &[InboundSlot]) -> usize {
        let mut n = 0;
        for v in batch {
            if self.0.push(*v).is_err() {
                break;
            }
            n += 1;
        }
        n
    }
}

impl Rx for Crossbeam {
    #[inline]
    fn try_pop(&mut self) -> Option<InboundSlot> {
        self.0.pop()
    }

    #[inline]
    fn drain(&mut self, max: usize, mut f: impl FnMut(&InboundSlot)) -> usize {
        let mut n = 0;
        while n < max {
            match self.0.pop() {
                Some(v) => f(&v),
                None => break,
            }
            n += 1;
        }
        n
    }
}

impl Tx for rtrb::Producer<InboundSlot> {
    #[inline]
    fn try_push(&mut self, v: InboundSlot) -> bool {
        self.push(v).is_ok()
    }

    #[inline]
    fn push_batch(&mut self, batch: &[InboundSlot]) -> usize {
        let (pushed, _) = self.push_partial_slice(batch);
        pushed.len()
    }
}

impl Rx for rtrb::Consumer<InboundSlot> {
    #[inline]
    fn try_pop(&mut self) -> Option<InboundSlot> {
        self.pop().ok()
    }

    #[inline]
    fn drain(&mut self, max: usize, mut f: impl FnMut(&InboundSlot)) -> usize {
        let n = self.slots().min(max);
        if n == 0 {
            return 0;
        }
        let Ok(chunk) = self.read_chunk(n) else { return 0 };
        let (a, b) = chunk.as_slices();
        a.iter().chain(b).for_each(&mut f);
        chunk.commit_all();
        n
    }
}

/// The three queues under test, by name.
#[derive(Clone, Copy)]
enum Kind {
    Peregrine,
    Crossbeam,
    Rtrb,
}

const KINDS: [Kind; 3] = [Kind::Peregrine, Kind::Crossbeam, Kind::Rtrb];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Peregrine => "peregrine",
            Kind::Crossbeam => "crossbeam_array_queue",
            Kind::Rtrb => "rtrb",
        }
    }
}

fn peregrine_queue() -> (Producer<InboundSlot>, Consumer<InboundSlot>) {
    ring::<InboundSlot>(CAPACITY).expect("power-of-two capacity")
}

fn crossbeam_queue() -> (Crossbeam, Crossbeam) {
    let q = Arc::new(ArrayQueue::new(CAPACITY));
    (Crossbeam(Arc::clone(&q)), Crossbeam(q))
}

fn rtrb_queue() -> (rtrb::Producer<InboundSlot>, rtrb::Consumer<InboundSlot>) {
    rtrb::RingBuffer::new(CAPACITY)
}

/// A slot with recognisable contents; only `client_seq` changes per item.
fn template() -> InboundSlot {
    let mut s = InboundSlot::default();
    s.msg[0] = b'E';
    s.client_seq = 0;
    s
}

// ---------------------------------------------------------------------------
// Hop latency: one item in flight.

/// The main thread's side of a ping-pong through a pair of queues; an echo
/// thread pinned to core 1 returns every item from A to B.
struct PingPong<T: Tx, R: Rx> {
    to_echo: T,
    from_echo: R,
    jobs: Option<Sender<u64>>,
    echo: Option<JoinHandle<()>>,
    next: u64,
    slot: InboundSlot,
}

impl<T: Tx, R: Rx> PingPong<T, R> {
    /// `a` carries main → echo, `b` echo → main.
    fn new<T2: Tx, R2: Rx>(a: (T, R2), b: (T2, R)) -> Self {
        let (to_echo, mut echo_rx) = a;
        let (mut echo_tx, from_echo) = b;
        let (jobs, job_rx) = channel::<u64>();
        let echo = thread::spawn(move || {
            pin_if_multicore(1);
            // Each job: echo exactly that many items, then sleep until the next.
            while let Ok(n) = job_rx.recv() {
                for _ in 0..n {
                    let v = loop {
                        if let Some(v) = echo_rx.try_pop() {
                            break v;
                        }
                        spin_loop();
                    };
                    while !echo_tx.try_push(v) {
                        spin_loop();
                    }
                }
            }
        });
        PingPong {
            to_echo,
            from_echo,
            jobs: Some(jobs),
            echo: Some(echo),
            next: 0,
            slot: template(),
        }
    }

    /// Tells the echo thread to expect `n` round trips.
    fn start(&self, n: u64) {
        self.jobs
            .as_ref()
            .expect("echo alive")
            .send(n)
            .expect("echo thread alive");
    }

    /// One round trip: push to A, spin until it comes back on B.
    #[inline]
    fn round_trip(&mut self) {
        self.slot.client_seq = self.next;
        while !self.to_echo.try_push(self.slot) {
            spin_loop();
        }
        loop {
            if let Some(v) = self.from_echo.try_pop() {
                assert_eq!(v.client_seq, self.next, "ping-pong lost or reordered an item");
                break;
            }
            spin_loop();
        }
        self.next += 1;
    }

    /// `n` round trips, returning their total time. One untimed round trip
    /// first, so the echo thread's wake-up from its job channel is not timed.
    fn timed(&mut self, n: u64) -> Duration {
        self.start(n + 1);
        self.round_trip();
        let t0 = Instant::now();
        for _ in 0..n {
            self.round_trip();
        }
        t0.elapsed()
    }

    /// `warmup` untimed round trips, then `n` timed one by one into `hist`.
    fn sample(&mut self, warmup: u64, n: u64, hist: &mut Histogram<u64>) {
        self.start(warmup + n);
        for _ in 0..warmup {
            self.round_trip();
        }
        for _ in 0..n {
            let t0 = Instant::now();
            self.round_trip();
            hist.saturating_record(t0.elapsed().as_nanos() as u64);
        }
    }
}

impl<T: Tx, R: Rx> Drop for PingPong<T, R> {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(h) = self.echo.take() {
            h.join().expect("echo thread");
        }
    }
}

/// Cost of one `Instant::now()` pair, the floor under every percentile.
fn clock_overhead_ns() -> u64 {
    (0..10_000)
        .map(|_| {
            let t0 = Instant::now();
            t0.elapsed().as_nanos() as u64
        })
        .min()
        .unwrap_or(0)
}

fn hop_latency(c: &mut Criterion) {
    let pinned = pin_if_multicore(0);
    let mut ours = PingPong::new(peregrine_queue(), peregrine_queue());
    let mut cb = PingPong::new(crossbeam_queue(), crossbeam_queue());
    let mut rt = PingPong::new(rtrb_queue(), rtrb_queue());

    // Percentiles of single round trips, outside Criterion's timing.
    let mut hists: Vec<Histogram<u64>> = KINDS
        .iter()
        .map(|_| Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds"))
        .collect();
    let per_round = PCT_ROUND_TRIPS / PCT_ROUNDS;
    for _ in 0..PCT_ROUNDS {
        ours.sample(PCT_WARMUP, per_round, &mut hists[0]);
        cb.sample(PCT_WARMUP, per_round, &mut hists[1]);
        rt.sample(PCT_WARMUP, per_round, &mut hists[2]);
    }
    println!(
        "\nring hop round trip (2 hops), {} single round trips per queue, threads {}; \
         clock pair overhead {} ns (included)",
        PCT_ROUND_TRIPS,
        if pinned {
            "pinned to cores 0 and 1"
        } else {
            "unpinned"
        },
        clock_overhead_ns()
    );
    println!(
        "{:<24}{:>9}{:>9}{:>9}{:>10}{:>10}{:>10}",
        "queue", "p50 ns", "p90 ns", "p99 ns", "p99.9 ns", "max ns", "mean ns"
    );
    for (kind, h) in KINDS.iter().zip(&hists) {
        println!(
            "{:<24}{:>9}{:>9}{:>9}{:>10}{:>10}{:>10.0}",
            kind.name(),
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            h.mean()
        );
    }
    let p = |i: usize, q: f64| hists[i].value_at_quantile(q) as f64;
    println!(
        "peregrine / crossbeam: p50 {:.2}, p99 {:.2}, p99.9 {:.2};  peregrine / rtrb: p50 {:.2}, p99 {:.2}, p99.9 {:.2}\n",
        p(0, 0.5) / p(1, 0.5),
        p(0, 0.99) / p(1, 0.99),
        p(0, 0.999) / p(1, 0.999),
        p(0, 0.5) / p(2, 0.5),
        p(0, 0.99) / p(2, 0.99),
        p(0, 0.999) / p(2, 0.999),
    );

    let mut group = c.benchmark_group("ring_hop");
    group.bench_function(Kind::Peregrine.name(), |b| b.iter_custom(|n| ours.timed(n)));
    group.bench_function(Kind::Crossbeam.name(), |b| b.iter_custom(|n| cb.timed(n)));
    group.bench_function(Kind::Rtrb.name(), |b| b.iter_custom(|n| rt.timed(n)));
    group.finish();
}

// ---------------------------------------------------------------------------
// Throughput in batches.

/// The main thread consumes; a producer thread pinned to core 1 pushes
/// batches of [`BATCH`] with consecutive `client_seq` values.
struct Stream<R: Rx> {
    rx: R,
    jobs: Option<Sender<u64>>,
    producer: Option<JoinHandle<()>>,
    expect: u64,
}

impl<R: Rx> Stream<R> {
    fn new<T: Tx>((mut tx, rx): (T, R)) -> Self {
        let (jobs, job_rx) = channel::<u64>();
        let producer = thread::spawn(move || {
            pin_if_multicore(1);
            let mut batch = [template(); BATCH];
            let mut next = 0u64;
            while let Ok(n) = job_rx.recv() {
                let end = next + n;
                while next < end {
                    let k = (end - next).min(BATCH as u64) as usize;
                    for (j, s) in batch[..k].iter_mut().enumerate() {
                        s.client_seq = next + j as u64;
                    }
                    let mut off = 0;
                    while off < k {
                        let pushed = tx.push_batch(&batch[off..k]);
                        if pushed == 0 {
                            spin_loop();
                        }
                        off += pushed;
                    }
                    next += k as u64;
                }
            }
        });
        Stream {
            rx,
            jobs: Some(jobs),
            producer: Some(producer),
            expect: 0,
        }
    }

    /// Moves `n` items from the producer to this thread; returns the time
    /// from the first timed item's arrival window to the last one consumed.
    /// The first [`BATCH`] items are consumed untimed so the producer's
    /// wake-up from its job channel is not timed (it may have pushed at most
    /// one ring's worth ahead by then, under 1% of a sample).
    fn timed(&mut self, n: u64) -> Duration {
        let primer = BATCH as u64;
        self.jobs
            .as_ref()
            .expect("producer alive")
            .send(primer + n)
            .expect("producer thread alive");
        let mut t0 = None;
        let end = self.expect + primer + n;
        let timed_from = self.expect + primer;
        let mut expect = self.expect;
        while expect < end {
            if t0.is_none() && expect >= timed_from {
                t0 = Some(Instant::now());
            }
            let got = self.rx.drain(BATCH, |v| {
                assert_eq!(v.client_seq, expect, "stream lost or reordered an item");
                expect += 1;
            });
            if got == 0 {
                spin_loop();
            }
        }
        self.expect = expect;
        t0.map_or(Duration::ZERO, |t| t.elapsed())
    }
}

impl<R: Rx> Drop for Stream<R> {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(h) = self.producer.take() {
            h.join().expect("producer thread");
        }
    }
}

/// Median of a few values.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn throughput(c: &mut Criterion) {
    pin_if_multicore(0);
    let mut ours = Stream::new(peregrine_queue());
    let mut cb = Stream::new(crossbeam_queue());
    let mut rt = Stream::new(rtrb_queue());

    // Same-time comparison outside Criterion: the queues take turns, so load
    // from elsewhere on the machine hits all three alike.
    let mut rates: [Vec<f64>; 3] = Default::default();
    let rate = |d: Duration| INTERLEAVED_ITEMS as f64 / d.as_secs_f64() / 1e6;
    for _ in 0..INTERLEAVED_ROUNDS {
        rates[0].push(rate(ours.timed(INTERLEAVED_ITEMS)));
        rates[1].push(rate(cb.timed(INTERLEAVED_ITEMS)));
        rates[2].push(rate(rt.timed(INTERLEAVED_ITEMS)));
    }
    let med: Vec<f64> = rates.into_iter().map(median).collect();
    println!(
        "\nring throughput, batches of {BATCH}, {INTERLEAVED_ROUNDS} interleaved rounds of \
         {INTERLEAVED_ITEMS} items, median M items/s: peregrine {:.1}, crossbeam_array_queue {:.1}, \
         rtrb {:.1}; peregrine / crossbeam {:.2}, peregrine / rtrb {:.2}\n",
        med[0],
        med[1],
        med[2],
        med[0] / med[1],
        med[0] / med[2]
    );

    let mut group = c.benchmark_group("ring_throughput");
    group.throughput(Throughput::Elements(ITEMS_PER_ITER));
    group.bench_function(Kind::Peregrine.name(), |b| {
        b.iter_custom(|iters| ours.timed(iters * ITEMS_PER_ITER))
    });
    group.bench_function(Kind::Crossbeam.name(), |b| {
        b.iter_custom(|iters| cb.timed(iters * ITEMS_PER_ITER))
    });
    group.bench_function(Kind::Rtrb.name(), |b| {
        b.iter_custom(|iters| rt.timed(iters * ITEMS_PER_ITER))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = hop_latency, throughput
}
criterion_main!(benches);
