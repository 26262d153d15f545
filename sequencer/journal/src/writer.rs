//! [`JournalWriter`]: appends records into the mapped current segment, rolls
//! to the next one when full, and makes written records durable on request.

use super::format::{encode, slot_offset, SegmentHeader, HEADER_LEN, RECORD_LEN};
use super::segment::{create_segment, io_err, open_for_write, ActiveSegment, Prealloc};
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
    /// Nothing: the kernel writes dirty pages back on its own schedule.
    /// Records survive a process crash (they are in the page cache) but not
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
    /// When the next segment is created.
    pub precreate: Precreate,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            segment_size: DEFAULT_SEGMENT_SIZE,
            prealloc: Prealloc::default(),
            populate: true,
            precreate: Precreate::default(),
        }
    }
}

impl WriterConfig {
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

/// The helper thread that creates the next segment ahead of time.
struct Precreator {
    requests: Option<Sender<u64>>,
    done: Receiver<Prepared>,
    thread: Option<JoinHandle<()>>,
    in_flight: Option<u64>,
}

impl Precreator {
    fn spawn(dir: PathBuf, cfg: WriterConfig) -> Result<Precreator, JournalError> {
        let (req_tx, req_rx) = channel::<u64>();
        let (done_tx, done_rx) = channel::<Prepared>();
        let thread = std::thread::Builder::new()
            .name("journal-precreate".into())
            .spawn(move || {
                while let Ok(first_seq) = req_rx.recv() {
                    let result = make_segment(&dir, first_seq, &cfg);
                    if done_tx.send(Prepared { first_seq, result }).is_err() {
                        break;
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

fn make_segment(dir: &Path, first_seq: u64, cfg: &WriterConfig) -> Result<ActiveSegment, JournalError> {
    let path = create_segment(dir, first_seq, cfg.segment_size, cfg.prealloc)?;
    let header = SegmentHeader {
        first_seq,
        segment_size: cfg.segment_size,
    };
    open_for_write(path, header, cfg.populate)
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
        next_seq: u64,
    ) -> Result<JournalWriter, JournalError> {
        // What recovery read may so far live only in the page cache (the
        // previous run may have been killed before its writeback): make it
        // durable once, so durable_seq starts true.
        cur.file.sync_data().map_err(|e| io_err(&cur.path, e))?;
        let pre = match cfg.precreate {
            Precreate::Background => Some(Precreator::spawn(dir.clone(), cfg.clone())?),
            Precreate::Manual => None,
        };
        let dirty_from = slot_offset(next_seq - cur.first_seq) as usize;
        let mut w = JournalWriter {
            dir,
            cfg,
            cur,
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
        let cur = make_segment(&dir, first_seq, &cfg)?;
        let mut w = JournalWriter::resume(dir, cfg, cur, first_seq)?;
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
        self.ready = Some(make_segment(&self.dir, first, &self.cfg)?);
        self.stats.segments_created += 1;
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
                    if tx.send(first).is_ok() {
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
                let seg = make_segment(&self.dir, first, &self.cfg)?;
                self.stats.segments_created += 1;
                seg
            }
        };
        let old = std::mem::replace(&mut self.cur, next);
        let old_dirty = self.durable_seq < first - 1;
        let ActiveSegment { path, file, map, .. } = old;
        drop(map); // munmap: dirty pages stay in the page cache.
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
}

/// Removes a prepared segment that will not be used (it is empty).
fn discard(seg: ActiveSegment) {
    let ActiveSegment { path, file, map, .. } = seg;
    drop(map);
    drop(file);
    let _ = fs::remove_file(path);
}
