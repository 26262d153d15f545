//! [`JournalLogStore`]: the journal *is* the Raft log.
//!
//! A Raft entry is one poll's batch of sequenced records, encoded exactly
//! as the journal stores them, so keeping the entries in a second log would
//! write every record twice. Instead a node's journal holds exactly the
//! records of the entries in its Raft log (committed or not), in order, and
//! what Raft adds per entry lives in a small side file:
//!
//! ```text
//! <dir>/journal/      the journal segments (peregrine-journal): the records
//! <dir>/entries.idx   one 32-byte CRC'd row per entry: index, term, first
//!                     global sequence, record count (append-only + truncate)
//! <dir>/hard_state    term, vote, commit, membership (HardStateFile)
//! ```
//!
//! # Write order and recovery
//!
//! `append` first checks every offered entry (typed error, nothing
//! written, on bad data), then discards a conflicting suffix (index rows
//! first, then journal records), then writes the records into the journal
//! and flushes it per the [`FlushPolicy`], and only then appends and
//! flushes the index rows. So at any crash point the journal holds at most
//! the records of the indexed entries plus some records no row covers, and
//! the index may end with rows whose records are torn away. [`open`]
//! reconciles: index rows whose records are missing from the journal are
//! dropped, journal records no row covers are truncated away (neither was
//! ever reported to Raft as persisted, since `append` returns after both).
//!
//! [`open`]: JournalLogStore::open
//!
//! # Durability
//!
//! With [`FlushPolicy::Msync`] or [`FlushPolicy::Fdatasync`] an `append`
//! that returned survives power loss. With [`FlushPolicy::None`] it lives
//! only in the page cache: it survives the process being killed, not the
//! machine going down; a node that lost acknowledged entries that way
//! refuses to start ([`JournalStoreError::CommitBeyondLog`]) when its
//! commit index says so. Discarding a suffix and the hard state are always
//! synced.
//!
//! # Reads
//!
//! raft-rs reads entries back right after writing them (to replicate, to
//! apply). The most recent ones are kept whole in a cache bounded by bytes
//! (64 MiB by default, [`JournalLogStore::set_cache_limit`]); older ones are
//! rebuilt from the journal and the index (a lagging follower: slow path).
//! Index rows stay in memory, 24 bytes per entry: the log is never
//! compacted yet (no snapshots), so that grows with it, like the journal.

mod cache;
mod error;
mod index;
mod validate;

pub use cache::DEFAULT_CACHE_BYTES;
pub use error::{BadEntryReason, JournalStoreError};

use crate::hard_state_file::HardStateFile;
use crate::store::{LogStore, StoreError};
use cache::EntryCache;
use index::{IndexFile, Row};
use peregrine_journal::{
    decode_record, FlushPolicy, Journal, JournalWriter, SequencedRecord, TailReport, WriterConfig, RECORD_LEN,
};
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::path::{Path, PathBuf};

/// Name of the journal directory inside the store directory.
pub const JOURNAL_DIR: &str = "journal";
/// Name of the entry index file inside the store directory.
pub const INDEX_FILE: &str = "entries.idx";
/// Name of the hard-state file inside the store directory.
pub const HARD_STATE_FILE: &str = "hard_state";

/// What [`JournalLogStore::open`] found and repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRecovery {
    /// The journal's torn tail, if it had one (already dropped).
    pub journal_tail: Option<TailReport>,
    /// Index rows dropped: a torn row, or rows whose records are not in the
    /// journal (never acknowledged as persisted).
    pub index_rows_dropped: u64,
    /// Journal records no index row covered, truncated away.
    pub journal_records_dropped: u64,
    /// Last log index kept (0: empty log).
    pub last_index: u64,
    /// The stored commit index.
    pub commit: u64,
    /// Last global sequence of the committed entries (0: none); see
    /// [`JournalLogStore::committed_seq`].
    pub committed_seq: u64,
}

/// A [`LogStore`] whose entries' records live in the journal. See the
/// module docs for the layout, the write order and what recovery repairs.
pub struct JournalLogStore {
    dir: PathBuf,
    writer: JournalWriter,
    index: IndexFile,
    /// Index of `rows[0]`.
    first_index: u64,
    rows: Vec<Row>,
    hard_state_file: HardStateFile,
    hard_state: HardState,
    conf_state: ConfState,
    flush: FlushPolicy,
    cache: EntryCache,
    /// Record counts of the entries being appended (reused).
    counts: Vec<u32>,
}

