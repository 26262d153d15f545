//! Ring → `Sequencer<EchoApp>` → ring, in process, in messages per second.
//!
//! Why: the sequencing core must handle at least 20M messages/s before any
//! socket is involved, so that the network, not the sequencer,
//! bounds the server. This measures exactly the in-process part of the path:
//! gateway-side code stages pre-built Echo `InboundSlot`s into 1 or 2 input
//! rings, the sequencer assigns global sequence numbers and EchoApp writes one
//! Ack per message into the output ring of the sending gateway, and the
//! gateway side drains the output rings.
//!
//! Two layouts, each with 1 and 2 input rings (one ring pair per gateway):
//!
//! * `threaded`: the sequencer polls on its own thread pinned to core 1 (the
//!   `dedicated` layout); the bench thread, pinned to core 0, plays every
//!   gateway: it stages batches of 32 into the input rings and drains the
//!   output rings. Producer and consumer share a thread because this machine
//!   has 2 cores and three busy-spinning threads on two cores would measure
//!   the scheduler; a real gateway thread also does both.
//! * `single_thread`: the `shared` layout: one thread stages a batch of 32
//!   per input ring, calls `poll()` once and drains the outputs, in a loop.
//!
//! Every Ack is checked on the way out (right gateway, global sequence
//! strictly increasing per output ring) and the sequencer's counters must
//! show every message sequenced with nothing misrouted, so the figure cannot
//! come from dropped work.
#![forbid(unsafe_code)]

use std::hint::spin_loop;
use std::sync::mpsc::{channel, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use peregrine_ring::{ring, Consumer, Producer};
use peregrine_sequencer::{EchoApp, InboundSlot, OutboundSlot, Sequencer, SessionRef};
use peregrine_server::pinning::pin_if_multicore;
use peregrine_wire::message::{
    classify_inbound, Ack, Echo, FieldLayout, MessageType, LAYOUT_VERSION, MESSAGE_LEN,
};

/// Slots per ring (each input and each output ring).
const RING_CAPACITY: usize = 4096;
/// Messages staged per input ring per step on the gateway side.
const BATCH: usize = 32;
/// Sequencer's per-ring, per-poll input limit (the server uses 1024).
const SEQUENCER_BATCH: usize = 1024;
/// Distinct pre-built messages cycled through per input ring.
const TEMPLATES: usize = 256;
/// Messages per Criterion iteration.
const MESSAGES_PER_ITER: u64 = 64 * 1024;

/// Where field `name` lives in a message layout.
fn field(fields: &[FieldLayout], name: &str) -> std::ops::Range<usize> {
    let f = fields.iter().find(|f| f.name == name).expect("field in layout");
    f.offset..f.offset + f.len
}

/// A valid Echo message, built from the layout table the protocol test checks.
fn echo_bytes(client_ts_ns: u64, client_tag: u64) -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    m[field(Echo::FIELDS, "msg_type")].copy_from_slice(&[MessageType::Echo as u8]);
    m[field(Echo::FIELDS, "version")].copy_from_slice(&[LAYOUT_VERSION]);
    m[field(Echo::FIELDS, "client_ts_ns")].copy_from_slice(&client_ts_ns.to_le_bytes());
    m[field(Echo::FIELDS, "client_tag")].copy_from_slice(&client_tag.to_le_bytes());
    assert_eq!(classify_inbound(&m), Ok(MessageType::Echo));
    m
}

/// Every gateway's ends of its ring pair, played by one thread.
struct Gateways {
    inputs: Vec<Producer<InboundSlot>>,
    outputs: Vec<Consumer<OutboundSlot>>,
    templates: Vec<Vec<InboundSlot>>,
    next_template: usize,
    last_global: Vec<u64>,
    global_seq_at: std::ops::Range<usize>,
}

/// Builds `gateways` ring pairs; returns the gateway side and the sequencer.
fn setup(gateways: usize) -> (Gateways, Sequencer<EchoApp>) {
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut pairs = Vec::new();
    let mut templates = Vec::new();
    for g in 0..gateways {
        let (ip, ic) = ring::<InboundSlot>(RING_CAPACITY).expect("power of two");
        let (op, oc) = ring::<OutboundSlot>(RING_CAPACITY).expect("power of two");
        inputs.push(ip);
        outputs.push(oc);
        pairs.push((ic, op));
        templates.push(
            (0..TEMPLATES)
                .map(|i| InboundSlot {
                    msg: echo_bytes(i as u64 * 1_000, i as u64),
                    origin: SessionRef::new(g as u16, i as u32 % 8),
                    client_seq: i as u64 + 1,
                    gateway_rx_ns: i as u64 * 1_000 + 500,
                })
                .collect(),
        );
    }
    let gw = Gateways {
        inputs,
        outputs,
        templates,
        next_template: 0,
        last_global: vec![0; gateways],
        global_seq_at: field(Ack::FIELDS, "global_seq"),
    };
    (gw, Sequencer::new(pairs, EchoApp::new(), 1, SEQUENCER_BATCH))
}

