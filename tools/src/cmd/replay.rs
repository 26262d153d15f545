//! `peregrine replay`: print, filter and verify a journal, and rebuild the
//! application from it.

use anyhow::Context;
use clap::Args;
use peregrine_server::config::{AppKind, ServeConfig};
use std::path::PathBuf;

#[derive(Args)]
pub struct ReplayArgs {
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

pub fn run(a: ReplayArgs) -> anyhow::Result<()> {
    use peregrine_journal::{Journal, RecordFilter};
    use peregrine_wire::message::{client_ts_of, msg_type_of, order_id_or_tag_of};
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
                (msg_type_of(&r.msg) as char).escape_default().to_string(),
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
                .is_some_and(|r| client_ts_of(&r.msg) == ts && order_id_or_tag_of(&r.msg) == id);
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
                let mut app = peregrine_server::match_app::MatchApp::new(&ecfg)?;
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
