//! `peregrine tail`: consume the sequenced feed (MoldUDP64, multicast or
//! unicast, gaps filled from the re-request server) and print it, verify
//! it, or rebuild the matching engine from it.
//!
//! The feed library already promises every sequence exactly once and in
//! order; `--verify` checks that independently of it, with nothing but a
//! counter, so a library bug cannot hide behind its own bookkeeping.
//! `--app match` feeds each record to the same application `replay --app
//! match` rebuilds from a journal, so the two state hashes must agree.

use anyhow::Context;
use clap::Args;
use peregrine_feed::{ConsumerConfig, FeedConsumer, FeedRecord};
use peregrine_server::config::AppKind;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the feed comes from: shared by `tail` and `kafka-bridge`.
#[derive(Args, Clone)]
pub struct FeedSourceArgs {
    /// The feed's multicast stream as GROUP:PORT (joins GROUP on
    /// --interface, binds 0.0.0.0:PORT), or PORT alone (binds
    /// 0.0.0.0:PORT, no group).
    #[arg(long, conflicts_with = "listen", required_unless_present = "listen")]
    feed: Option<String>,
    /// Unicast: bind this address and take the packets sent to it, e.g.
    /// 127.0.0.1:7000 (a publisher with this address as its destination).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The publisher's re-request server (where gaps are asked for); more
    /// than one, comma-separated (a cluster's nodes, this node's first),
    /// are asked in turn when one does not answer.
    #[arg(long, value_delimiter = ',', required = true)]
    rerequest: Vec<SocketAddr>,
    /// Local interface for the multicast membership.
    #[arg(long, default_value = "0.0.0.0")]
    interface: Ipv4Addr,
    /// Expected MoldUDP64 session name (default: adopt the first seen).
    #[arg(long)]
    session: Option<String>,
    /// Silence after which the consumer re-requests from its next sequence
    /// (the tail of the stream may have been lost).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    heartbeat_timeout: Duration,
    /// Re-send an unanswered re-request after this long.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Most messages asked for in one re-request (the server clamps it to
    /// what fits in one packet).
    #[arg(long, default_value_t = 1000)]
    max_request: u16,
    /// Out-of-order records held while a gap is filled.
    #[arg(long, default_value_t = 1 << 16)]
    buffer: usize,
}

/// A `--feed` value: the bind address and the multicast group, if any.
pub fn parse_feed(s: &str) -> anyhow::Result<(SocketAddr, Option<Ipv4Addr>)> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok((
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
            None,
        ));
    }
    let a: SocketAddrV4 = s
        .parse()
        .with_context(|| format!("--feed {s:?}: expected GROUP:PORT or PORT"))?;
    anyhow::ensure!(
        a.ip().is_multicast(),
        "--feed {s:?}: {} is not a multicast group",
        a.ip()
    );
    Ok((
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, a.port())),
        Some(*a.ip()),
    ))
}

impl FeedSourceArgs {
    /// The consumer configuration, delivering from `from_seq`.
    pub fn consumer_config(&self, from_seq: u64) -> anyhow::Result<ConsumerConfig> {
        let (listen, group) = match (&self.feed, self.listen) {
            (Some(f), _) => parse_feed(f)?,
            (None, Some(l)) => (l, None),
            (None, None) => anyhow::bail!("give --feed or --listen"),
        };
        Ok(ConsumerConfig {
            listen,
            group,
            interface: self.interface,
            session: self.session.clone(),
            rerequest: self.rerequest.first().copied(),
            rerequest_fallbacks: self.rerequest.iter().skip(1).copied().collect(),
            from_seq: from_seq.max(1),
            heartbeat_timeout: self.heartbeat_timeout,
            request_timeout: self.request_timeout,
            max_request: self.max_request,
            buffer: self.buffer,
        })
    }
}

#[derive(Args)]
pub struct TailArgs {
    #[command(flatten)]
    source: FeedSourceArgs,
    /// First global sequence (earlier ones are fetched by re-request).
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Last global sequence: stop once it is handled.
    #[arg(long)]
    to: Option<u64>,
    /// Check strict order (each sequence once, no gap) instead of printing;
    /// exit non-zero on any violation.
    #[arg(long)]
    verify: bool,
    /// Rebuild this application from the feed and print its state at the
    /// end (`match`: `last sequence N`, `engine state hash HEX`).
    #[arg(long)]
    app: Option<AppKind>,
    /// Server config file (its [engine] instruments, for --app match).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start from a state snapshot (`peregrine snapshot --out FILE`, or a
    /// cluster node's): the application is restored from it (needs --app
    /// and --config: the server's config file) and the feed is taken from
    /// the sequence after the snapshot's, so a late joiner need not replay
    /// the stream from 1.
    #[arg(long, requires_all = ["app", "config"])]
    snapshot: Option<PathBuf>,
    /// Print no records, only the summary.
    #[arg(long)]
    quiet: bool,
    /// Stop at the feed's End of Session (once everything before it is
    /// handled).
    #[arg(long)]
    until_end: bool,
}

