//! The journal (`peregrine_journal`): what an append costs, and what
//! durability costs (the `msync`/`fdatasync` flush policies, measured).
//!
//! * `journal_append/*`: records/s of `JournalWriter::append` with
//!   `FlushPolicy::None` (async mode: the kernel writes back).
//!   - `in_segment`: one 1 GiB preallocated, pre-faulted segment, so no
//!     roll is timed: the hot path alone (encode + CRC32C + memcpy into
//!     the mapping, plus the kernel's first-write fault per page).
//!   - `with_rolls_64MiB`: the default config (64 MiB fallocated segments,
//!     next one created by the background thread), rolls included.
//! * `journal_durable/{policy}/{batch}`: one iteration = append `batch`
//!   records, then `flush(policy)`, i.e. what the sequencer pays per poll in
//!   durable mode (group commit). Criterion's time is per batch; its
//!   element rate is records/s. Before Criterion runs, the same loop is
//!   timed flush by flush and p50/p99/p99.9/max printed, since a sync's tail
//!   matters more than its mean. Segments are either only fallocated
//!   (`*_fallocate`, the default) or also zero-filled (`*_zerofill`). The
//!   disk is quiesced (`sync`) before each case and no segment is created
//!   while one runs.
//!
//! Everything is written under `$TMPDIR` (default /tmp) and removed; journals
//! are restarted (outside the timing) every 512 MiB to bound disk use.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hdrhistogram::Histogram;
use peregrine_journal::{
    records_per_segment, FlushPolicy, Journal, JournalWriter, Prealloc, Precreate, SequencedRecord,
    WriterConfig, RECORD_LEN,
};
use peregrine_sequencer::SessionRef;

/// Bytes written to one journal before it is thrown away and restarted.
const RESTART_BYTES: u64 = 512 << 20;
/// Records per Criterion iteration in the append group.
const APPEND_BATCH: u64 = 4096;
/// Timed flushes per (policy, batch) for the percentile table.
const PCT_FLUSHES: usize = 400;

/// A journal under the temp dir that restarts itself when it grows too big.
struct Bench {
    root: PathBuf,
    cfg: WriterConfig,
    runs: u32,
    w: Option<JournalWriter>,
    written: u64,
    /// Records after which the journal is restarted.
    limit: u64,
    rec: SequencedRecord,
}

impl Bench {
    fn new(tag: &str, cfg: WriterConfig, limit: u64) -> Bench {
        let root = std::env::temp_dir().join(format!("peregrine-journal-bench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut b = Bench {
            root,
            cfg,
            runs: 0,
            w: None,
            written: 0,
            limit,
            rec: SequencedRecord {
                global_seq: 0,
                origin: SessionRef::new(1, 42),
                client_seq: 0,
                gateway_rx_ns: 0,
                sequencer_ns: 0,
                msg: [0x5a; 100],
            },
        };
        b.restart();
        b
    }

    fn dir(&self) -> PathBuf {
        self.root.join(format!("run{}", self.runs))
    }

    /// A fresh, empty journal (old one removed): untimed.
    fn restart(&mut self) {
        if let Some(w) = self.w.take() {
            drop(w);
            let _ = std::fs::remove_dir_all(self.dir());
        }
        self.runs += 1;
        let w = Journal::open(self.dir())
            .unwrap()
            .into_writer(self.cfg.clone())
            .unwrap();
        self.w = Some(w);
        self.written = 0;
    }

    /// Restarts if the next `n` records would pass the size bound.
    fn room_for(&mut self, n: u64) {
        if self.written + n > self.limit {
            self.restart();
        }
    }

    #[inline]
    fn append(&mut self, n: u64) {
        let w = self.w.as_mut().unwrap();
        for _ in 0..n {
            self.rec.global_seq = w.next_seq();
            self.rec.client_seq += 1;
            self.rec.sequencer_ns += 7;
            w.append(&self.rec).unwrap();
        }
        self.written += n;
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.w = None;
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn config(segment_size: u64, prealloc: Prealloc) -> WriterConfig {
    WriterConfig {
        segment_size,
        prealloc,
        populate: true,
        populate_writable: true,
        precreate: Precreate::Background,
    }
}

/// A journal for the durable cases: no roll happens within a case, so no
/// helper thread (its zero-filling would contend with the syncs being
/// measured), and the disk is quiesced (`sync`) before timing starts.
fn durable_bench(prealloc: Prealloc) -> Bench {
    let cfg = WriterConfig {
        precreate: Precreate::Manual,
        // A segment dirtied whole when mapped would make the first
        // fdatasync write all of it.
        populate_writable: false,
        ..config(64 << 20, prealloc)
    };
    // Restart before the segment fills: a roll would create a segment
    // inline, inside the timing.
    let limit = records_per_segment(cfg.segment_size);
    let b = Bench::new("durable", cfg, limit);
    let _ = std::process::Command::new("sync").status();
    b
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("journal_append");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_millis(1500));
    g.sample_size(20);
    g.throughput(Throughput::Elements(APPEND_BATCH));

    // One segment larger than any run: rolls never happen in the timing.
    let limit = RESTART_BYTES / RECORD_LEN as u64;
    let mut b = Bench::new(
        "in-segment",
        config(RESTART_BYTES + (1 << 20), Prealloc::Fallocate),
        limit,
    );
    g.bench_function("in_segment", |bch| {
        bch.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                b.room_for(APPEND_BATCH);
                let s = Instant::now();
                b.append(APPEND_BATCH);
                t += s.elapsed();
            }
            t
        })
    });
    drop(b);

    let mut b = Bench::new("rolls", WriterConfig::default(), limit);
    g.bench_function("with_rolls_64MiB", |bch| {
        bch.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                b.room_for(APPEND_BATCH);
                let s = Instant::now();
                b.append(APPEND_BATCH);
                t += s.elapsed();
            }
            t
        })
    });
    drop(b);
    g.finish();
}

