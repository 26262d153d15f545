//! `ReplicatedLog` on a perfect in-process network: election, proposals,
//! application order, status, leadership events, and a leader cut off from
//! its majority stepping down.

use peregrine_cluster::{
    ChangeReason, ClusterConfig, CommittedEntry, LeadershipEvent, MemLogStore, MemberConfig, ProposeError,
    ReplicatedLog, Role,
};
use std::net::SocketAddr;

struct Node {
    log: ReplicatedLog<MemLogStore>,
    applied: Vec<(u64, Vec<u8>)>,
    events: Vec<LeadershipEvent>,
}

fn members(n: u64) -> Vec<MemberConfig> {
    (1..=n)
        .map(|id| MemberConfig {
            id,
            raft: SocketAddr::from(([127, 0, 0, 1], 7100 + id as u16)),
            udp: vec![],
            tcp: vec![],
        })
        .collect()
}

fn cluster(n: u64) -> Vec<Node> {
    let members = members(n);
    (1..=n)
        .map(|id| {
            let config = ClusterConfig::new(id, members.clone());
            let store = MemLogStore::new(&config.voter_ids());
            Node {
                log: ReplicatedLog::new(&config, store, 0).unwrap(),
                applied: Vec::new(),
                events: Vec::new(),
            }
        })
        .collect()
}

/// One round: every node ticks (unless `frozen`), polls, and its messages
/// are delivered at once, except to or from `cut`.
fn round(nodes: &mut [Node], tick: bool, cut: Option<u64>) {
    let mut mail = Vec::new();
    for node in nodes.iter_mut() {
        if tick {
            node.log.tick();
        }
        let applied = &mut node.applied;
        let mut apply = |e: CommittedEntry<'_>| applied.push((e.index, e.data.to_vec()));
        while node.log.poll(&mut apply).unwrap() {}
        node.events.extend(node.log.drain_events());
        mail.extend(node.log.drain_outbox());
    }
    for m in mail {
        if cut == Some(m.from) || cut == Some(m.to) {
            continue;
        }
        nodes[m.to as usize - 1].log.step(m).unwrap();
    }
}

fn leader(nodes: &[Node]) -> Option<usize> {
    nodes.iter().position(|n| n.log.is_leader())
}

fn elect(nodes: &mut [Node], cut: Option<u64>) -> usize {
    for _ in 0..200 {
        round(nodes, true, cut);
        if let Some(l) = nodes
            .iter()
            .position(|n| n.log.is_leader() && Some(n.log.id()) != cut)
        {
            // Let the followers hear from it.
            for _ in 0..4 {
                round(nodes, true, cut);
            }
            return l;
        }
    }
    panic!("no leader elected");
}

#[test]
fn elects_a_leader_replicates_and_applies_in_order() {
    for n in [3, 5] {
        let mut nodes = cluster(n);
        let l = elect(&mut nodes, None);
        let leader_id = nodes[l].log.id();
        assert_eq!(nodes[l].log.role(), Role::Leader);
        assert_eq!(nodes[l].events.last().unwrap().reason, ChangeReason::WonElection);
        for (i, node) in nodes.iter().enumerate() {
            assert_eq!(node.log.leader_id(), Some(leader_id), "node {i}");
            assert_eq!(node.log.term(), nodes[l].log.term());
            if i != l {
                assert_eq!(node.log.role(), Role::Follower);
                assert!(node.log.peer_progress().is_empty());
                let last = node.events.last().unwrap();
                assert_eq!(
                    (last.reason, last.leader),
                    (ChangeReason::FollowingNewLeader, Some(leader_id))
                );
            }
        }

        let follower = (l + 1) % nodes.len();
        assert_eq!(
            nodes[follower].log.propose(b"x"),
            Err(ProposeError::NotLeader {
                leader: Some(leader_id)
            })
        );

        let mut proposed = Vec::new();
        for k in 0..10u8 {
            let batch = vec![k; k as usize + 1];
            proposed.push((nodes[l].log.propose(&batch).unwrap(), batch));
            if k % 3 == 0 {
                round(&mut nodes, false, None);
            }
        }
        // Ticking: followers learn the final commit index from the next
        // heartbeat (the leader does not broadcast each commit).
        for _ in 0..6 {
            round(&mut nodes, true, None);
        }
        let last = proposed.last().unwrap().0;
        for node in &nodes {
            assert_eq!(node.log.commit_index(), last.index);
            assert_eq!(node.log.applied_index(), last.index);
            // The leader's empty entry of its term, then the batches in order.
            let data: Vec<_> = node
                .applied
                .iter()
                .filter(|(_, d)| !d.is_empty())
                .cloned()
                .collect();
            let want: Vec<_> = proposed.iter().map(|(p, b)| (p.index, b.clone())).collect();
            assert_eq!(data, want);
            let indexes: Vec<u64> = node.applied.iter().map(|(i, _)| *i).collect();
            assert_eq!(indexes, (1..=last.index).collect::<Vec<_>>(), "gap-free");
        }
        let progress = nodes[l].log.peer_progress();
        assert_eq!(progress.len(), n as usize);
        assert!(progress
            .iter()
            .all(|p| p.matched == last.index && p.next == last.index + 1));
        assert!(progress.windows(2).all(|w| w[0].id < w[1].id));
    }
}