impl Gateways {
    /// Stages up to `BATCH` messages into every input ring (fewer if `budget`
    /// runs out or a ring is full) and publishes each ring once.
    #[inline]
    fn offer(&mut self, mut budget: u64) -> u64 {
        let mut staged = 0;
        for (input, templates) in self.inputs.iter_mut().zip(&self.templates) {
            let mut t = self.next_template;
            let mut k = 0;
            while k < BATCH && budget > 0 && input.stage(templates[t]) {
                t = (t + 1) % TEMPLATES;
                k += 1;
                budget -= 1;
            }
            input.publish();
            staged += k as u64;
        }
        self.next_template = (self.next_template + BATCH) % TEMPLATES;
        staged
    }

    /// Drains every output ring, checking each Ack; returns how many.
    #[inline]
    fn drain(&mut self) -> u64 {
        let mut got = 0;
        for (g, out) in self.outputs.iter_mut().enumerate() {
            let n = out.available();
            for i in 0..n {
                let Some(reply) = out.peek(i) else { break };
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&reply.msg[self.global_seq_at.clone()]);
                let seq = u64::from_le_bytes(seq);
                assert!(
                    reply.to.gateway as usize == g && seq > self.last_global[g],
                    "ack misrouted or out of order"
                );
                self.last_global[g] = seq;
            }
            out.advance(n);
            out.release();
            got += n as u64;
        }
        got
    }
}

/// The `threaded` layout: the sequencer spins on its own thread.
struct Threaded {
    gw: Gateways,
    jobs: Option<Sender<u64>>,
    sequencer: Option<JoinHandle<Sequencer<EchoApp>>>,
    total: u64,
}

impl Threaded {
    fn new(gateways: usize) -> Self {
        let (gw, mut seq) = setup(gateways);
        let (jobs, job_rx) = channel::<u64>();
        let sequencer = thread::spawn(move || {
            pin_if_multicore(1);
            // Each job: sequence exactly that many messages, then sleep.
            while let Ok(n) = job_rx.recv() {
                let target = seq.counters().sequenced + n;
                while seq.counters().sequenced < target {
                    if seq.poll() == 0 {
                        spin_loop();
                    }
                }
            }
            seq
        });
        Threaded {
            gw,
            jobs: Some(jobs),
            sequencer: Some(sequencer),
            total: 0,
        }
    }

    /// Pushes `n` messages through; the first batch is untimed so the
    /// sequencer's wake-up is not measured.
    fn timed(&mut self, n: u64) -> Duration {
        let primer = BATCH as u64;
        self.jobs
            .as_ref()
            .expect("sequencer alive")
            .send(primer + n)
            .expect("sequencer thread alive");
        self.run(primer);
        let t0 = Instant::now();
        self.run(n);
        let elapsed = t0.elapsed();
        self.total += primer + n;
        elapsed
    }

    fn run(&mut self, n: u64) {
        let (mut sent, mut received) = (0, 0);
        while received < n {
            let staged = if sent < n { self.gw.offer(n - sent) } else { 0 };
            sent += staged;
            let got = self.gw.drain();
            received += got;
            if staged == 0 && got == 0 {
                spin_loop();
            }
        }
    }

    /// Stops the sequencer thread and checks its counters.
    fn finish(mut self) {
        self.jobs.take();
        let seq = self
            .sequencer
            .take()
            .expect("once")
            .join()
            .expect("sequencer thread");
        check(&seq, self.total);
    }
}

/// The `shared` layout: stage, poll, drain on one thread.
struct SingleThread {
    gw: Gateways,
    seq: Sequencer<EchoApp>,
    total: u64,
}

impl SingleThread {
    fn timed(&mut self, n: u64) -> Duration {
        let t0 = Instant::now();
        let (mut sent, mut received) = (0, 0);
        while received < n {
            if sent < n {
                sent += self.gw.offer(n - sent);
            }
            self.seq.poll();
            received += self.gw.drain();
        }
        self.total += n;
        t0.elapsed()
    }
}

fn check(seq: &Sequencer<EchoApp>, total: u64) {
    let c = seq.counters();
    assert_eq!(c.sequenced, total, "every message sequenced");
    assert_eq!(c.replies, total, "one ack per message");
    assert_eq!(c.replies_misrouted, 0);
    assert_eq!(seq.app().acked(), total);
}

fn sequencer(c: &mut Criterion) {
    let pinned = pin_if_multicore(0);
    println!(
        "\nring -> Sequencer<EchoApp> -> ring: ring capacity {RING_CAPACITY}, gateway batch {BATCH}, \
         sequencer batch limit {SEQUENCER_BATCH}, threads {}\n",
        if pinned {
            "pinned (bench thread core 0, sequencer core 1)"
        } else {
            "unpinned"
        }
    );
    let mut group = c.benchmark_group("sequencer_echo");
    group.throughput(Throughput::Elements(MESSAGES_PER_ITER));
    for rings in [1usize, 2] {
        let mut t = Threaded::new(rings);
        group.bench_function(BenchmarkId::new("threaded", format!("{rings}_rings")), |b| {
            b.iter_custom(|iters| t.timed(iters * MESSAGES_PER_ITER))
        });
        t.finish();
    }
    for rings in [1usize, 2] {
        let (gw, seq) = setup(rings);
        let mut s = SingleThread { gw, seq, total: 0 };
        group.bench_function(BenchmarkId::new("single_thread", format!("{rings}_rings")), |b| {
            b.iter_custom(|iters| s.timed(iters * MESSAGES_PER_ITER))
        });
        check(&s.seq, s.total);
    }
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
    targets = sequencer
}
criterion_main!(benches);
