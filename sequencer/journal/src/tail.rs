//! [`JournalTail`]: follows a journal directory that another thread or
//! process is appending to.
//!
//! Why mappings and not reads: the writer puts records into the page cache
//! through a shared mapping, so a read-only shared mapping of the same file
//! sees each record as soon as its bytes are stored, without a system call
//! per record. A record is taken only when its CRC matches and it carries
//! the sequence its slot implies; a slot that is all zeros or does not
//! check yet is a write in progress (or not yet made): "nothing yet", not
//! an error. The caller bounds every read by a `limit` (the publishable
//! watermark), so records the cluster may still discard are never handed on.
//!
//! The next segment's file name follows from the current one (first
//! sequence + slot count), so moving on is one `open`, no directory scan;
//! the directory is listed by [`JournalTail::open`], [`JournalTail::seek`]
//! and when that next file is missing (not created yet, or discarded).
//! A mapping stays valid when the writer removes its file (discarded
//! segments are unlinked, never truncated), so the tail can finish a
//! segment that went away under it; asking for a discarded sequence is
//! [`JournalError::OutOfRange`]. But a removed file may also be a log the
//! writer abandoned ([`crate::JournalWriter::reset_to`]: a cluster node
//! that installed its leader's snapshot), whose records past the last
//! watermark are not the committed ones. So each mapping remembers the
//! limit it was last seen live under: records below it were published
//! while the file was the journal's and stay readable from the mapping;
//! before reading past it the tail checks (one `fstat`) that the file
//! still has its name, and if not it looks where the journal is now. A
//! reader that is caught up never reaches that check.

use super::format::{decode_header, decode_record, slot_offset, SlotError, RECORD_LEN};
use super::map;
use super::readback::list_segments;
use super::segment::{io_err, segment_name};
use super::{JournalError, SequencedRecord};
use memmap2::Mmap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The segment being read.
struct TailSegment {
    path: PathBuf,
    /// The open file, to tell whether it has been removed.
    file: File,
    map: Mmap,
    first_seq: u64,
    capacity: u64,
    /// Records below this sequence were within a caller's limit while the
    /// file was still the journal's: readable even after it is removed.
    trusted: u64,
}

impl TailSegment {
    /// One past the last sequence this segment can hold.
    fn end_seq(&self) -> u64 {
        self.first_seq.saturating_add(self.capacity)
    }

    /// True when the file has no name left: the writer discarded it, or
    /// restarted the journal elsewhere, so its empty slots never fill.
    fn removed(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().is_ok_and(|m| m.nlink() == 0)
    }
}

/// A reader that follows a live journal from a given sequence.
///
/// Not `Sync`-shared: one tail per reader thread. Holds at most one
/// segment mapped.
pub struct JournalTail {
    dir: PathBuf,
    next_seq: u64,
    seg: Option<TailSegment>,
}

impl std::fmt::Debug for JournalTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalTail")
            .field("dir", &self.dir)
            .field("next_seq", &self.next_seq)
            .field("segment", &self.seg.as_ref().map(|s| &s.path))
            .finish()
    }
}

impl JournalTail {
    /// A tail of the journal in `dir` whose first record read will be
    /// `from_seq` (≥ 1). The directory may be empty, or not yet hold the
    /// segment of `from_seq`: reads then return 0 until it appears.
    /// `from_seq` below the journal's first held sequence (discarded
    /// segments) is [`JournalError::OutOfRange`].
    pub fn open(dir: &Path, from_seq: u64) -> Result<JournalTail, JournalError> {
        let mut t = JournalTail {
            dir: dir.to_path_buf(),
            next_seq: from_seq,
            seg: None,
        };
        t.seek(from_seq)?;
        Ok(t)
    }

