//! [`ReplicatedLog`]: raft-rs's `RawNode` made to fit a busy-polling
//! sequencer thread.
//!
//! The sequencer owns one thread and polls; anything that parks, spawns or
//! needs an async runtime would not fit. So this wrapper has no threads and
//! no timers of its own: the caller passes the coarse clock to
//! [`tick_if_due`](ReplicatedLog::tick_if_due) (Raft's timers advance one
//! tick per [`ClusterConfig::tick`], however often the loop spins), feeds
//! received messages to [`step`](ReplicatedLog::step), proposes one entry
//! per poll holding that poll's batch of sequenced records (batching falls
//! out naturally: a busy leader replicates big entries, an idle one small
//! ones), and calls [`poll`](ReplicatedLog::poll), which does everything
//! raft-rs's `Ready` asks in the order it documents. Outgoing messages are
//! left in an outbox for the caller's network layer, so transport (kernel
//! TCP, DPDK, the simulation's fake network) is not this crate's concern.
//!
//! Costs: raft-rs allocates (entries and messages are `Vec`s), so a
//! proposal copies its batch once. That is one allocation per batch, not
//! per message; the single-node path without a cluster is unchanged.

use crate::config::ClusterConfig;
use crate::events::{LeadershipEvent, Role};
use crate::store::{LogStore, StoreError};
use raft::eraftpb::{Entry, EntryType, Message, MessageType};
use raft::RawNode;

/// An error from the replicated log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// raft-rs refused the operation (an invalid configuration, a message
    /// for another node or from an unknown peer, a store read error).
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// Persisting failed: this node must stop and restart from its store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a proposal was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader proposes; `leader` is where to go instead, if known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader's id, if known.
        leader: Option<u64>,
    },
    /// The leader refused it for now (a leadership transfer in progress).
    #[error("proposal dropped by raft")]
    Dropped,
}

/// Where a proposal landed: it is committed once
/// [`ReplicatedLog::commit_index`] reaches `index` while the entry at
/// `index` still has `term` (a new leader may overwrite an uncommitted one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposed {
    /// Log index of the entry.
    pub index: u64,
    /// Term it was proposed in.
    pub term: u64,
}

/// A committed log entry handed to the state machine, in log order.
#[derive(Debug, Clone, Copy)]
pub struct CommittedEntry<'a> {
    /// Its log index (consecutive across calls).
    pub index: u64,
    /// The term in which it was proposed.
    pub term: u64,
    /// The proposed bytes; empty for the entry a new leader appends to
    /// commit its term (nothing to apply, but the index counts).
    pub data: &'a [u8],
}

/// The state machine side of [`ReplicatedLog::poll`]: receives every
/// committed entry exactly once per process lifetime, in index order.
pub trait Apply {
    /// Applies one committed entry. Must be deterministic: every node
    /// applies the same entries in the same order and must reach the same
    /// state.
    fn apply(&mut self, entry: CommittedEntry<'_>);
}

impl<F: FnMut(CommittedEntry<'_>)> Apply for F {
    fn apply(&mut self, entry: CommittedEntry<'_>) {
        self(entry)
    }
}

/// A follower's replication progress as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerProgress {
    /// The peer's node id.
    pub id: u64,
    /// Highest index known to be on the peer's log.
    pub matched: u64,
    /// Next index the leader will send it.
    pub next: u64,
}

/// One node's replicated log: a raft-rs `RawNode` over a [`LogStore`],
/// driven by the caller's loop. See the module docs.
pub struct ReplicatedLog<S: LogStore> {
    node: RawNode<S>,
    tick_ns: u64,
    /// Clock reading at which the next tick is due; `None` before the
    /// first [`tick_if_due`](Self::tick_if_due).
    next_tick_ns: Option<u64>,
    outbox: Vec<Message>,
    events: Vec<LeadershipEvent>,
    role: Role,
    leader: Option<u64>,
    applied: u64,
    /// Index of the entry that opened this node's current leadership (the
    /// empty entry a new leader appends); 0 when not leading.
    term_start: u64,
    log_loss_repairs: u64,
    snapshots_installed: u64,
}

