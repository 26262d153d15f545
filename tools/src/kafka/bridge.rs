//! The bridge's loop: feed consumer in, producer out.
//!
//! Start: read the partition's last key ([`read_last_key`]), resume the feed
//! consumer at the next sequence ([`resume_seq`]). Then, until told to stop,
//! `--to` is produced, or (with `until_end`) End of Session: poll the feed,
//! produce each delivered record in order, serve delivery reports. Exit:
//! flush, so every record produced is acknowledged before the bridge
//! reports success.

use super::error::KafkaBridgeError;
use super::producer::{BridgeProducer, ProducerSettings, ProducerStats};
use super::record::RecordFields;
use super::resume::{read_last_key, resume_seq, Resume};
use peregrine_feed::{ConsumerConfig, ConsumerStats, FeedConsumer, FeedRecord};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set to stop the bridge (it then flushes and returns).
pub type BridgeStop = Arc<AtomicBool>;

/// Everything the bridge needs.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    /// The feed consumer (its `from_seq` is replaced by the resume point).
    pub consumer: ConsumerConfig,
    /// The Kafka side.
    pub producer: ProducerSettings,
    /// First sequence when the partition is empty (default 1).
    pub from: Option<u64>,
    /// Last sequence to produce, then stop (`None`: no end).
    pub to: Option<u64>,
    /// Stop at the feed's End of Session (once everything before it is
    /// produced).
    pub until_end: bool,
    /// How long to wait for the broker when reading the partition's end,
    /// and for the exit flush.
    pub broker_timeout: Duration,
    /// Interval of the throughput log line (`tracing` info).
    pub report_every: Duration,
}

impl BridgeConfig {
    /// Defaults: no `from`/`to`, run until stopped, 30 s broker timeout,
    /// a throughput line every 5 s.
    pub fn new(consumer: ConsumerConfig, producer: ProducerSettings) -> Self {
        BridgeConfig {
            consumer,
            producer,
            from: None,
            to: None,
            until_end: false,
            broker_timeout: Duration::from_secs(30),
            report_every: Duration::from_secs(5),
        }
    }
}

/// Why the bridge stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The stop flag (SIGINT/SIGTERM).
    Stopped,
    /// `to` was produced (or the partition already held it).
    ReachedTo,
    /// End of Session, everything before it produced.
    EndOfSession,
}

/// What a bridge run did.
#[derive(Clone, Debug)]
pub struct BridgeStats {
    /// Where it started.
    pub resume: Resume,
    /// Next sequence it would have produced.
    pub next_seq: u64,
    /// Producer counters (after the exit flush).
    pub producer: ProducerStats,
    /// Feed consumer counters.
    pub consumer: Option<ConsumerStats>,
    /// From resume to the end of the flush.
    pub elapsed: Duration,
    /// Why it stopped.
    pub end: EndReason,
}

impl BridgeStats {
    /// Records acknowledged by the broker per second of the run.
    pub fn records_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.producer.delivered as f64 / s
        } else {
            0.0
        }
    }
}

/// The fields of a feed record that go in the key and headers.
pub fn record_fields(r: &FeedRecord) -> RecordFields {
    RecordFields {
        global_seq: r.global_seq,
        gateway: r.origin.gateway,
        session_index: r.origin.index,
        client_seq: r.client_seq,
        gateway_rx_ns: r.gateway_rx_ns,
        sequencer_ns: r.sequencer_ns,
    }
}

/// The bridge (a namespace for [`Bridge::run`]).
pub struct Bridge;

impl Bridge {
    /// Runs the bridge on this thread until `stop`, `cfg.to` or (with
    /// `until_end`) End of Session; flushes; returns its counters. Any
    /// delivery failure, feed error or flush timeout is an error: the
    /// records the partition holds are then still exactly `1..=last`, and a
    /// new bridge resumes after them.
    pub fn run(cfg: BridgeConfig, stop: &AtomicBool) -> Result<BridgeStats, KafkaBridgeError> {
        let mut run = BridgeRun::start(cfg)?;
        let end = loop {
            if stop.load(Ordering::Relaxed) {
                break EndReason::Stopped;
            }
            if let Some(end) = run.step()? {
                break end;
            }
        };
        run.finish(end)
    }
}

