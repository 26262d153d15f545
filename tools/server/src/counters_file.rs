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
//!     32     -  blocks, each 64-byte aligned:
//!               64   title (UTF-8, zero padded)
//!                8   number of counters n
//!               32n  counter names (UTF-8, zero padded)
//!                8n  values (u64, written with relaxed atomic stores),
//!                    starting 8-byte aligned
//! ```
#![allow(unsafe_code)]

use memmap2::{MmapMut, MmapOptions};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
}
const TITLE: usize = 64;
const NAME: usize = 32;

fn align64(x: usize) -> usize {
    (x + 63) & !63
}

fn block_len(n: usize) -> usize {
    align64(TITLE + 8 + NAME * n + 8 * n)
}

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

/// The writer's side: created once at start-up, then split into blocks
/// handed to the polling threads.
pub struct CountersFile {
    path: PathBuf,
    mapping: Arc<Mapping>,
    blocks: Vec<(usize, usize)>,
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

impl CountersFile {
    /// Creates (replacing) `path` with one block per `(title, counter
    /// names)`. Names longer than the fixed fields are cut.
    pub fn create(path: &Path, layout: &[(String, Vec<&'static str>)]) -> Result<Self, CountersFileError> {
        let io = |source| CountersFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let total = HEADER.max(64) + layout.iter().map(|(_, c)| block_len(c.len())).sum::<usize>();
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
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(CountersFile {
            path: path.to_path_buf(),
            mapping: Arc::new(Mapping { map }),
            blocks,
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

/// Reads every counter of the file at `path` (another process may be
/// writing it).
pub fn read_counters(path: &Path) -> Result<CountersSnapshot, CountersFileError> {
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
    // on the old inode). Values are read with atomic loads below.
    let map = unsafe { MmapOptions::new().len(len).map(&file) }.map_err(io)?;
    if &map[header::MAGIC] != MAGIC
        || u32::from_le_bytes(map[header::VERSION].try_into().map_err(|_| bad())?) != VERSION
    {
        return Err(bad());
    }
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
            // SAFETY: in bounds (checked above) and 8-byte aligned (see
            // CounterBlock::slot); the writer only stores atomically.
            let v =
                unsafe { &*(map.as_ptr().add(values + 8 * k) as *const AtomicU64) }.load(Ordering::Relaxed);
            pairs.push((name, v));
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
}
