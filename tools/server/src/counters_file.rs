//! Counters in a shared-memory file, read by `peregrine stat` from another
//! process while the server runs.
//!
//! Why this shape: the polling threads must not pay for observability. Each
//! thread owns one block of the file and, once a millisecond of its
//! loop's clock (whatever its idle strategy, so a loop that sleeps is as
//! fresh as one that spins), copies its plain `u64` counters into the block
//! with relaxed atomic stores: no lock, no allocation, no shared cache line
//! with another writer. A reader maps the file read-only and loads the same
//! atomics; a value may be a millisecond or two old, never torn.
//!
//! The file describes itself, so the reader needs no knowledge of which
//! counters exist:
//!
//! ```text
//! offset  size  field
//!      0     8  magic "PRGNSTAT"
//!      8     4  format version (1)
//!     12     4  number of blocks
//!     16     8  writer's process id
//!     24     8  file creation time, ns since the Unix epoch
//!     32     8  offset of the latency section (0: none)
//!     40     4  number of latency blocks
//!     44    20  zero
//!     64     -  blocks, each 64-byte aligned:
//!               64   title (UTF-8, zero padded)
//!                8   number of counters n
//!               32n  counter names (UTF-8, zero padded)
//!                8n  values (u64, written with relaxed atomic stores),
//!                    starting 8-byte aligned
//!      -     -  latency section: one block per gateway and one for the
//!               sequencer (title `sequencer`), each 64-byte aligned:
//!               64   title (the gateway's description, or `sequencer`)
//!                8   bucket count B (`peregrine_gateway::latency::BUCKET_COUNT`)
//!                8   sub-bucket bits (`peregrine_gateway::latency::SUB_BITS`)
//!                8   sequence (seqlock, below)
//!                8   zero
//!              2 x   buffer: 8 published at (ns, the writer's monotonic
//!                    clock), 8 interval length (ns), then two views (since
//!                    start, last interval), each 8 count, 8 sum (ns),
//!                    8 max (ns), 8 out of range, 8B bucket counts
//! ```
//!
//! Latency histograms are stored in the gateway crate's fixed log-linear
//! bucket layout (`peregrine_gateway::latency`), not the HdrHistogram
//! encoding: a few hundred plain counters that a reader turns into
//! quantiles (bucket upper bounds, at most 6.25% above the exact value) or
//! Prometheus buckets without knowing the HdrHistogram format.
//!
//! A histogram is many words, so relaxed per-word stores are not enough: a
//! reader could mix two publications. Each latency block is therefore a
//! seqlock over two buffers. The writer makes the sequence odd, writes the
//! buffer readers are not pointed at, and makes it even again; buffer
//! `(sequence / 2) % 2` is the last complete one, also while the sequence
//! is odd. A reader loads the sequence, copies that buffer, and keeps the
//! copy only if the writer has not since begun to overwrite it (the
//! sequence moved by at most one publication); otherwise it retries.
//!
//! Compatibility: the latency section lives in header bytes that format
//! version 1 left zero, so the version stays 1. Older readers ignore the
//! section; this reader finds none in an older file (counters only).
#![allow(unsafe_code)]

use memmap2::{Mmap, MmapMut, MmapOptions};
use peregrine_gateway::latency::{LatencyBuckets, BUCKET_COUNT, SUB_BITS};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"PRGNSTAT";
const VERSION: u32 = 1;
const HEADER: usize = 32;

/// The file header's fields, as in the table above.
mod header {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..8;
    pub const VERSION: Range<usize> = 8..12;
    pub const BLOCKS: Range<usize> = 12..16;
    pub const PID: Range<usize> = 16..24;
    pub const CREATED_NS: Range<usize> = 24..32;
    const _: () = assert!(CREATED_NS.end == super::HEADER);
    pub const LATENCY_AT: Range<usize> = 32..40;
    pub const LATENCY_BLOCKS: Range<usize> = 40..44;
}
const TITLE: usize = 64;
const NAME: usize = 32;

