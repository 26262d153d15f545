//! `(session, order id) -> pool index` for O(1) cancel and replace.
//!
//! Open addressing with linear probing and backward-shift deletion (no
//! tombstones, so a long-running engine never degrades), sized to a power of
//! two at least twice the pool capacity so the load factor stays at or below
//! one half. The hash is a fixed multiplicative (Fibonacci) hash:
//! deterministic across runs and processes, with no per-process random
//! state and no allocation.

use crate::huge_page_vec::HugePageVec;
use crate::order_pool::NIL;
use crate::touch::{self, Structure};

#[derive(Debug, Clone, Copy)]
struct Entry {
    order_id: u64,
    session: u32,
    /// Pool index of the order, or [`NIL`] for an empty entry.
    slot: u32,
}

const EMPTY: Entry = Entry {
    order_id: 0,
    session: 0,
    slot: NIL,
};

/// Mixes a (session, order id) key into 64 bits whose top bits are the
/// key's home (Fibonacci hashing: multiply by an odd constant near
/// 2^64 / golden ratio and keep the high bits, which depend on every bit of
/// the key). The session is spread by its own multiply first so that equal
/// order ids of different sessions land far apart. Two multiplies and an
/// xor, where a full avalanche finaliser took three multiplies and three
/// shift-xors: the home is computed twice per operation (prefetch and
/// probe) and again for each entry a removal shifts back.
#[inline]
fn mix(session: u32, order_id: u64) -> u64 {
    (order_id ^ u64::from(session).wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xd6e8_feb8_6659_fd93)
}

/// Where an absent key would be stored, as found by
/// [`OrderIndex::find`]; valid until the index next changes.
#[derive(Debug, Clone, Copy)]
pub struct Vacancy(usize);

/// Where a stored key's entry sits, as found by [`OrderIndex::locate`];
/// valid until the index next changes.
#[derive(Debug, Clone, Copy)]
pub struct Position(usize);

/// Fixed-capacity hash index of live orders.
#[derive(Debug)]
pub struct OrderIndex {
    entries: HugePageVec<Entry>,
    mask: usize,
    /// 64 less log2 of the table size: a key's home is the top bits of its
    /// mix.
    shift: u32,
    len: usize,
}

impl OrderIndex {
    /// An index able to hold `capacity` keys at load factor <= 1/2.
    pub fn with_capacity(capacity: usize) -> OrderIndex {
        let size = capacity.saturating_mul(2).max(8).next_power_of_two();
        OrderIndex {
            entries: HugePageVec::from_elem(EMPTY, size),
            mask: size - 1,
            shift: 64 - size.trailing_zeros(),
            len: 0,
        }
    }

    /// Number of keys stored.
    #[allow(clippy::len_without_is_empty)]
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn home(&self, session: u32, order_id: u64) -> usize {
        (mix(session, order_id) >> self.shift) as usize
    }

