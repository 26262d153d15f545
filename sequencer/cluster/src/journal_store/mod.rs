//! [`JournalLogStore`]: the journal *is* the Raft log.
//!
//! A Raft entry is one poll's batch of sequenced records, encoded exactly
//! as the journal stores them, so keeping the entries in a second log would
//! write every record twice. Instead a node's journal holds exactly the
//! records of the entries in its Raft log (committed or not), in order
//! (after a snapshot: possibly preceded by committed records the snapshot
//! covers), and what Raft adds per entry lives in a small side file:
//!
//! ```text
//! <dir>/journal/      the journal segments (peregrine-journal): the records
//! <dir>/entries.idx   one 32-byte CRC'd row per entry: index, term, first
//!                     global sequence, record count (append-only + truncate)
//! <dir>/hard_state    term, vote, commit, membership (HardStateFile)
//! <dir>/snapshot      the latest snapshot taken or installed, if any
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
//! Index rows after the snapshot stay in memory (32 bytes per entry).
//!
//! # Snapshots
//!
//! A snapshot's data is the last global sequence it covers followed by the
//! application's opaque bytes ([`encode_snapshot_data`]). Taking one
//! ([`JournalLogStore::create_snapshot`], at a committed index) or
//! installing one that the log contains (same index, term and last
//! sequence) drops the index rows up to it and the journal segments wholly
//! before it (the one holding its last record stays). Installing
//! one the log does not contain (a lagging follower) drops the whole log
//! and restarts the journal right after the snapshot's last sequence
//! ([`peregrine_journal::JournalWriter::reset_to`]). The snapshot file is
//! written first; `open` finishes an install a crash interrupted.
//!
//! [`crate::ReplicatedLog`] does not yet hand an installed snapshot to the
//! application: until it does, a node that installs one must restore its
//! state from [`JournalLogStore::snapshot_state`] (at start it always
//! should: restore from the snapshot, then replay its last sequence + 1
//! through [`JournalLogStore::committed_seq`]).

mod cache;
mod error;
mod index;
mod snapshot_file;
mod validate;

pub use cache::DEFAULT_CACHE_BYTES;
pub use error::{BadEntryReason, JournalStoreError};
pub use snapshot_file::{decode_snapshot_data, encode_snapshot_data};

use crate::hard_state_file::HardStateFile;
use crate::store::{LogStore, StoreError};
use cache::EntryCache;
use index::{IndexFile, Row};
use peregrine_journal::{
    decode_record, FlushPolicy, Journal, JournalWriter, SequencedRecord, TailReport, WriterConfig, RECORD_LEN,
};
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use snapshot_file::{SnapshotFile, StoredSnapshot};
use std::path::{Path, PathBuf};

/// Name of the journal directory inside the store directory.
pub const JOURNAL_DIR: &str = "journal";
/// Name of the entry index file inside the store directory.
pub const INDEX_FILE: &str = "entries.idx";
/// Name of the hard-state file inside the store directory.
pub const HARD_STATE_FILE: &str = "hard_state";
/// Name of the snapshot file inside the store directory.
pub const SNAPSHOT_FILE: &str = "snapshot";

/// The snapshot installed in the store at `dir`, read without opening the
/// store (for another thread or process, such as a node's feed): the last
/// global sequence it covers and the application's bytes; `None` if the
/// store holds none. The file is replaced atomically, so a reader sees
/// either the previous snapshot or the next, whole.
pub fn read_installed_snapshot(dir: &Path) -> Result<Option<(u64, Vec<u8>)>, JournalStoreError> {
    let stored = SnapshotFile::new(dir.join(SNAPSHOT_FILE)).load()?;
    Ok(stored.and_then(|s| decode_snapshot_data(&s.snapshot.data).map(|(seq, app)| (seq, app.to_vec()))))
}

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
    /// Index of `rows[0]` (one past the snapshot's).
    first_index: u64,
    /// Global sequence of the first record of the entry at `first_index`
    /// (one past the snapshot's last).
    base_seq: u64,
    rows: Vec<Row>,
    hard_state_file: HardStateFile,
    hard_state: HardState,
    /// The commit index last written to the hard-state file (term and vote
    /// there always equal `hard_state`'s).
    stored_commit: u64,
    conf_state: ConfState,
    snapshot_file: SnapshotFile,
    snapshot: Option<StoredSnapshot>,
    flush: FlushPolicy,
    cache: EntryCache,
    /// Record counts of the entries being appended (reused).
    counts: Vec<u32>,
}