impl std::fmt::Debug for JournalLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalLogStore")
            .field("dir", &self.dir)
            .field("first_index", &self.first_index)
            .field("last_index", &self.last())
            .field("next_seq", &self.writer.next_seq())
            .field("hard_state", &self.hard_state)
            .field("flush", &self.flush)
            .finish()
    }
}

fn store_err(e: impl Into<JournalStoreError>) -> StoreError {
    StoreError::Journal(e.into())
}

impl JournalLogStore {
    /// Opens the store in `dir` (created if missing) for a cluster of
    /// `voters`: recovers the journal (`Journal::open`: torn tail dropped),
    /// the index and the hard state, reconciles index and journal (see the
    /// module docs), and returns the store with what was found.
    ///
    /// A new directory gets `voters` as its membership (written to the
    /// hard-state file at once); an existing one must have been created with
    /// the same voters ([`JournalStoreError::MembershipMismatch`]).
    /// `writer_cfg` sets the journal's segments, `flush` how each `append`
    /// is made durable before it returns.
    pub fn open(
        dir: impl AsRef<Path>,
        voters: &[u64],
        writer_cfg: WriterConfig,
        flush: FlushPolicy,
    ) -> Result<(JournalLogStore, StoreRecovery), StoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| {
            store_err(JournalStoreError::Io {
                path: dir.clone(),
                source,
            })
        })?;
        let index_path = dir.join(INDEX_FILE);
        let index_existed = index_path.exists();
        let recovered = Journal::open(dir.join(JOURNAL_DIR)).map_err(store_err)?;
        if !index_existed && !recovered.is_empty() {
            // The store creates its index before it writes any record: a
            // journal without one was written by something else (a
            // single-node sequencer). Refuse rather than truncate it away.
            return Err(store_err(JournalStoreError::Mismatch(format!(
                "{} holds records {}..{} but there is no entry index {}: not a log store directory",
                recovered.dir().display(),
                recovered.first_seq(),
                recovered.next_seq(),
                index_path.display()
            ))));
        }
        let journal_tail = recovered.tail().cloned();
        let mut writer = recovered.into_writer(writer_cfg).map_err(store_err)?;
        let loaded = IndexFile::open(&index_path).map_err(store_err)?;
        let mut index = loaded.file;
        let mut rows = loaded.rows;

        let hard_state_file = HardStateFile::new(dir.join(HARD_STATE_FILE));
        let mut configured = voters.to_vec();
        configured.sort_unstable();
        let (hard_state, conf_state) = match hard_state_file.load()? {
            Some((hs, cs)) => {
                let mut stored = cs.voters.clone();
                stored.sort_unstable();
                if stored != configured {
                    return Err(store_err(JournalStoreError::MembershipMismatch {
                        stored,
                        configured,
                    }));
                }
                (hs, cs)
            }
            None => {
                let cs = ConfState {
                    voters: voters.to_vec(),
                    ..ConfState::default()
                };
                let hs = HardState::default();
                hard_state_file.store(&hs, &cs)?;
                (hs, cs)
            }
        };

        // The log has no snapshot yet: it starts at index 1, at the
        // journal's first record.
        let first_index = 1;
        if let Some(first) = rows.first() {
            if first.index != first_index || first.first_seq != writer.first_seq() {
                return Err(store_err(JournalStoreError::Mismatch(format!(
                    "first index row {first:?} should be index {first_index} starting at the journal's first \
                     sequence {}",
                    writer.first_seq()
                ))));
            }
        }
        let journal_next = writer.next_seq();
        let keep = rows
            .iter()
            .rposition(|r| r.end_seq() <= journal_next)
            .map_or(0, |k| k + 1);
        let index_rows_dropped = loaded.torn_rows + (rows.len() - keep) as u64;
        if keep < rows.len() {
            rows.truncate(keep);
            index.truncate(keep as u64).map_err(store_err)?;
        }
        let covered = rows.last().map_or(writer.first_seq(), Row::end_seq);
        let journal_records_dropped = journal_next - covered;
        if journal_records_dropped > 0 {
            writer.truncate_from(covered).map_err(store_err)?;
        }
        let last = first_index - 1 + rows.len() as u64;
        if hard_state.commit > last {
            return Err(store_err(JournalStoreError::CommitBeyondLog {
                commit: hard_state.commit,
                last,
            }));
        }
        let store = JournalLogStore {
            dir,
            writer,
            index,
            first_index,
            rows,
            hard_state_file,
            hard_state,
            conf_state,
            flush,
            cache: EntryCache::new(DEFAULT_CACHE_BYTES),
            counts: Vec::new(),
        };
        let report = StoreRecovery {
            journal_tail,
            index_rows_dropped,
            journal_records_dropped,
            last_index: store.last(),
            commit: store.hard_state.commit,
            committed_seq: store.committed_seq(),
        };
        Ok((store, report))
    }

    /// Sets the byte budget of the recent-entries cache (default
    /// [`DEFAULT_CACHE_BYTES`]); entries past it are rebuilt from the
    /// journal when read. 0 disables the cache.
    pub fn set_cache_limit(&mut self, bytes: usize) {
        self.cache.set_limit(bytes);
    }

    /// Bytes the cache holds now (entry data plus a fixed overhead each).
    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Last global sequence of the entries at or below the stored commit
    /// index (0 when nothing is committed). At start the server replays
    /// journal records up to it into the application and passes the commit
    /// index as `applied` to [`ReplicatedLog::new`](crate::ReplicatedLog::new).
    pub fn committed_seq(&self) -> u64 {
        let commit = self.hard_state.commit.min(self.last());
        match self.row(commit) {
            Some(r) => r.end_seq() - 1,
            None => self.writer.first_seq() - 1,
        }
    }

    /// The journal's next global sequence: the first record of the next
    /// non-empty entry appended must carry it.
    pub fn next_seq(&self) -> u64 {
        self.writer.next_seq()
    }

    /// The global sequences of entry `index`: `(first_seq, count)`
    /// (`count` 0 for an empty entry), or `None` if the log does not hold it.
    pub fn seq_range(&self, index: u64) -> Option<(u64, u64)> {
        self.row(index).map(|r| (r.first_seq, u64::from(r.count)))
    }

    /// The journal directory (`<dir>/journal`), readable with
    /// `peregrine_journal::Journal::open_read_only`.
    pub fn journal_dir(&self) -> &Path {
        self.writer.dir()
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The journal writer, for reading records back
    /// ([`JournalWriter::copy_encoded`]) and its counters. Writes go
    /// through [`LogStore::append`] only.
    pub fn journal(&self) -> &JournalWriter {
        &self.writer
    }

    /// Calls `f` with every record whose global sequence is in `seqs`, in
    /// order, read from the journal in chunks (for the server's replay at
    /// start: `seqs = 1..committed_seq() + 1`). Sequences the journal does
    /// not hold are an error ([`peregrine_journal::JournalError::OutOfRange`]).
    pub fn for_each_record(
        &self,
        seqs: std::ops::Range<u64>,
        mut f: impl FnMut(&SequencedRecord),
    ) -> Result<(), StoreError> {
        const CHUNK: u64 = 4096;
        let mut buf = Vec::with_capacity(CHUNK as usize * RECORD_LEN);
        let mut seq = seqs.start;
        while seq < seqs.end {
            let n = (seqs.end - seq).min(CHUNK);
            buf.clear();
            self.writer.copy_encoded(seq, n, &mut buf).map_err(store_err)?;
            for slot in buf.chunks_exact(RECORD_LEN) {
                // `copy_encoded` checked every record it copied.
                if let Ok(r) = decode_record(slot) {
                    f(&r);
                }
            }
            seq += n;
        }
        Ok(())
    }

    /// The stored hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The stored membership.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The flush policy of appends.
    pub fn flush_policy(&self) -> FlushPolicy {
        self.flush
    }

    fn last(&self) -> u64 {
        self.first_index - 1 + self.rows.len() as u64
    }

    fn row(&self, index: u64) -> Option<&Row> {
        let k = usize::try_from(index.checked_sub(self.first_index)?).ok()?;
        self.rows.get(k)
    }

    /// Rebuilds entries `low..high` (all held) from the journal, stopping
    /// once their data exceeds `max_bytes`.
    fn rebuild(
        &self,
        low: u64,
        high: u64,
        max_bytes: Option<u64>,
        out: &mut Vec<Entry>,
    ) -> Result<(), StoreError> {
        let lo = (low - self.first_index) as usize;
        let hi = (high - self.first_index) as usize;
        let rows = &self.rows[lo..hi];
        // How many entries are worth reading: at least one, then up to the
        // size limit (the caller trims exactly).
        let mut n = 0;
        let mut bytes = 0u64;
        for r in rows {
            n += 1;
            bytes += u64::from(r.count) * RECORD_LEN as u64;
            if max_bytes.is_some_and(|m| bytes > m) {
                break;
            }
        }
        let rows = &rows[..n];
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(());
        };
        let mut buf = Vec::new();
        self.writer
            .copy_encoded(first.first_seq, last.end_seq() - first.first_seq, &mut buf)
            .map_err(store_err)?;
        let mut at = 0;
        for r in rows {
            let len = r.count as usize * RECORD_LEN;
            let mut e = Entry {
                index: r.index,
                term: r.term,
                data: buf[at..at + len].to_vec().into(),
                ..Entry::default()
            };
            e.set_entry_type(EntryType::EntryNormal);
            out.push(e);
            at += len;
        }
        Ok(())
    }
}

