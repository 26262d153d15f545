//! The cluster configuration: who the members are, how fast time passes for
//! Raft, and when a client is acknowledged.
//!
//! Membership is static (three or five voters named in the file, identical
//! on every node): a sequencer cluster is a handful of machines set up by
//! hand, and static membership keeps configuration changes, joint consensus
//! and their failure modes out of the hot path entirely. Raft's timers are
//! counted in ticks of one coarse clock ([`ClusterConfig::tick`]) rather than
//! in wall time, so the replicated log stays a pure, poll-driven state
//! machine that a simulation can drive with a fake clock.
//!
//! The defaults (10 ms tick, heartbeat every 2 ticks, election timeout
//! randomised in 10..20 ticks) detect a dead leader in 100–200 ms and elect a
//! new one in a few loopback round trips, so a failover finishes well inside
//! 500 ms while a heartbeat every 20 ms keeps followers from campaigning
//! spuriously.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

/// Default Raft tick length.
pub const DEFAULT_TICK: Duration = Duration::from_millis(10);
/// Default ticks between leader heartbeats.
pub const DEFAULT_HEARTBEAT_TICKS: usize = 2;
/// Default minimum election timeout in ticks (randomised up to twice this).
pub const DEFAULT_ELECTION_TICKS: usize = 10;

/// When the leader acknowledges a sequenced message to its client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckLevel {
    /// After the record's log entry is committed (persisted on a majority):
    /// an acknowledged message survives the loss of any minority of nodes.
    #[default]
    Replicated,
    /// As soon as the leader has sequenced it locally: lower latency, but a
    /// leader crash can lose acknowledged messages that had not replicated.
    Local,
}

/// One member of the cluster, as every node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// Raft node id: non-zero, unique in the cluster, never reused.
    pub id: u64,
    /// Where this member listens for Raft traffic from its peers.
    pub raft: SocketAddr,
    /// Client-facing UDP (MoldUDP64) addresses, served while it leads.
    #[serde(default)]
    pub udp: Vec<SocketAddr>,
    /// Client-facing TCP (SoupBinTCP) addresses, served while it leads.
    #[serde(default)]
    pub tcp: Vec<SocketAddr>,
}

/// The `[cluster]` section of the server configuration.
///
/// ```toml
/// node_id = 1
/// election_ticks = 10
/// heartbeat_ticks = 2
/// tick_ms = 10
/// ack = "replicated"
/// [[members]]
/// id = 1
/// raft = "127.0.0.1:7001"
/// udp = ["127.0.0.1:9000"]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id; must be one of `members`.
    pub node_id: u64,
    /// Every voter, this node included: 3 or 5 of them.
    pub members: Vec<MemberConfig>,
    /// Minimum election timeout in ticks; the effective timeout is drawn
    /// from `[election_ticks, 2 × election_ticks)`. Must exceed
    /// `heartbeat_ticks`.
    #[serde(default = "default_election_ticks")]
    pub election_ticks: usize,
    /// Ticks between leader heartbeats (at least 1).
    #[serde(default = "default_heartbeat_ticks")]
    pub heartbeat_ticks: usize,
    /// Length of one tick; written `tick_ms` (whole milliseconds, at least 1).
    #[serde(rename = "tick_ms", with = "duration_ms", default = "default_tick")]
    pub tick: Duration,
    /// When clients are acknowledged.
    #[serde(default)]
    pub ack: AckLevel,
    /// A node that starts with at least this many committed records after
    /// its last snapshot takes a new one (engine and session state at its
    /// commit index) and compacts its log: the journal segments before it
    /// go, and a peer too far behind is sent the snapshot instead of the
    /// whole log. 0 never snapshots.
    #[serde(default = "default_snapshot_records")]
    pub snapshot_records: u64,
}

/// Default [`ClusterConfig::snapshot_records`].
pub const DEFAULT_SNAPSHOT_RECORDS: u64 = 10_000_000;

fn default_snapshot_records() -> u64 {
    DEFAULT_SNAPSHOT_RECORDS
}

