//! One side (bids or asks) of a book: price levels indexed by tick, each a FIFO
//! of pool indices, plus the best level.
//!
//! The band is bounded, so levels live in a flat array indexed by
//! `(price - price_min) / tick_size`: finding a level is an index, inserting a
//! new price is a bit set. The best level is cached; when it empties, the
//! [`LevelBitmap`] finds the next one.

use crate::command::Side;
use crate::huge_page_vec::HugePageVec;
use crate::level_bitmap::LevelBitmap;
use crate::order_pool::{OrderPool, NIL};
use crate::touch::{self, Structure};

/// One price level: a doubly linked FIFO through the pool, and its total open quantity.
#[derive(Debug, Clone, Copy)]
pub struct Level {
    /// Oldest order (first to trade), or [`NIL`].
    pub head: u32,
    /// Newest order, or [`NIL`].
    pub tail: u32,
    /// Sum of the open quantity of the orders in the FIFO.
    pub total: u64,
}

const EMPTY_LEVEL: Level = Level {
    head: NIL,
    tail: NIL,
    total: 0,
};

/// Bids or asks of one book.
#[derive(Debug)]
pub struct BookSide {
    side: Side,
    levels: HugePageVec<Level>,
    occupied: LevelBitmap,
    /// Tick index of the best non-empty level, or [`NIL`].
    best: u32,
}

impl BookSide {
    /// An empty side with `level_count` levels.
    pub fn new(side: Side, level_count: usize) -> BookSide {
        BookSide {
            side,
            levels: HugePageVec::from_elem(EMPTY_LEVEL, level_count),
            occupied: LevelBitmap::new(level_count),
            best: NIL,
        }
    }

    /// Tick index of the best level (highest bid / lowest ask), or [`NIL`].
    #[inline]
    pub fn best(&self) -> u32 {
        self.best
    }

    /// The level at tick index `level` (which must be inside the band).
    #[inline]
    pub fn level(&self, level: u32) -> &Level {
        touch::record(Structure::Levels, &self.levels[level as usize]);
        &self.levels[level as usize]
    }

    /// Whether `level` is at least as good as `other` for this side
    /// (higher for bids, lower for asks).
    #[inline]
    pub fn at_least_as_good(&self, level: u32, other: u32) -> bool {
        match self.side {
            Side::Buy => level >= other,
            Side::Sell => level <= other,
        }
    }

    /// The next non-empty level worse than `level`, or [`NIL`].
    #[inline]
    pub fn next_worse(&self, level: u32) -> u32 {
        let found = match self.side {
            Side::Buy => level
                .checked_sub(1)
                .and_then(|from| self.occupied.prev_at_or_before(from)),
            Side::Sell => self.occupied.next_at_or_after(level + 1),
        };
        found.unwrap_or(NIL)
    }

    /// Appends order `index` (whose `level` field is already set) to the tail
    /// of its level.
    #[inline(always)]
    pub fn push_back(&mut self, pool: &mut OrderPool, index: u32) {
        let order = pool.get_mut(index);
        let level_index = order.level;
        let leaves = order.leaves;
        let level = &mut self.levels[level_index as usize];
        touch::record(Structure::Levels, level);
        order.prev = level.tail;
        order.next = NIL;
        let old_tail = level.tail;
        level.tail = index;
        level.total += leaves;
        if old_tail == NIL {
            level.head = index;
            self.occupied.insert(level_index);
            if self.best == NIL || !self.at_least_as_good(self.best, level_index) {
                self.best = level_index;
            }
        } else {
            pool.get_mut(old_tail).next = index;
        }
    }

    /// Unlinks order `index` from its level (anywhere in the FIFO), keeping the
    /// level total, the bitmap and the best level up to date.
    #[inline(always)]
    pub fn unlink(&mut self, pool: &mut OrderPool, index: u32) {
        let order = *pool.get(index);
        let level = &mut self.levels[order.level as usize];
        touch::record(Structure::Levels, level);
        level.total -= order.leaves;
        if order.prev == NIL {
            level.head = order.next;
        } else {
            pool.get_mut(order.prev).next = order.next;
        }
        if order.next == NIL {
            level.tail = order.prev;
        } else {
            pool.get_mut(order.next).prev = order.prev;
        }
        if level.head == NIL {
            self.mark_empty(order.level);
        }
    }

    /// Reduces the open quantity recorded for `level` by `quantity` (a fill or
    /// a reduction of an order that stays in place).
    #[inline]
    pub fn reduce_total(&mut self, level: u32, quantity: u64) {
        touch::record(Structure::Levels, &self.levels[level as usize]);
        self.levels[level as usize].total -= quantity;
    }

    fn mark_empty(&mut self, level: u32) {
        self.occupied.remove(level);
        if self.best == level {
            self.best = self.next_worse(level);
        }
    }

    /// Whether the bitmap marks `level` non-empty (invariant checks).
    pub fn is_marked(&self, level: u32) -> bool {
        self.occupied.contains(level)
    }

    /// Number of levels in the band.
    pub fn level_count(&self) -> usize {
        self.levels.len()
    }
}
