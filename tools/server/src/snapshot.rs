//! State snapshots: the application's state and every gateway's session
//! state at one global sequence number, in one checksummed file.
//!
//! Why: the server's state is a pure function of the journal, rebuilt by
//! replaying it through the application and into the session tables
//! (see [`crate::serve`]). A snapshot at sequence `N` plus the journal after
//! `N` rebuilds the same state, so the journal before `N` can be compacted
//! and a node can start without replaying from 1. This module builds that
//! state without binding any port ([`ReplayedState`]: the application plus
//! one [`SessionTable`] per configured gateway, in the gateway-id order
//! `serve` uses), turns it into a [`StateSnapshot`] and back
//! ([`restore_state`], [`ReplayedState::restore`]).
//!
//! File layout (integers little-endian):
//!
//! | field | bytes |
//! |---|---|
//! | magic [`STATE_MAGIC`] | 8 |
//! | version ([`STATE_VERSION`]) | u32 |
//! | last sequence | u64 |
//! | app kind (1 echo, 2 match) | u8 |
//! | app state length, then the bytes ([`MatchApp::snapshot`]; empty for echo) | u64 + n |
//! | market-data position: 1 then the blocks the market-data stream had emitted through the last sequence, or 0 then 0 when unknown (version 2 only) | u8 + u64 |
//! | gateway count | u32 |
//! | per gateway: length, then its [`SessionsSnapshot`] bytes | u64 + n |
//! | CRC32C of every byte above | u32 |
//!
//! Version 1 files (without the market-data position) are still read; their
//! position is unknown.
//!
//! Files are written atomically: a temporary file in the same directory,
//! fsynced, renamed over the target, and the directory fsynced.

use crate::config::{AppKind, ConfigError, ServeConfig};
use crate::market_data::{MarketDataBuilder, MarketDataStartError};
use crate::match_app::MatchApp;
use crate::serve::ServerApp;
use peregrine_gateway::directory::{DirectoryError, SessionDirectory};
use peregrine_gateway::restore::RestoreError;
use peregrine_gateway::session::{Session, SessionTable};
use peregrine_gateway::snapshot::{SessionSnapshotError, SessionsSnapshot};
use peregrine_journal::{Journal, JournalError, SequencedRecord};
use peregrine_sequencer::{replay_journal_with, EchoApp, SessionRef};
use std::io::Write;
use std::path::{Path, PathBuf};

/// First bytes of a state snapshot file.
pub const STATE_MAGIC: [u8; 8] = *b"PGNSTATE";

/// The file layout version this build writes and reads.
pub const STATE_VERSION: u32 = 2;

/// The oldest layout version this build reads.
pub const STATE_VERSION_OLDEST: u32 = 1;

