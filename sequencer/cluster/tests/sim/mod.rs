//! A deterministic simulation of a `ReplicatedLog` cluster in one process.
//!
//! Everything that could differ between runs comes from one seeded
//! SplitMix64: the network (loss, delay and so reordering, duplication,
//! partitions), each node's clock jitter (which also breaks split votes,
//! since the nodes run with a fixed election timeout), crashes and restarts,
//! and the clients. The same seed therefore replays the same run exactly.
//!
//! A run has a fault phase, then a healing phase (partitions healed, every
//! node restarted, no more loss) that must reach a state where every record
//! any client ever sent is applied exactly once on every node, within a
//! bounded number of ticks. Invariants are checked after every step.

pub mod state_machine;
pub mod store;

use peregrine_cluster::{
    ClusterConfig, CommittedEntry, MemberConfig, Message, Proposed, ReplicatedLog, Role,
};
use peregrine_engine::flow::SplitMix64;
use state_machine::{encode_batch, RecordId, StateMachine};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use store::SimStore;

const TICK_NS: u64 = 10_000_000;

/// The knobs of one run.
#[derive(Clone, Debug)]
pub struct SimParams {
    pub nodes: usize,
    pub fault_steps: u64,
    /// Steps (one tick of time each) the healed cluster gets to elect a
    /// leader and commit everything pending.
    pub liveness_bound: u64,
    pub drop_percent: u64,
    pub duplicate_percent: u64,
    pub max_delay_steps: u64,
    /// Per mille, per step.
    pub crash_per_mille: u64,
    /// Per mille, per step: crash a node and restart it at once (what a
    /// node forgot about its last moments shows up fastest this way).
    pub bounce_per_mille: u64,
    pub restart_percent: u64,
    pub partition_per_mille: u64,
    pub heal_percent: u64,
    pub clients: u32,
}

impl SimParams {
    /// Parameters drawn from the seed, so different seeds stress different
    /// mixes (a lossy network, a crashy cluster, frequent partitions).
    pub fn for_seed(seed: u64, fault_steps: u64) -> SimParams {
        let mut r = SplitMix64::new(seed ^ 0x5eed_0f9a_7a00);
        SimParams {
            nodes: if r.percent(50) { 3 } else { 5 },
            fault_steps,
            liveness_bound: 200,
            drop_percent: r.below(20),
            duplicate_percent: r.below(10),
            max_delay_steps: 1 + r.below(4),
            crash_per_mille: r.below(15),
            bounce_per_mille: r.below(30),
            restart_percent: 2 + r.below(10),
            partition_per_mille: r.below(20),
            heal_percent: 2 + r.below(10),
            clients: 1 + r.below(4) as u32,
        }
    }
}

/// What a run did, for the report.
#[derive(Debug, Default, Clone)]
pub struct SimStats {
    pub steps: u64,
    pub committed_entries: u64,
    pub records: u64,
    pub leader_changes: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub liveness_steps: u64,
}

struct Packet {
    deliver_at: u64,
    to: usize,
    msg: Message,
}

struct SimNode {
    id: u64,
    log: Option<ReplicatedLog<SimStore>>,
    /// The disk while the node is down.
    disk: Option<SimStore>,
    sm: StateMachine,
    /// Entries up to here are verified equal to the committed log.
    checked_upto: u64,
}

impl SimNode {
    fn store(&self) -> &SimStore {
        match (&self.log, &self.disk) {
            (Some(log), _) => log.store(),
            (None, Some(disk)) => disk,
            (None, None) => unreachable!("a node has a log or a disk"),
        }
    }
}

struct Client {
    session: u32,
    next_seq: u64,
    /// Sent and not yet acknowledged.
    pending: Vec<RecordId>,
}

struct Inflight {
    at: Proposed,
    records: Vec<RecordId>,
}

/// The cluster, its network, its clients, and the ground truth the
/// invariants are checked against.
pub struct Sim {
    seed: u64,
    params: SimParams,
    rng: SplitMix64,
    config: ClusterConfig,
    nodes: Vec<SimNode>,
    network: Vec<Packet>,
    /// Partition group of each node; messages cross only within a group.
    group: Vec<u8>,
    clients: Vec<Client>,
    inflight: Vec<Inflight>,
    step: u64,
    /// The committed log as first applied anywhere: (term, data) by index.
    committed: Vec<(u64, Vec<u8>)>,
    /// State hash after applying each index, as first seen anywhere.
    hash_at: Vec<u64>,
    /// The global sequence as first assigned anywhere.
    global: Vec<RecordId>,
    /// The records in `global`, to catch one sequenced twice at once.
    global_seen: HashSet<RecordId>,
    /// Every record any client ever sent.
    sent: u64,
    /// Leader of each term seen.
    leaders: BTreeMap<u64, u64>,
    faults: bool,
    trace: bool,
    pub stats: SimStats,
}

