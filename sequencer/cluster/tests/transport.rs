//! Three `ReplicatedLog`s in one process, each with its own `NodeTransport`
//! on a loopback port, polled from one loop: they elect a leader over real
//! TCP, commit a proposal everywhere, lose the leader (its transport is
//! dropped, as if the node died) and the survivors elect a new leader and
//! commit another proposal. Every phase gives up after 5 s.

use peregrine_cluster::{
    ClusterConfig, CommittedEntry, MemLogStore, MemberConfig, NodeTransport, ReplicatedLog,
};
use peregrine_netio::{Port, TcpOptions, TcpPort};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PHASE_LIMIT: Duration = Duration::from_secs(5);

struct Node {
    log: ReplicatedLog<MemLogStore>,
    /// `None` once the node is dead.
    transport: Option<NodeTransport>,
    applied: Vec<Vec<u8>>,
}

fn start() -> Vec<Node> {
    let ports: Vec<TcpPort> = (0..3)
        .map(|_| TcpPort::bind(SocketAddr::from(([127, 0, 0, 1], 0)), TcpOptions::default()).unwrap())
        .collect();
    let members: Vec<MemberConfig> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| MemberConfig {
            id: i as u64 + 1,
            raft: p.local_addr(),
            udp: vec![],
            tcp: vec![],
        })
        .collect();
    ports
        .into_iter()
        .enumerate()
        .map(|(i, port)| {
            let config = ClusterConfig::new(i as u64 + 1, members.clone());
            let transport = NodeTransport::with_port(port, &config).unwrap();
            assert_eq!(transport.local_addr(), members[i].raft);
            Node {
                log: ReplicatedLog::new(&config, MemLogStore::new(&config.voter_ids()), 0).unwrap(),
                transport: Some(transport),
                applied: Vec::new(),
            }
        })
        .collect()
}

/// One pass of the poll loop over every live node.
fn round(nodes: &mut [Node], t0: Instant) {
    let now_ns = t0.elapsed().as_nanos() as u64;
    for node in nodes.iter_mut() {
        let Some(transport) = node.transport.as_mut() else {
            continue;
        };
        let log = &mut node.log;
        log.tick_if_due(now_ns);
        transport
            .poll(|m| {
                // A message raft refuses (e.g. from a stale term) is Raft's
                // business, not the transport's.
                let _ = log.step(m);
            })
            .unwrap();
        let applied = &mut node.applied;
        let mut apply = |e: CommittedEntry<'_>| {
            if !e.data.is_empty() {
                applied.push(e.data.to_vec());
            }
        };
        while log.poll(&mut apply).unwrap() {}
        transport.send(log.drain_outbox());
    }
    std::thread::sleep(Duration::from_micros(200));
}

/// Runs the loop until `done` holds, or fails naming `what` after
/// [`PHASE_LIMIT`].
fn run_until(nodes: &mut [Node], t0: Instant, what: &str, done: impl Fn(&[Node]) -> bool) {
    let deadline = Instant::now() + PHASE_LIMIT;
    while !done(nodes) {
        assert!(
            Instant::now() < deadline,
            "gave up after {PHASE_LIMIT:?} waiting for {what}: {:?}",
            nodes
                .iter()
                .map(|n| (&n.log, n.transport.as_ref().map(|t| t.counters())))
                .collect::<Vec<_>>()
        );
        round(nodes, t0);
    }
}

/// The live node every live node agrees leads, if any.
fn agreed_leader(nodes: &[Node]) -> Option<usize> {
    let live: Vec<&Node> = nodes.iter().filter(|n| n.transport.is_some()).collect();
    let leader = live.first()?.log.leader_id()?;
    let i = nodes.iter().position(|n| n.log.id() == leader)?;
    let agreed = nodes[i].transport.is_some()
        && nodes[i].log.is_leader()
        && live.iter().all(|n| n.log.leader_id() == Some(leader));
    agreed.then_some(i)
}

fn applied_on_live(nodes: &[Node], data: &[u8]) -> bool {
    nodes
        .iter()
        .filter(|n| n.transport.is_some())
        .all(|n| n.applied.iter().any(|d| d == data))
}

