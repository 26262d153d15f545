//! [`JournalWriter`]: appends records into the mapped current segment, rolls
//! to the next one when full, and makes written records durable on request.

use super::format::{
    decode_record, decode_unchecked, encode, slot_offset, SegmentHeader, HEADER_LEN, RECORD_LEN,
};
use super::readback::{copy_from_file, copy_slots, list_segments, read_header};
use super::segment::{create_segment, io_err, open_for_write, sync_dir, ActiveSegment, Prealloc};
use super::{JournalError, SequencedRecord};
use crate::Sequenced;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

/// Default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// Retired (rolled-away) segments kept open awaiting a durable flush; past
/// this many the oldest is fdatasynced at the next roll (only reached when
/// the caller never flushes durably).
const MAX_RETIRED: usize = 8;

/// How a flush makes written records durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// Nothing: dirty pages are written back when the kernel decides, or
    /// when their segment is rolled away (the writer starts its writeback
    /// then, without waiting). Records survive a process crash (they are in the page cache) but not
    /// a power loss or kernel crash. `durable_seq` does not move.
    #[default]
    None,
    /// `msync(MS_SYNC)` of the range written since the last flush (plus an
    /// `fdatasync` of any segment rolled away since then).
    Msync,
    /// `fdatasync` of the current segment file (and of any segment rolled
    /// away since the last flush).
    Fdatasync,
}

/// When the next segment is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precreate {
    /// A helper thread creates (preallocates, maps and
    /// pre-faults) the next segment as soon as a segment becomes current;
    /// a roll then only swaps mappings. Default.
    #[default]
    Background,
    /// Only when the caller asks ([`JournalWriter::prepare_next_segment`]),
    /// e.g. from the sequencer's idle loop; otherwise at the roll.
    Manual,
}

/// Writer settings.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Bytes per segment file, header included (default 64 MiB). Used for
    /// new segments; a resumed segment keeps the size in its header.
    pub segment_size: u64,
    /// How new segments reserve their blocks.
    pub prealloc: Prealloc,
    /// Pre-fault the mapping of a new segment (MAP_POPULATE).
    pub populate: bool,
    /// With `populate`, pre-fault it writable too, so that no append takes
    /// a page fault (default). It dirties the whole segment when it is
    /// mapped, so writeback writes the segment's zeros ahead of the
    /// records, and with [`FlushPolicy::Fdatasync`] the first sync after a
    /// roll writes the whole segment: turn it off there.
    pub populate_writable: bool,
    /// When the next segment is created.
    pub precreate: Precreate,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            segment_size: DEFAULT_SEGMENT_SIZE,
            prealloc: Prealloc::default(),
            populate: true,
            populate_writable: true,
            precreate: Precreate::default(),
        }
    }
}

impl WriterConfig {
    /// These settings for a journal flushed with `policy`: with
    /// [`FlushPolicy::Fdatasync`] segments are not write-faulted ahead
    /// (see [`populate_writable`](Self::populate_writable)).
    pub fn flushed_with(self, policy: FlushPolicy) -> WriterConfig {
        WriterConfig {
            populate_writable: self.populate_writable && policy != FlushPolicy::Fdatasync,
            ..self
        }
    }

    pub(crate) fn validate(&self) -> Result<(), JournalError> {
        let min = (HEADER_LEN + RECORD_LEN) as u64;
        if self.segment_size < min || self.segment_size > i64::MAX as u64 {
            return Err(JournalError::Config(format!(
                "segment size {} must be at least {min} bytes (header + one record)",
                self.segment_size
            )));
        }
        Ok(())
    }
}

/// Counts of the writer's slow-path events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Segment rolls.
    pub rolls: u64,
    /// Rolls that found the next segment already prepared.
    pub rolls_prepared: u64,
    /// Segments created (either way).
    pub segments_created: u64,
    /// `msync`/`fdatasync` calls made by flushes.
    pub syncs: u64,
}

