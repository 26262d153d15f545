//! What can stop a server from starting or running, typed so that an
//! embedder can tell a bad configuration from a busy port or a corrupt
//! journal.

use crate::config::ConfigError;
use crate::pinning::PinError;
use crate::runtime::RunError;
use peregrine_gateway::directory::DirectoryError;
use peregrine_gateway::restore::RestoreError;
use peregrine_journal::JournalError;
use peregrine_netio::NetError;
use peregrine_ring::RingError;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why [`start`](crate::serve::start), [`ServerHandle::stop`](crate::serve::ServerHandle::stop)
/// or [`ServerHandle::wait`](crate::serve::ServerHandle::wait) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configured core does not exist, or a thread could not be pinned.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// A listener could not be bound or configured.
    #[error("{transport} gateway on {addr}: {source}")]
    Bind {
        /// `UDP` or `TCP`.
        transport: &'static str,
        /// The configured listen address.
        addr: SocketAddr,
        /// What the socket layer said.
        #[source]
        source: NetError,
    },
    /// A ring capacity is not a power of two.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// The configured sessions are inconsistent.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The matching engine's configuration is invalid.
    #[error("engine configuration: {0}")]
    Engine(#[from] peregrine_engine::ConfigError),
    /// The journal could not be recovered or continued.
    #[error("recovering journal {}: {source}", dir.display())]
    Journal {
        /// The journal directory.
        dir: PathBuf,
        /// What recovery found.
        #[source]
        source: JournalError,
    },
    /// The journal names sessions or gateways this configuration lacks.
    #[error("restoring sessions from journal {}: {source}", dir.display())]
    Restore {
        /// The journal directory.
        dir: PathBuf,
        /// What did not fit.
        #[source]
        source: RestoreError,
    },
    /// The DPDK port could not be set up.
    #[cfg(feature = "dpdk")]
    #[error("DPDK: {0}")]
    Dpdk(#[from] peregrine_netio::dpdk::DpdkError),
    /// The cluster node's Raft log (its journal) could not be opened.
    #[error("cluster log store: {0}")]
    ClusterStore(#[from] peregrine_cluster::StoreError),
    /// Raft refused the node's state or configuration.
    #[error("cluster: {0}")]
    ClusterLog(#[from] peregrine_cluster::LogError),
    /// A cluster node's state snapshot could not be read or restored.
    #[error("state snapshot: {0}")]
    Snapshot(#[from] crate::snapshot::StateSnapshotError),
    /// The node transport could not listen on the Raft address.
    #[error("cluster transport: {0}")]
    ClusterTransport(#[from] peregrine_cluster::TransportError),
    /// The sequenced feed could not start or failed.
    #[error(transparent)]
    Feed(#[from] peregrine_feed::FeedError),
    /// `lock_memory` is set and the memory could not be locked.
    #[error(transparent)]
    LockMemory(#[from] crate::memory_lock::LockError),
    /// The server thread could not be started.
    #[error("starting the server thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The runtime stopped with an error.
    #[error(transparent)]
    Run(#[from] RunError),
    /// `stop` or `wait` was called on a server already stopped.
    #[error("server already stopped")]
    AlreadyStopped,
    /// The server thread panicked (with `panic = "abort"` in release builds
    /// the process ends instead).
    #[error("server thread panicked")]
    Panicked,
}