impl Storage for JournalLogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max = max_size.into();
        let mut out = Vec::new();
        let cached_from = self.cache.first_index().unwrap_or(high).clamp(low, high);
        if low < cached_from {
            self.rebuild(low, cached_from, max, &mut out)
                .map_err(|e| raft::Error::Store(StorageError::Other(Box::new(e))))?;
        }
        if out.len() as u64 == cached_from - low {
            let mut bytes: u64 = out.iter().map(|e| e.data.len() as u64).sum();
            for i in cached_from..high {
                if max.is_some_and(|m| bytes > m) {
                    break;
                }
                let Some(e) = self.cache.get(i) else {
                    return Err(raft::Error::Store(StorageError::Unavailable));
                };
                bytes += e.data.len() as u64;
                out.push(e.clone());
            }
        }
        raft::util::limit_size(&mut out, max);
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.first_index - 1 {
            return Ok(0);
        }
        if idx < self.first_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self.row(idx) {
            Some(r) => Ok(r.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first_index)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // The log is never compacted, so a peer can always be caught up from
        // entries: "not now" rather than a wrong snapshot.
        Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
    }
}

impl LogStore for JournalLogStore {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let last = self.last();
        if first.index < self.first_index || first.index > last + 1 {
            return Err(StoreError::Gap {
                first: first.index,
                last,
            });
        }
        let overwrites = first.index <= last;
        if overwrites && first.index <= self.hard_state.commit {
            return Err(store_err(JournalStoreError::TruncatesCommitted {
                index: first.index,
                commit: self.hard_state.commit,
            }));
        }
        let start_seq = match self.row(first.index) {
            Some(r) => r.first_seq,
            None => self.rows.last().map_or(self.writer.first_seq(), Row::end_seq),
        };
        validate::check_entries(entries, start_seq, &mut self.counts).map_err(store_err)?;

