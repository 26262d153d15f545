//! The engine: all books, the shared order pool and id index, the match counter.
//!
//! This file holds construction, dispatch and read-only accessors; the command
//! handlers live in `new_order.rs`, `cancel.rs` and `replace.rs`, and the
//! shared matching loop in `matching.rs`.

use crate::book::Book;
use crate::command::{Command, SelfTradePrevention, Side};
use crate::config::{ConfigError, EngineConfig};
use crate::order_index::OrderIndex;
use crate::order_pool::{OrderPool, NIL};
use crate::report::ReportSink;

/// Instrument ids below this get a direct book table (at most 256 KiB).
const DENSE_ID_LIMIT: usize = 1 << 16;

/// "No book has this id" in `Engine::book_by_id`.
const NO_BOOK: u32 = u32::MAX;

/// A deterministic, single-threaded matching engine over many instruments.
///
/// The engine is a pure function of the commands applied to it: the same
/// command sequence from the same config always yields the same reports and
/// the same [`Engine::state_hash`]. After construction it does not allocate.
#[derive(Debug)]
pub struct Engine {
    pub(crate) books: Vec<Book>,
    /// `(instrument id, book index)` sorted by id, for binary search.
    instrument_ids: Vec<(u32, u32)>,
    /// Book index by instrument id ([`NO_BOOK`] for an id no instrument
    /// has), when every id is below [`DENSE_ID_LIMIT`]: every command looks
    /// its book up, and one load beats a binary search. Empty otherwise.
    book_by_id: Vec<u32>,
    pub(crate) pool: OrderPool,
    pub(crate) index: OrderIndex,
    /// Id of the next match (starts at 1).
    pub(crate) next_match_id: u64,
}

/// A read-only copy of a resting order, for tests and tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderView {
    /// Owning session.
    pub session: u32,
    /// Client order id.
    pub order_id: u64,
    /// Instrument id.
    pub instrument: u32,
    /// Side.
    pub side: Side,
    /// Limit price.
    pub price: i64,
    /// Total quantity, filled part included.
    pub quantity: u64,
    /// Open quantity.
    pub leaves: u64,
    /// Self-trade prevention mode it was entered with.
    pub stp: SelfTradePrevention,
    /// Whether it was entered post-only.
    pub post_only: bool,
}

impl Engine {
    /// How many commands ahead of [`apply`](Self::apply) a caller holding a
    /// burst should call [`prefetch`](Self::prefetch): far enough for the
    /// line to arrive while the commands in between run (an operation takes
    /// 40–70 ns here, a miss to memory 100+), near enough that it is still
    /// cached when its turn comes. Chosen by `engine-vs-peers --prefetch N`.
    pub const PREFETCH_DISTANCE: usize = 4;

    /// Builds an engine, allocating every book, the order pool and the id index.
    pub fn new(config: &EngineConfig) -> Result<Engine, ConfigError> {
        config.validate()?;
        let books: Vec<Book> = config.instruments.iter().map(Book::new).collect();
        let mut instrument_ids: Vec<(u32, u32)> = books
            .iter()
            .enumerate()
            .map(|(i, book)| (book.instrument, i as u32))
            .collect();
        instrument_ids.sort_unstable();
        let book_by_id = match instrument_ids.last() {
            Some(&(max_id, _)) if (max_id as usize) < DENSE_ID_LIMIT => {
                let mut table = vec![NO_BOOK; max_id as usize + 1];
                for &(id, book) in &instrument_ids {
                    table[id as usize] = book;
                }
                table
            }
            _ => Vec::new(),
        };
        Ok(Engine {
            books,
            instrument_ids,
            book_by_id,
            pool: OrderPool::with_capacity(config.max_orders),
            index: OrderIndex::with_capacity(config.max_orders),
            next_match_id: 1,
        })
    }

    /// Applies any command, sending its reports to `out`.
    #[inline]
    pub fn apply(&mut self, command: &Command, out: &mut impl ReportSink) {
        match command {
            Command::New(cmd) => self.new_order(cmd, out),
            Command::Cancel(cmd) => self.cancel(cmd, out),
            Command::Replace(cmd) => self.replace(cmd, out),
        }
    }

    /// Hints that `command` will be applied soon: starts loading the
    /// order-index line it will look up, so that a caller holding a burst
    /// of commands overlaps their cache misses (call it a few commands
    /// ahead of [`apply`](Self::apply)). Changes nothing; any command may
    /// be passed, applied later or not at all.
    #[inline]
    pub fn prefetch(&self, command: &Command) {
        self.prefetch_order(command.session(), command.order_id());
    }

    /// [`prefetch`](Self::prefetch) for a command known only by its
    /// session and client order id (before it is decoded).
    #[inline]
    pub fn prefetch_order(&self, session: u32, order_id: u64) {
        self.index.prefetch(session, order_id);
    }

