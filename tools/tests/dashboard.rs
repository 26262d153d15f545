//! The Grafana dashboard (`docs/grafana-dashboard.json`) only queries
//! metrics the exporter really renders: every `peregrine_*` name in a
//! panel's expression must be a series of the text exposition of a live
//! single server's counters file or of a live cluster node's. A renamed
//! counter or a typo in a panel fails here instead of showing "No data".
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_cluster::AckLevel;
use peregrine_server::config::ServeConfig;
use peregrine_server::counters_file::{read_counters, read_latency};
use peregrine_server::metrics::render_text;
use peregrine_tools::local_cluster::LocalCluster;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana-dashboard.json");
const PREFIX: &str = "peregrine_";

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).expect("the dashboard is readable");
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every panel (rows' nested panels included), depth first.
fn panels(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(panels(p));
    }
    out
}

/// The metric names in one PromQL expression: identifiers starting with
/// `peregrine_` that are not the tail of a longer identifier.
fn metric_names(expr: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = expr[from..].find(PREFIX).map(|i| from + i) {
        let name: String = expr[at..]
            .chars()
            .take_while(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            .collect();
        from = at + name.len();
        if !expr[..at].ends_with(ident) {
            out.push(name);
        }
    }
    out
}

/// Every metric name in every panel's targets, with the panel titles that
/// use it.
fn dashboard_metrics(d: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in panels(d) {
        let title = p["title"].as_str().unwrap_or("?").to_string();
        for t in p["targets"].as_array().into_iter().flatten() {
            for name in metric_names(t["expr"].as_str().unwrap_or("")) {
                out.entry(name).or_default().insert(title.clone());
            }
        }
    }
    out
}

/// The series names a text exposition offers: every sample's name, and
/// the names its `# TYPE` lines imply (a histogram's `_bucket`, `_sum`,
/// `_count`; a counter's `_total`), so a family with no samples yet
/// still counts.
fn exposed_series(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if let Some(ty) = line.strip_prefix("# TYPE ") {
            let mut w = ty.split_whitespace();
            let (Some(name), Some(kind)) = (w.next(), w.next()) else {
                continue;
            };
            match kind {
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        out.insert(format!("{name}{s}"));
                    }
                }
                "counter" if !name.ends_with("_total") => {
                    out.insert(format!("{name}_total"));
                }
                _ => {
                    out.insert(name.to_string());
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            out.insert(line[..end].to_string());
        }
    }
    out
}

/// Dashboard metric names that are no exposed series, with the panels
/// using them.
fn unknown_metrics(d: &Value, exposed: &BTreeSet<String>) -> Vec<(String, BTreeSet<String>)> {
    dashboard_metrics(d)
        .into_iter()
        .filter(|(name, _)| !exposed.contains(name))
        .collect()
}

/// The text exposition of the counters file at `path`.
fn render(path: &Path) -> String {
    let snap = read_counters(path).expect("counters file");
    let lat = read_latency(path).expect("latency section");
    render_text(&snap, &lat, &[("layout", "shared".into())])
}

