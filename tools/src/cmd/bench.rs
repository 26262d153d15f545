//! `peregrine bench`: the latency/throughput harness, a same-run raw-echo
//! baseline first, then Peregrine.

use super::load::LoadArgs;
use clap::Args;
use peregrine_server::config::ServeConfig;
use peregrine_server::pinning;
use peregrine_tools::bench::{self, BenchConfig};
use peregrine_tools::client::TransportKind;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Args)]
pub struct BenchArgs {
    /// udp | tcp.
    #[arg(long, default_value = "udp")]
    transport: String,
    /// Use a running server at this address instead of an in-process one.
    #[arg(long)]
    connect: Option<SocketAddr>,
    /// Skip the same-run raw echo baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Server thread layout (in-process server).
    #[arg(long, default_value = "shared")]
    layout: String,
    /// Server (and baseline echo) core; default 1 on machines with 2+ cores.
    #[arg(long)]
    server_core: Option<usize>,
    /// Client core; default 0 on machines with 2+ cores.
    #[arg(long)]
    client_core: Option<usize>,
    /// spin | yield | backoff, for server and baseline echo.
    #[arg(long, default_value = "spin")]
    idle: String,
    /// Server config file (in-process server); flags win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Measure an in-process cluster of this many nodes (3 or 5) against
    /// the same server as a single node, instead of one server against the
    /// raw echo.
    #[arg(long, default_value_t = 0)]
    cluster: usize,
    /// The cluster's acknowledgement level: replicated | local.
    #[arg(long, default_value = "replicated")]
    ack: String,
    /// Cluster: run each node's loop on a thread of its own (all on the
    /// server core, switched by the scheduler) instead of one thread
    /// polling every node's loop in turn.
    #[arg(long)]
    node_threads: bool,
    /// Fault injection (UDP): drop, duplicate and reorder this fraction of
    /// datagrams each way through a relay, e.g. 0.05.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Draw the latency percentile plot (Peregrine and the same-run
    /// baseline) into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    let transport = match a.transport.as_str() {
        "udp" => TransportKind::Udp,
        "tcp" => TransportKind::Tcp,
        "dpdk-ring" => return run_dpdk_ring_bench(a),
        o => anyhow::bail!("unknown transport {o:?} (udp, tcp, dpdk-ring)"),
    };
    let mut server_cfg = match &a.config {
        Some(p) => ServeConfig::from_file(p)?,
        None => ServeConfig::default(),
    };
    server_cfg.layout = a.layout.clone();
    server_cfg.idle = a.idle.clone();
    let two = pinning::core_count() >= 2;
    let server_core = a.server_core.or(if two { Some(1) } else { None });
    let client_core = a.client_core.or(if two { Some(0) } else { None });
    let l = &a.load;
    let cfg = BenchConfig {
        transport,
        mode: l.mode(),
        sessions: l.sessions,
        batch: l.batch(),
        duration: l.duration,
        warmup: l.warmup(),
        flow: l.flow,
        connect: a.connect,
        no_baseline: a.no_baseline,
        server: server_cfg,
        client_core,
        server_core,
        idle: a.idle.parse().map_err(anyhow::Error::msg)?,
        json: l.json.clone(),
        hgrm: l.hgrm.clone(),
        plot: a.plot.clone(),
        title: peregrine_tools::plot::command_line(),
        loss: a.loss,
        cluster: a.cluster,
        node_threads: a.node_threads,
        ack: match a.ack.as_str() {
            "replicated" => peregrine_cluster::AckLevel::Replicated,
            "local" => peregrine_cluster::AckLevel::Local,
            o => anyhow::bail!("unknown ack level {o:?} (replicated, local)"),
        },
        secret: l.secret.clone(),
    };
    bench::run(&cfg)?;
    Ok(())
}

