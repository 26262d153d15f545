//! Builds and runs a server from a [`ServeConfig`]: one gateway per listen
//! address, a ring pair each, one sequencer, the chosen application.

use crate::config::{AppKind, ConfigError, ServeConfig};
use crate::error::ServeError;
use crate::feed_run::FeedRun;
use crate::match_app::MatchApp;
use crate::runtime::{run, RuntimeConfig, ServerReport};
use peregrine_gateway::directory::SessionDirectory;
use peregrine_gateway::restore::SessionRestore;
use peregrine_gateway::GatewayOptions;
use peregrine_gateway::{ring_pair, GatewayLoop, SequencerRings, TcpGateway, UdpGateway};
use peregrine_journal::{Journal, WriterConfig};
use peregrine_netio::{TcpOptions, TcpPort, UdpOptions, UdpPort};
use peregrine_sequencer::{
    replay_journal_with, Application, AttachedJournal, EchoApp, ReplySink, Sequenced, SessionRef,
};
use peregrine_wire::message::MESSAGE_LEN;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The application behind the sequencer, chosen at start-up.
pub enum ServerApp {
    /// Acknowledge everything.
    Echo(EchoApp),
    /// Matching engine.
    Match(Box<MatchApp>),
}

impl Application for ServerApp {
    #[inline]
    fn prefetch_distance(&self) -> usize {
        match self {
            ServerApp::Echo(a) => a.prefetch_distance(),
            ServerApp::Match(a) => a.prefetch_distance(),
        }
    }

    // Always inlined into the sequencer's loop, with the matching engine's
    // handler kept out of line: inlined, its large frame made every
    // message pay its prologue (six saved registers and a 500-byte stack
    // frame) before the variant was even looked at, echo included.
    #[inline(always)]
    fn on_message(&mut self, m: &Sequenced<'_>, out: &mut ReplySink<'_>) {
        match self {
            ServerApp::Echo(a) => a.on_message(m, out),
            ServerApp::Match(a) => a.on_message(m, out),
        }
    }

    #[inline]
    fn prefetch(&self, msg: &[u8; MESSAGE_LEN], origin: SessionRef) {
        if let ServerApp::Match(a) = self {
            a.prefetch(msg, origin);
        }
    }
}

/// A running server.
pub struct ServerHandle {
    /// Bound UDP addresses, in gateway order (port 0 resolved).
    pub udp: Vec<SocketAddr>,
    /// Bound TCP addresses.
    pub tcp: Vec<SocketAddr>,
    /// DPDK gateways, described.
    pub dpdk: Vec<String>,
    /// What journal recovery found, when a journal is configured.
    pub recovery: Option<String>,
    /// The first global sequence number this run assigns.
    pub first_seq: u64,
    /// The sequenced feed, when configured: a start-up note (where it
    /// publishes from, its re-request address).
    pub feed: Option<String>,
    /// The feed's order-stream re-request server (port 0 resolved).
    pub feed_rerequest: Option<SocketAddr>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) join: Option<JoinHandle<Result<(ServerReport, ServerApp), ServeError>>>,
}

impl ServerHandle {
    /// A flag that stops the server when set.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Stops the server and waits for it; returns its counters and app.
    pub fn stop(self) -> Result<(ServerReport, ServerApp), ServeError> {
        self.stop.store(true, Ordering::Relaxed);
        self.wait()
    }

