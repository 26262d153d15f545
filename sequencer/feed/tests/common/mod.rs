//! Shared helpers of the feed's integration tests: temporary journals, a
//! deterministic record per sequence, and a lossy UDP forwarder.
#![allow(dead_code)]

use peregrine_feed::{ConsumerConfig, FeedConsumer, FeedRecord};
use peregrine_journal::{
    Journal, JournalWriter, Prealloc, Precreate, SequencedRecord, WriterConfig, HEADER_LEN, RECORD_LEN,
};
use peregrine_wire::SessionRef;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "peregrine-feed-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A record whose every field depends on `seq`.
pub fn rec(seq: u64) -> SequencedRecord {
    let mut msg = [0u8; 100];
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8;
    }
    SequencedRecord {
        global_seq: seq,
        origin: SessionRef::new((seq % 3) as u16, (seq % 1000) as u32),
        client_seq: seq.wrapping_mul(2).wrapping_add(1),
        gateway_rx_ns: seq.wrapping_mul(1_000),
        sequencer_ns: peregrine_netio::clock::now_ns(),
        msg,
    }
}

/// Compares what the feed delivered with what the journal holds.
pub fn same(got: &FeedRecord, want: &SequencedRecord) -> bool {
    got.to_sequenced_record() == *want
}

/// A writer on a fresh journal with `per_segment` records per segment.
pub fn writer(dir: &Path, per_segment: usize) -> JournalWriter {
    let cfg = WriterConfig {
        segment_size: (HEADER_LEN + per_segment * RECORD_LEN) as u64,
        prealloc: Prealloc::Fallocate,
        populate: false,
        populate_writable: false,
        precreate: Precreate::Background,
    };
    Journal::open(dir).unwrap().into_writer(cfg).unwrap()
}

/// Appends `from..=to` and returns the records written.
pub fn append(w: &mut JournalWriter, from: u64, to: u64) -> Vec<SequencedRecord> {
    (from..=to)
        .map(|s| {
            let r = rec(s);
            w.append(&r).unwrap();
            r
        })
        .collect()
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A consumer on a free loopback port.
pub fn consumer(from_seq: u64, rerequest: Option<SocketAddr>) -> FeedConsumer {
    let mut cfg = ConsumerConfig::new(localhost(), rerequest);
    cfg.from_seq = from_seq;
    cfg.heartbeat_timeout = Duration::from_millis(300);
    cfg.request_timeout = Duration::from_millis(20);
    FeedConsumer::new(cfg).unwrap()
}

/// Polls `c` until it has delivered through `last` (or `timeout`), checking
/// order and contents; returns the delivered sequences.
pub fn drain_until(
    c: &mut FeedConsumer,
    last: u64,
    timeout: Duration,
    want: &dyn Fn(u64) -> SequencedRecord,
) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while c.next_seq() <= last {
        assert!(
            Instant::now() < deadline,
            "consumer stuck at {} (want through {last}); stats {:?}",
            c.next_seq(),
            c.stats()
        );
        c.poll(&mut |r| {
            assert!(same(r, &want(r.global_seq)), "record {} differs", r.global_seq);
            got.push(r.global_seq);
        })
        .unwrap();
        c.wait(Duration::from_millis(2)).unwrap();
    }
    got
}

/// What the forwarder does to each datagram.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Drop everything (a black hole).
    pub blackhole: bool,
    /// Per mille dropped.
    pub drop_per_mille: u32,
    /// Per mille sent twice.
    pub dup_per_mille: u32,
    /// Per mille held back and sent after the next one.
    pub reorder_per_mille: u32,
}

/// A UDP forwarder thread: everything received on its socket goes to the
/// targets, with faults applied (a deterministic xorshift decides).
pub struct Forwarder {
    pub addr: SocketAddr,
    pub faults: Arc<Mutex<Faults>>,
    pub targets: Arc<Mutex<Vec<SocketAddr>>>,
    pub forwarded: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    pub fn start(targets: Vec<SocketAddr>, faults: Faults, seed: u64) -> Forwarder {
        let sock = UdpSocket::bind(localhost()).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let addr = sock.local_addr().unwrap();
        let faults = Arc::new(Mutex::new(faults));
        let targets = Arc::new(Mutex::new(targets));
        let stop = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let (f2, t2, s2, n2) = (faults.clone(), targets.clone(), stop.clone(), forwarded.clone());
        let thread = std::thread::spawn(move || {
            let mut x = seed | 1;
            let mut rnd = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 1000) as u32
            };
            let mut buf = [0u8; 2048];
            let mut held: Option<Vec<u8>> = None;
            while !s2.load(Ordering::Acquire) {
                let Ok((n, _)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let f = *f2.lock().unwrap();
                let targets = t2.lock().unwrap().clone();
                if f.blackhole {
                    continue;
                }
                let send = |b: &[u8]| {
                    for t in &targets {
                        let _ = sock.send_to(b, t);
                    }
                };
                if rnd() < f.drop_per_mille {
                    continue;
                }
                if rnd() < f.reorder_per_mille && held.is_none() {
                    held = Some(buf[..n].to_vec());
                    continue;
                }
                send(&buf[..n]);
                if rnd() < f.dup_per_mille {
                    send(&buf[..n]);
                }
                if let Some(h) = held.take() {
                    send(&h);
                }
                n2.fetch_add(1, Ordering::Relaxed);
            }
        });
        Forwarder {
            addr,
            faults,
            targets,
            forwarded,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set(&self, f: Faults) {
        *self.faults.lock().unwrap() = f;
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
