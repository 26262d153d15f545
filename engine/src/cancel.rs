//! Handling of [`Cancel`], and the removal of a resting order shared with replace.
//!
//! Checks, in order: `UnknownInstrument`, then `UnknownOrder` (no live order
//! with that session and id, or one on another instrument).

use crate::command::{Cancel, Side};
use crate::engine::Engine;
use crate::order_index::Position;
use crate::report::{RejectReason, Report, ReportKind, ReportSink};

impl Engine {
    /// Cancels a resting order: `Cancelled` (reason `UserRequested`, quantity
    /// the open quantity removed) or `Rejected`.
    #[inline]
    pub fn cancel(&mut self, cmd: &Cancel, out: &mut impl ReportSink) {
        let found = self
            .book_index(cmd.instrument)
            .ok_or(RejectReason::UnknownInstrument)
            .and_then(|book_index| {
                self.live_order(cmd.session, cmd.order_id, book_index)
                    .ok_or(RejectReason::UnknownOrder)
            });
        let (slot, at) = match found {
            Ok(found) => found,
            Err(reason) => {
                let rejected = Report {
                    kind: ReportKind::Rejected,
                    order_id: cmd.order_id,
                    instrument: cmd.instrument,
                    side: Side::Buy,
                    reason,
                    ..Report::BLANK
                };
                out.report(cmd.session, &rejected);
                return;
            }
        };
        let order = *self.pool.get(slot);
        self.remove_resting(slot, at);
        let cancelled = Report {
            kind: ReportKind::Cancelled,
            order_id: order.order_id,
            instrument: cmd.instrument,
            side: order.side,
            price: self.books[order.book as usize].price_of(order.level),
            quantity: order.leaves,
            reason: RejectReason::UserRequested,
            ..Report::BLANK
        };
        out.report(cmd.session, &cancelled);
    }

    /// Pool slot of the live order `(session, order_id)` if it rests in
    /// book `book_index`, and where its id-index entry sits (for
    /// [`remove_resting`](Self::remove_resting) with no second probe).
    #[inline]
    pub(crate) fn live_order(
        &self,
        session: u32,
        order_id: u64,
        book_index: usize,
    ) -> Option<(u32, Position)> {
        self.index
            .locate(session, order_id)
            .filter(|&(slot, _)| self.pool.get(slot).book as usize == book_index)
    }

    /// Takes a linked, resting order out of its level, the id index (its
    /// entry at `at`, as located before) and the pool.
    #[inline]
    pub(crate) fn remove_resting(&mut self, slot: u32, at: Position) {
        let order = *self.pool.get(slot);
        self.books[order.book as usize]
            .side_mut(order.side)
            .unlink(&mut self.pool, slot);
        self.index.remove_at(at);
        self.pool.free(slot);
    }
}
