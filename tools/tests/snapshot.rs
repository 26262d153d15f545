//! State snapshots of a real server's journal: a snapshot in the middle
//! plus the journal after it rebuilds exactly the state a full replay does
//! (engine state hash and every session), the end snapshot matches what
//! the server itself held, and damaged snapshot files are typed errors.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_journal::Journal;
use peregrine_server::config::{AppKind, ServeConfig};
use peregrine_server::serve::{self as server, ServerApp};
use peregrine_server::snapshot::{
    replay_journal_to, restore_state, snapshot_journal, ReplayedState, StateSnapshot, StateSnapshotError,
};
use peregrine_tools::client::{self, flow::FlowKind, ClientConfig, Mode, TransportKind};
use std::time::Duration;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("peregrine-test-snapshot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs a matching server with a journal on loopback (one UDP and one TCP
/// gateway), sends an order flow and a few TCP echoes, stops it; returns
/// its config (with the journal) and its final engine state hash.
fn run_server(dir: &std::path::Path) -> (ServeConfig, u64, u64) {
    let cfg = ServeConfig {
        app: AppKind::Match,
        journal: Some(dir.join("journal")),
        journal_mode: "durable".into(),
        journal_segment_size: 1 << 20,
        ..server_config(1, 1)
    };
    let srv = server::start(&cfg).unwrap();
    let mut tcp = SoupClient::login(srv.tcp[0], "TAKER");
    for k in 1..=3 {
        tcp.send_message(&echo(k, k));
        tcp.next_reply(Duration::from_secs(5)).expect("tcp ack");
    }
    let r = client::run(&ClientConfig {
        secret: SECRET.into(),
        sessions: 3,
        mode: Mode::Rate(20_000.0),
        batch: 2,
        duration: Duration::from_millis(500),
        warmup: Duration::ZERO,
        flow: FlowKind::Orders,
        ..ClientConfig::new(TransportKind::Udp, srv.udp[0])
    })
    .unwrap();
    assert_eq!(r.lost(), 0);
    drop(tcp);
    let (report, app) = srv.stop().unwrap();
    assert!(report.failure.is_none(), "{:?}", report.failure);
    let ServerApp::Match(m) = app else {
        panic!("match app")
    };
    (cfg, m.engine().state_hash(), report.next_seq - 1)
}

#[test]
fn middle_snapshot_plus_the_rest_of_the_journal_equals_a_full_replay() {
    let dir = temp_dir("middle");
    let (cfg, server_hash, last) = run_server(&dir);
    let journal = cfg.journal.clone().unwrap();
    assert!(last > 100, "the flow journaled {last} records");

    // A full replay, and the end snapshot, match what the server held.
    let full = replay_journal_to(&cfg, &journal, None).unwrap();
    assert_eq!(full.last_seq, last);
    assert_eq!(full.state_hash(), Some(server_hash));
    let end = snapshot_journal(&cfg, &journal, None).unwrap();
    assert_eq!(end.last_seq, last);
    let sessions: usize = full.sessions.iter().map(|t| t.len()).sum();
    assert_eq!(sessions, 4, "three UDP sessions and one TCP session");
    assert!(
        !full.sessions[1].is_empty(),
        "the TCP gateway's session is in gateway 1"
    );

    // The middle snapshot, through a file.
    let mid = last / 2;
    let path = dir.join("mid.snap");
    snapshot_journal(&cfg, &journal, Some(mid))
        .unwrap()
        .write_atomic(&path)
        .unwrap();
    let read = StateSnapshot::read(&path).unwrap();
    assert_eq!(read.last_seq, mid);
    assert_ne!(read, end);

    // Restore it and replay only the journal after it.
    let mut resumed = ReplayedState::restore(&cfg, &read).unwrap();
    assert_ne!(resumed.state_hash(), full.state_hash());
    let rec = Journal::open_read_only(&journal).unwrap();
    let applied = resumed.replay(rec.records()).unwrap();
    assert_eq!(applied, last - mid, "records up to the snapshot are skipped");
    assert_eq!(resumed.last_seq, last);
    assert_eq!(resumed.state_hash(), Some(server_hash));
    assert_eq!(resumed.session_states(), full.session_states());
    for id in 0..full.directory.len() as u32 {
        assert_eq!(
            resumed.directory.owner(id),
            full.directory.owner(id),
            "session {id} owner"
        );
    }
    // The replayed state carries no market-data position (only the
    // snapshot command derives it); everything else is the same bytes.
    assert_eq!(
        resumed.snapshot(),
        StateSnapshot {
            market_data_blocks: None,
            ..end.clone()
        },
        "same state as the end snapshot"
    );
    // The positions are the feed's derivation over the same records.
    let position = |at: u64| {
        let mut b =
            peregrine_server::market_data::MarketDataBuilder::new(&peregrine_engine::EngineConfig::sample())
                .unwrap();
        b.catch_up(rec.records().take_while(|r| r.global_seq <= at));
        b.blocks_emitted()
    };
    assert_eq!(end.market_data_blocks, Some(position(last)));
    assert_eq!(read.market_data_blocks, Some(position(mid)));
    assert!(position(mid) > 0 && position(mid) < position(last));

    // The library entry a server would use at start.
    let (app, per_gateway) = restore_state(&cfg, &end).unwrap();
    let ServerApp::Match(m) = app else {
        panic!("match app")
    };
    assert_eq!(m.engine().state_hash(), server_hash);
    assert_eq!(per_gateway, full.session_states());

    // Records that skip ahead of the state are refused.
    let mut gap = ReplayedState::restore(&cfg, &read).unwrap();
    let err = gap
        .replay(rec.records().filter(|r| r.global_seq != mid + 1))
        .unwrap_err();
    assert!(matches!(err, StateSnapshotError::Gap { .. }), "{err}");
    assert!(matches!(
        snapshot_journal(&cfg, &journal, Some(last + 1)),
        Err(StateSnapshotError::NotInJournal { .. })
    ));

    // `peregrine snapshot --inspect` reads the file.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .arg("snapshot")
        .arg("--inspect")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("last sequence {mid}")), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_snapshot_files_are_typed_errors() {
    let dir = temp_dir("damaged");
    let (cfg, _, last) = run_server(&dir);
    let journal = cfg.journal.clone().unwrap();
    let path = dir.join("state.snap");
    snapshot_journal(&cfg, &journal, Some(last / 3))
        .unwrap()
        .write_atomic(&path)
        .unwrap();
    let good = std::fs::read(&path).unwrap();
    assert!(StateSnapshot::read(&path).is_ok());

    for at in [0, 9, 20, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let err = StateSnapshot::read(&path).unwrap_err();
        assert!(
            matches!(
                err,
                StateSnapshotError::BadMagic
                    | StateSnapshotError::UnsupportedVersion(_)
                    | StateSnapshotError::Checksum { .. }
            ),
            "flip at {at}: {err}"
        );
    }
    for cut in [0, 5, 12, good.len() / 2, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).unwrap();
        let err = StateSnapshot::read(&path).unwrap_err();
        assert!(
            matches!(
                err,
                StateSnapshotError::Truncated { .. } | StateSnapshotError::Checksum { .. }
            ),
            "cut at {cut}: {err}"
        );
    }
    // A consistent file under another configuration is refused, typed.
    let snapshot = StateSnapshot::decode(&good).unwrap();
    let echo_cfg = ServeConfig {
        app: AppKind::Echo,
        ..cfg.clone()
    };
    assert!(matches!(
        restore_state(&echo_cfg, &snapshot),
        Err(StateSnapshotError::AppMismatch { .. })
    ));
    let mut other_engine = cfg.clone();
    let mut engine = peregrine_engine::EngineConfig::sample();
    engine.max_orders = 1000;
    other_engine.engine = Some(engine);
    assert!(matches!(
        restore_state(&other_engine, &snapshot),
        Err(StateSnapshotError::Engine(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The server config `run_server` uses, as a TOML file for the binary.
fn config_file(cfg: &ServeConfig, path: &std::path::Path) {
    let mut toml = String::from("udp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\napp = \"match\"\n");
    toml.push_str(&format!(
        "journal = {:?}\n",
        cfg.journal.as_ref().unwrap().display().to_string()
    ));
    for name in NAMES {
        toml.push_str(&format!("[[sessions]]\nname = {name:?}\nsecret = {SECRET:?}\n"));
    }
    toml.push_str(&format!(
        "[[sessions]]\nprefix = \"PG\"\ncount = 16\nsecret = {SECRET:?}\n"
    ));
    std::fs::write(path, toml).unwrap();
}

#[test]
fn the_snapshot_command_writes_what_the_library_builds() {
    let dir = temp_dir("command");
    let (cfg, server_hash, last) = run_server(&dir);
    let journal = cfg.journal.clone().unwrap();
    let config = dir.join("server.toml");
    config_file(&cfg, &config);
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
            .arg("snapshot")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mid = last / 2;
    let mid_path = dir.join("mid.snap");
    let mid_text = run(&[
        "--journal".as_ref(),
        journal.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
        "--at".as_ref(),
        mid.to_string().as_ref(),
        "--out".as_ref(),
        mid_path.as_os_str(),
    ]);
    assert!(mid_text.contains(&format!("last sequence {mid}")), "{mid_text}");
    assert_eq!(
        std::fs::read(&mid_path).unwrap(),
        snapshot_journal(&cfg, &journal, Some(mid)).unwrap().encode()
    );
    let end_path = dir.join("end.snap");
    let end_text = run(&[
        "--journal".as_ref(),
        journal.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        end_path.as_os_str(),
    ]);
    assert!(end_text.contains(&format!("last sequence {last}")), "{end_text}");
    assert!(
        end_text.contains(&format!("engine state hash {server_hash:016x}")),
        "{end_text}"
    );
    let inspect = run(&[
        "--inspect".as_ref(),
        end_path.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    assert!(
        inspect.contains(&format!("engine state hash {server_hash:016x}")),
        "{inspect}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