fn fail<T>(seed: u64, step: u64, what: String) -> Result<T, String> {
    Err(format!("seed {seed}, step {step}: {what}"))
}

impl Sim {
    pub fn new(seed: u64, params: SimParams) -> Sim {
        let members: Vec<MemberConfig> = (1..=params.nodes as u64)
            .map(|id| MemberConfig {
                id,
                raft: SocketAddr::from(([127, 0, 0, 1], 7000 + id as u16)),
                udp: vec![],
                tcp: vec![],
            })
            .collect();
        let config = ClusterConfig::new(1, members);
        let voters = config.voter_ids();
        let mut sim = Sim {
            seed,
            rng: SplitMix64::new(seed),
            nodes: Vec::new(),
            network: Vec::new(),
            group: vec![0; params.nodes],
            clients: (1..=params.clients)
                .map(|session| Client {
                    session,
                    next_seq: 1,
                    pending: Vec::new(),
                })
                .collect(),
            inflight: Vec::new(),
            step: 0,
            committed: Vec::new(),
            hash_at: Vec::new(),
            global: Vec::new(),
            global_seen: HashSet::new(),
            sent: 0,
            leaders: BTreeMap::new(),
            faults: true,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            stats: SimStats::default(),
            config,
            params,
        };
        for &id in &voters {
            let log = sim.start(id, SimStore::new(&voters));
            sim.nodes.push(SimNode {
                id,
                log: Some(log),
                disk: None,
                sm: StateMachine::default(),
                checked_upto: 0,
            });
        }
        sim
    }

