//! Where a starting bridge resumes: the key of the partition's last record.
//!
//! The partition is the bridge's only state (see the module docs of
//! [`crate::kafka`]). Reading its end takes two broker round trips: the
//! watermarks (ListOffsets), then one fetch of the record at high
//! watermark - 1. The bridge writes without transactions, so that offset is
//! always a data record, never a transaction marker.
//!
//! A bridge killed mid-stream may leave produce requests in its socket that
//! the broker has not handled yet when the next bridge reads the end; the
//! new bridge starts well after the old one's connection closed (process
//! start, metadata, watermarks), and a broker handles one connection's
//! requests in order before noticing its close, so in practice it sees
//! them. A transactional producer would fence them outright; see the README.

use super::error::KafkaBridgeError;
use super::record::decode_key;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Where the bridge starts, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// Global sequence of the partition's last record (`None`: empty).
    pub last_in_topic: Option<u64>,
    /// First global sequence to produce.
    pub from_seq: u64,
}

/// The first sequence to produce, given the partition's last key and the
/// operator's `--from`:
/// - empty partition: `from`, or 1;
/// - partition ending at `n`: `n + 1` (what is there is never produced
///   again); a `from` beyond `n + 1` is refused, it would leave a gap.
pub fn resume_seq(last_in_topic: Option<u64>, from: Option<u64>) -> Result<Resume, KafkaBridgeError> {
    let from_seq = match (last_in_topic, from) {
        (None, f) => f.unwrap_or(1).max(1),
        (Some(last), Some(f)) if f > last.saturating_add(1) => {
            return Err(KafkaBridgeError::WouldLeaveGap { last, from: f })
        }
        (Some(last), _) => last.saturating_add(1),
    };
    Ok(Resume {
        last_in_topic,
        from_seq,
    })
}

/// A consumer for reading a partition directly (assign + seek, no group
/// membership, no commits).
pub(crate) fn partition_reader(brokers: &str) -> Result<BaseConsumer, KafkaBridgeError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "peregrine-kafka-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_uncommitted")
        .create()?)
}

/// A reader that follows a partition being written on a broker that
/// deletes old records early: an offset the broker no longer has is an
/// error (`auto.offset.reset=error`), never a silent jump, and librdkafka's
/// fetcher thread keeps fetching ahead however slowly the caller consumes
/// (up to 10M records / 1 GiB held locally; its default stops at 100,000
/// queued records, long enough for such a broker to delete the next ones).
pub(crate) fn partition_follower(brokers: &str) -> Result<BaseConsumer, KafkaBridgeError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "peregrine-kafka-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "error")
        .set("queued.min.messages", "10000000")
        .set("queued.max.messages.kbytes", "1048576")
        .set("fetch.wait.max.ms", "10")
        .create()?)
}

/// The global sequence in the key of `topic`/`partition`'s last record, or
/// `None` when the partition is empty. Waits up to `timeout` for the broker.
pub fn read_last_key(
    brokers: &str,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Option<u64>, KafkaBridgeError> {
    let consumer = partition_reader(brokers)?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    if high <= 0 {
        return Ok(None);
    }
    let unavailable = || KafkaBridgeError::LastRecordUnavailable {
        topic: topic.to_string(),
        partition,
        low,
        high,
        timeout_ms: timeout.as_millis() as u64,
    };
    if low >= high {
        // Records were written and all deleted: the sequence they reached
        // is unknown, so no safe place to resume.
        return Err(unavailable());
    }
    let last = high - 1;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(last))?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match consumer.poll(left.min(Duration::from_millis(100))) {
            None => continue,
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) if m.offset() < last => continue,
            Some(Ok(m)) => {
                return decode_key(m.key()).map(Some).ok_or(KafkaBridgeError::ForeignKey {
                    partition,
                    offset: m.offset(),
                    len: m.key().map_or(0, <[u8]>::len),
                })
            }
        }
    }
    Err(unavailable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_partition_starts_at_from_or_one() {
        assert_eq!(resume_seq(None, None).unwrap().from_seq, 1);
        assert_eq!(resume_seq(None, Some(500)).unwrap().from_seq, 500);
        assert_eq!(resume_seq(None, Some(0)).unwrap().from_seq, 1);
    }

    #[test]
    fn a_partition_ending_at_n_resumes_at_n_plus_one() {
        let r = resume_seq(Some(41), None).unwrap();
        assert_eq!(
            r,
            Resume {
                last_in_topic: Some(41),
                from_seq: 42
            }
        );
        // An earlier --from never re-produces what the partition holds.
        assert_eq!(resume_seq(Some(41), Some(1)).unwrap().from_seq, 42);
        assert_eq!(resume_seq(Some(41), Some(42)).unwrap().from_seq, 42);
    }

    #[test]
    fn a_from_beyond_the_end_would_leave_a_gap() {
        let e = resume_seq(Some(41), Some(43)).unwrap_err();
        assert!(
            matches!(e, KafkaBridgeError::WouldLeaveGap { last: 41, from: 43 }),
            "{e}"
        );
    }
}
