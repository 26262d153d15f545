//! Sizing and timing shared by every gateway, whatever its transport.
//!
//! Kept apart from the transports so the UDP and TCP gateways (and the
//! session core they share) depend on one neutral module, not on each
//! other.

use crate::directory::LoginPolicy;
use crate::leadership::Leadership;
use crate::session::RateLimit;
use peregrine_netio::clock;
use std::sync::Arc;
use std::time::Duration;

/// Sizing of a gateway, and the node's leadership it obeys.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// Packets per receive burst.
    pub rx_burst: usize,
    /// Reply packets per transmit burst.
    pub tx_burst: usize,
    /// Most replies drained from the output ring per poll.
    pub reply_burst: usize,
    /// Send a heartbeat to a session we have sent nothing for this long.
    pub heartbeat_interval: Duration,
    /// A client silent this long is gone: TCP connections are closed, UDP
    /// sessions get no more heartbeats (replies still go out).
    pub idle_timeout: Duration,
    /// Per-session message rate limit (off by default).
    pub rate_limit: RateLimit,
    /// Replies kept per session to answer retransmitted messages with
    /// their original replies (memory: 100 bytes each, per session).
    pub reply_log_depth: usize,
    /// UDP: messages per session held when they arrive ahead of a gap
    /// (memory: ~108 bytes each, per session); 0 rejects them instead.
    pub reorder_window: usize,
    /// A second login to a session that is live elsewhere: refused or
    /// taking over.
    pub login_policy: LoginPolicy,
    /// UDP: once the input ring has been full this long, new messages get
    /// a Busy reject instead of waiting in the socket buffer.
    pub busy_after: Duration,
    /// UDP: a gap still open this long after it was reported is reported
    /// again (the resend may have been lost too).
    pub gap_report_repeat: Duration,
    /// The node's leadership, shared by all of its gateways: while it does
    /// not serve, every login is refused with a hint naming the leader.
    /// `None`: a single node, always serving.
    pub leadership: Option<Arc<Leadership>>,
    /// Record each reply's receive-to-transmit latency (default true).
    /// False turns recording off entirely: no clock read and no histogram
    /// update on the transmit path, so the latency section of the counters
    /// file stays at zero (for measuring what recording costs).
    pub latency_histograms: bool,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            rx_burst: 32,
            tx_burst: 64,
            reply_burst: 1024,
            heartbeat_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(15),
            rate_limit: RateLimit::default(),
            reply_log_depth: 8192,
            reorder_window: 8192,
            login_policy: LoginPolicy::Reject,
            busy_after: Duration::from_millis(5),
            gap_report_repeat: Duration::from_nanos(GAP_REPORT_REPEAT_NS),
            leadership: None,
            latency_histograms: true,
        }
    }
}

/// How often gateways look at the clock for heartbeats and timeouts (in
/// `poll_tx` calls; the clock is read only then). 64: a few microseconds
/// when spinning (a vDSO clock read is ~20 ns), and at most 64 ms with the
/// `backoff` idle strategy, whose sleeps grow to 1 ms (at 1,024 a
/// backing-off gateway sent heartbeats a second late).
pub(crate) const TIMER_POLLS: u32 = 64;
/// Timer resolution.
pub(crate) const TIMER_TICK_NS: u64 = 50_000_000;
/// Default of [`GatewayOptions::gap_report_repeat`], ns: a gap still open
/// this long after it was reported is reported again.
pub const GAP_REPORT_REPEAT_NS: u64 = 2_000_000;

/// When the next timer check is due; one per gateway.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    polls: u32,
    next_ns: u64,
}

impl Timer {
    /// Counts a poll; every `TIMER_POLLS` polls reads the clock and returns
    /// it when a tick is due.
    #[inline]
    pub(crate) fn due(&mut self) -> Option<u64> {
        self.polls += 1;
        if self.polls < TIMER_POLLS {
            return None;
        }
        self.polls = 0;
        let now = clock::now_ns();
        if now < self.next_ns {
            return None;
        }
        self.next_ns = now + TIMER_TICK_NS;
        Some(now)
    }
}

/// Nanoseconds in `d`, saturating (durations beyond 584 years).
pub(crate) fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}
