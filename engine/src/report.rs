//! Execution reports: what the engine says back, and to whom.
//!
//! Every command produces at least one report. Reports are handed, in order,
//! to a caller-provided [`ReportSink`] together with the session that must
//! receive them, so a fill reaches both the taker's and the maker's session.
//! The sink is generic so the hot path has no dynamic dispatch and no buffer
//! of its own.
//!
//! # Report order for one command
//!
//! * `NewOrder`: `Rejected`; or `Accepted`, then for each match a `Fill` to the
//!   taker followed by a `Fill` to the maker (with a resting order of the same
//!   session cancelled by self-trade prevention reported as `Cancelled` where
//!   it is met), then at most one of `Expired` (IOC/market remainder) or
//!   `Cancelled` (self-trade prevention cancelled the incoming remainder).
//! * `Cancel`: `Cancelled` or `Rejected`.
//! * `Replace`: `Rejected`; or `Replaced`, then, if the new price crosses, the
//!   same fill/cancel sequence as a new order.

use crate::command::Side;

/// What a report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReportKind {
    /// The order was accepted (fills may follow in the same event).
    Accepted = 1,
    /// The command had no effect; see [`Report::reason`].
    Rejected = 2,
    /// The order traded `quantity` at `price`.
    Fill = 3,
    /// `quantity` of the order was cancelled; the order is gone.
    Cancelled = 4,
    /// The order now has price `price`, total quantity `quantity` and open quantity `leaves`.
    Replaced = 5,
    /// `quantity` of an IOC/market order was not filled and is gone.
    Expired = 6,
}

/// Whether a fill added or removed liquidity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Liquidity {
    /// Not a fill.
    None = 0,
    /// The resting order of the match.
    Maker = 1,
    /// The incoming (or crossing replaced) order of the match.
    Taker = 2,
}

/// Why a command was rejected, or why an order was cancelled or expired.
///
/// Codes are stable wire values: never renumber, only add.
///
/// | code | name | used by |
/// |-----:|------|---------|
/// | 0 | `None` | Accepted, Fill, Replaced |
/// | 1 | `UnknownInstrument` | Rejected: no instrument with that id |
/// | 2 | `ZeroQuantity` | Rejected: quantity is 0 |
/// | 3 | `OffLot` | Rejected: quantity not a multiple of the lot size |
/// | 4 | `OffTick` | Rejected: limit price not a multiple of the tick size |
/// | 5 | `OutsideBand` | Rejected: limit price outside `[price_min, price_max]` |
/// | 6 | `DuplicateOrderId` | Rejected: the session already has a live order with that id |
/// | 7 | `UnknownOrder` | Rejected: cancel/replace of an id with no live order on that instrument |
/// | 8 | `PostOnlyWouldCross` | Rejected: a post-only order (or its replace) would trade |
/// | 9 | `FokCannotFill` | Rejected: a fill-or-kill order cannot fill completely |
/// | 10 | `PoolFull` | Rejected: the order would rest but the order pool is full |
/// | 11 | `NoLiquidity` | Rejected: market order into an empty opposite side |
/// | 12 | `PostOnlyNotGtcLimit` | Rejected: post-only on a market, IOC or FOK order |
/// | 13 | `QuantityNotAboveFilled` | Rejected: replace to a total quantity at or below the filled quantity |
/// | 14 | `QuantityTooLarge` | Rejected: quantity above the instrument's `max_quantity` |
/// | 100 | `UserRequested` | Cancelled: by a `Cancel` command |
/// | 101 | `SelfTradePrevention` | Cancelled: by self-trade prevention (resting or incoming side) |
/// | 102 | `ImmediateOrCancel` | Expired: the unfilled remainder of an IOC or market order |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum RejectReason {
    /// No reason: the report is not a rejection, cancellation or expiry.
    None = 0,
    /// No instrument with that id.
    UnknownInstrument = 1,
    /// Quantity is zero.
    ZeroQuantity = 2,
    /// Quantity is not a multiple of the lot size.
    OffLot = 3,
    /// Limit price is not a multiple of the tick size.
    OffTick = 4,
    /// Limit price is outside the instrument's band.
    OutsideBand = 5,
    /// The session already has a live order with this id.
    DuplicateOrderId = 6,
    /// No live order with this (session, id) on this instrument.
    UnknownOrder = 7,
    /// A post-only order, or a replace of one, would trade on arrival.
    PostOnlyWouldCross = 8,
    /// A fill-or-kill order cannot be filled completely right now.
    FokCannotFill = 9,
    /// The order would rest but the order pool is full.
    PoolFull = 10,
    /// A market order found no order on the opposite side.
    NoLiquidity = 11,
    /// Post-only is only allowed on limit GTC orders.
    PostOnlyNotGtcLimit = 12,
    /// A replace asked for a total quantity at or below what already filled.
    QuantityNotAboveFilled = 13,
    /// Quantity is above the instrument's `max_quantity`.
    QuantityTooLarge = 14,
    /// Cancelled by the owner's `Cancel` command.
    UserRequested = 100,
    /// Cancelled by self-trade prevention.
    SelfTradePrevention = 101,
    /// Remainder of an IOC or market order, expired.
    ImmediateOrCancel = 102,
}

