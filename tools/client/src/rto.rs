//! The client's retransmission timer, one for all its sessions: a fixed
//! base timeout, doubled each time a session's oldest message times out
//! again after being resent, back to the base as soon as any session's
//! oldest unanswered message is answered.
//!
//! Why not a timeout estimated from round trips (RFC 6298): the server
//! answers a session's messages strictly in order and holds those that
//! arrive behind a gap, so the round trip of a message held behind a lost
//! one includes the whole recovery of that loss. Such samples inflate the
//! estimate to tens of milliseconds at a 5% loss rate, and recovery then
//! waits that long. Only the oldest unanswered message is ever resent on a
//! timeout (the server names any other missing one), so a short fixed
//! timeout cannot flood the server; the back-off covers a server that is
//! really slow.

/// Retransmission timeout, ns.
#[derive(Clone, Copy, Debug)]
pub struct Rto {
    base_ns: u64,
    ceiling_ns: u64,
    current_ns: u64,
}

impl Rto {
    /// Starts at `base_ns`; backs off up to `ceiling_ns`.
    pub fn new(base_ns: u64, ceiling_ns: u64) -> Rto {
        Rto {
            base_ns,
            ceiling_ns: ceiling_ns.max(base_ns),
            current_ns: base_ns,
        }
    }

    /// The timeout now.
    pub fn current_ns(&self) -> u64 {
        self.current_ns
    }

    /// The oldest message's resend timed out too: wait twice as long.
    pub fn back_off(&mut self) {
        self.current_ns = self.current_ns.saturating_mul(2).min(self.ceiling_ns);
    }

    /// The oldest unanswered message was answered: back to the base.
    pub fn reset(&mut self) {
        self.current_ns = self.base_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_to_the_ceiling_and_resets_on_progress() {
        let ms = 1_000_000;
        let mut r = Rto::new(5 * ms, 1000 * ms);
        assert_eq!(r.current_ns(), 5 * ms);
        r.back_off();
        r.back_off();
        assert_eq!(r.current_ns(), 20 * ms);
        for _ in 0..20 {
            r.back_off();
        }
        assert_eq!(r.current_ns(), 1000 * ms, "capped");
        r.reset();
        assert_eq!(r.current_ns(), 5 * ms);
    }
}
