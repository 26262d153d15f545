//! Where the replicated log lives: the [`LogStore`] trait and the in-memory
//! [`MemLogStore`].
//!
//! raft-rs reads the log through its `Storage` trait (`&self` methods) and
//! leaves writing to the application; [`LogStore`] adds the writes that
//! [`crate::ReplicatedLog::poll`] performs, in the order Raft requires. It
//! is a trait so the journal can be the log ([`crate::JournalLogStore`]: a
//! Raft entry is a batch of sequenced records, and the journal already
//! stores those) without the replication logic changing. Every write must be durable when it
//! returns: Raft tells peers an entry is persisted right after.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

/// A failure to persist part of the log. After one, the node must stop and
/// restart from what its store holds: the in-memory Raft state may be ahead
/// of the disk.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The operating system refused a write or fsync.
    #[error("log store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The hard-state file could not be written or read back.
    #[error(transparent)]
    HardState(#[from] crate::hard_state_file::HardStateFileError),
    /// Entries did not continue the stored log (a bug in the caller).
    #[error("append at index {first} does not continue the log (last index {last})")]
    Gap {
        /// Index of the first entry offered.
        first: u64,
        /// Last index held.
        last: u64,
    },
    /// A snapshot older than what is stored.
    #[error("snapshot at index {snapshot} is older than the store's {stored}")]
    StaleSnapshot {
        /// Index of the snapshot offered.
        snapshot: u64,
        /// Index already covered.
        stored: u64,
    },
    /// The journal-backed store failed or refused the operation (bad entry
    /// data or snapshot, corruption, a journal error).
    #[error(transparent)]
    Journal(#[from] crate::journal_store::JournalStoreError),
}

/// The durable Raft log of one node: raft-rs reads it through [`Storage`],
/// [`crate::ReplicatedLog`] writes it through these methods. Every method
/// returns only once its write is durable.
pub trait LogStore: Storage {
    /// Appends `entries` (consecutive indexes), first discarding any stored
    /// entries at or after `entries[0].index` (a new leader overwriting an
    /// uncommitted suffix). An empty slice is a no-op.
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError>;
    /// Appends entries this node proposed as leader in its current term,
    /// whose records its own sequencer just encoded: as
    /// [`append`](Self::append), except that a store which checks every
    /// record's CRC on append may skip that check here (everything else,
    /// the sequence continuity included, is still checked). Default:
    /// `append`.
    fn append_proposed(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        self.append(entries)
    }
    /// Replaces the hard state (term, vote, commit).
    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StoreError>;
    /// Records a new commit index, leaving term and vote unchanged.
    fn set_commit(&mut self, commit: u64) -> Result<(), StoreError>;
    /// Replaces everything up to the snapshot's index with the snapshot.
    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError>;
    /// True when [`append`](Self::append) refuses any entry whose data is
    /// not intact journal records (each CRC checked) continuing the stored
    /// sequence, and [`append_proposed`](Self::append_proposed) any whose
    /// records do not continue it (their CRCs are this node's own work).
    /// Raft applies only entries it has persisted here, so a node may then
    /// apply committed entries without checking each record's CRC again.
    /// Default: false (entries are stored as given).
    fn verifies_records(&self) -> bool {
        false
    }
}

/// A [`LogStore`] in memory: plain vectors, no locks, no I/O. For tests and
/// the simulation, where `Clone` gives exactly the "disk" that survives a
/// crash (everything written through [`LogStore`], nothing else).
#[derive(Clone, Debug, Default)]
pub struct MemLogStore {
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the entry just before `entries[0]` (the snapshot).
    snapshot: SnapshotMetadata,
    entries: Vec<Entry>,
}

impl MemLogStore {
    /// A fresh store for a cluster of these voters (every node of a new
    /// cluster starts from the same membership and an empty log).
    pub fn new(voters: &[u64]) -> MemLogStore {
        let conf_state = ConfState {
            voters: voters.to_vec(),
            ..ConfState::default()
        };
        let mut snapshot = SnapshotMetadata::default();
        snapshot.set_conf_state(conf_state.clone());
        MemLogStore {
            conf_state,
            snapshot,
            ..MemLogStore::default()
        }
    }

    /// The stored hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The stored entries after the snapshot, in index order.
    pub fn stored_entries(&self) -> &[Entry] {
        &self.entries
    }

    fn first(&self) -> u64 {
        self.snapshot.index + 1
    }

    fn last(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }
}

impl Storage for MemLogStore {
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
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        let mut out = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot.index {
            return Ok(self.snapshot.term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // No state-machine snapshots yet: the log is never compacted, so a
        // peer can always be caught up from entries and this is unreachable
        // in practice. Report "not now" rather than a wrong snapshot.
        let _ = request_index;
        Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
    }
}

impl LogStore for MemLogStore {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index < self.first() || first.index > self.last() + 1 {
            return Err(StoreError::Gap {
                first: first.index,
                last: self.last(),
            });
        }
        self.entries.truncate((first.index - self.first()) as usize);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StoreError> {
        self.hard_state = hard_state.clone();
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        self.hard_state.commit = commit;
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let meta = snapshot.get_metadata();
        if meta.index < self.snapshot.index {
            return Err(StoreError::StaleSnapshot {
                snapshot: meta.index,
                stored: self.snapshot.index,
            });
        }
        let keep_from = meta.index.saturating_sub(self.snapshot.index) as usize;
        let matches = meta.index <= self.last() && self.term(meta.index).ok() == Some(meta.term);
        if matches {
            self.entries.drain(..keep_from.min(self.entries.len()));
        } else {
            self.entries.clear();
        }
        self.snapshot = meta.clone();
        self.conf_state = meta.get_conf_state().clone();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Entry::default()
        }
    }

    #[test]
    fn append_overwrites_a_suffix_and_refuses_gaps() {
        let mut s = MemLogStore::new(&[1, 2, 3]);
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]).unwrap();
        s.append(&[entry(2, 2)]).unwrap();
        assert_eq!(s.last_index().unwrap(), 2);
        assert_eq!(s.term(2).unwrap(), 2);
        assert_eq!(s.term(0).unwrap(), 0);
        assert!(matches!(
            s.append(&[entry(5, 2)]),
            Err(StoreError::Gap { first: 5, last: 2 })
        ));
        assert!(s.term(3).is_err());
        let got = s.entries(1, 3, None, GetEntriesContext::empty(false)).unwrap();
        assert_eq!(got.iter().map(|e| e.term).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn initial_state_carries_membership_and_hard_state() {
        let mut s = MemLogStore::new(&[1, 2, 3]);
        let hs = HardState {
            term: 4,
            vote: 2,
            commit: 0,
            ..HardState::default()
        };
        s.set_hard_state(&hs).unwrap();
        s.set_commit(0).unwrap();
        let st = s.initial_state().unwrap();
        assert_eq!(st.hard_state, hs);
        assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
    }

    #[test]
    fn snapshot_replaces_the_prefix() {
        let mut s = MemLogStore::new(&[1, 2, 3]);
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]).unwrap();
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 2;
        snap.mut_metadata().term = 1;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        s.apply_snapshot(&snap).unwrap();
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (3, 3));
        assert_eq!(s.term(2).unwrap(), 1);
        assert_eq!(s.hard_state().commit, 2);
        snap.mut_metadata().index = 1;
        assert!(matches!(
            s.apply_snapshot(&snap),
            Err(StoreError::StaleSnapshot { .. })
        ));
    }
}
