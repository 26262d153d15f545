//! `peregrine kafka-mock` and `peregrine kafka-check`: a Kafka cluster for
//! scripts (librdkafka's mock brokers, in this process, on 127.0.0.1) and
//! the check that a partition holds exactly the records `1..=N`.
//!
//! The mock keeps only about the newest 5 MB of each partition (a limit
//! built into librdkafka's mock broker), roughly 25,000 bridge records: a
//! longer run is checked with `kafka-check --follow`, started before the
//! bridge, which reads the partition as it is written.

use anyhow::Context;
use clap::Args;
use peregrine_tools::kafka::{check_partition, follow_partition, MockKafka};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct KafkaMockArgs {
    /// Number of mock brokers.
    #[arg(long, default_value_t = 1)]
    brokers: i32,
    /// Topic to create (with --partitions partitions) before announcing.
    #[arg(long, default_value = "peregrine")]
    topic: String,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Write the bootstrap servers (host:port,...) to this file once the
    /// brokers listen (written to a temporary name, then renamed, so a
    /// reader never sees it half written).
    #[arg(long)]
    bootstrap_file: Option<PathBuf>,
}

/// Runs the mock cluster until SIGINT/SIGTERM.
pub fn run_mock(a: KafkaMockArgs) -> anyhow::Result<()> {
    let cluster = MockKafka::start(a.brokers)?;
    cluster.create_topic(&a.topic, a.partitions)?;
    let servers = cluster.bootstrap_servers();
    if let Some(f) = &a.bootstrap_file {
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, format!("{servers}\n")).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, f).with_context(|| format!("renaming to {}", f.display()))?;
    }
    println!(
        "kafka mock: {} broker(s) at {servers}, topic {} ({} partition(s))",
        a.brokers, a.topic, a.partitions
    );
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::Relaxed)).context("installing signal handler")?;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("kafka mock: stopped");
    Ok(())
}

#[derive(Args)]
pub struct KafkaCheckArgs {
    /// Bootstrap servers, host:port[,host:port...].
    #[arg(long)]
    brokers: String,
    /// Topic.
    #[arg(long)]
    topic: String,
    /// Partition.
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// The partition must hold exactly this many records, keys 1..=N in
    /// order.
    #[arg(long)]
    expect: u64,
    /// Follow the partition from offset 0 as it is written until the
    /// record with key N arrives (then --grace longer, then compare the
    /// high watermark with N), instead of reading what it holds now. For
    /// brokers that delete old records early (the mock keeps ~5 MB).
    #[arg(long)]
    follow: bool,
    /// With --follow: how long to keep reading after key N.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// How long to wait for the broker in all (with --follow: for key N).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Reads the whole partition; exits non-zero unless it is exactly `1..=N`.
pub fn run_check(a: KafkaCheckArgs) -> anyhow::Result<()> {
    let rep = if a.follow {
        follow_partition(&a.brokers, &a.topic, a.partition, a.expect, a.grace, a.timeout)?
    } else {
        check_partition(&a.brokers, &a.topic, a.partition, a.timeout)?
    };
    for p in &rep.problems {
        println!("problem: {p}");
    }
    println!(
        "{}/{}: {} records, keys {}..={}, {} duplicate(s), {} missing, {} malformed",
        a.topic,
        a.partition,
        rep.records,
        rep.first_key.map_or("-".into(), |k| k.to_string()),
        rep.last_key.map_or("-".into(), |k| k.to_string()),
        rep.duplicates,
        rep.missing,
        rep.malformed
    );
    anyhow::ensure!(
        rep.is_exact(a.expect),
        "partition is not exactly the records 1..={}",
        a.expect
    );
    println!("exact: records 1..={} in order, each once", a.expect);
    Ok(())
}