const fn align64(x: usize) -> usize {
    (x + 63) & !63
}

fn block_len(n: usize) -> usize {
    align64(TITLE + 8 + NAME * n + 8 * n)
}

/// Words of one latency view: count, sum, max, out of range, buckets.
const VIEW_WORDS: usize = 4 + BUCKET_COUNT;
/// Words of one latency buffer: published at, interval, two views.
const BUFFER_WORDS: usize = 2 + 2 * VIEW_WORDS;
/// Offset of the sequence word in a latency block.
const LAT_SEQ: usize = TITLE + 16;
/// Offset of the first buffer in a latency block.
const LAT_BUFFERS: usize = TITLE + 32;
/// Bytes of one latency block.
const LAT_BLOCK_LEN: usize = align64(LAT_BUFFERS + 2 * 8 * BUFFER_WORDS);
/// Reads of a latency block a reader tries before giving up on it.
const LAT_READ_ATTEMPTS: usize = 10_000;

/// Errors creating or reading a counters file.
#[derive(Debug, thiserror::Error)]
pub enum CountersFileError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Not a counters file, or a different version, or truncated.
    #[error("{0}: not a Peregrine counters file (or truncated)")]
    Format(PathBuf),
}

struct Mapping {
    map: MmapMut,
}

impl Mapping {
    /// The atomic word at byte offset `at`.
    #[inline]
    fn word(&self, at: usize) -> &AtomicU64 {
        assert!(at % 8 == 0 && at + 8 <= self.map.len());
        // SAFETY: `at` is 8-byte aligned within the mapping (checked above;
        // the mapping's base is page aligned); the mapping lives as long as
        // `self`; every access to these bytes after creation is atomic, so
        // a shared reference to an AtomicU64 is sound.
        unsafe { &*(self.map.as_ptr().add(at) as *const AtomicU64) }
    }
}

/// The writer's side: created once at start-up, then split into blocks
/// handed to the polling threads.
pub struct CountersFile {
    path: PathBuf,
    mapping: Arc<Mapping>,
    blocks: Vec<(usize, usize)>,
    latency: Vec<usize>,
}

/// One gateway's latency block: [`publish`](Self::publish) copies its
/// histograms in under the block's seqlock. Only one thread publishes to a
/// block.
pub struct LatencyBlock {
    mapping: Arc<Mapping>,
    at: usize,
}

/// One thread's block: `publish` copies its counters in.
pub struct CounterBlock {
    mapping: Arc<Mapping>,
    values: usize,
    n: usize,
}

// SAFETY: a CounterBlock only touches its own disjoint value range of the
// shared mapping, through atomic operations.
unsafe impl Send for CounterBlock {}

// SAFETY: as CounterBlock: a LatencyBlock only touches its own block of
// the mapping, through atomic operations.
unsafe impl Send for LatencyBlock {}

