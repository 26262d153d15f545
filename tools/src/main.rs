//! `peregrine`: serve, client, bench, replay, snapshot, stat, relay, doctor, exporter, cluster (one file each
//! under `cmd/`).

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "peregrine",
    version,
    about = "Low-latency sequencer and matching engine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server until SIGINT/SIGTERM, then print counters.
    Serve(cmd::serve::ServeArgs),
    /// Run a UDP or TCP client simulator against a running server.
    Client(cmd::client::ClientArgs),
    /// Latency/throughput harness: same-run raw-echo baseline, then Peregrine.
    Bench(cmd::bench::BenchArgs),
    /// Print, filter and verify a journal (a directory or one segment file).
    Replay(cmd::replay::ReplayArgs),
    /// Replay a journal into a state snapshot file (`--inspect`: show one).
    Snapshot(cmd::snapshot::SnapshotArgs),
    /// Live counters of a running server, from its shared-memory file.
    Stat(cmd::stat::StatArgs),
    /// A lossy UDP relay (fault injection) between clients and a server.
    Relay(cmd::relay::RelayArgs),
    /// Check this host for a low-latency deployment of a config.
    Doctor(cmd::doctor::DoctorArgs),
    /// Serve a running server's counters to Prometheus over HTTP.
    Exporter(cmd::exporter::ExporterArgs),
    /// A replicated cluster's state (`cluster status`).
    Cluster(cmd::cluster::ClusterArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // Role changes and recovery notes are `info`: shown unless
            // RUST_LOG says otherwise.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Serve(a) => cmd::serve::run(a),
        Cmd::Client(a) => cmd::client::run(a),
        Cmd::Bench(a) => cmd::bench::run(a),
        Cmd::Replay(a) => cmd::replay::run(a),
        Cmd::Snapshot(a) => cmd::snapshot::run(a),
        Cmd::Stat(a) => cmd::stat::run(a),
        Cmd::Relay(a) => cmd::relay::run(a),
        Cmd::Doctor(a) => cmd::doctor::run(a),
        Cmd::Exporter(a) => cmd::exporter::run(a),
        Cmd::Cluster(a) => cmd::cluster::run(a),
    }
}