/// Why a snapshot could not be built, written, read or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateSnapshotError {
    /// The bytes do not start with [`STATE_MAGIC`].
    #[error("not a state snapshot (bad magic)")]
    BadMagic,
    /// A layout version this build does not read.
    #[error("state snapshot version {0} is not supported (this build reads {STATE_VERSION_OLDEST} to {STATE_VERSION})")]
    UnsupportedVersion(u32),
    /// The bytes end before the snapshot does.
    #[error("state snapshot truncated at byte {at}: {needed} more bytes needed")]
    Truncated {
        /// Offset where the missing field starts.
        at: usize,
        /// Bytes that field needs.
        needed: usize,
    },
    /// The checksum does not match the contents.
    #[error("state snapshot checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    Checksum {
        /// CRC32C stored in the file.
        stored: u32,
        /// CRC32C of the contents.
        computed: u32,
    },
    /// Bytes between the last gateway and the checksum.
    #[error("{0} unexpected bytes before the state snapshot checksum")]
    TrailingBytes(usize),
    /// The market-data position's flag is neither 0 nor 1, or it is 0
    /// (unknown) with a position beside it.
    #[error("state snapshot market-data flag {0} is not 1 (known) or 0 with no position")]
    BadMarketDataFlag(u8),
    /// An application code this build does not know.
    #[error("state snapshot names unknown application code {0}")]
    UnknownApp(u8),
    /// The snapshot's application is not the configured one.
    #[error("state snapshot holds the {snapshot:?} application, the configuration runs {config:?}")]
    AppMismatch {
        /// In the snapshot.
        snapshot: AppKind,
        /// In the configuration.
        config: AppKind,
    },
    /// The snapshot has state for another number of gateways.
    #[error("state snapshot holds {snapshot} gateways, the configuration has {config}")]
    GatewayCount {
        /// In the snapshot.
        snapshot: usize,
        /// In the configuration.
        config: usize,
    },
    /// The engine state could not be restored.
    #[error("engine state: {0}")]
    Engine(#[from] peregrine_engine::SnapshotError),
    /// The engine configuration is invalid.
    #[error("engine configuration: {0}")]
    EngineConfig(#[from] peregrine_engine::ConfigError),
    /// A gateway's session state could not be decoded or restored.
    #[error("gateway {gateway} sessions: {source}")]
    Sessions {
        /// The gateway id.
        gateway: u16,
        /// What was wrong.
        #[source]
        source: SessionSnapshotError,
    },
    /// The server configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configured sessions are inconsistent.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The journal names sessions or gateways this configuration lacks.
    #[error("replaying the journal into the sessions: {0}")]
    Restore(#[from] RestoreError),
    /// The journal could not be read.
    #[error("reading journal {}: {source}", dir.display())]
    Journal {
        /// The journal directory.
        dir: PathBuf,
        /// What recovery found.
        #[source]
        source: JournalError,
    },
    /// Records do not follow the state's last sequence number.
    #[error("journal record {found} does not follow the state at sequence {last}")]
    Gap {
        /// The state's last applied sequence number.
        last: u64,
        /// The record met.
        found: u64,
    },
    /// The requested sequence number is not in the journal.
    #[error("sequence {at} is not in the journal (it holds {first}..={last})")]
    NotInJournal {
        /// Requested.
        at: u64,
        /// First record in the journal.
        first: u64,
        /// Last record in the journal (0 when empty).
        last: u64,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// Application and session state after applying every record up to and
/// including `last_seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSnapshot {
    /// The last global sequence number applied (0: nothing).
    pub last_seq: u64,
    /// Which application the state belongs to.
    pub app_kind: AppKind,
    /// The application's state ([`MatchApp::snapshot`]; empty for echo,
    /// which keeps no state that changes its answers).
    pub app: Vec<u8>,
    /// Per gateway id, its [`SessionsSnapshot`] bytes.
    pub gateways: Vec<Vec<u8>>,
    /// Market-data blocks the feed's derivation had emitted through
    /// `last_seq` (see [`crate::market_data`]): with the engine state it
    /// lets a node whose journal starts after `last_seq` continue the
    /// market-data stream under the same numbers as every other node.
    /// `None` when the writer did not know it (a version 1 file, or a
    /// snapshot taken from a state whose own position was unknown).
    pub market_data_blocks: Option<u64>,
}

fn app_code(kind: AppKind) -> u8 {
    match kind {
        AppKind::Echo => 1,
        AppKind::Match => 2,
    }
}

/// Reads little-endian fields off the front of the snapshot.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], StateSnapshotError> {
        let rest = &self.bytes[self.at..];
        if (rest.len() as u64) < n {
            return Err(StateSnapshotError::Truncated {
                at: self.at,
                needed: usize::try_from(n).unwrap_or(usize::MAX) - rest.len(),
            });
        }
        let n = n as usize;
        self.at += n;
        Ok(&rest[..n])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StateSnapshotError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }
}

impl StateSnapshot {
    /// The file bytes (see the module docs for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let size = 8
            + 4
            + 8
            + 1
            + 8
            + self.app.len()
            + 9
            + 4
            + self.gateways.iter().map(|g| 8 + g.len()).sum::<usize>()
            + 4;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&STATE_MAGIC);
        out.extend_from_slice(&STATE_VERSION.to_le_bytes());
        out.extend_from_slice(&self.last_seq.to_le_bytes());
        out.push(app_code(self.app_kind));
        out.extend_from_slice(&(self.app.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.app);
        out.push(u8::from(self.market_data_blocks.is_some()));
        out.extend_from_slice(&self.market_data_blocks.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&(self.gateways.len() as u32).to_le_bytes());
        for g in &self.gateways {
            out.extend_from_slice(&(g.len() as u64).to_le_bytes());
            out.extend_from_slice(g);
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes file bytes: magic, version and checksum are checked before
    /// anything else is trusted. Never panics; never allocates more than
    /// the input's size.
    pub fn decode(bytes: &[u8]) -> Result<StateSnapshot, StateSnapshotError> {
        let mut head = Reader { bytes, at: 0 };
        if head.array::<8>()? != STATE_MAGIC {
            return Err(StateSnapshotError::BadMagic);
        }
        let version = u32::from_le_bytes(head.array()?);
        if !(STATE_VERSION_OLDEST..=STATE_VERSION).contains(&version) {
            return Err(StateSnapshotError::UnsupportedVersion(version));
        }
        let body_len = bytes
            .len()
            .checked_sub(4)
            .filter(|&n| n >= head.at)
            .ok_or_else(|| StateSnapshotError::Truncated {
                at: bytes.len(),
                needed: (head.at + 4).saturating_sub(bytes.len()),
            })?;
        let (body, stored) = bytes.split_at(body_len);
        let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(StateSnapshotError::Checksum { stored, computed });
        }
        let mut r = Reader {
            bytes: body,
            at: head.at,
        };
        let last_seq = u64::from_le_bytes(r.array()?);
        let app_kind = match r.array::<1>()?[0] {
            1 => AppKind::Echo,
            2 => AppKind::Match,
            other => return Err(StateSnapshotError::UnknownApp(other)),
        };
        let app_len = u64::from_le_bytes(r.array()?);
        let app = r.take(app_len)?.to_vec();
        let market_data_blocks = if version >= 2 {
            let known = r.array::<1>()?[0];
            let blocks = u64::from_le_bytes(r.array()?);
            match known {
                0 if blocks == 0 => None,
                1 => Some(blocks),
                other => return Err(StateSnapshotError::BadMarketDataFlag(other)),
            }
        } else {
            None
        };
        let count = u32::from_le_bytes(r.array()?);
        let mut gateways = Vec::new();
        for _ in 0..count {
            let len = u64::from_le_bytes(r.array()?);
            gateways.push(r.take(len)?.to_vec());
        }
        if r.at != body.len() {
            return Err(StateSnapshotError::TrailingBytes(body.len() - r.at));
        }
        Ok(StateSnapshot {
            last_seq,
            app_kind,
            app,
            gateways,
            market_data_blocks,
        })
    }

    /// Writes the snapshot to `path` atomically: a temporary file next to
    /// it, fsynced, renamed over `path`, then the directory fsynced, so a
    /// crash leaves either the old file or the new one, never a torn one.
    pub fn write_atomic(&self, path: &Path) -> Result<(), StateSnapshotError> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StateSnapshotError::Io { path: p, source }
        };
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        let tmp = path.with_file_name(name);
        let bytes = self.encode();
        {
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(io(path))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(())
    }

    /// Reads and decodes a snapshot file.
    pub fn read(path: &Path) -> Result<StateSnapshot, StateSnapshotError> {
        let bytes = std::fs::read(path).map_err(|source| StateSnapshotError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        StateSnapshot::decode(&bytes)
    }

    /// Each gateway's session state, decoded.
    pub fn sessions(&self) -> Result<Vec<SessionsSnapshot>, StateSnapshotError> {
        self.gateways
            .iter()
            .enumerate()
            .map(|(g, bytes)| {
                SessionsSnapshot::decode(bytes).map_err(|source| StateSnapshotError::Sessions {
                    gateway: g as u16,
                    source,
                })
            })
            .collect()
    }
}

/// Number of gateways a configuration runs, in the id order `serve`
/// assigns: UDP listeners, then TCP, then DPDK queues. A cluster node
/// without its own listen addresses listens on its member's.
pub fn gateway_count(cfg: &ServeConfig) -> usize {
    #[cfg(feature = "dpdk")]
    let dpdk = cfg.dpdk.as_ref().map_or(0, |d| usize::from(d.rx_queues));
    #[cfg(not(feature = "dpdk"))]
    let dpdk = 0;
    let member = cfg.cluster.as_ref().and_then(|c| c.this_member());
    let pick = |given: usize, of_member: Option<usize>| {
        if given == 0 {
            of_member.unwrap_or(0)
        } else {
            given
        }
    };
    let udp = pick(cfg.udp.len(), member.map(|m| m.udp.len()));
    let tcp = pick(cfg.tcp.len(), member.map(|m| m.tcp.len()));
    udp + tcp + dpdk
}

/// The configured application, fresh.
fn fresh_app(cfg: &ServeConfig) -> Result<ServerApp, StateSnapshotError> {
    Ok(match cfg.app {
        AppKind::Echo => ServerApp::Echo(EchoApp::new()),
        AppKind::Match => ServerApp::Match(Box::new(MatchApp::new(&engine_config(cfg))?)),
    })
}

pub(crate) fn engine_config(cfg: &ServeConfig) -> peregrine_engine::EngineConfig {
    cfg.engine
        .clone()
        .unwrap_or_else(peregrine_engine::EngineConfig::sample)
}

/// The application and the gateways' session tables at a sequence
/// number, built without binding any port.
pub struct ReplayedState {
    /// The application.
    pub app: ServerApp,
    /// The configured sessions, with each restored session claimed by its gateway.
    pub directory: SessionDirectory,
    /// One table per gateway id, sized as the gateways size theirs.
    pub sessions: Vec<SessionTable>,
    /// The last global sequence number applied (0: none).
    pub last_seq: u64,
}

impl ReplayedState {
    /// The state before any record: a fresh application and empty tables.
    pub fn fresh(cfg: &ServeConfig) -> Result<ReplayedState, StateSnapshotError> {
        let directory = SessionDirectory::new(&cfg.credentials()?)?;
        let sessions = (0..gateway_count(cfg))
            .map(|_| SessionTable::with_reply_log(directory.len(), cfg.reply_log_depth))
            .collect();
        Ok(ReplayedState {
            app: fresh_app(cfg)?,
            directory,
            sessions,
            last_seq: 0,
        })
    }

    /// The state a snapshot describes, under `cfg` (same application,
    /// engine config, gateways and session list as when it was taken).
    pub fn restore(cfg: &ServeConfig, snapshot: &StateSnapshot) -> Result<ReplayedState, StateSnapshotError> {
        let (app, sessions) = restore_state(cfg, snapshot)?;
        let mut state = ReplayedState::fresh(cfg)?;
        state.app = app;
        state.last_seq = snapshot.last_seq;
        for (g, s) in sessions.iter().enumerate() {
            s.restore_into(g as u16, &mut state.sessions[g], &state.directory)
                .map_err(|source| StateSnapshotError::Sessions {
                    gateway: g as u16,
                    source,
                })?;
        }
        Ok(state)
    }

    /// Applies `records` in order, as journal recovery does: each through
    /// the application, its input and the application's replies into the
    /// sessions. Records at or below the last applied sequence are
    /// skipped; any other must follow it without a gap. Returns how many
    /// were applied.
    pub fn replay(
        &mut self,
        records: impl Iterator<Item = SequencedRecord>,
    ) -> Result<u64, StateSnapshotError> {
        let mut error: Option<StateSnapshotError> = None;
        let last = std::cell::Cell::new(self.last_seq);
        let tables = std::cell::RefCell::new(&mut self.sessions);
        let directory = &self.directory;
        // map_while ends the replay at the first gap.
        let records = records.filter(|r| r.global_seq > last.get()).map_while(|r| {
            if r.global_seq != last.get() + 1 {
                error = Some(StateSnapshotError::Gap {
                    last: last.get(),
                    found: r.global_seq,
                });
                return None;
            }
            last.set(r.global_seq);
            Some(r)
        });
        let restore_error = std::cell::Cell::new(None::<RestoreError>);
        let n = replay_journal_with(
            &mut self.app,
            records,
            |r| {
                let mut t = tables.borrow_mut();
                match open_session(&mut t, directory, r.origin) {
                    Ok(s) => s.restore_input(r.client_seq),
                    Err(e) => {
                        if restore_error.get().is_none() {
                            restore_error.set(Some(e));
                        }
                    }
                }
            },
            |to, m| {
                let mut t = tables.borrow_mut();
                match open_session(&mut t, directory, to) {
                    Ok(s) => s.restore_reply(m),
                    Err(e) => {
                        if restore_error.get().is_none() {
                            restore_error.set(Some(e));
                        }
                    }
                }
            },
        );
        self.last_seq = last.get();
        if let Some(e) = error {
            return Err(e);
        }
        if let Some(e) = restore_error.get() {
            return Err(e.into());
        }
        Ok(n)
    }

    /// The state as a snapshot.
    pub fn snapshot(&self) -> StateSnapshot {
        let (app_kind, app) = match &self.app {
            ServerApp::Echo(_) => (AppKind::Echo, Vec::new()),
            ServerApp::Match(m) => (AppKind::Match, m.snapshot()),
        };
        StateSnapshot {
            last_seq: self.last_seq,
            app_kind,
            app,
            gateways: self
                .sessions
                .iter()
                .enumerate()
                .map(|(g, t)| SessionsSnapshot::capture(g as u16, t).encode())
                .collect(),
            market_data_blocks: None,
        }
    }

    /// The engine's state hash, under the match application.
    pub fn state_hash(&self) -> Option<u64> {
        match &self.app {
            ServerApp::Match(m) => Some(m.engine().state_hash()),
            ServerApp::Echo(_) => None,
        }
    }

    /// Every gateway's sessions as they stand (for comparing states).
    pub fn session_states(&self) -> Vec<SessionsSnapshot> {
        self.sessions
            .iter()
            .enumerate()
            .map(|(g, t)| SessionsSnapshot::capture(g as u16, t))
            .collect()
    }
}

/// The session `at` names, opened in its gateway's table and claimed for
/// that gateway, with the same checks as journal recovery.
fn open_session<'t>(
    tables: &'t mut [SessionTable],
    directory: &SessionDirectory,
    at: SessionRef,
) -> Result<&'t mut Session, RestoreError> {
    let n = tables.len();
    let name = directory
        .name(at.index)
        .ok_or(RestoreError::UnknownSession(at.index, directory.len()))?;
    let table = tables
        .get_mut(at.gateway as usize)
        .ok_or(RestoreError::UnknownGateway(at.gateway, n))?;
    if !directory.claim(at.index, at.gateway) {
        let other = directory.owner(at.index).unwrap_or(at.gateway);
        return Err(RestoreError::TwoGateways(at.index, other, at.gateway));
    }
    table
        .open(at.index, name)
        .ok_or(RestoreError::UnknownSession(at.index, directory.len()))
}