/// One `[name]` table of a TOML file, if present.
pub fn config_table(path: &Path, name: &str) -> anyhow::Result<Option<toml::Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut t: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(t.remove(name))
}

/// The application a feed rebuilds.
enum Rebuild {
    Echo(peregrine_sequencer::EchoApp),
    Match(Box<peregrine_server::match_app::MatchApp>),
}

impl Rebuild {
    /// The application restored from the snapshot at `path`, with the
    /// server config at `config`; returns it with the snapshot's last
    /// sequence.
    fn from_snapshot(kind: AppKind, path: &Path, config: &Path) -> anyhow::Result<(Self, u64)> {
        use peregrine_server::serve::ServerApp;
        let cfg = peregrine_server::config::ServeConfig::from_file(config)
            .with_context(|| format!("reading {}", config.display()))?;
        let snap = peregrine_server::snapshot::StateSnapshot::read(path)?;
        anyhow::ensure!(
            snap.app_kind == kind,
            "{} holds a {:?} application's state, not {kind:?}",
            path.display(),
            snap.app_kind
        );
        let (app, _sessions) = peregrine_server::snapshot::restore_state(&cfg, &snap)?;
        let app = match app {
            ServerApp::Echo(a) => Rebuild::Echo(a),
            ServerApp::Match(m) => Rebuild::Match(m),
        };
        Ok((app, snap.last_seq))
    }

    fn new(kind: AppKind, config: Option<&Path>) -> anyhow::Result<Self> {
        Ok(match kind {
            AppKind::Echo => Rebuild::Echo(peregrine_sequencer::EchoApp::new()),
            AppKind::Match => {
                let ecfg = match config.map(|p| config_table(p, "engine")).transpose()?.flatten() {
                    Some(v) => v.try_into().context("the [engine] table")?,
                    None => peregrine_engine::EngineConfig::sample(),
                };
                Rebuild::Match(Box::new(peregrine_server::match_app::MatchApp::new(&ecfg)?))
            }
        })
    }

    fn apply(&mut self, r: &FeedRecord) {
        let one = std::iter::once(r.to_sequenced_record());
        match self {
            Rebuild::Echo(a) => peregrine_sequencer::replay_journal(a, one),
            Rebuild::Match(a) => peregrine_sequencer::replay_journal(a.as_mut(), one),
        };
    }
}

/// The independent order check of `--verify`.
#[derive(Debug, Default)]
pub struct OrderCheck {
    expected: u64,
    /// Records seen.
    pub records: u64,
    /// Records whose sequence was not the expected one.
    pub violations: u64,
}

impl OrderCheck {
    /// Expects `from`, then `from + 1`, ...
    pub fn new(from: u64) -> Self {
        OrderCheck {
            expected: from,
            ..OrderCheck::default()
        }
    }

    /// Checks one sequence; returns the expected one when it differs.
    pub fn see(&mut self, seq: u64) -> Option<u64> {
        self.records += 1;
        let want = self.expected;
        self.expected = if seq >= want { seq + 1 } else { want };
        (seq != want).then(|| {
            self.violations += 1;
            want
        })
    }
}

