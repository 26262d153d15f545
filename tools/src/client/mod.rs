//! UDP and TCP client simulators.
//!
//! Modes:
//! - `pingpong`: one message in flight; the latency floor.
//! - `rate R`: open loop. Packet `i` has the intended send time
//!   `t0 + i * batch / R`; every message carries its intended time, and the
//!   round trip is measured from it, so a stall anywhere (client included)
//!   shows up as latency instead of silently delaying the schedule
//!   (no coordinated omission).
//! - `throughput`: keep a window of messages in flight and refill it as
//!   answers arrive; reports answered messages per second.
//!
//! Warm-up messages (intended time in the first `warmup`) are sent and
//! answered but not recorded.
//!
//! The sessions themselves (login, sending, retransmission, replies) are
//! `peregrine-client`'s; this module generates the load, keeps the
//! schedule, records the latencies and reports.

pub mod faults;
pub mod flow;
pub mod recorder;
pub mod seq_tracker;
pub mod transport;
pub mod waits;

use flow::{Flow, FlowKind};
use peregrine_netio::clock::now_ns;
use recorder::Recorder;
use std::net::SocketAddr;
use std::time::Duration;
use transport::ClientTransport;
use waits::ClientWaits;

/// UDP or TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// MoldUDP64 over UDP.
    Udp,
    /// SoupBinTCP over TCP.
    Tcp,
}

impl TransportKind {
    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
        }
    }
}

/// Sending pattern.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// One message in flight.
    PingPong,
    /// Open loop at this many messages per second.
    Rate(f64),
    /// Closed loop with this many messages in flight.
    Throughput {
        /// Messages in flight.
        window: usize,
    },
}

impl Mode {
    /// `pingpong`, `rate` or `throughput`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::PingPong => "pingpong",
            Mode::Rate(_) => "rate",
            Mode::Throughput { .. } => "throughput",
        }
    }
}

/// A simulator run.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Transport.
    pub transport: TransportKind,
    /// Server address (in a cluster: the first node to try).
    pub server: SocketAddr,
    /// The other cluster nodes' addresses for the same gateway, tried after
    /// `server` when looking for the leader (empty: a single server).
    pub more_servers: Vec<SocketAddr>,
    /// Fail over by itself when the node in use fails (UDP: goes silent;
    /// TCP: closes the connection), resuming exactly once (see
    /// `peregrine_client::failover`). UDP turns retransmission on (20 ms)
    /// when `retransmit` is not set: the resend needs the kept messages.
    pub failover: Option<peregrine_client::FailoverOptions>,
    /// Sessions (UDP: names on one socket; TCP: one connection each).
    pub sessions: usize,
    /// Mode.
    pub mode: Mode,
    /// Messages per packet (UDP datagram; TCP: frames written together).
    /// 0, rate mode only: pack the messages that are due at the same moment
    /// (up to 14), never holding one back for company.
    pub batch: usize,
    /// Total sending time, warm-up included.
    pub duration: Duration,
    /// Warm-up at the start, not recorded.
    pub warmup: Duration,
    /// Which messages.
    pub flow: FlowKind,
    /// The peer is a raw echo (baseline): TCP skips login.
    pub raw_peer: bool,
    /// Core to pin the client thread to.
    pub core: Option<usize>,
    /// Keep every acked global sequence number (tests).
    pub keep_global_seqs: bool,
    /// Keep every first answer (crash tests).
    pub keep_answers: bool,
    /// UDP: resend messages unanswered for this long (exactly-once over a
    /// lossy network). None: never.
    pub retransmit: Option<Duration>,
    /// How long to wait for outstanding answers after sending stops.
    pub drain: Duration,
    /// The sessions' secret (every simulated session uses the same one).
    pub secret: String,
    /// UDP: drop, duplicate and reorder datagrams both ways in the
    /// simulator's own link (fault injection without a relay).
    pub faults: Option<crate::relay::Faults>,
    /// Number of the first session's name: sessions are PG`first_session`,
    /// PG`first_session + 1`, ... (simulators sharing a server need
    /// disjoint sessions).
    pub first_session: usize,
}

impl ClientConfig {
    /// Defaults for `server` over `transport`.
    pub fn new(transport: TransportKind, server: SocketAddr) -> Self {
        ClientConfig {
            transport,
            server,
            more_servers: Vec::new(),
            failover: None,
            sessions: 1,
            mode: Mode::PingPong,
            batch: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            flow: FlowKind::Echo,
            raw_peer: false,
            core: None,
            keep_global_seqs: false,
            keep_answers: false,
            retransmit: None,
            drain: Duration::from_secs(2),
            secret: String::new(),
            first_session: 0,
            faults: None,
        }
    }
}