struct Prepared {
    first_seq: u64,
    result: Result<ActiveSegment, JournalError>,
}

/// What the helper thread is asked to do.
enum HelperRequest {
    /// Create, map and pre-fault the segment starting at this sequence.
    Prepare(u64),
    /// A segment rolled away: unmap it and start writing its dirty pages
    /// back (see [`JournalWriter::roll`]).
    Retire { map: memmap2::MmapMut, file: File },
}

/// The helper thread that creates the next segment ahead of time and puts
/// rolled-away segments to rest.
struct Precreator {
    requests: Option<Sender<HelperRequest>>,
    done: Receiver<Prepared>,
    thread: Option<JoinHandle<()>>,
    in_flight: Option<u64>,
}

impl Precreator {
    fn spawn(dir: PathBuf, cfg: WriterConfig) -> Result<Precreator, JournalError> {
        let (req_tx, req_rx) = channel::<HelperRequest>();
        let (done_tx, done_rx) = channel::<Prepared>();
        let thread = std::thread::Builder::new()
            .name("journal-precreate".into())
            .spawn(move || {
                while let Ok(request) = req_rx.recv() {
                    match request {
                        HelperRequest::Prepare(first_seq) => {
                            let result = make_segment(&dir, first_seq, &cfg, cfg.populate_writable);
                            if done_tx.send(Prepared { first_seq, result }).is_err() {
                                break;
                            }
                        }
                        HelperRequest::Retire { map, file } => {
                            drop(map);
                            // Only a head start on writeback: a failure
                            // leaves the pages to the kernel's own timing,
                            // and durability to the writer's flushes.
                            let _ = crate::map::start_writeback(&file);
                        }
                    }
                }
            })
            .map_err(|e| io_err(Path::new("journal-precreate thread"), e))?;
        Ok(Precreator {
            requests: Some(req_tx),
            done: done_rx,
            thread: Some(thread),
            in_flight: None,
        })
    }
}