impl Drop for JournalLogStore {
    /// A clean stop records the latest commit index, so the next start
    /// replays everything committed before taking part in Raft again.
    fn drop(&mut self) {
        let _ = self.persist_commit();
    }
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

        // Where the log starts: after the installed snapshot, if any, else
        // at index 1 and the journal's first record.
        let snapshot_file = SnapshotFile::new(dir.join(SNAPSHOT_FILE));
        let snapshot = snapshot_file.load().map_err(store_err)?;
        let mut index_rows_dropped = loaded.torn_rows;
        let (first_index, base_seq) = match &snapshot {
            None => (1, writer.first_seq()),
            Some(s) => (s.meta().index + 1, s.last_seq + 1),
        };
        if let Some(s) = &snapshot {
            // A crash may have interrupted the install: finish it.
            let (i, t) = (s.meta().index, s.meta().term);
            if let Some(r0) = rows.first().copied() {
                if r0.index <= i {
                    let at_i = rows.get((i - r0.index) as usize);
                    let matches = at_i.is_some_and(|r| r.term == t && r.end_seq() == base_seq);
                    let n = if matches {
                        (i + 1 - r0.index) as usize
                    } else if s.reset_journal {
                        rows.len()
                    } else {
                        return Err(store_err(JournalStoreError::Mismatch(format!(
                            "the snapshot at index {i} (term {t}, last sequence {}) matches no index row",
                            s.last_seq
                        ))));
                    };
                    rows.drain(..n);
                    index.rewrite(&rows).map_err(store_err)?;
                    index_rows_dropped += n as u64;
                }
            }
            let journal_ok = writer.first_seq() <= base_seq
                && writer.next_seq() >= base_seq
                && !(s.reset_journal && writer.first_seq() != base_seq);
            if !journal_ok {
                writer.reset_to(base_seq).map_err(store_err)?;
            }
        }
        if let Some(first) = rows.first() {
            if first.index != first_index || first.first_seq != base_seq {
                return Err(store_err(JournalStoreError::Mismatch(format!(
                    "first index row {first:?} should be index {first_index} starting at global sequence \
                     {base_seq}"
                ))));
            }
        }
        let journal_next = writer.next_seq();
        let keep = rows
            .iter()
            .rposition(|r| r.end_seq() <= journal_next)
            .map_or(0, |k| k + 1);
        index_rows_dropped += (rows.len() - keep) as u64;
        if keep < rows.len() {
            rows.truncate(keep);
            index.truncate(keep as u64).map_err(store_err)?;
        }
        let covered = rows.last().map_or(base_seq, Row::end_seq);
        let journal_records_dropped = journal_next - covered;
        if journal_records_dropped > 0 {
            writer.truncate_from(covered).map_err(store_err)?;
        }
        let mut hard_state = hard_state;
        if let Some(s) = &snapshot {
            // The snapshot is committed; its install may have stopped
            // before the hard state said so.
            if hard_state.commit < s.meta().index || hard_state.term < s.meta().term {
                hard_state.commit = hard_state.commit.max(s.meta().index);
                hard_state.term = hard_state.term.max(s.meta().term);
                hard_state_file.store(&hard_state, &conf_state)?;
            }
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
            base_seq,
            rows,
            stored_commit: hard_state.commit,
            hard_state_file,
            hard_state,
            conf_state,
            snapshot_file,
            snapshot,
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
    /// index (0 when nothing is committed). At start the server restores
    /// the application from [`snapshot_state`](Self::snapshot_state) if
    /// there is one, replays journal records from the first one after it
    /// (else from 1) up to this sequence ([`for_each_record`](Self::for_each_record)),
    /// and passes the commit index as `applied` to
    /// [`ReplicatedLog::new`](crate::ReplicatedLog::new).
    pub fn committed_seq(&self) -> u64 {
        let commit = self.hard_state.commit.min(self.last());
        match self.row(commit) {
            Some(r) => r.end_seq() - 1,
            None => self.base_seq - 1,
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

    /// Writes the in-memory commit index to the hard-state file if it
    /// moved since the last write (synced; milliseconds: not for the
    /// polling loop's every round).
    pub fn persist_commit(&mut self) -> Result<(), StoreError> {
        if self.hard_state.commit != self.stored_commit {
            self.hard_state_file.store(&self.hard_state, &self.conf_state)?;
            self.stored_commit = self.hard_state.commit;
        }
        Ok(())
    }

    /// Takes a snapshot at committed `index` holding the application's
    /// state `app` (opaque bytes reflecting every entry up to `index`):
    /// stored durably, after which the log starts at `index + 1` and
    /// [`Storage::snapshot`] hands it to peers that need it. Journal
    /// segments holding only records before the snapshot's are removed;
    /// the rest stays readable. `index` must be committed and not before the current
    /// snapshot ([`JournalStoreError::BadSnapshot`],
    /// [`StoreError::StaleSnapshot`]).
    pub fn create_snapshot(&mut self, index: u64, app: &[u8]) -> Result<(), StoreError> {
        let stored = self.first_index - 1;
        if index < stored {
            return Err(StoreError::StaleSnapshot {
                snapshot: index,
                stored,
            });
        }
        if index == 0 || index > self.hard_state.commit {
            return Err(store_err(JournalStoreError::BadSnapshot(format!(
                "index {index} is not a committed entry (commit {})",
                self.hard_state.commit
            ))));
        }
        let (term, last_seq) = match self.row(index) {
            Some(r) => (r.term, r.end_seq() - 1),
            None => (self.term(stored).unwrap_or(0), self.base_seq - 1),
        };
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..SnapshotMetadata::default()
        };
        meta.set_conf_state(self.conf_state.clone());
        let mut snapshot = Snapshot::default();
        snapshot.set_metadata(meta);
        snapshot.data = encode_snapshot_data(last_seq, app).into();
        self.install(snapshot, last_seq, false)
    }

    /// The installed snapshot, if any: its metadata, the last global
    /// sequence it covers and the application's bytes. At start the server
    /// restores the application from these bytes, then replays records
    /// `last_seq + 1..=committed_seq()`.
    pub fn snapshot_state(&self) -> Option<(&SnapshotMetadata, u64, &[u8])> {
        let s = self.snapshot.as_ref()?;
        let (last_seq, app) = decode_snapshot_data(&s.snapshot.data)?;
        Some((s.meta(), last_seq, app))
    }

    /// Installs `snapshot` (covering global sequences up to `last_seq`):
    /// the snapshot file first, then either the rows up to it are dropped
    /// (`reset` false: the log contained it) or the whole log is dropped
    /// and the journal restarted after it, then the hard state. A crash
    /// in between is finished by `open`.
    fn install(&mut self, snapshot: Snapshot, last_seq: u64, reset: bool) -> Result<(), StoreError> {
        let stored = StoredSnapshot {
            snapshot,
            last_seq,
            reset_journal: reset,
        };
        self.snapshot_file.store(&stored).map_err(store_err)?;
        let meta = stored.meta().clone();
        let base = last_seq + 1;
        if reset {
            self.rows.clear();
            self.index.rewrite(&self.rows).map_err(store_err)?;
            self.cache.clear();
            self.writer.reset_to(base).map_err(store_err)?;
        } else {
            let n = ((meta.index + 1).saturating_sub(self.first_index) as usize).min(self.rows.len());
            self.rows.drain(..n);
            self.index.rewrite(&self.rows).map_err(store_err)?;
        }
        self.first_index = meta.index + 1;
        self.base_seq = base;
        self.snapshot = Some(stored);
        self.conf_state = meta.get_conf_state().clone();
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = hs.commit.max(meta.index);
        self.hard_state_file.store(&hs, &self.conf_state)?;
        self.stored_commit = hs.commit;
        self.hard_state = hs;
        if !reset {
            // Journal segments wholly covered by the snapshot go (a crash
            // before this only leaves them a little longer).
            self.writer.discard_before(base).map_err(store_err)?;
        }
        Ok(())
    }

    /// Calls `f` with every record whose global sequence is in `seqs`, in
    /// order, read from the journal in chunks (for the server's replay at
    /// start: `seqs = first..committed_seq() + 1`, `first` being 1, or the
    /// snapshot's last sequence + 1 after one). Sequences the journal does
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

    /// The hard state (the commit index may be ahead of the file's).
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
            return Ok(self.snapshot.as_ref().map_or(0, |s| s.meta().term));
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

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // The latest snapshot taken or installed; none yet (or an older one
        // than asked for): "not now" rather than a wrong one.
        match &self.snapshot {
            Some(s) if s.meta().index >= request_index => Ok(s.snapshot.clone()),
            _ => Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)),
        }
    }
}