/// What a run measured.
pub struct ClientResult {
    /// The recorder (histogram, answer counts).
    pub recorder: Recorder,
    /// Messages sent.
    pub sent: u64,
    /// Messages sent within the measured window.
    pub sent_in_window: u64,
    /// Length of the measured window, seconds.
    pub window_secs: f64,
    /// Offered rate, messages/s (rate mode), else 0.
    pub offered_rate: f64,
    /// Messages resent after the retransmission timeout.
    pub retransmitted: u64,
    /// The failovers the client went through.
    pub failover: peregrine_client::FailoverStats,
    /// Where the sending loop waited (empty receive polls, full windows).
    pub waits: ClientWaits,
}

impl ClientResult {
    /// Sent but never answered.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.recorder.answered)
    }

    /// Answered messages per second over the measured window.
    pub fn throughput(&self) -> f64 {
        if self.window_secs > 0.0 {
            self.recorder.answered_in_window as f64 / self.window_secs
        } else {
            0.0
        }
    }
}

/// Connects and runs the configured simulator on the calling thread.
pub fn run(cfg: &ClientConfig) -> anyhow::Result<ClientResult> {
    peregrine_server::pinning::pin_current(cfg.core)?;
    let servers: Vec<SocketAddr> = std::iter::once(cfg.server)
        .chain(cfg.more_servers.iter().copied())
        .collect();
    match cfg.transport {
        TransportKind::Udp => {
            let mut t = peregrine_client::UdpClient::new(&servers, cfg.sessions)?
                .with_first_session(cfg.first_session)
                .with_link(cfg.faults.map(|f| faults::LossyLink::new(f, 0x1055)));
            let rto = match (cfg.retransmit, cfg.failover) {
                (Some(rto), _) => Some(rto),
                (None, Some(_)) => Some(Duration::from_millis(20)),
                (None, None) => None,
            };
            if let Some(rto) = rto {
                t = t.with_retransmission(rto);
            }
            if let Some(f) = cfg.failover {
                t = t.with_failover(f);
            }
            if !cfg.raw_peer {
                t.login(&cfg.secret, Duration::from_secs(5))?;
            }
            let r = run_with(&mut t, cfg);
            if !cfg.raw_peer {
                t.logout()?;
            }
            if let Some(l) = t.link() {
                eprintln!("lossy link (0: to the server, 1: back): {:?}", l.counters());
            }
            r
        }
        TransportKind::Tcp => {
            let mut t = peregrine_client::TcpClient::connect(
                &servers,
                cfg.sessions,
                cfg.first_session,
                cfg.raw_peer,
                &cfg.secret,
            )?;
            if let Some(f) = cfg.failover {
                t = t.with_failover(f);
            }
            run_with(&mut t, cfg)
        }
    }
}

/// Most messages the simulator packs into one packet (14 fill a MoldUDP64
/// datagram).
pub const MAX_PACK: usize = peregrine_client::MAX_PACK;

