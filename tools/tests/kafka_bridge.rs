//! The Kafka bridge against librdkafka's mock cluster, in this process:
//! the producer's records, the resume point read back from the partition,
//! the partition check, and the bridge fed by a real publisher, dropped
//! mid-stream and restarted, leaving the partition exactly `1..=N`.
#![cfg(feature = "kafka")]
#![forbid(unsafe_code)]

use peregrine_feed::{ConsumerConfig, FeedConfig, FeedService};
use peregrine_journal::{FlushPolicy, Journal, SequencedRecord, WriterConfig};
use peregrine_tools::kafka::{
    check_partition, decode_key, follow_partition, read_last_key, Bridge, BridgeConfig, BridgeProducer,
    BridgeRun, EndReason, MockKafka, ProducerSettings, RecordFields,
};
use peregrine_wire::SessionRef;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn fields(seq: u64) -> RecordFields {
    RecordFields {
        global_seq: seq,
        gateway: 1,
        session_index: (seq % 3) as u32,
        client_seq: seq,
        gateway_rx_ns: seq * 10,
        sequencer_ns: seq * 10 + 1,
    }
}

fn produce(brokers: &str, topic: &str, seqs: impl Iterator<Item = u64>) {
    let mut p = BridgeProducer::new(&ProducerSettings {
        max_queued: 64,
        ..ProducerSettings::new(brokers, topic)
    })
    .unwrap();
    for s in seqs {
        p.send(&fields(s), &[s as u8; 100]).unwrap();
    }
    p.flush(T).unwrap();
    let st = p.stats();
    assert_eq!(st.produced, st.delivered, "every record acknowledged");
}

#[test]
fn resume_point_and_check_follow_what_the_partition_holds() {
    let kafka = MockKafka::start(1).unwrap();
    kafka.create_topic("t", 1).unwrap();
    let b = kafka.bootstrap_servers();

    assert_eq!(read_last_key(&b, "t", 0, T).unwrap(), None, "empty partition");
    let rep = check_partition(&b, "t", 0, T).unwrap();
    assert!(rep.is_exact(0) && !rep.is_exact(1), "{rep:?}");

    // More records than max_queued: send waits for deliveries, drops none.
    produce(&b, "t", 1..=500);
    assert_eq!(read_last_key(&b, "t", 0, T).unwrap(), Some(500));
    let rep = check_partition(&b, "t", 0, T).unwrap();
    assert!(rep.is_exact(500), "{rep:?}");
    assert!(!rep.is_exact(499) && !rep.is_exact(501));

    // A duplicate and a gap are both reported.
    produce(&b, "t", [500, 502].into_iter());
    assert_eq!(read_last_key(&b, "t", 0, T).unwrap(), Some(502));
    let rep = check_partition(&b, "t", 0, T).unwrap();
    assert_eq!(
        (rep.records, rep.duplicates, rep.missing, rep.malformed),
        (502, 1, 1, 0),
        "{rep:?}"
    );
    assert!(!rep.is_exact(502));
    assert_eq!(rep.problems.len(), 2, "{:?}", rep.problems);
}

fn record(seq: u64) -> SequencedRecord {
    let mut msg = [0u8; 100];
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    SequencedRecord {
        global_seq: seq,
        origin: SessionRef::new((seq % 2) as u16, (seq % 5) as u32),
        client_seq: seq / 3 + 1,
        gateway_rx_ns: seq * 1000,
        sequencer_ns: seq * 1000 + 7,
        msg,
    }
}

fn journal_of(n: u64) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peregrine-test-kafka-bridge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let mut w = Journal::open(&d)
        .unwrap()
        .into_writer(WriterConfig {
            segment_size: 1 << 20,
            ..WriterConfig::default()
        })
        .unwrap();
    for s in 1..=n {
        w.append(&record(s)).unwrap();
    }
    w.flush(FlushPolicy::Msync).unwrap();
    w.close().unwrap();
    d
}