impl JournalLogStore {
    /// [`LogStore::append`], checking records' CRCs or not as `crc` says.
    fn append_checked(&mut self, entries: &[Entry], crc: validate::Crc) -> Result<(), StoreError> {
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
            None => self.rows.last().map_or(self.base_seq, Row::end_seq),
        };
        validate::check_entries(entries, start_seq, &mut self.counts, crc).map_err(store_err)?;

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
            // Every record was verified by `check_entries` (its sequence;
            // its CRC too unless this node encoded it).
            self.writer.append_verified(&e.data).map_err(store_err)?;
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
}

impl LogStore for JournalLogStore {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        self.append_checked(entries, validate::Crc::Check)
    }

    /// The leader's own entries: their records were encoded (CRC included)
    /// by this node's sequencer a moment ago, so only their structure and
    /// sequences are checked.
    fn append_proposed(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        self.append_checked(entries, validate::Crc::Trust)
    }

    /// Term and vote are written (synced, atomically replaced) before this
    /// returns: Raft's safety rests on them. A change of the commit index
    /// alone is kept in memory (see [`set_commit`](LogStore::set_commit)).
    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StoreError> {
        if hard_state.term != self.hard_state.term || hard_state.vote != self.hard_state.vote {
            self.hard_state_file.store(hard_state, &self.conf_state)?;
            self.stored_commit = hard_state.commit;
        }
        self.hard_state = hard_state.clone();
        Ok(())
    }

    /// The commit index moves with every committed entry; writing and
    /// syncing the hard-state file each time would stall the polling loop
    /// for milliseconds per entry (and delay heartbeats into spurious
    /// elections). Raft does not need it durable: after a restart a node
    /// learns the commit index from the leader again. So it is kept in
    /// memory here and written with the next term or vote change, by
    /// [`JournalLogStore::persist_commit`], or when the store is dropped;
    /// after a crash the node starts from an older commit index, replays
    /// less at start, and applies the rest as Raft recommits it.
    fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        self.hard_state.commit = commit;
        Ok(())
    }

    /// Every append is checked whole by `check_entries` first.
    fn verifies_records(&self) -> bool {
        true
    }

    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let meta = snapshot.get_metadata();
        let stored = self.first_index - 1;
        if meta.index < stored {
            return Err(StoreError::StaleSnapshot {
                snapshot: meta.index,
                stored,
            });
        }
        if meta.index == 0 {
            return Err(store_err(JournalStoreError::BadSnapshot(
                "index 0 (an empty snapshot)".into(),
            )));
        }
        let Some((last_seq, _)) = decode_snapshot_data(&snapshot.data) else {
            return Err(store_err(JournalStoreError::BadSnapshot(
                "data shorter than its leading 8-byte last sequence".into(),
            )));
        };
        if last_seq == u64::MAX {
            return Err(store_err(JournalStoreError::BadSnapshot(
                "last sequence u64::MAX leaves no next sequence".into(),
            )));
        }
        let base = last_seq + 1;
        let matches = match self.row(meta.index) {
            Some(r) => r.term == meta.term && r.end_seq() == base,
            None => {
                meta.index == stored && self.term(stored).ok() == Some(meta.term) && self.base_seq == base
            }
        };
        self.install(snapshot.clone(), last_seq, !matches)
    }
}
