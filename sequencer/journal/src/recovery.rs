//! Opening a journal: scan, verify, repair the tail, then read it back.

use super::format::{
    decode_header, decode_record, decode_unchecked, is_zero, last_non_zero, slot_offset, SegmentHeader,
    SlotError,
};
use super::format::{HEADER_LEN, RECORD_LEN};
use super::map;
use super::segment::{io_err, open_for_write, parse_segment_name, sync_dir, SEGMENT_SUFFIX, TMP_SUFFIX};
use super::writer::{JournalWriter, WriterConfig};
use super::{JournalError, SequencedRecord};
use memmap2::Mmap;
use std::fs::{self, File, OpenOptions};
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Entry points for opening a journal.
pub struct Journal;

impl Journal {
    /// Opens (creating it if missing) the journal directory `dir` for the
    /// server: verifies every segment, **truncates a torn or corrupt tail**
    /// (zeroes it on disk and reports it in [`Recovered::tail`]), removes
    /// leftover temporary files and trailing empty segments, and fails with
    /// a typed error naming the file and byte offset on corruption anywhere
    /// else. The repairs are made only once the whole journal has been
    /// verified: an open that fails changes nothing on disk. Then
    /// [`Recovered::records`] feeds the rebuild and
    /// [`Recovered::into_writer`] continues at [`Recovered::next_seq`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Recovered, JournalError> {
        open_impl(dir.as_ref(), Mode::Repair)
    }

    /// Opens a journal directory or a single segment file without changing
    /// anything (for `peregrine replay`): same verification and errors as
    /// [`open`](Self::open), a torn tail is reported (with `truncated:
    /// false`) and excluded from the records.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Recovered, JournalError> {
        open_impl(path.as_ref(), Mode::ReadOnly)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Repair,
    ReadOnly,
}

/// One verified segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment file.
    pub path: PathBuf,
    /// Global sequence of its first slot.
    pub first_seq: u64,
    /// Valid records it holds (after tail truncation).
    pub records: u64,
    /// Record slots it has.
    pub capacity: u64,
    /// File size in bytes.
    pub segment_size: u64,
}

/// What was dropped from the end of the journal at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailReport {
    /// The segment whose tail was damaged (always the last non-empty one).
    pub path: PathBuf,
    /// Byte offset in that file of the first dropped slot.
    pub offset: u64,
    /// Global sequence that slot would have held (= the next sequence).
    pub first_dropped_seq: u64,
    /// Slots with any non-zero byte from `offset` on (torn or corrupt).
    pub dropped_records: u64,
    /// Bytes from `offset` through the last non-zero byte of the segment.
    pub dropped_bytes: u64,
    /// Why the first dropped slot was rejected.
    pub reason: String,
    /// True when the bytes were zeroed on disk (`Journal::open`); false for
    /// `open_read_only`.
    pub truncated: bool,
}

struct Seg {
    info: SegmentInfo,
    header: SegmentHeader,
    map: Mmap,
}

/// A verified journal: where writing resumes, what was repaired, and the
/// records.
pub struct Recovered {
    dir: PathBuf,
    mode: Mode,
    segs: Vec<Seg>,
    first_seq: u64,
    next_seq: u64,
    tail: Option<TailReport>,
    removed: Vec<PathBuf>,
}

impl std::fmt::Debug for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovered")
            .field("dir", &self.dir)
            .field("segments", &self.segments().collect::<Vec<_>>())
            .field("next_seq", &self.next_seq)
            .field("tail", &self.tail)
            .field("removed", &self.removed)
            .finish()
    }
}