    fn start(&self, id: u64, store: SimStore) -> ReplicatedLog<SimStore> {
        let mut config = self.config.clone();
        config.node_id = id;
        ReplicatedLog::new_fixed_timeout(&config, store, 0).expect("valid simulated config")
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            println!("[{:>5}] {}", self.step, what());
        }
    }

    /// Runs the fault phase, then heals and checks liveness.
    pub fn run(&mut self) -> Result<SimStats, String> {
        for _ in 0..self.params.fault_steps {
            self.inject_faults();
            self.clients_act(true);
            self.step_once()?;
        }
        self.heal_all();
        let healed_at = self.step;
        loop {
            self.clients_act(false);
            self.step_once()?;
            if self.quiescent() {
                break;
            }
            if self.step - healed_at > self.params.liveness_bound {
                let pending: usize = self.clients.iter().map(|c| c.pending.len()).sum();
                let roles: Vec<_> = self
                    .nodes
                    .iter()
                    .map(|n| {
                        n.log
                            .as_ref()
                            .map(|l| (l.role(), l.term(), l.commit_index(), l.applied_index()))
                    })
                    .collect();
                return fail(
                    self.seed,
                    self.step,
                    format!(
                        "not live: {} ticks after healing, {pending} records pending, {} of {} sent applied; nodes {roles:?}",
                        self.params.liveness_bound,
                        self.global.len(),
                        self.sent
                    ),
                );
            }
        }
        self.stats.liveness_steps = self.step - healed_at;
        self.stats.steps = self.step;
        self.stats.committed_entries = self.committed.len() as u64;
        self.stats.records = self.global.len() as u64;
        self.final_checks()?;
        Ok(self.stats.clone())
    }

    fn inject_faults(&mut self) {
        let n = self.nodes.len();
        // Crash a running node.
        if self.rng.below(1000) < self.params.crash_per_mille {
            let i = self.rng.below(n as u64) as usize;
            if let Some(log) = self.nodes[i].log.take() {
                // The disk is what the store holds; Raft's unpersisted
                // memory (unstable entries, inflight state) is gone.
                self.nodes[i].disk = Some(log.store().clone());
                self.nodes[i].sm = StateMachine::default();
                self.stats.crashes += 1;
                self.log(|| format!("crash node {}", i + 1));
            }
        }
        // Crash a running node and restart it from its disk straight away.
        if self.rng.below(1000) < self.params.bounce_per_mille {
            let i = self.rng.below(n as u64) as usize;
            if let Some(log) = self.nodes[i].log.take() {
                self.nodes[i].disk = Some(log.store().clone());
                self.stats.crashes += 1;
                self.log(|| format!("bounce node {}", i + 1));
                self.restart(i);
            }
        }
        // Restart a crashed one from its disk.
        for i in 0..n {
            if self.nodes[i].log.is_none() && self.rng.percent(self.params.restart_percent) {
                self.restart(i);
            }
        }
        // Partition: isolate one node, or split minority/majority.
        if self.rng.below(1000) < self.params.partition_per_mille {
            self.stats.partitions += 1;
            if self.rng.percent(50) {
                let i = self.rng.below(n as u64) as usize;
                self.group = vec![0; n];
                self.group[i] = 1;
                self.log(|| format!("isolate node {}", i + 1));
            } else {
                let minority = n / 2;
                self.group = vec![0; n];
                let mut moved = 0;
                while moved < minority {
                    let i = self.rng.below(n as u64) as usize;
                    if self.group[i] == 0 {
                        self.group[i] = 1;
                        moved += 1;
                    }
                }
                self.log(|| format!("split {:?}", self.group));
            }
        } else if self.group.iter().any(|&g| g != 0) && self.rng.percent(self.params.heal_percent) {
            self.group = vec![0; n];
            self.log(|| "heal".into());
        }
    }

    fn restart(&mut self, i: usize) {
        let disk = self.nodes[i].disk.take().expect("crashed node has a disk");
        let id = self.nodes[i].id;
        self.nodes[i].log = Some(self.start(id, disk));
        self.nodes[i].sm = StateMachine::default();
        self.log(|| format!("restart node {}", i + 1));
    }

    fn heal_all(&mut self) {
        self.faults = false;
        self.group = vec![0; self.nodes.len()];
        for i in 0..self.nodes.len() {
            if self.nodes[i].log.is_none() {
                self.restart(i);
            }
        }
        self.log(|| "heal all, restart all, faults stop".into());
    }

    /// The node clients talk to: the running leader with the highest term.
    fn leader(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter_map(|i| {
                self.nodes[i]
                    .log
                    .as_ref()
                    .filter(|l| l.role() == Role::Leader)
                    .map(|l| (l.term(), i))
            })
            .max()
            .map(|(_, i)| i)
    }

    /// Clients send new records (only while `new` is allowed) and resend
    /// unacknowledged ones; everything sent this step goes to the leader as
    /// one proposal.
    fn clients_act(&mut self, new: bool) {
        let mut batch = Vec::new();
        for c in 0..self.clients.len() {
            if new && self.rng.percent(25) {
                let count = 1 + self.rng.below(3);
                for _ in 0..count {
                    let client = &mut self.clients[c];
                    let id = RecordId {
                        session: client.session,
                        client_seq: client.next_seq,
                    };
                    client.next_seq += 1;
                    client.pending.push(id);
                    batch.push(id);
                    self.sent += 1;
                }
            } else if !self.clients[c].pending.is_empty() && self.rng.percent(10) {
                // While faults last, resend a few of the oldest; once they
                // stop, everything outstanding, so the liveness bound
                // measures the cluster rather than the clients' pacing.
                let resend = if new { 8 } else { usize::MAX };
                batch.extend(self.clients[c].pending.iter().take(resend).copied());
            }
        }
        if batch.is_empty() {
            return;
        }
        let Some(l) = self.leader() else {
            return; // No leader known: the records stay pending and are resent.
        };
        let log = self.nodes[l].log.as_mut().expect("leader is running");
        match log.propose(&encode_batch(&batch)) {
            Ok(at) => {
                self.log(|| format!("node {} proposes {} records at {at:?}", l + 1, batch.len()));
                self.inflight.push(Inflight { at, records: batch });
            }
            Err(e) => self.log(|| format!("node {} refuses proposal: {e}", l + 1)),
        }
    }

    fn step_once(&mut self) -> Result<(), String> {
        self.step += 1;
        let step = self.step;
        // Deliver what is due, in send order.
        let mut due = Vec::new();
        let mut later = Vec::with_capacity(self.network.len());
        for p in self.network.drain(..) {
            if p.deliver_at <= step {
                due.push(p);
            } else {
                later.push(p);
            }
        }
        self.network = later;
        for p in due {
            let from = p.msg.from as usize - 1;
            if self.group[from] != self.group[p.to] {
                continue;
            }
            if let Some(log) = self.nodes[p.to].log.as_mut() {
                if let Err(e) = log.step(p.msg) {
                    return fail(
                        self.seed,
                        step,
                        format!("node {} refused a message: {e}", p.to + 1),
                    );
                }
            }
        }
        // Each node: tick by its jittered clock, handle Ready, send.
        for i in 0..self.nodes.len() {
            let jitter = self.rng.below(TICK_NS * 9 / 10);
            let node = &mut self.nodes[i];
            let Some(log) = node.log.as_mut() else {
                continue;
            };
            log.tick_if_due(step * TICK_NS + jitter);
            let sm = &mut node.sm;
            let committed = &mut self.committed;
            let hash_at = &mut self.hash_at;
            let global = &mut self.global;
            let global_seen = &mut self.global_seen;
            let mut error: Option<String> = None;
            let mut apply = |e: CommittedEntry<'_>| {
                if error.is_none() {
                    error = apply_checked(sm, committed, hash_at, global, global_seen, e).err();
                }
            };
            for _ in 0..8 {
                match log.poll(&mut apply) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => return fail(self.seed, step, format!("node {} poll: {e}", i + 1)),
                }
            }
            if let Some(e) = error {
                return fail(self.seed, step, format!("node {}: {e}", i + 1));
            }
            for ev in log.drain_events() {
                self.stats.leader_changes += u64::from(ev.to == Role::Leader);
                if self.trace {
                    println!("[{step:>5}] node {} {:?}", i + 1, ev);
                }
            }
            let out: Vec<Message> = log.drain_outbox().collect();
            for msg in out {
                let to = msg.to as usize - 1;
                if self.faults && self.rng.percent(self.params.drop_percent) {
                    self.stats.dropped += 1;
                    continue;
                }
                if self.group[i] != self.group[to] {
                    continue;
                }
                let copies = if self.faults && self.rng.percent(self.params.duplicate_percent) {
                    self.stats.duplicated += 1;
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let delay = 1 + self.rng.below(self.params.max_delay_steps);
                    self.network.push(Packet {
                        deliver_at: step + delay,
                        to,
                        msg: msg.clone(),
                    });
                }
            }
        }
        self.resolve_inflight()?;
        self.check_invariants()
    }

    /// Acknowledges proposals that committed (after checking they are on a
    /// majority's disk) and forgets the ones a new leader overwrote.
    fn resolve_inflight(&mut self) -> Result<(), String> {
        let majority = self.nodes.len() / 2 + 1;
        let mut k = 0;
        while k < self.inflight.len() {
            let at = self.inflight[k].at;
            let mut verdict = None;
            for n in &self.nodes {
                let Some(log) = &n.log else { continue };
                if log.commit_index() >= at.index {
                    if let Some(term) = log.term_at(at.index) {
                        verdict = Some(term == at.term);
                        break;
                    }
                }
            }
            match verdict {
                Some(true) => {
                    let on_disk = self
                        .nodes
                        .iter()
                        .filter(|n| n.store().entry(at.index).is_some_and(|e| e.term == at.term))
                        .count();
                    if on_disk < majority {
                        return fail(
                            self.seed,
                            self.step,
                            format!("acknowledged entry {at:?} is on {on_disk} disks, fewer than a majority"),
                        );
                    }
                    let done = self.inflight.swap_remove(k);
                    for r in done.records {
                        let c = &mut self.clients[r.session as usize - 1];
                        c.pending.retain(|&p| p != r);
                    }
                }
                Some(false) => {
                    self.inflight.swap_remove(k);
                }
                None => k += 1,
            }
        }
        Ok(())
    }

    fn check_invariants(&mut self) -> Result<(), String> {
        let (seed, step) = (self.seed, self.step);
        // At most one leader per term.
        for n in &self.nodes {
            let Some(log) = &n.log else { continue };
            if log.role() == Role::Leader {
                let prior = *self.leaders.entry(log.term()).or_insert(n.id);
                if prior != n.id {
                    return fail(
                        seed,
                        step,
                        format!("term {} has leaders {prior} and {}", log.term(), n.id),
                    );
                }
            }
        }
        // A committed entry never changes on any disk: re-check what was
        // rewritten, then extend the checked prefix up to the disk's own
        // commit index.
        for n in &mut self.nodes {
            let store = match (&n.log, &n.disk) {
                (Some(log), _) => log.store(),
                (None, Some(disk)) => disk,
                (None, None) => unreachable!(),
            };
            let mut from = n.checked_upto + 1;
            if let Some(w) = store.take_lowest_written() {
                from = from.min(w);
            }
            let upto = store
                .hard_state()
                .commit
                .min(self.committed.len() as u64)
                .min(store.last());
            for index in from..=upto.max(n.checked_upto) {
                let Some(e) = store.entry(index) else {
                    return fail(
                        seed,
                        step,
                        format!("node {}: committed entry {index} missing from disk", n.id),
                    );
                };
                let (term, data) = &self.committed[index as usize - 1];
                if e.term != *term || e.data.as_ref() != data.as_slice() {
                    return fail(
                        seed,
                        step,
                        format!(
                            "node {}: committed entry {index} changed (term {} vs {term})",
                            n.id, e.term
                        ),
                    );
                }
            }
            n.checked_upto = n.checked_upto.max(upto);
        }
        Ok(())
    }

    /// Everything sent is applied everywhere and nothing is in flight.
    fn quiescent(&self) -> bool {
        let Some(l) = self.leader() else { return false };
        let commit = self.nodes[l].log.as_ref().map_or(0, |log| log.commit_index());
        self.clients.iter().all(|c| c.pending.is_empty())
            && self.global.len() as u64 == self.sent
            && self.nodes.iter().all(|n| {
                n.log
                    .as_ref()
                    .is_some_and(|log| log.applied_index() == commit && log.commit_index() == commit)
            })
    }

    fn final_checks(&self) -> Result<(), String> {
        let (seed, step) = (self.seed, self.step);
        // Exactly once: every record sent has exactly one global sequence.
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.global {
            if !seen.insert(*r) {
                return fail(seed, step, format!("{r:?} sequenced twice"));
            }
        }
        for c in &self.clients {
            for s in 1..c.next_seq {
                let id = RecordId {
                    session: c.session,
                    client_seq: s,
                };
                if !seen.contains(&id) {
                    return fail(seed, step, format!("{id:?} was sent but never sequenced"));
                }
            }
        }
        for n in &self.nodes {
            if n.sm.assigned != self.global {
                return fail(seed, step, format!("node {} sequenced a different stream", n.id));
            }
            if n.sm.hash != self.hash_at[n.sm.applied_index as usize - 1] {
                return fail(seed, step, format!("node {} ends with a different hash", n.id));
            }
        }
        Ok(())
    }
}

