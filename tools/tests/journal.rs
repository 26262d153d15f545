//! The journal behind a real server: records every sequenced message, and a
//! restart recovers it, continues the global sequence gap-free and rebuilds
//! the matching engine's exact state.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_server::config::{AppKind, ServeConfig};
use peregrine_server::serve::{self as server, ServerApp};
use peregrine_tools::client::{self, flow::FlowKind, ClientConfig, Mode, TransportKind};
use std::time::Duration;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("peregrine-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run_orders(mode: &str, dir: &std::path::Path) -> (u64, u64, u64, u64) {
    let cfg = ServeConfig {
        sessions: common::test_sessions(),
        udp: vec![lo()],
        idle: "yield".into(),
        app: AppKind::Match,
        journal: Some(dir.to_path_buf()),
        journal_mode: mode.into(),
        journal_segment_size: 1 << 20,
        ..ServeConfig::default()
    };
    let srv = server::start(&cfg).unwrap();
    let first = srv.first_seq;
    let r = client::run(&ClientConfig {
        secret: common::SECRET.into(),
        sessions: 3,
        mode: Mode::Rate(20_000.0),
        batch: 2,
        duration: Duration::from_millis(700),
        warmup: Duration::ZERO,
        flow: FlowKind::Orders,
        keep_global_seqs: true,
        ..ClientConfig::new(TransportKind::Udp, srv.udp[0])
    })
    .unwrap();
    assert_eq!(r.lost(), 0);
    let (report, app) = srv.stop().unwrap();
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert_eq!(
        report.sequencer.journaled, r.sent,
        "every sequenced message journaled"
    );
    let ServerApp::Match(m) = app else {
        panic!("match app")
    };
    (
        first,
        report.next_seq,
        m.engine().state_hash(),
        report.journal_durable_seq,
    )
}

#[test]
fn restart_continues_the_sequence_and_rebuilds_engine_state() {
    for mode in ["durable", "async"] {
        let dir = temp_dir(mode);
        let (first1, next1, hash1, durable1) = run_orders(mode, &dir);
        assert_eq!(first1, 1);
        if mode == "durable" {
            assert_eq!(durable1, next1 - 1, "durable: everything acked is flushed");
        }

        // Restart on the same journal, no traffic: state identical.
        let cfg = ServeConfig {
            sessions: common::test_sessions(),
            udp: vec![lo()],
            idle: "yield".into(),
            app: AppKind::Match,
            journal: Some(dir.clone()),
            journal_mode: mode.into(),
            journal_segment_size: 1 << 20,
            ..ServeConfig::default()
        };
        let srv = server::start(&cfg).unwrap();
        assert_eq!(
            srv.first_seq, next1,
            "{mode}: the sequence continues where it stopped"
        );
        let (report, app) = srv.stop().unwrap();
        assert_eq!(report.next_seq, next1);
        let ServerApp::Match(m) = app else { panic!() };
        assert_eq!(
            m.engine().state_hash(),
            hash1,
            "{mode}: replay rebuilds the identical book"
        );

        // More traffic after the restart keeps numbering gap-free.
        let (first2, next2, _, _) = run_orders(mode, &dir);
        assert_eq!(first2, next1);
        assert!(next2 > next1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// After a restart the dedup state and reply sequences come back from the
/// journal: a client resumes at the right client sequence, a retransmitted
/// message gets its original reply (never sequenced twice), and reply
/// numbering continues.
#[test]
fn restart_restores_sessions_dedup_state_and_reply_sequences() {
    let dir = temp_dir("sessions");
    let cfg = ServeConfig {
        journal: Some(dir.clone()),
        journal_mode: "durable".into(),
        journal_segment_size: 1 << 20,
        ..server_config(1, 1)
    };
    let srv = server::start(&cfg).unwrap();
    let s = udp_client();
    assert_eq!(udp_login(&s, srv.udp[0], "DEDUP"), (1, 1));
    let blocks: Vec<[u8; 100]> = (1..=5).map(|k| echo(k, 10 * k)).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    s.send_to(&mold("DEDUP", 1, &refs), srv.udp[0]).unwrap();
    let before = recv_blocks(&s, 5, Duration::from_secs(5));
    assert_eq!(before.len(), 5);
    let mut tcp = SoupClient::login(srv.tcp[0], "TAKER");
    tcp.send_message(&echo(1, 1));
    tcp.next_reply(Duration::from_secs(5)).expect("tcp ack");
    drop(tcp);
    srv.stop().unwrap();

    let srv = server::start(&cfg).unwrap();
    assert_eq!(srv.first_seq, 7);
    let s = udp_client(); // a restarted client: new address
    assert_eq!(
        udp_login(&s, srv.udp[0], "DEDUP"),
        (6, 6),
        "the session resumes at client sequence 6, reply sequence 6"
    );
    // Message 3 again: its original reply, byte for byte, nothing sequenced.
    s.send_to(&mold("DEDUP", 3, &[&blocks[2]]), srv.udp[0]).unwrap();
    let again = recv_blocks(&s, 1, Duration::from_secs(5));
    assert_eq!(again, vec![before[2]]);
    // New message 6: sequenced as global 7, reply sequence 6.
    s.send_to(&mold("DEDUP", 6, &[&echo(6, 60)]), srv.udp[0]).unwrap();
    let r = recv_blocks(&s, 1, Duration::from_secs(5));
    assert_eq!(r[0].0, 6);
    assert_eq!(as_ack(&r[0].1).unwrap().global_seq.get(), 7);
    // The TCP session resumes too: a re-login asking from reply 1 gets the
    // reply from before the restart, and its next message is client seq 2.
    let (mut tcp, answer) = SoupClient::try_login(srv.tcp[0], "TAKER", SECRET, 1);
    assert_eq!(answer.map(|a| a.0), Some(b'A'));
    let old = tcp.next_reply(Duration::from_secs(5)).expect("replayed");
    assert_eq!(as_ack(&old).unwrap().global_seq.get(), 6);
    tcp.send_message(&echo(2, 2));
    let new = tcp.next_reply(Duration::from_secs(5)).expect("new ack");
    assert_eq!(as_ack(&new).unwrap().client_seq.get(), 2);
    let (report, _) = srv.stop().unwrap();
    assert_eq!(report.sequencer.sequenced, 2, "only the two new messages");
    let _ = std::fs::remove_dir_all(&dir);
}
