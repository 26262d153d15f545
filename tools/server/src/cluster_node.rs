//! A cluster node's sequencing stage: the sequencer, its replicated log and
//! the transport to the other nodes, driven from the same polling loop.
//!
//! Each poll, in this order: receive peers' messages and step them into
//! Raft; advance Raft's clock; if this node leads and has caught up,
//! sequence one round of client input and propose the round's records as
//! one log entry; let Raft persist, send and apply what is ready
//! (committed entries another leader sequenced are applied to the
//! application and become session state in the gateways); release the
//! replies whose entry committed; send the round's Raft messages.
//!
//! A leader that loses its leadership stops ([`StageStop::SteppedDown`]):
//! its application and sessions may hold records that will never commit,
//! so the node is rebuilt from its durable log as a follower rather than
//! patched in place. A follower never sequences; its gateways refuse logins
//! with a hint naming the leader.

use crate::counters_file::CounterBlock;
use crate::stage::{SequencerStage, StageStop};
use hdrhistogram::Histogram;
use peregrine_cluster::{CommittedEntry, LogStore, NodeTransport, ReplicatedLog, Role};
use peregrine_journal::{decode_record, RECORD_LEN};
use peregrine_sequencer::{Application, Sequencer};
use std::collections::VecDeque;

/// Tells the gateways whether this node serves clients and who leads.
pub type ServingSignal = Box<dyn Fn(bool, Option<u64>) + Send>;

peregrine_sequencer::counter_set! {
    /// A cluster node's counters, published as the `cluster` block.
    pub struct ClusterCounters {
        /// Raft role: 0 follower, 1 pre-candidate, 2 candidate, 3 leader.
        role,
        /// 1 while this node sequences client input (leads and caught up).
        serving,
        /// Current Raft term.
        term,
        /// The leader's node id (0: none known).
        leader_id,
        /// This node's id.
        node_id,
        /// Highest committed log index.
        commit_index,
        /// Highest log index applied.
        applied_index,
        /// Highest log index held.
        last_index,
        /// Log entries this node proposed (one per busy poll as leader).
        proposals,
        /// Records in those entries.
        proposed_records,
        /// Bytes of entry data proposed.
        proposed_bytes,
        /// Proposals Raft refused.
        proposals_refused,
        /// Role or leader changes seen.
        role_changes,
        /// Elections this node won.
        elections_won,
        /// Raft messages refused by `step` (not for this node, unknown peer).
        step_errors,
        /// Repairs around a peer that lost its log (a member replaced by an
        /// empty node under the same id).
        log_loss_repairs,
        /// Messages sent to peers.
        msgs_sent,
        /// Bytes written to peers.
        bytes_sent,
        /// Messages received from peers.
        msgs_received,
        /// Bytes received from peers.
        bytes_received,
        /// Messages dropped on the way out (link down, buffer full).
        msgs_dropped,
        /// Outbound reconnect attempts.
        reconnects,
        /// Proposal → commit, median over the run, ns.
        commit_p50_ns,
        /// Proposal → commit, 99th percentile, ns.
        commit_p99_ns,
        /// Proposal → commit, 99.9th percentile, ns.
        commit_p999_ns,
        /// Proposal → commit, maximum, ns.
        commit_max_ns,
        /// First peer's id (leader only; 0 when unused).
        peer1_id,
        /// First peer's highest replicated index.
        peer1_match,
        /// Second peer's id.
        peer2_id,
        /// Second peer's highest replicated index.
        peer2_match,
        /// Third peer's id.
        peer3_id,
        /// Third peer's highest replicated index.
        peer3_match,
        /// Fourth peer's id.
        peer4_id,
        /// Fourth peer's highest replicated index.
        peer4_match,
    }
}

/// Proposal times of entries not yet committed, and the commit latency
/// histogram (allocated at start; recording never allocates).
struct CommitClock {
    pending: VecDeque<(u64, u64)>,
    latency: Histogram<u64>,
}

impl CommitClock {
    fn new() -> CommitClock {
        CommitClock {
            pending: VecDeque::with_capacity(4096),
            // 1 ns .. 60 s at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("static histogram bounds are valid"),
        }
    }

    fn proposed(&mut self, index: u64, now_ns: u64) {
        if self.pending.len() < self.pending.capacity() {
            self.pending.push_back((index, now_ns));
        }
    }

    fn committed(&mut self, commit: u64, now_ns: u64) {
        while let Some(&(index, at)) = self.pending.front() {
            if index > commit {
                break;
            }
            self.pending.pop_front();
            let _ = self.latency.record(now_ns.saturating_sub(at).max(1));
        }
    }
}

/// A cluster node's sequencing stage. See the module docs.
pub struct ClusterNode<A, S: LogStore> {
    seq: Sequencer<A>,
    log: ReplicatedLog<S>,
    transport: NodeTransport,
    signal: ServingSignal,
    serving: bool,
    leader_seen: Option<u64>,
    clock: CommitClock,
    counters: ClusterCounters,
    stopped: Option<StageStop>,
    /// Global sequence of the last record of the last committed entry
    /// this node has seen (its sequencer starts at its applied state, all
    /// committed).
    committed_seq: u64,
}

