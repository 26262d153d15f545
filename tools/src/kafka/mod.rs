//! The Kafka bridge: the sequenced feed, record by record, into one Kafka
//! partition, exactly once across bridge crashes.
//!
//! Why it is built this way:
//! - **One partition** carries the whole stream. Kafka orders records only
//!   within a partition, and the stream's value is its total order, so the
//!   bridge never spreads it (consumers that need parallelism partition
//!   downstream, by instrument or session, after reading it in order).
//! - **The partition is the bridge's only state.** Every record's key is its
//!   global sequence number (8 bytes, big-endian), so the last record of the
//!   partition says where the stream stands. A starting bridge reads that key
//!   ([`resume`]) and asks the feed consumer for the next sequence; the feed's
//!   re-request server supplies whatever it missed. No offset store, no
//!   checkpoint file that could disagree with the topic.
//! - **Idempotent producer, acks=all, bounded in flight.** Within one bridge
//!   process librdkafka's idempotence keeps every retried batch in order and
//!   unduplicated; a delivery that fails for good is fatal (the bridge exits
//!   non-zero and the next one resumes from the topic), never skipped.
//!
//! Record layout ([`record`]): key = global sequence (u64 BE); payload = the
//! 100-byte message, raw; headers `seq` (u64 BE, the key again),
//! `session` (gateway u16 BE + session index u32 BE), `client_seq` (u64 BE),
//! `gateway_rx_ns` and `sequencer_ns` (u64 BE, the sequencer host's
//! monotonic clock, comparable only with each other).
//!
//! [`mock`] runs librdkafka's in-process mock cluster (tests and scripts use
//! it instead of a JVM broker) and [`check`] verifies a partition holds
//! exactly the keys `1..=N`, in order (reading it whole, or following it as
//! it is written, for brokers like the mock that keep only its newest
//! megabytes).

pub mod bridge;
pub mod check;
pub mod error;
pub mod mock;
pub mod producer;
pub mod record;
pub mod resume;

pub use bridge::{Bridge, BridgeConfig, BridgeRun, BridgeStats, BridgeStop, EndReason};
pub use check::{check_partition, follow_partition, CheckReport};
pub use error::KafkaBridgeError;
pub use mock::MockKafka;
pub use producer::{BridgeProducer, ProducerSettings, ProducerStats};
pub use record::{decode_key, encode_key, RecordFields};
pub use resume::{read_last_key, resume_seq, Resume};
