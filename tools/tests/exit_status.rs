//! `peregrine serve`'s exit status and JSON logs as a supervisor sees
//! them: a journal that cannot be recovered as it is (corruption in the
//! middle, or records naming sessions the config lacks) exits with status
//! 3, which the systemd unit's `RestartPreventExitStatus=3` keeps from
//! being restarted; with `--log-format json` the error is one JSON line.
#![forbid(unsafe_code)]

use peregrine_journal::{segment_name, Journal, SequencedRecord, WriterConfig, HEADER_LEN};
use peregrine_wire::SessionRef;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peregrine-exit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Journals records 1..=n from `origin`.
fn write_journal(dir: &Path, n: u64, origin: SessionRef) {
    let cfg = WriterConfig {
        segment_size: 1 << 20,
        populate: false,
        populate_writable: false,
        ..WriterConfig::default()
    };
    let mut w = Journal::open(dir).unwrap().into_writer(cfg).unwrap();
    for s in 1..=n {
        w.append(&SequencedRecord {
            global_seq: s,
            origin,
            client_seq: s,
            gateway_rx_ns: s * 10,
            sequencer_ns: s * 10 + 1,
            msg: [s as u8; 100],
        })
        .unwrap();
    }
}

fn serve(journal: &Path, log_format: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_peregrine"));
    if let Some(f) = log_format {
        c.args(["--log-format", f]);
    }
    c.args(["serve", "--udp", "127.0.0.1:0", "--sessions", "EXIT:s3cret"])
        .arg("--journal")
        .arg(journal)
        .arg("--counters-file")
        .arg(journal.join("counters"))
        .output()
        .expect("peregrine runs")
}

fn corrupt_in_the_middle(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    write_journal(&dir, 3, SessionRef::new(0, 0));
    let seg = dir.join(segment_name(1));
    let mut bytes = std::fs::read(&seg).unwrap();
    // Inside record 1, which valid records follow: not a torn tail.
    bytes[HEADER_LEN + 60] ^= 0x10;
    std::fs::write(&seg, bytes).unwrap();
    dir
}

#[test]
fn corruption_in_the_middle_of_the_journal_exits_3() {
    let dir = corrupt_in_the_middle("text");
    let out = serve(&dir, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.starts_with("Error: recovering journal"), "{stderr}");
    assert!(stderr.contains("corrupt record"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_json_logs_the_error_is_one_json_line() {
    let dir = corrupt_in_the_middle("json");
    let out = serve(&dir, Some("json"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = lines.last().expect("an error line");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert_eq!(last["fields"]["exit_status"], 3, "{last}");
    let message = last["fields"]["message"].as_str().unwrap();
    assert!(message.contains("corrupt record"), "{message}");
    assert!(last["timestamp"].is_string(), "{last}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_journal_naming_unconfigured_sessions_exits_3() {
    let dir = temp_dir("restore");
    write_journal(&dir, 2, SessionRef::new(0, 7));
    let out = serve(&dir, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("session id 7"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn other_start_failures_exit_1() {
    let dir = temp_dir("other");
    let out = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["serve", "--udp", "127.0.0.1:0"])
        .arg("--counters-file")
        .arg(dir.join("counters"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "no sessions configured: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
