//! `peregrine stat --watch ... --json` as a script uses it: the binary
//! reading a live server's counters file, one JSON object per refresh, with
//! rates per second from the second refresh on.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_server::config::ServeConfig;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn stat_watch_json_streams_counters_and_rates() {
    let path = std::env::temp_dir().join(format!("peregrine-stat-watch-{}.stats", std::process::id()));
    let cfg = ServeConfig {
        counters_file: Some(path.clone()),
        ..server_config(1, 0)
    };
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let s = udp_client();
    udp_login(&s, srv.udp[0], "STAT");
    s.send_to(
        &mold("STAT", 1, &[&echo(1, 1), &echo(2, 2), &echo(3, 3)]),
        srv.udp[0],
    )
    .unwrap();
    assert_eq!(recv_blocks(&s, 3, Duration::from_secs(5)).len(), 3);
    std::thread::sleep(Duration::from_millis(20)); // published every 1 ms

    let mut child = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["stat", "--json", "--watch", "100ms", "--file"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("peregrine runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let second: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let _ = child.kill();
    let _ = child.wait();

    let block = |v: &serde_json::Value, title: &str| -> serde_json::Value {
        v["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["title"].as_str().unwrap().starts_with(title))
            .unwrap_or_else(|| panic!("no block {title} in {v}"))
            .clone()
    };
    assert_eq!(
        first["pid"],
        std::process::id(),
        "the server runs in this test process"
    );
    assert_eq!(block(&first, "sequencer")["counters"]["sequenced"], 3);
    assert_eq!(block(&first, "udp gateway 0")["counters"]["accepted"], 3);
    assert!(
        block(&first, "sequencer")["rates_per_s"]
            .as_object()
            .unwrap()
            .is_empty(),
        "no rates before a second refresh"
    );
    let rates = block(&second, "sequencer")["rates_per_s"].clone();
    assert_eq!(
        rates["sequenced"], 0.0,
        "nothing sequenced between refreshes: {rates}"
    );
    assert!(
        rates["idle_loops"].as_f64().unwrap() > 0.0,
        "the loop runs: {rates}"
    );
    drop(srv);
    let _ = std::fs::remove_file(&path);
}