fn open_impl(path: &Path, mode: Mode) -> Result<Recovered, JournalError> {
    let meta = fs::metadata(path);
    let (dir, mut files): (PathBuf, Vec<(u64, PathBuf)>) = match meta {
        Ok(m) if m.is_file() => {
            if mode == Mode::Repair {
                return Err(JournalError::Config(format!(
                    "{}: Journal::open takes the journal directory, not a segment file",
                    path.display()
                )));
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(seq) = parse_segment_name(name) else {
                return Err(JournalError::BadSegmentName {
                    path: path.to_path_buf(),
                });
            };
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (dir, vec![(seq, path.to_path_buf())])
        }
        Ok(_) => (path.to_path_buf(), Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && mode == Mode::Repair => {
            fs::create_dir_all(path).map_err(|e| io_err(path, e))?;
            (path.to_path_buf(), Vec::new())
        }
        Err(e) => return Err(io_err(path, e)),
    };
    // Files a repair removes. Nothing is changed on disk until the whole
    // journal has been verified: a failed open leaves every file as it was.
    let mut removed = Vec::new();
    if files.is_empty() {
        let entries = fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let p = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.ends_with(TMP_SUFFIX) {
                // A segment whose creation did not finish: never holds data.
                if mode == Mode::Repair {
                    removed.push(p);
                }
            } else if name.ends_with(SEGMENT_SUFFIX) {
                match parse_segment_name(&name) {
                    Some(seq) => files.push((seq, p)),
                    None => return Err(JournalError::BadSegmentName { path: p }),
                }
            }
        }
        files.sort();
    }

    // Map every segment and check its header.
    let mut segs: Vec<Seg> = Vec::with_capacity(files.len());
    let n_files = files.len();
    for (i, (name_seq, p)) in files.into_iter().enumerate() {
        let file = File::open(&p).map_err(|e| io_err(&p, e))?;
        let len = file.metadata().map_err(|e| io_err(&p, e))?.len();
        let map = if len == 0 {
            None
        } else {
            Some(map::map_read(&file).map_err(|e| io_err(&p, e))?)
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let checked = decode_header(bytes).and_then(|h| {
            if h.first_seq != name_seq {
                Err(format!(
                    "header says first sequence {}, file name says {name_seq}",
                    h.first_seq
                ))
            } else if h.segment_size != len {
                Err(format!("file is {len} bytes, header says {}", h.segment_size))
            } else {
                Ok(h)
            }
        });
        let header = match checked {
            Ok(h) => h,
            Err(reason) => {
                let body_empty = bytes.len() <= HEADER_LEN || is_zero(&bytes[HEADER_LEN..]);
                if i + 1 == n_files && body_empty {
                    // The last file holds no record, whatever is wrong with
                    // its header (creation or a copy of a pre-created
                    // segment interrupted outside our atomic rename): nothing
                    // to lose.
                    if mode == Mode::Repair {
                        removed.push(p);
                    }
                    continue;
                }
                return Err(JournalError::BadHeader { path: p, reason });
            }
        };
        // A header decoded, so the file was not empty and is mapped.
        let Some(map) = map else {
            return Err(JournalError::BadHeader {
                path: p,
                reason: "empty file".into(),
            });
        };
        segs.push(Seg {
            info: SegmentInfo {
                path: p,
                first_seq: header.first_seq,
                records: 0,
                capacity: header.capacity(),
                segment_size: header.segment_size,
            },
            header,
            map,
        });
    }

    // Trailing segments without a single non-zero body byte were created
    // ahead of time and never written: drop them (keep one if all are).
    let mut last = segs.len();
    while last > 1 && is_zero(&segs[last - 1].map[HEADER_LEN..]) {
        last -= 1;
    }
    for s in segs.drain(last.min(segs.len())..) {
        if mode == Mode::Repair {
            removed.push(s.info.path);
        }
    }

    let first_seq = segs.first().map_or(1, |s| s.header.first_seq);
    let mut expected = first_seq;
    let mut tail = None;
    let n = segs.len();
    for (i, seg) in segs.iter_mut().enumerate() {
        let path = &seg.info.path;
        if seg.header.first_seq != expected {
            return Err(JournalError::SequenceGap {
                path: path.clone(),
                offset: 16,
                expected,
                found: seg.header.first_seq,
            });
        }
        let cap = seg.info.capacity;
        let bytes = &seg.map[..];
        let slot = |k: u64| {
            let off = slot_offset(k) as usize;
            &bytes[off..off + RECORD_LEN]
        };
        let mut k = 0u64;
        let mut stop = None;
        while k < cap {
            match decode_record(slot(k)) {
                Ok(r) if r.global_seq == expected => {
                    // u64::MAX is never written: it would leave no next
                    // sequence to resume at.
                    let Some(next) = expected.checked_add(1) else {
                        return Err(JournalError::CorruptRecord {
                            path: path.clone(),
                            offset: slot_offset(k),
                            expected_seq: expected,
                            reason: "record has global sequence u64::MAX, which leaves no next sequence \
                                     (the writer never writes it)"
                                .into(),
                        });
                    };
                    expected = next;
                    k += 1;
                }
                Ok(r) => {
                    return Err(JournalError::SequenceGap {
                        path: path.clone(),
                        offset: slot_offset(k),
                        expected,
                        found: r.global_seq,
                    })
                }
                Err(SlotError::BadKind(kind)) => {
                    return Err(JournalError::CorruptRecord {
                        path: path.clone(),
                        offset: slot_offset(k),
                        expected_seq: expected,
                        reason: format!("CRC matches but record kind {kind} is unknown"),
                    })
                }
                Err(e) => {
                    stop = Some(e);
                    break;
                }
            }
        }
        seg.info.records = k;
        let Some(why) = stop else { continue };
        let off = slot_offset(k);
        if i + 1 < n {
            return Err(JournalError::CorruptRecord {
                path: path.clone(),
                offset: off,
                expected_seq: expected,
                reason: match why {
                    SlotError::Empty => "segment ends before it is full but later segments exist".into(),
                    _ => "CRC32C mismatch in a segment that is not the last".into(),
                },
            });
        }
        // Zeros from slot k to the end: a clean end. Found first, so the
        // common case reads the rest of the segment once.
        let rest = &bytes[off as usize..];
        let Some(last_nz) = last_non_zero(rest) else {
            continue;
        };
        // Slots after the last non-zero byte are zero: not looked at.
        let end_slot = (k + (last_nz / RECORD_LEN) as u64 + 1).min(cap);
        // The last segment: everything from slot k on must be tail damage,
        // i.e. contain no slot whose CRC matches (whatever its kind or
        // sequence: a torn write never produces one).
        for j in k + 1..end_slot {
            let b = slot(j);
            if is_zero(b) {
                continue;
            }
            let found = match decode_record(b) {
                Ok(r) => format!("a valid record (seq {})", r.global_seq),
                Err(SlotError::BadKind(kind)) => {
                    format!("a slot with a matching CRC but unknown record kind {kind}")
                }
                Err(SlotError::Empty | SlotError::BadCrc) => continue,
            };
            return Err(JournalError::CorruptRecord {
                path: path.clone(),
                offset: off,
                expected_seq: expected,
                reason: format!(
                    "{} but {found} follows at offset {}: not a torn tail",
                    describe(why),
                    slot_offset(j)
                ),
            });
        }
        let dropped_bytes = last_nz as u64 + 1;
        let dropped_records = (k..end_slot).filter(|&j| !is_zero(slot(j))).count() as u64;
        tail = Some(TailReport {
            path: path.clone(),
            offset: off,
            first_dropped_seq: expected,
            dropped_records,
            dropped_bytes,
            reason: describe(why).into(),
            truncated: mode == Mode::Repair,
        });
    }

    // Verified: now (and only now) repair.
    if mode == Mode::Repair {
        for p in &removed {
            fs::remove_file(p).map_err(|e| io_err(p, e))?;
        }
        if !removed.is_empty() {
            sync_dir(&dir)?;
        }
        if let Some(t) = &tail {
            zero_range(&t.path, t.offset, t.dropped_bytes)?;
        }
    }
    Ok(Recovered {
        dir,
        mode,
        segs,
        first_seq,
        next_seq: expected,
        tail,
        removed,
    })
}

fn describe(e: SlotError) -> &'static str {
    match e {
        SlotError::Empty => "empty slot",
        SlotError::BadCrc => "CRC32C mismatch (torn or corrupt record)",
        SlotError::BadKind(_) => "unknown record kind",
    }
}

/// Overwrites `len` bytes at `off` with zeros and makes that durable.
fn zero_range(path: &Path, off: u64, len: u64) -> Result<(), JournalError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], off + done)
            .map_err(|e| io_err(path, e))?;
        done += n as u64;
    }
    f.sync_data().map_err(|e| io_err(path, e))
}

