//! The journal behind a real server: records every sequenced message, and a
//! restart recovers it, continues the global sequence gap-free and rebuilds
//! the matching engine's exact state.

mod common;

use common::*;
use peregrine_tools::client::{self, flow::FlowKind, ClientConfig, Mode, TransportKind};
use peregrine_tools::config::{AppKind, ServeConfig};
use peregrine_tools::server::{self, ServerApp};
use std::time::Duration;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("peregrine-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run_orders(mode: &str, dir: &std::path::Path) -> (u64, u64, u64, u64) {
    let cfg = ServeConfig {
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
