//! The journal: an append-only, segmented, memory-mapped, checksummed log of
//! the sequenced stream.
//!
//! * [`JournalWriter`] appends one fixed-size record per sequenced message
//!   (a memcpy + CRC32C into the mapping: no syscall, no allocation), rolls
//!   to a new segment when one is full (the next segment is created ahead of
//!   time by a helper thread), and makes records durable on request with a
//!   [`FlushPolicy`]. For a replicated log it can also discard a suffix
//!   ([`JournalWriter::truncate_from`]: an uncommitted tail overwritten by
//!   a new leader) and read back what it wrote
//!   ([`JournalWriter::copy_encoded`], older segments mapped on demand).
//! * [`Journal::open`] verifies a journal directory, truncates a torn tail,
//!   refuses to start on corruption anywhere else (typed error naming file
//!   and byte offset), and returns a [`Recovered`]: the next sequence, the
//!   records (for rebuilding dedup tables and engine state) with filters by
//!   session and sequence range, and [`Recovered::into_writer`] to continue.
//!   [`Journal::open_read_only`] does the same without modifying anything
//!   (for `peregrine replay FILE_OR_DIR`).
//!
//! # Files
//!
//! A journal is a directory of segment files named
//! `NNNNNNNNNNNNNNNNNNNN.journal`, the 20-digit zero-padded global sequence
//! of the segment's first record slot. Every segment has a fixed size
//! (default 64 MiB, [`WriterConfig::segment_size`]), preallocated when it is
//! created (`fallocate`, optionally also zero-filled), written under
//! `….journal.tmp`, fsynced and renamed into place, so a `.journal` file
//! always has a complete header. A segment holds `(size − 64) / 144` record
//! slots; since the slot count is fixed, the next segment's name is known in
//! advance and it can be created before it is needed. Segments are full
//! except the last one; records are never rewritten, only discarded from
//! the end by [`JournalWriter::truncate_from`] (later segments removed,
//! discarded slots zeroed back to front, page by page, each page synced
//! before the previous one is touched, so every intermediate state is a
//! valid, shorter or longer, journal).
//!
//! # Segment header (64 bytes at offset 0, little-endian, [`header_field`])
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8  | magic `PRGNJRNL` |
//! | 8  | 2  | format version (1) |
//! | 10 | 2  | header length (64) |
//! | 12 | 4  | record length (144) |
//! | 16 | 8  | first global sequence (must match the file name, ≥ 1) |
//! | 24 | 8  | segment size in bytes (must match the file size) |
//! | 32 | 28 | reserved, zero |
//! | 60 | 4  | CRC32C of bytes 0..60 |
//!
//! # Record (144 bytes, 8-byte aligned; slot `k` at offset `64 + 144·k`, [`record_field`])
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0   | 2   | kind: 1 = sequenced message (0 only in an unwritten, all-zero slot) |
//! | 2   | 2   | origin gateway id |
//! | 4   | 4   | origin session index |
//! | 8   | 8   | global sequence (= header first sequence + `k`) |
//! | 16  | 8   | client sequence |
//! | 24  | 8   | gateway receive time, ns |
//! | 32  | 8   | sequencer time, ns |
//! | 40  | 100 | the message, as received |
//! | 140 | 4   | CRC32C (Castagnoli) of bytes 0..140 |
//!
//! The CRC is written last. An unwritten slot is all zeros (its CRC does not
//! match, so it can never pass as a record).
//!
//! # Recovery rules ([`Journal::open`])
//!
//! * Segments are read in name order; each header is checked (magic,
//!   version, lengths, CRC, first sequence = name, size = file size). A bad
//!   header is an error ([`JournalError::BadHeader`], offset 0), except in
//!   the last file when it also has no non-zero body byte (nothing lost:
//!   removed, whichever check its header fails; e.g. an interrupted copy of
//!   a pre-created segment).
//! * Trailing segments whose body is all zeros were created ahead and never
//!   written: removed.
//! * Each segment's first sequence must continue the previous segment
//!   ([`JournalError::SequenceGap`]); each slot must carry a matching CRC and
//!   the next sequence. Every segment but the last must be full of valid
//!   records ([`JournalError::CorruptRecord`]).
//! * In the last segment, the first slot that is empty or fails its CRC
//!   starts the tail. If any later slot's CRC matches (a valid record, or
//!   one of any sequence or kind), this is corruption in the middle:
//!   [`JournalError::CorruptRecord`] with the file and the offset of the
//!   tail's first slot (the reason names the later slot). Otherwise the
//!   tail (a torn write, garbage, or just zeros) is dropped: zeroed on disk
//!   and fsynced, reported in a [`TailReport`] (file, offset, sequence,
//!   records and bytes dropped), and writing resumes at that slot with the
//!   same sequence.
//! * A slot whose CRC matches but whose sequence or kind is wrong is never a
//!   torn write: error.
//! * Sequence `u64::MAX` is never written, since no sequence could follow it
//!   (the writer refuses it: [`JournalError::SequenceExhausted`]). A valid
//!   record carrying it is an error ([`JournalError::CorruptRecord`] at its
//!   slot).
//! * Nothing on disk changes until the whole journal has been verified: an
//!   open that fails leaves every file as it was. Only then are files
//!   removed (and the directory fsynced) and the tail zeroed.
//!
//! # Durability and the sequencer ([`FlushPolicy`])
//!
//! `append` puts a record in the page cache through the mapping: from then
//! on it survives a crash of the process (SIGKILL, abort), not of the
//! machine. [`JournalWriter::written_seq`] is that point.
//! `flush(Msync | Fdatasync)` makes everything written durable and moves
//! [`JournalWriter::durable_seq`] up.
//!
//! * **`async` mode**: per batch the sequencer calls `append` for each
//!   message, then publishes replies at once. It calls
//!   `flush(FlushPolicy::Msync)` from its idle path, or every N records /
//!   T µs, to bound what a power loss can take; `flush(None)` is a no-op.
//! * **`durable` mode**: per batch the sequencer calls `append` for each
//!   message *before* handing it to the application, then
//!   `flush(policy)` once for the whole batch, and only then publishes the
//!   batch's replies (group commit: one sync per poll, not per message).
//!   Invariant: no reply for sequence `s` leaves while `durable_seq() < s`.
//!
//! Caveat: pages of a mapped file are written back by the kernel in no
//! particular order. After a *power loss* in `async` mode the last segment
//! may hold valid records after a lost (zero) page; recovery then reports
//! corruption in the middle rather than silently dropping records that were
//! possibly acknowledged. In `durable` mode everything up to the last
//! acknowledged record was synced, so only the unacknowledged tail can be
//! damaged.
//!
//! `unsafe` (file mappings, `fallocate`) is confined to the private `map`
//! module.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod format;
mod map;
mod readback;
mod recovery;
mod segment;
mod tail;
mod writer;

