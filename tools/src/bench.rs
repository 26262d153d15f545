//! The latency harness: a same-run raw-echo baseline, then Peregrine, with
//! the same client, transport, socket options, polling and pinning.

use crate::baseline;
use crate::client::flow::FlowKind;
use crate::client::{self, ClientConfig, ClientResult, Mode, TransportKind};
use crate::config::{AppKind, ServeConfig};
use crate::report::{hgrm, BenchOutcome};
use crate::server;
use anyhow::Context;
use peregrine_netio::UdpOptions;
use peregrine_sequencer::IdleKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A bench run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Transport.
    pub transport: TransportKind,
    /// Mode.
    pub mode: Mode,
    /// Client sessions.
    pub sessions: usize,
    /// Messages per packet.
    pub batch: usize,
    /// Sending time per run (baseline and Peregrine each).
    pub duration: Duration,
    /// Warm-up inside each run.
    pub warmup: Duration,
    /// Echo or order flow.
    pub flow: FlowKind,
    /// Use a running server instead of starting one in-process.
    pub connect: Option<SocketAddr>,
    /// Skip the baseline.
    pub no_baseline: bool,
    /// Server configuration when in-process (addresses are filled in).
    pub server: ServeConfig,
    /// Core for the client thread.
    pub client_core: Option<usize>,
    /// Core for the server (and the baseline echo).
    pub server_core: Option<usize>,
    /// Idle strategy for the baseline echo (the server's is in `server`).
    pub idle: IdleKind,
    /// JSON summary path.
    pub json: Option<PathBuf>,
    /// HdrHistogram text path.
    pub hgrm: Option<PathBuf>,
}

fn client_cfg(b: &BenchConfig, server: SocketAddr, raw: bool) -> ClientConfig {
    ClientConfig {
        transport: b.transport,
        server,
        sessions: b.sessions,
        mode: b.mode,
        batch: b.batch,
        duration: b.duration,
        warmup: b.warmup,
        flow: b.flow,
        raw_peer: raw,
        core: b.client_core,
        keep_global_seqs: false,
        keep_answers: false,
        drain: Duration::from_secs(2),
    }
}

fn run_client_thread(cfg: ClientConfig) -> anyhow::Result<ClientResult> {
    std::thread::Builder::new()
        .name("bench-client".into())
        .spawn(move || client::run(&cfg))?
        .join()
        .map_err(|_| anyhow::anyhow!("client thread panicked"))?
}

/// Runs the baseline (unless disabled) and Peregrine; prints the report and
/// writes the requested files. Returns the JSON summary.
pub fn run(b: &BenchConfig) -> anyhow::Result<serde_json::Value> {
    let lo: SocketAddr = "127.0.0.1:0".parse()?;
    let baseline = if b.no_baseline {
        None
    } else {
        let echo = match b.transport {
            TransportKind::Udp => baseline::start_udp_echo(
                lo,
                UdpOptions {
                    recv_buffer: b.server.recv_buffer,
                    send_buffer: b.server.send_buffer,
                    max_batch: b.server.rx_burst.max(64),
                    ..UdpOptions::default()
                },
                b.server.rx_burst,
                b.server_core,
                b.idle,
            )?,
            TransportKind::Tcp => baseline::start_tcp_echo(lo, b.server.rx_burst, b.server_core, b.idle)?,
        };
        eprintln!(
            "baseline: raw {} echo on {} for {:?}",
            b.transport.name(),
            echo.addr,
            b.duration
        );
        let r = run_client_thread(client_cfg(b, echo.addr, true)).context("baseline run")?;
        echo.stop();
        Some(r)
    };

    let (addr, srv) = match b.connect {
        Some(a) => (a, None),
        None => {
            let mut cfg = b.server.clone();
            match b.transport {
                TransportKind::Udp => cfg.udp = vec![lo],
                TransportKind::Tcp => cfg.tcp = vec![lo],
            }
            if b.flow == FlowKind::Orders {
                cfg.app = AppKind::Match;
            }
            if let Some(c) = b.server_core {
                cfg.cores = vec![c];
            }
            let h = server::start(&cfg)?;
            let a = match b.transport {
                TransportKind::Udp => h.udp[0],
                TransportKind::Tcp => h.tcp[0],
            };
            (a, Some(h))
        }
    };
    eprintln!(
        "peregrine: {} on {} for {:?}",
        b.transport.name(),
        addr,
        b.duration
    );
    let result = run_client_thread(client_cfg(b, addr, false)).context("peregrine run")?;
    if let Some(h) = srv {
        let (report, _) = h.stop()?;
        eprint!("{}", server::format_report(&report));
    }

    let outcome = BenchOutcome {
        transport: b.transport.name(),
        mode: b.mode.name(),
        flow: match b.flow {
            FlowKind::Echo => "echo",
            FlowKind::Orders => "orders",
        },
        peregrine: &result,
        baseline: baseline.as_ref(),
    };
    println!("{}", outcome.table());
    let json = outcome.json();
    if let Some(p) = &b.json {
        std::fs::write(p, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &b.hgrm {
        std::fs::write(p, hgrm(&result.recorder.hist)).with_context(|| format!("writing {}", p.display()))?;
        if let Some(bl) = &baseline {
            let bp = p.with_extension("baseline.hgrm");
            std::fs::write(&bp, hgrm(&bl.recorder.hist))?;
        }
    }
    Ok(json)
}
