//! `peregrine`: serve, client, bench.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use peregrine_tools::bench::{self, BenchConfig};
use peregrine_tools::client::flow::FlowKind;
use peregrine_tools::client::{self, ClientConfig, Mode, TransportKind};
use peregrine_tools::config::{AppKind, ServeConfig};
use peregrine_tools::report::{hgrm, rtt_json};
use peregrine_tools::{pinning, server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

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
    Serve(ServeArgs),
    /// Run a UDP or TCP client simulator against a running server.
    Client(ClientArgs),
    /// Latency/throughput harness: same-run raw-echo baseline, then Peregrine.
    Bench(BenchArgs),
    /// Print, filter and verify a journal (a directory or one segment file).
    Replay(ReplayArgs),
    /// Live counters of a running server, from its shared-memory file.
    Stat(StatArgs),
    /// A lossy UDP relay (fault injection) between clients and a server.
    Relay(RelayArgs),
}

#[derive(Args)]
struct RelayArgs {
    /// Where clients send.
    #[arg(long)]
    listen: SocketAddr,
    /// The server.
    #[arg(long)]
    upstream: SocketAddr,
    /// Probability of each fault (drop, duplicate, reorder) per datagram and direction.
    #[arg(long)]
    loss: f64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Where `serve` puts its counters unless told otherwise.
const DEFAULT_COUNTERS_FILE: &str = "/dev/shm/peregrine.stats";

#[derive(Args)]
struct StatArgs {
    /// The server's counters file.
    #[arg(long, default_value = DEFAULT_COUNTERS_FILE)]
    file: PathBuf,
    /// Print once and exit.
    #[arg(long)]
    once: bool,
    /// Refresh interval.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Show counters that are zero too.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct ReplayArgs {
    /// Journal directory or segment file.
    path: PathBuf,
    /// Only records of this session, as GATEWAY:INDEX.
    #[arg(long)]
    session: Option<String>,
    /// First global sequence number to print.
    #[arg(long)]
    from: Option<u64>,
    /// Last global sequence number to print.
    #[arg(long)]
    to: Option<u64>,
    /// Print only the summary, not the records.
    #[arg(long)]
    summary: bool,
    /// Also rebuild the application from the whole journal and print its
    /// state (the matching engine's state hash).
    #[arg(long)]
    app: Option<AppKind>,
    /// Server config file (for the engine's instruments with --app match).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Check a client's `--answers-file` against the journal: every answer
    /// that carries a global sequence number must be the journal's record at
    /// that number (same client timestamp and order id / tag). Exit non-zero
    /// otherwise.
    #[arg(long)]
    check_answers: Vec<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
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
    /// Datagrams per receive burst.
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
}

/// Parses a `--sessions` value.
fn session_spec(s: &str) -> anyhow::Result<peregrine_tools::config::SessionSpec> {
    use peregrine_tools::config::SessionSpec;
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
        macro_rules! take { ($($f:ident),*) => { $(if let Some(v) = &self.$f { c.$f = v.clone(); })* } }
        take!(
            layout,
            cores,
            idle,
            app,
            ring_capacity,
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

#[derive(Args, Clone)]
struct LoadArgs {
    /// Client sessions.
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    /// Open loop at this many messages per second.
    #[arg(long, conflicts_with_all = ["pingpong", "throughput"])]
    rate: Option<f64>,
    /// One message in flight (default).
    #[arg(long)]
    pingpong: bool,
    /// Closed loop, `--window` messages in flight.
    #[arg(long)]
    throughput: bool,
    /// Messages in flight in throughput mode.
    #[arg(long, default_value_t = 14 * 512)]
    window: usize,
    /// Messages per datagram / write. Default: 1 in ping-pong mode, 14 in
    /// throughput mode; in rate mode the messages due at the same moment
    /// are packed (up to 14), none ever held back for company.
    #[arg(long)]
    batch: Option<usize>,
    /// Sending time, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Warm-up discarded from the results.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// echo | orders.
    #[arg(long, default_value = "echo")]
    flow: FlowKind,
    /// Write the JSON summary here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write HdrHistogram percentile distribution here.
    #[arg(long)]
    hgrm: Option<PathBuf>,
    /// Number of the first session: sessions are PG + 8 digits from it
    /// (simulators sharing a server need disjoint sessions).
    #[arg(long, default_value_t = 0)]
    first_session: usize,
    /// The sessions' secret (sessions are PG00000000, PG00000001, ...).
    /// `bench` with an in-process server and no [[sessions]] in its config
    /// generates one.
    #[arg(long)]
    secret: Option<String>,
}

impl LoadArgs {
    fn mode(&self) -> Mode {
        if let Some(r) = self.rate {
            Mode::Rate(r)
        } else if self.throughput {
            Mode::Throughput { window: self.window }
        } else {
            Mode::PingPong
        }
    }
    fn batch(&self) -> usize {
        match (self.batch, self.mode()) {
            (Some(b), _) => b.clamp(1, 14),
            (None, Mode::Throughput { .. }) => 14,
            (None, Mode::Rate(_)) => 0,
            (None, Mode::PingPong) => 1,
        }
    }
    fn warmup(&self) -> Duration {
        self.warmup.min(self.duration / 2)
    }
}

#[derive(Args)]
struct ClientArgs {
    /// Server UDP address.
    #[arg(long, conflicts_with = "tcp", required_unless_present = "tcp")]
    udp: Option<SocketAddr>,
    /// Server TCP address.
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// Core to pin the client to.
    #[arg(long)]
    core: Option<usize>,
    /// UDP: resend a message unanswered for this many milliseconds (with its
    /// original client sequence; the server answers copies with the
    /// original reply).
    #[arg(long)]
    retransmit_ms: Option<u64>,
    /// Write every first answer (global_seq session client_seq client_ts
    /// order_id_or_tag kind) to this file, e.g. to check it against the
    /// journal after crashes.
    #[arg(long)]
    answers_file: Option<PathBuf>,
    /// Exit non-zero unless every message was acknowledged exactly once and
    /// the acknowledged global sequence numbers are gap-free (use when this
    /// client is the server's only sender).
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args)]
struct BenchArgs {
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
    /// Fault injection (UDP): drop, duplicate and reorder this fraction of
    /// datagrams each way through a relay, e.g. 0.05.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    #[command(flatten)]
    load: LoadArgs,
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
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

fn run_client(a: ClientArgs) -> anyhow::Result<()> {
    let (transport, server) = match (a.udp, a.tcp) {
        (Some(u), _) => (TransportKind::Udp, u),
        (None, Some(t)) => (TransportKind::Tcp, t),
        _ => anyhow::bail!("give --udp ADDR or --tcp ADDR"),
    };
    let l = &a.load;
    let cfg = ClientConfig {
        sessions: l.sessions,
        mode: l.mode(),
        batch: l.batch(),
        duration: l.duration,
        warmup: l.warmup(),
        flow: l.flow,
        core: a.core,
        keep_global_seqs: a.verify,
        keep_answers: a.answers_file.is_some(),
        retransmit: a.retransmit_ms.map(Duration::from_millis),
        secret: l.secret.clone().unwrap_or_default(),
        first_session: l.first_session,
        ..ClientConfig::new(transport, server)
    };
    let r = client::run(&cfg)?;
    let h = &r.recorder.hist;
    let summary = serde_json::json!({
        "transport": transport.name(),
        "mode": cfg.mode.name(),
        "offered_rate": r.offered_rate,
        "messages_sent": r.sent,
        "messages_acked": r.recorder.answered - r.recorder.rejected,
        "messages_rejected": r.recorder.rejected,
        "lost": r.lost(),
        "duplicates": r.recorder.duplicates,
        "reports": r.recorder.reports,
        "throughput_msgs_per_s": r.throughput().round(),
        "rtt_ns": rtt_json(h),
    });
    println!(
        "sent {} acked {} rejected {} lost {} duplicates {} reports {} throughput {:.0} msg/s",
        r.sent,
        r.recorder.answered - r.recorder.rejected,
        r.recorder.rejected,
        r.lost(),
        r.recorder.duplicates,
        r.recorder.reports,
        r.throughput()
    );
    println!(
        "rtt µs: p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} p99.99 {:.2} max {:.2} mean {:.2} ({} samples)",
        h.value_at_percentile(50.0) as f64 / 1e3,
        h.value_at_percentile(90.0) as f64 / 1e3,
        h.value_at_percentile(99.0) as f64 / 1e3,
        h.value_at_percentile(99.9) as f64 / 1e3,
        h.value_at_percentile(99.99) as f64 / 1e3,
        h.max() as f64 / 1e3,
        h.mean() / 1e3,
        h.len()
    );
    if let Some(p) = &l.json {
        std::fs::write(p, serde_json::to_string_pretty(&summary)? + "\n")?;
    }
    if let Some(p) = &l.hgrm {
        std::fs::write(p, hgrm(h))?;
    }
    if let (Some(p), Some(ans)) = (&a.answers_file, &r.recorder.answers) {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(p)?);
        for x in ans {
            writeln!(
                f,
                "{} {} {} {} {} {:?}",
                x.global_seq, x.session, x.client_seq, x.client_ts_ns, x.order_id, x.kind
            )?;
        }
    }
    if a.verify {
        anyhow::ensure!(r.sent > 0, "verify: nothing was sent");
        anyhow::ensure!(r.lost() == 0, "verify: {} messages never acknowledged", r.lost());
        anyhow::ensure!(
            r.recorder.duplicates == 0,
            "verify: {} duplicate acks",
            r.recorder.duplicates
        );
        anyhow::ensure!(
            r.recorder.rejected == 0,
            "verify: {} rejects",
            r.recorder.rejected
        );
        let mut g = r.recorder.global_seqs.clone().unwrap_or_default();
        g.sort_unstable();
        let first = g.first().copied().unwrap_or(0);
        let gap_free = g.iter().enumerate().all(|(i, &v)| v == first + i as u64);
        anyhow::ensure!(
            gap_free && g.len() as u64 == r.sent,
            "verify: acknowledged global sequence numbers are not one gap-free run"
        );
        println!(
            "verify: OK, {} messages acknowledged once each, global sequence {first}..={} gap-free",
            r.sent,
            first + r.sent - 1
        );
    }
    Ok(())
}

fn run_bench(a: BenchArgs) -> anyhow::Result<()> {
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
        loss: a.loss,
        secret: l.secret.clone(),
    };
    bench::run(&cfg)?;
    Ok(())
}

fn relay(a: RelayArgs) -> anyhow::Result<()> {
    use peregrine_tools::relay::{start, Faults};
    let r = start(a.listen, a.upstream, Faults::uniform(a.loss), a.seed)?;
    println!(
        "relay {} -> {} with {:.1}% drop/duplicate/reorder each way; Ctrl-C to stop",
        r.addr,
        a.upstream,
        a.loss * 100.0
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = std::sync::Arc::clone(&stop);
    ctrlc::set_handler(move || s2.store(true, Ordering::Relaxed))?;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("{:?}", r.stop()?);
    Ok(())
}

fn stat(a: StatArgs) -> anyhow::Result<()> {
    use peregrine_sequencer::counters_file::read_counters;
    let mut prev: Option<(std::time::Instant, Vec<Vec<u64>>)> = None;
    loop {
        let snap =
            read_counters(&a.file).with_context(|| format!("is a server running? ({})", a.file.display()))?;
        let now = std::time::Instant::now();
        let mut out = String::new();
        use std::fmt::Write as _;
        if !a.once {
            out.push_str("\x1b[2J\x1b[H");
        }
        let _ = writeln!(out, "peregrine stat: pid {} ({})", snap.pid, a.file.display());
        let values: Vec<Vec<u64>> = snap
            .blocks
            .iter()
            .map(|(_, c)| c.iter().map(|p| p.1).collect())
            .collect();
        for (b, (title, counters)) in snap.blocks.iter().enumerate() {
            let _ = writeln!(out, "\n{title}");
            for (k, (name, v)) in counters.iter().enumerate() {
                if *v == 0 && !a.all {
                    continue;
                }
                let rate = prev.as_ref().and_then(|(t, pv)| {
                    let dt = now.duration_since(*t).as_secs_f64();
                    let old = pv.get(b)?.get(k)?;
                    (dt > 0.0).then(|| v.saturating_sub(*old) as f64 / dt)
                });
                match rate {
                    Some(r) => {
                        let _ = writeln!(out, "  {name:<28} {v:>16} {r:>14.0}/s");
                    }
                    None => {
                        let _ = writeln!(out, "  {name:<28} {v:>16}");
                    }
                }
            }
        }
        print!("{out}");
        if a.once {
            return Ok(());
        }
        prev = Some((now, values));
        std::thread::sleep(a.interval);
    }
}

fn replay(a: ReplayArgs) -> anyhow::Result<()> {
    use peregrine_sequencer::journal::{Journal, RecordFilter};
    use peregrine_sequencer::wire::message::client_ts_of;
    use std::io::Write;
    let rec = Journal::open_read_only(&a.path).with_context(|| format!("reading {}", a.path.display()))?;
    println!(
        "journal {}: {} segment(s), {} records, sequence {}..={}, every record CRC32C-checked and gap-free",
        a.path.display(),
        rec.segments().count(),
        rec.len(),
        rec.first_seq(),
        rec.last_seq().map_or("-".to_string(), |s| s.to_string())
    );
    if let Some(t) = rec.tail() {
        println!("torn tail (would be truncated on server start): {t:?}");
    }
    if !a.summary {
        let mut f = RecordFilter::all();
        f = f.seqs(a.from.unwrap_or(0)..=a.to.unwrap_or(u64::MAX));
        if let Some(s) = &a.session {
            let (g, i) = s.split_once(':').context("--session takes GATEWAY:INDEX")?;
            f = f.session(g.parse()?, i.parse()?);
        }
        let out = std::io::stdout();
        let mut out = std::io::BufWriter::new(out.lock());
        writeln!(
            out,
            "{:>12} {:>9} {:>12} {:>4} {:>20} {:>20} {:>20}",
            "global_seq", "session", "client_seq", "type", "client_ts_ns", "gateway_rx_ns", "sequencer_ns"
        )?;
        for r in rec.select(&f) {
            writeln!(
                out,
                "{:>12} {:>9} {:>12} {:>4} {:>20} {:>20} {:>20}",
                r.global_seq,
                format!("{}:{}", r.origin.gateway, r.origin.index),
                r.client_seq,
                (r.msg[0] as char).escape_default().to_string(),
                client_ts_of(&r.msg),
                r.gateway_rx_ns,
                r.sequencer_ns
            )?;
        }
    }
    for path in &a.check_answers {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let (mut checked, mut bad) = (0u64, 0u64);
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            anyhow::ensure!(f.len() >= 5, "{}: bad line {line:?}", path.display());
            let (g, ts, id): (u64, u64, u64) = (f[0].parse()?, f[3].parse()?, f[4].parse()?);
            if g == 0 {
                continue; // answered before sequencing (gateway reject)
            }
            checked += 1;
            let ok = rec
                .get(g)
                .is_some_and(|r| client_ts_of(&r.msg) == ts && r.msg[16..24] == id.to_le_bytes());
            if !ok {
                bad += 1;
                if bad <= 10 {
                    eprintln!("answer not in the journal: {line}");
                }
            }
        }
        println!(
            "{}: {checked} acknowledged messages checked against the journal, {bad} missing or different",
            path.display()
        );
        anyhow::ensure!(bad == 0, "acknowledged messages missing from the journal");
    }
    if let Some(kind) = a.app {
        let cfg = match &a.config {
            Some(p) => ServeConfig::from_file(p)?,
            None => ServeConfig::default(),
        };
        match kind {
            AppKind::Echo => {
                let mut app = peregrine_sequencer::EchoApp::new();
                let n = peregrine_sequencer::replay_journal(&mut app, rec.records());
                println!("replayed {n} records through the echo app");
            }
            AppKind::Match => {
                let ecfg = cfg.engine.unwrap_or_else(peregrine_engine::EngineConfig::sample);
                let mut app = peregrine_tools::match_app::MatchApp::new(&ecfg)?;
                let n = peregrine_sequencer::replay_journal(&mut app, rec.records());
                println!(
                    "replayed {n} records; engine state hash {:016x}",
                    app.engine().state_hash()
                );
            }
        }
    }
    Ok(())
}

/// `bench --transport dpdk-ring --throughput`: the DPDK path's software
/// cost on one core, then the kernel UDP path in the same run.
#[cfg(feature = "dpdk")]
fn run_dpdk_ring_bench(a: BenchArgs) -> anyhow::Result<()> {
    let l = &a.load;
    anyhow::ensure!(l.throughput, "--transport dpdk-ring measures --throughput only");
    let two = pinning::core_count() >= 2;
    let core = a.server_core.unwrap_or(if two { 1 } else { 0 });
    let duration = l.duration;
    let d = std::thread::Builder::new()
        .name("dpdk-ring".into())
        .spawn(move || peregrine_tools::dpdk::run_dpdk_ring(duration, core, 32))?
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
        loss: 0.0,
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
        "cycles_per_message": (d.cycles_per_message * 10.0).round() / 10.0,
        "reply_frames_looped_and_dropped": d.replies_looped,
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

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Serve(a) => serve(a),
        Cmd::Client(a) => run_client(a),
        Cmd::Bench(a) => run_bench(a),
        Cmd::Replay(a) => replay(a),
        Cmd::Stat(a) => stat(a),
        Cmd::Relay(a) => relay(a),
    }
}
