//! One instrument's order book: its static rules and its two sides.
//!
//! Prices are validated here (tick grid, band) and converted to tick indices
//! once, so matching works on small integers and never divides.

use crate::book_side::BookSide;
use crate::command::Side;
use crate::config::InstrumentConfig;
use crate::report::RejectReason;

/// An instrument's book.
#[derive(Debug)]
pub struct Book {
    /// Instrument id.
    pub instrument: u32,
    /// Price increment.
    pub tick_size: i64,
    /// Quantity increment.
    pub lot_size: u64,
    /// Lowest price in the band.
    pub price_min: i64,
    /// Highest price in the band.
    pub price_max: i64,
    /// Largest order quantity.
    pub max_quantity: u64,
    /// Resting buy orders.
    pub bids: BookSide,
    /// Resting sell orders.
    pub asks: BookSide,
}

impl Book {
    /// An empty book for a validated instrument config.
    pub fn new(config: &InstrumentConfig) -> Book {
        let levels = config.level_count();
        Book {
            instrument: config.id,
            tick_size: config.tick_size,
            lot_size: config.lot_size,
            price_min: config.price_min,
            price_max: config.price_max,
            max_quantity: config.effective_max_quantity(),
            bids: BookSide::new(Side::Buy, levels),
            asks: BookSide::new(Side::Sell, levels),
        }
    }

    /// The side orders of `side` rest on.
    #[inline]
    pub fn side(&self, side: Side) -> &BookSide {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    /// The side orders of `side` rest on, mutably.
    #[inline]
    pub fn side_mut(&mut self, side: Side) -> &mut BookSide {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// Checks a quantity against the instrument's lot rules.
    #[inline]
    pub fn check_quantity(&self, quantity: u64) -> Result<(), RejectReason> {
        if quantity == 0 {
            Err(RejectReason::ZeroQuantity)
        } else if quantity % self.lot_size != 0 {
            Err(RejectReason::OffLot)
        } else if quantity > self.max_quantity {
            Err(RejectReason::QuantityTooLarge)
        } else {
            Ok(())
        }
    }

    /// Checks a limit price against the tick grid and the band, returning its tick index.
    #[inline]
    pub fn level_of(&self, price: i64) -> Result<u32, RejectReason> {
        if price.rem_euclid(self.tick_size) != 0 {
            Err(RejectReason::OffTick)
        } else if price < self.price_min || price > self.price_max {
            Err(RejectReason::OutsideBand)
        } else {
            // In band, so the difference fits and the quotient is below the
            // level count (validated to fit in u32).
            Ok(((price - self.price_min) / self.tick_size) as u32)
        }
    }

    /// The price of tick index `level`.
    #[inline]
    pub fn price_of(&self, level: u32) -> i64 {
        self.price_min + i64::from(level) * self.tick_size
    }

    /// Whether an order of `side` limited at `level` would trade against the
    /// opposite side's best level right now.
    #[inline]
    pub fn crosses(&self, side: Side, level: u32) -> bool {
        let best = self.side(side.opposite()).best();
        best != crate::order_pool::NIL && crosses_level(side, level, best)
    }
}

/// Whether an aggressor of `side` limited at tick `limit` trades with a resting
/// level at tick `resting`.
#[inline]
pub fn crosses_level(side: Side, limit: u32, resting: u32) -> bool {
    match side {
        Side::Buy => resting <= limit,
        Side::Sell => resting >= limit,
    }
}
