//! A deliberately simple reference engine: the specification, executable.
//!
//! Every resting order lives in one `Vec`; each decision re-derives what it
//! needs by filtering and sorting that `Vec` (price priority, then arrival
//! sequence). It is slow and obviously correct, and shares no code with the
//! real engine except the public command/report types and the state hasher,
//! so agreement between the two is evidence that the fast data structures
//! implement the same rules.

use peregrine_engine::*;

#[derive(Debug, Clone)]
pub struct RefOrder {
    pub session: u32,
    pub order_id: u64,
    pub instrument: u32,
    pub side: Side,
    pub price: i64,
    pub quantity: u64,
    pub leaves: u64,
    pub stp: SelfTradePrevention,
    pub post_only: bool,
    /// Time priority: lower trades first at equal price.
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub struct ReferenceEngine {
    instruments: Vec<InstrumentConfig>,
    max_orders: usize,
    pub orders: Vec<RefOrder>,
    next_seq: u64,
    pub next_match_id: u64,
}

type Out = Vec<(u32, Report)>;

fn blank(kind: ReportKind, order_id: u64, instrument: u32, side: Side) -> Report {
    Report {
        kind,
        order_id,
        instrument,
        side,
        price: 0,
        quantity: 0,
        leaves: 0,
        match_id: 0,
        liquidity: Liquidity::None,
        reason: RejectReason::None,
    }
}

/// Whether a buy at `buy` and a sell at `sell` can trade.
fn prices_cross(taker_side: Side, taker_limit: Option<i64>, resting_price: i64) -> bool {
    match (taker_side, taker_limit) {
        (_, None) => true,
        (Side::Buy, Some(limit)) => resting_price <= limit,
        (Side::Sell, Some(limit)) => resting_price >= limit,
    }
}

struct Taker {
    session: u32,
    order_id: u64,
    instrument: u32,
    side: Side,
    /// `None` for market orders.
    limit: Option<i64>,
    remaining: u64,
    stp: SelfTradePrevention,
}

impl ReferenceEngine {
    pub fn new(config: &EngineConfig) -> ReferenceEngine {
        ReferenceEngine {
            instruments: config.instruments.clone(),
            max_orders: config.max_orders,
            orders: Vec::new(),
            next_seq: 0,
            next_match_id: 1,
        }
    }

    pub fn apply(&mut self, command: &Command, out: &mut Out) {
        match command {
            Command::New(cmd) => self.new_order(cmd, out),
            Command::Cancel(cmd) => self.cancel(cmd, out),
            Command::Replace(cmd) => self.replace(cmd, out),
        }
    }

    fn instrument(&self, id: u32) -> Option<&InstrumentConfig> {
        self.instruments.iter().find(|i| i.id == id)
    }

    /// Resting orders of one book side, best first.
    pub fn side_in_priority(&self, instrument: u32, side: Side) -> Vec<RefOrder> {
        let mut orders: Vec<RefOrder> = self
            .orders
            .iter()
            .filter(|o| o.instrument == instrument && o.side == side)
            .cloned()
            .collect();
        orders.sort_by_key(|o| {
            let price_key = match side {
                Side::Buy => -o.price,
                Side::Sell => o.price,
            };
            (price_key, o.seq)
        });
        orders
    }

    fn position(&self, session: u32, order_id: u64) -> Option<usize> {
        self.orders
            .iter()
            .position(|o| o.session == session && o.order_id == order_id)
    }

    fn check_quantity(config: &InstrumentConfig, quantity: u64) -> Result<(), RejectReason> {
        if quantity == 0 {
            Err(RejectReason::ZeroQuantity)
        } else if quantity % config.lot_size != 0 {
            Err(RejectReason::OffLot)
        } else if quantity > config.max_quantity {
            Err(RejectReason::QuantityTooLarge)
        } else {
            Ok(())
        }
    }

    fn check_price(config: &InstrumentConfig, price: i64) -> Result<(), RejectReason> {
        if price % config.tick_size != 0 {
            Err(RejectReason::OffTick)
        } else if price < config.price_min || price > config.price_max {
            Err(RejectReason::OutsideBand)
        } else {
            Ok(())
        }
    }

    fn would_trade(&self, instrument: u32, side: Side, limit: Option<i64>) -> bool {
        self.side_in_priority(instrument, side.opposite())
            .first()
            .is_some_and(|best| prices_cross(side, limit, best.price))
    }