impl RejectReason {
    /// The stable wire code.
    #[inline]
    pub fn code(self) -> u16 {
        self as u16
    }
}

/// One execution report, addressed to a session by [`ReportSink::report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Report {
    /// What happened.
    pub kind: ReportKind,
    /// The client order id the report is about.
    pub order_id: u64,
    /// Instrument id (as sent, for rejects of unknown instruments).
    pub instrument: u32,
    /// The order's side. For a `Cancel`/`Replace` rejected before the order
    /// was found (unknown instrument or order) it is `Buy`.
    pub side: Side,
    /// Accepted/Rejected/Expired: the order's (or command's) price; Fill: the
    /// trade price (the maker's); Cancelled: the order's price; Replaced: the new price.
    pub price: i64,
    /// Accepted/Rejected: the order's (or command's) quantity; Fill: the traded
    /// quantity; Cancelled/Expired: the quantity removed; Replaced: the new
    /// total quantity.
    pub quantity: u64,
    /// Open quantity of the order after this event (0 once it is gone and for
    /// rejects of new orders; for a rejected cancel/replace of a live order,
    /// its unchanged open quantity).
    pub leaves: u64,
    /// Engine-wide match number, the same in both fills of one match; 0 otherwise.
    pub match_id: u64,
    /// Maker/Taker on fills, `None` otherwise.
    pub liquidity: Liquidity,
    /// Reason code for Rejected/Cancelled/Expired, `None` otherwise.
    pub reason: RejectReason,
}

/// Receives the engine's reports, in order, as they are produced.
pub trait ReportSink {
    /// Deliver `report` to `session`.
    fn report(&mut self, session: u32, report: &Report);
}

/// Collects every report with its session (tests, tools).
impl ReportSink for Vec<(u32, Report)> {
    #[inline]
    fn report(&mut self, session: u32, report: &Report) {
        self.push((session, *report));
    }
}

/// Discards reports but counts them (benchmarks).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CountingSink {
    /// Reports received.
    pub reports: u64,
    /// Fill reports received.
    pub fills: u64,
}

impl ReportSink for CountingSink {
    #[inline]
    fn report(&mut self, _session: u32, report: &Report) {
        self.reports += 1;
        self.fills += u64::from(report.kind == ReportKind::Fill);
    }
}

impl Report {
    /// An all-zero `Accepted` report, a base for struct-update syntax.
    pub const BLANK: Report = Report {
        kind: ReportKind::Accepted,
        order_id: 0,
        instrument: 0,
        side: Side::Buy,
        price: 0,
        quantity: 0,
        leaves: 0,
        match_id: 0,
        liquidity: Liquidity::None,
        reason: RejectReason::None,
    };
}
