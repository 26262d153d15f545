//! Static engine configuration: the instruments and the capacity of the order pool.
//!
//! Everything the engine needs to size its memory up front lives here, so that
//! [`Engine::new`](crate::Engine::new) can allocate once and the hot path never does.
//! The types deserialize from the server's TOML config (`[engine]` with
//! `[[engine.instruments]]` tables, or wherever the lead mounts them).

use serde::Deserialize;
use thiserror::Error;

/// Default capacity of the order pool (resting orders across all instruments).
pub const DEFAULT_MAX_ORDERS: usize = 1 << 20;

/// Default per-order quantity ceiling (see [`InstrumentConfig::max_quantity`]).
pub const DEFAULT_MAX_QUANTITY: u64 = u32::MAX as u64;

/// Largest number of price levels (ticks) one instrument's band may span.
///
/// Each level costs 16 bytes per side, so the ceiling bounds one book at 512 MiB.
pub const MAX_LEVELS_PER_BOOK: u64 = 1 << 24;

/// Largest order pool the engine accepts (64 Mi orders: about 4 GiB of pool
/// and 2 GiB of id index), so that a config typo fails validation instead of
/// an allocation. Well below the `u32` index limit of the pool.
pub const MAX_POOL_CAPACITY: usize = 1 << 26;

/// One tradable instrument and its static trading rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentConfig {
    /// Human-readable symbol, unique within the config.
    pub symbol: String,
    /// Instrument id used on the wire, unique within the config.
    pub id: u32,
    /// Price increment in price units; every limit price is a multiple of it.
    pub tick_size: i64,
    /// Quantity increment; every order quantity is a multiple of it.
    pub lot_size: u64,
    /// Lowest accepted limit price (inclusive, a multiple of `tick_size`).
    pub price_min: i64,
    /// Highest accepted limit price (inclusive, a multiple of `tick_size`).
    pub price_max: i64,
    /// Largest accepted order quantity. Together with `max_orders` it bounds
    /// the quantity resting at one price, which must fit in a `u64`. When
    /// left out of a config file it is [`DEFAULT_MAX_QUANTITY`] rounded down
    /// to a multiple of `lot_size` (see [`InstrumentConfig::effective_max_quantity`]).
    #[serde(default = "default_max_quantity")]
    pub max_quantity: u64,
}

impl InstrumentConfig {
    /// The quantity ceiling in force: `max_quantity`, except that the
    /// default ([`DEFAULT_MAX_QUANTITY`]) is rounded down to a multiple of
    /// the lot size, so a config that does not set it is always valid.
    pub fn effective_max_quantity(&self) -> u64 {
        if self.max_quantity == DEFAULT_MAX_QUANTITY && self.lot_size > 0 {
            DEFAULT_MAX_QUANTITY / self.lot_size * self.lot_size
        } else {
            self.max_quantity
        }
    }
}

/// The engine's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Instruments, each with its own book. Their order here is the order in
    /// which [`Engine::state_hash`](crate::Engine::state_hash) visits books.
    pub instruments: Vec<InstrumentConfig>,
    /// Capacity of the order pool: the most orders that can rest at once,
    /// across all instruments. A resting order that finds the pool full is
    /// rejected with [`RejectReason::PoolFull`](crate::RejectReason::PoolFull).
    #[serde(default = "default_max_orders")]
    pub max_orders: usize,
}

fn default_max_orders() -> usize {
    DEFAULT_MAX_ORDERS
}

fn default_max_quantity() -> u64 {
    DEFAULT_MAX_QUANTITY
}

/// Why a configuration cannot be turned into an engine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The config lists no instrument.
    #[error("no instruments configured")]
    NoInstruments,
    /// Two instruments share an id.
    #[error("instrument id {0} is configured twice")]
    DuplicateInstrumentId(u32),
    /// Two instruments share a symbol.
    #[error("instrument symbol {0:?} is configured twice")]
    DuplicateSymbol(String),
    /// `tick_size` is zero or negative.
    #[error("instrument {symbol:?}: tick_size must be positive, got {tick_size}")]
    InvalidTickSize {
        /// The instrument.
        symbol: String,
        /// The configured tick size.
        tick_size: i64,
    },
    /// `lot_size` is zero.
    #[error("instrument {symbol:?}: lot_size must be positive")]
    InvalidLotSize {
        /// The instrument.
        symbol: String,
    },
    /// `max_quantity` is zero or not a multiple of `lot_size`.
    #[error("instrument {symbol:?}: max_quantity must be a positive multiple of lot_size")]
    InvalidMaxQuantity {
        /// The instrument.
        symbol: String,
    },
    /// The band is empty, off the tick grid, or spans more than
    /// [`MAX_LEVELS_PER_BOOK`] ticks.
    #[error("instrument {symbol:?}: invalid price band [{price_min}, {price_max}]: {why}")]
    InvalidBand {
        /// The instrument.
        symbol: String,
        /// Configured lower edge.
        price_min: i64,
        /// Configured upper edge.
        price_max: i64,
        /// Which rule the band breaks.
        why: &'static str,
    },
    /// `max_orders` is zero or above [`MAX_POOL_CAPACITY`].
    #[error("max_orders must be in 1..={MAX_POOL_CAPACITY}, got {0}")]
    InvalidMaxOrders(usize),
    /// `max_quantity * max_orders` overflows a `u64`, so a price level's total
    /// could overflow.
    #[error("instrument {symbol:?}: max_quantity * max_orders overflows u64")]
    QuantityOverflow {
        /// The instrument.
        symbol: String,
    },
}

