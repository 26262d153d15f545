//! The bridge's errors: everything that stops it. Each is fatal by design: a
//! bridge that cannot produce a record in order exits, and the next one
//! resumes from what the partition holds.

use rdkafka::error::KafkaError;

/// Why the bridge, the partition check or the mock cluster stopped.
#[derive(Debug, thiserror::Error)]
pub enum KafkaBridgeError {
    /// A librdkafka call failed (configuration, metadata, watermarks,
    /// consumer assignment, flush).
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// A record the bridge did not write: its key is not 8 bytes.
    #[error("partition {partition} offset {offset}: key of {len} bytes, not an 8-byte global sequence (not written by the bridge?)")]
    ForeignKey {
        /// The partition read.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// The key's length (0 when there is none).
        len: usize,
    },
    /// The last record of the partition could not be read within the
    /// timeout (broker down, offsets deleted by retention).
    #[error("could not read the last record of {topic}/{partition} (offsets {low}..{high}) within {timeout_ms} ms")]
    LastRecordUnavailable {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Low watermark.
        low: i64,
        /// High watermark.
        high: i64,
        /// How long it waited.
        timeout_ms: u64,
    },
    /// `--from` lies beyond the record after the partition's last: starting
    /// there would leave a gap in the topic.
    #[error("the partition ends at sequence {last}; starting at {from} would leave a gap (use --from {next} or less)", next = last + 1)]
    WouldLeaveGap {
        /// Last sequence in the partition.
        last: u64,
        /// The requested first sequence.
        from: u64,
    },
    /// A record could not be delivered (after librdkafka's retries), or the
    /// idempotent producer hit a fatal error: never skipped, the bridge stops.
    #[error("produce failed at sequence {seq}: {reason}")]
    Delivery {
        /// The record's global sequence (0 when the error is not tied to one).
        seq: u64,
        /// librdkafka's error.
        reason: String,
    },
    /// Records still unacknowledged when the exit flush timed out.
    #[error("flush timed out with {in_flight} record(s) unacknowledged")]
    FlushTimeout {
        /// Records librdkafka still held.
        in_flight: i32,
    },
    /// The feed consumer failed (socket setup or I/O).
    #[error("feed: {0}")]
    Feed(#[from] peregrine_feed::FeedError),
    /// The mock cluster could not be created.
    #[error("mock cluster: {0}")]
    Mock(String),
}
