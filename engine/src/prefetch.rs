//! A hint to the CPU that a cache line will be read soon.
//!
//! The engine's per-command cost is dominated by one dependent load: the
//! order-index entry a command's `(session, order id)` hashes to, a random
//! line in a table sized for the pool's capacity. The caller usually knows
//! the next commands (the sequencer drains its input rings in bursts), so
//! it can ask for their lines while the current command runs, and the
//! misses overlap instead of following one another.
//!
//! `unsafe` because stable Rust has no safe prefetch; the crate's only other
//! `unsafe` is the huge-page buffer (`huge_page_vec`).

/// Asks for the cache lines holding `value` (its first and last byte: at
/// most two lines for a value of up to 64 bytes) to be brought towards the
/// core. Never faults, never changes what a later read returns; a no-op on
/// targets without a prefetch instruction.
#[inline(always)]
pub(crate) fn prefetch_read<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let first = (value as *const T).cast::<i8>();
        let last = first.wrapping_add(std::mem::size_of::<T>().saturating_sub(1));
        #[allow(unsafe_code)]
        // SAFETY: PREFETCHT0 is a hint: it performs no architectural memory
        // access and cannot fault whatever the address; both addresses lie
        // inside a live reference anyway. SSE, which provides the
        // instruction, is part of the x86_64 baseline.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(first);
            if (first as usize) >> 6 != (last as usize) >> 6 {
                _mm_prefetch::<_MM_HINT_T0>(last);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
