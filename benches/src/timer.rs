//! A cheap timestamp for timing one short operation at a time.
//!
//! Why not `Instant`: an `Instant` pair costs about 18-20 ns (two vDSO
//! clock reads), as much as the operations the engine bench times, and its
//! cost varies with what the vDSO does. On x86_64 the time stamp counter
//! read directly is a few ns; each read is fenced with `lfence` on both
//! sides, so the timed work can neither start before the first read nor
//! still be running at the second (loads included). The counter's rate is
//! calibrated against `Instant` once (about 100 ms) at start; machines
//! whose counter is not invariant are reported as such. Elsewhere the
//! timer falls back to `Instant` (ticks are ns).

use std::time::{Duration, Instant};

/// What the ticks come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// The x86_64 time stamp counter, `lfence`-fenced.
    Tsc,
    /// `Instant` (ticks are nanoseconds).
    Instant,
}

impl TimerKind {
    /// `rdtsc` or `Instant`, for reports.
    pub fn name(self) -> &'static str {
        match self {
            TimerKind::Tsc => "rdtsc",
            TimerKind::Instant => "Instant",
        }
    }
}

/// A calibrated tick source.
#[derive(Clone, Copy, Debug)]
pub struct Timer {
    kind: TimerKind,
    /// Nanoseconds per tick.
    ns_per_tick: f64,
    origin: Instant,
}

impl Timer {
    /// The best timer here: the time stamp counter on x86_64, calibrated
    /// against `Instant` over `calibration` (the call takes that long),
    /// else `Instant`.
    pub fn calibrated(calibration: Duration) -> Timer {
        let origin = Instant::now();
        if cfg!(target_arch = "x86_64") {
            let (i0, t0) = (Instant::now(), tsc());
            while i0.elapsed() < calibration {
                std::hint::spin_loop();
            }
            let (t1, i1) = (tsc(), Instant::now());
            let ticks = t1.wrapping_sub(t0);
            let ns = (i1 - i0).as_nanos() as f64;
            if ticks > 0 && ns > 0.0 {
                return Timer {
                    kind: TimerKind::Tsc,
                    ns_per_tick: ns / ticks as f64,
                    origin,
                };
            }
        }
        Timer::instant()
    }

    /// The `Instant` fallback.
    pub fn instant() -> Timer {
        Timer {
            kind: TimerKind::Instant,
            ns_per_tick: 1.0,
            origin: Instant::now(),
        }
    }

    /// What the ticks come from.
    pub fn kind(&self) -> TimerKind {
        self.kind
    }

    /// Ticks per second (the calibrated counter rate), Hz.
    pub fn ticks_per_s(&self) -> f64 {
        1e9 / self.ns_per_tick
    }

    /// A timestamp, in ticks (only differences mean anything).
    #[inline(always)]
    pub fn now(&self) -> u64 {
        match self.kind {
            TimerKind::Tsc => tsc(),
            TimerKind::Instant => self.origin.elapsed().as_nanos() as u64,
        }
    }

    /// `ticks` in nanoseconds.
    #[inline]
    pub fn ns(&self, ticks: u64) -> f64 {
        ticks as f64 * self.ns_per_tick
    }

    /// The median cost of an empty timestamp pair (`now(); now()`) over
    /// `samples` pairs, ns.
    pub fn pair_cost_ns(&self, samples: usize) -> f64 {
        let mut v: Vec<u64> = (0..samples.max(1))
            .map(|_| {
                let t0 = self.now();
                let t1 = self.now();
                t1.wrapping_sub(t0)
            })
            .collect();
        v.sort_unstable();
        self.ns(v[v.len() / 2])
    }
}

/// The median cost of an empty `Instant` pair over `samples` pairs, ns
/// (what the bench used to pay per sample, for comparison).
pub fn instant_pair_cost_ns(samples: usize) -> u64 {
    let mut v: Vec<u64> = (0..samples.max(1))
        .map(|_| {
            let t0 = Instant::now();
            let t1 = Instant::now();
            (t1 - t0).as_nanos() as u64
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

/// True when the CPU says its time stamp counter runs at a constant rate
/// through frequency changes and idle states (Linux `/proc/cpuinfo` flags
/// `constant_tsc` and `nonstop_tsc`); None when it cannot tell.
pub fn tsc_is_invariant() -> Option<bool> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags"))?;
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    Some(has("constant_tsc") && has("nonstop_tsc"))
}

/// The time stamp counter, read between two `lfence`s.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
fn tsc() -> u64 {
    use core::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: `lfence` and `rdtsc` are part of x86_64's baseline (SSE2 is
    // always present there), read no memory and write only registers; the
    // first fence keeps `rdtsc` from running before earlier instructions
    // (the timed work) finish, the second keeps later ones from starting
    // before it.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

/// No time stamp counter: never called ([`Timer::calibrated`] picks
/// `Instant`).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn tsc() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calibrated_timer_agrees_with_instant() {
        let t = Timer::calibrated(Duration::from_millis(20));
        let (a, i0) = (t.now(), Instant::now());
        std::thread::sleep(Duration::from_millis(30));
        let (b, i1) = (t.now(), Instant::now());
        let ns = t.ns(b - a);
        let real = (i1 - i0).as_nanos() as f64;
        assert!((ns - real).abs() < real * 0.1 + 200_000.0, "{ns} vs {real}");
        assert!(t.pair_cost_ns(1000) < 10_000.0);
    }
}
