//! Handling of [`Replace`]: cancel/replace keeping the order id.
//!
//! Checks, in order: `UnknownInstrument`, `UnknownOrder`, then against the
//! found order `ZeroQuantity`, `OffLot`, `QuantityTooLarge`, `OffTick`,
//! `OutsideBand`, `QuantityNotAboveFilled` (new total at or below the filled
//! quantity), `PostOnlyWouldCross` (a post-only order whose new price would
//! trade). A rejected replace leaves the order exactly as it was.
//!
//! A replace that keeps the price and does not raise the total quantity keeps
//! the order's place in the queue; anything else re-queues it at the back of
//! its new level, after trading first if the new price crosses.

use crate::command::{Replace, Side};
use crate::engine::Engine;
use crate::matching::{Aggressor, MatchEnd};
use crate::order_pool::Order;
use crate::report::{RejectReason, Report, ReportKind, ReportSink};

impl Engine {
    /// Replaces a resting order's price and/or total quantity: `Rejected`, or
    /// `Replaced` (new price, new total quantity, new open quantity) followed,
    /// if the new price crosses, by fills and possibly a self-trade
    /// prevention `Cancelled`, exactly as for an incoming order whose
    /// remainder rests.
    #[inline]
    pub fn replace(&mut self, cmd: &Replace, out: &mut impl ReportSink) {
        let mut response = Report {
            kind: ReportKind::Rejected,
            order_id: cmd.order_id,
            instrument: cmd.instrument,
            side: Side::Buy,
            price: cmd.new_price,
            quantity: cmd.new_quantity,
            ..Report::BLANK
        };
        let Some(book_index) = self.book_index(cmd.instrument) else {
            response.reason = RejectReason::UnknownInstrument;
            out.report(cmd.session, &response);
            return;
        };
        let Some((slot, _)) = self.live_order(cmd.session, cmd.order_id, book_index) else {
            response.reason = RejectReason::UnknownOrder;
            out.report(cmd.session, &response);
            return;
        };
        let order = *self.pool.get(slot);
        response.side = order.side;
        response.leaves = order.leaves;
        let (new_level, crosses) = match self.check_replace(book_index, &order, cmd) {
            Ok(checked) => checked,
            Err(reason) => {
                response.reason = reason;
                out.report(cmd.session, &response);
                return;
            }
        };

        let new_leaves = cmd.new_quantity - order.filled();
        response.kind = ReportKind::Replaced;
        response.leaves = new_leaves;
        let side = self.books[book_index].side_mut(order.side);
        if new_level == order.level && cmd.new_quantity <= order.quantity {
            side.reduce_total(order.level, order.leaves - new_leaves);
            let stored = self.pool.get_mut(slot);
            stored.quantity = cmd.new_quantity;
            stored.leaves = new_leaves;
            out.report(cmd.session, &response);
            return;
        }

        side.unlink(&mut self.pool, slot);
        let stored = self.pool.get_mut(slot);
        stored.level = new_level;
        stored.quantity = cmd.new_quantity;
        stored.leaves = new_leaves;
        out.report(cmd.session, &response);

        if crosses {
            let mut taker = Aggressor {
                session: order.session,
                order_id: order.order_id,
                side: order.side,
                limit: new_level,
                remaining: new_leaves,
                stp: order.stp,
            };
            let end = self.match_aggressor(book_index, &mut taker, out);
            if taker.remaining == 0 || end == MatchEnd::SelfTradeStop {
                self.index.remove(order.session, order.order_id);
                self.pool.free(slot);
                if taker.remaining > 0 {
                    let cancelled = Report {
                        kind: ReportKind::Cancelled,
                        quantity: taker.remaining,
                        leaves: 0,
                        reason: RejectReason::SelfTradePrevention,
                        ..response
                    };
                    out.report(cmd.session, &cancelled);
                }
                return;
            }
            self.pool.get_mut(slot).leaves = taker.remaining;
        }
        self.books[book_index]
            .side_mut(order.side)
            .push_back(&mut self.pool, slot);
    }

    /// Validates a replace against the order it targets; returns the new tick
    /// index and whether the new price crosses the opposite side.
    #[inline]
    fn check_replace(
        &self,
        book_index: usize,
        order: &Order,
        cmd: &Replace,
    ) -> Result<(u32, bool), RejectReason> {
        let book = &self.books[book_index];
        book.check_quantity(cmd.new_quantity)?;
        let new_level = book.level_of(cmd.new_price)?;
        if cmd.new_quantity <= order.filled() {
            return Err(RejectReason::QuantityNotAboveFilled);
        }
        let crosses = book.crosses(order.side, new_level);
        if order.post_only && crosses {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        Ok((new_level, crosses))
    }
}
