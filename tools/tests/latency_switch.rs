//! The latency recording switch: with `latency_histograms = false` replies
//! flow as usual but every latency histogram in the counters file stays
//! empty; with it on (the default) each reply sent is one sample. Both
//! run in the same test, as the A/B that measures recording's cost would.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_server::config::ServeConfig;
use peregrine_server::counters_file::{read_counters, read_latency, LatencySnapshot};
use std::path::Path;
use std::time::{Duration, Instant};

const N: u64 = 64;

#[test]
fn recording_off_leaves_the_histograms_empty_while_replies_flow() {
    let off = echoes_then_latency(false, "PG00000005");
    assert_eq!(
        off.len(),
        2,
        "one latency block per gateway, one for the sequencer"
    );
    for l in &off {
        assert_eq!(
            (l.since_start.count, l.since_start.buckets.iter().sum::<u64>()),
            (0, 0),
            "{}: recording is off",
            l.title
        );
        assert_eq!(
            (l.since_start.sum_ns, l.since_start.max_ns, l.interval.count),
            (0, 0, 0)
        );
    }
}

#[test]
fn recording_on_counts_every_reply() {
    let on = echoes_then_latency(true, "PG00000006");
    assert_eq!(on.len(), 2);
    for l in &on {
        assert_eq!(l.since_start.count, N, "{}", l.title);
        assert_eq!(l.since_start.buckets.iter().sum::<u64>(), N, "{}", l.title);
    }
}

/// The gateway's `tx_replies` counter in the counters file.
fn tx_replies(path: &Path) -> Option<u64> {
    let snap = read_counters(path).ok()?;
    let (_, c) = snap.blocks.iter().find(|(t, _)| t.starts_with("udp gateway 0"))?;
    c.iter().find(|(n, _)| n == "tx_replies").map(|p| p.1)
}

/// Starts a server with recording `on` or off, sends `N` echoes, waits
/// until they are all answered and the latency blocks have been published
/// again since, and returns what the counters file then shows.
fn echoes_then_latency(on: bool, session: &str) -> Vec<LatencySnapshot> {
    let path = std::env::temp_dir().join(format!(
        "peregrine-latency-switch-{on}-{}.stats",
        std::process::id()
    ));
    let cfg = ServeConfig {
        sessions: test_sessions(),
        udp: vec![lo()],
        idle: "yield".into(),
        counters_file: Some(path.clone()),
        latency_histograms: on,
        ..ServeConfig::default()
    };
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let s = udp_client();
    udp_login(&s, srv.udp[0], session);
    for k in 0..N / 4 {
        let c = 1 + 4 * k;
        s.send_to(
            &mold(
                session,
                c,
                &[&echo(c, 1), &echo(c + 1, 2), &echo(c + 2, 3), &echo(c + 3, 4)],
            ),
            srv.udp[0],
        )
        .unwrap();
    }
    assert_eq!(
        recv_blocks(&s, N as usize, Duration::from_secs(5)).len(),
        N as usize
    );
    let until = Instant::now() + Duration::from_secs(5);
    while tx_replies(&path) != Some(N) {
        assert!(Instant::now() < until, "tx_replies {:?}", tx_replies(&path));
        std::thread::sleep(Duration::from_millis(10));
    }
    // Every reply is out and counted: the next publish of each latency
    // block holds everything that will ever be recorded for them.
    let before: Vec<u64> = read_latency(&path)
        .unwrap()
        .iter()
        .map(|l| l.published_ns)
        .collect();
    let until = Instant::now() + Duration::from_secs(5);
    let lat = loop {
        let l = read_latency(&path).unwrap();
        if l.len() == before.len() && l.iter().zip(&before).all(|(l, b)| l.published_ns > *b) {
            break l;
        }
        assert!(
            Instant::now() < until,
            "the latency blocks were never published again"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(srv);
    let _ = std::fs::remove_file(&path);
    lat
}
