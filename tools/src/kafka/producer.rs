//! The bridge's producer: idempotent, acks=all, one partition, a bounded
//! number of records in flight, and any delivery failure fatal.
//!
//! A `BaseProducer` polled by the bridge's own loop (no background thread):
//! delivery reports are handled between feed polls, so the bridge sees a
//! failure before it produces much further.

use super::error::KafkaBridgeError;
use super::record::{decode_key, encode_key, RecordFields};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Where and how the bridge produces.
#[derive(Clone, Debug)]
pub struct ProducerSettings {
    /// `bootstrap.servers`: comma-separated host:port list.
    pub brokers: String,
    /// Topic (must exist, or the broker must auto-create it).
    pub topic: String,
    /// The one partition the whole stream goes to.
    pub partition: i32,
    /// Most records librdkafka holds unacknowledged
    /// (`queue.buffering.max.messages`); when full, `send` waits for
    /// deliveries.
    pub max_queued: usize,
    /// `linger.ms`: how long librdkafka waits to fill a batch.
    pub linger_ms: u32,
    /// Extra librdkafka properties, applied last.
    pub extra: Vec<(String, String)>,
}

impl ProducerSettings {
    /// Defaults for `brokers`, `topic`: partition 0, 100,000 queued
    /// records, 5 ms linger.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        ProducerSettings {
            brokers: brokers.into(),
            topic: topic.into(),
            partition: 0,
            max_queued: 100_000,
            linger_ms: 5,
            extra: Vec::new(),
        }
    }
}

/// Delivery bookkeeping, updated from delivery reports (which run inside
/// `poll`, on the bridge's thread; atomics because librdkafka asks for a
/// `Sync` context).
#[derive(Default)]
pub struct DeliveryTracker {
    delivered: AtomicU64,
    last_delivered_seq: AtomicU64,
    failure: Mutex<Option<KafkaBridgeError>>,
}

impl DeliveryTracker {
    fn fail(&self, e: KafkaBridgeError) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e);
        }
    }

    fn take_failure(&self) -> Option<KafkaBridgeError> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl ClientContext for DeliveryTracker {
    fn error(&self, error: KafkaError, reason: &str) {
        // Only fatal errors stop the bridge (an idempotence violation, a
        // fenced producer); the others (a broker connection dropping) are
        // retried by librdkafka, and records that still fail come back as
        // failed deliveries.
        if matches!(error, KafkaError::Global(RDKafkaErrorCode::Fatal)) {
            self.fail(KafkaBridgeError::Delivery {
                seq: 0,
                reason: format!("fatal: {reason}"),
            });
        } else {
            tracing::warn!("librdkafka: {error}: {reason}");
        }
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = decode_key(m.key()) {
                    self.last_delivered_seq.fetch_max(s, Ordering::Relaxed);
                }
            }
            Err((e, m)) => self.fail(KafkaBridgeError::Delivery {
                seq: decode_key(m.key()).unwrap_or(0),
                reason: e.to_string(),
            }),
        }
    }
}

/// A snapshot of the producer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Records handed to librdkafka.
    pub produced: u64,
    /// Records the broker acknowledged (acks=all).
    pub delivered: u64,
    /// Highest global sequence acknowledged (0: none yet).
    pub last_delivered_seq: u64,
    /// Times `send` waited because `max_queued` records were in flight.
    pub queue_full_waits: u64,
}

/// The idempotent producer of one partition.
pub struct BridgeProducer {
    producer: BaseProducer<DeliveryTracker>,
    topic: String,
    partition: i32,
    produced: u64,
    queue_full_waits: u64,
}

impl BridgeProducer {
    /// Connects (lazily: librdkafka connects on first use) with
    /// `enable.idempotence=true`, `acks=all`, at most 5 requests in flight
    /// per connection (what idempotence keeps ordered), no compression.
    pub fn new(s: &ProducerSettings) -> Result<Self, KafkaBridgeError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &s.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("queue.buffering.max.messages", s.max_queued.max(1).to_string())
            .set("linger.ms", s.linger_ms.to_string())
            .set("batch.num.messages", "10000")
            .set("compression.codec", "none");
        for (k, v) in &s.extra {
            c.set(k, v);
        }
        let producer: BaseProducer<DeliveryTracker> = c.create_with_context(DeliveryTracker::default())?;
        Ok(BridgeProducer {
            producer,
            topic: s.topic.clone(),
            partition: s.partition,
            produced: 0,
            queue_full_waits: 0,
        })
    }

    /// Queues one record (key, headers, 100-byte payload). When librdkafka's
    /// queue is full it serves delivery reports until there is room: the
    /// in-flight count stays bounded and no record is dropped. Returns the
    /// first delivery failure seen so far, if any.
    pub fn send(&mut self, f: &RecordFields, msg: &[u8]) -> Result<(), KafkaBridgeError> {
        let key = encode_key(f.global_seq);
        let mut record = BaseRecord::to(&self.topic)
            .partition(self.partition)
            .key(&key[..])
            .payload(msg)
            .headers(f.headers());
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.queue_full_waits += 1;
                    self.producer.poll(Duration::from_millis(10));
                    self.check()?;
                }
                Err((e, _)) => {
                    return Err(KafkaBridgeError::Delivery {
                        seq: f.global_seq,
                        reason: e.to_string(),
                    })
                }
            }
        }
        self.produced += 1;
        self.check()
    }

    /// Serves delivery reports for up to `timeout`; returns the first
    /// delivery failure, if any.
    pub fn poll(&mut self, timeout: Duration) -> Result<(), KafkaBridgeError> {
        self.producer.poll(timeout);
        self.check()
    }

    fn check(&self) -> Result<(), KafkaBridgeError> {
        if let Some(e) = self.producer.context().take_failure() {
            return Err(e);
        }
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            return Err(KafkaBridgeError::Delivery {
                seq: 0,
                reason: format!("fatal {code:?}: {reason}"),
            });
        }
        Ok(())
    }

    /// Waits up to `timeout` for every queued record to be acknowledged.
    pub fn flush(&mut self, timeout: Duration) -> Result<(), KafkaBridgeError> {
        let r = self.producer.flush(timeout);
        self.check()?;
        match r {
            Ok(()) => Ok(()),
            Err(KafkaError::Flush(_)) => Err(KafkaBridgeError::FlushTimeout {
                in_flight: self.producer.in_flight_count(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Records produced and not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Counters so far.
    pub fn stats(&self) -> ProducerStats {
        let t = self.producer.context();
        ProducerStats {
            produced: self.produced,
            delivered: t.delivered.load(Ordering::Relaxed),
            last_delivered_seq: t.last_delivered_seq.load(Ordering::Relaxed),
            queue_full_waits: self.queue_full_waits,
        }
    }
}
