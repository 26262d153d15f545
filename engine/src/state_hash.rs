//! A deterministic fingerprint of the whole engine state.
//!
//! Replaying the same sequenced stream must rebuild the same state; comparing
//! one `u64` proves it cheaply. The hash is FNV-1a (64-bit) over a fixed,
//! documented serialisation, so it is stable across runs, processes, machines
//! and Rust versions, and another implementation can reproduce it.

use crate::command::Side;
use crate::engine::Engine;

/// 64-bit FNV-1a over little-endian `u64` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateHasher {
    state: u64,
}

impl Default for StateHasher {
    fn default() -> Self {
        StateHasher::new()
    }
}

impl StateHasher {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A hasher in its initial state.
    pub const fn new() -> StateHasher {
        StateHasher {
            state: Self::OFFSET_BASIS,
        }
    }

    /// Feeds the 8 little-endian bytes of `value`.
    pub fn write_u64(&mut self, value: u64) {
        for byte in value.to_le_bytes() {
            self.state ^= u64::from(byte);
            self.state = self.state.wrapping_mul(Self::PRIME);
        }
    }

    /// The hash of everything fed so far.
    pub fn finish(&self) -> u64 {
        self.state
    }
}

/// Marks the end of one side of one book in the serialisation.
pub const SIDE_END: u64 = u64::MAX;

impl Engine {
    /// Deterministic hash of all books and counters.
    ///
    /// Serialisation fed to [`StateHasher`], as `u64` words: for each
    /// instrument in config order, its id, then for `Buy` then `Sell` every
    /// resting order in priority order (best price first, then time) as
    /// `session, order_id, side (1 buy / 2 sell), price (as two's complement),
    /// quantity, leaves, stp code, post_only (0/1)`, then [`SIDE_END`]; finally
    /// the next match id. O(resting orders): not for the hot path.
    pub fn state_hash(&self) -> u64 {
        let mut hasher = StateHasher::new();
        for instrument in self.instruments() {
            hasher.write_u64(u64::from(instrument));
            for side in [Side::Buy, Side::Sell] {
                for order in self.resting_orders(instrument, side) {
                    hasher.write_u64(u64::from(order.session));
                    hasher.write_u64(order.order_id);
                    hasher.write_u64(order.side as u64);
                    hasher.write_u64(order.price as u64);
                    hasher.write_u64(order.quantity);
                    hasher.write_u64(order.leaves);
                    hasher.write_u64(order.stp as u64);
                    hasher.write_u64(u64::from(order.post_only));
                }
                hasher.write_u64(SIDE_END);
            }
        }
        hasher.write_u64(self.next_match_id);
        hasher.finish()
    }
}
