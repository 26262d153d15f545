//! One instrument's order book: its static rules and its two sides.
//!
//! Prices are validated here (tick grid, band) and converted to tick indices
//! once, so matching works on small integers and never divides.

use crate::book_side::BookSide;
use crate::command::Side;
use crate::config::InstrumentConfig;
use crate::report::RejectReason;
use strength_reduce::StrengthReducedU64;

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
    /// `tick_size` as a divisor that multiplies (every limit price is
    /// divided by it; a hardware 64-bit division costs tens of cycles).
    tick: StrengthReducedU64,
    /// `lot_size` as a divisor that multiplies (every quantity is checked).
    lot: StrengthReducedU64,
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
            // Validated positive, so neither constructor can panic.
            tick: StrengthReducedU64::new(config.tick_size.unsigned_abs().max(1)),
            lot: StrengthReducedU64::new(config.lot_size.max(1)),
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
        } else if quantity % self.lot != 0 {
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
        // `price_min` is on the grid, so `price` is on it exactly when its
        // distance from `price_min` is a whole number of ticks.
        let above_min = price.wrapping_sub(self.price_min);
        if price >= self.price_min && price <= self.price_max {
            // In band: the distance is non-negative and the quotient is
            // below the level count (validated to fit in u32).
            let (level, off) = StrengthReducedU64::div_rem(above_min as u64, self.tick);
            if off != 0 {
                Err(RejectReason::OffTick)
            } else {
                Ok(level as u32)
            }
        } else if price.rem_euclid(self.tick_size) != 0 {
            Err(RejectReason::OffTick)
        } else {
            Err(RejectReason::OutsideBand)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The checks written with the hardware division, as they read.
    fn reference_level(c: &InstrumentConfig, price: i64) -> Result<u32, RejectReason> {
        if price.rem_euclid(c.tick_size) != 0 {
            Err(RejectReason::OffTick)
        } else if price < c.price_min || price > c.price_max {
            Err(RejectReason::OutsideBand)
        } else {
            Ok(((price - c.price_min) / c.tick_size) as u32)
        }
    }

    fn reference_quantity(c: &InstrumentConfig, quantity: u64) -> Result<(), RejectReason> {
        if quantity == 0 {
            Err(RejectReason::ZeroQuantity)
        } else if quantity % c.lot_size != 0 {
            Err(RejectReason::OffLot)
        } else if quantity > c.effective_max_quantity() {
            Err(RejectReason::QuantityTooLarge)
        } else {
            Ok(())
        }
    }

    fn instrument() -> impl Strategy<Value = InstrumentConfig> {
        // Ticks and lots both powers of two (a shift) and not (a multiply).
        let size = prop_oneof![1u64..=1_000, (0u32..20).prop_map(|k| 1u64 << k)];
        (size.clone(), size, -1_000i64..1_000, 1i64..50_000).prop_map(|(tick, lot, min_ticks, levels)| {
            let tick_size = tick as i64;
            let price_min = min_ticks * tick_size;
            InstrumentConfig {
                symbol: "T".into(),
                id: 1,
                tick_size,
                lot_size: lot,
                price_min,
                price_max: price_min + (levels - 1) * tick_size,
                max_quantity: crate::config::DEFAULT_MAX_QUANTITY / lot * lot,
            }
        })
    }

    proptest! {
        #[test]
        fn price_and_quantity_checks_agree_with_plain_division(
            c in instrument(),
            near in -3i64..3,
            offset in any::<u64>(),
            far in any::<i64>(),
            quantity in prop_oneof![any::<u64>(), 0u64..10_000],
        ) {
            let book = Book::new(&c);
            // Prices around and inside the band, and anywhere at all.
            let span = c.price_max - c.price_min + 1;
            let inside = c.price_min + (offset % span as u64) as i64;
            for price in [inside, inside + near, c.price_min + near, c.price_max + near, far] {
                prop_assert_eq!(book.level_of(price), reference_level(&c, price), "price {}", price);
            }
            prop_assert_eq!(book.check_quantity(quantity), reference_quantity(&c, quantity));
        }
    }
}