impl CountersFile {
    /// Creates (replacing) `path` with one block per `(title, counter
    /// names)`. Names longer than the fixed fields are cut.
    pub fn create(path: &Path, layout: &[(String, Vec<&'static str>)]) -> Result<Self, CountersFileError> {
        Self::create_with_latency(path, layout, &[])
    }

    /// As [`create`](Self::create), plus one latency block per title in
    /// `latency` (the server gives one per gateway and one for the
    /// sequencer), empty until first published.
    pub fn create_with_latency(
        path: &Path,
        layout: &[(String, Vec<&'static str>)],
        latency: &[String],
    ) -> Result<Self, CountersFileError> {
        let io = |source| CountersFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let counters_end = HEADER.max(64) + layout.iter().map(|(_, c)| block_len(c.len())).sum::<usize>();
        let total = counters_end + LAT_BLOCK_LEN * latency.len();
        let tmp = path.with_extension("tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io)?;
        file.set_len(total as u64).map_err(io)?;
        // SAFETY: a fresh file of exactly `total` bytes that this process
        // never truncates while mapped; shared so readers see the stores.
        let mut map = unsafe { MmapOptions::new().len(total).map_mut(&file) }.map_err(io)?;
        map[header::MAGIC].copy_from_slice(MAGIC);
        map[header::VERSION].copy_from_slice(&VERSION.to_le_bytes());
        map[header::BLOCKS].copy_from_slice(&(layout.len() as u32).to_le_bytes());
        map[header::PID].copy_from_slice(&(std::process::id() as u64).to_le_bytes());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        map[header::CREATED_NS].copy_from_slice(&now.to_le_bytes());
        let mut at = 64;
        let mut blocks = Vec::new();
        for (title, names) in layout {
            let t = title.as_bytes();
            let tl = t.len().min(TITLE);
            map[at..at + tl].copy_from_slice(&t[..tl]);
            map[at + TITLE..at + TITLE + 8].copy_from_slice(&(names.len() as u64).to_le_bytes());
            for (k, name) in names.iter().enumerate() {
                let o = at + TITLE + 8 + NAME * k;
                let nb = name.as_bytes();
                let nl = nb.len().min(NAME);
                map[o..o + nl].copy_from_slice(&nb[..nl]);
            }
            let values = at + TITLE + 8 + NAME * names.len();
            blocks.push((values, names.len()));
            at += block_len(names.len());
        }
        let mut latency_at = Vec::with_capacity(latency.len());
        if !latency.is_empty() {
            map[header::LATENCY_AT].copy_from_slice(&(at as u64).to_le_bytes());
            map[header::LATENCY_BLOCKS].copy_from_slice(&(latency.len() as u32).to_le_bytes());
        }
        for title in latency {
            let t = title.as_bytes();
            let tl = t.len().min(TITLE);
            map[at..at + tl].copy_from_slice(&t[..tl]);
            map[at + TITLE..at + TITLE + 8].copy_from_slice(&(BUCKET_COUNT as u64).to_le_bytes());
            map[at + TITLE + 8..at + TITLE + 16].copy_from_slice(&u64::from(SUB_BITS).to_le_bytes());
            latency_at.push(at);
            at += LAT_BLOCK_LEN;
        }
        debug_assert_eq!(at, total);
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(CountersFile {
            path: path.to_path_buf(),
            mapping: Arc::new(Mapping { map }),
            blocks,
            latency: latency_at,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the blocks, in layout order, for the threads that fill them.
    pub fn blocks(&self) -> Vec<CounterBlock> {
        self.blocks
            .iter()
            .map(|&(values, n)| CounterBlock {
                mapping: Arc::clone(&self.mapping),
                values,
                n,
            })
            .collect()
    }

    /// Takes the latency blocks, in the order of the titles given to
    /// [`create_with_latency`](Self::create_with_latency).
    pub fn latency_blocks(&self) -> Vec<LatencyBlock> {
        self.latency
            .iter()
            .map(|&at| LatencyBlock {
                mapping: Arc::clone(&self.mapping),
                at,
            })
            .collect()
    }
}

impl LatencyBlock {
    /// Publishes the since-start and last-interval histograms (`interval_ns`
    /// long, published at `now_ns`) so that a reader sees either the
    /// previous publication or this one, whole. Plain atomic stores: no
    /// lock, no allocation, no system call.
    pub fn publish(
        &self,
        since_start: &LatencyBuckets,
        interval: &LatencyBuckets,
        interval_ns: u64,
        now_ns: u64,
    ) {
        let m = &*self.mapping;
        let seq = m.word(self.at + LAT_SEQ);
        let s = seq.load(Ordering::Relaxed);
        seq.store(s + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        // The buffer readers are not pointed at: ((s + 2) / 2) % 2.
        let mut at = self.at + LAT_BUFFERS + 8 * BUFFER_WORDS * ((s as usize / 2 + 1) % 2);
        let mut put = |v: u64| {
            m.word(at).store(v, Ordering::Relaxed);
            at += 8;
        };
        put(now_ns);
        put(interval_ns);
        for view in [since_start, interval] {
            put(view.count);
            put(view.sum_ns);
            put(view.max_ns);
            put(view.out_of_range);
            for &b in &view.buckets {
                put(b);
            }
        }
        seq.store(s + 2, Ordering::Release);
    }
}

impl CounterBlock {
    #[inline]
    fn slot(&self, k: usize) -> &AtomicU64 {
        let at = self.values + 8 * k;
        let base = self.mapping.map.as_ptr();
        // SAFETY: `at` is 8-byte aligned (blocks start 64-aligned and every
        // field before the values is a multiple of 8 bytes) and lies inside
        // the mapping (k < n, checked by the caller); the mapping lives as
        // long as `self` holds its Arc; all accesses to these bytes after
        // creation are atomic, so a shared reference to AtomicU64 is sound.
        unsafe { &*(base.add(at) as *const AtomicU64) }
    }

    /// Copies `values` (in the layout's order) into the block with relaxed
    /// stores. Extra values are ignored.
    #[inline]
    pub fn publish(&self, values: &[u64]) {
        for (k, v) in values.iter().take(self.n).enumerate() {
            self.slot(k).store(*v, Ordering::Relaxed);
        }
    }
}

/// One gateway's latency histograms as last published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// The gateway's description (as its counters block's title).
    pub title: String,
    /// When it was published (ns, the writer's monotonic clock; 0: never).
    pub published_ns: u64,
    /// Length of the last interval, ns.
    pub interval_ns: u64,
    /// Every reply since start.
    pub since_start: Box<LatencyBuckets>,
    /// The replies of the last interval.
    pub interval: Box<LatencyBuckets>,
}

/// A snapshot read from a counters file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// The writer's process id.
    pub pid: u64,
    /// Blocks: title and (name, value) pairs.
    pub blocks: Vec<(String, Vec<(String, u64)>)>,
}

fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn map_file(path: &Path) -> Result<Mmap, CountersFileError> {
    let io = |source| CountersFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = || CountersFileError::Format(path.to_path_buf());
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len() as usize;
    if len < 64 {
        return Err(bad());
    }
    // SAFETY: read-only shared mapping; the writer never truncates the file
    // after creating it (it is replaced by rename, which leaves this mapping
    // on the old inode). Values are read with atomic loads.
    let map = unsafe { MmapOptions::new().len(len).map(&file) }.map_err(io)?;
    if &map[header::MAGIC] != MAGIC
        || u32::from_le_bytes(map[header::VERSION].try_into().map_err(|_| bad())?) != VERSION
    {
        return Err(bad());
    }
    Ok(map)
}

/// The atomic word at byte offset `at` of a read-only mapping.
fn load(map: &Mmap, at: usize) -> u64 {
    assert!(at % 8 == 0 && at + 8 <= map.len());
    // SAFETY: in bounds and 8-byte aligned (checked above, the mapping is
    // page aligned); the writer only stores atomically.
    unsafe { &*(map.as_ptr().add(at) as *const AtomicU64) }.load(Ordering::Relaxed)
}

/// Reads the latency histograms of the file at `path`, one per block (the
/// gateways', then the sequencer's; none in a file written before latency
/// was published). A block whose
/// writer kept overwriting it for every one of many attempts is left out.
pub fn read_latency(path: &Path) -> Result<Vec<LatencySnapshot>, CountersFileError> {
    let bad = || CountersFileError::Format(path.to_path_buf());
    let map = map_file(path)?;
    let at = u64::from_le_bytes(map[header::LATENCY_AT].try_into().map_err(|_| bad())?) as usize;
    let n = u32::from_le_bytes(map[header::LATENCY_BLOCKS].try_into().map_err(|_| bad())?) as usize;
    if n == 0 {
        return Ok(Vec::new());
    }
    if at % 64 != 0
        || n > 4096
        || at
            .checked_add(n * LAT_BLOCK_LEN)
            .is_none_or(|end| end > map.len())
    {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let b = at + k * LAT_BLOCK_LEN;
        if load(&map, b + TITLE) != BUCKET_COUNT as u64 || load(&map, b + TITLE + 8) != u64::from(SUB_BITS) {
            // Another bucket layout: not ours to interpret.
            continue;
        }
        let title = text(&map[b..b + TITLE]);
        if let Some(s) = read_latency_block(&map, b, title) {
            out.push(s);
        }
    }
    Ok(out)
}

/// One consistent copy of the latency block at `b`, or `None` when the
/// writer overwrote the buffer being read on every attempt.
fn read_latency_block(map: &Mmap, b: usize, title: String) -> Option<LatencySnapshot> {
    let mut since_start = Box::<LatencyBuckets>::default();
    let mut interval = Box::<LatencyBuckets>::default();
    for _ in 0..LAT_READ_ATTEMPTS {
        let s1 = {
            let v = load(map, b + LAT_SEQ);
            fence(Ordering::Acquire);
            v
        };
        let mut at = b + LAT_BUFFERS + 8 * BUFFER_WORDS * ((s1 as usize / 2) % 2);
        let mut get = || {
            let v = load(map, at);
            at += 8;
            v
        };
        let published_ns = get();
        let interval_ns = get();
        for view in [&mut *since_start, &mut *interval] {
            view.count = get();
            view.sum_ns = get();
            view.max_ns = get();
            view.out_of_range = get();
            for c in view.buckets.iter_mut() {
                *c = get();
            }
        }
        fence(Ordering::Acquire);
        let s2 = load(map, b + LAT_SEQ);
        // The buffer read is next overwritten by the publication that
        // makes the sequence 2 * (s1 / 2) + 3.
        if s2 <= (s1 / 2) * 2 + 2 {
            return Some(LatencySnapshot {
                title,
                published_ns,
                interval_ns,
                since_start,
                interval,
            });
        }
        std::hint::spin_loop();
    }
    None
}

/// Reads every counter of the file at `path` (another process may be
/// writing it).
pub fn read_counters(path: &Path) -> Result<CountersSnapshot, CountersFileError> {
    let bad = || CountersFileError::Format(path.to_path_buf());
    let map = map_file(path)?;
    let len = map.len();
    let nblocks = u32::from_le_bytes(map[header::BLOCKS].try_into().map_err(|_| bad())?) as usize;
    let pid = u64::from_le_bytes(map[header::PID].try_into().map_err(|_| bad())?);
    let mut at = 64;
    let mut blocks = Vec::with_capacity(nblocks.min(1024));
    for _ in 0..nblocks {
        if at + TITLE + 8 > len {
            return Err(bad());
        }
        let title = text(&map[at..at + TITLE]);
        let n = u64::from_le_bytes(map[at + TITLE..at + TITLE + 8].try_into().map_err(|_| bad())?) as usize;
        if n > 4096 || at + block_len(n) > len {
            return Err(bad());
        }
        let values = at + TITLE + 8 + NAME * n;
        let mut pairs = Vec::with_capacity(n);
        for k in 0..n {
            let name = text(&map[at + TITLE + 8 + NAME * k..at + TITLE + 8 + NAME * (k + 1)]);
            pairs.push((name, load(&map, values + 8 * k)));
        }
        blocks.push((title, pairs));
        at += block_len(n);
    }
    Ok(CountersSnapshot { pid, blocks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_values_are_read_back_by_name() {
        let path = std::env::temp_dir().join(format!("peregrine-counters-{}.stats", std::process::id()));
        let f = CountersFile::create(
            &path,
            &[
                ("sequencer".into(), vec!["sequenced", "replies"]),
                ("udp gateway 0".into(), vec!["rx_packets", "accepted", "rejected"]),
            ],
        )
        .unwrap();
        let blocks = f.blocks();
        blocks[0].publish(&[42, 43]);
        blocks[1].publish(&[1, 2, 3, 99]);
        let s = read_counters(&path).unwrap();
        assert_eq!(s.pid, std::process::id() as u64);
        assert_eq!(s.blocks[0].0, "sequencer");
        assert_eq!(
            s.blocks[0].1,
            vec![("sequenced".into(), 42), ("replies".into(), 43)]
        );
        assert_eq!(s.blocks[1].1[2], ("rejected".into(), 3));
        blocks[0].publish(&[50, 51]);
        assert_eq!(
            read_counters(&path).unwrap().blocks[0].1[0].1,
            50,
            "live updates visible"
        );
        std::fs::write(
            &path,
            b"garbage that is long enough to pass the size check ..........",
        )
        .unwrap();
        assert!(read_counters(&path).is_err());
        let _ = std::fs::remove_file(&path);
    }

    /// A publication whose every field says `i` and whose views each hold
    /// `TOTAL` values, spread over buckets that move with `i`.
    fn publication(i: u64, since: &mut LatencyBuckets, interval: &mut LatencyBuckets) {
        const TOTAL: u64 = 1_000;
        for v in [&mut *since, &mut *interval] {
            v.buckets.fill(0);
            v.count = TOTAL;
            v.sum_ns = i;
            v.max_ns = i;
            v.out_of_range = i;
        }
        let k = i % TOTAL;
        since.buckets[i as usize % BUCKET_COUNT] += TOTAL - k;
        since.buckets[(i as usize * 7 + 1) % BUCKET_COUNT] += k;
        interval.buckets[(i as usize * 3) % BUCKET_COUNT] = TOTAL;
    }

    #[test]
    fn a_reader_racing_the_writer_never_sees_a_torn_histogram() {
        let path = std::env::temp_dir().join(format!("peregrine-latency-race-{}.stats", std::process::id()));
        let f = CountersFile::create_with_latency(
            &path,
            &[("sequencer".into(), vec!["sequenced"])],
            &["udp gateway 0 on 127.0.0.1:1".into()],
        )
        .unwrap();
        assert!(
            read_latency(&path).unwrap()[0].since_start.count == 0,
            "empty until published"
        );
        let block = f.latency_blocks().pop().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mut since, mut interval) = (LatencyBuckets::default(), LatencyBuckets::default());
                let mut i = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    publication(i, &mut since, &mut interval);
                    block.publish(&since, &interval, i, i);
                    if i % 16 == 0 {
                        std::thread::yield_now();
                    }
                    i += 1;
                }
                i
            })
        };
        let (mut accepted, mut distinct, mut last) = (0u64, 0u64, 0u64);
        let until = std::time::Instant::now() + std::time::Duration::from_millis(1500);
        while std::time::Instant::now() < until {
            let snaps = read_latency(&path).unwrap();
            let Some(s) = snaps.first() else { continue };
            let i = s.published_ns;
            if i == 0 {
                continue;
            }
            let (mut since, mut interval) = (LatencyBuckets::default(), LatencyBuckets::default());
            publication(i, &mut since, &mut interval);
            assert_eq!(s.interval_ns, i, "torn: header of another publication");
            assert_eq!(*s.since_start, since, "torn since-start view at publication {i}");
            assert_eq!(*s.interval, interval, "torn interval view at publication {i}");
            assert!(i >= last, "publications read out of order");
            accepted += 1;
            distinct += u64::from(i != last);
            last = i;
        }
        stop.store(true, Ordering::Relaxed);
        let written = writer.join().unwrap();
        assert!(
            accepted > 10 && distinct > 2,
            "reader made progress: {accepted} reads, {distinct} publications, {written} written"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_file_without_latency_blocks_reads_as_none() {
        let path = std::env::temp_dir().join(format!("peregrine-latency-none-{}.stats", std::process::id()));
        let _f = CountersFile::create(&path, &[("sequencer".into(), vec!["sequenced"])]).unwrap();
        assert!(read_latency(&path).unwrap().is_empty());
        assert_eq!(read_counters(&path).unwrap().blocks.len(), 1);
        let _ = std::fs::remove_file(&path);
    }
}
