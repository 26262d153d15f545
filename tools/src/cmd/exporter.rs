//! `peregrine exporter`: the server's counters over HTTP for Prometheus.

use super::DEFAULT_COUNTERS_FILE;
use anyhow::Context;
use clap::Args;
use peregrine_server::config::ServeConfig;
use peregrine_tools::exporter::Exporter;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Args)]
pub struct ExporterArgs {
    /// Where Prometheus scrapes (`GET /metrics`).
    #[arg(long, default_value = "127.0.0.1:9464")]
    listen: SocketAddr,
    /// The server's counters file.
    #[arg(long, default_value = DEFAULT_COUNTERS_FILE)]
    file: PathBuf,
    /// The server's config file: its layout, idle strategy, app, cores and
    /// journal mode become labels of `peregrine_config_info`.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Serves until SIGINT/SIGTERM.
pub fn run(a: ExporterArgs) -> anyhow::Result<()> {
    let mut config = Vec::new();
    if let Some(p) = &a.config {
        let c = ServeConfig::from_file(p)?;
        config.push(("layout", c.layout.clone()));
        config.push(("idle", c.idle.clone()));
        config.push(("app", format!("{:?}", c.app).to_lowercase()));
        config.push((
            "cores",
            c.cores
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ));
        config.push(("journal_mode", c.journal_mode.clone()));
    }
    let listener = TcpListener::bind(a.listen).with_context(|| format!("listening on {}", a.listen))?;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    ctrlc::set_handler(move || s2.store(true, Ordering::Relaxed))?;
    println!(
        "peregrine exporter: http://{}/metrics from {}",
        listener.local_addr()?,
        a.file.display()
    );
    Exporter {
        counters_file: a.file,
        config,
    }
    .serve(listener, stop)?;
    Ok(())
}
