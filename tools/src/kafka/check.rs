//! `kafka-check`: does a partition hold exactly the records `1..=N`, keyed
//! by their global sequence, in order, each once?

use super::error::KafkaBridgeError;
use super::record::{decode_key, HEADER_SEQ};
use super::resume::{partition_follower, partition_reader};
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Headers, Message};
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

/// Folds records, in offset order, into a [`CheckReport`].
struct Checker {
    rep: CheckReport,
    expected_key: u64,
    next_offset: Option<i64>,
}

impl Checker {
    fn new() -> Self {
        Checker {
            rep: CheckReport::default(),
            expected_key: 1,
            next_offset: None,
        }
    }

    fn see(&mut self, m: &BorrowedMessage<'_>) {
        let rep = &mut self.rep;
        if let Some(o) = self.next_offset {
            if m.offset() != o {
                rep.missing += 1;
                rep.note(format!(
                    "offsets {o}..{} never read (deleted by retention?)",
                    m.offset()
                ));
            }
        }
        self.next_offset = Some(m.offset() + 1);
        rep.records += 1;
        let Some(key) = decode_key(m.key()) else {
            rep.malformed += 1;
            rep.note(format!("offset {}: key is not an 8-byte sequence", m.offset()));
            return;
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
        let expected = self.expected_key;
        if key < expected {
            rep.duplicates += 1;
            rep.note(format!(
                "offset {}: seq {key} again (expected {expected})",
                m.offset()
            ));
            return;
        }
        if key > expected {
            rep.missing += key - expected;
            rep.note(format!(
                "offset {}: seq {key} follows {}: {} missing",
                m.offset(),
                expected - 1,
                key - expected
            ));
        }
        self.expected_key = key + 1;
    }
}

fn timed_out(topic: &str, partition: i32, low: i64, high: i64, timeout: Duration) -> KafkaBridgeError {
    KafkaBridgeError::LastRecordUnavailable {
        topic: topic.into(),
        partition,
        low,
        high,
        timeout_ms: timeout.as_millis() as u64,
    }
}

/// Reads `topic`/`partition` from its low to its high watermark (as of the
/// start) and checks the keys; waits up to `timeout` in all. A partition
/// whose low watermark is above 0 has lost records to retention: they
/// count as missing.
pub fn check_partition(
    brokers: &str,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<CheckReport, KafkaBridgeError> {
    let consumer = partition_reader(brokers)?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    let mut c = Checker::new();
    if low >= high {
        return Ok(c.rep);
    }
    if low > 0 {
        c.rep.missing += low as u64;
        c.rep
            .note(format!("offsets 0..{low} deleted by the broker (retention)"));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(low))?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut next_offset = low;
    while next_offset < high {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Err(timed_out(topic, partition, next_offset, high, timeout));
        };
        let m = match consumer.poll(left.min(Duration::from_millis(100))) {
            None => continue,
            Some(m) => m?,
        };
        if m.offset() < next_offset {
            continue;
        }
        next_offset = m.offset() + 1;
        c.see(&m);
    }
    Ok(c.rep)
}

/// Follows `topic`/`partition` from offset 0 while it is being written,
/// until a record with key `expect` arrives, then `grace` longer (anything
/// after it is a duplicate or a stray), then compares the high watermark
/// with `expect`. For brokers that keep only the newest part of a
/// partition (librdkafka's mock keeps about 5 MB): a reader that keeps up
/// sees every record before it is deleted, and one that falls behind gets
/// an offset-out-of-range error instead of a silent skip.
pub fn follow_partition(
    brokers: &str,
    topic: &str,
    partition: i32,
    expect: u64,
    grace: Duration,
    timeout: Duration,
) -> Result<CheckReport, KafkaBridgeError> {
    let consumer = partition_follower(brokers)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(0))?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut c = Checker::new();
    let mut done_at: Option<Instant> = (expect == 0).then(Instant::now);
    loop {
        if done_at.is_some_and(|t| t.elapsed() >= grace) {
            break;
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Err(timed_out(
                topic,
                partition,
                c.next_offset.unwrap_or(0),
                -1,
                timeout,
            ));
        };
        match consumer.poll(left.min(Duration::from_millis(50))) {
            None => {}
            Some(m) => {
                let m = m?;
                c.see(&m);
                if done_at.is_none() && decode_key(m.key()) == Some(expect) {
                    done_at = Some(Instant::now());
                }
            }
        }
    }
    let (_, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    if high != expect as i64 {
        c.rep.note(format!("high watermark {high}, expected {expect}"));
        if high > expect as i64 {
            c.rep.duplicates += (high - expect as i64) as u64;
        } else {
            c.rep.missing += (expect as i64 - high) as u64;
        }
    }
    Ok(c.rep)
}