/// A single server with a journal, UDP and TCP gateways, after a few
/// echoes have been answered and their latency published.
fn single_server_exposition() -> String {
    let dir = std::env::temp_dir().join(format!("peregrine-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("counters.stats");
    let cfg = ServeConfig {
        counters_file: Some(path.clone()),
        journal: Some(dir.join("journal")),
        journal_mode: "durable".into(),
        ..server_config(1, 1)
    };
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let s = udp_client();
    udp_login(&s, srv.udp[0], "GOOD");
    s.send_to(&mold("GOOD", 1, &[&echo(1, 1), &echo(2, 2)]), srv.udp[0])
        .unwrap();
    assert_eq!(recv_blocks(&s, 2, Duration::from_secs(5)).len(), 2);
    let until = Instant::now() + Duration::from_secs(5);
    let published = || {
        read_latency(&path).is_ok_and(|l| {
            l.iter()
                .any(|l| l.title.starts_with("udp gateway 0") && l.since_start.count == 2)
        })
    };
    while !published() {
        assert!(Instant::now() < until, "latency never published");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = render(&path);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
    text
}

/// The leader of a three-node cluster on loopback, once elected.
fn cluster_leader_exposition() -> String {
    let base = ServeConfig {
        idle: "backoff".into(),
        ..server_config(0, 0)
    };
    let c = LocalCluster::start("dashboard", 3, &base, AckLevel::Replicated).expect("cluster starts");
    let leader = c.leader(Duration::from_secs(10)).expect("a leader");
    let path = c.configs[leader].counters_file.clone().expect("counters file");
    render(&path)
}

#[test]
fn every_dashboard_metric_is_rendered_by_the_exporter() {
    let d = dashboard();
    let used = dashboard_metrics(&d);
    assert!(used.len() >= 20, "too few metrics found: {used:?}");
    for p in panels(&d) {
        if let Some(ts) = p["targets"].as_array() {
            for t in ts {
                let expr = t["expr"].as_str().unwrap_or("");
                assert!(
                    !metric_names(expr).is_empty(),
                    "panel {:?}: target without a peregrine metric: {expr:?}",
                    p["title"]
                );
            }
        }
    }
    let single = single_server_exposition();
    let cluster = cluster_leader_exposition();
    let mut exposed = exposed_series(&single);
    exposed.extend(exposed_series(&cluster));
    assert!(exposed.contains("peregrine_cluster_term"), "{cluster}");
    let unknown = unknown_metrics(&d, &exposed);
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the exporter does not render: {unknown:?}"
    );
}

/// Every expression as a recording rule of a rules file, with Grafana's
/// `$__rate_interval` replaced by a fixed range, for `promtool check
/// rules`.
fn rules_file(d: &Value) -> String {
    let mut out = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            n += 1;
            let expr = t["expr"].as_str().unwrap_or("").replace("$__rate_interval", "1m");
            out.push_str(&format!(
                "      - record: dashboard:expr{n}\n        expr: {}\n",
                Value::String(expr)
            ));
        }
    }
    out
}

#[test]
fn every_dashboard_expression_is_valid_promql() {
    let d = dashboard();
    let path = std::env::temp_dir().join(format!("peregrine-dashboard-rules-{}.yml", std::process::id()));
    std::fs::write(&path, rules_file(&d)).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    match out {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules refused a dashboard expression:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("promtool is not installed (CI installs the prometheus package)")
        }
        Err(_) => eprintln!("promtool not installed: dashboard PromQL not checked (CI checks it)"),
    }
}

#[test]
fn the_checker_catches_a_misspelt_or_unsuffixed_metric() {
    let exposed = exposed_series(
        "# HELP peregrine_sequencer_sequenced_total x\n\
         # TYPE peregrine_sequencer_sequenced_total counter\n\
         peregrine_sequencer_sequenced_total 2\n\
         # TYPE peregrine_gateway_reply_latency_seconds histogram\n\
         peregrine_gateway_reply_latency_seconds_bucket{le=\"+Inf\",gateway=\"0\"} 2\n\
         # TYPE peregrine_cluster_term gauge\n\
         peregrine_cluster_term 4\n",
    );
    let with = |exprs: &[&str]| -> Value {
        let targets: Vec<Value> = exprs.iter().map(|e| serde_json::json!({ "expr": e })).collect();
        serde_json::json!({ "panels": [{ "type": "row", "panels": [{ "title": "t", "targets": targets }] }] })
    };
    let good = with(&[
        "rate(peregrine_sequencer_sequenced_total[1m])",
        "histogram_quantile(0.99, rate(peregrine_gateway_reply_latency_seconds_bucket[1m]))",
        "rate(peregrine_gateway_reply_latency_seconds_sum[1m]) / rate(peregrine_gateway_reply_latency_seconds_count[1m])",
        "max(peregrine_cluster_term) and on(instance) not_peregrine_thing",
    ]);
    assert_eq!(unknown_metrics(&good, &exposed), vec![]);
    for bad in [
        "rate(peregrine_sequencer_sequensed_total[1m])",
        "rate(peregrine_sequencer_sequenced[1m])",
        "rate(peregrine_gateway_reply_latency_seconds[1m])",
        "peregrine_cluster_term_total",
        "peregrine_cluster_term + peregrine_cluster_terms",
    ] {
        let names: Vec<String> = unknown_metrics(&with(&[bad]), &exposed)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names.len(), 1, "{bad}: {names:?}");
        assert!(bad.contains(&names[0]), "{bad}: {names:?}");
    }
    // A misspelling in the real dashboard is caught too.
    let mut d = dashboard();
    let expr = &mut d["panels"][0]["targets"][0]["expr"];
    let misspelt = expr.as_str().unwrap().replace("sequenced", "sequensed");
    *expr = Value::String(misspelt);
    let all = dashboard_metrics(&dashboard());
    let full: BTreeSet<String> = all.keys().cloned().collect();
    let unknown = unknown_metrics(&d, &full);
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(unknown[0].0.contains("sequensed"));
}
