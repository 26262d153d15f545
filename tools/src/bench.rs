//! The latency harness: a same-run raw-echo baseline, then Peregrine, with
//! the same client, transport, socket options, polling and pinning.

use crate::baseline;
use crate::client::flow::FlowKind;
use crate::client::{self, ClientConfig, ClientResult, Mode, TransportKind};
use crate::plot::{self, Curve};
use crate::report::{hgrm, Baseline, BenchOutcome, Floor};
use anyhow::Context;
use peregrine_netio::UdpOptions;
use peregrine_server::config::{AppKind, ServeConfig};
use peregrine_server::idle::IdleKind;
use peregrine_server::serve as server;
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
    /// SVG percentile plot path: Peregrine's curve and the baseline's.
    pub plot: Option<PathBuf>,
    /// The plot's title (the command line).
    pub title: String,
    /// UDP only: drop, duplicate and reorder this fraction of datagrams in
    /// both directions through a relay in front of the server (and of the
    /// baseline echo), 0 = no relay.
    pub loss: f64,
    /// Nodes of an in-process cluster to measure (3 or 5), 0 for a single
    /// server. With a cluster the same-run baseline is the same server as
    /// a single node (journaled the same way), not the raw echo.
    pub cluster: usize,
    /// The cluster's acknowledgement level.
    pub ack: peregrine_cluster::AckLevel,
    /// Cluster: each node's loop on a thread of its own (all pinned to the
    /// server core, the scheduler switching between them) instead of one
    /// thread polling every node's loop in turn (the default).
    pub node_threads: bool,
    /// The client sessions' secret; with an in-process server whose config
    /// has no `[[sessions]]`, sessions PG00000000.. are configured with this
    /// secret (generated when absent).
    pub secret: Option<String>,
}

/// A secret for one in-process run: 10 hex digits from the clock, so no
/// fixed password ships in the binary.
fn generated_secret() -> String {
    let t = peregrine_netio::clock::now_ns() ^ (std::process::id() as u64).rotate_left(32);
    format!("{:010x}", t.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 24)
}

/// Checks `--loss` and says what it does.
fn check_loss(b: &BenchConfig) -> anyhow::Result<()> {
    if b.loss > 0.0 {
        anyhow::ensure!(
            b.transport == TransportKind::Udp,
            "--loss applies to --transport udp"
        );
        eprintln!(
            "fault injection: {:.1}% drop, duplicate and reorder each way, in the simulator's link",
            b.loss * 100.0
        );
    }
    Ok(())
}

fn client_cfg(b: &BenchConfig, server: SocketAddr, raw: bool, secret: &str) -> ClientConfig {
    ClientConfig {
        transport: b.transport,
        server,
        more_servers: Vec::new(),
        failover: None,
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
        retransmit: (b.loss > 0.0).then(|| Duration::from_millis(5)),
        faults: (b.loss > 0.0).then(|| crate::faults::Faults::uniform(b.loss)),
        drain: Duration::from_secs(2),
        secret: secret.to_string(),
        first_session: 0,
    }
}