fn default_election_ticks() -> usize {
    DEFAULT_ELECTION_TICKS
}
fn default_heartbeat_ticks() -> usize {
    DEFAULT_HEARTBEAT_TICKS
}
fn default_tick() -> Duration {
    DEFAULT_TICK
}

/// Why a [`ClusterConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Only 3- and 5-voter clusters are supported.
    #[error("a cluster has 3 or 5 members, not {0}")]
    BadSize(usize),
    /// Node id 0 means "none" to Raft.
    #[error("member id 0 is reserved")]
    ZeroId,
    /// Two members share an id.
    #[error("member id {0} appears more than once")]
    DuplicateId(u64),
    /// Two members share a Raft address.
    #[error("raft address {0} appears more than once")]
    DuplicateRaftAddress(SocketAddr),
    /// `node_id` is not one of the members.
    #[error("node_id {0} is not one of the members")]
    UnknownSelf(u64),
    /// A heartbeat interval of zero ticks.
    #[error("heartbeat_ticks must be at least 1")]
    ZeroHeartbeat,
    /// The election timeout must be longer than the heartbeat interval, or
    /// followers would campaign against a healthy leader.
    #[error("election_ticks ({election}) must exceed heartbeat_ticks ({heartbeat})")]
    ElectionNotAboveHeartbeat {
        /// Configured election ticks.
        election: usize,
        /// Configured heartbeat ticks.
        heartbeat: usize,
    },
    /// A tick shorter than a millisecond.
    #[error("tick_ms must be at least 1")]
    ZeroTick,
}

impl ClusterConfig {
    /// A configuration with the default timing and ack level.
    pub fn new(node_id: u64, members: Vec<MemberConfig>) -> ClusterConfig {
        ClusterConfig {
            node_id,
            members,
            election_ticks: DEFAULT_ELECTION_TICKS,
            heartbeat_ticks: DEFAULT_HEARTBEAT_TICKS,
            tick: DEFAULT_TICK,
            ack: AckLevel::default(),
            snapshot_records: DEFAULT_SNAPSHOT_RECORDS,
        }
    }

    /// Checks every rule above; the first broken one is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.members.len();
        if n != 3 && n != 5 {
            return Err(ConfigError::BadSize(n));
        }
        let mut ids = HashSet::new();
        let mut addrs = HashSet::new();
        for m in &self.members {
            if m.id == 0 {
                return Err(ConfigError::ZeroId);
            }
            if !ids.insert(m.id) {
                return Err(ConfigError::DuplicateId(m.id));
            }
            if !addrs.insert(m.raft) {
                return Err(ConfigError::DuplicateRaftAddress(m.raft));
            }
        }
        if !ids.contains(&self.node_id) {
            return Err(ConfigError::UnknownSelf(self.node_id));
        }
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::ElectionNotAboveHeartbeat {
                election: self.election_ticks,
                heartbeat: self.heartbeat_ticks,
            });
        }
        if self.tick < Duration::from_millis(1) {
            return Err(ConfigError::ZeroTick);
        }
        Ok(())
    }

    /// The voters' ids, in configuration order.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// This node's own member entry, if `node_id` names one.
    pub fn this_member(&self) -> Option<&MemberConfig> {
        self.members.iter().find(|m| m.id == self.node_id)
    }

    /// The tick length in nanoseconds (saturating), the unit of
    /// [`crate::ReplicatedLog::tick_if_due`].
    pub fn tick_ns(&self) -> u64 {
        u64::try_from(self.tick.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The longest a follower waits without hearing from a leader before it
    /// campaigns: `2 × election_ticks` ticks.
    pub fn max_election_timeout(&self) -> Duration {
        self.tick
            .saturating_mul(u32::try_from(2 * self.election_ticks).unwrap_or(u32::MAX))
    }

    /// The raft-rs configuration for this node. Pre-vote keeps a
    /// partitioned node from inflating terms when it rejoins; check-quorum
    /// makes a leader that lost its majority step down, so two nodes never
    /// both believe they lead for long. `applied` is the last log index the
    /// caller's state machine already holds (0 replays the committed log).
    pub fn raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.node_id,
            election_tick: self.election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            applied,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            // A new commit index reaches followers with the next append or
            // heartbeat instead of an extra message round per commit: one
            // wake-up less per entry on every follower, at the price of
            // followers applying a little later (a new leader applies
            // everything committed before it serves anyway).
            skip_bcast_commit: true,
            ..raft::Config::default()
        }
    }
}