fn free_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Every record of the partition, as (key, headers, payload) checked
/// against the journal's record of that sequence.
fn assert_partition_matches_journal(brokers: &str, topic: &str, n: u64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + T;
    let mut seen = 0u64;
    while seen < n {
        assert!(Instant::now() < deadline, "read {seen} of {n}");
        let Some(m) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.unwrap();
        seen += 1;
        let key = decode_key(m.key()).unwrap();
        assert_eq!(key, seen, "offset {}", m.offset());
        let want = record(key);
        assert_eq!(m.payload(), Some(&want.msg[..]), "payload of {key}");
        let h = m.headers().unwrap();
        let get = |name: &str| {
            h.iter()
                .find(|x| x.key == name)
                .and_then(|x| x.value)
                .unwrap()
                .to_vec()
        };
        let fields = RecordFields {
            global_seq: key,
            gateway: want.origin.gateway,
            session_index: want.origin.index,
            client_seq: want.client_seq,
            gateway_rx_ns: want.gateway_rx_ns,
            sequencer_ns: want.sequencer_ns,
        };
        assert_eq!(get("seq"), key.to_be_bytes());
        assert_eq!(get("session"), fields.session_bytes());
        assert_eq!(get("client_seq"), want.client_seq.to_be_bytes());
        assert_eq!(get("gateway_rx_ns"), want.gateway_rx_ns.to_be_bytes());
        assert_eq!(get("sequencer_ns"), want.sequencer_ns.to_be_bytes());
    }
}

/// Steps a bridge run until it has produced at least `records`, then drops
/// it without flushing: a crash.
fn crash_after(cfg: &BridgeConfig, records: u64) -> u64 {
    let mut run = BridgeRun::start(cfg.clone()).unwrap();
    let from = run.resume().from_seq;
    let deadline = Instant::now() + T;
    while run.producer_stats().produced < records {
        assert!(Instant::now() < deadline, "bridge stuck at {}", run.next_seq());
        assert_eq!(run.step().unwrap(), None, "ended before the crash");
    }
    drop(run);
    // A restarted process takes this long at least; the broker has by then
    // handled what the dead producer had sent.
    std::thread::sleep(Duration::from_millis(100));
    from
}

#[test]
fn bridge_survives_crashes_and_leaves_the_partition_exact() {
    const N: u64 = 10_000;
    let journal = journal_of(N);
    let kafka = MockKafka::start(1).unwrap();
    kafka.create_topic("feed", 1).unwrap();
    let brokers = kafka.bootstrap_servers();

    let listen = free_port();
    let feed_cfg = FeedConfig {
        rerequest: Some("127.0.0.1:0".parse().unwrap()),
        rerequest_rate: 0,
        heartbeat_ms: 20,
        ..FeedConfig::new(vec![listen])
    };
    let stop = Arc::new(AtomicBool::new(false));
    let feed = FeedService::spawn(
        feed_cfg,
        journal.clone(),
        1,
        Arc::new(AtomicU64::new(N)),
        None,
        stop.clone(),
    )
    .unwrap();
    let cfg = BridgeConfig {
        to: Some(N),
        broker_timeout: T,
        ..BridgeConfig::new(
            ConsumerConfig::new(listen, feed.rerequest_addr()),
            ProducerSettings {
                max_queued: 1000,
                ..ProducerSettings::new(brokers.clone(), "feed")
            },
        )
    };

    assert_eq!(crash_after(&cfg, 2_000), 1, "empty topic: from 1");
    let last1 = read_last_key(&brokers, "feed", 0, T)
        .unwrap()
        .expect("some records survived");
    assert!(last1 < N);
    assert_eq!(
        crash_after(&cfg, 2_000),
        last1 + 1,
        "resumes after the partition's last record"
    );
    let last2 = read_last_key(&brokers, "feed", 0, T).unwrap().unwrap();
    assert!(last2 > last1 && last2 < N, "{last1} {last2}");

    let never = AtomicBool::new(false);
    let st = Bridge::run(cfg.clone(), &never).unwrap();
    assert_eq!(st.resume.from_seq, last2 + 1);
    assert_eq!(st.end, EndReason::ReachedTo);
    assert_eq!(st.next_seq, N + 1);
    assert_eq!(st.producer.produced, N - last2);
    assert_eq!(st.producer.delivered, st.producer.produced);
    assert_eq!(st.producer.last_delivered_seq, N);

    let rep = check_partition(&brokers, "feed", 0, T).unwrap();
    assert!(rep.is_exact(N), "{rep:?}");
    let rep = follow_partition(&brokers, "feed", 0, N, Duration::from_millis(200), T).unwrap();
    assert!(rep.is_exact(N), "{rep:?}");
    let rep = follow_partition(&brokers, "feed", 0, N - 1, Duration::from_millis(200), T).unwrap();
    assert!(
        !rep.is_exact(N - 1),
        "a record after the expected last is caught: {rep:?}"
    );
    assert_partition_matches_journal(&brokers, "feed", N);

    // A bridge started on the complete partition has nothing to do.
    let st = Bridge::run(cfg, &never).unwrap();
    assert_eq!(
        (st.resume.from_seq, st.producer.produced, st.end),
        (N + 1, 0, EndReason::ReachedTo)
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feed.join().unwrap();
    let _ = std::fs::remove_dir_all(&journal);
}
