//! The same-run memory floor: what one random cache-line read costs over a
//! working set the size of the engine's.
//!
//! Why: an engine operation's tail is set mostly by cache misses into its
//! book and order tables, so "is p99.9 good" depends on the machine's
//! memory at that moment. Timing, in the same run and with the same timer,
//! one dependent read per sample over a random cyclic chain through a
//! buffer the engine's size gives the figure no engine of that size can
//! beat; the engine is judged against it. The chain visits every line once
//! per cycle in a random order (Sattolo's algorithm), so the prefetchers
//! cannot follow, and each read's address comes from the previous read.

use crate::timer::Timer;
use hdrhistogram::Histogram;
use peregrine_engine::HugePageVec;
use std::hint::black_box;

/// Bytes per cache line.
pub const LINE: usize = 64;
const WORDS_PER_LINE: usize = LINE / 8;

/// A random cyclic chain of cache lines: line `i`'s first word holds the
/// index of the next line. The buffer is allocated as the engine's tables
/// are (on huge pages where the kernel offers them), so that the floor and
/// the engine pay the same address translation.
pub struct Chain {
    words: HugePageVec<u64>,
    lines: usize,
}

impl Chain {
    /// A chain over `bytes` (rounded up to whole lines, at least two),
    /// shuffled from `seed`. Every line is written here, so the buffer is
    /// resident before anything is timed.
    pub fn new(bytes: usize, seed: u64) -> Chain {
        let lines = bytes.div_ceil(LINE).max(2);
        let mut order: Vec<u64> = (0..lines as u64).collect();
        // Sattolo: one cycle through all lines.
        let mut x = seed | 1;
        for i in (1..lines).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let j = (x % i as u64) as usize;
            order.swap(i, j);
        }
        let mut words = HugePageVec::from_elem(0u64, lines * WORDS_PER_LINE);
        for k in 0..lines {
            let from = order[k] as usize;
            let to = order[(k + 1) % lines];
            words[from * WORDS_PER_LINE] = to;
        }
        Chain { words, lines }
    }

    /// Lines in the chain.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Bytes in the chain.
    pub fn bytes(&self) -> usize {
        self.lines * LINE
    }

    /// The line after `line`.
    #[inline(always)]
    pub fn next(&self, line: u64) -> u64 {
        self.words[line as usize * WORDS_PER_LINE]
    }

    /// Walks the whole chain once, untimed (brings what fits into cache,
    /// as the engine's setup does for its tables).
    pub fn warm(&self) -> u64 {
        let mut p = 0;
        for _ in 0..self.lines {
            p = self.next(p);
        }
        black_box(p)
    }

    /// Times `samples` dependent reads, one per sample, with `timer`,
    /// subtracting `overhead_ns` (the empty pair's cost) from each and
    /// recording ns (at least 1) into `hist`.
    pub fn time_reads(&self, timer: &Timer, samples: usize, overhead_ns: f64, hist: &mut Histogram<u64>) {
        let mut p = 0u64;
        for _ in 0..samples {
            let t0 = timer.now();
            p = self.next(black_box(p));
            let t1 = timer.now();
            let ns = (timer.ns(t1.wrapping_sub(t0)) - overhead_ns).max(1.0);
            hist.saturating_record(ns as u64);
        }
        black_box(p);
    }
}

/// This process's resident set, bytes (Linux `/proc/self/statm`; None
/// elsewhere).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_one_cycle_through_every_line() {
        for lines in [2usize, 3, 17, 1000] {
            let c = Chain::new(lines * LINE, 42);
            let mut seen = vec![false; c.lines()];
            let mut p = 0u64;
            for _ in 0..lines {
                assert!(!seen[p as usize], "line {p} visited twice");
                seen[p as usize] = true;
                p = c.next(p);
            }
            assert_eq!(p, 0, "back at the start after {lines} steps");
            assert!(seen.iter().all(|&s| s));
        }
    }

    #[test]
    fn timing_reads_records_every_sample() {
        let c = Chain::new(1 << 16, 1);
        let t = Timer::instant();
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
        c.time_reads(&t, 1000, 0.0, &mut h);
        assert_eq!(h.len(), 1000);
        assert!(resident_bytes().is_some_and(|b| b > 0));
    }
}
