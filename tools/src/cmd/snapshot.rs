//! `peregrine snapshot`: replay a journal into a state snapshot file, or
//! show what a snapshot file holds.

use anyhow::Context;
use clap::Args;
use peregrine_server::config::{AppKind, ServeConfig};
use peregrine_server::snapshot::{market_data_position, replay_journal_to, restore_state, StateSnapshot};
use std::path::PathBuf;

#[derive(Args)]
pub struct SnapshotArgs {
    /// Journal directory to replay (read-only; a torn tail is ignored).
    #[arg(long, required_unless_present = "inspect", conflicts_with = "inspect")]
    journal: Option<PathBuf>,
    /// Server config file: the application, engine instruments, sessions
    /// and gateways, exactly as the server that wrote the journal ran.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Last global sequence number to include (default: the journal's last).
    #[arg(long)]
    at: Option<u64>,
    /// Snapshot file to write (atomically).
    #[arg(long, required_unless_present = "inspect")]
    out: Option<PathBuf>,
    /// Print what a snapshot file holds instead (with --config, also
    /// restore it and print the engine state hash).
    #[arg(long)]
    inspect: Option<PathBuf>,
}

fn config(path: &Option<PathBuf>) -> anyhow::Result<ServeConfig> {
    Ok(match path {
        Some(p) => ServeConfig::from_file(p).with_context(|| format!("reading {}", p.display()))?,
        None => ServeConfig::default(),
    })
}

pub fn run(a: SnapshotArgs) -> anyhow::Result<()> {
    if let Some(path) = &a.inspect {
        return inspect(path, &a.config);
    }
    let (Some(journal), Some(out)) = (&a.journal, &a.out) else {
        anyhow::bail!("--journal and --out are required unless --inspect is given");
    };
    let cfg = config(&a.config)?;
    let state = replay_journal_to(&cfg, journal, a.at)?;
    let mut snapshot = state.snapshot();
    snapshot.market_data_blocks = market_data_position(&cfg, journal, None, snapshot.last_seq)?;
    snapshot.write_atomic(out)?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!("snapshot {}: last sequence {}", out.display(), snapshot.last_seq);
    match state.state_hash() {
        Some(h) => println!("engine state hash {h:016x}"),
        None => println!("application {:?} (no engine state)", snapshot.app_kind),
    }
    if let Some(blocks) = snapshot.market_data_blocks {
        println!("market-data stream position: {blocks} blocks");
    }
    let sessions: usize = state.sessions.iter().map(|t| t.len()).sum();
    println!(
        "{} gateway(s), {sessions} session(s); {size} bytes (application {} bytes)",
        snapshot.gateways.len(),
        snapshot.app.len()
    );
    Ok(())
}

fn inspect(path: &std::path::Path, config_path: &Option<PathBuf>) -> anyhow::Result<()> {
    let snapshot = StateSnapshot::read(path)?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "snapshot {}: {size} bytes, checksum ok, last sequence {}, application {:?} ({} bytes), {} gateway(s)",
        path.display(),
        snapshot.last_seq,
        snapshot.app_kind,
        snapshot.app.len(),
        snapshot.gateways.len()
    );
    match snapshot.market_data_blocks {
        Some(blocks) => println!("market-data stream position: {blocks} blocks"),
        None => println!("market-data stream position: unknown"),
    }
    for (g, sessions) in snapshot.sessions()?.iter().enumerate() {
        println!("gateway {g}: {} session(s)", sessions.sessions.len());
        for s in &sessions.sessions {
            println!(
                "  session {} {:?}: next client seq {}, next reply seq {}, last staged {}, replied client seq {}, {} replies logged",
                s.id,
                String::from_utf8_lossy(&s.name).trim_end(),
                s.next_client_seq,
                s.next_reply_seq,
                s.last_staged,
                s.replied_client_seq,
                s.replies.len()
            );
        }
    }
    if config_path.is_some() || snapshot.app_kind == AppKind::Echo {
        let mut cfg = config(config_path)?;
        if config_path.is_none() {
            cfg.app = snapshot.app_kind;
        }
        match restore_state(&cfg, &snapshot) {
            Ok((peregrine_server::serve::ServerApp::Match(m), _)) => {
                println!(
                    "restores under the config: engine state hash {:016x}",
                    m.engine().state_hash()
                )
            }
            Ok(_) => println!("restores under the config"),
            Err(e) => println!("does not restore under the config: {e}"),
        }
    } else {
        println!("(pass --config to restore the engine state and print its hash)");
    }
    Ok(())
}
