//! The installed Raft snapshot: metadata and data in one checksummed file,
//! replaced atomically (written whole under a temporary name, fsynced,
//! renamed, directory fsynced), like the hard state.
//!
//! # Snapshot data
//!
//! To restart the journal after a snapshot the store must know the last
//! global sequence the snapshot covers, which Raft's metadata does not
//! carry. So a snapshot's data, as this store produces and expects it, is
//! that sequence (8 bytes, little-endian) followed by the application's
//! opaque bytes ([`encode_snapshot_data`], [`decode_snapshot_data`]).
//!
//! # Format (little-endian)
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8 | magic `PRGNSNAP` |
//! | 8  | 2 | format version (1) |
//! | 10 | 2 | flags: bit 0 = the journal was restarted after the snapshot |
//! | 12 | 8 | index |
//! | 20 | 8 | term |
//! | 28 | 4 | voter count `v`, then 8·v voter ids |
//! | …  | 4 | learner count `l`, then 8·l learner ids |
//! | …  | 8 | data length `n`, then `n` data bytes |
//! | end−4 | 4 | CRC32C of every byte before it |

use super::error::JournalStoreError;
use raft::eraftpb::{ConfState, Snapshot, SnapshotMetadata};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"PRGNSNAP";
const VERSION: u16 = 1;
const FLAG_RESET: u16 = 1;
/// Bounds what a corrupt count can make a reader allocate.
const MAX_IDS: u32 = 64;

/// Snapshot data as this store understands it: `last_seq` (the last global
/// sequence the snapshot covers) then the application's bytes.
pub fn encode_snapshot_data(last_seq: u64, app: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + app.len());
    out.extend_from_slice(&last_seq.to_le_bytes());
    out.extend_from_slice(app);
    out
}

/// Splits snapshot data into (last global sequence, application bytes);
/// `None` if it is shorter than the 8-byte sequence.
pub fn decode_snapshot_data(data: &[u8]) -> Option<(u64, &[u8])> {
    let (seq, app) = data.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*seq), app))
}

/// A snapshot as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSnapshot {
    /// Raft's snapshot (metadata and data).
    pub snapshot: Snapshot,
    /// Last global sequence it covers (from its data).
    pub last_seq: u64,
    /// Whether installing it restarted the journal at `last_seq + 1`
    /// (the log did not contain it) rather than keeping the log after it.
    pub reset_journal: bool,
}

impl StoredSnapshot {
    /// Its metadata.
    pub fn meta(&self) -> &SnapshotMetadata {
        self.snapshot.get_metadata()
    }
}

/// Where the snapshot lives.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
}

impl SnapshotFile {
    pub fn new(path: PathBuf) -> SnapshotFile {
        SnapshotFile { path }
    }

    /// Reads it: `Ok(None)` if there is none, a typed error if it is not an
    /// intact snapshot file.
    pub fn load(&self) -> Result<Option<StoredSnapshot>, JournalStoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => decode(&bytes)
                .map(Some)
                .map_err(|reason| JournalStoreError::CorruptSnapshot {
                    path: self.path.clone(),
                    reason,
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(JournalStoreError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Replaces it atomically and durably.
    pub fn store(&self, s: &StoredSnapshot) -> Result<(), JournalStoreError> {
        let bytes = encode(s);
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            let dir = match self.path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            File::open(dir)?.sync_all()
        };
        write().map_err(|source| JournalStoreError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

fn encode(s: &StoredSnapshot) -> Vec<u8> {
    let meta = s.meta();
    let cs = meta.get_conf_state();
    let data: &[u8] = &s.snapshot.data;
    let mut out = Vec::with_capacity(64 + 8 * (cs.voters.len() + cs.learners.len()) + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    let flags = if s.reset_journal { FLAG_RESET } else { 0 };
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&meta.index.to_le_bytes());
    out.extend_from_slice(&meta.term.to_le_bytes());
    for ids in [&cs.voters, &cs.learners] {
        out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for id in ids.iter() {
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).ok_or("length overflow")?;
        let chunk = self.bytes.get(self.at..end).ok_or("truncated")?;
        self.at = end;
        Ok(chunk)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, String> {
        self.array::<8>().map(u64::from_le_bytes)
    }
}

fn decode(bytes: &[u8]) -> Result<StoredSnapshot, String> {
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err("truncated".into());
    };
    if !body.starts_with(MAGIC) {
        return Err("bad magic".into());
    }
    let stored = u32::from_le_bytes(*crc);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(format!(
            "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    let mut r = Reader { bytes: body, at: 8 };
    let version = u16::from_le_bytes(r.array()?);
    if version != VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let flags = u16::from_le_bytes(r.array()?);
    let mut meta = SnapshotMetadata {
        index: r.u64()?,
        term: r.u64()?,
        ..SnapshotMetadata::default()
    };
    let mut cs = ConfState::default();
    for list in [&mut cs.voters, &mut cs.learners] {
        let n = u32::from_le_bytes(r.array()?);
        if n > MAX_IDS {
            return Err("member count out of range".into());
        }
        for _ in 0..n {
            list.push(r.u64()?);
        }
    }
    meta.set_conf_state(cs);
    let len = usize::try_from(r.u64()?).map_err(|_| "data length out of range")?;
    let data = r.take(len)?.to_vec();
    if r.at != body.len() {
        return Err("bytes after the data".into());
    }
    let (last_seq, _) = decode_snapshot_data(&data).ok_or("data shorter than its 8-byte last sequence")?;
    let mut snapshot = Snapshot::default();
    snapshot.set_metadata(meta);
    snapshot.data = data.into();
    Ok(StoredSnapshot {
        snapshot,
        last_seq,
        reset_journal: flags & FLAG_RESET != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredSnapshot {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 9;
        snapshot.mut_metadata().term = 3;
        snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        snapshot.data = encode_snapshot_data(77, b"app state").into();
        StoredSnapshot {
            snapshot,
            last_seq: 77,
            reset_journal: true,
        }
    }

    #[test]
    fn round_trips_and_every_bit_flip_and_truncation_is_an_error() {
        let s = sample();
        let b = encode(&s);
        assert_eq!(decode(&b), Ok(s));
        for bit in 0..b.len() * 8 {
            let mut c = b.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&c).is_err(), "bit {bit}");
        }
        for len in 0..b.len() {
            assert!(decode(&b[..len]).is_err(), "len {len}");
        }
        assert_eq!(
            decode_snapshot_data(&encode_snapshot_data(5, b"x")),
            Some((5, &b"x"[..]))
        );
        assert_eq!(decode_snapshot_data(b"short"), None);
    }
}
