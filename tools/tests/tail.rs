//! `peregrine feed` publishes a journal the server wrote; `peregrine tail`
//! consumes it over loopback (late, so every record comes through the
//! re-request server), verifies strict order, and rebuilds the matching
//! engine to the state hash `peregrine replay --app match` computes from
//! the journal itself. A second tail joins late from a sequence and stops
//! by itself at the feed's End of Session.
#![forbid(unsafe_code)]

mod common;

use peregrine_server::config::{AppKind, ServeConfig};
use peregrine_server::serve::{self as server, ServerApp};
use peregrine_tools::client::{self, flow::FlowKind, ClientConfig, Mode, TransportKind};
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_peregrine");

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peregrine-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A loopback UDP port nobody uses right now.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child when the test ends, however it ends.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A journal of matched orders in `dir`; returns its last sequence and the
/// live server's engine state hash.
fn orders_journal(dir: &Path) -> (u64, u64) {
    let cfg = ServeConfig {
        sessions: common::test_sessions(),
        udp: vec![common::lo()],
        idle: "yield".into(),
        app: AppKind::Match,
        journal: Some(dir.to_path_buf()),
        journal_mode: "async".into(),
        journal_segment_size: 1 << 20,
        ..ServeConfig::default()
    };
    let srv = server::start(&cfg).unwrap();
    let r = client::run(&ClientConfig {
        secret: common::SECRET.into(),
        sessions: 3,
        mode: Mode::Rate(20_000.0),
        batch: 2,
        duration: Duration::from_millis(600),
        warmup: Duration::ZERO,
        flow: FlowKind::Orders,
        ..ClientConfig::new(TransportKind::Udp, srv.udp[0])
    })
    .unwrap();
    assert!(r.sent > 1000, "a journal worth publishing: {}", r.sent);
    let (report, app) = srv.stop().unwrap();
    let ServerApp::Match(m) = app else {
        panic!("match app")
    };
    (report.next_seq - 1, m.engine().state_hash())
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The hex word after `prefix` on the line that has it.
fn value_after(out: &str, prefix: &str) -> Option<String> {
    let at = out.find(prefix)? + prefix.len();
    out[at..].split_whitespace().next().map(str::to_string)
}

#[test]
fn tail_rebuilds_the_engine_replay_rebuilds_and_stops_at_end_of_session() {
    let dir = temp_dir("tail");
    let journal = dir.join("journal");
    let (last, live_hash) = orders_journal(&journal);

    let replay = Command::new(BIN)
        .args(["replay", "--summary", "--app", "match"])
        .arg(&journal)
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", text(&replay));
    let replay_hash = value_after(&text(&replay), "engine state hash ").unwrap();
    assert_eq!(
        replay_hash,
        format!("{live_hash:016x}"),
        "replay agrees with the live engine"
    );

    let (port, rr) = (free_port(), free_port());
    let config = dir.join("feed.toml");
    std::fs::write(
        &config,
        format!(
            "[feed]\ndestinations = [\"127.0.0.1:{port}\"]\nrerequest = \"127.0.0.1:{rr}\"\nheartbeat_ms = 50\nrerequest_rate = 0\n"
        ),
    )
    .unwrap();
    let source = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(["tail", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--rerequest", &format!("127.0.0.1:{rr}")])
            .args(extra);
        c
    };

    // The feed publishes everything long before this tail asks: every
    // record comes by re-request.
    let (mut feed, feed_lines) = start_feed(&[
        "--journal",
        journal.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_millis(200));

    let to = last.to_string();
    let tail = source(&["--to", &to, "--verify", "--app", "match"])
        .output()
        .unwrap();
    let out = text(&tail);
    assert!(tail.status.success(), "{out}");
    assert_eq!(
        value_after(&out, "last sequence ").as_deref(),
        Some(to.as_str()),
        "{out}"
    );
    assert_eq!(
        value_after(&out, "engine state hash "),
        Some(replay_hash),
        "{out}"
    );
    assert!(
        out.contains(&format!("verify: {last} records, 0 order violation(s)")),
        "{out}"
    );

    // A late joiner from `from` prints exactly from..=last, then ends at
    // End of Session (sent when the feed is told to stop).
    let from = last - 99;
    let mut tail2 = source(&["--from", &from.to_string(), "--until-end"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(Reaper)
        .unwrap();
    let (tx, tail_lines) = mpsc::channel();
    let tail_out = tail2.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(tail_out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seqs.last() != Some(&last) {
        let l = tail_lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("late tail printed up to {:?}", seqs.last()));
        if let Some(Ok(s)) = l.split_whitespace().next().map(str::parse::<u64>) {
            seqs.push(s);
        }
    }
    assert_eq!(seqs, (from..=last).collect::<Vec<_>>());
    let killed = Command::new("kill")
        .args(["-TERM", &feed.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = feed.0.wait().unwrap();
    assert!(status.success(), "feed exits cleanly on SIGTERM: {status}");
    let summary: Vec<String> = (0..10)
        .map_while(|_| feed_lines.recv_timeout(Duration::from_secs(5)).ok())
        .collect();
    assert!(
        summary.iter().any(|l| l.starts_with("feed stopped")),
        "{summary:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = tail2.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "tail --until-end still running after End of Session"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let rest: Vec<String> = tail_lines.iter().collect(); // until the pipe closes
    assert!(
        rest.iter().any(|l| l.starts_with("tail: 100 records")),
        "{rest:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn record(seq: u64) -> peregrine_journal::SequencedRecord {
    peregrine_journal::SequencedRecord {
        global_seq: seq,
        origin: peregrine_wire::SessionRef::new(1, (seq % 4) as u32),
        client_seq: seq,
        gateway_rx_ns: seq,
        sequencer_ns: seq + 1,
        msg: [seq as u8; 100],
    }
}

/// Spawns `peregrine feed` and waits for its `feed ready`; returns it and
/// its stdout lines.
fn start_feed(args: &[&str]) -> (Reaper, mpsc::Receiver<String>) {
    let mut feed = Command::new(BIN)
        .arg("feed")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(Reaper)
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let out = feed.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("feed ready");
        if l == "feed ready" {
            return (feed, lines);
        }
    }
}

#[test]
fn feed_follow_publishes_what_a_writer_appends_while_it_runs() {
    use peregrine_journal::{FlushPolicy, Journal, WriterConfig};
    let dir = temp_dir("tail-follow");
    let journal = dir.join("journal");
    // Small segments: the follower crosses several segment files.
    let mut w = Journal::open(&journal)
        .unwrap()
        .into_writer(WriterConfig {
            segment_size: 1 << 20,
            ..WriterConfig::default()
        })
        .unwrap();
    for s in 1..=100 {
        w.append(&record(s)).unwrap();
    }
    w.flush(FlushPolicy::Msync).unwrap();
    let (port, rr) = (free_port(), free_port());
    let config = dir.join("feed.toml");
    std::fs::write(
        &config,
        format!(
            "[feed]\ndestinations = [\"127.0.0.1:{port}\"]\nrerequest = \"127.0.0.1:{rr}\"\nheartbeat_ms = 50\nrerequest_rate = 0\n"
        ),
    )
    .unwrap();
    let (_feed, _lines) = start_feed(&[
        "--journal",
        journal.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--follow",
    ]);
    const N: u64 = 20_000;
    let appender = std::thread::spawn(move || {
        for s in 101..=N {
            w.append(&record(s)).unwrap();
            if s % 1000 == 0 {
                w.flush(FlushPolicy::Msync).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        w.flush(FlushPolicy::Msync).unwrap();
        w.close().unwrap();
    });
    let tail = Command::new(BIN)
        .args(["tail", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--rerequest", &format!("127.0.0.1:{rr}")])
        .args(["--to", &N.to_string(), "--verify"])
        .output()
        .unwrap();
    appender.join().unwrap();
    let out = text(&tail);
    assert!(tail.status.success(), "{out}");
    assert!(
        out.contains(&format!("verify: {N} records, 0 order violation(s)")),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The server config `orders_journal` ran with, as a TOML file for the
/// binary (the snapshot command and `tail --snapshot` restore under it).
fn orders_config_file(journal: &Path, path: &Path) {
    let mut toml = format!(
        "udp = [\"127.0.0.1:0\"]\napp = \"match\"\njournal = {:?}\n",
        journal.display().to_string()
    );
    for name in common::NAMES {
        toml.push_str(&format!(
            "[[sessions]]\nname = {name:?}\nsecret = {:?}\n",
            common::SECRET
        ));
    }
    toml.push_str(&format!(
        "[[sessions]]\nprefix = \"PG\"\ncount = 16\nsecret = {:?}\n",
        common::SECRET
    ));
    std::fs::write(path, toml).unwrap();
}

#[test]
fn a_late_joiner_starts_from_a_state_snapshot_and_ends_in_the_servers_state() {
    let dir = temp_dir("snap");
    let journal = dir.join("journal");
    let (last, live_hash) = orders_journal(&journal);
    let server_toml = dir.join("server.toml");
    orders_config_file(&journal, &server_toml);
    let mid = last / 2;
    let snap = dir.join("mid.snap");
    let out = Command::new(BIN)
        .args(["snapshot", "--journal"])
        .arg(&journal)
        .arg("--config")
        .arg(&server_toml)
        .args(["--at", &mid.to_string(), "--out"])
        .arg(&snap)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let (port, rr) = (free_port(), free_port());
    let feed_toml = dir.join("feed.toml");
    std::fs::write(
        &feed_toml,
        format!("[feed]\ndestinations = [\"127.0.0.1:{port}\"]\nrerequest = \"127.0.0.1:{rr}\"\nrerequest_rate = 0\n"),
    )
    .unwrap();
    let (_feed, _lines) = start_feed(&[
        "--journal",
        journal.to_str().unwrap(),
        "--config",
        feed_toml.to_str().unwrap(),
    ]);
    let tail = Command::new(BIN)
        .args(["tail", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--rerequest", &format!("127.0.0.1:{rr}")])
        .args([
            "--to",
            &last.to_string(),
            "--verify",
            "--app",
            "match",
            "--config",
        ])
        .arg(&server_toml)
        .arg("--snapshot")
        .arg(&snap)
        .output()
        .unwrap();
    let out = text(&tail);
    assert!(tail.status.success(), "{out}");
    assert!(
        out.contains(&format!("verify: {} records, 0 order violation(s)", last - mid)),
        "only the records after the snapshot were taken: {out}"
    );
    assert_eq!(
        value_after(&out, "engine state hash "),
        Some(format!("{live_hash:016x}")),
        "snapshot + the rest of the feed = the server's state: {out}"
    );
    // A --from that would leave a gap after the snapshot is refused.
    let bad = Command::new(BIN)
        .args(["tail", "--listen", "127.0.0.1:0", "--rerequest", "127.0.0.1:9"])
        .args(["--from", &(mid + 5).to_string(), "--app", "match", "--config"])
        .arg(&server_toml)
        .arg("--snapshot")
        .arg(&snap)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("does not follow the snapshot"),
        "{}",
        text(&bad)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