const CASES: [(FlushPolicy, &str, Prealloc); 4] = [
    (FlushPolicy::Msync, "msync_zerofill", Prealloc::ZeroFill),
    (FlushPolicy::Fdatasync, "fdatasync_zerofill", Prealloc::ZeroFill),
    // The same syncs over unwritten (fallocate-only) extents: each sync
    // also commits the extent conversion.
    (FlushPolicy::Msync, "msync_fallocate", Prealloc::Fallocate),
    (FlushPolicy::Fdatasync, "fdatasync_fallocate", Prealloc::Fallocate),
];
const BATCHES: [u64; 3] = [1, 16, 256];

/// Flush-by-flush latency table, printed before Criterion's runs.
fn percentiles() {
    println!("\njournal flush latency, per batch (append batch + flush), {PCT_FLUSHES} flushes each:");
    println!(
        "{:<28} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "policy", "batch", "p50 us", "p99 us", "p99.9 us", "max us"
    );
    for (policy, name, prealloc) in CASES {
        for batch in BATCHES {
            let mut b = durable_bench(prealloc);
            let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
            for i in 0..PCT_FLUSHES + 20 {
                b.room_for(batch);
                let s = Instant::now();
                b.append(batch);
                b.w.as_mut().unwrap().flush(policy).unwrap();
                let ns = s.elapsed().as_nanos() as u64;
                if i >= 20 {
                    h.record(ns.max(1)).unwrap();
                }
            }
            let us = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
            println!(
                "{name:<28} {batch:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                us(0.5),
                us(0.99),
                us(0.999),
                h.max() as f64 / 1e3
            );
        }
    }
    println!();
}

fn durable(c: &mut Criterion) {
    percentiles();
    let mut g = c.benchmark_group("journal_durable");
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_millis(1500));
    g.sample_size(10);
    for (policy, name, prealloc) in CASES {
        for batch in BATCHES {
            let mut b = durable_bench(prealloc);
            g.throughput(Throughput::Elements(batch));
            g.bench_with_input(BenchmarkId::new(name, batch), &batch, |bch, &batch| {
                bch.iter_custom(|iters| {
                    let mut t = Duration::ZERO;
                    for _ in 0..iters {
                        b.room_for(batch);
                        let s = Instant::now();
                        b.append(batch);
                        b.w.as_mut().unwrap().flush(policy).unwrap();
                        t += s.elapsed();
                    }
                    t
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, append, durable);
criterion_main!(benches);
