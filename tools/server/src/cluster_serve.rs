//! Starting and supervising one node of a replicated cluster.
//!
//! A node runs in *incarnations*. Each one is built from the node's durable
//! state alone: the journal (which is the Raft log) is reconciled, every
//! committed record is replayed through a fresh application and into the
//! gateways' sessions, and Raft resumes from the hard state. Then the
//! incarnation runs until it is stopped or, having led, loses leadership:
//! a deposed leader may have applied and answered (with `ack = "local"`)
//! records that the new leader overwrites, so rather than unwinding its
//! application in place it ends, and the supervisor builds the next
//! incarnation, which rejoins as a follower. Clients see a closed
//! connection or silence and fail over to the new leader.

use crate::cluster_node::{ClusterNode, ServingSignal};
use crate::config::{AppKind, ConfigError, ServeConfig, DEDICATED_RING_CAPACITY};
use crate::error::ServeError;
use crate::feed_run::FeedRun;
use crate::market_data::SnapshotReader;
use crate::runtime::{run_stage, ServerReport, SEQUENCER_BATCH};
use crate::serve::{
    bind_gateways, build_app, gateway_options, restore_from, runtime_config, ServerApp, ServerHandle,
};
use crate::snapshot::{market_data_position, restore_state, StateSnapshot, StateSnapshotError};
use crate::stage::StageStop;
use peregrine_cluster::{
    read_installed_snapshot, AckLevel, ClusterConfig, JournalLogStore, NodeTransport, ReplicatedLog,
};
use peregrine_gateway::directory::SessionDirectory;
use peregrine_gateway::snapshot::SessionsSnapshot;
use peregrine_gateway::Leadership;
use peregrine_journal::{FlushPolicy, Journal, WriterConfig};
use peregrine_sequencer::{JournalMode, ReplyRelease, Sequencer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Store failures in a row the supervisor rebuilds from before it gives up.
const MAX_STORE_REBUILDS: u32 = 3;

/// Everything an incarnation is built from, fixed for the node's life.
struct NodeSetup {
    cfg: ServeConfig,
    cluster: ClusterConfig,
    dir: PathBuf,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    flush: FlushPolicy,
    leadership: Arc<Leadership>,
}

/// A built incarnation, ready to run.
struct Incarnation {
    node: ClusterNode<ServerApp, JournalLogStore>,
    gateways: Vec<Box<dyn peregrine_gateway::GatewayLoop>>,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    note: String,
    first_seq: u64,
    /// Where the node's journal (its Raft log's records) lives.
    journal_dir: PathBuf,
}

impl NodeSetup {
    fn new(cfg: &ServeConfig, cluster: &ClusterConfig) -> Result<NodeSetup, ServeError> {
        let me = cluster.this_member().ok_or_else(|| {
            ConfigError::Invalid(
                "[cluster]",
                format!("node_id {} is not a member", cluster.node_id),
            )
        })?;
        let pick = |given: &[SocketAddr], member: &[SocketAddr]| {
            if given.is_empty() {
                member.to_vec()
            } else {
                given.to_vec()
            }
        };
        let dir = cfg
            .journal
            .clone()
            .ok_or_else(|| ConfigError::Invalid("[cluster]", "needs `journal`".into()))?;
        let flush = match cfg.journal_mode()? {
            Some(JournalMode::Durable(p)) => p,
            _ => FlushPolicy::None,
        };
        // Every member's client addresses in gateway-id order: UDP, then TCP.
        let hints = cluster
            .members
            .iter()
            .map(|m| (m.id, m.udp.iter().chain(m.tcp.iter()).copied().collect()))
            .collect();
        Ok(NodeSetup {
            cfg: cfg.clone(),
            cluster: cluster.clone(),
            dir,
            udp: pick(&cfg.udp, &me.udp),
            tcp: pick(&cfg.tcp, &me.tcp),
            flush,
            leadership: Arc::new(Leadership::new(hints)),
        })
    }

    /// Builds an incarnation from the durable state in the journal
    /// directory, binding the gateways to `udp`/`tcp`.
    fn build(&self, udp: &[SocketAddr], tcp: &[SocketAddr]) -> Result<Incarnation, ServeError> {
        let cfg = &self.cfg;
        let mut opts = gateway_options(cfg)?;
        opts.leadership = Some(Arc::clone(&self.leadership));
        self.leadership.set(false, None);
        let directory = Arc::new(SessionDirectory::new(&cfg.credentials()?)?);
        let mut bound = bind_gateways(cfg, udp, tcp, &directory, opts)?;
        let mut app = build_app(cfg)?;
        let (mut store, _) = JournalLogStore::open(
            &self.dir,
            &self.cluster.voter_ids(),
            WriterConfig {
                segment_size: cfg.journal_segment_size,
                ..WriterConfig::default()
            }
            .flushed_with(self.flush),
            self.flush,
        )?;
        let committed_seq = store.committed_seq();
        let commit_index = store.hard_state().commit;
        let journal_dir = store.journal_dir().to_path_buf();
        let mut note = format!(
            "cluster node {} journal {}: log committed through index {commit_index} (sequence {committed_seq}), \
             records held through sequence {}",
            self.cluster.node_id,
            self.dir.display(),
            store.next_seq().saturating_sub(1)
        );
        // From the snapshot, if the store holds one: the application and the
        // sessions as of its last sequence; the journal replays the rest.
        let mut replay_from = 1;
        let mut restored_snapshot = None;
        if let Some((meta, last_seq, bytes)) = store.snapshot_state() {
            let snap = StateSnapshot::decode(bytes)?;
            let (restored, sessions) = restore_state(cfg, &snap)?;
            app = restored;
            for (g, s) in sessions.iter().enumerate() {
                if let Some(table) = bound.gateways.get_mut(g).and_then(|gw| gw.sessions_mut()) {
                    s.restore_into(g as u16, table, &directory).map_err(|source| {
                        StateSnapshotError::Sessions {
                            gateway: g as u16,
                            source,
                        }
                    })?;
                }
            }
            replay_from = last_seq + 1;
            note.push_str(&format!(
                "; state from the snapshot at index {} (sequence {last_seq})",
                meta.index
            ));
            restored_snapshot = Some(snap);
        }
        if committed_seq >= replay_from {
            let rec = Journal::open_read_only(&journal_dir).map_err(|source| ServeError::Journal {
                dir: journal_dir.clone(),
                source,
            })?;
            note.push_str(&restore_from(
                &mut app,
                &directory,
                &mut bound.gateways,
                rec.range(replay_from..=committed_seq),
                &self.dir,
            )?);
        }
        // Compaction: a long log since the last snapshot becomes a snapshot
        // of the state just rebuilt (it reflects exactly the entries up to
        // the commit index).
        let every = self.cluster.snapshot_records;
        if every > 0 && commit_index > 0 && committed_seq + 1 >= replay_from + every {
            let market_data_blocks = match market_data_position(
                cfg,
                &journal_dir,
                restored_snapshot.as_ref(),
                committed_seq,
            ) {
                Ok(Some(p)) => Some(p),
                Ok(None) if cfg.app != AppKind::Match => None,
                // The position is optional; the snapshot is not.
                Ok(None) => {
                    tracing::warn!(
                        "the previous snapshot did not know the market-data position; nor will the new one"
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the new snapshot will not carry the market-data position");
                    None
                }
            };
            let snap = StateSnapshot {
                last_seq: committed_seq,
                app_kind: cfg.app,
                app: match &app {
                    ServerApp::Echo(_) => Vec::new(),
                    ServerApp::Match(m) => m.snapshot(),
                },
                gateways: bound
                    .gateways
                    .iter_mut()
                    .enumerate()
                    .map(|(g, gw)| {
                        gw.sessions_mut()
                            .map(|t| SessionsSnapshot::capture(g as u16, t).encode())
                            .unwrap_or_default()
                    })
                    .collect(),
                market_data_blocks,
            };
            store.create_snapshot(commit_index, &snap.encode())?;
            note.push_str(&format!(
                "; took a snapshot at index {commit_index} (sequence {committed_seq}) and compacted the log"
            ));
        }
        let log = ReplicatedLog::new(&self.cluster, store, commit_index)?;
        let transport = NodeTransport::bind(&self.cluster)?;
        let release = match self.cluster.ack {
            AckLevel::Replicated => ReplyRelease::OnCommit,
            AckLevel::Local => ReplyRelease::OnSequence,
        };
        let first_seq = committed_seq + 1;
        let seq = Sequencer::new(bound.rings, app, first_seq, SEQUENCER_BATCH)
            // Replies waiting for their commit: the dedicated layout's ring
            // depth at least, whatever the rings are.
            .with_replication(release, cfg.ring_slots().max(DEDICATED_RING_CAPACITY))
            .with_latency_recording(cfg.latency_histograms);
        let leadership = Arc::clone(&self.leadership);
        let signal: ServingSignal = Box::new(move |serving, leader| leadership.set(serving, leader));
        Ok(Incarnation {
            node: ClusterNode::new(seq, log, transport, signal),
            gateways: bound.gateways,
            udp: bound.udp,
            tcp: bound.tcp,
            note,
            first_seq,
            journal_dir,
        })
    }
}

/// Starts a cluster node: the first incarnation is built here (so a bad
/// configuration, a busy port or an unreadable journal fails the call), the
/// rest by the supervisor thread after each step-down.
pub(crate) fn start(
    cfg: &ServeConfig,
    cluster: &ClusterConfig,
    colocation: Option<crate::colocation::ColocationHandle>,
) -> Result<ServerHandle, ServeError> {
    let setup = NodeSetup::new(cfg, cluster)?;
    let mut runtime = runtime_config(cfg)?;
    runtime.colocation = colocation;
    let first = setup.build(&setup.udp, &setup.tcp)?;
    let (udp, tcp, first_seq) = (first.udp.clone(), first.tcp.clone(), first.first_seq);
    let recovery = Some(first.note.clone());
    // One feed for the node's life, over committed records only: every
    // incarnation raises the same watermark.
    let store_dir = setup.dir.clone();
    let snapshots: SnapshotReader = Box::new(move || match read_installed_snapshot(&store_dir) {
        Ok(None) => Ok(None),
        Ok(Some((_, app))) => StateSnapshot::decode(&app).map(Some).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    });
    let feed = FeedRun::start(cfg, &first.journal_dir, first_seq, Some(snapshots))?;
    runtime.watermark = feed.as_ref().map(FeedRun::watermark);
    let feed_note = feed.as_ref().map(|f| f.note().to_string());
    let feed_rerequest = feed.as_ref().and_then(FeedRun::rerequest_addr);
    crate::serve::lock_memory_if_asked(cfg)?;
    let lock_memory = cfg.lock_memory;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let (udp2, tcp2) = (udp.clone(), tcp.clone());
    let join = std::thread::Builder::new()
        .name("peregrine-node".into())
        .spawn(move || -> Result<(ServerReport, ServerApp), ServeError> {
            let mut inc = first;
            let mut incarnations = 1u64;
            // Store failures rebuilt in a row; a store that keeps failing
            // right after a rebuild (a full or broken disk) stops the node.
            let mut store_failures = 0u32;
            loop {
                let (report, app) = run_stage(inc.gateways, inc.node, &runtime, Arc::clone(&stop2))?;
                let rebuild = !stop2.load(Ordering::Relaxed)
                    && match &report.failure {
                        Some(StageStop::SteppedDown(_) | StageStop::SnapshotInstalled(_)) => {
                            store_failures = 0;
                            true
                        }
                        Some(StageStop::StoreFailed(_)) => {
                            store_failures += 1;
                            store_failures <= MAX_STORE_REBUILDS
                        }
                        _ => false,
                    };
                if !rebuild {
                    let feed = feed.map(FeedRun::finish).transpose();
                    let mut report = report;
                    report.feed = feed?;
                    return Ok((report, app));
                }
                if let Some(why) = &report.failure {
                    tracing::warn!(reason = %why, incarnation = incarnations, "rebuilding from the journal as a follower");
                }
                drop(app);
                // The ports were released with the gateways: bind the same
                // resolved addresses again.
                inc = setup.build(&udp2, &tcp2)?;
                tracing::info!("{}", inc.note);
                // The new incarnation's rings and tables are new pages.
                if lock_memory {
                    crate::memory_lock::lock_current()?;
                }
                incarnations += 1;
            }
        })
        .map_err(ServeError::Spawn)?;
    Ok(ServerHandle {
        recovery,
        first_seq,
        feed: feed_note,
        feed_rerequest,
        udp,
        tcp,
        dpdk: Vec::new(),
        stop,
        join: Some(join),
    })
}
