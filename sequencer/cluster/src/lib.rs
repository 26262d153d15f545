//! Peregrine's replicated sequencer log: the foundation for running the
//! sequencer as a 3- or 5-node Raft cluster.
//!
//! A single sequencer is a single point of failure; replicating its output
//! stream through Raft lets a new leader take over with every acknowledged
//! message intact. What is replicated is the sequencer's *output*: each
//! poll's batch of sequenced records becomes one Raft entry, so followers
//! hold the exact stream the leader produced and rebuild identical state by
//! applying it, and the cost of consensus is paid once per batch, not per
//! message.
//!
//! * [`ClusterConfig`]: the `[cluster]` configuration section, validated.
//! * [`ReplicatedLog`]: raft-rs's `RawNode` behind a poll-driven interface
//!   for the sequencer's busy loop (no threads, no async runtime), with an
//!   outbox for the network layer and [`LeadershipEvent`]s for logging.
//! * [`LogStore`]: the durable log behind a trait; [`MemLogStore`] keeps
//!   it in memory (tests, simulation).
//! * [`JournalLogStore`]: the journal *is* the Raft log: each entry's
//!   records live in the node's journal (no second copy), with a small
//!   CRC'd entry index and the [`HardStateFile`] beside it; recovery
//!   reconciles index and journal after a crash. It stores snapshots
//!   (taken at a committed index, or installed from a leader).
//! * [`HardStateFile`]: term, vote, commit and membership in one atomically
//!   replaced, CRC32C-checked file.
//! * [`NodeTransport`]: raft messages between nodes over kernel TCP,
//!   polled from the same loop.
//!
//! The server (`peregrine_server::cluster_node`) drives these from the
//! sequencer's loop. Not yet here: handing an installed snapshot to the
//! application through [`ReplicatedLog`] (and deciding when to take one).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod events;
pub mod hard_state_file;
pub mod journal_store;
pub mod log;
pub mod store;
pub mod transport;

pub use config::{AckLevel, ClusterConfig, ConfigError, MemberConfig};
pub use events::{ChangeReason, LeadershipEvent, Role};
pub use hard_state_file::{HardStateFile, HardStateFileError};
pub use journal_store::{
    decode_snapshot_data, encode_snapshot_data, read_installed_snapshot, BadEntryReason, JournalLogStore,
    JournalStoreError, StoreRecovery,
};
pub use log::{Apply, CommittedEntry, LogError, PeerProgress, ProposeError, Proposed, ReplicatedLog};
/// raft-rs's message types, re-exported so callers need not depend on it.
pub use raft::eraftpb::{ConfState, Entry, HardState, Message};
pub use store::{LogStore, MemLogStore, StoreError};
pub use transport::{NodeTransport, TransportCounters, TransportError};