#[test]
fn a_cut_off_leader_steps_down_and_the_majority_elects_another() {
    let mut nodes = cluster(3);
    let old = elect(&mut nodes, None);
    let old_id = nodes[old].log.id();
    let old_term = nodes[old].log.term();
    let committed = nodes[old].log.propose(b"before").unwrap();
    for _ in 0..4 {
        round(&mut nodes, false, None);
    }

    let new = elect(&mut nodes, Some(old_id));
    assert_ne!(new, old);
    assert!(nodes[new].log.term() > old_term);
    // Check-quorum: the old leader noticed it lost its majority.
    for _ in 0..40 {
        round(&mut nodes, true, Some(old_id));
    }
    assert_ne!(nodes[old].log.role(), Role::Leader);
    assert!(nodes[old]
        .events
        .iter()
        .any(|e| e.from == Role::Leader && e.reason == ChangeReason::SteppedDown));
    assert!(matches!(
        nodes[old].log.propose(b"late"),
        Err(ProposeError::NotLeader { .. })
    ));

    // Healed, it follows the new leader and catches up.
    let after = nodes[new].log.propose(b"after").unwrap();
    for _ in 0..30 {
        round(&mut nodes, true, None);
    }
    let new_id = nodes[new].log.id();
    assert_eq!(leader(&nodes), Some(new));
    for node in &nodes {
        assert_eq!(node.log.leader_id(), Some(new_id));
        assert!(node.log.commit_index() >= after.index);
        assert_eq!(node.log.term_at(committed.index), Some(committed.term));
        assert_eq!(node.log.term_at(after.index), Some(after.term));
        assert!(node.applied.iter().any(|(_, d)| d == b"before"));
        assert!(node.applied.iter().any(|(_, d)| d == b"after"));
    }
}

#[test]
fn a_restarted_node_replays_its_committed_log() {
    let mut nodes = cluster(3);
    let l = elect(&mut nodes, None);
    let p = nodes[l].log.propose(b"durable").unwrap();
    // With ticks, so the follower hears the commit in a heartbeat.
    for _ in 0..4 {
        round(&mut nodes, true, None);
    }
    let f = (l + 1) % 3;
    let id = nodes[f].log.id();
    let disk = nodes[f].log.store().clone();
    let config = ClusterConfig::new(id, members(3));
    let mut restarted = ReplicatedLog::new(&config, disk, 0).unwrap();
    let mut replayed = Vec::new();
    let mut apply = |e: CommittedEntry<'_>| replayed.push((e.index, e.data.to_vec()));
    while restarted.poll(&mut apply).unwrap() {}
    assert_eq!(restarted.applied_index(), p.index);
    assert_eq!(replayed.last().unwrap(), &(p.index, b"durable".to_vec()));
}