impl Recovered {
    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sequence of the first record kept (1 unless old segments were
    /// archived away; 1 for an empty journal).
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The next global sequence to assign: one past the last valid record.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Sequence of the last valid record, if any.
    pub fn last_seq(&self) -> Option<u64> {
        (self.next_seq > self.first_seq).then(|| self.next_seq - 1)
    }

    /// Number of valid records.
    pub fn len(&self) -> u64 {
        self.next_seq - self.first_seq
    }

    /// True when the journal holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The damaged tail found at open, if any.
    pub fn tail(&self) -> Option<&TailReport> {
        self.tail.as_ref()
    }

    /// Files removed by [`Journal::open`]: unfinished `.journal.tmp` files,
    /// trailing never-written segments, a last segment with a bad header
    /// and no data. Always empty for `open_read_only`.
    pub fn removed(&self) -> &[PathBuf] {
        &self.removed
    }

    /// The verified segments, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &SegmentInfo> + '_ {
        self.segs.iter().map(|s| &s.info)
    }

    /// The record with global sequence `seq`.
    pub fn get(&self, seq: u64) -> Option<SequencedRecord> {
        self.range(seq..=seq).next()
    }

    /// Every valid record in sequence order.
    pub fn records(&self) -> Records<'_> {
        self.range(..)
    }

    /// Records whose global sequence lies in `seqs` (found by position, no
    /// scan).
    pub fn range(&self, seqs: impl RangeBounds<u64>) -> Records<'_> {
        let lo = match seqs.start_bound() {
            Bound::Included(&a) => a,
            Bound::Excluded(&a) => a.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .max(self.first_seq);
        let hi = match seqs.end_bound() {
            Bound::Included(&b) => b.saturating_add(1),
            Bound::Excluded(&b) => b,
            Bound::Unbounded => u64::MAX,
        }
        .min(self.next_seq);
        let seg = self
            .segs
            .partition_point(|s| s.info.first_seq <= lo)
            .saturating_sub(1);
        Records {
            segs: &self.segs,
            seg,
            next: lo,
            end: hi.max(lo),
        }
    }

    /// Records matching `f`, in sequence order.
    pub fn select<'a>(&'a self, f: &RecordFilter) -> impl Iterator<Item = SequencedRecord> + 'a {
        let session = f.session;
        self.range((f.from, f.to))
            .filter(move |r| session.is_none_or(|(g, i)| r.origin.gateway == g && r.origin.index == i))
    }

    /// A writer that continues at [`next_seq`](Self::next_seq): appends go
    /// into the last segment (after the repaired tail), or a first segment
    /// is created for an empty journal. Only for [`Journal::open`].
    pub fn into_writer(self, cfg: WriterConfig) -> Result<JournalWriter, JournalError> {
        cfg.validate()?;
        if self.mode != Mode::Repair {
            return Err(JournalError::Config(
                "a journal opened read-only cannot be written".into(),
            ));
        }
        let Recovered {
            dir,
            segs,
            first_seq,
            next_seq,
            ..
        } = self;
        match segs.into_iter().last() {
            None => JournalWriter::create(dir, cfg, next_seq),
            Some(Seg { info, header, map }) => {
                drop(map);
                // Write-faulted only after the writer's first sync (see
                // `JournalWriter::resume`): that sync would undo it.
                let cur = open_for_write(info.path, header, cfg.populate, false)?;
                JournalWriter::resume(dir, cfg, cur, first_seq, next_seq)
            }
        }
    }
}

