//! What a polling loop does when a round found no work.
//!
//! Busy-spinning is the production default: the thread never sleeps, so the
//! next packet is seen within one loop iteration. The other strategies trade
//! latency for CPU on shared or small machines.

use std::time::Duration;

/// Called once per loop iteration with the amount of work that iteration did.
pub trait IdleStrategy {
    /// Work was done (`work > 0`): reset; none: back off per the strategy.
    fn idle(&mut self, work: usize);
    /// Iterations that found work.
    fn busy_loops(&self) -> u64;
    /// Iterations that found none.
    fn idle_loops(&self) -> u64;
}

/// Which strategy, as named on the command line and in the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdleKind {
    /// Spin with a CPU pause hint; never yields.
    #[default]
    Spin,
    /// Spin a while, then `sched_yield` on every idle iteration.
    Yield,
    /// Spin, then yield, then sleep with doubling duration up to 1 ms.
    Backoff,
}

impl std::str::FromStr for IdleKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "spin" => Ok(IdleKind::Spin),
            "yield" => Ok(IdleKind::Yield),
            "backoff" => Ok(IdleKind::Backoff),
            other => Err(format!("unknown idle strategy {other:?} (spin, yield, backoff)")),
        }
    }
}

/// The strategy chosen by an [`IdleKind`], with counters.
#[derive(Debug)]
pub struct Idler {
    kind: IdleKind,
    streak: u32,
    sleep: Duration,
    busy: u64,
    idle: u64,
}

const SPINS_BEFORE_YIELD: u32 = 100;
const YIELDS_BEFORE_SLEEP: u32 = 200;
const MIN_SLEEP: Duration = Duration::from_micros(1);
const MAX_SLEEP: Duration = Duration::from_millis(1);

impl Idler {
    /// A fresh strategy of `kind`.
    pub fn new(kind: IdleKind) -> Self {
        Idler {
            kind,
            streak: 0,
            sleep: MIN_SLEEP,
            busy: 0,
            idle: 0,
        }
    }
}

impl IdleStrategy for Idler {
    #[inline]
    fn idle(&mut self, work: usize) {
        if work > 0 {
            self.busy += 1;
            self.streak = 0;
            self.sleep = MIN_SLEEP;
            return;
        }
        self.idle += 1;
        self.streak = self.streak.saturating_add(1);
        match self.kind {
            IdleKind::Spin => std::hint::spin_loop(),
            IdleKind::Yield => {
                if self.streak > SPINS_BEFORE_YIELD {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            IdleKind::Backoff => {
                if self.streak <= SPINS_BEFORE_YIELD {
                    std::hint::spin_loop();
                } else if self.streak <= SPINS_BEFORE_YIELD + YIELDS_BEFORE_SLEEP {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(self.sleep);
                    self.sleep = (self.sleep * 2).min(MAX_SLEEP);
                }
            }
        }
    }

    fn busy_loops(&self) -> u64 {
        self.busy
    }

    fn idle_loops(&self) -> u64 {
        self.idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_parses() {
        let mut i = Idler::new("backoff".parse().unwrap());
        for w in [1, 0, 0, 3] {
            i.idle(w);
        }
        assert_eq!((i.busy_loops(), i.idle_loops()), (2, 2));
        assert!("nap".parse::<IdleKind>().is_err());
    }

    #[test]
    fn backoff_reaches_sleep_and_resets() {
        let mut i = Idler::new(IdleKind::Backoff);
        for _ in 0..(SPINS_BEFORE_YIELD + YIELDS_BEFORE_SLEEP + 5) {
            i.idle(0);
        }
        assert!(i.sleep > MIN_SLEEP, "must have started sleeping");
        i.idle(1);
        assert_eq!(i.sleep, MIN_SLEEP);
    }
}
