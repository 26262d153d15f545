//! The entry index: one fixed-size, checksummed row per Raft entry saying
//! which journal records make it up.
//!
//! The journal holds the records themselves; what Raft adds per entry
//! (index, term, where its records start and how many there are) is tiny,
//! so it lives in its own append-only file rather than in the journal's
//! format. Rows are fixed-size so row `k` sits at a computed offset, a torn
//! append is recognisable (a short or checksum-failing last row), and
//! discarding a suffix is a file truncation.
//!
//! # Format (little-endian)
//!
//! Header (32 bytes): magic `PRGNEIDX` (8), format version u32 (1), row
//! length u32 (32), reserved zeros (12), CRC32C of bytes 0..28 (4).
//!
//! Row `k` at offset `32 + 32·k`:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8 | log index |
//! | 8  | 8 | term |
//! | 16 | 8 | global sequence of the entry's first record (for an empty entry: the next sequence) |
//! | 24 | 4 | record count |
//! | 28 | 4 | CRC32C of bytes 0..28 |

use super::error::JournalStoreError;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"PRGNEIDX";
const VERSION: u32 = 1;
/// Bytes of the header and of each row.
pub const ROW_LEN: usize = 32;

/// One entry's place in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// Log index.
    pub index: u64,
    /// Term the entry was proposed in.
    pub term: u64,
    /// Global sequence of its first record.
    pub first_seq: u64,
    /// Records it holds.
    pub count: u32,
}

impl Row {
    /// One past the global sequence of its last record.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count)
    }

    fn encode(&self) -> [u8; ROW_LEN] {
        let mut b = [0u8; ROW_LEN];
        b[field::INDEX].copy_from_slice(&self.index.to_le_bytes());
        b[field::TERM].copy_from_slice(&self.term.to_le_bytes());
        b[field::FIRST_SEQ].copy_from_slice(&self.first_seq.to_le_bytes());
        b[field::COUNT].copy_from_slice(&self.count.to_le_bytes());
        seal(&mut b);
        b
    }

    /// `None` when the checksum does not match.
    fn decode(b: &[u8; ROW_LEN]) -> Option<Row> {
        let u64_at = |r: Range<usize>| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[r]);
            u64::from_le_bytes(w)
        };
        let u32_at = |r: Range<usize>| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[r]);
            u32::from_le_bytes(w)
        };
        (u32_at(field::CRC) == crc32c::crc32c(&b[..field::CRC.start])).then(|| Row {
            index: u64_at(field::INDEX),
            term: u64_at(field::TERM),
            first_seq: u64_at(field::FIRST_SEQ),
            count: u32_at(field::COUNT),
        })
    }
}

/// Where each field of a row (and of the header row) lies, stated once.
mod field {
    use std::ops::Range;
    /// Row: log index.
    pub const INDEX: Range<usize> = 0..8;
    /// Row: term.
    pub const TERM: Range<usize> = 8..16;
    /// Row: first global sequence.
    pub const FIRST_SEQ: Range<usize> = 16..24;
    /// Row: record count.
    pub const COUNT: Range<usize> = 24..28;
    /// Header: magic.
    pub const MAGIC: Range<usize> = 0..8;
    /// Header: format version.
    pub const VERSION: Range<usize> = 8..12;
    /// Header: row length.
    pub const ROW_LEN: Range<usize> = 12..16;
    /// Both: CRC32C of every byte before it.
    pub const CRC: Range<usize> = 28..32;
}

/// Writes the CRC32C of every byte before [`field::CRC`] into it.
fn seal(b: &mut [u8; ROW_LEN]) {
    let crc = crc32c::crc32c(&b[..field::CRC.start]);
    b[field::CRC].copy_from_slice(&crc.to_le_bytes());
}

fn header() -> [u8; ROW_LEN] {
    let mut b = [0u8; ROW_LEN];
    b[field::MAGIC].copy_from_slice(MAGIC);
    b[field::VERSION].copy_from_slice(&VERSION.to_le_bytes());
    b[field::ROW_LEN].copy_from_slice(&(ROW_LEN as u32).to_le_bytes());
    seal(&mut b);
    b
}

/// The index file, open for appending.
#[derive(Debug)]
pub struct IndexFile {
    path: PathBuf,
    file: File,
    /// Rows in the file.
    rows: u64,
    /// Encoding buffer, reused by every append.
    buf: Vec<u8>,
}

/// What [`IndexFile::open`] found.
pub struct Loaded {
    pub file: IndexFile,
    pub rows: Vec<Row>,
    /// Rows dropped as a torn tail (short or failing their checksum).
    pub torn_rows: u64,
}