impl Drop for Precreator {
    fn drop(&mut self) {
        self.requests = None; // closes the channel: the thread exits.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Creates and maps the segment starting at `first_seq`; `writable`: see
/// [`WriterConfig::populate_writable`].
fn make_segment(
    dir: &Path,
    first_seq: u64,
    cfg: &WriterConfig,
    writable: bool,
) -> Result<ActiveSegment, JournalError> {
    let path = create_segment(dir, first_seq, cfg.segment_size, cfg.prealloc)?;
    let header = SegmentHeader {
        first_seq,
        segment_size: cfg.segment_size,
    };
    open_for_write(path, header, cfg.populate, writable)
}

/// A segment rolled away whose tail may not be durable yet.
struct Retired {
    path: PathBuf,
    file: File,
}

/// Appends sequenced records to the journal. Single-threaded: owned by the
/// sequencer thread. Obtain one from [`Recovered::into_writer`]
/// (`Journal::open(dir)?.into_writer(cfg)`), which works on an empty or new
/// directory too.
///
/// [`Recovered::into_writer`]: super::Recovered::into_writer
pub struct JournalWriter {
    dir: PathBuf,
    cfg: WriterConfig,
    cur: ActiveSegment,
    /// First global sequence the journal holds (or will hold, when empty).
    first_seq: u64,
    /// Next global sequence to append.
    next_seq: u64,
    /// Highest sequence known durable (0 = none).
    durable_seq: u64,
    /// Byte offset in `cur.map` from which records are not yet synced.
    dirty_from: usize,
    retired: Vec<Retired>,
    /// A segment prepared by `prepare_next_segment` (Manual mode).
    ready: Option<ActiveSegment>,
    pre: Option<Precreator>,
    stats: WriterStats,
}

impl JournalWriter {
    /// Builds a writer positioned at `next_seq` inside `cur` (crate use:
    /// recovery decides the position).
    pub(crate) fn resume(
        dir: PathBuf,
        cfg: WriterConfig,
        cur: ActiveSegment,
        first_seq: u64,
        next_seq: u64,
    ) -> Result<JournalWriter, JournalError> {
        // What recovery read may so far live only in the page cache (the
        // previous run may have been killed before its writeback): make it
        // durable once, so durable_seq starts true.
        cur.file.sync_data().map_err(|e| io_err(&cur.path, e))?;
        if cfg.populate && cfg.populate_writable {
            // After the sync, which leaves synced pages read-only again.
            let _ = crate::map::prefault_writable(&cur.map);
        }
        let pre = match cfg.precreate {
            Precreate::Background => Some(Precreator::spawn(dir.clone(), cfg.clone())?),
            Precreate::Manual => None,
        };
        let dirty_from = slot_offset(next_seq - cur.first_seq) as usize;
        let mut w = JournalWriter {
            dir,
            cfg,
            cur,
            first_seq,
            next_seq,
            durable_seq: next_seq - 1,
            dirty_from,
            retired: Vec::new(),
            ready: None,
            pre,
            stats: WriterStats::default(),
        };
        w.request_next();
        Ok(w)
    }

    /// Creates the first segment of an empty journal at `first_seq`.
    pub(crate) fn create(
        dir: PathBuf,
        cfg: WriterConfig,
        first_seq: u64,
    ) -> Result<JournalWriter, JournalError> {
        // Write-faulted by `resume`, after its sync (which would write the
        // dirtied zeros and undo it).
        let cur = make_segment(&dir, first_seq, &cfg, false)?;
        let mut w = JournalWriter::resume(dir, cfg, cur, first_seq, first_seq)?;
        w.stats.segments_created += 1;
        Ok(w)
    }

    /// Appends one record. `r.global_seq` must be exactly
    /// [`next_seq`](Self::next_seq), else [`JournalError::NonConsecutive`]
    /// and nothing is written; it must not be `u64::MAX`, else
    /// [`JournalError::SequenceExhausted`] (no sequence could follow it) and
    /// nothing is written. A memcpy into the mapping plus a CRC32C: no
    /// syscall, no allocation, except when the segment is full (roll).
    #[inline]
    pub fn append(&mut self, r: &SequencedRecord) -> Result<(), JournalError> {
        self.append_sequenced(&r.as_sequenced())
    }

    /// [`append`](Self::append) straight from the sequencer's borrowed view
    /// (no intermediate copy of the message).
    #[inline]
    pub fn append_sequenced(&mut self, m: &Sequenced<'_>) -> Result<(), JournalError> {
        let global_seq = m.global_seq;
        if global_seq != self.next_seq {
            return Err(JournalError::NonConsecutive {
                expected: self.next_seq,
                got: global_seq,
            });
        }
        if global_seq == u64::MAX {
            return Err(JournalError::SequenceExhausted { seq: global_seq });
        }
        let mut idx = self.next_seq - self.cur.first_seq;
        if idx >= self.cur.capacity {
            self.roll()?;
            idx = 0;
        }
        let off = slot_offset(idx) as usize;
        encode(m, &mut self.cur.map[off..off + RECORD_LEN]);
        // Cannot overflow: global_seq < u64::MAX (checked above).
        self.next_seq = global_seq + 1;
        Ok(())
    }

    /// Appends one record given in its stored form (exactly [`RECORD_LEN`]
    /// bytes as [`encode`](crate::encode) writes them, e.g. received from a
    /// replication leader), copied verbatim. It must decode (CRC, kind),
    /// else [`JournalError::InvalidRecord`]; its sequence must be
    /// [`next_seq`](Self::next_seq), else [`JournalError::NonConsecutive`];
    /// and not `u64::MAX`, else [`JournalError::SequenceExhausted`]. On any
    /// error nothing is written.
    pub fn append_encoded(&mut self, record: &[u8]) -> Result<(), JournalError> {
        let invalid = |reason: String| JournalError::InvalidRecord {
            expected_seq: self.next_seq,
            reason,
        };
        if record.len() != RECORD_LEN {
            return Err(invalid(format!(
                "{} bytes, a record is {RECORD_LEN}",
                record.len()
            )));
        }
        let global_seq = match decode_record(record) {
            Ok(r) => r.global_seq,
            Err(e) => return Err(invalid(format!("does not decode: {e:?}"))),
        };
        if global_seq != self.next_seq {
            return Err(JournalError::NonConsecutive {
                expected: self.next_seq,
                got: global_seq,
            });
        }
        if global_seq == u64::MAX {
            return Err(JournalError::SequenceExhausted { seq: global_seq });
        }
        let mut idx = self.next_seq - self.cur.first_seq;
        if idx >= self.cur.capacity {
            self.roll()?;
            idx = 0;
        }
        let off = slot_offset(idx) as usize;
        self.cur.map[off..off + RECORD_LEN].copy_from_slice(record);
        // Cannot overflow: global_seq < u64::MAX (checked above).
        self.next_seq = global_seq + 1;
        Ok(())
    }

    /// Appends consecutive records in their stored form that the caller
    /// has already verified, each with [`decode_record`](crate::decode_record)
    /// (as a replication follower checks a whole append before writing any
    /// of it): copied verbatim, one copy per segment they reach into, with
    /// no CRC computed a second time.
    ///
    /// Checked here without CRCs: `records` is whole records, else
    /// [`JournalError::InvalidRecord`]; the first carries
    /// [`next_seq`](Self::next_seq), else [`JournalError::NonConsecutive`];
    /// the last carries the first's sequence plus the count minus one, else
    /// [`JournalError::InvalidRecord`]; and not `u64::MAX`, else
    /// [`JournalError::SequenceExhausted`]. On those errors nothing is
    /// written. A record whose CRC is in fact wrong is stored as given, and
    /// recovery ends the journal before it.
    pub fn append_verified(&mut self, records: &[u8]) -> Result<(), JournalError> {
        let count = records.len() / RECORD_LEN;
        let invalid = |reason: String| JournalError::InvalidRecord {
            expected_seq: self.next_seq,
            reason,
        };
        if records.len() % RECORD_LEN != 0 {
            return Err(invalid(format!(
                "{} bytes, not whole {RECORD_LEN}-byte records",
                records.len()
            )));
        }
        if records.is_empty() {
            return Ok(());
        }
        // In bounds: `records` is a non-zero number of whole records.
        let seq_at = |at: usize| decode_unchecked(&records[at..at + RECORD_LEN]).global_seq;
        let (first_seq, last_seq) = (seq_at(0), seq_at(records.len() - RECORD_LEN));
        if first_seq != self.next_seq {
            return Err(JournalError::NonConsecutive {
                expected: self.next_seq,
                got: first_seq,
            });
        }
        if first_seq.checked_add(count as u64 - 1) != Some(last_seq) {
            return Err(invalid(format!(
                "{count} records from sequence {first_seq} end at {last_seq}"
            )));
        }
        if last_seq == u64::MAX {
            return Err(JournalError::SequenceExhausted { seq: last_seq });
        }
        let mut rest = records;
        while !rest.is_empty() {
            let mut idx = self.next_seq - self.cur.first_seq;
            if idx >= self.cur.capacity {
                self.roll()?;
                idx = 0;
            }
            let room = usize::try_from(self.cur.capacity - idx).unwrap_or(usize::MAX);
            let n = room.min(rest.len() / RECORD_LEN);
            let (now, later) = rest.split_at(n * RECORD_LEN);
            let off = slot_offset(idx) as usize;
            self.cur.map[off..off + now.len()].copy_from_slice(now);
            // Cannot overflow: the last sequence is below u64::MAX.
            self.next_seq += n as u64;
            rest = later;
        }
        Ok(())
    }

    /// Makes every appended record durable according to `policy` and, for
    /// `Msync`/`Fdatasync`, advances [`durable_seq`](Self::durable_seq) to
    /// [`written_seq`](Self::written_seq). Free when nothing is pending.
    pub fn flush(&mut self, policy: FlushPolicy) -> Result<(), JournalError> {
        if policy == FlushPolicy::None {
            return Ok(());
        }
        for r in self.retired.drain(..) {
            r.file.sync_data().map_err(|e| io_err(&r.path, e))?;
            self.stats.syncs += 1;
        }
        let end = self.write_offset();
        if end > self.dirty_from {
            match policy {
                FlushPolicy::Msync => self
                    .cur
                    .map
                    .flush_range(self.dirty_from, end - self.dirty_from)
                    .map_err(|e| io_err(&self.cur.path, e))?,
                _ => self.cur.file.sync_data().map_err(|e| io_err(&self.cur.path, e))?,
            }
            self.stats.syncs += 1;
            self.dirty_from = end;
        }
        self.durable_seq = self.next_seq - 1;
        Ok(())
    }

    /// Flushes with `FlushPolicy::Fdatasync` and closes the writer.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.flush(FlushPolicy::Fdatasync)
    }

    /// First global sequence the journal holds (when it is empty: the one
    /// the first append will get).
    #[inline]
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The next global sequence [`append`](Self::append) accepts.
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Highest sequence appended (in the page cache; survives a process
    /// crash). 0 when the journal is empty.
    #[inline]
    pub fn written_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Highest sequence made durable by a `Msync`/`Fdatasync` flush (or found
    /// on disk at open). Survives power loss.
    #[inline]
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Slow-path counters.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment currently appended to.
    pub fn current_segment(&self) -> &Path {
        &self.cur.path
    }

    /// Free record slots left in the current segment.
    pub fn remaining_in_segment(&self) -> u64 {
        self.cur.capacity - (self.next_seq - self.cur.first_seq)
    }

    /// Creates the next segment now (no-op if it is already prepared or
    /// being prepared in the background, or if no appendable sequence is
    /// left after the current segment). For `Precreate::Manual`: call it
    /// from an idle moment so the roll does not pay for file creation.
    pub fn prepare_next_segment(&mut self) -> Result<(), JournalError> {
        if self.pre.is_some() || self.ready.is_some() {
            return Ok(());
        }
        let Some(first) = self.next_segment_first() else {
            return Ok(());
        };
        self.ready = Some(make_segment(
            &self.dir,
            first,
            &self.cfg,
            self.cfg.populate_writable,
        )?);
        self.stats.segments_created += 1;
        Ok(())
    }

    /// Discards every record with global sequence `>= seq` (a replicated
    /// log overwriting a suffix that was never committed) and makes that
    /// durable before returning, whatever flush policy the caller uses:
    /// later segments are removed (newest first, the directory fsynced
    /// after each), then the discarded slots of the segment holding `seq`
    /// are zeroed from the end backwards, one page at a time, each page
    /// `msync`ed before the one before it is touched. So a crash at any
    /// point (process or power) leaves a journal that [`Journal::open`]
    /// accepts, ending somewhere between `seq - 1` and the old end; once
    /// this returns it ends at exactly `seq - 1`, and the next
    /// [`append`](Self::append) takes `seq`.
    ///
    /// `seq >= next_seq()` discards nothing (`Ok`). `seq` below
    /// [`first_seq`](Self::first_seq) is refused with
    /// [`JournalError::TruncateBelowFirst`] and changes nothing.
    /// [`durable_seq`](Self::durable_seq) drops to at most `seq - 1`.
    /// A slow path (file removal, one sync per page): for rare use.
    ///
    /// [`Journal::open`]: super::Journal::open
    pub fn truncate_from(&mut self, seq: u64) -> Result<(), JournalError> {
        if seq < self.first_seq {
            return Err(JournalError::TruncateBelowFirst {
                seq,
                first: self.first_seq,
            });
        }
        if seq >= self.next_seq {
            return Ok(());
        }
        let stepped_back = seq < self.cur.first_seq;
        if stepped_back {
            self.step_back_to(seq)?;
        }
        let start = slot_offset(seq - self.cur.first_seq) as usize;
        let mut end = self.write_offset();
        const PAGE: usize = 4096;
        while end > start {
            let from = ((end - 1) / PAGE * PAGE).max(start);
            self.cur.map[from..end].fill(0);
            self.cur
                .map
                .flush_range(from, end - from)
                .map_err(|e| io_err(&self.cur.path, e))?;
            self.stats.syncs += 1;
            end = from;
        }
        self.next_seq = seq;
        self.durable_seq = self.durable_seq.min(seq - 1);
        self.dirty_from = self.dirty_from.min(start);
        if stepped_back {
            self.request_next();
        }
        Ok(())
    }

    /// Discards every record and continues at `next_seq` (a replicated log
    /// installing a snapshot that covers everything up to `next_seq - 1`):
    /// every segment is removed, newest first with a directory fsync after
    /// each (a crash leaves a shorter valid journal, or none), then a fresh
    /// segment starting at `next_seq` is created (durably, like any
    /// segment). Afterwards [`first_seq`](Self::first_seq) and
    /// [`next_seq`](Self::next_seq) are `next_seq`, and [`Journal::open`]
    /// of the directory finds an empty journal starting there. `next_seq`
    /// must be in `1..u64::MAX`, else [`JournalError::Config`] and nothing
    /// changes.
    ///
    /// [`Journal::open`]: super::Journal::open
    pub fn reset_to(&mut self, next_seq: u64) -> Result<(), JournalError> {
        if next_seq == 0 || next_seq == u64::MAX {
            return Err(JournalError::Config(format!(
                "cannot restart the journal at global sequence {next_seq}"
            )));
        }
        self.drop_prepared();
        for (_, path) in list_segments(&self.dir)?.iter().rev() {
            fs::remove_file(path).map_err(|e| io_err(path, e))?;
            sync_dir(&self.dir)?;
        }
        let seg = make_segment(&self.dir, next_seq, &self.cfg, self.cfg.populate_writable)?;
        self.stats.segments_created += 1;
        // The old current segment (already unlinked) is unmapped here.
        drop(std::mem::replace(&mut self.cur, seg));
        self.retired.clear();
        self.first_seq = next_seq;
        self.next_seq = next_seq;
        self.durable_seq = next_seq - 1;
        self.dirty_from = HEADER_LEN;
        self.request_next();
        Ok(())
    }

    /// Removes the segments all of whose records come before `seq` (a
    /// replicated log whose snapshot covers them), oldest first, the
    /// directory fsynced after each, so a crash leaves a journal starting
    /// at a later segment, never a gap. The current segment is never
    /// removed, so [`first_seq`](Self::first_seq) becomes the first
    /// sequence of the oldest segment kept (at most `seq`, unless `seq` is
    /// past the current segment's start). Returns how many segments went.
    pub fn discard_before(&mut self, seq: u64) -> Result<u64, JournalError> {
        if seq <= self.first_seq {
            return Ok(0);
        }
        let segs = list_segments(&self.dir)?;
        let mut removed = 0;
        for pair in segs.windows(2) {
            let ((first, path), (next_first, _)) = (&pair[0], &pair[1]);
            if *first < self.first_seq {
                continue;
            }
            if *next_first > seq || *first >= self.cur.first_seq {
                break;
            }
            fs::remove_file(path).map_err(|e| io_err(path, e))?;
            sync_dir(&self.dir)?;
            self.first_seq = *next_first;
            removed += 1;
        }
        Ok(removed)
    }

    /// Removes the prepared next segment, waiting for one being made in
    /// the background.
    fn drop_prepared(&mut self) {
        if let Some(seg) = self.ready.take() {
            discard(seg);
        }
        if let Some(pre) = &mut self.pre {
            if pre.in_flight.take().is_some() {
                if let Ok(p) = pre.done.recv() {
                    self.stats.segments_created += 1;
                    if let Ok(seg) = p.result {
                        discard(seg);
                    }
                }
            }
        }
    }

    /// Makes the segment holding `seq` (older than the current one)
    /// current again: the prepared next segment is discarded, every later
    /// segment is removed, newest first with a directory fsync after each.
    /// On return `next_seq` is the end of that (full) segment.
    #[cold]
    fn step_back_to(&mut self, seq: u64) -> Result<(), JournalError> {
        self.drop_prepared();
        let segs = list_segments(&self.dir)?;
        let Some(k) = segs.iter().rposition(|(first, _)| *first <= seq) else {
            return Err(JournalError::Config(format!(
                "no segment file in {} holds global sequence {seq}",
                self.dir.display()
            )));
        };
        let (first, path) = segs[k].clone();
        let header = read_header(&path, first)?;
        let seg = open_for_write(path, header, self.cfg.populate, self.cfg.populate_writable)?;
        let end = first + seg.capacity;
        // The old current segment is unmapped here, before its file goes.
        drop(std::mem::replace(&mut self.cur, seg));
        for (_, later) in segs[k + 1..].iter().rev() {
            fs::remove_file(later).map_err(|e| io_err(later, e))?;
            sync_dir(&self.dir)?;
        }
        self.next_seq = end;
        self.dirty_from = self.write_offset();
        Ok(())
    }

    /// Appends to `dst` the encoded records (each [`RECORD_LEN`] bytes,
    /// exactly as stored, CRC included) with global sequences
    /// `first_seq..first_seq + count`, for the writer's owner to read back
    /// what it wrote (a replicated log rebuilding old entries for a lagging
    /// follower). Records of the current segment are copied from its
    /// mapping; older ones from their segment files, mapped read-only for
    /// the call (slow, allocation and syscalls: not for the hot path).
    /// Every record copied is CRC-checked and must carry its sequence, else
    /// [`JournalError::CorruptRecord`]. A range not wholly inside
    /// `first_seq()..next_seq()` is [`JournalError::OutOfRange`]; on any
    /// error `dst` may hold part of the range.
    pub fn copy_encoded(&self, first_seq: u64, count: u64, dst: &mut Vec<u8>) -> Result<(), JournalError> {
        let out_of_range = || JournalError::OutOfRange {
            first: first_seq,
            end: first_seq.saturating_add(count),
            held_first: self.first_seq,
            next: self.next_seq,
        };
        let end = first_seq.checked_add(count).ok_or_else(out_of_range)?;
        if first_seq < self.first_seq || end > self.next_seq {
            return Err(out_of_range());
        }
        if count == 0 {
            return Ok(());
        }
        dst.reserve(count as usize * RECORD_LEN);
        let cur_first = self.cur.first_seq;
        let mut seq = first_seq;
        if seq < cur_first {
            let segs = list_segments(&self.dir)?;
            for (i, (seg_first, path)) in segs.iter().enumerate() {
                let seg_end = segs
                    .get(i + 1)
                    .map_or(cur_first, |(next, _)| *next)
                    .min(cur_first);
                if seq >= seg_end || *seg_first > seq {
                    continue;
                }
                let upto = seg_end.min(end);
                copy_from_file(path, *seg_first, seq..upto, dst)?;
                seq = upto;
                if seq >= end || seq >= cur_first {
                    break;
                }
            }
            if seq < cur_first.min(end) {
                return Err(JournalError::Config(format!(
                    "no segment file in {} holds global sequence {seq}",
                    self.dir.display()
                )));
            }
        }
        if seq < end {
            copy_slots(&self.cur.path, &self.cur.map, cur_first, seq..end, dst)?;
        }
        Ok(())
    }

    #[inline]
    fn write_offset(&self) -> usize {
        slot_offset(self.next_seq - self.cur.first_seq) as usize
    }

    /// First sequence of the segment after the current one, if that segment
    /// could hold an appendable sequence (below `u64::MAX`).
    fn next_segment_first(&self) -> Option<u64> {
        self.cur
            .first_seq
            .checked_add(self.cur.capacity)
            .filter(|&first| first < u64::MAX)
    }

    /// Asks the helper thread for the segment after the current one.
    fn request_next(&mut self) {
        let Some(first) = self.next_segment_first() else {
            return;
        };
        if let Some(pre) = &mut self.pre {
            if pre.in_flight.is_none() {
                if let Some(tx) = &pre.requests {
                    if tx.send(HelperRequest::Prepare(first)).is_ok() {
                        pre.in_flight = Some(first);
                    }
                }
            }
        }
    }

    /// The prepared segment starting at `first`, if one is (being) made.
    fn take_prepared(&mut self, first: u64) -> Result<Option<ActiveSegment>, JournalError> {
        if let Some(seg) = self.ready.take() {
            if seg.first_seq == first {
                return Ok(Some(seg));
            }
            discard(seg);
        }
        let Some(pre) = &mut self.pre else { return Ok(None) };
        if pre.in_flight.take().is_none() {
            return Ok(None);
        }
        // Creation started long ago; waiting for it beats racing it.
        let Ok(p) = pre.done.recv() else { return Ok(None) };
        self.stats.segments_created += 1;
        let seg = p.result?;
        if p.first_seq == first {
            Ok(Some(seg))
        } else {
            discard(seg);
            Ok(None)
        }
    }

    #[cold]
    #[inline(never)]
    fn roll(&mut self) -> Result<(), JournalError> {
        let first = self.next_seq;
        let next = match self.take_prepared(first)? {
            Some(seg) => {
                self.stats.rolls_prepared += 1;
                seg
            }
            None => {
                let seg = make_segment(&self.dir, first, &self.cfg, self.cfg.populate_writable)?;
                self.stats.segments_created += 1;
                seg
            }
        };
        let old = std::mem::replace(&mut self.cur, next);
        let old_dirty = self.durable_seq < first - 1;
        let ActiveSegment { path, file, map, .. } = old;
        self.retire(map, &file);
        if old_dirty {
            self.retired.push(Retired { path, file });
            if self.retired.len() > MAX_RETIRED {
                let r = self.retired.remove(0);
                r.file.sync_data().map_err(|e| io_err(&r.path, e))?;
                self.stats.syncs += 1;
            }
        }
        self.dirty_from = HEADER_LEN;
        self.stats.rolls += 1;
        self.request_next();
        Ok(())
    }

    /// Unmaps a rolled-away segment and starts writing back its dirty
    /// pages: on the helper thread when there is one, so that the
    /// appender neither tears down 64 MiB of page tables nor lets dirty
    /// pages pile up. Left to the kernel, which starts writeback only once
    /// a tenth of memory is dirty, three journals on one disk had ~2 GB
    /// dirty after 8 s; the kernel then throttled the threads dirtying
    /// more, among them the one preparing the next segment, which the
    /// appender waits for at its roll: stalls of 450-600 ms at every roll
    /// from then on. Written back as each segment is done, the dirty pages
    /// stay at about two segments per journal.
    fn retire(&mut self, map: memmap2::MmapMut, file: &File) {
        let helper = self.pre.as_ref().and_then(|p| p.requests.as_ref());
        match (helper, file.try_clone()) {
            (Some(tx), Ok(file)) => {
                let _ = tx.send(HelperRequest::Retire { map, file });
            }
            _ => {
                drop(map);
                let _ = crate::map::start_writeback(file);
            }
        }
    }
}

/// Removes a prepared segment that will not be used (it is empty).
fn discard(seg: ActiveSegment) {
    let ActiveSegment { path, file, map, .. } = seg;
    drop(map);
    drop(file);
    let _ = fs::remove_file(path);
}
