//! Engine snapshots: the whole engine state as bytes, and back.
//!
//! Why this shape: the journal can only be compacted if the state it
//! rebuilds can be saved at a sequence number and loaded again. What makes
//! the engine's future behaviour is the resting orders in priority order
//! (price, then time within a level), their attributes, and the match
//! counter; pool slots and id-index positions are internal and not
//! observable, so the snapshot stores orders side by side in priority
//! order and [`Engine::restore`] re-queues them at the back of their levels
//! in that order, which rebuilds the same FIFOs, the same best levels and
//! therefore the same reports for every later command.
//!
//! The snapshot also records the instrument rules and the pool capacity it
//! was taken under: restoring into an engine built from a different config
//! would change behaviour (price bands, `PoolFull`), so it is refused.
//!
//! Layout (all integers little-endian):
//!
//! | field | bytes |
//! |---|---|
//! | magic [`SNAPSHOT_MAGIC`] | 8 |
//! | version ([`SNAPSHOT_VERSION`]) | u32 |
//! | instrument count | u32 |
//! | per instrument: id u32, tick i64, lot u64, price_min i64, price_max i64, max_quantity u64 | 44 |
//! | max_orders | u64 |
//! | next match id | u64 |
//! | per instrument in config order, `Buy` then `Sell`: order count u64, then per order session u32, order_id u64, price i64, quantity u64, leaves u64, stp u8, post_only u8 | 38 per order |
//!
//! Decoding is total: any byte string gives an engine or a
//! [`SnapshotError`], never a panic, and a restored engine passes
//! [`Engine::check_invariants`].

use crate::command::{SelfTradePrevention, Side};
use crate::config::{ConfigError, EngineConfig};
use crate::engine::Engine;
use crate::invariants::InvariantViolation;
use crate::order_pool::{Order, NIL};
use thiserror::Error;

/// First bytes of every engine snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"PGNENGSN";

/// The layout version [`Engine::snapshot`] writes and [`Engine::restore`] reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Bytes of one order in the snapshot.
const ORDER_LEN: usize = 4 + 8 + 8 + 8 + 8 + 1 + 1;