/// The raw echoes' UDP socket settings: the server's.
fn echo_udp_options(b: &BenchConfig) -> UdpOptions {
    UdpOptions {
        recv_buffer: b.server.recv_buffer,
        send_buffer: b.server.send_buffer,
        max_batch: b.server.rx_burst.max(64),
        segmentation: b.server.udp_segmentation,
        receive_coalescing: b.server.udp_receive_coalescing,
        ..UdpOptions::default()
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
    check_loss(b)?;
    if b.cluster > 0 {
        return run_cluster(b);
    }
    let lo: SocketAddr = "127.0.0.1:0".parse()?;
    let baseline = if b.no_baseline {
        None
    } else {
        let echo = match b.transport {
            TransportKind::Udp => {
                baseline::start_udp_echo(lo, echo_udp_options(b), b.server.rx_burst, b.server_core, b.idle)?
            }
            TransportKind::Tcp => baseline::start_tcp_echo(lo, b.server.rx_burst, b.server_core, b.idle)?,
        };
        eprintln!(
            "baseline: raw {} echo on {} for {:?}",
            b.transport.name(),
            echo.addr,
            b.duration
        );
        let r = run_client_thread(client_cfg(b, echo.addr, true, "")).context("baseline run")?;
        echo.stop();
        Some(r)
    };

    let mut secret = b.secret.clone().unwrap_or_default();
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
            if cfg.sessions.is_empty() {
                if secret.is_empty() {
                    secret = generated_secret();
                }
                cfg.sessions = vec![peregrine_server::config::SessionSpec::block(
                    "PG",
                    b.sessions.max(1),
                    &secret,
                )];
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
    let target = addr;
    let result = run_client_thread(client_cfg(b, target, false, &secret)).context("peregrine run")?;
    if let Some(h) = srv {
        let (report, _) = h.stop()?;
        eprint!("{}", server::format_report(&report));
    }

    report(b, &result, baseline.as_ref(), Baseline::RawEcho, None)
}

impl BenchConfig {
    /// How a cluster's nodes run: `colocated` (one thread polls every
    /// node's loop) or `thread-per-node` (`node_threads`).
    fn cluster_layout(&self) -> &'static str {
        if self.node_threads {
            "thread-per-node"
        } else {
            "colocated"
        }
    }
}

/// Prints the table, writes the requested files, returns the JSON.
fn report(
    b: &BenchConfig,
    result: &ClientResult,
    baseline: Option<&ClientResult>,
    baseline_kind: Baseline,
    floor: Option<Floor<'_>>,
) -> anyhow::Result<serde_json::Value> {
    let outcome = BenchOutcome {
        transport: b.transport.name(),
        mode: b.mode.name(),
        flow: match b.flow {
            FlowKind::Echo => "echo",
            FlowKind::Orders => "orders",
        },
        peregrine: result,
        baseline,
        baseline_kind,
        cluster: b.cluster,
        cluster_layout: if b.cluster == 0 { "" } else { b.cluster_layout() },
        floor,
    };
    println!("{}", outcome.table());
    let json = outcome.json();
    if let Some(p) = &b.json {
        std::fs::write(p, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &b.hgrm {
        std::fs::write(p, hgrm(&result.recorder.hist)).with_context(|| format!("writing {}", p.display()))?;
        if let Some(bl) = baseline {
            let bp = p.with_extension("baseline.hgrm");
            std::fs::write(&bp, hgrm(&bl.recorder.hist))?;
        }
    }
    if let Some(p) = &b.plot {
        let (name, base) = match (b.cluster, baseline_kind) {
            (0, Baseline::RawEcho) => ("peregrine".to_string(), "raw echo (same run)"),
            (n, _) => (format!("{n} nodes"), "1 node (same run)"),
        };
        let mut curves = vec![Curve {
            label: &name,
            hist: &result.recorder.hist,
        }];
        if let Some(bl) = baseline {
            curves.push(Curve {
                label: base,
                hist: &bl.recorder.hist,
            });
        }
        plot::write_svg(p, &b.title, &curves)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(json)
}

/// The server configuration of an in-process run: listen addresses filled
/// in by the caller, the app the flow needs, pinned to the server core,
/// sessions PG00000000.. with `secret` when the config names none.
fn in_process_config(b: &BenchConfig, secret: &mut String) -> ServeConfig {
    let mut cfg = b.server.clone();
    if b.flow == FlowKind::Orders {
        cfg.app = AppKind::Match;
    }
    if let Some(c) = b.server_core {
        cfg.cores = vec![c];
    }
    if cfg.sessions.is_empty() {
        if secret.is_empty() {
            *secret = generated_secret();
        }
        cfg.sessions = vec![peregrine_server::config::SessionSpec::block(
            "PG",
            b.sessions.max(1),
            secret,
        )];
    }
    cfg
}

/// `bench --cluster N`: the same server as a single node (journaled in
/// async mode, like every cluster node's journal by default), then an
/// N-node cluster on this machine with the client talking to its leader.
/// By default one thread pinned to the server core polls every node's loop
/// in turn (`colocated`: replication's software cost and the loopback hop,
/// no scheduler between the nodes); with `node_threads` each node's loop
/// has a thread of its own on that core (the leader spins, followers wait
/// on their peers' sockets and wake to replicate).
fn run_cluster(b: &BenchConfig) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        b.connect.is_none(),
        "--cluster starts its own nodes; drop --connect"
    );
    anyhow::ensure!(b.loss == 0.0, "--cluster runs without fault injection");
    let mut secret = b.secret.clone().unwrap_or_default();
    let cfg = in_process_config(b, &mut secret);
    let lo: SocketAddr = "127.0.0.1:0".parse()?;
    let work = std::env::temp_dir().join(format!("peregrine-bench-single-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let baseline = if b.no_baseline {
        None
    } else {
        let mut single = cfg.clone();
        match b.transport {
            TransportKind::Udp => single.udp = vec![lo],
            TransportKind::Tcp => single.tcp = vec![lo],
        }
        if single.journal.is_none() {
            single.journal = Some(work.clone());
        }
        let h = server::start(&single)?;
        let addr = match b.transport {
            TransportKind::Udp => h.udp[0],
            TransportKind::Tcp => h.tcp[0],
        };
        eprintln!(
            "baseline: one node, {} on {addr} for {:?}",
            b.transport.name(),
            b.duration
        );
        let r = run_client_thread(client_cfg(b, addr, false, &secret)).context("single-node run")?;
        h.stop()?;
        let _ = std::fs::remove_dir_all(&work);
        Some(r)
    };
    // The floor waits for a majority, as `replicated` acks do.
    let floor = if b.no_baseline
        || b.transport != TransportKind::Udp
        || b.ack != peregrine_cluster::AckLevel::Replicated
    {
        None
    } else {
        Some(run_floor(b, lo)?)
    };
    let cluster = if b.node_threads {
        crate::local_cluster::LocalCluster::start("bench", b.cluster, &cfg, b.ack)?
    } else {
        crate::local_cluster::LocalCluster::start_colocated("bench", b.cluster, &cfg, b.ack)?
    };
    let leader = cluster.leader(Duration::from_secs(10))?;
    let addr = match b.transport {
        TransportKind::Udp => cluster.udp(leader),
        TransportKind::Tcp => cluster.tcp(leader),
    };
    eprintln!(
        "cluster: {} nodes ({}, on the server core), ack {:?}, leader node {} ({} on {addr}) for {:?}",
        b.cluster,
        b.cluster_layout(),
        b.ack,
        leader + 1,
        b.transport.name(),
        b.duration
    );
    let result = run_client_thread(client_cfg(b, addr, false, &secret)).context("cluster run")?;
    if let Some(s) = cluster.status(leader) {
        eprint!("{}", s.to_text());
    }
    drop(cluster);
    let floor = floor.as_ref().map(|(raw, replicated)| Floor {
        raw,
        replicated,
        nodes: b.cluster,
    });
    report(b, &result, baseline.as_ref(), Baseline::SingleNode, floor)
}

/// The replication floor of a cluster bench, in the same run: a raw UDP
/// echo, then the same echo answering only once a majority of
/// `b.cluster` nodes holds each datagram over loopback TCP
/// ([`baseline::start_replicated_udp_echo`]), both driven by the raw
/// client like the single-server bench's baseline.
fn run_floor(b: &BenchConfig, lo: SocketAddr) -> anyhow::Result<(ClientResult, ClientResult)> {
    let echo = baseline::start_udp_echo(lo, echo_udp_options(b), b.server.rx_burst, b.server_core, b.idle)?;
    eprintln!("floor: raw UDP echo on {} for {:?}", echo.addr, b.duration);
    let raw = run_client_thread(client_cfg(b, echo.addr, true, "")).context("raw echo run")?;
    echo.stop();
    let repl = baseline::start_replicated_udp_echo(
        lo,
        echo_udp_options(b),
        b.server.rx_burst,
        b.server_core,
        b.idle,
        b.cluster,
    )?;
    eprintln!(
        "floor: UDP echo replicated to a majority of {} over loopback TCP, on {} for {:?}",
        b.cluster, repl.addr, b.duration
    );
    let replicated = run_client_thread(client_cfg(b, repl.addr, true, "")).context("replicated echo run")?;
    repl.stop();
    Ok((raw, replicated))
}
