//! [`HardStateFile`]: Raft's hard state (term, vote, commit) and the
//! membership (`ConfState`) in one small checksummed file.
//!
//! The hard state changes rarely (a new term, a vote, a commit advance) but
//! must never be half-written: a node that forgets its vote can vote twice
//! in one term and elect two leaders. So the file is replaced, never edited:
//! written whole under a temporary name, fsynced, renamed over the old one,
//! and the directory fsynced. A reader therefore sees the old file or the
//! new one; a CRC32C over the whole content turns anything else (a torn
//! write on a filesystem that does not honour the rename order, bit rot, a
//! truncated copy) into a typed error instead of a wrong vote.
//!
//! # Format (little-endian)
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8 | magic `PRGNHARD` |
//! | 8  | 2 | format version (1) |
//! | 10 | 2 | reserved, zero |
//! | 12 | 8 | term |
//! | 20 | 8 | vote (0: none) |
//! | 28 | 8 | commit index |
//! | 36 | 4 | voter count `v` |
//! | 40 | 8·v | voter ids |
//! | … | 4 | learner count `l` |
//! | … | 8·l | learner ids |
//! | end−4 | 4 | CRC32C of every byte before it |

use raft::eraftpb::{ConfState, HardState};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"PRGNHARD";
const VERSION: u16 = 1;
/// Largest membership list accepted when reading (far above 5 voters; it
/// only bounds what a corrupt count can make us allocate).
const MAX_IDS: u32 = 64;

/// Why a hard-state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HardStateFileError {
    /// An I/O error on the file, its temporary or its directory.
    #[error("hard state {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file is shorter than its own content says (torn or truncated).
    #[error("hard state {path}: truncated ({len} bytes)")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// Not a hard-state file.
    #[error("hard state {path}: bad magic")]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// A format version this build does not know.
    #[error("hard state {path}: unsupported version {version}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u16,
    },
    /// The checksum does not match the content.
    #[error("hard state {path}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// CRC32C stored in the file.
        stored: u32,
        /// CRC32C of the content.
        computed: u32,
    },
    /// Well-checksummed but inconsistent content (bytes after the end, an
    /// absurd member count).
    #[error("hard state {path}: malformed: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
}

/// The hard state and membership of one node, stored at one path.
#[derive(Debug, Clone)]
pub struct HardStateFile {
    path: PathBuf,
}

impl HardStateFile {
    /// The file at `path` (not touched until [`load`](Self::load) or
    /// [`store`](Self::store)); its directory must exist.
    pub fn new(path: impl Into<PathBuf>) -> HardStateFile {
        HardStateFile { path: path.into() }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file: `Ok(None)` if it does not exist (a node that never
    /// voted), a typed error if it exists but is not a complete, intact
    /// hard-state file. Never panics on any content.
    pub fn load(&self) -> Result<Option<(HardState, ConfState)>, HardStateFileError> {
        match fs::read(&self.path) {
            Ok(bytes) => decode(&bytes, &self.path).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(self.io(source)),
        }
    }

    /// Replaces the file atomically and durably: write `<path>.tmp`, fsync
    /// it, rename it over `<path>`, fsync the directory. When this returns
    /// `Ok`, a crash at any later point leaves this content.
    pub fn store(&self, hard_state: &HardState, conf_state: &ConfState) -> Result<(), HardStateFileError> {
        let bytes = encode(hard_state, conf_state);
        let tmp = self.tmp_path();
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
        write().map_err(|e| self.io(e))
    }

    fn tmp_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".tmp");
        PathBuf::from(name)
    }