/// Which records [`Recovered::select`] yields: all by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordFilter {
    /// Lower sequence bound.
    pub from: Bound<u64>,
    /// Upper sequence bound.
    pub to: Bound<u64>,
    /// Only this session's messages: (gateway, session index).
    pub session: Option<(u16, u32)>,
}

impl Default for RecordFilter {
    fn default() -> Self {
        RecordFilter {
            from: Bound::Unbounded,
            to: Bound::Unbounded,
            session: None,
        }
    }
}

impl RecordFilter {
    /// Every record.
    pub fn all() -> RecordFilter {
        RecordFilter::default()
    }

    /// Only sequences within `seqs`.
    pub fn seqs(mut self, seqs: impl RangeBounds<u64>) -> RecordFilter {
        self.from = seqs.start_bound().cloned();
        self.to = seqs.end_bound().cloned();
        self
    }

    /// Only messages from session `index` of gateway `gateway`.
    pub fn session(mut self, gateway: u16, index: u32) -> RecordFilter {
        self.session = Some((gateway, index));
        self
    }
}

/// Iterator over verified records (see [`Recovered::range`]).
pub struct Records<'a> {
    segs: &'a [Seg],
    seg: usize,
    next: u64,
    end: u64,
}

impl Iterator for Records<'_> {
    type Item = SequencedRecord;

    fn next(&mut self) -> Option<SequencedRecord> {
        while self.next < self.end {
            let s = self.segs.get(self.seg)?;
            let k = self.next - s.info.first_seq;
            if k >= s.info.records {
                self.seg += 1;
                continue;
            }
            let off = slot_offset(k) as usize;
            self.next += 1;
            return Some(decode_unchecked(&s.map[off..off + RECORD_LEN]));
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.end - self.next) as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Records<'_> {}
