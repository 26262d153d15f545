//! `peregrine kafka-bridge`: the sequenced feed into one Kafka partition,
//! exactly once across bridge restarts (see `peregrine_tools::kafka`).

use super::tail::FeedSourceArgs;
use anyhow::Context;
use clap::Args;
use peregrine_tools::kafka::{Bridge, BridgeConfig, ProducerSettings};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct KafkaBridgeArgs {
    #[command(flatten)]
    source: FeedSourceArgs,
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long)]
    brokers: String,
    /// Topic the stream goes to.
    #[arg(long)]
    topic: String,
    /// The one partition that carries the whole stream, in order.
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// First sequence when the partition is empty (otherwise the bridge
    /// resumes after the partition's last record).
    #[arg(long)]
    from: Option<u64>,
    /// Stop once this sequence is produced and acknowledged.
    #[arg(long)]
    to: Option<u64>,
    /// Stop at the feed's End of Session.
    #[arg(long)]
    until_end: bool,
    /// Most records in flight to the broker (librdkafka's queue).
    #[arg(long, default_value_t = 100_000)]
    max_queued: usize,
    /// librdkafka linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,
    /// Extra librdkafka producer property KEY=VALUE (repeatable).
    #[arg(long = "kafka-property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Broker wait when reading the partition's end and flushing at exit.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    broker_timeout: Duration,
    /// Interval of the throughput log line.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    report_every: Duration,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

pub fn run(a: KafkaBridgeArgs) -> anyhow::Result<()> {
    let producer = ProducerSettings {
        partition: a.partition,
        max_queued: a.max_queued,
        linger_ms: a.linger_ms,
        extra: a.properties.clone(),
        ..ProducerSettings::new(a.brokers.clone(), a.topic.clone())
    };
    let cfg = BridgeConfig {
        from: a.from,
        to: a.to,
        until_end: a.until_end,
        broker_timeout: a.broker_timeout,
        report_every: a.report_every,
        ..BridgeConfig::new(a.source.consumer_config(1)?, producer)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::Relaxed)).context("installing signal handler")?;
    let st = Bridge::run(cfg, &stop)?;
    println!(
        "kafka bridge: {}/{} resumed after {} at {}, produced {} acknowledged {} (last {}), next sequence {}, {:?}",
        a.topic,
        a.partition,
        st.resume.last_in_topic.map_or("nothing".into(), |l| l.to_string()),
        st.resume.from_seq,
        st.producer.produced,
        st.producer.delivered,
        st.producer.last_delivered_seq,
        st.next_seq,
        st.end
    );
    println!(
        "kafka bridge throughput {:.0} records/s over {:.2} s",
        st.records_per_sec(),
        st.elapsed.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn properties_are_key_value() {
        assert_eq!(
            super::parse_property("a.b=c=d").unwrap(),
            ("a.b".to_string(), "c=d".to_string())
        );
        assert!(super::parse_property("nokey").is_err());
    }
}
