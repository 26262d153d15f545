//! A cluster node's state as `peregrine cluster status` shows it, read
//! from the `cluster` block of the node's counters file.
//!
//! The node publishes the block from its polling loop once a millisecond
//! (see [`crate::cluster_node::ClusterCounters`]), so this is at most a few
//! milliseconds old and needs no request to the node: a status check can
//! never slow the leader down.

use crate::cluster_node::ClusterCounters;
use crate::counters_file::CountersSnapshot;
use serde::Serialize;

/// One peer's replication progress as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// The peer's node id.
    pub id: u64,
    /// Highest log index known to be on the peer.
    pub match_index: u64,
    /// Entries the peer is behind the leader's log.
    pub lag: u64,
}

/// One node's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// The node's process id.
    pub pid: u64,
    /// The node's id.
    pub node_id: u64,
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: &'static str,
    /// Whether it sequences client input now.
    pub serving: bool,
    /// Raft term.
    pub term: u64,
    /// The leader it knows of (0: none).
    pub leader_id: u64,
    /// Highest committed index.
    pub commit_index: u64,
    /// Highest applied index.
    pub applied_index: u64,
    /// Highest index held.
    pub last_index: u64,
    /// Next global sequence number (last applied or sequenced + 1).
    pub next_seq: u64,
    /// Elections this node won since it started.
    pub elections_won: u64,
    /// Proposal → commit latency since start, ns: p50, p99, p99.9, max (a
    /// leader's; zeros on a node that never led).
    pub commit_latency_ns: [u64; 4],
    /// Each peer's progress (leader only).
    pub peers: Vec<PeerStatus>,
}

fn role_name(code: u64) -> &'static str {
    match code {
        0 => "follower",
        1 => "pre-candidate",
        2 => "candidate",
        3 => "leader",
        _ => "unknown",
    }
}

impl NodeStatus {
    /// The node's status from its counters, or `None` when the file has no
    /// `cluster` block (a single-node server).
    pub fn from_snapshot(snap: &CountersSnapshot) -> Option<NodeStatus> {
        let block = |title: &str| snap.blocks.iter().find(|(t, _)| t == title).map(|(_, c)| c);
        let cluster = block("cluster")?;
        let get = |name: &str| cluster.iter().find(|(n, _)| n == name).map_or(0, |p| p.1);
        let next_seq = block("sequencer")
            .and_then(|c| c.iter().find(|(n, _)| n == "next_seq"))
            .map_or(0, |p| p.1);
        let last_index = get("last_index");
        let peers = (1..=4)
            .filter_map(|k| {
                let id = get(&format!("peer{k}_id"));
                let m = get(&format!("peer{k}_match"));
                (id != 0).then_some(PeerStatus {
                    id,
                    match_index: m,
                    lag: last_index.saturating_sub(m),
                })
            })
            .collect();
        debug_assert!(ClusterCounters::NAMES.contains(&"peer4_match"));
        Some(NodeStatus {
            pid: snap.pid,
            node_id: get("node_id"),
            role: role_name(get("role")),
            serving: get("serving") != 0,
            term: get("term"),
            leader_id: get("leader_id"),
            commit_index: get("commit_index"),
            applied_index: get("applied_index"),
            last_index,
            next_seq,
            elections_won: get("elections_won"),
            commit_latency_ns: [
                get("commit_p50_ns"),
                get("commit_p99_ns"),
                get("commit_p999_ns"),
                get("commit_max_ns"),
            ],
            peers,
        })
    }

    /// A few lines for a terminal.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "node {} (pid {}): {}{}, term {}, leader {}",
            self.node_id,
            self.pid,
            self.role,
            if self.serving { " (serving)" } else { "" },
            self.term,
            if self.leader_id == 0 {
                "unknown".to_string()
            } else {
                self.leader_id.to_string()
            }
        );
        let _ = writeln!(
            s,
            "  log: commit {} applied {} last {}; next sequence {}; elections won {}",
            self.commit_index, self.applied_index, self.last_index, self.next_seq, self.elections_won
        );
        let [p50, p99, p999, max] = self.commit_latency_ns;
        if max > 0 {
            let us = |ns: u64| ns as f64 / 1000.0;
            let _ = writeln!(
                s,
                "  commit latency since start: p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
                us(p50),
                us(p99),
                us(p999),
                us(max)
            );
        }
        for p in &self.peers {
            let _ = writeln!(s, "  peer {}: match {} lag {}", p.id, p.match_index, p.lag);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(values: &[(&str, u64)]) -> CountersSnapshot {
        let cluster = ClusterCounters::NAMES
            .iter()
            .map(|n| {
                let v = values.iter().find(|(k, _)| k == n).map_or(0, |p| p.1);
                (n.to_string(), v)
            })
            .collect();
        CountersSnapshot {
            pid: 42,
            blocks: vec![
                ("sequencer".into(), vec![("next_seq".into(), 1001)]),
                ("cluster".into(), cluster),
            ],
        }
    }

    #[test]
    fn a_leader_shows_its_peers_lag() {
        let s = NodeStatus::from_snapshot(&snap(&[
            ("node_id", 2),
            ("role", 3),
            ("serving", 1),
            ("term", 5),
            ("leader_id", 2),
            ("commit_index", 90),
            ("applied_index", 90),
            ("last_index", 100),
            ("peer1_id", 1),
            ("peer1_match", 100),
            ("peer2_id", 3),
            ("peer2_match", 60),
        ]))
        .unwrap();
        assert_eq!((s.role, s.serving, s.term, s.next_seq), ("leader", true, 5, 1001));
        assert_eq!(
            s.peers,
            [
                PeerStatus {
                    id: 1,
                    match_index: 100,
                    lag: 0
                },
                PeerStatus {
                    id: 3,
                    match_index: 60,
                    lag: 40
                }
            ]
        );
        let text = s.to_text();
        assert!(
            text.contains("node 2 (pid 42): leader (serving), term 5, leader 2"),
            "{text}"
        );
        assert!(text.contains("peer 3: match 60 lag 40"), "{text}");
    }

    #[test]
    fn a_single_node_has_no_cluster_status() {
        let mut s = snap(&[]);
        s.blocks.pop();
        assert!(NodeStatus::from_snapshot(&s).is_none());
    }
}
