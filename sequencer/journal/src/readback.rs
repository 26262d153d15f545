//! Reading records back while a writer owns the journal: the segment files
//! on disk, and copies out of segments the writer has rolled away from.
//!
//! This is the slow path of a replicated log (a lagging follower asks for
//! old entries): a segment is listed, mapped read-only, copied from and
//! unmapped per call. Every copied slot is CRC-checked and must carry the
//! sequence its position implies, so a damaged segment is a typed error,
//! never wrong bytes handed on.

use super::format::{decode_header, decode_record, slot_offset, SegmentHeader, RECORD_LEN};
use super::map;
use super::segment::{io_err, parse_segment_name};
use super::JournalError;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// The `.journal` files of `dir` as (first sequence, path), in sequence
/// order. Temporary files and other names are skipped.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_name) {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and checks the header of the segment at `path` named for
/// `name_seq`.
pub(crate) fn read_header(path: &Path, name_seq: u64) -> Result<SegmentHeader, JournalError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    let bad = |reason: String| JournalError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    let h = decode_header(&bytes).map_err(bad)?;
    if h.first_seq != name_seq {
        return Err(bad(format!(
            "header says first sequence {}, file name says {name_seq}",
            h.first_seq
        )));
    }
    if h.segment_size != bytes.len() as u64 {
        return Err(bad(format!(
            "file is {} bytes, header says {}",
            bytes.len(),
            h.segment_size
        )));
    }
    Ok(h)
}

/// Appends to `dst` the encoded records `seqs` (all inside `bytes`, a
/// segment whose first slot holds `first_seq`), checking each.
pub(crate) fn copy_slots(
    path: &Path,
    bytes: &[u8],
    first_seq: u64,
    seqs: std::ops::Range<u64>,
    dst: &mut Vec<u8>,
) -> Result<(), JournalError> {
    for seq in seqs {
        let off = slot_offset(seq - first_seq);
        let slot = usize::try_from(off)
            .ok()
            .and_then(|o| bytes.get(o..o.checked_add(RECORD_LEN)?));
        let corrupt = |reason: String| JournalError::CorruptRecord {
            path: path.to_path_buf(),
            offset: off,
            expected_seq: seq,
            reason,
        };
        let Some(slot) = slot else {
            return Err(corrupt("slot lies past the end of the segment".into()));
        };
        match decode_record(slot) {
            Ok(r) if r.global_seq == seq => dst.extend_from_slice(slot),
            Ok(r) => return Err(corrupt(format!("slot holds global sequence {}", r.global_seq))),
            Err(e) => return Err(corrupt(format!("slot does not decode: {e:?}"))),
        }
    }
    Ok(())
}

/// Appends to `dst` the records `seqs` of the rolled-away segment at `path`
/// (named for `name_seq`), mapping it read-only for the call.
pub(crate) fn copy_from_file(
    path: &Path,
    name_seq: u64,
    seqs: std::ops::Range<u64>,
    dst: &mut Vec<u8>,
) -> Result<(), JournalError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let m = map::map_read(&file).map_err(|e| io_err(path, e))?;
    let h = decode_header(&m).map_err(|reason| JournalError::BadHeader {
        path: path.to_path_buf(),
        reason,
    })?;
    if h.first_seq != name_seq {
        return Err(JournalError::BadHeader {
            path: path.to_path_buf(),
            reason: format!(
                "header says first sequence {}, file name says {name_seq}",
                h.first_seq
            ),
        });
    }
    copy_slots(path, &m, name_seq, seqs, dst)
}
