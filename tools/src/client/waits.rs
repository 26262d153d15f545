//! Where the simulator waited: how often a receive poll found nothing and
//! how often a throughput round could send nothing because its window was
//! full.
//!
//! Why: a closed-loop throughput run is bounded by whichever side is
//! slower, and the answered-messages figure alone does not say which. A
//! client that polls empty and finds its window full most rounds is
//! waiting on the server (messages queue there); one that rarely does is
//! the bound itself, and a server compared with a raw echo under such a
//! client cannot show more than the client allows. Counting costs a few
//! increments per round.

/// Counts kept by the simulator's sending loop (drain excluded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientWaits {
    /// Receive polls made.
    pub polls: u64,
    /// Of which found nothing to receive.
    pub empty_polls: u64,
    /// Throughput mode: rounds of the sending loop.
    pub rounds: u64,
    /// Of which could send nothing: the window was full.
    pub window_full_rounds: u64,
}

impl ClientWaits {
    /// Counts one receive poll that got `datagrams`.
    #[inline]
    pub fn poll(&mut self, datagrams: usize) {
        self.polls += 1;
        self.empty_polls += u64::from(datagrams == 0);
    }

    /// Counts one throughput round that sent `packets`.
    #[inline]
    pub fn round(&mut self, packets: usize) {
        self.rounds += 1;
        self.window_full_rounds += u64::from(packets == 0);
    }

    /// Share of receive polls that found nothing, 0..=1 (0 without polls).
    pub fn empty_share(&self) -> f64 {
        share(self.empty_polls, self.polls)
    }

    /// Share of throughput rounds with a full window, 0..=1 (0 without
    /// rounds).
    pub fn window_full_share(&self) -> f64 {
        share(self.window_full_rounds, self.rounds)
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_empty_polls_and_full_windows() {
        let mut w = ClientWaits::default();
        assert_eq!((w.empty_share(), w.window_full_share()), (0.0, 0.0));
        for got in [0, 3, 0, 0] {
            w.poll(got);
        }
        w.round(0);
        w.round(32);
        assert_eq!(
            (w.polls, w.empty_polls, w.rounds, w.window_full_rounds),
            (4, 3, 2, 1)
        );
        assert_eq!((w.empty_share(), w.window_full_share()), (0.75, 0.5));
    }
}
