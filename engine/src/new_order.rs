//! Handling of [`NewOrder`]: admission checks, then matching, then the remainder.
//!
//! Admission runs every check before anything changes, so a rejected order
//! leaves the engine untouched. Checks run in this order, the first failing
//! one giving the reject reason:
//!
//! 1. `UnknownInstrument`
//! 2. `ZeroQuantity`, `OffLot`, `QuantityTooLarge`
//! 3. limit orders only: `OffTick`, `OutsideBand`
//! 4. `PostOnlyNotGtcLimit` (post-only on a market, IOC or FOK order)
//! 5. `DuplicateOrderId` (the session has a live order with this id)
//! 6. market orders only: `NoLiquidity` (opposite side empty)
//! 7. post-only only: `PostOnlyWouldCross`
//! 8. limit GTC only: `PoolFull` (pool full and the order would rest without
//!    trading; an order that trades first always finds a slot freed, because
//!    it rests only after removing every maker it met)
//! 9. FOK only: `FokCannotFill`

use crate::command::{NewOrder, OrderKind, Side, TimeInForce};
use crate::engine::Engine;
use crate::matching::{Aggressor, MatchEnd};
use crate::order_index::Vacancy;
use crate::order_pool::{Order, NIL};
use crate::report::{RejectReason, Report, ReportKind, ReportSink};

impl Engine {
    /// Enters a new order: `Rejected`, or `Accepted` followed by its fills and
    /// the fate of its remainder (rests, `Expired`, or `Cancelled` by self-trade
    /// prevention). See the module docs for the check order.
    #[inline]
    pub fn new_order(&mut self, cmd: &NewOrder, out: &mut impl ReportSink) {
        let accepted = Report {
            kind: ReportKind::Accepted,
            order_id: cmd.order_id,
            instrument: cmd.instrument,
            side: cmd.side,
            price: cmd.price,
            quantity: cmd.quantity,
            leaves: cmd.quantity,
            ..Report::BLANK
        };
        let (book_index, mut taker, crosses, vacancy) = match self.admit(cmd) {
            Ok(admitted) => admitted,
            Err(reason) => {
                let rejected = Report {
                    kind: ReportKind::Rejected,
                    leaves: 0,
                    reason,
                    ..accepted
                };
                out.report(cmd.session, &rejected);
                return;
            }
        };
        out.report(cmd.session, &accepted);

        let end = if crosses {
            self.match_aggressor(book_index, &mut taker, out)
        } else {
            MatchEnd::Done
        };
        if taker.remaining == 0 {
            return;
        }
        let removed = |reason, kind| Report {
            kind,
            quantity: taker.remaining,
            leaves: 0,
            reason,
            ..accepted
        };
        if end == MatchEnd::SelfTradeStop {
            let report = removed(RejectReason::SelfTradePrevention, ReportKind::Cancelled);
            out.report(cmd.session, &report);
        } else if rests(cmd) {
            // Without a match the index is as admission probed it.
            let vacancy = (!crosses).then_some(vacancy);
            if !self.rest(book_index, cmd, &taker, vacancy) {
                // Unreachable by the PoolFull admission rule; handled so that
                // no input can panic or lose quantity.
                let report = removed(RejectReason::PoolFull, ReportKind::Cancelled);
                out.report(cmd.session, &report);
            }
        } else {
            let report = removed(RejectReason::ImmediateOrCancel, ReportKind::Expired);
            out.report(cmd.session, &report);
        }
    }

    /// Runs every admission check; on success returns the book index, the
    /// order as an aggressor, whether it crosses the opposite best, and
    /// where the order's id goes in the index.
    #[inline(always)]
    fn admit(&self, cmd: &NewOrder) -> Result<(usize, Aggressor, bool, Vacancy), RejectReason> {
        let book_index = self
            .book_index(cmd.instrument)
            .ok_or(RejectReason::UnknownInstrument)?;
        let book = &self.books[book_index];
        book.check_quantity(cmd.quantity)?;
        let limit = match cmd.kind {
            OrderKind::Limit => book.level_of(cmd.price)?,
            OrderKind::Market => match cmd.side {
                Side::Buy => u32::MAX,
                Side::Sell => 0,
            },
        };
        if cmd.post_only && !rests(cmd) {
            return Err(RejectReason::PostOnlyNotGtcLimit);
        }
        let Err(vacancy) = self.index.find(cmd.session, cmd.order_id) else {
            return Err(RejectReason::DuplicateOrderId);
        };
        if cmd.kind == OrderKind::Market && book.side(cmd.side.opposite()).best() == NIL {
            return Err(RejectReason::NoLiquidity);
        }
        let crosses = book.crosses(cmd.side, limit);
        if cmd.post_only && crosses {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        if rests(cmd) && !crosses && self.pool.is_full() {
            return Err(RejectReason::PoolFull);
        }
        let taker = Aggressor {
            session: cmd.session,
            order_id: cmd.order_id,
            side: cmd.side,
            limit,
            remaining: cmd.quantity,
            stp: cmd.stp,
        };
        if cmd.tif == TimeInForce::Fok && !self.can_fill_completely(book_index, &taker) {
            return Err(RejectReason::FokCannotFill);
        }
        Ok((book_index, taker, crosses, vacancy))
    }

    /// Puts the unfilled remainder of a GTC limit order in the book, its id
    /// at `vacancy` when the index has not changed since admission probed
    /// it. Returns false (and changes nothing) if the pool is full.
    #[inline(always)]
    fn rest(
        &mut self,
        book_index: usize,
        cmd: &NewOrder,
        taker: &Aggressor,
        vacancy: Option<Vacancy>,
    ) -> bool {
        let order = Order {
            order_id: cmd.order_id,
            quantity: cmd.quantity,
            leaves: taker.remaining,
            session: cmd.session,
            book: book_index as u32,
            level: taker.limit,
            prev: NIL,
            next: NIL,
            side: cmd.side,
            stp: cmd.stp,
            post_only: cmd.post_only,
        };
        let Some(slot) = self.pool.insert(order) else {
            return false;
        };
        match vacancy {
            Some(at) => self.index.insert_at(at, cmd.session, cmd.order_id, slot),
            None => self.index.insert(cmd.session, cmd.order_id, slot),
        }
        self.books[book_index]
            .side_mut(cmd.side)
            .push_back(&mut self.pool, slot);
        true
    }
}

/// Whether an order's remainder rests in the book (limit GTC).
#[inline]
fn rests(cmd: &NewOrder) -> bool {
    cmd.kind == OrderKind::Limit && cmd.tif == TimeInForce::Gtc
}
