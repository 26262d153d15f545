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
//!
//! This file holds the cluster, its clients and the step loop; `faults`
//! injects crashes and partitions, `checks` holds the invariants,
//! `state_machine` the application and `store` the simulated disk.

mod checks;
mod faults;
pub mod state_machine;
pub mod store;

use checks::apply_checked;
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

pub(crate) fn fail<T>(seed: u64, step: u64, what: String) -> Result<T, String> {
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
}