/// `bench --transport dpdk-ring --throughput`: the DPDK path's software
/// cost on one core, then the kernel UDP path in the same run.
/// `x` rounded to a tenth, for the JSON report.
#[cfg(feature = "dpdk")]
fn tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(feature = "dpdk")]
fn run_dpdk_ring_bench(a: BenchArgs) -> anyhow::Result<()> {
    use peregrine_tools::client::{flow::FlowKind, Mode};
    let l = &a.load;
    anyhow::ensure!(l.throughput, "--transport dpdk-ring measures --throughput only");
    anyhow::ensure!(
        a.plot.is_none(),
        "--transport dpdk-ring measures throughput only: no latency plot"
    );
    let two = pinning::core_count() >= 2;
    let core = a.server_core.unwrap_or(if two { 1 } else { 0 });
    let duration = l.duration;
    let d = std::thread::Builder::new()
        .name("dpdk-ring".into())
        .spawn(move || peregrine_tools::dpdk_ring::run_dpdk_ring(duration, core, 32))?
        .join()
        .map_err(|_| anyhow::anyhow!("dpdk-ring thread panicked"))??;
    eprintln!("dpdk-ring done; now the kernel UDP path for comparison");
    let kernel = bench::run(&BenchConfig {
        transport: TransportKind::Udp,
        mode: Mode::Throughput { window: l.window },
        sessions: l.sessions,
        batch: 14,
        duration,
        warmup: l.warmup(),
        flow: FlowKind::Echo,
        connect: None,
        no_baseline: true,
        server: ServeConfig::default(),
        client_core: a.client_core.or(if two { Some(0) } else { None }),
        server_core: Some(core),
        idle: "spin".parse().map_err(anyhow::Error::msg)?,
        json: None,
        hgrm: None,
        plot: None,
        title: String::new(),
        loss: 0.0,
        cluster: 0,
        node_threads: false,
        ack: peregrine_cluster::AckLevel::Replicated,
        secret: None,
    })?;
    let kernel_tp = kernel["throughput_msgs_per_s"].as_f64().unwrap_or(0.0);
    let json = serde_json::json!({
        "transport": "dpdk-ring",
        "mode": "throughput",
        "messages_sent": d.sent,
        "messages_acked": d.acked,
        "lost": 0,
        "throughput_msgs_per_s": d.throughput().round(),
        "cycles_per_message": tenth(d.cycles_per_message),
        "reply_frames_looped_and_dropped": d.replies_looped,
        "stage_cycles_per_message": {
            "inject": tenth(d.stages.inject),
            "rx": tenth(d.stages.rx),
            "parse": tenth(d.stages.parse),
            "gateway": tenth(d.stages.gateway),
            "sequencer": tenth(d.stages.sequencer),
            "reply_build": tenth(d.stages.reply_build),
            "tx": tenth(d.stages.tx),
            "gateway_rx": tenth(d.stages.gateway_rx()),
            "gateway_tx": tenth(d.stages.gateway_tx()),
            "peregrine": tenth(d.stages.peregrine()),
        },
        "kernel_udp_throughput_msgs_per_s": kernel_tp,
        "dpdk_to_kernel_ratio": if kernel_tp > 0.0 { (d.throughput() / kernel_tp * 100.0).round() / 100.0 } else { 0.0 },
    });
    println!(
        "\ndpdk-ring (one core, net_ring vdev, full rx -> gateway -> sequencer -> ack -> tx path):\n  \
         {:.0} msgs/s, {:.1} cycles/msg over {:.1} s ({} msgs)\nkernel UDP on loopback, same run (client + server, 2 cores): {:.0} msgs/s\nratio dpdk-ring / kernel UDP: {:.2}",
        d.throughput(),
        d.cycles_per_message,
        d.secs,
        d.acked,
        kernel_tp,
        if kernel_tp > 0.0 { d.throughput() / kernel_tp } else { 0.0 }
    );
    let st = d.stages;
    println!(
        "cycles per message by stage: gateway rx {:.1} = rx burst {:.1} + parse {:.1} (includes dropping our looped-back replies) \
         + gateway {:.1} (MoldUDP64, sessions, input ring); sequencer {:.1}; gateway tx {:.1} = reply build {:.1} \
         (output ring, reply log, packets into mbufs, checksums) + tx burst {:.1}; Peregrine {:.1}; client injection {:.1} (harness)",
        st.gateway_rx(),
        st.rx,
        st.parse,
        st.gateway,
        st.sequencer,
        st.gateway_tx(),
        st.reply_build,
        st.tx,
        st.peregrine(),
        st.inject
    );
    if let Some(p) = &l.json {
        std::fs::write(p, serde_json::to_string_pretty(&json)? + "\n")?;
    }
    Ok(())
}

#[cfg(not(feature = "dpdk"))]
fn run_dpdk_ring_bench(_: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this peregrine was built without DPDK: `cargo run --release --features peregrine-tools/dpdk --bin peregrine -- bench --transport dpdk-ring --throughput` (needs libdpdk-dev)"
    )
}
