//! Live reply latency: a running server's gateways measure each reply's
//! receive-to-transmit time and publish the histograms in the counters
//! file, where another reader finds exactly the replies it was sent.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_server::config::ServeConfig;
use peregrine_server::counters_file::{read_counters, read_latency};
use peregrine_tools::exporter::Exporter;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn each_reply_sent_is_one_latency_sample_in_the_counters_file() {
    latency_of_echoes("shared", "PG00000007");
}

#[test]
fn each_gateway_thread_publishes_its_own_latency_in_the_dedicated_layout() {
    latency_of_echoes("dedicated", "PG00000008");
}

fn latency_of_echoes(layout: &str, session: &str) {
    const N: u64 = 200;
    let path = std::env::temp_dir().join(format!(
        "peregrine-live-latency-{layout}-{}.stats",
        std::process::id()
    ));
    let cfg = ServeConfig {
        layout: layout.into(),
        sessions: common::test_sessions(),
        udp: vec![lo()],
        idle: "yield".into(),
        counters_file: Some(path.clone()),
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
    let sent = || -> Option<u64> {
        let snap = read_counters(&path).ok()?;
        let (_, c) = snap.blocks.iter().find(|(t, _)| t.starts_with("udp gateway 0"))?;
        c.iter().find(|(n, _)| n == "tx_replies").map(|p| p.1)
    };
    let until = Instant::now() + Duration::from_secs(5);
    let lat = loop {
        let l = read_latency(&path).unwrap();
        if l.iter().all(|l| l.since_start.count == N) && sent() == Some(N) {
            break l;
        }
        assert!(
            Instant::now() < until,
            "latency counts never reached {N}: {:?}, tx_replies {:?}",
            l.iter().map(|l| l.since_start.count).collect::<Vec<_>>(),
            sent()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        lat.len(),
        2,
        "one latency block per gateway, one for the sequencer"
    );
    let g = &lat[0];
    let q = &lat[1];
    assert_eq!(q.title, "sequencer");
    assert_eq!(
        q.since_start.buckets.iter().sum::<u64>(),
        N,
        "one readiness sample per reply"
    );
    assert!(q.since_start.max_ns < 1_000_000_000 && q.since_start.quantile(0.5) > 0);
    assert!(g.title.starts_with("udp gateway 0"), "{}", g.title);
    let h = &g.since_start;
    assert_eq!(h.buckets.iter().sum::<u64>(), N, "every sample in a bucket");
    assert_eq!(h.out_of_range, 0);
    let (p50, p99, p999) = (h.quantile(0.5), h.quantile(0.99), h.quantile(0.999));
    assert!(p50 > 0, "p50 {p50}");
    assert!(h.max_ns < 1_000_000_000, "max {} ns", h.max_ns);
    assert!(
        p50 <= p99 && p99 <= p999 && p999 <= h.max_ns,
        "{p50} {p99} {p999} {}",
        h.max_ns
    );
    assert!(h.sum_ns >= N * p50 / 2 && h.sum_ns <= N * h.max_ns);
    assert!(
        g.interval_ns > 0 && g.interval_ns < 10_000_000_000,
        "interval {}",
        g.interval_ns
    );
    assert!(g.interval.count <= N);
    // Nothing more is sent: a later interval is empty, since start is not.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let l = read_latency(&path).unwrap();
        if l.iter().all(|l| l.interval.count == 0) {
            assert!(l.iter().all(|l| l.since_start.count == N));
            break;
        }
        assert!(Instant::now() < until, "the interval view never emptied");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(srv);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn stat_shows_percentiles_per_gateway_in_text_and_json() {
    let path = std::env::temp_dir().join(format!(
        "peregrine-live-latency-stat-{}.stats",
        std::process::id()
    ));
    let cfg = ServeConfig {
        counters_file: Some(path.clone()),
        ..server_config(1, 0)
    };
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let s = udp_client();
    udp_login(&s, srv.udp[0], "PG00000009");
    s.send_to(
        &mold("PG00000009", 1, &[&echo(1, 1), &echo(2, 2), &echo(3, 3)]),
        srv.udp[0],
    )
    .unwrap();
    assert_eq!(recv_blocks(&s, 3, Duration::from_secs(5)).len(), 3);
    let until = Instant::now() + Duration::from_secs(5);
    while read_latency(&path).unwrap().first().map(|l| l.since_start.count) != Some(3) {
        assert!(Instant::now() < until, "latency never published");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stat = |json: bool| -> String {
        let mut c = Command::new(env!("CARGO_BIN_EXE_peregrine"));
        c.args(["stat", "--once", "--file"]).arg(&path);
        if json {
            c.arg("--json");
        }
        let out = c.output().expect("peregrine runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = stat(false);
    assert!(text.contains("reply latency"), "{text}");
    assert!(text.contains(" sequencer\n"), "the sequencer's row: {text}");
    assert!(text.contains("p99.9") && text.contains("since start"), "{text}");
    let v: serde_json::Value = serde_json::from_str(stat(true).trim()).unwrap();
    let l = &v["latency"][0];
    assert!(l["title"].as_str().unwrap().starts_with("udp gateway 0"), "{v}");
    let since = &l["since_start"];
    assert_eq!(since["count"], 3, "{v}");
    let q = |k: &str| since[k].as_u64().unwrap();
    assert!(q("p50_ns") > 0 && q("p50_ns") <= q("p99_ns") && q("p99_ns") <= q("p999_ns"));
    assert!(q("p999_ns") <= q("max_ns") && q("max_ns") < 1_000_000_000, "{v}");
    assert!(l["last_interval"]["count"].as_u64().unwrap() <= 3);
    assert!(l["interval_ns"].as_u64().unwrap() > 0);
    drop(srv);
    let _ = std::fs::remove_file(&path);
}

/// `promtool check metrics` on `text`: Some((ok, what it said)) when
/// promtool ran.
fn promtool(text: &str) -> Option<(bool, String)> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(text.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), said))
}

#[test]
fn the_exporter_shows_latency_as_a_prometheus_histogram_that_promtool_accepts() {
    let path = std::env::temp_dir().join(format!("peregrine-live-latency-exp-{}.stats", std::process::id()));
    let cfg = ServeConfig {
        counters_file: Some(path.clone()),
        ..server_config(1, 1)
    };
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let s = udp_client();
    udp_login(&s, srv.udp[0], "PG00000010");
    s.send_to(
        &mold(
            "PG00000010",
            1,
            &[&echo(1, 1), &echo(2, 2), &echo(3, 3), &echo(4, 4)],
        ),
        srv.udp[0],
    )
    .unwrap();
    assert_eq!(recv_blocks(&s, 4, Duration::from_secs(5)).len(), 4);
    let exporter = Exporter {
        counters_file: path.clone(),
        config: vec![],
    };
    let udp = format!("gateway=\"0\",transport=\"udp\",addr=\"{}\"", srv.udp[0]);
    let count = format!("peregrine_gateway_reply_latency_seconds_count{{{udp}}} 4\n");
    let until = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let (_, body) = exporter.render(false).unwrap();
        if body.contains(&count) {
            break body;
        }
        assert!(Instant::now() < until, "no latency count of 4:\n{body}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        body.matches("# TYPE peregrine_gateway_reply_latency_seconds histogram")
            .count(),
        1
    );
    assert!(
        body.contains(&format!(
            "peregrine_gateway_reply_latency_seconds_bucket{{{udp},le=\"+Inf\"}} 4\n"
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "peregrine_gateway_reply_latency_seconds_bucket{{{udp},le=\"1\"}} 4\n"
        )),
        "all four below 1 s: {body}"
    );
    assert!(
        body.contains("peregrine_gateway_reply_latency_seconds_count{gateway=\"1\",transport=\"tcp\""),
        "every gateway has its histogram: {body}"
    );
    assert!(
        body.contains("# TYPE peregrine_sequencer_reply_ready_latency_seconds histogram\n"),
        "{body}"
    );
    let (_, om) = exporter.render(true).unwrap();
    assert!(
        om.contains("# TYPE peregrine_gateway_reply_latency_seconds histogram\n"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    match promtool(&body) {
        Some((ok, said)) => assert!(ok, "promtool check metrics refused:\n{said}\n{body}"),
        None if std::env::var_os("CI").is_some() => panic!("promtool is not installed"),
        None => eprintln!("promtool not installed: exposition not linted"),
    }
    drop(srv);
    let _ = std::fs::remove_file(&path);
}