        if overwrites {
            let keep = first.index - self.first_index;
            self.index.truncate(keep).map_err(store_err)?;
            self.rows.truncate(keep as usize);
            self.cache.truncate_from(first.index);
        }
        // The overwritten entries' records (or records a failed append left
        // behind) go before new ones are written.
        if self.writer.next_seq() > start_seq {
            self.writer.truncate_from(start_seq).map_err(store_err)?;
        }
        for e in entries {
            for slot in e.data.chunks_exact(RECORD_LEN) {
                // Stored verbatim (checked again by the writer).
                self.writer.append_encoded(slot).map_err(store_err)?;
            }
        }
        self.writer.flush(self.flush).map_err(store_err)?;
        let old_len = self.rows.len();
        let mut seq = start_seq;
        for (e, &count) in entries.iter().zip(&self.counts) {
            self.rows.push(Row {
                index: e.index,
                term: e.term,
                first_seq: seq,
                count,
            });
            seq += u64::from(count);
        }
        if let Err(e) = self
            .index
            .append(&self.rows[old_len..], self.flush != FlushPolicy::None)
        {
            self.rows.truncate(old_len);
            return Err(store_err(e));
        }
        self.cache.extend(entries);
        Ok(())
    }

    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StoreError> {
        if *hard_state != self.hard_state {
            self.hard_state_file.store(hard_state, &self.conf_state)?;
            self.hard_state = hard_state.clone();
        }
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        if commit != self.hard_state.commit {
            let mut hs = self.hard_state.clone();
            hs.commit = commit;
            self.hard_state_file.store(&hs, &self.conf_state)?;
            self.hard_state = hs;
        }
        Ok(())
    }

    fn apply_snapshot(&mut self, _snapshot: &Snapshot) -> Result<(), StoreError> {
        Err(store_err(JournalStoreError::SnapshotsUnsupported))
    }
}
