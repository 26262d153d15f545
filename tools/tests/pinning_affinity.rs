//! `peregrine serve --cores` inside an affinity mask: started under
//! `taskset -c 1`, the process may run on core 1 alone, and pinning to core
//! 1 must work (core ids, not a count of cores), pinning to core 0 must be
//! refused naming the set, and the server must stop cleanly on SIGINT and
//! SIGTERM. Skipped (with a message) without `taskset` or core 1.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn taskset_usable() -> bool {
    let has_taskset = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_taskset {
        eprintln!("skipped: no taskset (util-linux) on this machine");
        return false;
    }
    if !peregrine_server::pinning::allowed_cores().contains(&1) {
        eprintln!("skipped: this process may not run on core 1");
        return false;
    }
    true
}

fn serve_on_core_1(counters: &std::path::Path, cores: &str) -> Child {
    Command::new("taskset")
        .args(["-c", "1"])
        .arg(env!("CARGO_BIN_EXE_peregrine"))
        .args([
            "serve",
            "--udp",
            "127.0.0.1:0",
            "--idle",
            "yield",
            "--cores",
            cores,
        ])
        .args(["--sessions", "AFFINITY:s3cret"])
        .arg("--counters-file")
        .arg(counters)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("taskset runs")
}

/// Waits (at most 20 s) for "peregrine ready" on the child's stdout; the
/// rest of stdout keeps draining on a thread and comes back on the channel.
fn wait_ready(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l == "peregrine ready" => return rx,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                let mut stderr = String::new();
                let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
                panic!("no \"peregrine ready\" ({e}): {status:?}\n{stderr}");
            }
        }
    }
}

fn stops_on(signal: &str) {
    let counters = std::env::temp_dir().join(format!(
        "peregrine-affinity-{signal}-{}.stats",
        std::process::id()
    ));
    let mut child = serve_on_core_1(&counters, "1");
    let rest = wait_ready(&mut child);
    let kill = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            panic!("the server did not stop on SIG{signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "SIG{signal}: {status:?}\n{stderr}");
    let printed: Vec<String> = rest.iter().collect();
    assert!(
        printed.iter().any(|l| l.contains("sequenced")),
        "the counters are printed on the way out: {printed:?}"
    );
    let _ = std::fs::remove_file(&counters);
}

#[test]
fn serves_on_core_1_under_taskset_and_stops_on_sigint() {
    if taskset_usable() {
        stops_on("INT");
    }
}

#[test]
fn serves_on_core_1_under_taskset_and_stops_on_sigterm() {
    if taskset_usable() {
        stops_on("TERM");
    }
}

#[test]
fn a_core_outside_the_mask_is_refused_naming_the_set() {
    if !taskset_usable() {
        return;
    }
    let counters =
        std::env::temp_dir().join(format!("peregrine-affinity-refused-{}.stats", std::process::id()));
    let out = serve_on_core_1(&counters, "0").wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("core 0 is not in this process's CPU set {1}"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(&counters);
}
