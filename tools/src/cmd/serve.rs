//! `peregrine serve`: run the server until SIGINT/SIGTERM.

use super::DEFAULT_COUNTERS_FILE;
use anyhow::Context;
use clap::Args;
use peregrine_server::config::{AppKind, ServeConfig};
use peregrine_server::serve as server;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// Exit status when the journal cannot be recovered as it is: corruption in
/// the middle of it (not a torn tail, which recovery drops), or records that
/// do not fit the configured sessions and gateways. Restarting cannot fix
/// either, so a supervisor must not restart on it (systemd:
/// `RestartPreventExitStatus=3`); an operator looks first.
pub const EXIT_JOURNAL_UNRECOVERABLE: u8 = 3;

/// The process exit status for an error a subcommand returned:
/// [`EXIT_JOURNAL_UNRECOVERABLE`] for an unrecoverable journal, 1 for
/// anything else (a journal I/O error may be transient: 1).
pub fn exit_status(e: &anyhow::Error) -> u8 {
    use peregrine_journal::JournalError;
    use peregrine_server::ServeError;
    match e.downcast_ref::<ServeError>() {
        Some(ServeError::Journal { source, .. }) if !matches!(source, JournalError::Io { .. }) => {
            EXIT_JOURNAL_UNRECOVERABLE
        }
        Some(ServeError::Restore { .. }) => EXIT_JOURNAL_UNRECOVERABLE,
        _ => 1,
    }
}

#[derive(Args)]
pub struct ServeArgs {
    /// TOML config file; flags override its keys.
    #[arg(long)]
    config: Option<PathBuf>,
    /// UDP (MoldUDP64) listen address; repeat for more gateways.
    #[arg(long)]
    udp: Vec<SocketAddr>,
    /// TCP (SoupBinTCP) listen address; repeat for more gateways.
    #[arg(long)]
    tcp: Vec<SocketAddr>,
    /// Serve UDP through DPDK as configured in the config file's [dpdk]
    /// section (build with `--features dpdk`).
    #[arg(long)]
    dpdk: bool,
    /// shared | dedicated.
    #[arg(long)]
    layout: Option<String>,
    /// Cores to pin to, e.g. 1 or 2,3,4.
    #[arg(long, value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// spin | yield | backoff.
    #[arg(long)]
    idle: Option<String>,
    /// echo | match.
    #[arg(long)]
    app: Option<AppKind>,
    /// Slots per ring (power of two).
    #[arg(long)]
    ring_capacity: Option<usize>,
    /// Socket receive buffer, bytes.
    #[arg(long)]
    recv_buffer: Option<usize>,
    /// Socket send buffer, bytes.
    #[arg(long)]
    send_buffer: Option<usize>,
    /// Most sessions per gateway.
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Receive messages per burst (UDP: datagrams, or coalesced runs of
    /// up to 64 datagrams).
    #[arg(long)]
    rx_burst: Option<usize>,
    /// Journal directory (recovered and replayed on start).
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Shared-memory counters file for `peregrine stat`.
    #[arg(long)]
    counters_file: Option<PathBuf>,
    /// async | durable.
    #[arg(long)]
    journal_mode: Option<String>,
    /// Durable flush: msync | fdatasync.
    #[arg(long)]
    journal_flush: Option<String>,
    /// Sessions allowed to log in, added after the config file's: NAME:SECRET
    /// for one, PREFIX:COUNT:SECRET for PREFIX + zero-padded 0..COUNT
    /// (`PG:4:s3cret` gives PG00000000..PG00000003). Repeatable.
    #[arg(long = "sessions", value_name = "SPEC")]
    session_specs: Vec<String>,
    /// A second login to a live session: reject | takeover.
    #[arg(long)]
    login_policy: Option<String>,
    /// Cluster: this node's id (overrides `[cluster] node_id`), so every
    /// node can share one config file.
    #[arg(long)]
    node_id: Option<u64>,
    /// Record no reply latency histograms (overrides `latency_histograms`
    /// in the config file): no clock read and no record on the reply path,
    /// to measure what recording costs.
    #[arg(long)]
    no_latency_histograms: bool,
    /// Lock the process's memory into RAM once start-up has allocated it
    /// (sets `lock_memory`): no page faults in the steady state.
    #[arg(long)]
    lock_memory: bool,
}

/// Parses a `--sessions` value.
fn session_spec(s: &str) -> anyhow::Result<peregrine_server::config::SessionSpec> {
    use peregrine_server::config::SessionSpec;
    // Names hold no ':'; a secret may. A number between the first two
    // colons makes it a block.
    let Some((head, rest)) = s.split_once(':') else {
        anyhow::bail!("--sessions {s:?}: expected NAME:SECRET or PREFIX:COUNT:SECRET");
    };
    Ok(match rest.split_once(':') {
        Some((count, secret)) if !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) => {
            SessionSpec::block(head, count.parse()?, secret)
        }
        _ => SessionSpec::single(head, rest),
    })
}

