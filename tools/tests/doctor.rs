//! `peregrine doctor` as an operator runs it: the binary, a config file,
//! a host (here a made-up /proc and /sys under --sysroot), JSON out and the
//! exit status by the worst finding.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::Command;

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn host(root: &Path, clocksource: &str) {
    write(
        root,
        "/proc/cmdline",
        "ro isolcpus=managed_irq,domain,2 nohz_full=2 rcu_nocbs=2 idle=poll",
    );
    write(
        root,
        "/proc/self/status",
        "Name:\tperegrine\nUid:\t1000\t1000\t1000\t1000\n",
    );
    write(
        root,
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "always [madvise] never\n",
    );
    write(
        root,
        "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        clocksource,
    );
    write(root, "/proc/irq/30/smp_affinity_list", "0-1\n");
    write(root, "/proc/sys/net/core/busy_poll", "50\n");
    write(root, "/proc/sys/net/core/busy_read", "50\n");
    write(root, "/proc/sys/net/core/rmem_max", "1048576\n");
    write(root, "/proc/sys/net/core/wmem_max", "1048576\n");
}

fn doctor(root: &Path, config: &Path) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["doctor", "--json", "--sysroot"])
        .arg(root)
        .arg("--config")
        .arg(config)
        .output()
        .expect("peregrine runs");
    let json = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    (out.status.code().expect("exit code"), json)
}

fn status<'a>(report: &'a serde_json::Value, check: &str) -> &'a str {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in {report}"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn doctor_checks_the_host_against_the_config_and_exits_with_the_worst_finding() {
    let dir = std::env::temp_dir().join(format!("peregrine-doctor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = dir.join("peregrine.toml");
    std::fs::create_dir_all(&dir).unwrap();
    // Buffers within the host's limits: every check passes.
    std::fs::write(
        &config,
        "udp = [\"127.0.0.1:9000\"]\ncores = [2]\nrecv_buffer = 1048576\nsend_buffer = 1048576\n",
    )
    .unwrap();
    let root = dir.join("host");
    host(&root, "tsc\n");
    let (code, report) = doctor(&root, &config);
    assert_eq!((code, report["worst"].as_str()), (0, Some("PASS")), "{report}");

    // Socket buffers above net.core.rmem_max for a non-root server: WARN, exit 1.
    std::fs::write(
        &config,
        "udp = [\"127.0.0.1:9000\"]\ncores = [2]\nrecv_buffer = 8388608\nsend_buffer = 1048576\n",
    )
    .unwrap();
    let (code, report) = doctor(&root, &config);
    assert_eq!(code, 1, "{report}");
    assert_eq!(status(&report, "rmem_max"), "WARN");
    assert_eq!(status(&report, "wmem_max"), "PASS");

    // A slow clocksource fails the host: exit 2, with the fix.
    host(&root, "hpet\n");
    let (code, report) = doctor(&root, &config);
    assert_eq!(code, 2, "{report}");
    assert_eq!(status(&report, "clocksource"), "FAIL");
    let _ = std::fs::remove_dir_all(&dir);
}