impl<A: Application, S: LogStore> ClusterNode<A, S> {
    /// A node over a sequencer built
    /// [`with_replication`](Sequencer::with_replication) whose next
    /// sequence follows the log's applied index, its log and its transport.
    /// `signal` is told every change of serving state and leader.
    pub fn new(
        seq: Sequencer<A>,
        log: ReplicatedLog<S>,
        transport: NodeTransport,
        signal: ServingSignal,
    ) -> Self {
        signal(false, None);
        let counters = ClusterCounters {
            node_id: log.id(),
            ..ClusterCounters::default()
        };
        let committed_seq = seq.next_seq().saturating_sub(1);
        ClusterNode {
            seq,
            log,
            transport,
            signal,
            serving: false,
            leader_seen: None,
            clock: CommitClock::new(),
            counters,
            stopped: None,
            committed_seq,
        }
    }

    /// The replicated log.
    pub fn log(&self) -> &ReplicatedLog<S> {
        &self.log
    }

    /// Counters as of the last poll.
    pub fn counters(&self) -> ClusterCounters {
        let mut c = self.counters;
        self.fill(&mut c);
        c
    }

    fn fill(&self, c: &mut ClusterCounters) {
        c.role = match self.log.role() {
            Role::Follower => 0,
            Role::PreCandidate => 1,
            Role::Candidate => 2,
            Role::Leader => 3,
        };
        c.serving = self.serving as u64;
        c.term = self.log.term();
        c.leader_id = self.log.leader_id().unwrap_or(0);
        c.commit_index = self.log.commit_index();
        c.applied_index = self.log.applied_index();
        c.last_index = self.log.last_index();
        c.log_loss_repairs = self.log.log_loss_repairs();
        let t = self.transport.counters();
        c.msgs_sent = t.msgs_sent;
        c.bytes_sent = t.bytes_sent;
        c.msgs_received = t.msgs_received;
        c.bytes_received = t.bytes_received;
        c.msgs_dropped = t.msgs_dropped;
        c.reconnects = t.reconnects;
        let h = &self.clock.latency;
        if !h.is_empty() {
            c.commit_p50_ns = h.value_at_quantile(0.5);
            c.commit_p99_ns = h.value_at_quantile(0.99);
            c.commit_p999_ns = h.value_at_quantile(0.999);
            c.commit_max_ns = h.max();
        }
        let me = self.log.id();
        let mut k = 0;
        self.log.for_each_progress(|p| {
            if p.id == me {
                return;
            }
            let slot = match k {
                0 => (&mut c.peer1_id, &mut c.peer1_match),
                1 => (&mut c.peer2_id, &mut c.peer2_match),
                2 => (&mut c.peer3_id, &mut c.peer3_match),
                3 => (&mut c.peer4_id, &mut c.peer4_match),
                _ => return,
            };
            *slot.0 = p.id;
            *slot.1 = p.matched;
            k += 1;
        });
    }

    fn stop(&mut self, why: StageStop) {
        if self.stopped.is_none() {
            if self.serving {
                (self.signal)(false, None);
                self.serving = false;
            }
            self.stopped = Some(why);
        }
    }

    /// Follows role changes: logs them, signals the gateways, stops a
    /// deposed leader, starts serving once caught up.
    fn follow_role(&mut self) {
        let mut deposed = None;
        for ev in self.log.drain_events() {
            self.counters.role_changes += 1;
            if ev.to == Role::Leader {
                self.counters.elections_won += 1;
            }
            tracing::info!(
                term = ev.term,
                from = ?ev.from,
                to = ?ev.to,
                leader = ?ev.leader,
                reason = ?ev.reason,
                "cluster role change"
            );
            if ev.from == Role::Leader && ev.to != Role::Leader {
                deposed = Some(format!(
                    "term {}: {:?} (leader now {:?})",
                    ev.term, ev.reason, ev.leader
                ));
            }
        }
        if let Some(why) = deposed {
            self.stop(StageStop::SteppedDown(why));
            return;
        }
        if !self.serving && self.log.can_serve() {
            self.serving = true;
            tracing::info!(
                term = self.log.term(),
                next_seq = self.seq.next_seq(),
                applied = self.log.applied_index(),
                "leader caught up: serving clients"
            );
            (self.signal)(true, Some(self.log.id()));
            self.leader_seen = Some(self.log.id());
        } else if !self.serving && self.leader_seen != self.log.leader_id() {
            self.leader_seen = self.log.leader_id();
            (self.signal)(false, self.leader_seen);
        }
    }
}