    /// Position of the key's entry, or of the empty entry that ends its probe.
    #[inline]
    fn probe(&self, session: u32, order_id: u64) -> usize {
        let mut pos = self.home(session, order_id);
        loop {
            let entry = &self.entries[pos];
            touch::record(Structure::Index, entry);
            if entry.slot == NIL || (entry.order_id == order_id && entry.session == session) {
                return pos;
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Hints that the key will be looked up soon: prefetches the entry its
    /// probe starts at (at load factor one half, usually the only one).
    #[inline]
    pub fn prefetch(&self, session: u32, order_id: u64) {
        crate::prefetch::prefetch_read(&self.entries[self.home(session, order_id)]);
    }

    /// The pool index stored for the key, or where the key would go: one
    /// probe serves both a duplicate check and the insert after it.
    #[inline]
    pub fn find(&self, session: u32, order_id: u64) -> Result<u32, Vacancy> {
        let pos = self.probe(session, order_id);
        match self.entries[pos].slot {
            NIL => Err(Vacancy(pos)),
            slot => Ok(slot),
        }
    }

    /// Stores the key where [`find`](Self::find) said it would go. The
    /// caller guarantees that the index has not changed since, and that it
    /// holds fewer keys than the capacity it was built for.
    #[inline]
    pub fn insert_at(&mut self, at: Vacancy, session: u32, order_id: u64, slot: u32) {
        debug_assert_eq!(
            self.entries[at.0].slot, NIL,
            "a vacancy from before the index changed"
        );
        self.len += 1;
        self.entries[at.0] = Entry {
            order_id,
            session,
            slot,
        };
    }

    /// The pool index stored for the key.
    #[inline]
    pub fn get(&self, session: u32, order_id: u64) -> Option<u32> {
        let slot = self.entries[self.probe(session, order_id)].slot;
        (slot != NIL).then_some(slot)
    }

    /// Stores the key. The caller guarantees the key is absent and that the
    /// index holds fewer keys than the capacity it was built for.
    #[inline]
    pub fn insert(&mut self, session: u32, order_id: u64, slot: u32) {
        let pos = self.probe(session, order_id);
        if self.entries[pos].slot == NIL {
            self.len += 1;
        }
        self.entries[pos] = Entry {
            order_id,
            session,
            slot,
        };
    }

    /// The pool index stored for the key and where its entry sits (for a
    /// [`remove_at`](Self::remove_at) with no second probe).
    #[inline]
    pub fn locate(&self, session: u32, order_id: u64) -> Option<(u32, Position)> {
        let pos = self.probe(session, order_id);
        let slot = self.entries[pos].slot;
        (slot != NIL).then_some((slot, Position(pos)))
    }

    /// Removes the key if present, shifting later entries of its probe run back
    /// so that lookups never need tombstones.
    #[inline(always)]
    pub fn remove(&mut self, session: u32, order_id: u64) {
        let hole = self.probe(session, order_id);
        if self.entries[hole].slot != NIL {
            self.remove_entry(hole);
        }
    }

    /// Removes the entry [`locate`](Self::locate) found. The caller
    /// guarantees that the index has not changed since.
    #[inline(always)]
    pub fn remove_at(&mut self, at: Position) {
        debug_assert_ne!(
            self.entries[at.0].slot, NIL,
            "a position from before the index changed"
        );
        self.remove_entry(at.0);
    }

    /// Empties the occupied entry at `hole`, shifting later entries of its
    /// probe run back.
    #[inline(always)]
    fn remove_entry(&mut self, mut hole: usize) {
        self.len -= 1;
        let mut pos = hole;
        loop {
            pos = (pos + 1) & self.mask;
            let entry = self.entries[pos];
            touch::record(Structure::Index, &self.entries[pos]);
            if entry.slot == NIL {
                break;
            }
            let home = self.home(entry.session, entry.order_id);
            // The entry may move into the hole only if its home is not in the
            // cyclic range (hole, pos]: otherwise the move would put it before
            // its home and lookups would miss it.
            let distance_to_pos = pos.wrapping_sub(home) & self.mask;
            let distance_to_hole = hole.wrapping_sub(home) & self.mask;
            if distance_to_hole < distance_to_pos {
                self.entries[hole] = entry;
                hole = pos;
            }
        }
        self.entries[hole] = EMPTY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean and largest distance of the stored keys from their homes.
    fn displacement(index: &OrderIndex) -> (f64, usize) {
        let (mut sum, mut max, mut n) = (0usize, 0usize, 0usize);
        for (pos, entry) in index.entries.iter().enumerate() {
            if entry.slot != NIL {
                let d = pos.wrapping_sub(index.home(entry.session, entry.order_id)) & index.mask;
                sum += d;
                max = max.max(d);
                n += 1;
            }
        }
        (sum as f64 / n as f64, max)
    }

    #[test]
    fn the_hash_spreads_the_id_patterns_clients_use_at_full_load() {
        // At load factor one half, a uniform hash leaves a key about half a
        // slot from its home on average (linear probing). Patterns a weak
        // hash clusters: sequential ids per session, ids on a power-of-two
        // stride, ids that differ only in their high bits, and the same
        // ids in many sessions.
        let capacity = 1 << 16;
        /// The i-th key of a pattern, as (session, order id).
        type Key = fn(u64) -> (u32, u64);
        let patterns: [(&str, Key); 4] = [
            ("sequential ids, 16 sessions", |i| ((i % 16) as u32, i / 16 + 1)),
            ("ids on a 4,096 stride", |i| (1, i << 12)),
            ("ids in the high bits", |i| (1, i << 40 | 7)),
            ("ids 1..64 in 1,024 sessions", |i| ((i / 64) as u32, i % 64 + 1)),
        ];
        for (name, key) in patterns {
            let mut index = OrderIndex::with_capacity(capacity);
            for i in 0..capacity as u64 {
                let (session, order_id) = key(i);
                index.insert(session, order_id, i as u32);
            }
            let (mean, max) = displacement(&index);
            assert!(mean < 1.0 && max < 64, "{name}: mean {mean:.2}, max {max}");
        }
    }

    #[test]
    fn insert_get_remove_round_trip_with_collisions() {
        let mut index = OrderIndex::with_capacity(64);
        for id in 0..64u64 {
            index.insert((id % 3) as u32, id * 1024, id as u32);
        }
        assert_eq!(index.len(), 64);
        for id in (0..64u64).step_by(2) {
            index.remove((id % 3) as u32, id * 1024);
        }
        for id in 0..64u64 {
            let expected = (id % 2 == 1).then_some(id as u32);
            assert_eq!(index.get((id % 3) as u32, id * 1024), expected, "id {id}");
        }
        assert_eq!(index.len(), 32);
        assert_eq!(index.get(7, 1024), None);
    }
}
