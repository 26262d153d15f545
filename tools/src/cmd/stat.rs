//! `peregrine stat`: a running server's counters, from its shared-memory file.
//!
//! Every polling thread of the server copies its counters into the file once
//! a millisecond, whatever its idle strategy, so what this prints is at most
//! a couple of milliseconds old at the moment it reads the file.

use super::DEFAULT_COUNTERS_FILE;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct StatArgs {
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

pub fn run(a: StatArgs) -> anyhow::Result<()> {
    use peregrine_server::counters_file::read_counters;
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