/// Replays the journal in `dir` (read-only: a torn tail is ignored, not
/// repaired) up to and including sequence `at` (default: its last record)
/// through a fresh application and session tables built from `cfg`, and
/// returns the state reached.
pub fn replay_journal_to(
    cfg: &ServeConfig,
    dir: &Path,
    at: Option<u64>,
) -> Result<ReplayedState, StateSnapshotError> {
    let rec = Journal::open_read_only(dir).map_err(|source| StateSnapshotError::Journal {
        dir: dir.to_path_buf(),
        source,
    })?;
    let last = rec.last_seq().unwrap_or(0);
    let at = at.unwrap_or(last);
    if at > last || (at != 0 && at < rec.first_seq().saturating_sub(1)) {
        return Err(StateSnapshotError::NotInJournal {
            at,
            first: rec.first_seq(),
            last,
        });
    }
    let mut state = ReplayedState::fresh(cfg)?;
    state.replay(rec.records().take_while(|r| r.global_seq <= at))?;
    Ok(state)
}

/// `peregrine snapshot`'s library entry point: the state after record
/// `at` (default: the last) of the journal in `dir`, as a snapshot.
pub fn snapshot_journal(
    cfg: &ServeConfig,
    dir: &Path,
    at: Option<u64>,
) -> Result<StateSnapshot, StateSnapshotError> {
    let mut snap = replay_journal_to(cfg, dir, at)?.snapshot();
    snap.market_data_blocks = market_data_position(cfg, dir, None, snap.last_seq)?;
    Ok(snap)
}