    /// Waits until the server stops by itself (its stop flag set elsewhere).
    pub fn wait(mut self) -> Result<(ServerReport, ServerApp), ServeError> {
        self.join
            .take()
            .ok_or(ServeError::AlreadyStopped)?
            .join()
            .map_err(|_| ServeError::Panicked)?
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// The gateway options a configuration asks for.
pub(crate) fn gateway_options(cfg: &ServeConfig) -> Result<GatewayOptions, ServeError> {
    Ok(GatewayOptions {
        rx_burst: cfg.rx_burst,
        heartbeat_interval: std::time::Duration::from_millis(cfg.heartbeat_interval_ms.max(1)),
        idle_timeout: std::time::Duration::from_millis(cfg.idle_timeout_ms.max(1)),
        reply_log_depth: cfg.reply_log_depth,
        reorder_window: cfg.reorder_window,
        rate_limit: peregrine_gateway::session::RateLimit {
            per_second: cfg.session_rate_limit,
            burst: cfg.session_rate_burst,
        },
        login_policy: cfg.login_policy()?,
        busy_after: std::time::Duration::from_micros(cfg.busy_after_us),
        gap_report_repeat: std::time::Duration::from_micros(cfg.gap_report_repeat_us),
        latency_histograms: cfg.latency_histograms,
        ..GatewayOptions::default()
    })
}

/// Gateways bound to their ports, with the sequencer ends of their rings.
pub(crate) struct BoundGateways {
    pub(crate) gateways: Vec<Box<dyn GatewayLoop>>,
    pub(crate) rings: Vec<SequencerRings>,
    pub(crate) udp: Vec<SocketAddr>,
    pub(crate) tcp: Vec<SocketAddr>,
    pub(crate) dpdk: Vec<String>,
}

/// Binds one gateway per UDP and TCP address (and the DPDK queues), in
/// gateway-id order: UDP listeners first, then TCP, then DPDK queues (the
/// journal records gateway ids, so the order must stay stable).
pub(crate) fn bind_gateways(
    cfg: &ServeConfig,
    udp_addrs: &[SocketAddr],
    tcp_addrs: &[SocketAddr],
    directory: &Arc<SessionDirectory>,
    opts: GatewayOptions,
) -> Result<BoundGateways, ServeError> {
    let udp_opts = UdpOptions {
        recv_buffer: cfg.recv_buffer,
        send_buffer: cfg.send_buffer,
        max_batch: cfg.rx_burst.max(opts.tx_burst),
        segmentation: cfg.udp_segmentation,
        receive_coalescing: cfg.udp_receive_coalescing,
        ..UdpOptions::default()
    };
    let tcp_opts = TcpOptions {
        socket_buffer: 0,
        ..TcpOptions::default()
    };
    let mut b = BoundGateways {
        gateways: Vec::new(),
        rings: Vec::new(),
        udp: Vec::new(),
        tcp: Vec::new(),
        dpdk: Vec::new(),
    };
    let next_id =
        |n: usize| u16::try_from(n).map_err(|_| ConfigError::Invalid("udp/tcp", "too many gateways".into()));
    let bind = |transport, addr: SocketAddr| {
        move |source| ServeError::Bind {
            transport,
            addr,
            source,
        }
    };
    for addr in udp_addrs {
        let port = UdpPort::bind(*addr, udp_opts).map_err(bind("UDP", *addr))?;
        b.udp.push(peregrine_netio::Port::local_addr(&port));
        let (g, s) = ring_pair(cfg.ring_slots())?;
        let id = next_id(b.gateways.len())?;
        b.gateways.push(Box::new(UdpGateway::new(
            id,
            port,
            g,
            Arc::clone(directory),
            opts.clone(),
        )));
        b.rings.push(s);
    }
    for addr in tcp_addrs {
        let port = TcpPort::bind(*addr, tcp_opts).map_err(bind("TCP", *addr))?;
        b.tcp.push(peregrine_netio::Port::local_addr(&port));
        let (g, s) = ring_pair(cfg.ring_slots())?;
        let id = next_id(b.gateways.len())?;
        b.gateways.push(Box::new(TcpGateway::new(
            id,
            port,
            g,
            Arc::clone(directory),
            opts.clone(),
        )));
        b.rings.push(s);
    }
    #[cfg(feature = "dpdk")]
    if let Some(d) = &cfg.dpdk {
        let ((gws, rings), described) = crate::dpdk::dpdk_gateways(
            d,
            next_id(b.gateways.len())?,
            cfg.ring_slots(),
            Arc::clone(directory),
            opts,
        )?;
        b.dpdk.extend(described);
        b.gateways.extend(gws);
        b.rings.extend(rings);
    }
    Ok(b)
}

/// The application a configuration asks for, fresh.
pub(crate) fn build_app(cfg: &ServeConfig) -> Result<ServerApp, ServeError> {
    Ok(match cfg.app {
        AppKind::Echo => ServerApp::Echo(EchoApp::new()),
        AppKind::Match => {
            let ecfg = cfg
                .engine
                .clone()
                .unwrap_or_else(peregrine_engine::EngineConfig::sample);
            ServerApp::Match(Box::new(MatchApp::new(&ecfg)?))
        }
    })
}

/// The runtime settings of a configuration.
pub(crate) fn runtime_config(cfg: &ServeConfig) -> Result<RuntimeConfig, ServeError> {
    Ok(RuntimeConfig {
        layout: cfg.layout()?,
        cores: cfg.cores.clone(),
        idle: cfg.idle()?,
        counters_file: cfg.counters_file.clone(),
        latency_histograms: cfg.latency_histograms,
        watermark: None,
        colocation: None,
    })
}

/// Binds every listener, then runs the server on its own threads. With a
/// `[cluster]` section the server is one node of a replicated cluster (see
/// [`crate::cluster_serve`]).
pub fn start(cfg: &ServeConfig) -> Result<ServerHandle, ServeError> {
    start_in(cfg, None)
}

/// [`start`], but the server's loop runs on `colocation`'s thread, polled
/// in turn with other servers' loops there, instead of on a thread of its
/// own (`shared` layout only; its `cores` are not used: the colocation
/// thread has its own). For measuring several servers, such as the nodes
/// of a cluster, on fewer cores than they have loops; see
/// [`crate::colocation`].
pub fn start_colocated(
    cfg: &ServeConfig,
    colocation: &crate::colocation::ColocationHandle,
) -> Result<ServerHandle, ServeError> {
    if cfg.layout()? != crate::runtime::Layout::Shared {
        return Err(ServeError::Config(crate::config::ConfigError::Invalid(
            "layout",
            "a colocated server runs the shared layout".into(),
        )));
    }
    start_in(cfg, Some(colocation.clone()))
}

fn start_in(
    cfg: &ServeConfig,
    colocation: Option<crate::colocation::ColocationHandle>,
) -> Result<ServerHandle, ServeError> {
    cfg.validate()?;
    crate::pinning::check_cores(&cfg.cores)?;
    if let Some(cluster) = &cfg.cluster {
        return crate::cluster_serve::start(cfg, cluster, colocation);
    }
    let mut runtime = runtime_config(cfg)?;
    runtime.colocation = colocation;
    let opts = gateway_options(cfg)?;
    let directory = Arc::new(SessionDirectory::new(&cfg.credentials()?)?);
    let BoundGateways {
        mut gateways,
        rings: seq_rings,
        udp,
        tcp,
        dpdk,
    } = bind_gateways(cfg, &cfg.udp, &cfg.tcp, &directory, opts)?;
    let mut app = build_app(cfg)?;
    let (first_seq, journal, recovery) = match (&cfg.journal, cfg.journal_mode()?) {
        (Some(dir), Some(mode)) => {
            let journal_err = |source| ServeError::Journal {
                dir: dir.clone(),
                source,
            };
            let rec = Journal::open(dir).map_err(journal_err)?;
            let mut note = format!(
                "journal {}: {} records recovered, next sequence {}",
                dir.display(),
                rec.len(),
                rec.next_seq()
            );
            if let Some(t) = rec.tail() {
                note.push_str(&format!("; torn tail: {t:?}"));
            }
            note.push_str(&restore_from(
                &mut app,
                &directory,
                &mut gateways,
                rec.records(),
                dir,
            )?);
            let next = rec.next_seq();
            let writer = rec
                .into_writer(
                    WriterConfig {
                        segment_size: cfg.journal_segment_size,
                        ..WriterConfig::default()
                    }
                    .flushed_with(match mode {
                        peregrine_sequencer::JournalMode::Durable(policy) => policy,
                        peregrine_sequencer::JournalMode::Async => peregrine_journal::FlushPolicy::None,
                    }),
                )
                .map_err(journal_err)?;
            (next, Some(AttachedJournal { writer, mode }), Some(note))
        }
        _ => (1, None, None),
    };
    let feed = match &cfg.journal {
        Some(dir) => FeedRun::start(cfg, dir, first_seq, None)?,
        None => None,
    };
    runtime.watermark = feed.as_ref().map(FeedRun::watermark);
    let feed_note = feed.as_ref().map(|f| f.note().to_string());
    let feed_rerequest = feed.as_ref().and_then(FeedRun::rerequest_addr);
    lock_memory_if_asked(cfg)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let join = std::thread::Builder::new()
        .name("peregrine-server".into())
        .spawn(move || -> Result<(ServerReport, ServerApp), ServeError> {
            let ran = run(gateways, seq_rings, app, first_seq, journal, &runtime, stop2);
            // The watermark is final once the sequencer stopped: the feed
            // publishes up to it and ends its session.
            let feed = feed.map(FeedRun::finish).transpose();
            let (mut report, app) = ran?;
            report.feed = feed?;
            Ok((report, app))
        })
        .map_err(ServeError::Spawn)?;
    Ok(ServerHandle {
        recovery,
        first_seq,
        feed: feed_note,
        feed_rerequest,
        udp,
        tcp,
        dpdk,
        stop,
        join: Some(join),
    })
}

/// With `lock_memory`, locks what start-up has mapped (rings, tables,
/// logs, pools, the journal's current segment) into RAM before the first
/// message; logs how much.
pub(crate) fn lock_memory_if_asked(cfg: &ServeConfig) -> Result<(), ServeError> {
    if cfg.lock_memory {
        let bytes = crate::memory_lock::lock_current()?;
        tracing::info!(locked_mib = bytes >> 20, "memory locked (lock_memory)");
    }
    Ok(())
}

/// Replays journaled `records` through `app` and rebuilds the gateways'
/// sessions from them; returns a note for the start-up log.
pub(crate) fn restore_from(
    app: &mut ServerApp,
    directory: &SessionDirectory,
    gateways: &mut [Box<dyn GatewayLoop>],
    records: impl Iterator<Item = peregrine_journal::SequencedRecord>,
    dir: &std::path::Path,
) -> Result<String, ServeError> {
    let restore = std::cell::RefCell::new(SessionRestore::new(directory, gateways));
    let replayed = replay_journal_with(
        app,
        records,
        |r| restore.borrow_mut().input(r.origin, r.client_seq),
        |to, m| restore.borrow_mut().reply(to, m),
    );
    let (_, replies) = restore
        .into_inner()
        .finish()
        .map_err(|source| ServeError::Restore {
            dir: dir.to_path_buf(),
            source,
        })?;
    let mut note =
        format!("; {replayed} replayed through the application; sessions restored with {replies} replies");
    if let ServerApp::Match(m) = &*app {
        note.push_str(&format!(
            "; engine state hash after replay {:016x}",
            m.engine().state_hash()
        ));
    }
    Ok(note)
}

/// Human-readable counters, printed at shutdown.
pub fn format_report(r: &ServerReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let sq = &r.sequencer;
    let _ = writeln!(
        s,
        "sequencer: sequenced {} (next seq {}), replies {}, held back {}, misrouted {}, back-pressure polls {}",
        sq.sequenced, r.next_seq, sq.replies, sq.replies_overflowed, sq.replies_misrouted, sq.backpressure_polls
    );
    for (name, g, p, _) in &r.gateways {
        let _ = writeln!(
            s,
            "{name}: rx packets {} messages {} accepted {} rejected {} (length {}, type {}, version {}), \
             dropped malformed {} not-logged-in {} unauthenticated {} oversize-closed {}, ring-full {}, \
             heartbeats {}, sessions {} logins {}/{} rejected, replies {} in {} packets, unroutable {}",
            g.rx_packets,
            g.rx_messages,
            g.accepted,
            g.rejected(),
            g.rejected_wrong_length,
            g.rejected_unknown_type,
            g.rejected_bad_version,
            g.dropped_malformed,
            g.dropped_not_logged_in,
            g.dropped_unauthenticated,
            g.closed_oversize_frame,
            g.ring_full,
            g.heartbeats,
            g.sessions,
            g.logins,
            g.logins_rejected,
            g.tx_replies,
            g.tx_packets,
            g.replies_unroutable
        );
        let _ = writeln!(
            s,
            "  exactly-once: in order {} held ahead of a gap {}, gap rejected {} (dropped {}), retransmissions recognised {} \
             (original replies resent {}, too old {}), retransmission requests {}, rate-limited {}, busy {}, takeovers {}",
            g.accepted,
            g.reordered_held,
            g.rejected_gap,
            g.dropped_gap,
            g.dedup_hits,
            g.replies_retransmitted,
            g.rejected_too_old,
            g.rerequests,
            g.rejected_rate_limited,
            g.rejected_busy,
            g.logins_taken_over
        );
        let _ = writeln!(
            s,
            "  port: rx {} pkts {} B, tx {} pkts {} B, tx dropped {}, rx oversize {}, rx not for us {}, conns opened {} closed {} slow-closed {} refused {}",
            p.rx_packets,
            p.rx_bytes,
            p.tx_packets,
            p.tx_bytes,
            p.tx_dropped,
            p.rx_oversize,
            p.rx_not_for_us,
            p.conns_opened,
            p.conns_closed,
            p.conns_slow_closed,
            p.conns_refused
        );
    }
    for (name, _, _, detail) in &r.gateways {
        if !detail.is_empty() {
            let _ = writeln!(s, "  {name} detail: {detail}");
        }
    }
    let _ = writeln!(s, "loops: busy {} idle {}", r.busy_loops, r.idle_loops);
    if sq.journaled > 0 || sq.journal_errors > 0 {
        let _ = writeln!(
            s,
            "journal: {} records, {} flushes, durable through sequence {}, errors {}",
            sq.journaled, sq.journal_flushes, r.journal_durable_seq, sq.journal_errors
        );
    }
    if let Some(f) = &r.feed {
        let _ = writeln!(s, "{}", crate::feed_run::format_feed(f));
    }
    if let Some(f) = &r.failure {
        let _ = writeln!(s, "STOPPED: {f}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_engine::{Engine, EngineConfig};

    #[test]
    fn the_matching_engine_asks_for_prefetch_and_the_echo_does_not() {
        let matching = ServerApp::Match(Box::new(MatchApp::new(&EngineConfig::sample()).unwrap()));
        let echo = ServerApp::Echo(EchoApp::new());
        assert_eq!(matching.prefetch_distance(), Engine::PREFETCH_DISTANCE);
        assert_eq!(echo.prefetch_distance(), 0);
        // Any bytes may be shown; nothing may panic.
        for app in [&matching, &echo] {
            app.prefetch(&[0xff; MESSAGE_LEN], SessionRef::new(0, 1));
        }
    }
}