impl<A, S> SequencerStage for ClusterNode<A, S>
where
    A: Application + Send + 'static,
    S: LogStore + Send + 'static,
{
    type App = A;

    fn poll(&mut self) -> usize {
        if self.stopped.is_some() {
            // Hand over what is already in the overflow queues; nothing new.
            self.seq.flush_overflow();
            return 0;
        }
        let now = peregrine_netio::clock::now_ns();
        let mut work = 0;
        let log = &mut self.log;
        let step_errors = &mut self.counters.step_errors;
        match self.transport.poll(|m| {
            if log.step(m).is_err() {
                *step_errors += 1;
            }
        }) {
            Ok(n) => work += n,
            Err(e) => {
                self.stop(StageStop::Failed(format!("cluster transport: {e}")));
                return 0;
            }
        }
        work += self.log.tick_if_due(now) as usize;
        if self.serving {
            work += self.seq.poll();
            let batch = self.seq.pending_batch();
            if !batch.is_empty() {
                let (records, bytes) = (batch.len() / peregrine_journal::RECORD_LEN, batch.len());
                match self.log.propose(batch) {
                    Ok(p) => {
                        self.seq.seal_batch(p.index);
                        self.clock.proposed(p.index, now);
                        self.counters.proposals += 1;
                        self.counters.proposed_records += records as u64;
                        self.counters.proposed_bytes += bytes as u64;
                    }
                    Err(e) => {
                        // Raft no longer takes proposals from this node:
                        // leadership is going. Nothing of this round was
                        // replied to (replicated acks) or it was (local
                        // acks, whose loss on failover is the documented
                        // trade-off); either way, rebuild as a follower.
                        self.counters.proposals_refused += 1;
                        self.stop(StageStop::SteppedDown(format!("proposal refused: {e}")));
                        return work;
                    }
                }
            }
        } else {
            self.seq.flush_overflow();
        }
        let seq = &mut self.seq;
        let verified = self.log.store().verifies_records();
        let mut apply_error = None;
        let committed_seq = &mut self.committed_seq;
        let polled = self.log.poll(&mut |e: CommittedEntry<'_>| {
            if let Some(last) = e
                .data
                .len()
                .checked_sub(RECORD_LEN)
                .and_then(|at| e.data.get(at..))
            {
                if let Ok(r) = decode_record(last) {
                    *committed_seq = (*committed_seq).max(r.global_seq);
                }
            }
            if apply_error.is_none() {
                let applied = if verified {
                    seq.apply_verified(e.data)
                } else {
                    seq.apply_replicated(e.data)
                };
                if let Err(err) = applied {
                    apply_error = Some(format!("log entry {} (term {}): {err}", e.index, e.term));
                }
            }
        });
        match polled {
            Ok(true) => work += 1,
            Ok(false) => {}
            Err(e) => {
                self.stop(StageStop::StoreFailed(e.to_string()));
                return work;
            }
        }
        if let Some(e) = apply_error {
            self.stop(StageStop::Failed(e));
            return work;
        }
        if self.log.snapshots_installed() > 0 {
            // The leader waits for this node's answer to the snapshot
            // before sending it anything after it: answer first.
            self.transport.send(self.log.drain_outbox());
            let why = format!(
                "from leader {:?} at index {}",
                self.log.leader_id(),
                self.log.applied_index()
            );
            self.stop(StageStop::SnapshotInstalled(why));
            return work;
        }
        self.follow_role();
        if self.serving {
            let commit = self.log.commit_index();
            work += self.seq.release_committed(commit);
            self.clock.committed(commit, now);
        }
        self.transport.send(self.log.drain_outbox());
        work
    }

    fn stopped(&self) -> Option<StageStop> {
        self.stopped.clone()
    }

    fn held_back(&self) -> usize {
        self.seq.held_back()
    }

    fn sequencer(&self) -> &Sequencer<A> {
        &self.seq
    }

    fn into_app(self) -> A {
        self.seq.into_app()
    }

    /// Committed records only: a leader's uncommitted suffix may be
    /// overwritten after it steps down, and the feed never takes a record
    /// back.
    fn publishable_seq(&self) -> u64 {
        self.committed_seq
    }

    /// A follower with nothing to do waits on its peers' sockets for up to
    /// a millisecond (Raft ticks are 10 ms by default), so followers cost
    /// no CPU and still take the leader's appends within microseconds. A
    /// leader never blocks (it polls its clients); while replies wait for
    /// their commit it does not idle either (returns at once, skipping the
    /// idle strategy), so a `backoff` leader never sleeps through the
    /// acknowledgement it is waiting for.
    fn park(&mut self) -> bool {
        if self.stopped.is_some() {
            return false;
        }
        if self.serving {
            if self.seq.held_for_commit() > 0 {
                // Give the core away for a moment: where followers share
                // it (one machine, as in the cluster bench) the one that
                // must acknowledge runs now instead of at the next
                // preemption; alone on its core this returns at once.
                std::thread::yield_now();
                return true;
            }
            return false;
        }
        self.transport.wait(std::time::Duration::from_millis(1)).is_ok()
    }

    fn serves_clients(&self) -> bool {
        self.serving
    }

    fn extra_layout(&self) -> Vec<(String, Vec<&'static str>)> {
        vec![("cluster".to_string(), ClusterCounters::NAMES.to_vec())]
    }

    fn publish_extra(&self, blocks: &[CounterBlock]) {
        if let Some(b) = blocks.first() {
            let mut c = self.counters;
            self.fill(&mut c);
            b.publish(&c.values());
        }
    }
}