/// The market-data stream's position (blocks emitted) after record `at`
/// of the journal in `dir`, for a snapshot there: the feed's derivation
/// from `previous` (an earlier snapshot; `None`: the start) over the
/// journal's records after it, up to `at`. `Ok(None)` for an application
/// without a book, or when `previous` does not know its own position.
pub fn market_data_position(
    cfg: &ServeConfig,
    dir: &Path,
    previous: Option<&StateSnapshot>,
    at: u64,
) -> Result<Option<u64>, StateSnapshotError> {
    if cfg.app != AppKind::Match {
        return Ok(None);
    }
    let ecfg = engine_config(cfg);
    let mut md = match previous.map(|s| MarketDataBuilder::from_snapshot(&ecfg, s)) {
        None => MarketDataBuilder::new(&ecfg)?,
        Some(Ok(md)) => md,
        Some(Err(MarketDataStartError::Engine(e))) => return Err(e.into()),
        Some(Err(_)) => return Ok(None),
    };
    let from = md.last_seq() + 1;
    if at >= from {
        let rec = Journal::open_read_only(dir).map_err(|source| StateSnapshotError::Journal {
            dir: dir.to_path_buf(),
            source,
        })?;
        if rec.first_seq() > from {
            return Err(StateSnapshotError::NotInJournal {
                at,
                first: rec.first_seq(),
                last: rec.last_seq().unwrap_or(0),
            });
        }
        md.catch_up(rec.range(from..=at));
    }
    Ok(Some(md.blocks_emitted()))
}