#[test]
fn three_nodes_elect_commit_and_fail_over_over_loopback_tcp() {
    let t0 = Instant::now();
    let mut nodes = start();

    run_until(&mut nodes, t0, "a first leader", |n| agreed_leader(n).is_some());
    let first = agreed_leader(&nodes).unwrap();
    let first_term = nodes[first].log.term();
    nodes[first].log.propose(b"one").unwrap();
    run_until(&mut nodes, t0, "'one' committed on all three", |n| {
        applied_on_live(n, b"one")
    });
    for node in &nodes {
        let c = node.transport.as_ref().unwrap().counters();
        assert!(c.msgs_sent > 0 && c.msgs_received > 0 && c.bytes_sent > 0 && c.bytes_received > 0);
        assert_eq!(c.frames_dropped, 0);
    }

    // The leader dies: its sockets close, it is polled no more.
    nodes[first].transport = None;
    run_until(&mut nodes, t0, "a new leader among the survivors", |n| {
        agreed_leader(n).is_some_and(|l| l != first)
    });
    let second = agreed_leader(&nodes).unwrap();
    assert!(nodes[second].log.term() > first_term);
    nodes[second].log.propose(b"two").unwrap();
    run_until(&mut nodes, t0, "'two' committed on both survivors", |n| {
        applied_on_live(n, b"two")
    });
    let dead = nodes[first].log.id();
    run_until(&mut nodes, t0, "the survivors to notice the dead link", |n| {
        n.iter()
            .filter_map(|n| n.transport.as_ref())
            .all(|t| !t.is_connected(dead))
    });
    for (i, node) in nodes.iter().enumerate().filter(|(i, _)| *i != first) {
        assert_eq!(
            node.applied,
            vec![b"one".to_vec(), b"two".to_vec()],
            "node {}",
            i + 1
        );
        let c = node.transport.as_ref().unwrap().counters();
        assert!(
            c.links_lost + c.connect_failures > 0,
            "the dead node's link failed: {c:?}"
        );
        assert_eq!(c.frames_dropped, 0);
    }
}

/// A follower that fell behind finds many appends waiting in its socket:
/// it takes them in a few polls (large reads, read again while chunks come
/// back full), not one small chunk per poll.
#[test]
fn a_backlog_of_large_messages_arrives_in_a_few_polls() {
    use peregrine_cluster::{Entry, Message};
    let mut nodes = start();
    let (a, b) = (nodes.remove(0), nodes.remove(0));
    let (mut a, mut b) = (a.transport.unwrap(), b.transport.unwrap());
    let deadline = Instant::now() + PHASE_LIMIT;
    while !a.is_connected(2) {
        assert!(Instant::now() < deadline, "node 1 never connected to node 2");
        a.poll(|_| {}).unwrap();
        b.poll(|_| {}).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    const MESSAGES: usize = 100;
    const ENTRY_BYTES: usize = 4096;
    let msgs = (0..MESSAGES).map(|i| {
        let e = Entry {
            index: i as u64 + 1,
            data: vec![i as u8; ENTRY_BYTES].into(),
            ..Default::default()
        };
        Message {
            from: 1,
            to: 2,
            entries: vec![e].into(),
            ..Default::default()
        }
    });
    a.send(msgs);
    let mut received = Vec::new();
    let mut polls = 0;
    while received.len() < MESSAGES {
        assert!(
            Instant::now() < deadline,
            "{} of {MESSAGES} arrived",
            received.len()
        );
        a.poll(|_| {}).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        polls += 1;
        b.poll(|m| received.push(m)).unwrap();
    }
    for (i, m) in received.iter().enumerate() {
        assert_eq!((m.from, m.to, m.entries.len()), (1, 2, 1));
        assert_eq!(m.entries[0].index, i as u64 + 1);
        assert!(m.entries[0].data.iter().all(|&x| x == i as u8));
    }
    // 400 KB at one 2 KB read per poll would take 200 polls.
    assert!(
        polls <= 20,
        "{polls} polls for {} KB",
        MESSAGES * ENTRY_BYTES / 1024
    );
}