/// Applies one committed entry to a node's state machine, checking it
/// against the ground truth: the same entry at the same index everywhere,
/// gap-free indexes, the same global sequence for the same record, the same
/// hash after the same index.
fn apply_checked(
    sm: &mut StateMachine,
    committed: &mut Vec<(u64, Vec<u8>)>,
    hash_at: &mut Vec<u64>,
    global: &mut Vec<RecordId>,
    global_seen: &mut HashSet<RecordId>,
    e: CommittedEntry<'_>,
) -> Result<(), String> {
    let i = e.index as usize - 1;
    if i < committed.len() {
        let (term, data) = &committed[i];
        if *term != e.term || data.as_slice() != e.data {
            return Err(format!(
                "committed entry {} differs between nodes (term {} vs {term})",
                e.index, e.term
            ));
        }
    } else if i == committed.len() {
        committed.push((e.term, e.data.to_vec()));
    } else {
        return Err(format!(
            "entry {} applied before entry {}",
            e.index,
            committed.len() + 1
        ));
    }
    for (g, id) in sm.apply(e.index, e.data)? {
        let g = g as usize - 1;
        if g < global.len() {
            if global[g] != id {
                return Err(format!(
                    "global sequence {} is {id:?} here, {:?} elsewhere",
                    g + 1,
                    global[g]
                ));
            }
        } else if g == global.len() {
            if !global_seen.insert(id) {
                return Err(format!(
                    "{id:?} sequenced twice: global {} and again {}",
                    global.iter().position(|r| *r == id).unwrap_or(0) + 1,
                    g + 1
                ));
            }
            global.push(id);
        } else {
            return Err(format!("global sequence {} skipped", global.len() + 1));
        }
    }
    if i < hash_at.len() {
        if hash_at[i] != sm.hash {
            return Err(format!("state hash differs at applied index {}", e.index));
        }
    } else {
        hash_at.push(sm.hash);
    }
    Ok(())
}
