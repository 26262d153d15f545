//! The most recent entries, kept whole in memory up to a byte budget.
//!
//! Raft reads back what it just persisted (to send it to followers, to
//! apply it once committed), nearly always near the end of the log. Keeping
//! those entries avoids rebuilding them from the journal; older ones are
//! rebuilt on demand (a lagging follower: slow path).

use raft::eraftpb::Entry;
use std::collections::VecDeque;

/// Bytes charged per cached entry on top of its data (the `Entry` itself).
const ENTRY_OVERHEAD: usize = 64;

/// Default budget: 64 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Consecutive entries ending at the log's last index.
#[derive(Debug)]
pub struct EntryCache {
    entries: VecDeque<Entry>,
    bytes: usize,
    limit: usize,
}

impl EntryCache {
    pub fn new(limit: usize) -> EntryCache {
        EntryCache {
            entries: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    fn cost(e: &Entry) -> usize {
        e.data.len() + ENTRY_OVERHEAD
    }

    /// The cached entry at `index`, if any.
    pub fn get(&self, index: u64) -> Option<&Entry> {
        let first = self.entries.front()?.index;
        let k = usize::try_from(index.checked_sub(first)?).ok()?;
        self.entries.get(k)
    }

    /// Lowest cached index, if any.
    pub fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    /// Forgets entries at or after `index`.
    pub fn truncate_from(&mut self, index: u64) {
        while self.entries.back().is_some_and(|e| e.index >= index) {
            if let Some(e) = self.entries.pop_back() {
                self.bytes -= Self::cost(&e);
            }
        }
    }

    /// Adds `entries` (continuing the cached ones; anything else empties
    /// the cache first), then evicts the oldest down to the budget.
    pub fn extend(&mut self, entries: &[Entry]) {
        for e in entries {
            if self.entries.back().is_some_and(|b| b.index + 1 != e.index) {
                self.entries.clear();
                self.bytes = 0;
            }
            self.bytes += Self::cost(e);
            self.entries.push_back(e.clone());
        }
        self.evict();
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Changes the budget (bytes), evicting at once if needed.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        self.evict();
    }

    /// Bytes charged now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn evict(&mut self) {
        while self.bytes > self.limit {
            match self.entries.pop_front() {
                Some(e) => self.bytes -= Self::cost(&e),
                None => break,
            }
        }
    }
}
