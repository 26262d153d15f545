//! Segment files: names, creation (preallocated, header written, made
//! durable and atomically renamed into place), opening for write.

use super::format::{encode_header, SegmentHeader, HEADER_LEN};
use super::map;
use super::JournalError;
use memmap2::MmapMut;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// File-name suffix of a segment.
pub const SEGMENT_SUFFIX: &str = ".journal";
/// Suffix of a segment being created (never read; removed by recovery).
pub const TMP_SUFFIX: &str = ".journal.tmp";
/// Digits of the zero-padded first sequence in a segment name.
const NAME_DIGITS: usize = 20;

/// How a new segment's blocks are reserved.
///
/// Measured on the project VM (ext4, `benches/benches/journal.rs`): a
/// durable flush of 1 record costs ~105 µs over fallocated extents and
/// ~260 µs over zero-filled ones; 16 records ~140 µs either way; 256 records
/// ~190–230 µs zero-filled vs ~275–315 µs fallocated. Zero-filling also
/// writes the whole segment once more while it is created, and that I/O
/// competes with the syncs of `durable` mode (seen as ~4 ms syncs while a
/// background zero-fill was running). Hence the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Prealloc {
    /// `fallocate` only: blocks reserved as unwritten extents; reads return
    /// zeros and writes through the mapping cannot fail for lack of space.
    /// Creation is quick. Each later sync also commits the extent
    /// conversion (metadata) of the pages it writes. Default.
    #[default]
    Fallocate,
    /// `fallocate`, then zeros written over the whole file and synced before
    /// the segment is used, so later syncs are pure data overwrites.
    ZeroFill,
}

/// `NNNNNNNNNNNNNNNNNNNN.journal` for a segment starting at `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:0NAME_DIGITS$}{SEGMENT_SUFFIX}")
}

/// The first sequence encoded in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn io_err(path: &Path, source: io::Error) -> JournalError {
    JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// fsync of a directory, so a created/renamed/removed entry is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Creates segment `first_seq` of `size` bytes in `dir`: written under a
/// temporary name, preallocated, header written, fsynced, renamed into place
/// and the directory fsynced. A segment file under its final name therefore
/// always has a complete header on disk. Refuses to replace an existing file.
pub fn create_segment(
    dir: &Path,
    first_seq: u64,
    size: u64,
    prealloc: Prealloc,
) -> Result<PathBuf, JournalError> {
    let name = segment_name(first_seq);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{first_seq:0NAME_DIGITS$}{TMP_SUFFIX}"));
    if path.exists() {
        return Err(io_err(
            &path,
            io::Error::new(io::ErrorKind::AlreadyExists, "segment already exists"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, e))?;
    let r = (|| -> io::Result<()> {
        if let Err(e) = map::fallocate(&file, size) {
            // Filesystems without fallocate: size the file and zero it.
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(e);
            }
            file.set_len(size)?;
            zero_fill(&file, size)?;
        } else if prealloc == Prealloc::ZeroFill {
            zero_fill(&file, size)?;
        }
        let header = encode_header(&SegmentHeader {
            first_seq,
            segment_size: size,
        });
        file.write_all_at(&header, 0)?;
        file.sync_all()
    })();
    if let Err(e) = r {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&tmp, e));
    }
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    sync_dir(dir)?;
    Ok(path)
}

/// Writes zeros over bytes `HEADER_LEN..size`.
fn zero_fill(file: &File, size: u64) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK];
    let mut off = HEADER_LEN as u64;
    while off < size {
        let n = (size - off).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// A segment open for appending.
pub struct ActiveSegment {
    pub path: PathBuf,
    pub file: File,
    pub map: MmapMut,
    pub first_seq: u64,
    /// Record slots.
    pub capacity: u64,
}

/// Opens and maps an existing segment for writing.
pub fn open_for_write(
    path: PathBuf,
    header: SegmentHeader,
    populate: bool,
    populate_writable: bool,
) -> Result<ActiveSegment, JournalError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    let len = file.metadata().map_err(|e| io_err(&path, e))?.len();
    if len != header.segment_size {
        return Err(JournalError::BadHeader {
            path,
            reason: format!("file is {len} bytes, header says {}", header.segment_size),
        });
    }
    let map = map::map_write(&file, populate, populate_writable).map_err(|e| io_err(&path, e))?;
    Ok(ActiveSegment {
        path,
        file,
        map,
        first_seq: header.first_seq,
        capacity: header.capacity(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_others() {
        assert_eq!(segment_name(1), "00000000000000000001.journal");
        assert_eq!(parse_segment_name(&segment_name(123_456)), Some(123_456));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("1.journal"), None);
        assert_eq!(parse_segment_name("0000000000000000000a.journal"), None);
        assert_eq!(parse_segment_name("00000000000000000001.journal.tmp"), None);
        assert_eq!(parse_segment_name("99999999999999999999.journal"), None);
    }
}