    /// Book index of an instrument id.
    #[inline]
    pub(crate) fn book_index(&self, instrument: u32) -> Option<usize> {
        if !self.book_by_id.is_empty() {
            let book = *self.book_by_id.get(instrument as usize)?;
            return (book != NO_BOOK).then_some(book as usize);
        }
        self.instrument_ids
            .binary_search_by_key(&instrument, |&(id, _)| id)
            .ok()
            .map(|i| self.instrument_ids[i].1 as usize)
    }

    /// Best (highest) bid price of an instrument.
    pub fn best_bid(&self, instrument: u32) -> Option<i64> {
        self.best_price(instrument, Side::Buy)
    }

    /// Best (lowest) ask price of an instrument.
    pub fn best_ask(&self, instrument: u32) -> Option<i64> {
        self.best_price(instrument, Side::Sell)
    }

    fn best_price(&self, instrument: u32, side: Side) -> Option<i64> {
        let book = &self.books[self.book_index(instrument)?];
        let best = book.side(side).best();
        (best != NIL).then(|| book.price_of(best))
    }

    /// Total open quantity resting at `price` on `side` (0 for an empty or
    /// invalid price or an unknown instrument).
    pub fn depth_at(&self, instrument: u32, side: Side, price: i64) -> u64 {
        let Some(book) = self.book_index(instrument).map(|i| &self.books[i]) else {
            return 0;
        };
        match book.level_of(price) {
            Ok(level) => book.side(side).level(level).total,
            Err(_) => 0,
        }
    }

    /// The live order `(session, order_id)`, if any.
    pub fn order(&self, session: u32, order_id: u64) -> Option<OrderView> {
        self.index.get(session, order_id).map(|slot| self.view(slot))
    }

    /// Every resting order on one side of an instrument, in priority order
    /// (best price first, then time). Empty for an unknown instrument.
    pub fn resting_orders(&self, instrument: u32, side: Side) -> impl Iterator<Item = OrderView> + '_ {
        let book = self.book_index(instrument).map(|i| &self.books[i]);
        let mut level = book.map_or(NIL, |b| b.side(side).best());
        let mut slot = book.map_or(NIL, |b| {
            if level == NIL {
                NIL
            } else {
                b.side(side).level(level).head
            }
        });
        std::iter::from_fn(move || {
            let book_side = book?.side(side);
            while slot == NIL {
                if level == NIL {
                    return None;
                }
                level = book_side.next_worse(level);
                if level == NIL {
                    return None;
                }
                slot = book_side.level(level).head;
            }
            let view = self.view(slot);
            slot = self.pool.get(slot).next;
            Some(view)
        })
    }

    /// Number of resting orders across all instruments.
    pub fn resting_count(&self) -> usize {
        self.pool.live()
    }

    /// The id the next match will get (starts at 1).
    pub fn next_match_id(&self) -> u64 {
        self.next_match_id
    }

    /// Instrument ids in config order.
    pub fn instruments(&self) -> impl Iterator<Item = u32> + '_ {
        self.books.iter().map(|book| book.instrument)
    }

    pub(crate) fn view(&self, slot: u32) -> OrderView {
        let order = self.pool.get(slot);
        let book = &self.books[order.book as usize];
        OrderView {
            session: order.session,
            order_id: order.order_id,
            instrument: book.instrument,
            side: order.side,
            price: book.price_of(order.level),
            quantity: order.quantity,
            leaves: order.leaves,
            stp: order.stp,
            post_only: order.post_only,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample config's three instruments renumbered to `ids`.
    fn engine_with_ids(ids: [u32; 3]) -> Engine {
        let mut config = EngineConfig::sample();
        config.max_orders = 64;
        for (instrument, id) in config.instruments.iter_mut().zip(ids) {
            instrument.id = id;
        }
        Engine::new(&config).expect("valid config")
    }

    #[test]
    fn books_are_found_by_id_through_the_dense_table_and_the_binary_search_alike() {
        let dense = engine_with_ids([7, 2, 40_000]);
        let sparse = engine_with_ids([7, 2, 4_000_000_000]);
        assert!(!dense.book_by_id.is_empty());
        assert!(sparse.book_by_id.is_empty());
        for (engine, far) in [(&dense, 40_000), (&sparse, 4_000_000_000)] {
            // Config order: book 0 is id 7, book 1 id 2, book 2 the far id.
            assert_eq!(engine.book_index(7), Some(0));
            assert_eq!(engine.book_index(2), Some(1));
            assert_eq!(engine.book_index(far), Some(2));
            for unknown in [0, 1, 3, 6, 8, 39_999, 40_001, 65_535, 65_536, far - 1, u32::MAX] {
                assert_eq!(engine.book_index(unknown), None, "id {unknown}");
            }
        }
    }
}