pub fn run(a: TailArgs) -> anyhow::Result<()> {
    let (mut app, from) = match (&a.snapshot, a.app, &a.config) {
        (Some(snap), Some(kind), Some(config)) => {
            let (app, last) = Rebuild::from_snapshot(kind, snap, config)?;
            anyhow::ensure!(
                a.from == 1 || a.from == last + 1,
                "--from {} does not follow the snapshot, which ends at sequence {last}",
                a.from
            );
            (Some(app), last + 1)
        }
        _ => (
            a.app.map(|k| Rebuild::new(k, a.config.as_deref())).transpose()?,
            a.from.max(1),
        ),
    };
    let mut consumer = FeedConsumer::new(a.source.consumer_config(from)?)?;
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::Relaxed)).context("installing signal handler")?;
    let print = !a.quiet && !a.verify;
    let to = a.to.unwrap_or(u64::MAX);
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    if print {
        writeln!(
            out,
            "{:>12} {:>9} {:>12} {:>4} {:>20} {:>20}",
            "global_seq", "session", "client_seq", "type", "gateway_rx_ns", "sequencer_ns"
        )?;
    }
    let mut check = OrderCheck::new(from);
    let mut last_seq = from - 1;
    let mut io_err: Option<std::io::Error> = None;
    let started = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let n = consumer.poll(&mut |r: &FeedRecord| {
            if r.global_seq > to {
                return;
            }
            last_seq = r.global_seq;
            if a.verify {
                if let Some(want) = check.see(r.global_seq) {
                    if check.violations <= 10 {
                        eprintln!("order violation: got sequence {}, expected {want}", r.global_seq);
                    }
                }
            }
            if let Some(app) = &mut app {
                app.apply(r);
            }
            if print {
                let line = writeln!(
                    out,
                    "{:>12} {:>9} {:>12} {:>4} {:>20} {:>20}",
                    r.global_seq,
                    format!("{}:{}", r.origin.gateway, r.origin.index),
                    r.client_seq,
                    (peregrine_wire::message::msg_type_of(&r.msg) as char)
                        .escape_default()
                        .to_string(),
                    r.gateway_rx_ns,
                    r.sequencer_ns
                );
                if let Err(e) = line {
                    io_err.get_or_insert(e);
                }
            }
        })?;
        if let Some(e) = io_err.take() {
            return Err(e).context("writing records");
        }
        if last_seq >= to || (a.until_end && consumer.end_of_session()) {
            break;
        }
        if n == 0 {
            out.flush()?;
            consumer.wait(Duration::from_millis(10))?;
        }
    }
    out.flush()?;
    drop(out);
    let st = consumer.stats();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "tail: {} records up to sequence {last_seq} in {secs:.2} s; gaps recovered {}, requests sent {}, duplicates dropped {}, malformed {}",
        st.records, st.gaps, st.requests, st.duplicates, st.malformed
    );
    if let Some(app) = &app {
        println!("last sequence {last_seq}");
        if let Rebuild::Match(m) = app {
            println!("engine state hash {:016x}", m.engine().state_hash());
        }
    }
    if a.verify {
        println!(
            "verify: {} records, {} order violation(s)",
            check.records, check.violations
        );
        anyhow::ensure!(
            check.violations == 0,
            "the feed was not delivered in strict order"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_takes_group_and_port_or_a_port() {
        let (l, g) = parse_feed("239.1.2.3:5000").unwrap();
        assert_eq!(l, "0.0.0.0:5000".parse().unwrap());
        assert_eq!(g, Some(Ipv4Addr::new(239, 1, 2, 3)));
        let (l, g) = parse_feed("7000").unwrap();
        assert_eq!(l, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(g, None);
        assert!(parse_feed("10.0.0.1:5000").is_err(), "not a group");
        assert!(parse_feed("nonsense").is_err());
    }

    #[test]
    fn rerequest_takes_a_list_whose_first_is_asked_first() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            source: FeedSourceArgs,
        }
        let cli = Cli::try_parse_from([
            "tail",
            "--listen",
            "127.0.0.1:7000",
            "--rerequest",
            "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
        ])
        .unwrap();
        let c = cli.source.consumer_config(1).unwrap();
        assert_eq!(c.rerequest, Some("127.0.0.1:7001".parse().unwrap()));
        assert_eq!(
            c.rerequest_fallbacks,
            vec![
                "127.0.0.1:7002".parse().unwrap(),
                "127.0.0.1:7003".parse().unwrap()
            ]
        );
        assert!(Cli::try_parse_from(["tail", "--listen", "127.0.0.1:7000"]).is_err());
    }

    #[test]
    fn order_check_counts_gaps_duplicates_and_reorders() {
        let mut c = OrderCheck::new(5);
        assert_eq!(c.see(5), None);
        assert_eq!(c.see(6), None);
        assert_eq!(c.see(8), Some(7), "gap");
        assert_eq!(c.see(8), Some(9), "duplicate");
        assert_eq!(c.see(9), None, "back in step");
        assert_eq!(c.see(3), Some(10), "backwards");
        assert_eq!(c.see(10), None);
        assert_eq!((c.records, c.violations), (7, 3));
    }
}