pub use format::{
    decode_record, decode_unchecked, encode, header_field, record_field, SlotError, HEADER_LEN, MAGIC,
    RECORD_LEN,
};
pub use recovery::{Journal, RecordFilter, Records, Recovered, SegmentInfo, TailReport};
pub use segment::{parse_segment_name, segment_name, Prealloc};
pub use tail::JournalTail;
pub use writer::{FlushPolicy, JournalWriter, Precreate, WriterConfig, WriterStats, DEFAULT_SEGMENT_SIZE};

use peregrine_wire::message::MESSAGE_LEN;
use peregrine_wire::SessionRef;
use std::path::{Path, PathBuf};
/// One sequenced message, borrowed: what the sequencer hands the
/// application and what the journal appends and replays.
#[derive(Clone, Copy, Debug)]
pub struct Sequenced<'a> {
    /// Global sequence number: from 1, gap-free, strictly increasing.
    pub global_seq: u64,
    /// The session that sent it.
    pub origin: SessionRef,
    /// The client's sequence number within that session.
    pub client_seq: u64,
    /// Gateway receive time, ns.
    pub gateway_rx_ns: u64,
    /// Sequencing time, ns (read once per batch).
    pub sequencer_ns: u64,
    /// The message (validated length, type and version).
    pub msg: &'a [u8; MESSAGE_LEN],
}

/// Format version this build writes and reads.
pub const FORMAT_VERSION: u16 = format::FORMAT_VERSION;

/// Record slots in a segment of `segment_size` bytes.
pub fn records_per_segment(segment_size: u64) -> u64 {
    format::capacity_of(segment_size)
}

/// One journal record: a sequenced message, owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequencedRecord {
    /// Global sequence number.
    pub global_seq: u64,
    /// Sending session (`reserved` is not stored; reads back as 0).
    pub origin: SessionRef,
    /// The client's sequence number within its session.
    pub client_seq: u64,
    /// Gateway receive time, ns.
    pub gateway_rx_ns: u64,
    /// Sequencing time, ns.
    pub sequencer_ns: u64,
    /// The 100-byte message.
    pub msg: [u8; MESSAGE_LEN],
}

