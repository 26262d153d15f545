//! The feed publisher (`peregrine_feed`): records/s it packs from a journal
//! on one core, with sends going to a sink that takes everything (no
//! network limit), i.e. the feed thread's cost per record: journal tail
//! read (CRC check), block encoding, MoldUDP64 packing, one send call per
//! packet.
//!
//! * `feed_publisher/pack_and_send`: one iteration = seek the tail to the
//!   start and publish the whole journal (`RECORDS` records, 10 per
//!   1,472-byte packet) through `JournalTail::read` → `emit_sequenced` →
//!   `Publisher::push`/`seal`/`flush`. Criterion's element rate is
//!   records/s.
//!
//! The journal is written once under `$TMPDIR` before timing and removed
//! at the end. Kept short (a few seconds).
#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use peregrine_feed::block::{emit_sequenced, RECORD_BLOCK_LEN};
use peregrine_feed::{NullSink, Publisher};
use peregrine_journal::{Journal, JournalTail, SequencedRecord, WriterConfig};
use peregrine_wire::SessionRef;
use std::time::{Duration, Instant};

/// Records in the benchmark journal.
const RECORDS: u64 = 200_000;
/// Records read per tail call (the feed thread's batch).
const BATCH: usize = 1024;

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("peregrine-feed-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut w = Journal::open(&dir)
        .expect("journal dir")
        .into_writer(WriterConfig::default())
        .expect("writer");
    for seq in 1..=RECORDS {
        let mut msg = [0u8; 100];
        msg[0] = b'E';
        msg[1] = 1;
        msg[16..24].copy_from_slice(&seq.to_le_bytes());
        w.append(&SequencedRecord {
            global_seq: seq,
            origin: SessionRef::new(0, (seq % 64) as u32),
            client_seq: seq,
            gateway_rx_ns: seq,
            sequencer_ns: seq,
            msg,
        })
        .expect("append");
    }
    w.close().expect("close");

    let mut tail = JournalTail::open(&dir, 1).expect("tail");
    let mut publisher = Publisher::new(
        "BENCH",
        1,
        Box::new(NullSink::default()),
        vec!["127.0.0.1:9".parse().expect("addr")],
        peregrine_wire::moldudp64::MAX_PAYLOAD,
        Duration::from_secs(1),
    );
    let mut g = c.benchmark_group("feed_publisher");
    g.throughput(Throughput::Elements(RECORDS));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    // One pass over the journal, each read up to `limit(records read so
    // far)`.
    let mut send_all = |limit: fn(u64) -> u64| {
        tail.seek(1).expect("seek");
        let mut block = [0u8; RECORD_BLOCK_LEN];
        let mut n = 0u64;
        while n < RECORDS {
            n += tail
                .read(limit(n), BATCH, |r| {
                    emit_sequenced(r, &mut block);
                    let _ = publisher.push(&block);
                })
                .expect("read") as u64;
            publisher.seal();
            publisher.flush(Instant::now());
        }
        n
    };
    g.bench_function("pack_and_send", |b| b.iter(|| send_all(|_| u64::MAX)));
    // The feed's real shape: the watermark moves between reads, so each
    // read call passes a new limit (the tail checks its segment file once
    // per call that reads past what it last verified).
    g.bench_function("pack_and_send_moving_watermark", |b| {
        b.iter(|| send_all(|n| n + 1 + BATCH as u64))
    });
    g.finish();
    let s = publisher.stats();
    eprintln!(
        "feed_publisher: {} blocks in {} packets ({:.1} records/packet), {} bytes",
        s.blocks,
        s.packets,
        s.blocks as f64 / s.packets.max(1) as f64,
        s.bytes
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
