//! `peregrine stat`'s source: the counters file of a running server shows
//! live values from another reader while the server runs.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_server::config::ServeConfig;
use peregrine_server::counters_file::read_counters;
use std::time::{Duration, Instant};

#[test]
fn counters_file_tracks_a_running_server() {
    let path = std::env::temp_dir().join(format!("peregrine-stat-test-{}.stats", std::process::id()));
    let journal = std::env::temp_dir().join(format!("peregrine-stat-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&journal);
    let cfg = ServeConfig {
        sessions: common::test_sessions(),
        udp: vec![lo()],
        idle: "yield".into(),
        counters_file: Some(path.clone()),
        journal: Some(journal.clone()),
        journal_mode: "durable".into(),
        journal_segment_size: 1 << 20,
        ..ServeConfig::default()
    };
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let s = udp_client();
    udp_login(&s, srv.udp[0], "STAT");
    for k in 0..25u64 {
        s.send_to(
            &mold(
                "STAT",
                1 + 4 * k,
                &[&echo(1, 1), &echo(2, 2), &echo(3, 3), &echo(4, 4)],
            ),
            srv.udp[0],
        )
        .unwrap();
    }
    assert_eq!(recv_blocks(&s, 100, Duration::from_secs(5)).len(), 100);
    let value = |block: &str, name: &str| -> Option<u64> {
        let snap = read_counters(&path).ok()?;
        let (_, c) = snap.blocks.iter().find(|(t, _)| t.starts_with(block))?;
        c.iter().find(|(n, _)| n == name).map(|p| p.1)
    };
    let until = Instant::now() + Duration::from_secs(5);
    while value("sequencer", "sequenced") != Some(100) {
        assert!(
            Instant::now() < until,
            "sequenced never reached 100: {:?}",
            value("sequencer", "sequenced")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(value("udp gateway 0", "accepted"), Some(100));
    assert_eq!(
        value("udp gateway 0", "port_rx_packets"),
        Some(26),
        "the login and 25 data packets"
    );
    assert_eq!(value("udp gateway 0", "logins"), Some(1));
    assert!(
        value("sequencer", "idle_loops").unwrap() > 0,
        "the loop counters move while running"
    );
    assert_eq!(value("sequencer", "journaled"), Some(100));
    assert_eq!(
        value("sequencer", "journal_durable_seq"),
        Some(100),
        "durable mode: all flushed"
    );
    assert_eq!(value("sequencer", "journal_lag"), Some(0));
    assert_eq!(value("sequencer", "journal_bytes"), Some(100 * 144));
    drop(srv);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&journal);
}