/// `Duration` as whole milliseconds in TOML.
mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64) -> MemberConfig {
        MemberConfig {
            id,
            raft: SocketAddr::from(([127, 0, 0, 1], 7000 + id as u16)),
            udp: vec![SocketAddr::from(([127, 0, 0, 1], 9000 + id as u16))],
            tcp: vec![],
        }
    }

    fn three() -> ClusterConfig {
        ClusterConfig::new(1, (1..=3).map(member).collect())
    }

    #[test]
    fn defaults_are_valid_and_fail_over_fast() {
        let c = three();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.ack, AckLevel::Replicated);
        assert!(c.max_election_timeout() < Duration::from_millis(500));
        assert_eq!(c.tick_ns(), 10_000_000);
        assert_eq!(
            ClusterConfig::new(5, (1..=5).map(member).collect()).validate(),
            Ok(())
        );
    }

    #[test]
    fn parses_toml_with_defaults() {
        let text = r#"
            node_id = 2
            ack = "local"
            [[members]]
            id = 1
            raft = "127.0.0.1:7001"
            udp = ["127.0.0.1:9001"]
            [[members]]
            id = 2
            raft = "127.0.0.1:7002"
            tcp = ["127.0.0.1:9102"]
            [[members]]
            id = 3
            raft = "127.0.0.1:7003"
        "#;
        let c: ClusterConfig = toml::from_str(text).unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.node_id, 2);
        assert_eq!(c.ack, AckLevel::Local);
        assert_eq!(c.tick, DEFAULT_TICK);
        assert_eq!(c.election_ticks, DEFAULT_ELECTION_TICKS);
        assert_eq!(c.heartbeat_ticks, DEFAULT_HEARTBEAT_TICKS);
        assert_eq!(c.this_member().unwrap().tcp.len(), 1);
        assert_eq!(c.voter_ids(), vec![1, 2, 3]);
        let again: ClusterConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = "node_id = 1\nmembers = []\nelection_tick = 3\n";
        assert!(toml::from_str::<ClusterConfig>(text).is_err());
    }

    #[test]
    fn every_rule_has_its_error() {
        let mut c = three();
        c.members.pop();
        assert_eq!(c.validate(), Err(ConfigError::BadSize(2)));

        let mut c = ClusterConfig::new(1, (1..=4).map(member).collect());
        assert_eq!(c.validate(), Err(ConfigError::BadSize(4)));
        c.members.pop();
        c.members[2].id = 0;
        assert_eq!(c.validate(), Err(ConfigError::ZeroId));

        let mut c = three();
        c.members[2].id = 2;
        assert_eq!(c.validate(), Err(ConfigError::DuplicateId(2)));

        let mut c = three();
        c.members[2].raft = c.members[0].raft;
        assert_eq!(
            c.validate(),
            Err(ConfigError::DuplicateRaftAddress(c.members[0].raft))
        );

        let mut c = three();
        c.node_id = 9;
        assert_eq!(c.validate(), Err(ConfigError::UnknownSelf(9)));

        let mut c = three();
        c.heartbeat_ticks = 0;
        assert_eq!(c.validate(), Err(ConfigError::ZeroHeartbeat));

        let mut c = three();
        c.election_ticks = 2;
        assert_eq!(
            c.validate(),
            Err(ConfigError::ElectionNotAboveHeartbeat {
                election: 2,
                heartbeat: 2
            })
        );

        let mut c = three();
        c.tick = Duration::from_micros(500);
        assert_eq!(c.validate(), Err(ConfigError::ZeroTick));
    }

    #[test]
    fn raft_config_carries_the_timing() {
        let c = three();
        let r = c.raft_config(7);
        assert_eq!(
            (r.id, r.election_tick, r.heartbeat_tick, r.applied),
            (1, 10, 2, 7)
        );
        assert!(r.pre_vote && r.check_quorum && r.skip_bcast_commit);
        r.validate().unwrap();
    }
}
