//! `peregrine stat`: a running server's counters, from its shared-memory file.
//!
//! Every polling thread of the server copies its counters into the file once
//! a millisecond, whatever its idle strategy, so what this prints is at most
//! a couple of milliseconds old at the moment it reads the file.
//!
//! Like `top`, it refreshes in place every `--watch` interval and shows each
//! counter's rate per second since the previous refresh; `--json` prints one
//! JSON object per refresh instead (one per line), for scripts.
//!
//! Below the counters it shows each gateway's reply latency (receive to
//! transmit) and the sequencer's (sequencing to reply ready): p50, p99,
//! p99.9 and max over the server's last publishing interval (100 ms) and
//! since start. Percentiles come from fixed
//! log-linear buckets: each is the upper bound of its bucket, at most
//! 6.25% above the exact value. A file written by a server without
//! latency publishing simply shows none.

use super::DEFAULT_COUNTERS_FILE;
use anyhow::Context;
use clap::Args;
use peregrine_gateway::LatencyBuckets;
use peregrine_server::counters_file::{read_counters, read_latency, CountersSnapshot, LatencySnapshot};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Args)]
pub struct StatArgs {
    /// The server's counters file.
    #[arg(long, default_value = DEFAULT_COUNTERS_FILE)]
    file: PathBuf,
    /// Print once and exit.
    #[arg(long)]
    once: bool,
    /// Refresh interval (`--watch 1s`, `--watch 250ms`).
    #[arg(long, alias = "interval", default_value = "1s", value_parser = humantime::parse_duration)]
    watch: Duration,
    /// Show counters that are zero too (text output; JSON has them all).
    #[arg(long)]
    all: bool,
    /// One JSON object per refresh, one per line: pid, time, and per block
    /// its counters and their rates per second.
    #[arg(long)]
    json: bool,
}

/// Counter values by block, to compute rates against the next refresh.
type Values = Vec<Vec<u64>>;

fn values(snap: &CountersSnapshot) -> Values {
    snap.blocks
        .iter()
        .map(|(_, c)| c.iter().map(|p| p.1).collect())
        .collect()
}

/// Rate per second of counter `k` of block `b` since `prev`.
fn rate(prev: Option<&(Instant, Values)>, now: Instant, b: usize, k: usize, v: u64) -> Option<f64> {
    let (t, pv) = prev?;
    let dt = now.duration_since(*t).as_secs_f64();
    let old = pv.get(b)?.get(k)?;
    (dt > 0.0).then(|| v.saturating_sub(*old) as f64 / dt)
}

fn text(a: &StatArgs, snap: &CountersSnapshot, prev: Option<&(Instant, Values)>, now: Instant) -> String {
    let mut out = String::new();
    if !a.once {
        out.push_str("\x1b[2J\x1b[H");
    }
    let _ = writeln!(out, "peregrine stat: pid {} ({})", snap.pid, a.file.display());
    for (b, (title, counters)) in snap.blocks.iter().enumerate() {
        let _ = writeln!(out, "\n{title}");
        for (k, (name, v)) in counters.iter().enumerate() {
            if *v == 0 && !a.all {
                continue;
            }
            match rate(prev, now, b, k, *v) {
                Some(r) => {
                    let _ = writeln!(out, "  {name:<28} {v:>16} {r:>14.0}/s");
                }
                None => {
                    let _ = writeln!(out, "  {name:<28} {v:>16}");
                }
            }
        }
    }
    out
}

/// The quantiles shown, with their labels.
const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)];

/// Microseconds, for a nanosecond value.
fn us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

fn latency_row(out: &mut String, label: &str, h: &LatencyBuckets) {
    let _ = write!(out, "  {label:<22} {:>10}", h.count);
    for (_, q) in QUANTILES {
        let _ = write!(out, " {:>10.1}", us(h.quantile(q)));
    }
    let _ = writeln!(out, " {:>10.1}", us(h.max_ns));
}

fn latency_text(out: &mut String, latency: &[LatencySnapshot]) {
    if latency.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nreply latency (us): gateways from receive to transmit, the sequencer from sequencing to reply ready"
    );
    let _ = writeln!(
        out,
        "  {:<22} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "replies", "p50", "p99", "p99.9", "max"
    );
    for l in latency {
        let _ = writeln!(out, " {}", l.title);
        latency_row(
            out,
            &format!("last {} ms", l.interval_ns / 1_000_000),
            &l.interval,
        );
        latency_row(out, "since start", &l.since_start);
    }
}

fn latency_view_json(h: &LatencyBuckets) -> serde_json::Value {
    serde_json::json!({
        "count": h.count,
        "p50_ns": h.quantile(0.5),
        "p99_ns": h.quantile(0.99),
        "p999_ns": h.quantile(0.999),
        "max_ns": h.max_ns,
        "sum_ns": h.sum_ns,
        "out_of_range": h.out_of_range,
    })
}

fn latency_json(latency: &[LatencySnapshot]) -> serde_json::Value {
    latency
        .iter()
        .map(|l| {
            serde_json::json!({
                "title": l.title,
                "interval_ns": l.interval_ns,
                "last_interval": latency_view_json(&l.interval),
                "since_start": latency_view_json(&l.since_start),
            })
        })
        .collect()
}

fn json(snap: &CountersSnapshot, prev: Option<&(Instant, Values)>, now: Instant) -> serde_json::Value {
    let blocks: Vec<serde_json::Value> = snap
        .blocks
        .iter()
        .enumerate()
        .map(|(b, (title, counters))| {
            let mut values = serde_json::Map::new();
            let mut rates = serde_json::Map::new();
            for (k, (name, v)) in counters.iter().enumerate() {
                values.insert(name.clone(), (*v).into());
                if let Some(r) = rate(prev, now, b, k, *v) {
                    rates.insert(name.clone(), ((r * 10.0).round() / 10.0).into());
                }
            }
            serde_json::json!({ "title": title, "counters": values, "rates_per_s": rates })
        })
        .collect();
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    serde_json::json!({ "pid": snap.pid, "time_unix_ms": unix_ms, "blocks": blocks })
}

/// `peregrine stat --json`'s object: [`json`] plus the gateways' reply
/// latency under `latency` (one entry per gateway; quantiles in ns).
fn json_with_latency(
    snap: &CountersSnapshot,
    latency: &[LatencySnapshot],
    prev: Option<&(Instant, Values)>,
    now: Instant,
) -> serde_json::Value {
    let mut v = json(snap, prev, now);
    v["latency"] = latency_json(latency);
    v
}

pub fn run(a: StatArgs) -> anyhow::Result<()> {
    let mut prev: Option<(Instant, Values)> = None;
    loop {
        let snap =
            read_counters(&a.file).with_context(|| format!("is a server running? ({})", a.file.display()))?;
        // Latency is an addition: a file without it (an older server) or a
        // block the writer kept busy shows counters only.
        let latency = read_latency(&a.file).unwrap_or_default();
        let now = Instant::now();
        if a.json {
            println!("{}", json_with_latency(&snap, &latency, prev.as_ref(), now));
        } else {
            let mut out = text(&a, &snap, prev.as_ref(), now);
            latency_text(&mut out, &latency);
            print!("{out}");
        }
        if a.once {
            return Ok(());
        }
        prev = Some((now, values(&snap)));
        std::thread::sleep(a.watch);
    }
}