/// One bridge run, step by step: [`BridgeRun::start`] resumes from the
/// partition, [`BridgeRun::step`] moves records, [`BridgeRun::finish`]
/// flushes. Dropping a run without `finish` is what a crash does: records
/// librdkafka still queues are purged, never acknowledged.
pub struct BridgeRun {
    cfg: BridgeConfig,
    resume: Resume,
    producer: BridgeProducer,
    /// `None` when the partition already held `to`.
    consumer: Option<FeedConsumer>,
    next_seq: u64,
    to: u64,
    started: Instant,
    last_report: (Instant, u64),
}

impl BridgeRun {
    /// Reads the partition's last key, resumes the feed consumer after it
    /// (binding its socket) and creates the producer.
    pub fn start(cfg: BridgeConfig) -> Result<BridgeRun, KafkaBridgeError> {
        let p = &cfg.producer;
        let last = read_last_key(&p.brokers, &p.topic, p.partition, cfg.broker_timeout)?;
        let resume = resume_seq(last, cfg.from)?;
        tracing::info!(
            topic = %p.topic,
            partition = p.partition,
            last_in_topic = ?resume.last_in_topic,
            from_seq = resume.from_seq,
            "kafka bridge resuming"
        );
        let producer = BridgeProducer::new(p)?;
        let to = cfg.to.unwrap_or(u64::MAX);
        let consumer = if resume.from_seq > to {
            None
        } else {
            Some(FeedConsumer::new(ConsumerConfig {
                from_seq: resume.from_seq,
                ..cfg.consumer.clone()
            })?)
        };
        let now = Instant::now();
        Ok(BridgeRun {
            cfg,
            resume,
            producer,
            consumer,
            next_seq: resume.from_seq,
            to,
            started: now,
            last_report: (now, 0),
        })
    }

    /// Where this run resumed.
    pub fn resume(&self) -> Resume {
        self.resume
    }

    /// Next sequence this run will produce.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The producer's counters so far.
    pub fn producer_stats(&self) -> ProducerStats {
        self.producer.stats()
    }

    /// One round: the records the feed has now, in order, to the producer;
    /// delivery reports; the periodic throughput line. Waits up to 1 ms for
    /// input when there was none. `Some(reason)` when the run is complete.
    pub fn step(&mut self) -> Result<Option<EndReason>, KafkaBridgeError> {
        let Some(consumer) = self.consumer.as_mut() else {
            return Ok(Some(EndReason::ReachedTo));
        };
        let (to, producer, next_seq) = (self.to, &mut self.producer, &mut self.next_seq);
        let mut failure: Option<KafkaBridgeError> = None;
        let delivered = consumer.poll(&mut |r: &FeedRecord| {
            if failure.is_some() || r.global_seq > to {
                return;
            }
            debug_assert_eq!(r.global_seq, *next_seq, "the consumer delivers in order");
            match producer.send(&record_fields(r), &r.msg) {
                Ok(()) => *next_seq = r.global_seq + 1,
                Err(e) => failure = Some(e),
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        self.producer.poll(Duration::ZERO)?;
        if self.next_seq > self.to {
            return Ok(Some(EndReason::ReachedTo));
        }
        if self.cfg.until_end && consumer.end_of_session() {
            return Ok(Some(EndReason::EndOfSession));
        }
        if delivered == 0 {
            consumer.wait(Duration::from_millis(1))?;
        }
        if self.last_report.0.elapsed() >= self.cfg.report_every {
            let s = self.producer.stats();
            let rate = (s.delivered - self.last_report.1) as f64 / self.last_report.0.elapsed().as_secs_f64();
            tracing::info!(
                next_seq = self.next_seq,
                produced = s.produced,
                delivered = s.delivered,
                acked_seq = s.last_delivered_seq,
                in_flight = self.producer.in_flight(),
                records_per_sec = rate as u64,
                "kafka bridge"
            );
            self.last_report = (Instant::now(), s.delivered);
        }
        Ok(None)
    }

    /// Flushes (every produced record acknowledged, or an error) and
    /// returns the run's counters.
    pub fn finish(mut self, end: EndReason) -> Result<BridgeStats, KafkaBridgeError> {
        self.producer.flush(self.cfg.broker_timeout)?;
        Ok(BridgeStats {
            resume: self.resume,
            next_seq: self.next_seq,
            producer: self.producer.stats(),
            consumer: self.consumer.as_ref().map(FeedConsumer::stats),
            elapsed: self.started.elapsed(),
            end,
        })
    }
}