    fn io(&self, source: io::Error) -> HardStateFileError {
        HardStateFileError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

fn encode(hs: &HardState, cs: &ConfState) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + 8 * (cs.voters.len() + cs.learners.len()));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    for v in [hs.term, hs.vote, hs.commit] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for ids in [&cs.voters, &cs.learners] {
        out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for id in ids.iter() {
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A cursor over the checked body that reports truncation instead of
/// panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.at.checked_add(N)?;
        let chunk: [u8; N] = self.bytes.get(self.at..end)?.try_into().ok()?;
        self.at = end;
        Some(chunk)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
}

fn decode(bytes: &[u8], path: &Path) -> Result<(HardState, ConfState), HardStateFileError> {
    let truncated = || HardStateFileError::Truncated {
        path: path.to_owned(),
        len: bytes.len(),
    };
    let malformed = |what| HardStateFileError::Malformed {
        path: path.to_owned(),
        what,
    };
    if bytes.len() < MAGIC.len() {
        return Err(truncated());
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(HardStateFileError::BadMagic {
            path: path.to_owned(),
        });
    }
    if bytes.len() < 12 + 24 + 8 + 4 {
        return Err(truncated());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32c::crc32c(body);
    let version = u16::from_le_bytes([body[8], body[9]]);
    if stored != computed {
        // A torn tail most often shows up as a checksum mismatch; a file
        // cut short of its own lists is reported as truncated below only
        // when the checksum happens to match.
        return Err(HardStateFileError::Checksum {
            path: path.to_owned(),
            stored,
            computed,
        });
    }
    if version != VERSION {
        return Err(HardStateFileError::UnsupportedVersion {
            path: path.to_owned(),
            version,
        });
    }
    let mut r = Reader { bytes: body, at: 12 };
    let hs = HardState {
        term: r.u64().ok_or_else(truncated)?,
        vote: r.u64().ok_or_else(truncated)?,
        commit: r.u64().ok_or_else(truncated)?,
        ..HardState::default()
    };
    let mut cs = ConfState::default();
    for list in [&mut cs.voters, &mut cs.learners] {
        let n = r.u32().ok_or_else(truncated)?;
        if n > MAX_IDS {
            return Err(malformed("member count out of range"));
        }
        for _ in 0..n {
            list.push(r.u64().ok_or_else(truncated)?);
        }
    }
    if r.at != body.len() {
        return Err(malformed("bytes after the membership lists"));
    }
    Ok((hs, cs))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!("peregrine-hs-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn sample() -> (HardState, ConfState) {
        let hs = HardState {
            term: 7,
            vote: 3,
            commit: 1234,
            ..HardState::default()
        };
        let cs = ConfState {
            voters: vec![1, 2, 3, 4, 5],
            ..ConfState::default()
        };
        (hs, cs)
    }

    #[test]
    fn round_trips_and_replaces() {
        let dir = TempDir::new("rt");
        let f = HardStateFile::new(dir.0.join("hard_state"));
        assert!(f.load().unwrap().is_none());
        let (mut hs, cs) = sample();
        f.store(&hs, &cs).unwrap();
        assert_eq!(f.load().unwrap(), Some((hs.clone(), cs.clone())));
        hs.commit = 2000;
        f.store(&hs, &cs).unwrap();
        assert_eq!(f.load().unwrap(), Some((hs, cs)));
        assert!(!f.tmp_path().exists());
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let (hs, cs) = sample();
        let bytes = encode(&hs, &cs);
        let path = Path::new("hs");
        for len in 0..bytes.len() {
            let err = decode(&bytes[..len], path).unwrap_err();
            assert!(
                matches!(
                    err,
                    HardStateFileError::Truncated { .. } | HardStateFileError::Checksum { .. }
                ),
                "len {len}: {err}"
            );
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let (hs, cs) = sample();
        let bytes = encode(&hs, &cs);
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(
                decode(&b, Path::new("hs")).is_err(),
                "flip of bit {i} went unnoticed"
            );
        }
    }

    #[test]
    fn wrong_magic_version_and_trailing_bytes() {
        let (hs, cs) = sample();
        let path = Path::new("hs");
        let mut b = encode(&hs, &cs);
        b[0] = b'X';
        assert!(matches!(
            decode(&b, path),
            Err(HardStateFileError::BadMagic { .. })
        ));

        let mut b = encode(&hs, &cs);
        b.truncate(b.len() - 4);
        b[8] = 9;
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode(&b, path),
            Err(HardStateFileError::UnsupportedVersion { version: 9, .. })
        ));

        let mut b = encode(&hs, &cs);
        b.truncate(b.len() - 4);
        b.extend_from_slice(&[0; 3]);
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode(&b, path),
            Err(HardStateFileError::Malformed { .. })
        ));

        let mut b = encode(&hs, &cs);
        b.truncate(b.len() - 4);
        b[36..40].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode(&b, path),
            Err(HardStateFileError::Malformed { .. })
        ));
    }

    #[test]
    fn a_torn_file_on_disk_is_refused_and_a_leftover_temp_is_ignored() {
        let dir = TempDir::new("torn");
        let f = HardStateFile::new(dir.0.join("hard_state"));
        let (hs, cs) = sample();
        f.store(&hs, &cs).unwrap();
        // A crash mid-store leaves a partial temp file: the real one wins.
        fs::write(f.tmp_path(), &encode(&hs, &cs)[..10]).unwrap();
        assert_eq!(f.load().unwrap(), Some((hs.clone(), cs.clone())));
        // A torn real file (no atomic rename underneath) is an error.
        let bytes = encode(&hs, &cs);
        fs::write(f.path(), &bytes[..bytes.len() - 5]).unwrap();
        assert!(f.load().is_err());
        fs::write(f.path(), b"").unwrap();
        assert!(matches!(
            f.load(),
            Err(HardStateFileError::Truncated { len: 0, .. })
        ));
        // Storing again repairs it.
        f.store(&hs, &cs).unwrap();
        assert_eq!(f.load().unwrap(), Some((hs, cs)));
    }
}
