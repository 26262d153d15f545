//! The systemd unit `packaging/peregrine@.service`: `systemd-analyze
//! verify` accepts it (with ExecStart pointed at the binary under test, as
//! /usr/bin/peregrine is not installed here), and it keeps the settings the
//! deployment relies on. Skipped with a message without systemd-analyze.
#![forbid(unsafe_code)]

use std::process::Command;

const UNIT: &str = include_str!("../../packaging/peregrine@.service");

#[test]
fn the_unit_keeps_what_the_deployment_relies_on() {
    let lines: Vec<&str> = UNIT.lines().map(str::trim).collect();
    for want in [
        "ExecStart=/usr/bin/peregrine serve --config /etc/peregrine/%i.toml --log-format json",
        "After=network-online.target",
        "LimitMEMLOCK=infinity",
        "Restart=on-failure",
        // The exit status of an unrecoverable journal (cmd/serve.rs).
        "RestartPreventExitStatus=3",
    ] {
        assert!(lines.contains(&want), "missing {want:?}");
    }
    assert!(lines.iter().any(|l| l.starts_with("CPUAffinity=")));
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("peregrine-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("peregrine@node1.service");
    std::fs::write(
        &unit,
        UNIT.replace("/usr/bin/peregrine", env!("CARGO_BIN_EXE_peregrine")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_ours: Vec<&str> = stderr.lines().filter(|l| l.contains("peregrine")).collect();
    assert!(out.status.success(), "{stderr}");
    assert!(about_ours.is_empty(), "warnings about the unit: {about_ours:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
