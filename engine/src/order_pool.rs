//! Preallocated slab of resting orders, addressed by `u32` index.
//!
//! Orders link to each other (per-level FIFO) by index rather than pointer, so
//! the pool is safe Rust, compact (an index is 4 bytes) and reuse is O(1)
//! through an intrusive free list. The backing [`HugePageVec`] reserves full
//! capacity once, on huge pages where the kernel offers them; slots are
//! initialised on first use, so a large pool costs address space, not time,
//! at start-up, and never reallocates.

use crate::command::{SelfTradePrevention, Side};
use crate::huge_page_vec::HugePageVec;
use crate::touch::{self, Structure};

/// "No order": the end of a list, an empty level, an empty free list.
pub const NIL: u32 = u32::MAX;

/// A resting order. `prev`/`next` link it into its price level's FIFO while it
/// is live, and `next` links it into the free list while it is free.
#[derive(Debug, Clone, Copy)]
pub struct Order {
    /// Client order id.
    pub order_id: u64,
    /// Total quantity (filled part included).
    pub quantity: u64,
    /// Open quantity.
    pub leaves: u64,
    /// Owning session.
    pub session: u32,
    /// Index of the owning book in the engine (not the instrument id).
    pub book: u32,
    /// Tick index of its limit price within the book's band: the price
    /// itself is not stored (it is the book's price of this level), which
    /// keeps an order at 48 bytes, so that it spans at most two cache
    /// lines and half of all orders fit in one.
    pub level: u32,
    /// Previous order in the level FIFO (towards the head), or [`NIL`].
    pub prev: u32,
    /// Next order in the level FIFO (towards the tail), or [`NIL`].
    pub next: u32,
    /// Side of the book the order rests on.
    pub side: Side,
    /// Self-trade prevention mode it was entered with.
    pub stp: SelfTradePrevention,
    /// Whether it was entered post-only.
    pub post_only: bool,
}

// The size the layout note on `level` relies on.
const _: () = assert!(std::mem::size_of::<Order>() == 48);

impl Order {
    /// Quantity already filled.
    #[inline]
    pub fn filled(&self) -> u64 {
        self.quantity - self.leaves
    }
}

/// Fixed-capacity slab of [`Order`]s with an intrusive free list.
#[derive(Debug)]
pub struct OrderPool {
    slots: HugePageVec<Order>,
    free_head: u32,
    live: usize,
}

impl OrderPool {
    /// Reserves room for `capacity` orders (at most `u32::MAX - 1`).
    pub fn with_capacity(capacity: usize) -> OrderPool {
        OrderPool {
            slots: HugePageVec::with_capacity(capacity),
            free_head: NIL,
            live: 0,
        }
    }

    /// Number of live orders.
    #[inline]
    pub fn live(&self) -> usize {
        self.live
    }

    /// Number of orders the pool holds at most.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Whether no slot is free.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.live == self.slots.capacity()
    }

    /// Stores `order` in a free slot and returns its index, or `None` when full.
    #[inline]
    pub fn insert(&mut self, order: Order) -> Option<u32> {
        if self.free_head != NIL {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            touch::record(Structure::Pool, slot);
            self.free_head = slot.next;
            *slot = order;
            self.live += 1;
            Some(index)
        } else if self.slots.push(order).is_ok() {
            let index = (self.slots.len() - 1) as u32;
            touch::record(Structure::Pool, &self.slots[index as usize]);
            self.live += 1;
            Some(index)
        } else {
            None
        }
    }

    /// Returns slot `index` to the free list. The caller guarantees it is live
    /// and already unlinked from its level and the id index.
    #[inline]
    pub fn free(&mut self, index: u32) {
        touch::record(Structure::Pool, &self.slots[index as usize]);
        self.slots[index as usize].next = self.free_head;
        self.free_head = index;
        self.live -= 1;
    }

    /// The order in slot `index`.
    #[inline]
    pub fn get(&self, index: u32) -> &Order {
        touch::record(Structure::Pool, &self.slots[index as usize]);
        &self.slots[index as usize]
    }

    /// The order in slot `index`, mutably.
    #[inline]
    pub fn get_mut(&mut self, index: u32) -> &mut Order {
        touch::record(Structure::Pool, &self.slots[index as usize]);
        &mut self.slots[index as usize]
    }
}
