//! `peregrine`: serve, client, bench, replay, snapshot, stat, relay, doctor, exporter, cluster, feed, tail,
//! and with feature `kafka` kafka-bridge / kafka-mock / kafka-check (one file each under `cmd/`).

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

mod cmd;

#[derive(Parser)]
#[command(
    name = "peregrine",
    version,
    about = "Low-latency sequencer and matching engine"
)]
struct Cli {
    /// How log lines on stderr look: `text` for people, `json` for one JSON
    /// object per line (journald, log shippers). Before or after the
    /// subcommand.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

/// The `tracing` output format on stderr. Logging is never on the hot path:
/// the polling loops count, they do not log.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: timestamp, level, target, fields.
    Json,
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
    /// Publish a journal as the sequenced feed (MoldUDP64 + re-requests).
    Feed(cmd::feed::FeedArgs),
    /// Consume the sequenced feed: print, verify, or rebuild the engine.
    Tail(cmd::tail::TailArgs),
    /// The sequenced feed into one Kafka partition, exactly once.
    #[cfg(feature = "kafka")]
    KafkaBridge(cmd::kafka_bridge::KafkaBridgeArgs),
    /// A Kafka mock cluster on 127.0.0.1 (librdkafka's), until SIGTERM.
    #[cfg(feature = "kafka")]
    KafkaMock(cmd::kafka_mock::KafkaMockArgs),
    /// Check a Kafka partition holds exactly the records 1..=N in order.
    #[cfg(feature = "kafka")]
    KafkaCheck(cmd::kafka_mock::KafkaCheckArgs),
}

/// Installs the `tracing` subscriber: `info` and up unless `RUST_LOG` says
/// otherwise, on stderr, in `format`.
fn init_logs(format: LogFormat) {
    // Role changes and recovery notes are `info`: shown unless RUST_LOG
    // says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let result = match cli.cmd {
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
        Cmd::Feed(a) => cmd::feed::run(a),
        Cmd::Tail(a) => cmd::tail::run(a),
        #[cfg(feature = "kafka")]
        Cmd::KafkaBridge(a) => cmd::kafka_bridge::run(a),
        #[cfg(feature = "kafka")]
        Cmd::KafkaMock(a) => cmd::kafka_mock::run_mock(a),
        #[cfg(feature = "kafka")]
        Cmd::KafkaCheck(a) => cmd::kafka_mock::run_check(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let status = cmd::serve::exit_status(&e);
            match cli.log_format {
                LogFormat::Text => eprintln!("Error: {e:?}"),
                LogFormat::Json => tracing::error!(exit_status = status, "{e:#}"),
            }
            ExitCode::from(status)
        }
    }
}
