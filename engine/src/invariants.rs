//! Exhaustive structural checks of the engine, for tests and debugging.
//!
//! O(levels + orders): run after every event in property tests, never on the
//! hot path.

use thiserror::Error;

use crate::book_side::BookSide;
use crate::command::Side;
use crate::engine::Engine;
use crate::order_pool::NIL;

/// A broken engine invariant, described for a test failure message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("engine invariant violated: {0}")]
pub struct InvariantViolation(pub String);

fn fail<T>(message: String) -> Result<T, InvariantViolation> {
    Err(InvariantViolation(message))
}

impl Engine {
    /// Checks that no book is crossed; that every level's FIFO links are
    /// consistent, its total equals the sum of its orders' open quantity and
    /// its bitmap bit is set exactly when it is non-empty; that the cached best
    /// level is the best non-empty one; that every resting order has positive
    /// open quantity not above its total, sits on the right book, side and
    /// price, and is found by its `(session, id)`; and that the pool, the id
    /// index and the books agree on the number of live orders.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let mut linked = 0usize;
        for (book_index, book) in self.books.iter().enumerate() {
            let instrument = book.instrument;
            for side in [Side::Buy, Side::Sell] {
                let book_side = book.side(side);
                linked += self.check_side(book_index, side, book_side)?;
            }
            let (bid, ask) = (book.bids.best(), book.asks.best());
            if bid != NIL && ask != NIL && bid >= ask {
                return fail(format!(
                    "instrument {instrument}: crossed book, bid level {bid} >= ask level {ask}"
                ));
            }
        }
        if linked != self.pool.live() || linked != self.index.len() {
            return fail(format!(
                "{linked} orders linked, pool has {} live, index has {}",
                self.pool.live(),
                self.index.len()
            ));
        }
        Ok(())
    }

    /// Checks one side; returns the number of orders linked in it.
    fn check_side(
        &self,
        book_index: usize,
        side: Side,
        book_side: &BookSide,
    ) -> Result<usize, InvariantViolation> {
        let mut linked = 0;
        let mut best = NIL;
        for level in 0..book_side.level_count() as u32 {
            let entry = book_side.level(level);
            let non_empty = entry.head != NIL;
            if non_empty != book_side.is_marked(level) {
                return fail(format!("{side:?} level {level}: bitmap disagrees with FIFO"));
            }
            if non_empty && (best == NIL || !book_side.at_least_as_good(best, level)) {
                best = level;
            }
            let mut total = 0u64;
            let mut prev = NIL;
            let mut slot = entry.head;
            while slot != NIL {
                let order = self.pool.get(slot);
                if order.prev != prev {
                    return fail(format!("{side:?} level {level}: broken prev link at {slot}"));
                }
                if order.book as usize != book_index || order.side != side || order.level != level {
                    return fail(format!("order slot {slot} is on the wrong book/side/level"));
                }
                if order.leaves == 0 || order.leaves > order.quantity {
                    return fail(format!("order slot {slot}: bad open quantity {order:?}"));
                }
                if self.index.get(order.session, order.order_id) != Some(slot) {
                    return fail(format!("order slot {slot} is not reachable by id"));
                }
                total += order.leaves;
                linked += 1;
                prev = slot;
                slot = order.next;
            }
            if entry.tail != prev {
                return fail(format!("{side:?} level {level}: tail is not the last order"));
            }
            if entry.total != total {
                return fail(format!(
                    "{side:?} level {level}: total {} != sum of open quantity {total}",
                    entry.total
                ));
            }
        }
        if best != book_side.best() {
            return fail(format!(
                "{side:?}: cached best {} != actual best {best}",
                book_side.best()
            ));
        }
        Ok(linked)
    }
}