impl ServeArgs {
    fn to_config(&self) -> anyhow::Result<ServeConfig> {
        let mut c = match &self.config {
            Some(p) => ServeConfig::from_file(p)?,
            None => ServeConfig::default(),
        };
        if !self.udp.is_empty() {
            c.udp = self.udp.clone();
        }
        if !self.tcp.is_empty() {
            c.tcp = self.tcp.clone();
        }
        if let Some(v) = self.ring_capacity {
            c.ring_capacity = Some(v);
        }
        macro_rules! take { ($($f:ident),*) => { $(if let Some(v) = &self.$f { c.$f = v.clone(); })* } }
        take!(
            layout,
            cores,
            idle,
            app,
            recv_buffer,
            send_buffer,
            max_sessions,
            rx_burst
        );
        if self.journal.is_some() {
            c.journal = self.journal.clone();
        }
        if self.counters_file.is_some() {
            c.counters_file = self.counters_file.clone();
        }
        if c.counters_file.is_none() {
            c.counters_file = Some(PathBuf::from(DEFAULT_COUNTERS_FILE));
        }
        take!(journal_mode, journal_flush, login_policy);
        for s in &self.session_specs {
            c.sessions.push(session_spec(s)?);
        }
        if let Some(id) = self.node_id {
            match c.cluster.as_mut() {
                Some(cl) => cl.node_id = id,
                None => anyhow::bail!("--node-id needs a [cluster] section in the --config file"),
            }
        }
        if self.no_latency_histograms {
            c.latency_histograms = false;
        }
        if self.lock_memory {
            c.lock_memory = true;
        }
        if self.dpdk && c.dpdk.is_none() {
            anyhow::bail!("--dpdk needs a [dpdk] section in the --config file");
        }
        if !self.dpdk && c.dpdk.is_some() {
            anyhow::bail!("the config has a [dpdk] section: pass --dpdk to serve through it");
        }
        c.validate()?;
        Ok(c)
    }
}

pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    let cfg = a.to_config()?;
    let h = server::start(&cfg)?;
    for u in &h.udp {
        println!("listening udp {u} (MoldUDP64)");
    }
    for t in &h.tcp {
        println!("listening tcp {t} (SoupBinTCP)");
    }
    for d in &h.dpdk {
        println!("listening {d} (MoldUDP64 over DPDK)");
    }
    println!(
        "layout {} cores {:?} idle {} app {:?}",
        cfg.layout, cfg.cores, cfg.idle, cfg.app
    );
    if let Some(r) = &h.recovery {
        println!("{r}");
        println!("journal mode {}, flush {}", cfg.journal_mode, cfg.journal_flush);
    }
    if let Some(f) = &h.feed {
        println!("{f}");
    }
    let stop = h.stop_flag();
    ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed)).context("installing signal handler")?;
    println!("peregrine ready");
    let (report, app) = h.wait()?;
    print!("{}", server::format_report(&report));
    if let server::ServerApp::Match(m) = &app {
        println!("engine state hash {:016x}", m.engine().state_hash());
    }
    if let Some(f) = report.failure {
        anyhow::bail!("sequencer stopped: {f}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn config(extra: &[&str]) -> ServeConfig {
        let mut args = vec!["serve", "--udp", "127.0.0.1:1", "--sessions", "A:x"];
        args.extend_from_slice(extra);
        Cli::parse_from(args).serve.to_config().unwrap()
    }

    #[test]
    fn lock_memory_flag_sets_the_key() {
        assert!(!config(&[]).lock_memory);
        assert!(config(&["--lock-memory"]).lock_memory);
    }

    #[test]
    fn no_latency_histograms_turns_recording_off() {
        assert!(config(&[]).latency_histograms);
        assert!(!config(&["--no-latency-histograms"]).latency_histograms);
    }
}
