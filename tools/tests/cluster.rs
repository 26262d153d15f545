//! A three-node cluster on loopback, each node a real server with its own
//! journal, Raft over real TCP, clients over real UDP: election, replicated
//! acknowledgement, follower refusal, failover with sessions intact, and a
//! restarted node catching up.

mod common;

use common::*;
use peregrine_cluster::AckLevel;
use peregrine_journal::Journal;
use peregrine_server::config::ServeConfig;
use peregrine_tools::local_cluster::LocalCluster;
use peregrine_wire::message::{LoginRejectReason, LoginRejected, MessageType};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zerocopy::FromBytes;

fn cluster(name: &str, ack: AckLevel) -> LocalCluster {
    let base = ServeConfig {
        idle: "backoff".into(),
        ..server_config(0, 0)
    };
    LocalCluster::start(name, 3, &base, ack).expect("cluster starts")
}

const WITHIN: Duration = Duration::from_secs(10);

/// One cluster at a time: three nodes each are already more threads than
/// this machine's cores, and a starved node misses heartbeats.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends client messages `range` of `session` and returns their acks as
/// (client sequence, global sequence), in arrival order.
fn send_and_ack(
    s: &std::net::UdpSocket,
    to: SocketAddr,
    session: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Vec<(u64, u64)> {
    let msgs: Vec<_> = range.clone().map(|c| echo(c, c)).collect();
    for (k, chunk) in msgs.chunks(10).enumerate() {
        let blocks: Vec<&[u8]> = chunk.iter().map(|m| &m[..]).collect();
        s.send_to(&mold(session, *range.start() + 10 * k as u64, &blocks), to)
            .unwrap();
    }
    recv_blocks(s, msgs.len(), Duration::from_secs(5))
        .iter()
        .filter_map(|(_, m)| as_ack(m))
        .map(|a| (a.client_seq.get(), a.global_seq.get()))
        .collect()
}

/// Logs `session` in at whichever node leads, following refusals as a
/// client does (leadership can still move right after an election on a
/// loaded machine); returns the leader's position and the login's
/// (next client sequence, next reply sequence).
fn login_at_leader(c: &LocalCluster, s: &std::net::UdpSocket, session: &str) -> (usize, (u64, u64)) {
    let until = Instant::now() + WITHIN;
    loop {
        let l = c.leader(WITHIN).unwrap();
        let m = udp_login_with(s, c.udp(l), session, SECRET);
        if m[0] == MessageType::LoginAccepted as u8 {
            let a = peregrine_wire::message::LoginAccepted::read_from_bytes(&m).unwrap();
            return (l, (a.next_client_seq.get(), a.next_reply_seq.get()));
        }
        assert!(Instant::now() < until, "no leader accepted the login");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn journal_records(dir: &Path) -> Vec<(u64, u64)> {
    Journal::open_read_only(dir)
        .unwrap()
        .records()
        .map(|r| (r.global_seq, r.client_seq))
        .collect()
}

#[test]
fn elects_replicates_refuses_on_followers_and_fails_over_with_sessions_intact() {
    let _serial = serial();
    fails_over_with_sessions_intact(cluster("failover", AckLevel::Replicated));
}

/// The same with every node's loop on one colocation thread (the cluster
/// bench's default layout): a node's supervisor hands each new
/// incarnation's loop to the same thread after a restart.
#[test]
fn colocated_nodes_elect_replicate_and_fail_over_with_sessions_intact() {
    let _serial = serial();
    let base = ServeConfig {
        idle: "backoff".into(),
        ..server_config(0, 0)
    };
    let c =
        LocalCluster::start_colocated("colocated", 3, &base, AckLevel::Replicated).expect("cluster starts");
    fails_over_with_sessions_intact(c);
}

fn fails_over_with_sessions_intact(mut c: LocalCluster) {
    let leader = c.leader(WITHIN).unwrap();
    let follower = (leader + 1) % 3;

    // A follower refuses the login and, once it has heard from the leader
    // (the leader serves after one follower acknowledged its first entry;
    // this one may hear a heartbeat later), names it.
    let s = udp_client();
    let until = Instant::now() + WITHIN;
    let hint = loop {
        let m = udp_login_with(&s, c.udp(follower), "GOOD", SECRET);
        assert_eq!(m[0], MessageType::LoginRejected as u8);
        let r = LoginRejected::read_from_bytes(&m).unwrap();
        assert_eq!(r.reason(), Ok(LoginRejectReason::NotLeader));
        if r.leader_hint().is_some() || Instant::now() > until {
            break r.leader_hint();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(hint, Some(c.udp(leader)));

    // The leader sequences and acknowledges once replicated.
    assert_eq!(udp_login(&s, c.udp(leader), "GOOD"), (1, 1));
    let acks = send_and_ack(&s, c.udp(leader), "GOOD", 1..=50);
    assert_eq!(acks, (1..=50).map(|k| (k, k)).collect::<Vec<_>>());
    c.converge(51, WITHIN).unwrap();

    // The leader goes away; another takes over.
    let t0 = Instant::now();
    c.stop_node(leader);
    let second = c.leader(WITHIN).unwrap();
    assert_ne!(second, leader);
    let failover = t0.elapsed();
    assert!(failover < Duration::from_secs(3), "failover took {failover:?}");

    // The session resumes where the old leader left it: nothing is
    // sequenced twice and the global sequence continues without a gap.
    let s2 = udp_client();
    let (second, resumed) = login_at_leader(&c, &s2, "GOOD");
    assert_eq!(resumed, (51, 51));
    s2.send_to(&mold("GOOD", 50, &[&echo(50, 50)]), c.udp(second))
        .unwrap();
    let again: Vec<(u64, u64)> = recv_blocks(&s2, 1, Duration::from_secs(5))
        .iter()
        .filter_map(|(_, m)| as_ack(m))
        .map(|a| (a.client_seq.get(), a.global_seq.get()))
        .collect();
    assert_eq!(again, [(50, 50)], "a retransmission gets its original ack");
    let acks = send_and_ack(&s2, c.udp(second), "GOOD", 51..=60);
    assert_eq!(acks, (51..=60).map(|k| (k, k)).collect::<Vec<_>>());

    // The stopped node restarts from its journal and catches up.
    c.start_node(leader).unwrap();
    c.converge(61, WITHIN).unwrap();
    let dirs: Vec<PathBuf> = (0..3).map(|i| c.journal_dir(i)).collect();
    for i in 0..3 {
        c.stop_node(i);
    }
    let expect: Vec<(u64, u64)> = (1..=60).map(|k| (k, k)).collect();
    for d in &dirs {
        assert_eq!(journal_records(d), expect, "journal of {}", d.display());
    }
}

#[test]
fn local_acks_leave_before_replication_and_still_replicate() {
    let _serial = serial();
    let c = cluster("local", AckLevel::Local);
    let leader = c.leader(WITHIN).unwrap();
    let s = udp_client();
    assert_eq!(udp_login(&s, c.udp(leader), "GOOD"), (1, 1));
    let acks = send_and_ack(&s, c.udp(leader), "GOOD", 1..=20);
    assert_eq!(acks, (1..=20).map(|k| (k, k)).collect::<Vec<_>>());
    c.converge(21, WITHIN).unwrap();
}

#[test]
fn a_node_replaced_by_an_empty_one_catches_up_from_the_leader() {
    let _serial = serial();
    let mut c = cluster("replace", AckLevel::Replicated);
    let leader = c.leader(WITHIN).unwrap();
    let s = udp_client();
    assert_eq!(udp_login(&s, c.udp(leader), "GOOD"), (1, 1));
    assert_eq!(send_and_ack(&s, c.udp(leader), "GOOD", 1..=30).len(), 30);
    c.converge(31, WITHIN).unwrap();
    // A follower's machine is lost: a new, empty node takes its id.
    let lost = (leader + 1) % 3;
    c.stop_node(lost);
    let data = c.configs[lost].journal.clone().unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    assert_eq!(send_and_ack(&s, c.udp(leader), "GOOD", 31..=40).len(), 10);
    c.start_node(lost).unwrap();
    c.converge(41, WITHIN).unwrap();
    let expect: Vec<(u64, u64)> = (1..=40).map(|k| (k, k)).collect();
    let dir = c.journal_dir(lost);
    let leader_dir = c.journal_dir(leader);
    for i in 0..3 {
        c.stop_node(i);
    }
    assert_eq!(
        journal_records(&dir),
        expect,
        "the replacement holds the whole log"
    );
    assert_eq!(journal_records(&leader_dir), expect);
}

#[test]
fn a_node_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let _serial = serial();
    let base = ServeConfig {
        idle: "backoff".into(),
        cluster: Some({
            let mut c = peregrine_cluster::ClusterConfig::new(1, Vec::new());
            c.snapshot_records = 10;
            c
        }),
        ..server_config(0, 0)
    };
    let mut c = LocalCluster::start("snapshot", 3, &base, AckLevel::Replicated).unwrap();
    let leader = c.leader(WITHIN).unwrap();
    let s = udp_client();
    assert_eq!(udp_login(&s, c.udp(leader), "GOOD"), (1, 1));
    assert_eq!(send_and_ack(&s, c.udp(leader), "GOOD", 1..=30).len(), 30);
    c.converge(31, WITHIN).unwrap();
    let behind = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    c.stop_node(behind);
    assert_eq!(send_and_ack(&s, c.udp(leader), "GOOD", 31..=60).len(), 30);
    c.converge(61, WITHIN).unwrap();
    // Both running nodes restart, and each compacts its log into a
    // snapshot on the way: the stopped node's next entry is gone.
    c.stop_node(other);
    c.start_node(other).unwrap();
    c.stop_node(leader);
    c.start_node(leader).unwrap();
    c.start_node(behind).unwrap();
    let s2 = udp_client();
    let (now, resumed) = login_at_leader(&c, &s2, "GOOD");
    assert_eq!(resumed, (61, 61));
    assert_eq!(
        send_and_ack(&s2, c.udp(now), "GOOD", 61..=70),
        (61..=70).map(|k| (k, k)).collect::<Vec<_>>()
    );
    c.converge(71, WITHIN).unwrap();
    // The node that was behind holds the snapshot's state and the log
    // after it; the session state came with the snapshot: as leader it
    // would resume this session at 71.
    let dir = c.journal_dir(behind);
    for i in 0..3 {
        c.stop_node(i);
    }
    let tail: Vec<(u64, u64)> = journal_records(&dir);
    assert_eq!(tail.last(), Some(&(70, 70)));
    assert!(
        tail.first().unwrap().0 > 30,
        "the log before the snapshot was not sent: {:?}",
        tail.first()
    );
}

#[test]
fn a_follower_publishes_the_committed_stream_on_its_feed() {
    use peregrine_feed::{ConsumerConfig, FeedConfig, FeedConsumer};
    let _serial = serial();
    let mut c = cluster("feed", AckLevel::Replicated);
    let leader = c.leader(WITHIN).unwrap();
    // The feed runs on a follower: the leader's cores do nothing extra.
    let f = (leader + 1) % 3;
    let rerequest = std::net::UdpSocket::bind(lo()).unwrap().local_addr().unwrap();
    let mut consumer = FeedConsumer::new(ConsumerConfig {
        session: Some("PEREGRINE".into()),
        heartbeat_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_millis(20),
        ..ConsumerConfig::new(lo(), Some(rerequest))
    })
    .unwrap();
    c.stop_node(f);
    c.configs[f].feed = Some(FeedConfig {
        heartbeat_ms: 50,
        rerequest: Some(rerequest),
        ..FeedConfig::new(vec![consumer.local_addr().unwrap()])
    });
    c.start_node(f).unwrap();
    let s = udp_client();
    let (leader, _) = login_at_leader(&c, &s, "GOOD");
    let mut acked = Vec::new();
    for k in 0..20u64 {
        acked.extend(send_and_ack(&s, c.udp(leader), "GOOD", 10 * k + 1..=10 * k + 10));
    }
    assert_eq!(acked.len(), 200);
    c.converge(201, WITHIN).unwrap();
    let mut got = Vec::new();
    let until = Instant::now() + WITHIN;
    while consumer.next_seq() <= 200 {
        assert!(Instant::now() < until, "feed stuck at {}", consumer.next_seq());
        consumer
            .poll(&mut |r| got.push((r.global_seq, r.client_seq)))
            .unwrap();
        consumer.wait(Duration::from_millis(5)).unwrap();
    }
    let leader_dir = c.journal_dir(leader);
    for i in 0..3 {
        c.stop_node(i);
    }
    assert_eq!(
        got,
        journal_records(&leader_dir),
        "the follower's feed is the committed log"
    );
}

/// A resting order (never crossing: buys below 100, sells at 100 and
/// above), so each gets exactly one answer; levels repeat so their totals
/// grow and shrink.
fn resting_order(k: u64) -> [u8; peregrine_wire::message::MESSAGE_LEN] {
    use peregrine_wire::message::{NewOrder, LAYOUT_VERSION};
    use zerocopy::little_endian::{I64, U32, U64};
    use zerocopy::{FromZeros, IntoBytes};
    let mut o = NewOrder::new_zeroed();
    o.msg_type = MessageType::NewOrder as u8;
    o.version = LAYOUT_VERSION;
    let buy = k % 2 == 0;
    o.side = if buy { 1 } else { 2 };
    o.order_kind = 1;
    o.time_in_force = 1;
    o.order_id = U64::new(k);
    o.instrument = U32::new(1);
    o.price = I64::new(if buy {
        99 - (k % 5) as i64
    } else {
        100 + (k % 5) as i64
    });
    o.quantity = U64::new(1 + k % 7);
    let mut m = [0u8; peregrine_wire::message::MESSAGE_LEN];
    m.copy_from_slice(o.as_bytes());
    m
}

/// Sends resting orders as client messages `range` of `session` and waits
/// for one answer each.
fn send_orders(s: &std::net::UdpSocket, to: SocketAddr, session: &str, range: std::ops::RangeInclusive<u64>) {
    let msgs: Vec<_> = range.clone().map(resting_order).collect();
    for (k, chunk) in msgs.chunks(10).enumerate() {
        let blocks: Vec<&[u8]> = chunk.iter().map(|m| &m[..]).collect();
        s.send_to(&mold(session, *range.start() + 10 * k as u64, &blocks), to)
            .unwrap();
    }
    let got = recv_blocks(s, msgs.len(), Duration::from_secs(5));
    assert_eq!(got.len(), msgs.len(), "one answer per order");
    for (_, m) in &got {
        assert_eq!(m[0], MessageType::Accepted as u8, "the order rests");
    }
}

/// A follower whose log is replaced by its leader's snapshot while its feed
/// runs: the feed keeps going, the order stream skips what the node never
/// held, and the market-data stream continues under the numbers a
/// derivation over every record gives (the snapshot carries the position).
#[test]
fn a_follower_that_installs_a_snapshot_keeps_its_feed_and_the_market_data_numbering() {
    use peregrine_feed::{ConsumerConfig, FeedConfig, FeedConsumer, MarketBlock, MarketDataFeedConfig};
    use peregrine_server::config::AppKind;
    use peregrine_server::market_data::MarketDataBuilder;
    let _serial = serial();
    let base = ServeConfig {
        idle: "backoff".into(),
        app: AppKind::Match,
        cluster: Some({
            let mut c = peregrine_cluster::ClusterConfig::new(1, Vec::new());
            c.snapshot_records = 10;
            c
        }),
        ..server_config(0, 0)
    };
    let mut c = LocalCluster::start("snapshot-feed", 3, &base, AckLevel::Replicated).unwrap();
    let leader = c.leader(WITHIN).unwrap();
    let s = udp_client();
    assert_eq!(udp_login(&s, c.udp(leader), "GOOD"), (1, 1));
    send_orders(&s, c.udp(leader), "GOOD", 1..=30);
    c.converge(31, WITHIN).unwrap();
    let behind = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    c.stop_node(behind);
    send_orders(&s, c.udp(leader), "GOOD", 31..=60);
    c.converge(61, WITHIN).unwrap();
    c.stop_node(other);
    // What every node's derivation emits for 1..=60 (read before the
    // restart compacts this journal).
    let first60: Vec<_> = Journal::open_read_only(c.journal_dir(other))
        .unwrap()
        .records()
        .collect();
    assert_eq!(first60.len(), 60);
    let mut whole = MarketDataBuilder::new(&peregrine_engine::EngineConfig::sample()).unwrap();
    whole.catch_up(first60.iter().copied());
    let position60 = whole.blocks_emitted();
    assert!(position60 >= 60, "every order changed a level");
    // Another node answers re-requests from its own journal, which holds
    // the records the node that falls behind will never have.
    let free = || std::net::UdpSocket::bind(lo()).unwrap().local_addr().unwrap();
    let (other_rr, behind_rr) = (free(), free());
    let sink = std::net::UdpSocket::bind(lo()).unwrap();
    c.configs[other].feed = Some(FeedConfig {
        heartbeat_ms: 50,
        rerequest: Some(other_rr),
        ..FeedConfig::new(vec![sink.local_addr().unwrap()])
    });
    c.start_node(other).unwrap();
    c.stop_node(leader);
    c.start_node(leader).unwrap();
    // The node that was behind publishes a feed; a market-data consumer
    // waits for the blocks after sequence 60.
    // Its order stream's consumer asks its own node first, then the other.
    let mut orders = FeedConsumer::new(ConsumerConfig {
        session: Some("PEREGRINE".into()),
        heartbeat_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(20),
        rerequest_fallbacks: vec![other_rr],
        ..ConsumerConfig::new(lo(), Some(behind_rr))
    })
    .unwrap();
    let mut md = FeedConsumer::new_market_data(ConsumerConfig {
        from_seq: position60 + 1,
        heartbeat_timeout: Duration::from_millis(300),
        ..ConsumerConfig::new(lo(), None)
    })
    .unwrap();
    c.configs[behind].feed = Some(FeedConfig {
        heartbeat_ms: 50,
        market_data: Some(MarketDataFeedConfig {
            session: "PGMD".into(),
            destinations: vec![md.local_addr().unwrap()],
            rerequest: None,
            retain: 1 << 12,
        }),
        rerequest: Some(behind_rr),
        ..FeedConfig::new(vec![orders.local_addr().unwrap()])
    });
    c.start_node(behind).unwrap();
    let s2 = udp_client();
    let (now, resumed) = login_at_leader(&c, &s2, "GOOD");
    assert_eq!(resumed, (61, 61));
    send_orders(&s2, c.udp(now), "GOOD", 61..=70);
    c.converge(71, WITHIN).unwrap();
    let last10: Vec<_> = Journal::open_read_only(c.journal_dir(now))
        .unwrap()
        .range(61..=70)
        .collect();
    let mut want: Vec<(u64, MarketBlock)> = Vec::new();
    for r in &last10 {
        whole.on_message(r.global_seq, r.origin, &r.msg, &mut |b| {
            want.push((position60 + 1 + want.len() as u64, *b))
        });
    }
    assert!(!want.is_empty());
    let mut got = Vec::new();
    let until = Instant::now() + WITHIN;
    while got.len() < want.len() {
        assert!(
            Instant::now() < until,
            "market data stuck at {} ({} of {} blocks)",
            md.next_seq(),
            got.len(),
            want.len()
        );
        md.poll_market(&mut |seq, b| got.push((seq, *b))).unwrap();
        md.wait(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(
        got, want,
        "numbered and derived as by a node that saw every record"
    );
    // The order stream's consumer has every record: 31..=60, which this
    // node never held, from the other node's re-request server.
    let mut records = Vec::new();
    let until = Instant::now() + WITHIN;
    while orders.next_seq() <= 70 {
        assert!(
            Instant::now() < until,
            "order stream stuck at {}: {:?}",
            orders.next_seq(),
            orders.stats()
        );
        orders
            .poll(&mut |r| records.push(r.to_sequenced_record()))
            .unwrap();
        orders.wait(Duration::from_millis(5)).unwrap();
    }
    let every: Vec<_> = first60.iter().chain(&last10).copied().collect();
    assert_eq!(records, every, "every record once, in order");
    assert!(
        orders.stats().server_switches >= 1,
        "the gap was filled by the other node: {:?}",
        orders.stats()
    );
    let report = c
        .stop_node_report(behind)
        .expect("the feed ran to the node's stop");
    let feed = report.feed.unwrap();
    assert_eq!(feed.next_seq, 71);
    assert_eq!(
        feed.skipped, 30,
        "31..=60 were never in this node's journal: {feed:?}"
    );
    assert!(!feed.md_ended);
    assert_eq!(feed.md_next_seq, whole.blocks_emitted() + 1);

    // Restarted, the same node's journal starts at 61: its replica starts
    // from the snapshot and replays 61..=70, and the stream goes on.
    let position70 = whole.blocks_emitted();
    let mut md = FeedConsumer::new_market_data(ConsumerConfig {
        from_seq: position70 + 1,
        heartbeat_timeout: Duration::from_millis(300),
        ..ConsumerConfig::new(lo(), None)
    })
    .unwrap();
    if let Some(f) = c.configs[behind].feed.as_mut() {
        f.market_data.as_mut().unwrap().destinations = vec![md.local_addr().unwrap()];
    }
    c.start_node(behind).unwrap();
    let (now, _) = login_at_leader(&c, &s2, "GOOD");
    send_orders(&s2, c.udp(now), "GOOD", 71..=80);
    c.converge(81, WITHIN).unwrap();
    let next10: Vec<_> = Journal::open_read_only(c.journal_dir(now))
        .unwrap()
        .range(71..=80)
        .collect();
    let mut want = Vec::new();
    for r in &next10 {
        whole.on_message(r.global_seq, r.origin, &r.msg, &mut |b| {
            want.push((position70 + 1 + want.len() as u64, *b))
        });
    }
    let mut got = Vec::new();
    let until = Instant::now() + WITHIN;
    while got.len() < want.len() {
        assert!(
            Instant::now() < until,
            "market data stuck at {} after the restart",
            md.next_seq()
        );
        md.poll_market(&mut |seq, b| got.push((seq, *b))).unwrap();
        md.wait(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(
        got, want,
        "a restart from the compacted journal keeps the numbering"
    );
    for i in 0..3 {
        c.stop_node(i);
    }
}
