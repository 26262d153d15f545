//! What the runtime's loops drive in the sequencer's place: the plain
//! [`Sequencer`] of a single node, or a cluster node (the sequencer plus its
//! replicated log and node transport).
//!
//! The thread layouts are the same for both, so they are written once
//! against this trait; the stage says what it publishes to the counters
//! file and why it stopped.

use crate::counters_file::CounterBlock;
use peregrine_sequencer::{Application, Sequencer, SequencerCounters};

/// Loop counters the runtime adds to the stage's own, in the sequencer's
/// counters block.
pub(crate) const LOOP_NAMES: [&str; 6] = [
    "busy_loops",
    "idle_loops",
    "next_seq",
    "journal_bytes",
    "journal_durable_seq",
    "journal_lag",
];

/// Why a stage stopped by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageStop {
    /// A fault that needs an operator (a journal write failed, the log
    /// could not be applied): the server stops.
    Failed(String),
    /// A cluster leader lost its leadership: whatever it sequenced but did
    /// not commit may be overwritten, so the node starts again from its
    /// durable log as a follower.
    SteppedDown(String),
    /// A cluster follower installed a snapshot from its leader (it was too
    /// far behind for the log): the node starts again from that snapshot.
    SnapshotInstalled(String),
    /// A cluster node's log store failed a write: Raft's memory may be ahead
    /// of the disk, so the node starts again from what its store holds.
    StoreFailed(String),
}

impl std::fmt::Display for StageStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageStop::Failed(s) => f.write_str(s),
            StageStop::SteppedDown(s) => write!(f, "stepped down: {s}"),
            StageStop::SnapshotInstalled(s) => write!(f, "installed a snapshot: {s}"),
            StageStop::StoreFailed(s) => write!(f, "log store failed: {s}"),
        }
    }
}

/// The sequencing stage of a polling loop.
pub trait SequencerStage: Send + 'static {
    /// The application behind the sequencer.
    type App: Application + Send + 'static;

    /// One round; returns work done (0 = idle).
    fn poll(&mut self) -> usize;
    /// Why the stage stopped by itself, if it did: the loops end.
    fn stopped(&self) -> Option<StageStop>;
    /// Replies still to be handed to the gateways (drained before exit).
    fn held_back(&self) -> usize;
    /// The sequencer inside.
    fn sequencer(&self) -> &Sequencer<Self::App>;
    /// Consumes the stage, returning the application.
    fn into_app(self) -> Self::App;
    /// Called by the loop after a round that found no work: a stage that
    /// can wait for its next input without spinning (a cluster follower,
    /// on its peers' sockets) blocks briefly and returns true, and the
    /// loop skips its idle strategy; false (the default) lets the idle
    /// strategy run.
    fn park(&mut self) -> bool {
        false
    }
    /// Whether clients are served here now (a single node always; a
    /// cluster node while it leads). A colocated loop polls the gateways of
    /// a stage that does not serve only every 16th round, or when the
    /// stage produced work for them: all its clients get
    /// is a refusal naming the leader, and a colocation thread running
    /// several nodes saves a receive call per follower gateway per round.
    fn serves_clients(&self) -> bool {
        true
    }
    /// Extra counter blocks (title, names) beside the sequencer's.
    fn extra_layout(&self) -> Vec<(String, Vec<&'static str>)> {
        Vec::new()
    }
    /// Publishes the extra blocks (same order as [`extra_layout`](Self::extra_layout)).
    fn publish_extra(&self, _blocks: &[CounterBlock]) {}
    /// Highest global sequence a journal reader may publish: a single
    /// node's journaled records (see
    /// [`Sequencer::publishable_seq`]); a cluster node's committed ones.
    /// Never decreases within a stage.
    fn publishable_seq(&self) -> u64 {
        self.sequencer().publishable_seq()
    }
    /// Highest sequence known durable (0 when unknown).
    fn durable_seq(&self) -> u64 {
        self.sequencer().journal().map_or(0, |j| j.durable_seq())
    }
}

impl<A: Application + Send + 'static> SequencerStage for Sequencer<A> {
    type App = A;

    #[inline]
    fn poll(&mut self) -> usize {
        Sequencer::poll(self)
    }

    fn stopped(&self) -> Option<StageStop> {
        self.failed().map(|f| StageStop::Failed(f.to_owned()))
    }

    fn held_back(&self) -> usize {
        Sequencer::held_back(self)
    }

    fn sequencer(&self) -> &Sequencer<A> {
        self
    }

    fn into_app(self) -> A {
        Sequencer::into_app(self)
    }
}

/// The sequencer block's names: the sequencer's counters, then the loop's.
pub(crate) fn sequencer_names() -> Vec<&'static str> {
    SequencerCounters::NAMES
        .iter()
        .chain(LOOP_NAMES.iter())
        .copied()
        .collect()
}