/// Why bytes could not be restored into an engine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// The bytes do not start with [`SNAPSHOT_MAGIC`].
    #[error("not an engine snapshot (bad magic)")]
    BadMagic,
    /// A layout version this build does not read.
    #[error("engine snapshot version {0} is not supported (this build reads {SNAPSHOT_VERSION})")]
    UnsupportedVersion(u32),
    /// The bytes end before the snapshot does.
    #[error("engine snapshot truncated at byte {at}: {needed} more bytes needed")]
    Truncated {
        /// Offset where the missing field starts.
        at: usize,
        /// Bytes that field needs.
        needed: usize,
    },
    /// Bytes follow the end of the snapshot.
    #[error("{0} unexpected bytes after the engine snapshot")]
    TrailingBytes(usize),
    /// The config given to restore into is itself invalid.
    #[error("invalid engine config: {0}")]
    Config(#[from] ConfigError),
    /// The snapshot was taken under other instrument rules or pool size.
    #[error("engine snapshot was taken under a different config: {0}")]
    ConfigMismatch(&'static str),
    /// The match counter is 0 or exhausted.
    #[error("engine snapshot holds an invalid next match id {0}")]
    InvalidMatchId(u64),
    /// More resting orders than the pool holds.
    #[error("engine snapshot holds more resting orders than max_orders ({0})")]
    TooManyOrders(usize),
    /// An order no engine could hold in this config.
    #[error("engine snapshot: invalid order (session {session}, order {order_id}) on instrument {instrument}: {why}")]
    InvalidOrder {
        /// Instrument of the side it was listed under.
        instrument: u32,
        /// Owning session.
        session: u32,
        /// Client order id.
        order_id: u64,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// Two live orders with the same `(session, order id)`.
    #[error("engine snapshot lists order (session {0}, order {1}) twice")]
    DuplicateOrder(u32, u64),
    /// The orders restore into a state the engine could not be in (a
    /// crossed book, for instance).
    #[error("engine snapshot restores an inconsistent engine: {0}")]
    Inconsistent(#[from] InvariantViolation),
}

/// Reads little-endian fields off the front of the snapshot.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let rest = &self.bytes[self.at..];
        if rest.len() < n {
            return Err(SnapshotError::Truncated {
                at: self.at,
                needed: n - rest.len(),
            });
        }
        self.at += n;
        Ok(&rest[..n])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
}

fn stp_from_code(code: u8) -> Option<SelfTradePrevention> {
    match code {
        0 => Some(SelfTradePrevention::None),
        1 => Some(SelfTradePrevention::CancelResting),
        2 => Some(SelfTradePrevention::CancelIncoming),
        _ => None,
    }
}

impl Engine {
    /// The engine's whole state as a new byte vector (see the module docs
    /// for the layout). O(resting orders); allocates: a control-plane
    /// operation, never for the hot path.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_snapshot(&mut out);
        out
    }

    /// Appends the engine's state to `out` (same bytes as [`Engine::snapshot`]).
    pub fn write_snapshot(&self, out: &mut Vec<u8>) {
        out.reserve(64 + self.books.len() * 64 + self.pool.live() * ORDER_LEN);
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.books.len() as u32).to_le_bytes());
        for book in &self.books {
            out.extend_from_slice(&book.instrument.to_le_bytes());
            out.extend_from_slice(&book.tick_size.to_le_bytes());
            out.extend_from_slice(&book.lot_size.to_le_bytes());
            out.extend_from_slice(&book.price_min.to_le_bytes());
            out.extend_from_slice(&book.price_max.to_le_bytes());
            out.extend_from_slice(&book.max_quantity.to_le_bytes());
        }
        out.extend_from_slice(&(self.pool.capacity() as u64).to_le_bytes());
        out.extend_from_slice(&self.next_match_id.to_le_bytes());
        for book in &self.books {
            for side in [Side::Buy, Side::Sell] {
                let count_at = out.len();
                out.extend_from_slice(&0u64.to_le_bytes());
                let mut count = 0u64;
                for order in self.resting_orders(book.instrument, side) {
                    out.extend_from_slice(&order.session.to_le_bytes());
                    out.extend_from_slice(&order.order_id.to_le_bytes());
                    out.extend_from_slice(&order.price.to_le_bytes());
                    out.extend_from_slice(&order.quantity.to_le_bytes());
                    out.extend_from_slice(&order.leaves.to_le_bytes());
                    out.push(order.stp as u8);
                    out.push(u8::from(order.post_only));
                    count += 1;
                }
                out[count_at..count_at + 8].copy_from_slice(&count.to_le_bytes());
            }
        }
    }

    /// An engine built from `config` holding the state `bytes` describe
    /// (written by [`Engine::snapshot`] under the same config). The result
    /// has the same [`Engine::state_hash`] as the engine snapshotted and
    /// answers every later command exactly as it would have. Any other
    /// input (truncated, corrupt, another version, another config) is a
    /// [`SnapshotError`]; never a panic.
    pub fn restore(config: &EngineConfig, bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let mut engine = Engine::new(config)?;
        let mut r = Reader { bytes, at: 0 };
        if r.array::<8>()? != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = r.u32()?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        engine.check_config(&mut r)?;
        let next_match_id = r.u64()?;
        if next_match_id == 0 || next_match_id == u64::MAX {
            return Err(SnapshotError::InvalidMatchId(next_match_id));
        }
        engine.next_match_id = next_match_id;
        for book_index in 0..engine.books.len() {
            for side in [Side::Buy, Side::Sell] {
                engine.restore_side(&mut r, book_index, side)?;
            }
        }
        if r.remaining() > 0 {
            return Err(SnapshotError::TrailingBytes(r.remaining()));
        }
        engine.check_invariants()?;
        Ok(engine)
    }

    /// Reads the recorded instrument rules and pool size; they must be the
    /// ones this engine was built with.
    fn check_config(&self, r: &mut Reader<'_>) -> Result<(), SnapshotError> {
        let count = r.u32()?;
        if count as usize != self.books.len() {
            return Err(SnapshotError::ConfigMismatch("number of instruments"));
        }
        for book in &self.books {
            if r.u32()? != book.instrument {
                return Err(SnapshotError::ConfigMismatch("instrument ids or their order"));
            }
            let rules = (r.i64()?, r.u64()?, r.i64()?, r.i64()?, r.u64()?);
            let ours = (
                book.tick_size,
                book.lot_size,
                book.price_min,
                book.price_max,
                book.max_quantity,
            );
            if rules != ours {
                return Err(SnapshotError::ConfigMismatch(
                    "tick size, lot size, price band or max quantity",
                ));
            }
        }
        if r.u64()? != self.pool.capacity() as u64 {
            return Err(SnapshotError::ConfigMismatch("max_orders"));
        }
        Ok(())
    }

    /// Reads one side's orders (priority order) and queues them.
    fn restore_side(
        &mut self,
        r: &mut Reader<'_>,
        book_index: usize,
        side: Side,
    ) -> Result<(), SnapshotError> {
        let count = r.u64()?;
        let free = self.pool.capacity() - self.pool.live();
        if count > free as u64 {
            return Err(SnapshotError::TooManyOrders(self.pool.capacity()));
        }
        if count.saturating_mul(ORDER_LEN as u64) > r.remaining() as u64 {
            return Err(SnapshotError::Truncated {
                at: r.at,
                needed: count as usize * ORDER_LEN - r.remaining(),
            });
        }
        let instrument = self.books[book_index].instrument;
        let mut previous_level = NIL;
        for _ in 0..count {
            let session = r.u32()?;
            let order_id = r.u64()?;
            let price = r.i64()?;
            let quantity = r.u64()?;
            let leaves = r.u64()?;
            let stp = r.u8()?;
            let post_only = r.u8()?;
            let invalid = |why| SnapshotError::InvalidOrder {
                instrument,
                session,
                order_id,
                why,
            };
            let book = &self.books[book_index];
            let stp = stp_from_code(stp).ok_or(invalid("unknown self-trade prevention code"))?;
            let post_only = match post_only {
                0 => false,
                1 => true,
                _ => return Err(invalid("post-only flag is neither 0 nor 1")),
            };
            let level = book
                .level_of(price)
                .map_err(|_| invalid("price off the tick grid or outside the band"))?;
            book.check_quantity(quantity)
                .map_err(|_| invalid("quantity zero, off lot or too large"))?;
            if leaves == 0 || leaves > quantity || leaves % book.lot_size != 0 {
                return Err(invalid("open quantity zero, above the total or off lot"));
            }
            if previous_level != NIL && !book.side(side).at_least_as_good(previous_level, level) {
                return Err(invalid("orders not in priority order"));
            }
            previous_level = level;
            if self.index.get(session, order_id).is_some() {
                return Err(SnapshotError::DuplicateOrder(session, order_id));
            }
            let order = Order {
                order_id,
                quantity,
                leaves,
                session,
                book: book_index as u32,
                level,
                prev: NIL,
                next: NIL,
                side,
                stp,
                post_only,
            };
            let slot = self
                .pool
                .insert(order)
                .ok_or(SnapshotError::TooManyOrders(self.pool.capacity()))?;
            self.index.insert(session, order_id, slot);
            self.books[book_index]
                .side_mut(side)
                .push_back(&mut self.pool, slot);
        }
        Ok(())
    }
}