impl IndexFile {
    /// Opens (creating it if missing: written under a temporary name,
    /// fsynced, renamed, directory fsynced) and reads the index at `path`.
    /// A short last row and everything from the first row failing its
    /// checksum on are a torn tail: cut off the file (durably) and counted.
    /// A bad header or rows that do not continue each other (indexes,
    /// sequences, terms) are [`JournalStoreError::CorruptIndex`].
    pub fn open(path: &Path) -> Result<Loaded, JournalStoreError> {
        let io = |e| io_err(path, e);
        if !path.exists() {
            let tmp = path.with_extension("idx.tmp");
            let mut f = File::create(&tmp).map_err(io)?;
            f.write_all(&header()).map_err(io)?;
            f.sync_all().map_err(io)?;
            drop(f);
            fs::rename(&tmp, path).map_err(io)?;
            sync_parent(path)?;
        }
        let bytes = fs::read(path).map_err(io)?;
        let corrupt = |offset: u64, reason: String| JournalStoreError::CorruptIndex {
            path: path.to_path_buf(),
            offset,
            reason,
        };
        if bytes.len() < ROW_LEN || bytes[..ROW_LEN] != header() {
            return Err(corrupt(0, "bad header (not a version-1 entry index)".into()));
        }
        let mut rows: Vec<Row> = Vec::with_capacity((bytes.len() - ROW_LEN) / ROW_LEN);
        let mut chunks = bytes[ROW_LEN..].chunks_exact(ROW_LEN);
        for chunk in chunks.by_ref() {
            let offset = (ROW_LEN * (rows.len() + 1)) as u64;
            let mut b = [0u8; ROW_LEN];
            b.copy_from_slice(chunk);
            let Some(row) = Row::decode(&b) else { break };
            if let Some(prev) = rows.last() {
                if row.index != prev.index + 1 || row.first_seq != prev.end_seq() || row.term < prev.term {
                    return Err(corrupt(
                        offset,
                        format!("row {row:?} does not continue the row before it ({prev:?})"),
                    ));
                }
            }
            rows.push(row);
        }
        let total_rows = ((bytes.len() - ROW_LEN) / ROW_LEN) as u64;
        let torn_rows = total_rows - rows.len() as u64 + u64::from(!chunks.remainder().is_empty());
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io)?;
        let mut index = IndexFile {
            path: path.to_path_buf(),
            file,
            rows: total_rows,
            buf: Vec::new(),
        };
        if torn_rows > 0 || (bytes.len() - ROW_LEN) % ROW_LEN != 0 {
            index.truncate(rows.len() as u64)?;
        }
        index.rows = rows.len() as u64;
        Ok(Loaded {
            file: index,
            rows,
            torn_rows,
        })
    }

    /// Appends `rows` with one write; fsynced (`fdatasync`) when `sync`.
    pub fn append(&mut self, rows: &[Row], sync: bool) -> Result<(), JournalStoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        for r in rows {
            self.buf.extend_from_slice(&r.encode());
        }
        let at = ROW_LEN as u64 * (self.rows + 1);
        self.file
            .write_all_at(&self.buf, at)
            .map_err(|e| io_err(&self.path, e))?;
        if sync {
            self.file.sync_data().map_err(|e| io_err(&self.path, e))?;
        }
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Replaces the whole file with a header and `rows` (after a snapshot
    /// dropped the rows before it): written under a temporary name,
    /// fsynced, renamed over the file, directory fsynced.
    pub fn rewrite(&mut self, rows: &[Row]) -> Result<(), JournalStoreError> {
        let tmp = self.path.with_extension("idx.tmp");
        let io = |e| io_err(&tmp, e);
        let mut bytes = Vec::with_capacity((rows.len() + 1) * ROW_LEN);
        bytes.extend_from_slice(&header());
        for r in rows {
            bytes.extend_from_slice(&r.encode());
        }
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(|e| io_err(&self.path, e))?;
        sync_parent(&self.path)?;
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| io_err(&self.path, e))?;
        self.rows = rows.len() as u64;
        Ok(())
    }

    /// Keeps the first `rows` rows and discards the rest, durably
    /// (truncate + fsync) whatever the flush policy: a discarded row must
    /// never come back.
    pub fn truncate(&mut self, rows: u64) -> Result<(), JournalStoreError> {
        let len = ROW_LEN as u64 * (rows + 1);
        self.file.set_len(len).map_err(|e| io_err(&self.path, e))?;
        self.file.sync_all().map_err(|e| io_err(&self.path, e))?;
        self.rows = rows;
        Ok(())
    }
}

fn io_err(path: &Path, source: io::Error) -> JournalStoreError {
    JournalStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_parent(path: &Path) -> Result<(), JournalStoreError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: u64, first_seq: u64, count: u32) -> Row {
        Row {
            index,
            term: 1,
            first_seq,
            count,
        }
    }

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("peregrine-eidx-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn rows_round_trip_and_every_bit_flip_is_caught() {
        let r = row(7, 100, 3);
        let b = r.encode();
        assert_eq!(Row::decode(&b), Some(r));
        for bit in 0..ROW_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Row::decode(&c), None, "bit {bit}");
        }
    }

    #[test]
    fn torn_tail_is_cut_and_broken_continuity_is_an_error() {
        let d = temp("torn");
        let p = d.join("entries.idx");
        let mut l = IndexFile::open(&p).unwrap();
        assert!(l.rows.is_empty());
        l.file
            .append(&[row(1, 1, 2), row(2, 3, 0), row(3, 3, 1)], true)
            .unwrap();
        drop(l);
        // Half a row more: torn.
        let mut bytes = fs::read(&p).unwrap();
        bytes.extend_from_slice(&row(4, 4, 1).encode()[..10]);
        fs::write(&p, &bytes).unwrap();
        let l = IndexFile::open(&p).unwrap();
        assert_eq!((l.rows.len(), l.torn_rows), (3, 1));
        assert_eq!(fs::metadata(&p).unwrap().len(), 4 * ROW_LEN as u64);
        drop(l);
        // A checksum failure in the last row: torn.
        let mut bytes = fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        fs::write(&p, &bytes).unwrap();
        let l = IndexFile::open(&p).unwrap();
        assert_eq!(l.rows, vec![row(1, 1, 2), row(2, 3, 0)]);
        drop(l);
        // Valid rows that skip a sequence: corruption.
        let mut bytes = fs::read(&p).unwrap();
        bytes.extend_from_slice(&row(3, 9, 1).encode());
        fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            IndexFile::open(&p),
            Err(JournalStoreError::CorruptIndex { offset: 96, .. })
        ));
        fs::write(&p, b"nonsense").unwrap();
        assert!(matches!(
            IndexFile::open(&p),
            Err(JournalStoreError::CorruptIndex { offset: 0, .. })
        ));
        let _ = fs::remove_dir_all(&d);
    }
}