    /// The sequence the next [`read`](Self::read) starts at.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The directory followed.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves to `seq`, with the same semantics as [`open`](Self::open) at
    /// `seq` (re-request answers read arbitrary ranges). On error the
    /// position is unchanged.
    pub fn seek(&mut self, seq: u64) -> Result<(), JournalError> {
        if seq == 0 {
            return Err(JournalError::Config("global sequences start at 1".into()));
        }
        if let Some(s) = &self.seg {
            if s.first_seq <= seq && seq < s.end_seq() {
                self.next_seq = seq;
                return Ok(());
            }
        }
        // A segment listed may be removed before it is opened (the writer
        // discarding or restarting the journal): list again.
        let mut attempts = 0;
        loop {
            match self.seek_listed(seq) {
                Err(JournalError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && attempts < 3 =>
                {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    /// [`seek`](Self::seek) through a fresh directory listing.
    fn seek_listed(&mut self, seq: u64) -> Result<(), JournalError> {
        let segs = list_segments(&self.dir)?;
        let Some(&(held_first, _)) = segs.first() else {
            // Nothing written yet: wait for the writer's first segment.
            self.seg = None;
            self.next_seq = seq;
            return Ok(());
        };
        if seq < held_first {
            let last = segs.last().map(|(f, _)| *f).unwrap_or(held_first);
            return Err(JournalError::OutOfRange {
                first: seq,
                end: seq.saturating_add(1),
                held_first,
                next: last,
            });
        }
        // The last segment starting at or before `seq`; it holds `seq` if
        // `seq` is inside its capacity, else `seq` lies in a segment not
        // created yet.
        let k = segs.iter().rposition(|(f, _)| *f <= seq).unwrap_or(0);
        let (first, path) = &segs[k];
        let seg = map_segment(path, *first)?;
        self.next_seq = seq;
        self.seg = (seq < seg.end_seq()).then_some(seg);
        Ok(())
    }

    /// Calls `f` with each record from [`next_seq`](Self::next_seq) on, in
    /// order, stopping before `limit` (exclusive: only `global_seq <
    /// limit`), after `max` records, or at the first slot not written yet
    /// (all zeros or not CRC-checking: a write in progress). Returns how
    /// many records were passed to `f`; 0 is "nothing yet", not an error.
    ///
    /// Errors: a CRC-valid slot carrying the wrong sequence or an unknown
    /// kind ([`JournalError::CorruptRecord`]), an unreadable segment file.
    /// Records already passed to `f` stay consumed.
    pub fn read(
        &mut self,
        limit: u64,
        max: usize,
        mut f: impl FnMut(&SequencedRecord),
    ) -> Result<usize, JournalError> {
        let mut n = 0;
        while n < max && self.next_seq < limit {
            if !self.ensure_segment()? {
                break;
            }
            if matches!(&self.seg, Some(s) if self.next_seq >= s.trusted) {
                // Past what this mapping is known to show of the live
                // journal: is its file still the journal's?
                if self.seg.as_ref().is_some_and(TailSegment::removed) {
                    self.reseek()?;
                    if self.seg.is_some() {
                        continue;
                    }
                    break;
                }
                if let Some(s) = self.seg.as_mut() {
                    s.trusted = limit;
                }
            }
            let Some(seg) = &self.seg else { break };
            // This segment's run: no per-record segment or file checks.
            let end = limit.min(seg.end_seq()).min(seg.trusted);
            let mut waiting = false;
            while n < max && self.next_seq < end {
                let off = slot_offset(self.next_seq - seg.first_seq);
                let slot = usize::try_from(off)
                    .ok()
                    .and_then(|o| seg.map.get(o..o.checked_add(RECORD_LEN)?));
                let corrupt = |reason: String| JournalError::CorruptRecord {
                    path: seg.path.clone(),
                    offset: off,
                    expected_seq: self.next_seq,
                    reason,
                };
                let Some(slot) = slot else {
                    return Err(corrupt("slot lies past the end of the segment".into()));
                };
                match decode_record(slot) {
                    Ok(r) if r.global_seq == self.next_seq => {
                        f(&r);
                        self.next_seq += 1;
                        n += 1;
                    }
                    Ok(r) => {
                        return Err(corrupt(format!("slot holds global sequence {}", r.global_seq)));
                    }
                    Err(SlotError::Empty | SlotError::BadCrc) => {
                        waiting = true;
                        break;
                    }
                    Err(SlotError::BadKind(k)) => return Err(corrupt(format!("unknown record kind {k}"))),
                }
            }
            if waiting {
                // Nothing at `next_seq` yet; or never, in a segment the
                // writer has removed (a journal restarted after a
                // snapshot): look where the journal is now. Checked only
                // when nothing was read, so a reader that keeps up pays
                // nothing.
                if n == 0 && seg.removed() {
                    self.reseek()?;
                    if self.seg.is_some() {
                        continue;
                    }
                }
                break;
            }
        }
        Ok(n)
    }

    /// Drops the mapped segment (its file was removed) and locates
    /// `next_seq` in the journal as it is now.
    fn reseek(&mut self) -> Result<(), JournalError> {
        let seq = self.next_seq;
        self.seg = None;
        self.seek(seq)
    }

    /// Makes `seg` the segment holding `next_seq` if that segment exists;
    /// false when it does not (yet).
    fn ensure_segment(&mut self) -> Result<bool, JournalError> {
        match &self.seg {
            Some(s) if self.next_seq < s.end_seq() => return Ok(true),
            Some(s) if self.next_seq == s.end_seq() => {
                // The writer's next segment: its name is known.
                let path = self.dir.join(segment_name(self.next_seq));
                match File::open(&path) {
                    Ok(file) => {
                        let seg = map_file(&path, file, self.next_seq)?;
                        self.seg = Some(seg);
                        return Ok(true);
                    }
                    // Not created yet, or discarded: the listing tells.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path, e)),
                }
            }
            _ => {}
        }
        // No segment yet, the next one missing, or a jump: locate by listing.
        let seq = self.next_seq;
        self.seg = None;
        self.seek(seq)?;
        Ok(self.seg.is_some())
    }
}

fn map_segment(path: &Path, name_seq: u64) -> Result<TailSegment, JournalError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    map_file(path, file, name_seq)
}

fn map_file(path: &Path, file: File, name_seq: u64) -> Result<TailSegment, JournalError> {
    let m = map::map_read(&file).map_err(|e| io_err(path, e))?;
    let bad = |reason: String| JournalError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    let h = decode_header(&m).map_err(bad)?;
    if h.first_seq != name_seq {
        return Err(bad(format!(
            "header says first sequence {}, file name says {name_seq}",
            h.first_seq
        )));
    }
    if h.segment_size != m.len() as u64 {
        return Err(bad(format!(
            "file is {} bytes, header says {}",
            m.len(),
            h.segment_size
        )));
    }
    Ok(TailSegment {
        path: path.to_path_buf(),
        file,
        map: m,
        first_seq: h.first_seq,
        capacity: h.capacity(),
        trusted: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode, slot_offset, HEADER_LEN};
    use crate::{Journal, Prealloc, Precreate, WriterConfig};
    use peregrine_wire::SessionRef;
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use std::sync::Arc;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "peregrine-tail-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const PER_SEG: u64 = 7;

    fn cfg() -> WriterConfig {
        WriterConfig {
            segment_size: (HEADER_LEN + PER_SEG as usize * RECORD_LEN) as u64,
            prealloc: Prealloc::Fallocate,
            populate: false,
            populate_writable: false,
            precreate: Precreate::Background,
        }
    }

    fn rec(seq: u64) -> SequencedRecord {
        let mut msg = [0u8; 100];
        for (i, b) in msg.iter_mut().enumerate() {
            *b = (seq.wrapping_mul(13).wrapping_add(i as u64) % 251) as u8;
        }
        SequencedRecord {
            global_seq: seq,
            origin: SessionRef::new((seq % 5) as u16, (seq % 11) as u32),
            client_seq: seq * 3,
            gateway_rx_ns: seq * 10,
            sequencer_ns: seq * 10 + 1,
            msg,
        }
    }

    #[test]
    fn follows_a_writer_appending_and_rolling_concurrently() {
        let t = TempDir::new("follow");
        // The tail starts before anything exists.
        std::fs::create_dir_all(&t.0).unwrap();
        let mut tail = JournalTail::open(&t.0, 1).unwrap();
        assert_eq!(tail.read(u64::MAX, 10, |_| ()).unwrap(), 0);

        const N: u64 = 3_000;
        let written = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let dir = t.0.clone();
        let (w2, d2) = (written.clone(), done.clone());
        let writer = std::thread::spawn(move || {
            let mut w = Journal::open(&dir).unwrap().into_writer(cfg()).unwrap();
            for seq in 1..=N {
                w.append(&rec(seq)).unwrap();
                w2.store(seq, Ordering::Release);
                if seq % 97 == 0 {
                    std::thread::yield_now();
                }
            }
            d2.store(true, Ordering::Release);
            w.close().unwrap();
        });
        // Half the time bounded by the watermark, half unbounded (then
        // in-progress slots must read as "nothing yet").
        let mut got = Vec::new();
        let mut round = 0u64;
        while (got.len() as u64) < N {
            round += 1;
            let limit = if round % 2 == 0 {
                written.load(Ordering::Acquire) + 1
            } else {
                u64::MAX
            };
            tail.read(limit, 64, |r| got.push(*r)).unwrap();
            assert!(round < 50_000_000, "tail stalled at {}", tail.next_seq());
        }
        writer.join().unwrap();
        assert!(done.load(Ordering::Acquire));
        assert_eq!(got.len() as u64, N);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(*r, rec(i as u64 + 1));
        }
        assert_eq!(tail.next_seq(), N + 1);
        assert_eq!(tail.read(u64::MAX, 10, |_| ()).unwrap(), 0);
        // Seeks backwards and forwards across segments.
        for s in [1, 5, PER_SEG, PER_SEG + 1, 2 * PER_SEG + 3, N] {
            tail.seek(s).unwrap();
            let mut v = Vec::new();
            tail.read(u64::MAX, 3, |r| v.push(*r)).unwrap();
            let want: Vec<_> = (s..(s + 3).min(N + 1)).map(rec).collect();
            assert_eq!(v, want, "after seek to {s}");
        }
        // The limit is exclusive and max bounds a read.
        tail.seek(10).unwrap();
        assert_eq!(tail.read(12, 100, |_| ()).unwrap(), 2);
        assert_eq!(tail.read(100, 5, |_| ()).unwrap(), 5);
        assert_eq!(tail.next_seq(), 17);
    }

    #[test]
    fn torn_and_zero_slots_are_nothing_yet_until_written() {
        let t = TempDir::new("torn");
        let mut w = Journal::open(&t.0).unwrap().into_writer(cfg()).unwrap();
        for seq in 1..=4 {
            w.append(&rec(seq)).unwrap();
        }
        w.close().unwrap();
        let seg = t.0.join(segment_name(1));
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        // Slot of sequence 5: half a record (a torn write).
        let mut full = [0u8; RECORD_LEN];
        encode(&rec(5).as_sequenced(), &mut full);
        f.write_all_at(&full[..60], slot_offset(4)).unwrap();

        let mut tail = JournalTail::open(&t.0, 1).unwrap();
        let mut got = Vec::new();
        assert_eq!(tail.read(u64::MAX, 100, |r| got.push(r.global_seq)).unwrap(), 4);
        assert_eq!(got, vec![1, 2, 3, 4]);
        assert_eq!(
            tail.read(u64::MAX, 100, |_| ()).unwrap(),
            0,
            "torn slot: nothing yet"
        );
        assert_eq!(tail.next_seq(), 5);
        // The write completes: the same tail now sees it; the next slot is zero.
        f.write_all_at(&full, slot_offset(4)).unwrap();
        assert_eq!(tail.read(u64::MAX, 100, |r| got.push(r.global_seq)).unwrap(), 1);
        assert_eq!(
            tail.read(u64::MAX, 100, |_| ()).unwrap(),
            0,
            "zero slot: nothing yet"
        );
        // A CRC-valid slot with the wrong sequence is corruption, typed.
        let mut wrong = [0u8; RECORD_LEN];
        encode(&rec(9).as_sequenced(), &mut wrong);
        f.write_all_at(&wrong, slot_offset(5)).unwrap();
        match tail.read(u64::MAX, 100, |_| ()) {
            Err(JournalError::CorruptRecord { expected_seq: 6, .. }) => {}
            other => panic!("want CorruptRecord at 6, got {other:?}"),
        }
    }

    #[test]
    fn discarded_segments_are_a_typed_error() {
        let t = TempDir::new("discard");
        let mut w = Journal::open(&t.0).unwrap().into_writer(cfg()).unwrap();
        for seq in 1..=(PER_SEG * 5) {
            w.append(&rec(seq)).unwrap();
        }
        // A tail reading segment 1 when it is discarded finishes it from
        // its mapping.
        let mut early = JournalTail::open(&t.0, 2).unwrap();
        assert_eq!(early.read(u64::MAX, 1, |_| ()).unwrap(), 1);
        assert_eq!(w.discard_before(PER_SEG * 2 + 1).unwrap(), 2);
        let mut v = Vec::new();
        early.read(PER_SEG + 1, 100, |r| v.push(r.global_seq)).unwrap();
        assert_eq!(v, (3..=PER_SEG).collect::<Vec<_>>());
        // Then it cannot go on into the discarded second segment...
        assert!(early.read(u64::MAX, 100, |_| ()).is_err());

        match JournalTail::open(&t.0, 1) {
            Err(JournalError::OutOfRange {
                first: 1, held_first, ..
            }) => {
                assert_eq!(held_first, 2 * PER_SEG + 1)
            }
            other => panic!("want OutOfRange, got {other:?}"),
        }
        let mut tail = JournalTail::open(&t.0, 2 * PER_SEG + 1).unwrap();
        assert!(matches!(tail.seek(3), Err(JournalError::OutOfRange { .. })));
        assert_eq!(
            tail.next_seq(),
            2 * PER_SEG + 1,
            "position unchanged by a failed seek"
        );
        assert_eq!(tail.read(u64::MAX, 1000, |_| ()).unwrap(), 3 * PER_SEG as usize);
        assert!(matches!(tail.seek(0), Err(JournalError::Config(_))));
        w.close().unwrap();
    }

    #[test]
    fn a_tail_waiting_in_a_segment_the_writer_replaced_finds_the_new_start() {
        let t = TempDir::new("reset");
        let mut w = Journal::open(&t.0).unwrap().into_writer(cfg()).unwrap();
        for seq in 1..=5 {
            w.append(&rec(seq)).unwrap();
        }
        let mut tail = JournalTail::open(&t.0, 1).unwrap();
        assert_eq!(tail.read(u64::MAX, 100, |_| ()).unwrap(), 5);
        // Waiting at 6, inside the mapped first segment: nothing yet.
        assert_eq!(tail.read(u64::MAX, 100, |_| ()).unwrap(), 0);
        // The journal restarts after a snapshot: 6..=1000 never come here.
        w.reset_to(1001).unwrap();
        w.append(&rec(1001)).unwrap();
        match tail.read(u64::MAX, 100, |_| ()) {
            Err(JournalError::OutOfRange {
                first: 6, held_first, ..
            }) => assert_eq!(held_first, 1001),
            other => panic!("want OutOfRange at 6, got {other:?}"),
        }
        tail.seek(1001).unwrap();
        let mut got = Vec::new();
        assert_eq!(tail.read(u64::MAX, 100, |r| got.push(r.global_seq)).unwrap(), 1);
        assert_eq!(got, vec![1001]);
        // A journal restarted at the sequence the tail waits for is simply
        // followed.
        w.reset_to(1002).unwrap();
        for seq in 1002..=1003 {
            w.append(&rec(seq)).unwrap();
        }
        assert_eq!(tail.read(u64::MAX, 100, |r| got.push(r.global_seq)).unwrap(), 2);
        assert_eq!(got, vec![1001, 1002, 1003]);
        w.close().unwrap();
    }

    #[test]
    fn records_of_an_abandoned_log_past_the_last_limit_are_never_read() {
        let t = TempDir::new("stale");
        let mut w = Journal::open(&t.0).unwrap().into_writer(cfg()).unwrap();
        for seq in 1..=10 {
            w.append(&rec(seq)).unwrap();
        }
        // Published through 5 (the watermark); 6..=10 are a log that is
        // about to be abandoned (never committed).
        let mut tail = JournalTail::open(&t.0, 1).unwrap();
        assert_eq!(tail.read(6, 100, |_| ()).unwrap(), 5);
        w.reset_to(21).unwrap();
        w.append(&rec(21)).unwrap();
        // The watermark moves past them: the old mapping still holds 6..=10,
        // but the tail must not hand them on.
        let mut got = Vec::new();
        match tail.read(22, 100, |r| got.push(r.global_seq)) {
            Err(JournalError::OutOfRange {
                first: 6, held_first, ..
            }) => assert_eq!(held_first, 21),
            other => panic!("want OutOfRange at 6, got {other:?} after {got:?}"),
        }
        assert!(got.is_empty(), "stale records read: {got:?}");
        w.close().unwrap();
    }
}
