//! `SimStore`: the simulation's disk. A [`MemLogStore`] that also remembers
//! the lowest index written since the invariant checker last looked, so the
//! "a committed entry never changes" check only re-reads what changed.

use peregrine_cluster::{Entry, HardState, LogStore, MemLogStore, StoreError};
use raft::eraftpb::Snapshot;
use raft::{GetEntriesContext, RaftState, Storage};
use std::cell::Cell;

/// A node's persisted state. Cloning it is what survives a crash.
#[derive(Clone, Debug)]
pub struct SimStore {
    inner: MemLogStore,
    lowest_written: Cell<Option<u64>>,
}

impl SimStore {
    pub fn new(voters: &[u64]) -> SimStore {
        SimStore {
            inner: MemLogStore::new(voters),
            lowest_written: Cell::new(None),
        }
    }

    /// The lowest entry index appended since the last call, if any.
    pub fn take_lowest_written(&self) -> Option<u64> {
        self.lowest_written.take()
    }

    pub fn hard_state(&self) -> &HardState {
        self.inner.hard_state()
    }

    /// The persisted entry at `index`, if present.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        let entries = self.inner.stored_entries();
        let first = entries.first()?.index;
        entries.get(usize::try_from(index.checked_sub(first)?).ok()?)
    }

    pub fn last(&self) -> u64 {
        self.inner.stored_entries().last().map_or(0, |e| e.index)
    }
}

impl Storage for SimStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.inner.initial_state()
    }
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.inner.entries(low, high, max_size, context)
    }
    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.inner.term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.inner.first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.inner.last_index()
    }
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        self.inner.snapshot(request_index, to)
    }
}

impl LogStore for SimStore {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        if let Some(first) = entries.first() {
            let low = self
                .lowest_written
                .get()
                .map_or(first.index, |w| w.min(first.index));
            self.lowest_written.set(Some(low));
        }
        self.inner.append(entries)
    }
    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StoreError> {
        self.inner.set_hard_state(hard_state)
    }
    fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        self.inner.set_commit(commit)
    }
    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner.apply_snapshot(snapshot)
    }
}