impl InstrumentConfig {
    /// Number of price levels in the band (`(price_max - price_min) / tick_size + 1`).
    ///
    /// Only meaningful for a config that passed [`EngineConfig::validate`].
    pub fn level_count(&self) -> usize {
        let span = (self.price_max as i128 - self.price_min as i128) / self.tick_size as i128;
        (span + 1) as usize
    }

    fn validate(&self, max_orders: usize) -> Result<(), ConfigError> {
        let symbol = || self.symbol.clone();
        if self.tick_size <= 0 {
            return Err(ConfigError::InvalidTickSize {
                symbol: symbol(),
                tick_size: self.tick_size,
            });
        }
        if self.lot_size == 0 {
            return Err(ConfigError::InvalidLotSize { symbol: symbol() });
        }
        let max_quantity = self.effective_max_quantity();
        if max_quantity == 0 || max_quantity % self.lot_size != 0 {
            return Err(ConfigError::InvalidMaxQuantity { symbol: symbol() });
        }
        if max_quantity.checked_mul(max_orders as u64).is_none() {
            return Err(ConfigError::QuantityOverflow { symbol: symbol() });
        }
        let band_error = |why| ConfigError::InvalidBand {
            symbol: symbol(),
            price_min: self.price_min,
            price_max: self.price_max,
            why,
        };
        if self.price_min > self.price_max {
            return Err(band_error("price_min is above price_max"));
        }
        if self.price_min.rem_euclid(self.tick_size) != 0 || self.price_max.rem_euclid(self.tick_size) != 0 {
            return Err(band_error("band edges must be multiples of tick_size"));
        }
        let ticks = (self.price_max as i128 - self.price_min as i128) / self.tick_size as i128;
        if ticks + 1 > MAX_LEVELS_PER_BOOK as i128 {
            return Err(band_error("band spans too many ticks"));
        }
        Ok(())
    }
}

impl EngineConfig {
    /// Checks every rule that [`Engine::new`](crate::Engine::new) relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.instruments.is_empty() {
            return Err(ConfigError::NoInstruments);
        }
        if self.max_orders == 0 || self.max_orders > MAX_POOL_CAPACITY {
            return Err(ConfigError::InvalidMaxOrders(self.max_orders));
        }
        for (i, instrument) in self.instruments.iter().enumerate() {
            instrument.validate(self.max_orders)?;
            let earlier = &self.instruments[..i];
            if earlier.iter().any(|other| other.id == instrument.id) {
                return Err(ConfigError::DuplicateInstrumentId(instrument.id));
            }
            if earlier.iter().any(|other| other.symbol == instrument.symbol) {
                return Err(ConfigError::DuplicateSymbol(instrument.symbol.clone()));
            }
        }
        Ok(())
    }

    /// A small, valid configuration for tests, benchmarks and demos.
    ///
    /// | id | symbol   | tick | lot | band (price units)   |
    /// |----|----------|------|-----|----------------------|
    /// | 1  | PGN-USD  | 1    | 1   | 1 ..= 100_000        |
    /// | 2  | FALC-USD | 5    | 10  | 5 ..= 500_000        |
    /// | 3  | KSTL-USD | 25   | 100 | 1_000 ..= 1_000_000  |
    ///
    /// `max_orders` is 1 << 20.
    pub fn sample() -> EngineConfig {
        let instrument = |symbol: &str, id, tick_size, lot_size, price_min, price_max| InstrumentConfig {
            symbol: symbol.to_string(),
            id,
            tick_size,
            lot_size,
            price_min,
            price_max,
            max_quantity: DEFAULT_MAX_QUANTITY / lot_size * lot_size,
        };
        EngineConfig {
            instruments: vec![
                instrument("PGN-USD", 1, 1, 1, 1, 100_000),
                instrument("FALC-USD", 2, 5, 10, 5, 500_000),
                instrument("KSTL-USD", 3, 25, 100, 1_000, 1_000_000),
            ],
            max_orders: DEFAULT_MAX_ORDERS,
        }
    }
}