impl SequencedRecord {
    /// An owned copy of what the sequencer handed the application.
    pub fn from_sequenced(m: &Sequenced<'_>) -> SequencedRecord {
        SequencedRecord {
            global_seq: m.global_seq,
            origin: m.origin,
            client_seq: m.client_seq,
            gateway_rx_ns: m.gateway_rx_ns,
            sequencer_ns: m.sequencer_ns,
            msg: *m.msg,
        }
    }

    /// The view the application takes (for replay into
    /// `Application::on_message` (sequencer crate)).
    pub fn as_sequenced(&self) -> Sequenced<'_> {
        Sequenced {
            global_seq: self.global_seq,
            origin: self.origin,
            client_seq: self.client_seq,
            gateway_rx_ns: self.gateway_rx_ns,
            sequencer_ns: self.sequencer_ns,
            msg: &self.msg,
        }
    }
}

/// Everything that can go wrong with a journal. Corruption variants name the
/// file and the byte offset within it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// An operating-system call failed.
    #[error("journal I/O error on {}: {source}", path.display())]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A segment header is invalid.
    #[error("{}: corrupt segment header at byte offset 0: {reason}", path.display())]
    BadHeader {
        /// The segment file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A damaged record that is not part of a torn tail.
    #[error("{}: corrupt record at byte offset {offset} (expected global sequence {expected_seq}): {reason}", path.display())]
    CorruptRecord {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the record slot in the file.
        offset: u64,
        /// Sequence the slot should hold.
        expected_seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// Sequences do not continue (between segments: offset 16, the header's
    /// first-sequence field; inside one: the record's offset).
    #[error("{}: sequence gap at byte offset {offset}: expected global sequence {expected}, found {found}", path.display())]
    SequenceGap {
        /// The segment file.
        path: PathBuf,
        /// Byte offset in the file.
        offset: u64,
        /// The sequence that should be there.
        expected: u64,
        /// The sequence found.
        found: u64,
    },
    /// A `.journal` file whose name is not a 20-digit sequence.
    #[error("{}: not a segment file name (want NNNNNNNNNNNNNNNNNNNN.journal)", path.display())]
    BadSegmentName {
        /// The file.
        path: PathBuf,
    },
    /// `append` with a sequence other than the next one.
    #[error("non-consecutive append: expected global sequence {expected}, got {got}")]
    NonConsecutive {
        /// The sequence the journal expects.
        expected: u64,
        /// The sequence offered.
        got: u64,
    },
    /// `append` of sequence `u64::MAX`: no sequence could follow it, so the
    /// journal never holds it (nothing is written).
    #[error("global sequence {seq} cannot be journaled: no sequence could follow it")]
    SequenceExhausted {
        /// The sequence offered (`u64::MAX`).
        seq: u64,
    },
    /// Invalid settings or use.
    #[error("journal: {0}")]
    Config(String),
    /// [`JournalWriter::append_encoded`] of bytes that are not a valid
    /// record (wrong length, CRC, kind). Nothing is written.
    #[error("invalid encoded record for global sequence {expected_seq}: {reason}")]
    InvalidRecord {
        /// The sequence the journal expected next.
        expected_seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// [`JournalWriter::truncate_from`] below the first sequence the
    /// journal holds: those records are gone already (nothing is changed).
    #[error("cannot truncate from global sequence {seq}: the journal starts at {first}")]
    TruncateBelowFirst {
        /// The sequence asked for.
        seq: u64,
        /// The first sequence held.
        first: u64,
    },
    /// A read of records the journal does not hold
    /// ([`JournalWriter::copy_encoded`]).
    #[error("records {first}..{end} are not all in the journal (it holds {held_first}..{next})")]
    OutOfRange {
        /// First sequence asked for.
        first: u64,
        /// One past the last sequence asked for.
        end: u64,
        /// First sequence held.
        held_first: u64,
        /// One past the last sequence held.
        next: u64,
    },
}

impl JournalError {
    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            JournalError::Io { path, .. }
            | JournalError::BadHeader { path, .. }
            | JournalError::CorruptRecord { path, .. }
            | JournalError::SequenceGap { path, .. }
            | JournalError::BadSegmentName { path } => Some(path),
            JournalError::NonConsecutive { .. }
            | JournalError::SequenceExhausted { .. }
            | JournalError::Config(_)
            | JournalError::InvalidRecord { .. }
            | JournalError::TruncateBelowFirst { .. }
            | JournalError::OutOfRange { .. } => None,
        }
    }

    /// The byte offset in [`path`](Self::path) the error is about, if any.
    pub fn offset(&self) -> Option<u64> {
        match self {
            JournalError::BadHeader { .. } => Some(0),
            JournalError::CorruptRecord { offset, .. } | JournalError::SequenceGap { offset, .. } => {
                Some(*offset)
            }
            _ => None,
        }
    }
}