/// Runs the configured mode over an already connected transport.
pub fn run_with(t: &mut dyn ClientTransport, cfg: &ClientConfig) -> anyhow::Result<ClientResult> {
    let sessions = cfg.sessions.max(1);
    let batch = cfg.batch.max(1);
    let mut flow = Flow::new(cfg.flow, sessions, 0x5eed);
    let t0 = now_ns();
    let warmup_end = t0 + cfg.warmup.as_nanos() as u64;
    let end = t0 + cfg.duration.as_nanos() as u64;
    // Messages one session may have unanswered at once: what its answer
    // tracker is sized for up front (more only grows it).
    let in_flight = match cfg.mode {
        Mode::PingPong => 1,
        Mode::Throughput { window } => window.max(batch),
        Mode::Rate(rate) => ((rate * 0.01) as usize / sessions).max(4096),
    };
    let mut rec = Recorder::new(sessions, warmup_end.min(end), end, in_flight);
    if cfg.keep_global_seqs {
        rec.global_seqs = Some(Vec::new());
    }
    if cfg.keep_answers {
        rec.answers = Some(Vec::new());
    }
    if cfg.keep_global_seqs || cfg.keep_answers {
        // A verification run keeps every answer anyway: keep every global
        // sequence too, so a late second sequencing is still caught.
        rec.keep_full_history();
    }
    let mut sent = 0u64;
    let mut sent_in_window = 0u64;
    let mut offered_rate = 0.0;
    let mut waits = ClientWaits::default();
    match cfg.mode {
        Mode::PingPong => {
            let mut s = 0usize;
            let timeout = 1_000_000_000u64;
            loop {
                let now = now_ns();
                if now >= end {
                    break;
                }
                let first = t.queue(s, &[now], &mut flow)?;
                rec.on_sent(s, first, 1);
                t.flush()?;
                sent += 1;
                if now >= warmup_end {
                    sent_in_window += 1;
                }
                let before = rec.answered;
                let deadline = now + timeout;
                while rec.answered == before {
                    let mut on = |r, n| {
                        rec.on_reply(&r, n);
                    };
                    waits.poll(t.poll(&mut on)?);
                    t.retransmit(now_ns())?;
                    if now_ns() > deadline {
                        break; // counted as lost unless it turns up later
                    }
                }
                s = (s + 1) % sessions;
            }
        }
        Mode::Rate(rate) => {
            anyhow::ensure!(rate > 0.0, "rate must be positive");
            offered_rate = rate;
            // Units of `unit` messages share an intended send time; a
            // session's due units are packed `pack` messages per packet
            // (auto: whatever is due, up to 14; else exactly `batch`).
            let auto = cfg.batch == 0;
            let (unit, pack) = if auto { (1, MAX_PACK) } else { (batch, batch) };
            let interval = (unit as f64 * 1e9 / rate).max(1.0);
            let mut pending: Vec<Vec<u64>> = (0..sessions).map(|_| Vec::with_capacity(pack + unit)).collect();
            let mut i = 0u64;
            let mut s = 0usize;
            loop {
                let now = now_ns();
                let mut queued = false;
                loop {
                    let intended = t0 + (i as f64 * interval) as u64;
                    if intended > now || intended >= end || !t.ready(s) {
                        break;
                    }
                    pending[s].extend(std::iter::repeat_n(intended, unit));
                    if pending[s].len() >= pack {
                        let first = t.queue(s, &pending[s], &mut flow)?;
                        rec.on_sent(s, first, pending[s].len() as u64);
                        pending[s].clear();
                    }
                    sent += unit as u64;
                    if intended >= warmup_end {
                        sent_in_window += unit as u64;
                    }
                    s = (s + 1) % sessions;
                    i += 1;
                    queued = true;
                }
                for (ps, p) in pending.iter_mut().enumerate() {
                    if !p.is_empty() {
                        let first = t.queue(ps, p, &mut flow)?;
                        rec.on_sent(ps, first, p.len() as u64);
                        p.clear();
                    }
                }
                if queued {
                    t.flush()?;
                }
                let mut on = |r, n| {
                    rec.on_reply(&r, n);
                };
                waits.poll(t.poll(&mut on)?);
                t.retransmit(now)?;
                if now >= end {
                    break;
                }
            }
        }
        Mode::Throughput { window } => {
            let window = window.max(batch) as u64;
            let mut s = 0usize;
            let mut last_progress = t0;
            let mut written_off = 0u64;
            loop {
                let now = now_ns();
                if now >= end {
                    break;
                }
                let mut k = 0;
                while sent.saturating_sub(rec.answered + written_off) + batch as u64 <= window && k < 32 {
                    let n = batch.min(MAX_PACK);
                    let first = t.queue(s, &[now; MAX_PACK][..n], &mut flow)?;
                    rec.on_sent(s, first, n as u64);
                    sent += batch as u64;
                    if now >= warmup_end {
                        sent_in_window += batch as u64;
                    }
                    s = (s + 1) % sessions;
                    k += 1;
                }
                if k > 0 {
                    t.flush()?;
                }
                waits.round(k);
                let before = rec.answered;
                let mut on = |r, n| {
                    rec.on_reply(&r, n);
                };
                waits.poll(t.poll(&mut on)?);
                t.retransmit(now)?;
                if rec.answered != before {
                    last_progress = now;
                } else if now - last_progress > 200_000_000 {
                    // Nothing answered for 200 ms: whatever is in flight is
                    // lost; stop waiting for it so the run can go on.
                    written_off = sent.saturating_sub(rec.answered);
                    last_progress = now;
                }
            }
        }
    }
    // Drain: wait for outstanding answers.
    let drain_end = now_ns() + cfg.drain.as_nanos() as u64;
    while rec.answered < sent && now_ns() < drain_end {
        t.flush()?;
        let mut on = |r, n| {
            rec.on_reply(&r, n);
        };
        t.poll(&mut on)?;
        t.retransmit(now_ns())?;
    }
    let window_secs = (cfg.duration.saturating_sub(cfg.warmup)).as_secs_f64();
    Ok(ClientResult {
        recorder: rec,
        sent,
        sent_in_window,
        window_secs,
        offered_rate,
        retransmitted: t.retransmitted(),
        failover: t.failover_stats(),
        waits,
    })
}