impl<S: LogStore> std::fmt::Debug for ReplicatedLog<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedLog")
            .field("id", &self.id())
            .field("role", &self.role)
            .field("term", &self.term())
            .field("leader", &self.leader)
            .field("commit", &self.commit_index())
            .field("applied", &self.applied)
            .finish()
    }
}

/// At most this many ticks are caught up in one call when the loop was
/// late (a stall); beyond that, time is skipped rather than replayed in a
/// burst that would fire every timer at once.
const MAX_CATCH_UP_TICKS: u32 = 4;

impl<S: LogStore> ReplicatedLog<S> {
    /// Starts (or restarts) this node over `store`, which holds whatever
    /// was persisted before. `applied` is the last index the caller's state
    /// machine already reflects: 0 makes [`poll`](Self::poll) replay the
    /// whole committed log into it.
    pub fn new(config: &ClusterConfig, store: S, applied: u64) -> Result<Self, LogError> {
        Self::build(config, store, applied, false)
    }

    /// Like [`new`](Self::new), but every election timeout is exactly
    /// `election_ticks` instead of a draw from raft-rs's thread-local random
    /// generator. For deterministic simulations, which must supply the
    /// randomness that breaks split votes themselves (by jittering each
    /// node's clock); a real deployment wants [`new`](Self::new).
    pub fn new_fixed_timeout(config: &ClusterConfig, store: S, applied: u64) -> Result<Self, LogError> {
        Self::build(config, store, applied, true)
    }