/// What a server starting from `snapshot` needs: the application in the
/// snapshot's state, and each gateway's sessions (indexed by gateway id)
/// to put into its table with [`SessionsSnapshot::restore_into`] before
/// replaying the journal after `snapshot.last_seq`. Checks the snapshot
/// against `cfg`: same application, same number of gateways, engine
/// config as when taken.
pub fn restore_state(
    cfg: &ServeConfig,
    snapshot: &StateSnapshot,
) -> Result<(ServerApp, Vec<SessionsSnapshot>), StateSnapshotError> {
    if snapshot.app_kind != cfg.app {
        return Err(StateSnapshotError::AppMismatch {
            snapshot: snapshot.app_kind,
            config: cfg.app,
        });
    }
    let gateways = gateway_count(cfg);
    if snapshot.gateways.len() != gateways {
        return Err(StateSnapshotError::GatewayCount {
            snapshot: snapshot.gateways.len(),
            config: gateways,
        });
    }
    let app = match cfg.app {
        AppKind::Echo => ServerApp::Echo(EchoApp::new()),
        AppKind::Match => ServerApp::Match(Box::new(MatchApp::restore(&engine_config(cfg), &snapshot.app)?)),
    };
    Ok((app, snapshot.sessions()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StateSnapshot {
        StateSnapshot {
            last_seq: 42,
            app_kind: AppKind::Match,
            app: (0..50u8).collect(),
            gateways: vec![vec![1, 2, 3], Vec::new()],
            market_data_blocks: Some(1_234),
        }
    }

    #[test]
    fn an_unknown_market_data_position_round_trips_and_version_1_files_still_read() {
        let unknown = StateSnapshot {
            market_data_blocks: None,
            ..sample()
        };
        assert_eq!(StateSnapshot::decode(&unknown.encode()).unwrap(), unknown);
        // A version 1 file: the same fields without the position.
        let mut v1 = Vec::new();
        v1.extend_from_slice(&STATE_MAGIC);
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&42u64.to_le_bytes());
        v1.push(2);
        v1.extend_from_slice(&50u64.to_le_bytes());
        v1.extend((0..50u8).collect::<Vec<_>>());
        v1.extend_from_slice(&2u32.to_le_bytes());
        v1.extend_from_slice(&3u64.to_le_bytes());
        v1.extend_from_slice(&[1, 2, 3]);
        v1.extend_from_slice(&0u64.to_le_bytes());
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(StateSnapshot::decode(&v1).unwrap(), unknown);
        // A flag other than 0 or 1 is refused even under a valid checksum.
        let mut bad = sample().encode();
        let at = 8 + 4 + 8 + 1 + 8 + 50;
        bad[at] = 2;
        let n = bad.len() - 4;
        let crc = crc32c::crc32c(&bad[..n]);
        bad[n..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            StateSnapshot::decode(&bad),
            Err(StateSnapshotError::BadMarketDataFlag(2))
        ));
        // "Unknown" with a position beside it is refused too.
        bad[at] = 0;
        let crc = crc32c::crc32c(&bad[..n]);
        bad[n..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            StateSnapshot::decode(&bad),
            Err(StateSnapshotError::BadMarketDataFlag(0))
        ));
    }

    #[test]
    fn round_trips_and_every_flip_or_cut_is_an_error() {
        let s = sample();
        let bytes = s.encode();
        assert_eq!(StateSnapshot::decode(&bytes).unwrap(), s);
        for i in 0..bytes.len() {
            for mask in [1u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= mask;
                assert!(StateSnapshot::decode(&b).is_err(), "flip at {i}");
            }
        }
        for cut in 0..bytes.len() {
            assert!(StateSnapshot::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut b = bytes.clone();
        b[8] = 7;
        assert!(matches!(
            StateSnapshot::decode(&b),
            Err(StateSnapshotError::UnsupportedVersion(7))
        ));
    }

    #[test]
    fn written_atomically_and_read_back() {
        let dir = std::env::temp_dir().join(format!("peregrine-state-snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.snap");
        sample().write_atomic(&path).unwrap();
        assert_eq!(StateSnapshot::read(&path).unwrap(), sample());
        assert!(!dir.join("state.snap.tmp").exists());
        assert!(matches!(
            StateSnapshot::read(&dir.join("missing")),
            Err(StateSnapshotError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn restore_state_checks_app_and_gateways() {
        let cfg = ServeConfig::default();
        let state = ReplayedState::fresh(&cfg).unwrap();
        let snap = state.snapshot();
        assert_eq!(snap.app_kind, AppKind::Echo);
        assert!(restore_state(&cfg, &snap).is_ok());
        let matching = ServeConfig {
            app: AppKind::Match,
            ..ServeConfig::default()
        };
        assert!(matches!(
            restore_state(&matching, &snap),
            Err(StateSnapshotError::AppMismatch { .. })
        ));
        let mut two = snap.clone();
        two.gateways.push(Vec::new());
        assert!(matches!(
            restore_state(&cfg, &two),
            Err(StateSnapshotError::GatewayCount { .. })
        ));
    }
}
