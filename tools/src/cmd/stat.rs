//! `peregrine stat`: a running server's counters, from its shared-memory file.
//!
//! Every polling thread of the server copies its counters into the file once
//! a millisecond, whatever its idle strategy, so what this prints is at most
//! a couple of milliseconds old at the moment it reads the file.
//!
//! Like `top`, it refreshes in place every `--watch` interval and shows each
//! counter's rate per second since the previous refresh; `--json` prints one
//! JSON object per refresh instead (one per line), for scripts.

use super::DEFAULT_COUNTERS_FILE;
use anyhow::Context;
use clap::Args;
use peregrine_server::counters_file::{read_counters, CountersSnapshot};
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

pub fn run(a: StatArgs) -> anyhow::Result<()> {
    let mut prev: Option<(Instant, Values)> = None;
    loop {
        let snap =
            read_counters(&a.file).with_context(|| format!("is a server running? ({})", a.file.display()))?;
        let now = Instant::now();
        if a.json {
            println!("{}", json(&snap, prev.as_ref(), now));
        } else {
            print!("{}", text(&a, &snap, prev.as_ref(), now));
        }
        if a.once {
            return Ok(());
        }
        prev = Some((now, values(&snap)));
        std::thread::sleep(a.watch);
    }
}