    fn new_order_checks(&self, cmd: &NewOrder) -> Result<(), RejectReason> {
        let config = self
            .instrument(cmd.instrument)
            .ok_or(RejectReason::UnknownInstrument)?;
        Self::check_quantity(config, cmd.quantity)?;
        let is_limit = cmd.kind == OrderKind::Limit;
        if is_limit {
            Self::check_price(config, cmd.price)?;
        }
        let rests = is_limit && cmd.tif == TimeInForce::Gtc;
        if cmd.post_only && !rests {
            return Err(RejectReason::PostOnlyNotGtcLimit);
        }
        if self.position(cmd.session, cmd.order_id).is_some() {
            return Err(RejectReason::DuplicateOrderId);
        }
        let limit = is_limit.then_some(cmd.price);
        if !is_limit
            && self
                .side_in_priority(cmd.instrument, cmd.side.opposite())
                .is_empty()
        {
            return Err(RejectReason::NoLiquidity);
        }
        let trades = self.would_trade(cmd.instrument, cmd.side, limit);
        if cmd.post_only && trades {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        if rests && !trades && self.orders.len() >= self.max_orders {
            return Err(RejectReason::PoolFull);
        }
        if cmd.tif == TimeInForce::Fok {
            // Try it on a copy and see whether it fills completely.
            let mut trial = self.clone();
            let mut taker = Taker {
                session: cmd.session,
                order_id: cmd.order_id,
                instrument: cmd.instrument,
                side: cmd.side,
                limit,
                remaining: cmd.quantity,
                stp: cmd.stp,
            };
            let stopped = trial.match_taker(&mut taker, &mut Vec::new());
            if stopped || taker.remaining > 0 {
                return Err(RejectReason::FokCannotFill);
            }
        }
        Ok(())
    }

    fn new_order(&mut self, cmd: &NewOrder, out: &mut Out) {
        let mut accepted = blank(ReportKind::Accepted, cmd.order_id, cmd.instrument, cmd.side);
        accepted.price = cmd.price;
        accepted.quantity = cmd.quantity;
        if let Err(reason) = self.new_order_checks(cmd) {
            let mut rejected = accepted;
            rejected.kind = ReportKind::Rejected;
            rejected.reason = reason;
            out.push((cmd.session, rejected));
            return;
        }
        accepted.leaves = cmd.quantity;
        out.push((cmd.session, accepted));
        let is_limit = cmd.kind == OrderKind::Limit;
        let mut taker = Taker {
            session: cmd.session,
            order_id: cmd.order_id,
            instrument: cmd.instrument,
            side: cmd.side,
            limit: is_limit.then_some(cmd.price),
            remaining: cmd.quantity,
            stp: cmd.stp,
        };
        let stopped = self.match_taker(&mut taker, out);
        if taker.remaining == 0 {
            return;
        }
        let mut end = accepted;
        end.quantity = taker.remaining;
        end.leaves = 0;
        if stopped {
            end.kind = ReportKind::Cancelled;
            end.reason = RejectReason::SelfTradePrevention;
            out.push((cmd.session, end));
        } else if is_limit && cmd.tif == TimeInForce::Gtc {
            let seq = self.take_seq();
            self.orders.push(RefOrder {
                session: cmd.session,
                order_id: cmd.order_id,
                instrument: cmd.instrument,
                side: cmd.side,
                price: cmd.price,
                quantity: cmd.quantity,
                leaves: taker.remaining,
                stp: cmd.stp,
                post_only: cmd.post_only,
                seq,
            });
        } else {
            end.kind = ReportKind::Expired;
            end.reason = RejectReason::ImmediateOrCancel;
            out.push((cmd.session, end));
        }
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Matches until filled or nothing crosses; true if STP stopped the taker.
    fn match_taker(&mut self, taker: &mut Taker, out: &mut Out) -> bool {
        while taker.remaining > 0 {
            let Some(best) = self
                .side_in_priority(taker.instrument, taker.side.opposite())
                .into_iter()
                .next()
            else {
                return false;
            };
            if !prices_cross(taker.side, taker.limit, best.price) {
                return false;
            }
            let at = self.position(best.session, best.order_id).unwrap();
            if best.session == taker.session && taker.stp != SelfTradePrevention::None {
                if taker.stp == SelfTradePrevention::CancelIncoming {
                    return true;
                }
                self.orders.remove(at);
                let mut cancelled = blank(ReportKind::Cancelled, best.order_id, best.instrument, best.side);
                cancelled.price = best.price;
                cancelled.quantity = best.leaves;
                cancelled.reason = RejectReason::SelfTradePrevention;
                out.push((best.session, cancelled));
                continue;
            }
            let quantity = taker.remaining.min(best.leaves);
            taker.remaining -= quantity;
            self.orders[at].leaves -= quantity;
            let maker_leaves = self.orders[at].leaves;
            if maker_leaves == 0 {
                self.orders.remove(at);
            }
            let match_id = self.next_match_id;
            self.next_match_id += 1;
            let mut fill = blank(ReportKind::Fill, taker.order_id, taker.instrument, taker.side);
            fill.price = best.price;
            fill.quantity = quantity;
            fill.leaves = taker.remaining;
            fill.match_id = match_id;
            fill.liquidity = Liquidity::Taker;
            out.push((taker.session, fill));
            let mut maker_fill = fill;
            maker_fill.order_id = best.order_id;
            maker_fill.side = best.side;
            maker_fill.leaves = maker_leaves;
            maker_fill.liquidity = Liquidity::Maker;
            out.push((best.session, maker_fill));
        }
        false
    }

    fn find_live(&self, session: u32, order_id: u64, instrument: u32) -> Option<usize> {
        self.position(session, order_id)
            .filter(|&at| self.orders[at].instrument == instrument)
    }

    fn cancel(&mut self, cmd: &Cancel, out: &mut Out) {
        let mut report = blank(ReportKind::Rejected, cmd.order_id, cmd.instrument, Side::Buy);
        if self.instrument(cmd.instrument).is_none() {
            report.reason = RejectReason::UnknownInstrument;
        } else if let Some(at) = self.find_live(cmd.session, cmd.order_id, cmd.instrument) {
            let order = self.orders.remove(at);
            report.kind = ReportKind::Cancelled;
            report.side = order.side;
            report.price = order.price;
            report.quantity = order.leaves;
            report.reason = RejectReason::UserRequested;
        } else {
            report.reason = RejectReason::UnknownOrder;
        }
        out.push((cmd.session, report));
    }

    fn replace(&mut self, cmd: &Replace, out: &mut Out) {
        let mut report = blank(ReportKind::Rejected, cmd.order_id, cmd.instrument, Side::Buy);
        report.price = cmd.new_price;
        report.quantity = cmd.new_quantity;
        let Some(config) = self.instrument(cmd.instrument).cloned() else {
            report.reason = RejectReason::UnknownInstrument;
            out.push((cmd.session, report));
            return;
        };
        let Some(at) = self.find_live(cmd.session, cmd.order_id, cmd.instrument) else {
            report.reason = RejectReason::UnknownOrder;
            out.push((cmd.session, report));
            return;
        };
        let old = self.orders[at].clone();
        report.side = old.side;
        report.leaves = old.leaves;
        let filled = old.quantity - old.leaves;
        let trades = self.would_trade(old.instrument, old.side, Some(cmd.new_price));
        let check = (|| {
            Self::check_quantity(&config, cmd.new_quantity)?;
            Self::check_price(&config, cmd.new_price)?;
            if cmd.new_quantity <= filled {
                return Err(RejectReason::QuantityNotAboveFilled);
            }
            if old.post_only && trades {
                return Err(RejectReason::PostOnlyWouldCross);
            }
            Ok(())
        })();
        if let Err(reason) = check {
            report.reason = reason;
            out.push((cmd.session, report));
            return;
        }
        let new_leaves = cmd.new_quantity - filled;
        report.kind = ReportKind::Replaced;
        report.leaves = new_leaves;
        out.push((cmd.session, report));
        let keeps_priority = cmd.new_price == old.price && cmd.new_quantity <= old.quantity;
        if keeps_priority {
            self.orders[at].quantity = cmd.new_quantity;
            self.orders[at].leaves = new_leaves;
            return;
        }
        // Lose priority: take it out, trade if it crosses, re-queue the rest.
        let mut order = self.orders.remove(at);
        let mut taker = Taker {
            session: order.session,
            order_id: order.order_id,
            instrument: order.instrument,
            side: order.side,
            limit: Some(cmd.new_price),
            remaining: new_leaves,
            stp: order.stp,
        };
        let stopped = self.match_taker(&mut taker, out);
        if stopped {
            let mut cancelled = report;
            cancelled.kind = ReportKind::Cancelled;
            cancelled.quantity = taker.remaining;
            cancelled.leaves = 0;
            cancelled.reason = RejectReason::SelfTradePrevention;
            out.push((cmd.session, cancelled));
            return;
        }
        if taker.remaining == 0 {
            return;
        }
        order.price = cmd.new_price;
        order.quantity = cmd.new_quantity;
        order.leaves = taker.remaining;
        order.seq = self.take_seq();
        self.orders.push(order);
    }

    /// The same serialisation as `Engine::state_hash`.
    pub fn state_hash(&self) -> u64 {
        let mut hasher = StateHasher::new();
        for config in &self.instruments {
            hasher.write_u64(u64::from(config.id));
            for side in [Side::Buy, Side::Sell] {
                for o in self.side_in_priority(config.id, side) {
                    for word in [
                        u64::from(o.session),
                        o.order_id,
                        o.side as u64,
                        o.price as u64,
                        o.quantity,
                        o.leaves,
                        o.stp as u64,
                        u64::from(o.post_only),
                    ] {
                        hasher.write_u64(word);
                    }
                }
                hasher.write_u64(SIDE_END);
            }
        }
        hasher.write_u64(self.next_match_id);
        hasher.finish()
    }

    /// Resting orders of one side as the engine's view type, best first.
    pub fn views(&self, instrument: u32, side: Side) -> Vec<OrderView> {
        self.side_in_priority(instrument, side)
            .into_iter()
            .map(|o| OrderView {
                session: o.session,
                order_id: o.order_id,
                instrument: o.instrument,
                side: o.side,
                price: o.price,
                quantity: o.quantity,
                leaves: o.leaves,
                stp: o.stp,
                post_only: o.post_only,
            })
            .collect()
    }
}
