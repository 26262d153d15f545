//! [`JournalStoreError`]: what can go wrong in the journal-backed log store.

use std::path::PathBuf;

/// A failure of the journal-backed [`LogStore`](crate::LogStore), carried
/// inside [`StoreError::Journal`](crate::StoreError::Journal). As with every
/// store error, after one from a write the node must stop and restart from
/// its directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalStoreError {
    /// The journal refused an operation or found corruption.
    #[error(transparent)]
    Journal(#[from] peregrine_journal::JournalError),
    /// An I/O error on the entry index or the store directory.
    #[error("log store {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The entry index is damaged somewhere other than its torn tail.
    #[error("entry index {}: corrupt at byte offset {offset}: {reason}", path.display())]
    CorruptIndex {
        /// The index file.
        path: PathBuf,
        /// Byte offset of the bad header or row.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The index and the journal disagree in a way a crash cannot explain
    /// (e.g. the first entry does not start at the journal's first record).
    #[error("entry index and journal disagree: {0}")]
    Mismatch(String),
    /// The stored commit index is past the last entry recovered: entries
    /// this node acknowledged are gone (e.g. `FlushPolicy::None` and a power
    /// loss). Starting would break Raft's guarantees; wipe the directory and
    /// let the node catch up from the leader.
    #[error("stored commit index {commit} is past the last recovered entry {last}: acknowledged entries were lost")]
    CommitBeyondLog {
        /// Stored commit index.
        commit: u64,
        /// Last index recovered.
        last: u64,
    },
    /// The directory belongs to a cluster with another membership.
    #[error("stored membership {stored:?} differs from the configured voters {configured:?}")]
    MembershipMismatch {
        /// Voters in the hard-state file.
        stored: Vec<u64>,
        /// Voters passed to `open`.
        configured: Vec<u64>,
    },
    /// An append would discard committed entries (a caller bug: Raft never
    /// does this). Nothing was changed.
    #[error("append at index {index} would discard committed entries (commit {commit})")]
    TruncatesCommitted {
        /// First index offered.
        index: u64,
        /// Stored commit index.
        commit: u64,
    },
    /// Offered entries do not have consecutive indexes. Nothing was written.
    #[error("entries are not consecutive: expected index {expected}, found {found}")]
    NonConsecutiveEntries {
        /// The index that should come next.
        expected: u64,
        /// The index found.
        found: u64,
    },
    /// An entry whose data is not a valid batch of journal records
    /// continuing the log. Nothing of the whole append was written.
    #[error("entry {index}: {reason}")]
    BadEntry {
        /// Log index of the entry.
        index: u64,
        /// What is wrong with it.
        reason: BadEntryReason,
    },
    /// The snapshot file is damaged.
    #[error("snapshot {}: {reason}", path.display())]
    CorruptSnapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A snapshot that cannot be installed or taken (its data lacks the
    /// leading last-sequence field, or the index is not committed).
    /// Nothing was changed.
    #[error("bad snapshot: {0}")]
    BadSnapshot(String),
}

/// Why an entry's data was refused (see [`JournalStoreError::BadEntry`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadEntryReason {
    /// Data length is not a multiple of the record length (144).
    #[error("data length {len} is not a multiple of {record_len}")]
    NotWholeRecords {
        /// Data length in bytes.
        len: usize,
        /// `peregrine_journal::RECORD_LEN`.
        record_len: usize,
    },
    /// A record fails its CRC or has an unknown kind.
    #[error("record {record} does not decode: {problem:?}")]
    BadRecord {
        /// Position of the record in the entry, from 0.
        record: usize,
        /// What the decoder reported.
        problem: peregrine_journal::SlotError,
    },
    /// A record's global sequence does not continue the log.
    #[error("record {record} has global sequence {found}, expected {expected}")]
    SequenceGap {
        /// Position of the record in the entry, from 0.
        record: usize,
        /// The sequence that should come next.
        expected: u64,
        /// The sequence found.
        found: u64,
    },
    /// Sequence `u64::MAX`, which the journal never stores.
    #[error("global sequence u64::MAX cannot be journaled")]
    SequenceExhausted,
    /// More records than an index row can count (u32).
    #[error("{records} records in one entry (at most {max})")]
    TooManyRecords {
        /// Records in the entry.
        records: usize,
        /// The limit.
        max: u32,
    },
    /// Not a normal entry (membership is static: configuration changes
    /// are never proposed).
    #[error("entry type {0:?} is not stored (only normal entries are)")]
    UnsupportedType(raft::eraftpb::EntryType),
    /// A non-empty entry context (never set by `ReplicatedLog::propose`;
    /// the journal has nowhere to keep it).
    #[error("non-empty entry context ({0} bytes) cannot be stored")]
    Context(usize),
}