    fn build(config: &ClusterConfig, store: S, applied: u64, fixed_timeout: bool) -> Result<Self, LogError> {
        config.validate()?;
        let mut raft_config = config.raft_config(applied);
        if fixed_timeout {
            raft_config.min_election_tick = config.election_ticks;
            raft_config.max_election_tick = config.election_ticks + 1;
        }
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&raft_config, store, &logger)?;
        Ok(ReplicatedLog {
            node,
            tick_ns: config.tick_ns().max(1),
            next_tick_ns: None,
            outbox: Vec::new(),
            events: Vec::new(),
            role: Role::Follower,
            leader: None,
            applied,
            term_start: 0,
            log_loss_repairs: 0,
            snapshots_installed: 0,
        })
    }

    /// Advances Raft's clock if a tick is due at `now_ns` (any monotonic
    /// nanosecond clock, the same for every call). Cheap when no tick is
    /// due, so it can run on every poll. Returns how many ticks ran.
    pub fn tick_if_due(&mut self, now_ns: u64) -> u32 {
        let next = *self
            .next_tick_ns
            .get_or_insert(now_ns.saturating_add(self.tick_ns));
        if now_ns < next {
            return 0;
        }
        let mut ticks = 0;
        let mut due = next;
        while due <= now_ns && ticks < MAX_CATCH_UP_TICKS {
            self.node.tick();
            ticks += 1;
            due = due.saturating_add(self.tick_ns);
        }
        if due <= now_ns {
            due = now_ns.saturating_add(self.tick_ns);
        }
        self.next_tick_ns = Some(due);
        ticks
    }

    /// Advances Raft's clock by exactly one tick (for simulations and tests
    /// that count ticks themselves).
    pub fn tick(&mut self) {
        self.node.tick();
    }

    /// Proposes `batch` as one log entry (copied). Only the leader accepts.
    /// Returns where it landed; it is durable cluster-wide only once
    /// committed.
    pub fn propose(&mut self, batch: &[u8]) -> Result<Proposed, ProposeError> {
        if self.node.raft.state != raft::StateRole::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader_id(),
            });
        }
        match self.node.propose(Vec::new(), batch.to_vec()) {
            Ok(()) => Ok(Proposed {
                index: self.node.raft.raft_log.last_index(),
                term: self.node.raft.term,
            }),
            // raft-rs refuses a proposal only with `ProposalDropped`
            // (transfer in progress, or leadership lost inside the call).
            Err(_) => Err(ProposeError::Dropped),
        }
    }

    /// Delivers a message received from a peer. Messages from an older
    /// term, duplicates and reordered ones are handled by Raft; an error
    /// means the message was not for this node or came from a non-member.
    ///
    /// Two repairs happen first, for a node that lost its log (its machine
    /// replaced by an empty one under the same id, the documented way to
    /// replace a member while membership is static): such a follower is
    /// never told to commit beyond the log it has (raft-rs would abort on
    /// it; it commits those entries once it holds them), and a leader that
    /// sees a follower reject an append below what it believed that
    /// follower held forgets that belief and probes it from scratch (else
    /// raft-rs would ignore the rejection as stale and never send the
    /// follower its log again). Lowering a peer's match index can only
    /// delay commitment, never advance it, so neither repair weakens Raft.
    pub fn step(&mut self, mut message: Message) -> Result<(), LogError> {
        match message.get_msg_type() {
            MessageType::MsgHeartbeat => {
                let last = self.node.raft.raft_log.last_index();
                if message.commit > last {
                    message.commit = last;
                    self.log_loss_repairs += 1;
                }
            }
            MessageType::MsgAppendResponse
                if message.reject && self.node.raft.state == raft::StateRole::Leader =>
            {
                if let Some(pr) = self.node.raft.mut_prs().get_mut(message.from) {
                    if message.reject_hint < pr.matched {
                        pr.matched = 0;
                        pr.next_idx = message.reject_hint + 1;
                        pr.become_probe();
                        self.log_loss_repairs += 1;
                    }
                }
            }
            _ => {}
        }
        self.node.step(message)?;
        Ok(())
    }

    /// Snapshots received from a leader and installed in the store by
    /// [`poll`](Self::poll) (the log before them replaced). The state
    /// machine must then be rebuilt from the store's snapshot: entries
    /// after it are applied through [`Apply`] as usual, the snapshot's
    /// content is not.
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed
    }

    /// The store, mutably, between polls (taking a snapshot, persisting
    /// the commit index): never for appends, which go through
    /// [`poll`](Self::poll).
    pub fn store_mut(&mut self) -> &mut S {
        self.node.mut_store()
    }

    /// How often [`step`](Self::step) repaired around a peer that lost
    /// its log.
    pub fn log_loss_repairs(&self) -> u64 {
        self.log_loss_repairs
    }

    /// Handles everything Raft has ready, in raft-rs's order: queue
    /// messages a leader may send before persisting; install a snapshot;
    /// apply newly committed entries; persist new entries and the hard
    /// state; queue the messages that must follow persistence; `advance`;
    /// persist the new commit index, queue and apply what that released;
    /// `advance_apply`. Returns whether there was anything to do.
    ///
    /// On `Err` the store may be behind Raft's memory: stop this node and
    /// restart it from its store.
    pub fn poll(&mut self, apply: &mut impl Apply) -> Result<bool, LogError> {
        if !self.node.has_ready() {
            return Ok(false);
        }
        let mut ready = self.node.ready();
        if let Some(ss) = ready.ss() {
            let (role, leader) = (Role::from(ss.raft_state), ss.leader_id);
            self.note_soft_state(role, leader);
        }
        if !ready.messages().is_empty() {
            self.outbox.extend(ready.take_messages());
        }
        if !ready.snapshot().is_empty() {
            self.node.mut_store().apply_snapshot(ready.snapshot())?;
            self.applied = self.applied.max(ready.snapshot().get_metadata().index);
            self.snapshots_installed += 1;
        }
        let committed = ready.take_committed_entries();
        self.apply_entries(&committed, apply);
        if !ready.entries().is_empty() {
            // A leader's entries of its own term are its own proposals (one
            // leader per term, and it appends nobody else's): records its
            // sequencer encoded a moment ago, not bytes from the network.
            let raft = &self.node.raft;
            let own =
                raft.state == raft::StateRole::Leader && ready.entries().iter().all(|e| e.term == raft.term);
            if own {
                self.node.mut_store().append_proposed(ready.entries())?;
            } else {
                self.node.mut_store().append(ready.entries())?;
            }
        }
        if let Some(hs) = ready.hs() {
            self.node.mut_store().set_hard_state(hs)?;
        }
        if !ready.persisted_messages().is_empty() {
            self.outbox.extend(ready.take_persisted_messages());
        }
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().set_commit(commit)?;
        }
        self.outbox.extend(light.take_messages());
        self.report_snapshots_sent();
        let committed = light.take_committed_entries();
        self.apply_entries(&committed, apply);
        self.node.advance_apply();
        Ok(true)
    }

    /// A leader keeps a peer it sent a snapshot to paused until told the
    /// snapshot arrived; the transport cannot say, so every snapshot
    /// queued is reported delivered at once. The peer is then probed with
    /// the entries after it: if the snapshot was lost, it rejects them
    /// and is sent the snapshot again, instead of staying paused forever.
    fn report_snapshots_sent(&mut self) {
        let to: Vec<u64> = self
            .outbox
            .iter()
            .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
            .map(|m| m.to)
            .collect();
        for id in to {
            self.node.report_snapshot(id, raft::SnapshotStatus::Finish);
        }
    }

    fn apply_entries(&mut self, entries: &[Entry], apply: &mut impl Apply) {
        for e in entries {
            self.applied = e.index;
            // Membership is static: configuration-change entries are never
            // proposed, and are skipped should one appear.
            if e.get_entry_type() == EntryType::EntryNormal {
                apply.apply(CommittedEntry {
                    index: e.index,
                    term: e.term,
                    data: &e.data,
                });
            }
        }
    }

    fn note_soft_state(&mut self, role: Role, leader_id: u64) {
        let leader = (leader_id != raft::INVALID_ID).then_some(leader_id);
        if role == self.role && leader == self.leader {
            return;
        }
        let event = LeadershipEvent::classify(self.term(), self.role, self.leader, role, leader);
        if role == Role::Leader && self.role != Role::Leader {
            // raft-rs appended the term's empty entry on becoming leader.
            self.term_start = self.node.raft.raft_log.last_index();
        } else if role != Role::Leader {
            self.term_start = 0;
        }
        self.role = role;
        self.leader = leader;
        self.events.push(event);
    }

    /// Messages for peers, oldest first; the caller sends (or drops) them.
    /// Raft retries anything lost, so a full transmit queue may drop.
    pub fn drain_outbox(&mut self) -> std::vec::Drain<'_, Message> {
        self.outbox.drain(..)
    }

    /// Leadership changes since the last call, oldest first.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, LeadershipEvent> {
        self.events.drain(..)
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.node.raft.id
    }

    /// This node's role as of the last [`poll`](Self::poll).
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this node leads (as of the last poll).
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// Whether this node may sequence now: it leads, and it has applied
    /// every entry up to the one that opened its leadership (so it holds
    /// every earlier leader's committed records and the global sequence
    /// continues from the last of them).
    pub fn can_serve(&self) -> bool {
        self.role == Role::Leader && self.term_start != 0 && self.applied >= self.term_start
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// The leader this node knows of, if any (as of the last poll).
    pub fn leader_id(&self) -> Option<u64> {
        self.leader
    }

    /// Highest log index known to be committed.
    pub fn commit_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    /// Highest log index handed to [`Apply`].
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// Highest index in this node's log (persisted or not yet).
    pub fn last_index(&self) -> u64 {
        self.node.raft.raft_log.last_index()
    }

    /// The term of the entry at `index`, if this node still has it.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.node.raft.raft_log.term(index).ok()
    }

    /// Calls `f` with each voter's replication progress, in no particular
    /// order, without allocating (for counters published from the polling
    /// loop); nothing unless this node leads.
    pub fn for_each_progress(&self, mut f: impl FnMut(PeerProgress)) {
        if !self.is_leader() {
            return;
        }
        for (&id, p) in self.node.raft.prs().iter() {
            f(PeerProgress {
                id,
                matched: p.matched,
                next: p.next_idx,
            });
        }
    }

    /// Every voter's replication progress, sorted by id; empty unless
    /// this node leads (only a leader tracks it).
    pub fn peer_progress(&self) -> Vec<PeerProgress> {
        if !self.is_leader() {
            return Vec::new();
        }
        let mut out: Vec<PeerProgress> = self
            .node
            .raft
            .prs()
            .iter()
            .map(|(&id, p)| PeerProgress {
                id,
                matched: p.matched,
                next: p.next_idx,
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }

    /// The store (for inspection; writes go through [`poll`](Self::poll)).
    pub fn store(&self) -> &S {
        self.node.store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MemberConfig;
    use crate::store::MemLogStore;
    use std::net::SocketAddr;

    fn node() -> ReplicatedLog<MemLogStore> {
        let members = (1..=3)
            .map(|id| MemberConfig {
                id,
                raft: SocketAddr::from(([127, 0, 0, 1], 7200 + id as u16)),
                udp: vec![],
                tcp: vec![],
            })
            .collect();
        let config = ClusterConfig::new(1, members);
        ReplicatedLog::new(&config, MemLogStore::new(&[1, 2, 3]), 0).unwrap()
    }

    #[test]
    fn ticks_follow_the_clock_not_the_polls() {
        const MS: u64 = 1_000_000;
        let mut log = node();
        let t0 = 5_000 * MS;
        assert_eq!(log.tick_if_due(t0), 0, "the first reading starts the clock");
        assert_eq!(log.tick_if_due(t0 + 9 * MS), 0);
        assert_eq!(log.tick_if_due(t0 + 10 * MS), 1);
        assert_eq!(
            log.tick_if_due(t0 + 10 * MS),
            0,
            "one tick per period however often polled"
        );
        assert_eq!(log.tick_if_due(t0 + 25 * MS), 1, "next due at +20 ms");
        assert_eq!(log.tick_if_due(t0 + 29 * MS), 0, "then at +30 ms, not +35 ms");
        assert_eq!(log.tick_if_due(t0 + 30 * MS), 1);
        // A long stall catches up a few ticks, then skips ahead.
        assert_eq!(log.tick_if_due(t0 + 1_000 * MS), MAX_CATCH_UP_TICKS);
        assert_eq!(log.tick_if_due(t0 + 1_009 * MS), 0);
        assert_eq!(log.tick_if_due(t0 + 1_010 * MS), 1);
    }

    #[test]
    fn a_lone_follower_refuses_proposals_and_knows_no_leader() {
        let mut log = node();
        assert_eq!(log.role(), Role::Follower);
        assert_eq!(log.leader_id(), None);
        assert_eq!(log.propose(b"x"), Err(ProposeError::NotLeader { leader: None }));
        assert_eq!(
            (log.commit_index(), log.applied_index(), log.last_index()),
            (0, 0, 0)
        );
        assert!(log.peer_progress().is_empty());
    }

    #[test]
    fn invalid_config_and_foreign_messages_are_typed_errors() {
        let config = ClusterConfig::new(1, Vec::new());
        assert!(matches!(
            ReplicatedLog::new(&config, MemLogStore::new(&[1]), 0),
            Err(LogError::Config(_))
        ));
        let mut log = node();
        let m = Message {
            from: 9,
            to: 1,
            term: 1,
            msg_type: raft::eraftpb::MessageType::MsgHup,
            ..Message::default()
        };
        assert!(log.step(m).is_err());
    }
}
