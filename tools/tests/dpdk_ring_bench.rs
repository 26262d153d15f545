//! `peregrine bench --transport dpdk-ring` end to end (its own process: one
//! EAL per process): it reports where the cycles go, stage by stage, and
//! the stages account for the whole loop, the gateway's split into the
//! driver's, the parser's and its own parts.
#![cfg(feature = "dpdk")]

use std::process::Command;

#[test]
fn the_dpdk_ring_bench_breaks_its_cycles_down_by_stage() {
    let dir = std::env::temp_dir().join(format!("peregrine-dpdk-ring-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let out = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args([
            "bench",
            "--transport",
            "dpdk-ring",
            "--throughput",
            "--duration",
            "1s",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("cycles per message by stage: gateway rx"), "{text}");
    assert!(text.contains("+ tx burst"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let total = v["cycles_per_message"].as_f64().unwrap();
    let st = &v["stage_cycles_per_message"];
    let stage = |k: &str| st[k].as_f64().unwrap_or_else(|| panic!("stage {k} in {st}"));
    let parts = ["rx", "parse", "gateway", "sequencer", "reply_build", "tx"];
    for k in parts.iter().chain(&["inject"]) {
        assert!(stage(k) > 0.0, "{k} took no cycles: {st}");
    }
    let peregrine: f64 = parts.iter().map(|k| stage(k)).sum();
    let sum = stage("inject") + peregrine;
    assert!(
        sum <= total * 1.01 && sum >= total * 0.8,
        "the stages ({sum:.1}) account for the loop's {total:.1} cycles/msg: {st}"
    );
    // The gateway's two stages are the sums of their parts (within the
    // JSON's rounding to tenths).
    let close = |a: f64, b: f64| (a - b).abs() < 0.35;
    assert!(close(stage("peregrine"), peregrine), "{st}");
    assert!(
        close(
            stage("gateway_rx"),
            stage("rx") + stage("parse") + stage("gateway")
        ),
        "{st}"
    );
    assert!(
        close(stage("gateway_tx"), stage("reply_build") + stage("tx")),
        "{st}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
