//! The commands the engine accepts: plain `Copy` values, already sequenced.
//!
//! The engine never sees bytes: the gateway and sequencer decode the wire
//! messages into these structs. Every field value is legal to pass; invalid
//! combinations are answered with a `Rejected` report, never a panic.

/// Side of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Side {
    /// Bid: wants to buy at or below its price.
    Buy = 1,
    /// Offer: wants to sell at or above its price.
    Sell = 2,
}

impl Side {
    /// The side an order of this side trades against.
    #[inline]
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// Whether an order carries a limit price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OrderKind {
    /// Trades at its price or better; may rest (depending on [`TimeInForce`]).
    Limit = 1,
    /// Trades at any price in the band and never rests. Its `price` field is
    /// ignored (echoed in reports). `Gtc` and `Ioc` both mean immediate-or-cancel;
    /// `Fok` means fill-or-kill.
    Market = 2,
}

/// How long an order's unfilled remainder lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TimeInForce {
    /// Good till cancelled: the remainder rests in the book.
    Gtc = 1,
    /// Immediate or cancel: the remainder is expired at once.
    Ioc = 2,
    /// Fill or kill: fills completely at once, or is rejected with nothing touched.
    Fok = 3,
}

/// What to do when an incoming order would trade against a resting order of
/// the same session. Set per incoming order; a replaced order keeps the
/// setting it was entered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SelfTradePrevention {
    /// Self-trades are allowed and produce ordinary fills.
    None = 0,
    /// The resting order of the same session is cancelled and matching goes on.
    CancelResting = 1,
    /// The rest of the incoming order is cancelled; the resting order stays.
    CancelIncoming = 2,
}

/// Enter a new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NewOrder {
    /// Session that owns the order and receives its reports.
    pub session: u32,
    /// Client order id; unique per session among live (resting) orders.
    pub order_id: u64,
    /// Instrument id from the config.
    pub instrument: u32,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub kind: OrderKind,
    /// Time in force (see [`OrderKind::Market`] for market orders).
    pub tif: TimeInForce,
    /// Only add liquidity: an order that would trade on arrival is rejected.
    /// Allowed only on `Limit` + `Gtc` orders.
    pub post_only: bool,
    /// Self-trade prevention mode for this order.
    pub stp: SelfTradePrevention,
    /// Limit price in price units (ignored for market orders).
    pub price: i64,
    /// Order quantity, a positive multiple of the lot size.
    pub quantity: u64,
}

/// Cancel a resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cancel {
    /// Session that owns the order.
    pub session: u32,
    /// The order's client id.
    pub order_id: u64,
    /// The order's instrument; a mismatch is answered as an unknown order.
    pub instrument: u32,
}

/// Change a resting order's price and/or quantity, keeping its id.
///
/// `new_quantity` is the new **total** quantity of the order, filled part
/// included (FIX `OrderQty` semantics): the new open quantity is
/// `new_quantity - filled`. A `new_quantity` at or below the already filled
/// quantity is rejected ([`RejectReason::QuantityNotAboveFilled`]) and the
/// order is left unchanged; cancel the order instead.
///
/// Priority: a price change or a total-quantity increase sends the order to
/// the back of the queue at its (new) price; a decrease at the same price
/// keeps its place. A new price that crosses the opposite side trades
/// immediately, as an incoming order would (a post-only order is rejected
/// with [`RejectReason::PostOnlyWouldCross`] instead).
///
/// [`RejectReason::QuantityNotAboveFilled`]: crate::RejectReason::QuantityNotAboveFilled
/// [`RejectReason::PostOnlyWouldCross`]: crate::RejectReason::PostOnlyWouldCross
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Replace {
    /// Session that owns the order.
    pub session: u32,
    /// The order's client id (kept by the replace).
    pub order_id: u64,
    /// The order's instrument; a mismatch is answered as an unknown order.
    pub instrument: u32,
    /// New limit price.
    pub new_price: i64,
    /// New total quantity (filled part included).
    pub new_quantity: u64,
}

/// Any command, for callers that dispatch on a decoded stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// See [`NewOrder`].
    New(NewOrder),
    /// See [`Cancel`].
    Cancel(Cancel),
    /// See [`Replace`].
    Replace(Replace),
}

impl Command {
    /// The session that sent the command.
    pub fn session(&self) -> u32 {
        match self {
            Command::New(c) => c.session,
            Command::Cancel(c) => c.session,
            Command::Replace(c) => c.session,
        }
    }

    /// The client order id the command names.
    pub fn order_id(&self) -> u64 {
        match self {
            Command::New(c) => c.order_id,
            Command::Cancel(c) => c.order_id,
            Command::Replace(c) => c.order_id,
        }
    }
}

impl From<NewOrder> for Command {
    fn from(cmd: NewOrder) -> Command {
        Command::New(cmd)
    }
}

impl From<Cancel> for Command {
    fn from(cmd: Cancel) -> Command {
        Command::Cancel(cmd)
    }
}

impl From<Replace> for Command {
    fn from(cmd: Replace) -> Command {
        Command::Replace(cmd)
    }
}
