//! The matching loop shared by new orders and crossing replaces.
//!
//! An aggressor walks the opposite side from the best level while it crosses,
//! and each level's FIFO from its head: strict price-time priority, each fill
//! at the resting order's price. Fully filled makers leave the book at once,
//! so the loop only ever removes FIFO heads.

use crate::book::crosses_level;
use crate::command::{SelfTradePrevention, Side};
use crate::engine::Engine;
use crate::order_pool::NIL;
use crate::report::{Liquidity, RejectReason, Report, ReportKind, ReportSink};

/// The incoming side of a match: a new order, or a replaced order that now crosses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Aggressor {
    pub session: u32,
    pub order_id: u64,
    pub side: Side,
    /// Worst tick index it may trade at (`u32::MAX` / 0 for a market buy / sell).
    pub limit: u32,
    /// Quantity still to trade; decremented by the loop.
    pub remaining: u64,
    pub stp: SelfTradePrevention,
}

/// How a match pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchEnd {
    /// Filled completely, or nothing more crosses.
    Done,
    /// Self-trade prevention (`CancelIncoming`) stopped the aggressor; its
    /// `remaining` quantity must be cancelled by the caller.
    SelfTradeStop,
}

impl Engine {
    /// Trades `taker` against book `book_index` until it is filled, nothing more
    /// crosses its limit, or self-trade prevention stops it. Emits the fills
    /// (taker report first, then maker) and any resting orders cancelled by
    /// self-trade prevention.
    pub(crate) fn match_aggressor(
        &mut self,
        book_index: usize,
        taker: &mut Aggressor,
        out: &mut impl ReportSink,
    ) -> MatchEnd {
        let book = &mut self.books[book_index];
        let instrument = book.instrument;
        let (price_min, tick_size) = (book.price_min, book.tick_size);
        let resting = match taker.side {
            Side::Buy => &mut book.asks,
            Side::Sell => &mut book.bids,
        };
        let pool = &mut self.pool;
        loop {
            let level = resting.best();
            if level == NIL || !crosses_level(taker.side, taker.limit, level) {
                return MatchEnd::Done;
            }
            let price = price_min + i64::from(level) * tick_size;
            loop {
                let head = resting.level(level).head;
                if head == NIL {
                    break;
                }
                let maker = pool.get_mut(head);
                if maker.session == taker.session && taker.stp != SelfTradePrevention::None {
                    if taker.stp == SelfTradePrevention::CancelIncoming {
                        return MatchEnd::SelfTradeStop;
                    }
                    let cancelled = *maker;
                    resting.unlink(pool, head);
                    self.index.remove(cancelled.session, cancelled.order_id);
                    pool.free(head);
                    out.report(
                        cancelled.session,
                        &Report {
                            kind: ReportKind::Cancelled,
                            order_id: cancelled.order_id,
                            instrument,
                            side: cancelled.side,
                            price,
                            quantity: cancelled.leaves,
                            reason: RejectReason::SelfTradePrevention,
                            ..Report::BLANK
                        },
                    );
                    continue;
                }
                let fill = taker.remaining.min(maker.leaves);
                maker.leaves -= fill;
                let (maker_session, maker_id, maker_leaves) = (maker.session, maker.order_id, maker.leaves);
                taker.remaining -= fill;
                let match_id = self.next_match_id;
                self.next_match_id += 1;
                let taker_fill = Report {
                    kind: ReportKind::Fill,
                    order_id: taker.order_id,
                    instrument,
                    side: taker.side,
                    price,
                    quantity: fill,
                    leaves: taker.remaining,
                    match_id,
                    liquidity: Liquidity::Taker,
                    reason: RejectReason::None,
                };
                out.report(taker.session, &taker_fill);
                out.report(
                    maker_session,
                    &Report {
                        order_id: maker_id,
                        side: taker.side.opposite(),
                        leaves: maker_leaves,
                        liquidity: Liquidity::Maker,
                        ..taker_fill
                    },
                );
                resting.reduce_total(level, fill);
                if maker_leaves == 0 {
                    resting.unlink(pool, head);
                    self.index.remove(maker_session, maker_id);
                    pool.free(head);
                }
                if taker.remaining == 0 {
                    return MatchEnd::Done;
                }
            }
        }
    }

    /// Whether an aggressor could fill `quantity` completely right now,
    /// accounting for self-trade prevention exactly as
    /// [`Engine::match_aggressor`] would: own orders are skipped under
    /// `CancelResting` and end the walk under `CancelIncoming`.
    pub(crate) fn can_fill_completely(&self, book_index: usize, taker: &Aggressor) -> bool {
        let book = &self.books[book_index];
        let resting = book.side(taker.side.opposite());
        let wanted = taker.remaining;
        let mut available: u64 = 0;
        let mut level = resting.best();
        while level != NIL && crosses_level(taker.side, taker.limit, level) {
            if taker.stp == SelfTradePrevention::None {
                available += resting.level(level).total;
            } else {
                let mut slot = resting.level(level).head;
                while slot != NIL {
                    let order = self.pool.get(slot);
                    if order.session == taker.session {
                        if taker.stp == SelfTradePrevention::CancelIncoming {
                            return false;
                        }
                    } else {
                        available += order.leaves;
                        if available >= wanted {
                            return true;
                        }
                    }
                    slot = order.next;
                }
            }
            if available >= wanted {
                return true;
            }
            level = resting.next_worse(level);
        }
        false
    }
}
