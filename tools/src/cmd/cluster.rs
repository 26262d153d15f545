//! `peregrine cluster status`: each node's role, term, log indexes and its
//! peers' replication lag, from the nodes' counters files (no request to
//! the nodes, so checking never disturbs them).

use anyhow::Context;
use clap::{Args, Subcommand};
use peregrine_server::cluster_status::NodeStatus;
use peregrine_server::counters_file::read_counters;
use std::path::PathBuf;

#[derive(Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    cmd: ClusterCmd,
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Role, term, commit/applied index and each peer's match index and
    /// lag, per node.
    Status(StatusArgs),
    /// Waits until exactly one live node serves (a leader caught up and
    /// accepting clients), then prints its id and how long the wait took.
    /// For scripts that kill or stop leaders and time the failover.
    WaitLeader(WaitArgs),
}

#[derive(Args)]
struct WaitArgs {
    /// Counters files of the nodes.
    #[arg(long = "file", required = true)]
    files: Vec<PathBuf>,
    /// Node ids that do not count (the leader just killed or stopped).
    #[arg(long = "not")]
    not: Vec<u64>,
    /// Give up (exit status 1) after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// Measure from this wall-clock time (ns since the Unix epoch, e.g.
    /// `date +%s%N` taken just before the kill) instead of from the start
    /// of the wait.
    #[arg(long)]
    since_ns: Option<u128>,
}

#[derive(Args)]
struct StatusArgs {
    /// Counters files of the nodes to show (one per node on this host).
    #[arg(long = "file", default_value = super::DEFAULT_COUNTERS_FILE)]
    files: Vec<PathBuf>,
    /// One JSON array of node objects.
    #[arg(long)]
    json: bool,
}

pub fn run(a: ClusterArgs) -> anyhow::Result<()> {
    match a.cmd {
        ClusterCmd::Status(a) => status(a),
        ClusterCmd::WaitLeader(a) => wait_leader(a),
    }
}

/// Whether process `pid` exists and is not stopped (a stopped leader's
/// counters file still says it serves).
fn runnable(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "T" && state != "t" && state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn wait_leader(a: WaitArgs) -> anyhow::Result<()> {
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
    let start = Instant::now();
    let since = a.since_ns.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    });
    loop {
        let serving: Vec<u64> = a
            .files
            .iter()
            .filter_map(|f| read_counters(f).ok())
            .filter(|snap| runnable(snap.pid))
            .filter_map(|snap| NodeStatus::from_snapshot(&snap))
            .filter(|n| n.serving && !a.not.contains(&n.node_id))
            .map(|n| n.node_id)
            .collect();
        if let [leader] = serving[..] {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let ms = now.saturating_sub(since) as f64 / 1e6;
            println!("{leader} {ms:.1}");
            return Ok(());
        }
        if start.elapsed() > a.timeout {
            anyhow::bail!(
                "no single serving leader within {:?} (serving: {serving:?})",
                a.timeout
            );
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn status(a: StatusArgs) -> anyhow::Result<()> {
    let mut nodes = Vec::new();
    for f in &a.files {
        let snap = read_counters(f).with_context(|| format!("reading {}", f.display()))?;
        let status = NodeStatus::from_snapshot(&snap)
            .with_context(|| format!("{} is not a cluster node's counters file", f.display()))?;
        nodes.push(status);
    }
    if a.json {
        println!("{}", serde_json::to_string(&nodes)?);
    } else {
        for n in &nodes {
            print!("{}", n.to_text());
        }
        let leaders: Vec<u64> = nodes.iter().filter(|n| n.serving).map(|n| n.node_id).collect();
        if nodes.len() > 1 && leaders.len() != 1 {
            println!("WARNING: {} nodes serving: {leaders:?}", leaders.len());
        }
    }
    Ok(())
}
