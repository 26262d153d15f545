//! `kafka-check`: does a partition hold exactly the records `1..=N`, keyed
//! by their global sequence, in order, each once?

use super::error::KafkaBridgeError;
use super::record::{decode_key, HEADER_SEQ};
use super::resume::partition_reader;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Most problems a report lists (the counts cover all of them).
pub const MAX_LISTED: usize = 20;

/// What the check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Records read (the whole partition: low to high watermark).
    pub records: u64,
    /// Key of the first record, if any.
    pub first_key: Option<u64>,
    /// Key of the last record, if any.
    pub last_key: Option<u64>,
    /// Records whose key repeats or goes back (a duplicate).
    pub duplicates: u64,
    /// Sequences missing between consecutive records.
    pub missing: u64,
    /// Records without an 8-byte key, with a payload that is not 100 bytes,
    /// or whose `seq` header disagrees with the key.
    pub malformed: u64,
    /// The first [`MAX_LISTED`] problems, in offset order.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Exactly `expect` records with keys `1..=expect` in order.
    pub fn is_exact(&self, expect: u64) -> bool {
        self.records == expect
            && self.duplicates == 0
            && self.missing == 0
            && self.malformed == 0
            && (expect == 0 || (self.first_key == Some(1) && self.last_key == Some(expect)))
    }

    fn note(&mut self, p: String) {
        if self.problems.len() < MAX_LISTED {
            self.problems.push(p);
        }
    }
}

/// Reads `topic`/`partition` from its low to its high watermark (as of the
/// start) and checks the keys; waits up to `timeout` in all.
pub fn check_partition(
    brokers: &str,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<CheckReport, KafkaBridgeError> {
    let consumer = partition_reader(brokers)?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    let mut rep = CheckReport::default();
    if low >= high {
        return Ok(rep);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(low))?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut expected_key = 1u64;
    let mut next_offset = low;
    while next_offset < high {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Err(KafkaBridgeError::LastRecordUnavailable {
                topic: topic.into(),
                partition,
                low: next_offset,
                high,
                timeout_ms: timeout.as_millis() as u64,
            });
        };
        let m = match consumer.poll(left.min(Duration::from_millis(100))) {
            None => continue,
            Some(m) => m?,
        };
        if m.offset() < next_offset {
            continue;
        }
        next_offset = m.offset() + 1;
        rep.records += 1;
        let Some(key) = decode_key(m.key()) else {
            rep.malformed += 1;
            rep.note(format!("offset {}: key is not an 8-byte sequence", m.offset()));
            continue;
        };
        if m.payload_len() != peregrine_wire::message::MESSAGE_LEN {
            rep.malformed += 1;
            rep.note(format!(
                "offset {} (seq {key}): payload of {} bytes",
                m.offset(),
                m.payload_len()
            ));
        }
        let header_seq = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == HEADER_SEQ))
            .and_then(|h| decode_key(h.value));
        if header_seq != Some(key) {
            rep.malformed += 1;
            rep.note(format!(
                "offset {} (seq {key}): seq header {header_seq:?}",
                m.offset()
            ));
        }
        rep.first_key.get_or_insert(key);
        rep.last_key = Some(key);
        if key < expected_key {
            rep.duplicates += 1;
            rep.note(format!(
                "offset {}: seq {key} again (expected {expected_key})",
                m.offset()
            ));
            continue;
        }
        if key > expected_key {
            rep.missing += key - expected_key;
            rep.note(format!(
                "offset {}: seq {key} follows {}: {} missing",
                m.offset(),
                expected_key - 1,
                key - expected_key
            ));
        }
        expected_key = key + 1;
    }
    Ok(rep)
}
