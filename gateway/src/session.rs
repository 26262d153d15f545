//! Client sessions as a gateway sees them.

use peregrine_netio::Peer;
use peregrine_sequencer::wire::moldudp64::SessionName;

/// One client session.
#[derive(Clone, Debug)]
pub struct Session {
    /// The session name (MoldUDP64 session field / SoupBinTCP session).
    pub name: SessionName,
    /// Where replies go: the UDP source address, or the TCP connection
    /// currently logged in; `None` while a TCP session is disconnected.
    pub peer: Option<Peer>,
    /// TCP: the implicit client sequence of the next unsequenced message.
    pub next_client_seq: u64,
    /// Sequence number of the next reply (MoldUDP64 downstream sequence,
    /// SoupBinTCP implicit sequence), from 1.
    pub next_reply_seq: u64,
    /// When the client last sent anything, ns (coarse: receive-burst time).
    pub last_rx_ns: u64,
    /// When we last sent this session anything, ns (coarse: timer tick).
    pub last_tx_ns: u64,
    /// Rate limiter: tokens in nano-messages (1e9 = one message).
    tokens: u64,
    /// Rate limiter: when `tokens` was last refilled, ns.
    tokens_at_ns: u64,
}

/// A per-session message rate limit: `per_second` sustained, `burst` at
/// once. `per_second == 0` turns it off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained messages per second (0: unlimited).
    pub per_second: u64,
    /// Messages allowed at once after a quiet period.
    pub burst: u64,
}

const NANO: u64 = 1_000_000_000;

impl Session {
    /// Takes one message's worth of tokens at time `now_ns`; false when the
    /// session is over its rate (token bucket, integer arithmetic, no
    /// allocation).
    #[inline]
    pub fn admit(&mut self, now_ns: u64, limit: RateLimit) -> bool {
        if limit.per_second == 0 {
            return true;
        }
        let cap = limit.burst.max(1).saturating_mul(NANO);
        let elapsed = now_ns.saturating_sub(self.tokens_at_ns).min(10 * NANO);
        self.tokens = self
            .tokens
            .saturating_add(elapsed.saturating_mul(limit.per_second))
            .min(cap);
        self.tokens_at_ns = now_ns.max(self.tokens_at_ns);
        if self.tokens >= NANO {
            self.tokens -= NANO;
            true
        } else {
            false
        }
    }
}

/// A bounded table of sessions, indexed by the `u32` the sequencer routes
/// replies with. Indices are never reused while the process runs, so a late
/// reply cannot reach a different session.
#[derive(Debug)]
pub struct SessionTable {
    sessions: Vec<Session>,
    max: usize,
}

impl SessionTable {
    /// An empty table that will hold at most `max` sessions (memory is
    /// reserved up front).
    pub fn new(max: usize) -> Self {
        SessionTable {
            sessions: Vec::with_capacity(max),
            max,
        }
    }

    /// Adds a session; `None` when the table is full.
    pub fn add(&mut self, name: SessionName, peer: Option<Peer>) -> Option<u32> {
        if self.sessions.len() >= self.max {
            return None;
        }
        self.sessions.push(Session {
            name,
            peer,
            next_client_seq: 1,
            next_reply_seq: 1,
            last_rx_ns: 0,
            last_tx_ns: 0,
            tokens: u64::MAX / 2,
            tokens_at_ns: 0,
        });
        Some((self.sessions.len() - 1) as u32)
    }

    /// Session `i`.
    #[inline]
    pub fn get(&self, i: u32) -> Option<&Session> {
        self.sessions.get(i as usize)
    }

    /// Session `i`, mutably.
    #[inline]
    pub fn get_mut(&mut self, i: u32) -> Option<&mut Session> {
        self.sessions.get_mut(i as usize)
    }

    /// Every session with its index.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut Session)> {
        self.sessions.iter_mut().enumerate().map(|(i, s)| (i as u32, s))
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}
