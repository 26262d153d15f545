//! `peregrine doctor`: checks this host against what a configuration
//! needs for a low-latency deployment; PASS/WARN/FAIL with the fix for
//! each, exit status by the worst finding.

use clap::Args;
use peregrine_server::config::ServeConfig;
use peregrine_server::doctor::host::{parse_cpu_list, running_as_root, SystemHost};
use peregrine_server::doctor::{examine, Needs};
use std::path::PathBuf;

#[derive(Args)]
pub struct DoctorArgs {
    /// The server's TOML config file (the one `serve --config` reads).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Polling cores to check, as a kernel CPU list (`2-3,6`), overriding
    /// the config's `cores`.
    #[arg(long)]
    cores: Option<String>,
    /// Also check this network interface's rings, coalescing and offloads
    /// with ethtool; repeatable.
    #[arg(long)]
    iface: Vec<String>,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
    /// Read /proc and /sys under this directory instead of / (a copy taken
    /// from the production host).
    #[arg(long, default_value = "/")]
    sysroot: PathBuf,
}

/// Prints the report and exits 0 (all PASS), 1 (some WARN) or 2 (some FAIL).
pub fn run(a: DoctorArgs) -> anyhow::Result<()> {
    let mut cfg = match &a.config {
        Some(p) => ServeConfig::from_file(p)?,
        None => ServeConfig::default(),
    };
    if let Some(list) = &a.cores {
        let cores =
            parse_cpu_list(list).ok_or_else(|| anyhow::anyhow!("--cores {list:?}: not a CPU list"))?;
        cfg.cores = cores.into_iter().collect();
    }
    let host = SystemHost::with_root(&a.sysroot);
    let needs = Needs::from_config(&cfg, running_as_root(&host), a.iface);
    let report = examine(&host, &needs);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    std::process::exit(report.exit_code());
}
