//! Prometheus exposition of a running server's counters, rendered from a
//! snapshot of its counters file.
//!
//! Why from the counters file and not from inside `serve`: the file is
//! already the interface between the polling threads and every reader
//! (`peregrine stat` uses it), reading it costs the server nothing, and a
//! separate `peregrine exporter` process keeps HTTP parsing, allocation and
//! a listening socket out of the address space and off the cores of the
//! process that trades. It can be restarted, upgraded or firewalled apart
//! from the server.
//!
//! Naming: the sequencer's counters become `peregrine_sequencer_<name>`,
//! every gateway's `peregrine_gateway_<name>` with labels `gateway` (its
//! id), `transport` and `addr`; port counters (`port_*`) keep their prefix
//! under the gateway family; a cluster node's are `peregrine_cluster_<name>`.
//! Monotonic counts are counters (`_total`), levels (next sequence, durable
//! sequence, journal lag; a node's role, term, log indexes, commit latency
//! percentiles, peers' match indexes) gauges. Both
//! the classic Prometheus text format (0.0.4) and OpenMetrics 1.0 are
//! rendered from the same families; the exporter picks by the scraper's
//! `Accept` header.
//!
//! Reply latency: each gateway's since-start latency histogram becomes the
//! Prometheus histogram `peregrine_gateway_reply_latency_seconds` (same
//! gateway labels; cumulative `_bucket{le=...}`, `_sum`, `_count`), so a
//! dashboard takes any quantile over any window with `histogram_quantile`
//! over the `rate` of the buckets. The bounds ([`LATENCY_BOUNDS_NS`], 1 us
//! to 1 s) are fixed; a bound counts the file's fine buckets that lie
//! wholly at or below it, so a value within 6.25% below a bound may be
//! counted in the next one up (quantiles err high, never low). The
//! sequencer's readiness latency (sequencing to replies handed to the
//! gateways) is `peregrine_sequencer_reply_ready_latency_seconds`, same
//! buckets.

use crate::counters_file::{CountersSnapshot, LatencySnapshot};
use peregrine_gateway::latency::{bucket_high, LatencyBuckets};
use std::fmt::Write;

/// `Content-Type` of [`render_text`].
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of [`render_openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Counter names renamed in the exposition, where Prometheus naming rules
/// read the original as something else (`_us` as microseconds).
const RENAMED: &[(&str, &str)] = &[("port_rx_not_for_us", "port_rx_not_ours")];

/// Counter names that are levels, not counts.
const GAUGES: &[&str] = &[
    "next_seq",
    "journal_durable_seq",
    "journal_lag",
    // The `cluster` block's levels.
    "role",
    "serving",
    "term",
    "leader_id",
    "node_id",
    "commit_index",
    "applied_index",
    "last_index",
    "commit_p50_ns",
    "commit_p99_ns",
    "commit_p999_ns",
    "commit_max_ns",
    "peer1_id",
    "peer1_match",
    "peer2_id",
    "peer2_match",
    "peer3_id",
    "peer3_match",
    "peer4_id",
    "peer4_match",
];

/// One metric family: name (without `_total`), kind, help, samples.
struct Family {
    name: String,
    counter: bool,
    help: String,
    samples: Vec<(String, u64)>,
}

/// Labels of a gateway block titled `udp gateway 0 on 127.0.0.1:9000`;
/// other titles become `block="..."`.
fn gateway_labels(title: &str) -> Option<String> {
    let mut w = title.splitn(5, ' ');
    let (transport, word, id, on, addr) = (w.next()?, w.next()?, w.next()?, w.next()?, w.next()?);
    (word == "gateway" && on == "on" && id.bytes().all(|b| b.is_ascii_digit())).then(|| {
        format!(
            "gateway=\"{id}\",transport=\"{}\",addr=\"{}\"",
            escape(transport),
            escape(addr)
        )
    })
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A metric name made only of `[a-z0-9_]`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn families(snap: &CountersSnapshot) -> Vec<Family> {
    let mut fams: Vec<Family> = Vec::new();
    for (title, counters) in &snap.blocks {
        let (prefix, labels) = if title == "sequencer" {
            ("peregrine_sequencer", String::new())
        } else if title == "cluster" {
            ("peregrine_cluster", String::new())
        } else if let Some(l) = gateway_labels(title) {
            ("peregrine_gateway", l)
        } else {
            ("peregrine_block", format!("block=\"{}\"", escape(title)))
        };
        for (name, value) in counters {
            let exposed = RENAMED
                .iter()
                .find(|(from, _)| from == name)
                .map_or(name.as_str(), |(_, to)| to);
            let fam = format!("{prefix}_{}", sanitize(exposed));
            let i = match fams.iter().position(|f| f.name == fam) {
                Some(i) => i,
                None => {
                    fams.push(Family {
                        name: fam,
                        counter: !GAUGES.contains(&name.as_str()),
                        help: format!(
                            "{name}, from the {} counters",
                            if prefix == "peregrine_gateway" {
                                "gateway"
                            } else {
                                title
                            }
                        ),
                        samples: Vec::new(),
                    });
                    fams.len() - 1
                }
            };
            fams[i].samples.push((labels.clone(), *value));
        }
    }
    fams
}

/// The `le` bounds of the latency histogram, ns, with their text in
/// seconds.
pub const LATENCY_BOUNDS_NS: [(u64, &str); 19] = [
    (1_000, "1e-06"),
    (2_000, "2e-06"),
    (5_000, "5e-06"),
    (10_000, "1e-05"),
    (20_000, "2e-05"),
    (50_000, "5e-05"),
    (100_000, "0.0001"),
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
];

const LATENCY_FAMILY: &str = "peregrine_gateway_reply_latency_seconds";
const READY_FAMILY: &str = "peregrine_sequencer_reply_ready_latency_seconds";

/// The latency histograms as Prometheus histogram families (the same lines
/// in both formats): the gateways' under [`LATENCY_FAMILY`] with their
/// labels, the sequencer's (block titled `sequencer`) under
/// [`READY_FAMILY`].
fn latency_family(out: &mut String, latency: &[LatencySnapshot]) {
    let (seq, gws): (Vec<&LatencySnapshot>, Vec<&LatencySnapshot>) =
        latency.iter().partition(|l| l.title == "sequencer");
    let families = [
        (
            LATENCY_FAMILY,
            "Time from a client message's receive to the transmit of its reply, per gateway, since start.",
            gws,
        ),
        (
            READY_FAMILY,
            "Time from a message's sequencing to its replies being handed to their gateways, since start.",
            seq,
        ),
    ];
    for (family, help, members) in families {
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} histogram");
        for l in members {
            let labels = if family == READY_FAMILY {
                String::new()
            } else {
                gateway_labels(&l.title).unwrap_or_else(|| format!("block=\"{}\"", escape(&l.title)))
            };
            histogram(out, family, &labels, &l.since_start);
        }
    }
}

/// One histogram's `_bucket`, `_sum` and `_count` lines.
fn histogram(out: &mut String, family: &str, labels: &str, h: &LatencyBuckets) {
    let sep = if labels.is_empty() { "" } else { "," };
    let total: u64 = h.buckets.iter().sum();
    let (mut i, mut below) = (0usize, 0u64);
    for (bound, le) in LATENCY_BOUNDS_NS {
        while i < h.buckets.len() && bucket_high(i) <= bound {
            below += h.buckets[i];
            i += 1;
        }
        let _ = writeln!(out, "{family}_bucket{{{labels}{sep}le=\"{le}\"}} {below}");
    }
    let _ = writeln!(out, "{family}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
    let sum = format!("{}.{:09}", h.sum_ns / 1_000_000_000, h.sum_ns % 1_000_000_000);
    if labels.is_empty() {
        let _ = writeln!(out, "{family}_sum {sum}");
        let _ = writeln!(out, "{family}_count {total}");
    } else {
        let _ = writeln!(out, "{family}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{family}_count{{{labels}}} {total}");
    }
}

fn sample(out: &mut String, name: &str, labels: &str, value: u64) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

fn info(out: &mut String, config: &[(&str, String)], snap: &CountersSnapshot) {
    let version = env!("CARGO_PKG_VERSION");
    let _ = writeln!(out, "# HELP peregrine_build_info Build of the exporter.");
    let _ = writeln!(out, "# TYPE peregrine_build_info gauge");
    sample(out, "peregrine_build_info", &format!("version=\"{version}\""), 1);
    if !config.is_empty() {
        let labels: Vec<String> = config
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(out, "# HELP peregrine_config_info The server's configuration.");
        let _ = writeln!(out, "# TYPE peregrine_config_info gauge");
        sample(out, "peregrine_config_info", &labels.join(","), 1);
    }
    let _ = writeln!(
        out,
        "# HELP peregrine_server_pid Process id of the server writing the counters."
    );
    let _ = writeln!(out, "# TYPE peregrine_server_pid gauge");
    sample(out, "peregrine_server_pid", "", snap.pid);
}

/// The snapshot and the gateways' `latency` histograms in the classic
/// Prometheus text format (0.0.4), with build and (when given)
/// configuration info. `config` pairs become labels of
/// `peregrine_config_info`.
pub fn render_text(
    snap: &CountersSnapshot,
    latency: &[LatencySnapshot],
    config: &[(&str, String)],
) -> String {
    let mut out = String::new();
    info(&mut out, config, snap);
    for f in families(snap) {
        let full = if f.counter {
            format!("{}_total", f.name)
        } else {
            f.name.clone()
        };
        let _ = writeln!(out, "# HELP {full} {}", f.help);
        let _ = writeln!(
            out,
            "# TYPE {full} {}",
            if f.counter { "counter" } else { "gauge" }
        );
        for (labels, v) in &f.samples {
            sample(&mut out, &full, labels, *v);
        }
    }
    latency_family(&mut out, latency);
    out
}

/// The snapshot and the gateways' `latency` histograms in OpenMetrics 1.0
/// text (families named without `_total`, counter samples with it, `# EOF`
/// at the end).
pub fn render_openmetrics(
    snap: &CountersSnapshot,
    latency: &[LatencySnapshot],
    config: &[(&str, String)],
) -> String {
    let mut out = String::new();
    info(&mut out, config, snap);
    for f in families(snap) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(
            out,
            "# TYPE {} {}",
            f.name,
            if f.counter { "counter" } else { "gauge" }
        );
        let sample_name = if f.counter {
            format!("{}_total", f.name)
        } else {
            f.name.clone()
        };
        for (labels, v) in &f.samples {
            sample(&mut out, &sample_name, labels, *v);
        }
    }
    latency_family(&mut out, latency);
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> CountersSnapshot {
        CountersSnapshot {
            pid: 42,
            blocks: vec![
                (
                    "sequencer".into(),
                    vec![("sequenced".into(), 7), ("next_seq".into(), 8)],
                ),
                (
                    "udp gateway 0 on 127.0.0.1:9000".into(),
                    vec![("rx_packets".into(), 3), ("port_rx_bytes".into(), 300)],
                ),
                (
                    "tcp gateway 1 on 127.0.0.1:9001".into(),
                    vec![("rx_packets".into(), 5), ("port_rx_bytes".into(), 500)],
                ),
            ],
        }
    }

    #[test]
    fn a_cluster_nodes_levels_are_gauges_and_its_counts_counters() {
        let mut sn = snap();
        sn.blocks.push((
            "cluster".into(),
            vec![
                ("term".into(), 4),
                ("role".into(), 3),
                ("elections_won".into(), 2),
            ],
        ));
        let t = render_text(&sn, &[], &[]);
        assert!(
            t.contains("# TYPE peregrine_cluster_term gauge\nperegrine_cluster_term 4\n"),
            "{t}"
        );
        assert!(
            t.contains("# TYPE peregrine_cluster_role gauge\nperegrine_cluster_role 3\n"),
            "{t}"
        );
        assert!(
            t.contains("# TYPE peregrine_cluster_elections_won_total counter\nperegrine_cluster_elections_won_total 2\n"),
            "{t}"
        );
    }

    #[test]
    fn counters_and_gauges_with_gateway_labels() {
        let t = render_text(&snap(), &[], &[("layout", "shared".into())]);
        assert!(
            t.contains(
                "# TYPE peregrine_sequencer_sequenced_total counter\nperegrine_sequencer_sequenced_total 7\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("# TYPE peregrine_sequencer_next_seq gauge\nperegrine_sequencer_next_seq 8\n"),
            "{t}"
        );
        assert!(t.contains("peregrine_gateway_rx_packets_total{gateway=\"0\",transport=\"udp\",addr=\"127.0.0.1:9000\"} 3\n"), "{t}");
        assert!(t.contains("peregrine_gateway_rx_packets_total{gateway=\"1\",transport=\"tcp\",addr=\"127.0.0.1:9001\"} 5\n"), "{t}");
        assert_eq!(
            t.matches("# TYPE peregrine_gateway_rx_packets_total").count(),
            1,
            "one family for both gateways"
        );
        assert!(t.contains("peregrine_config_info{layout=\"shared\"} 1"), "{t}");
        assert!(t.contains("peregrine_server_pid 42"), "{t}");
    }

    #[test]
    fn openmetrics_names_families_without_total_and_ends_with_eof() {
        let t = render_openmetrics(&snap(), &[], &[]);
        assert!(
            t.contains(
                "# TYPE peregrine_sequencer_sequenced counter\nperegrine_sequencer_sequenced_total 7\n"
            ),
            "{t}"
        );
        assert!(t.ends_with("# EOF\n"), "{t}");
        assert!(!t.contains("peregrine_config_info"), "{t}");
    }

    #[test]
    fn unknown_block_titles_and_odd_characters_are_escaped() {
        let s = CountersSnapshot {
            pid: 1,
            blocks: vec![("odd \"block\"\n".into(), vec![("a-b".into(), 1)])],
        };
        let t = render_text(&s, &[], &[]);
        assert!(
            t.contains("peregrine_block_a_b_total{block=\"odd \\\"block\\\"\\n\"} 1"),
            "{t}"
        );
    }

    #[test]
    fn latency_is_a_cumulative_histogram_in_seconds_per_gateway() {
        use peregrine_gateway::latency::{bucket_of, LatencyBuckets};
        let mut h = LatencyBuckets::default();
        // 3 replies at 1.5 us, 1 at 40 us, 1 at 2 s.
        for (ns, n) in [(1_500u64, 3u64), (40_000, 1), (2_000_000_000, 1)] {
            h.buckets[bucket_of(ns)] += n;
            h.count += n;
            h.sum_ns += ns * n;
            h.max_ns = h.max_ns.max(ns);
        }
        let l = LatencySnapshot {
            title: "udp gateway 0 on 127.0.0.1:9000".into(),
            published_ns: 1,
            interval_ns: 100_000_000,
            since_start: Box::new(h),
            interval: Box::default(),
        };
        let labels = "gateway=\"0\",transport=\"udp\",addr=\"127.0.0.1:9000\"";
        let seq = LatencySnapshot {
            title: "sequencer".into(),
            ..l.clone()
        };
        let both = [l.clone(), seq];
        for t in [
            render_text(&snap(), &both, &[]),
            render_openmetrics(&snap(), &both, &[]),
        ] {
            assert!(
                t.contains("# TYPE peregrine_sequencer_reply_ready_latency_seconds histogram\n"),
                "{t}"
            );
            assert!(
                t.contains("peregrine_sequencer_reply_ready_latency_seconds_bucket{le=\"5e-05\"} 4\n"),
                "{t}"
            );
            assert!(
                t.contains("peregrine_sequencer_reply_ready_latency_seconds_count 5\n"),
                "{t}"
            );
            assert_eq!(
                t.matches("# TYPE peregrine_gateway_reply_latency_seconds histogram\n")
                    .count(),
                1,
                "{t}"
            );
            for (le, n) in [
                ("1e-06", 0),
                ("2e-06", 3),
                ("2e-05", 3),
                ("5e-05", 4),
                ("1", 4),
                ("+Inf", 5),
            ] {
                let line =
                    format!("peregrine_gateway_reply_latency_seconds_bucket{{{labels},le=\"{le}\"}} {n}\n");
                assert!(t.contains(&line), "{line} in {t}");
            }
            assert!(
                t.contains(&format!(
                    "peregrine_gateway_reply_latency_seconds_sum{{{labels}}} 2.000044500\n"
                )),
                "{t}"
            );
            assert!(
                t.contains(&format!(
                    "peregrine_gateway_reply_latency_seconds_count{{{labels}}} 5\n"
                )),
                "{t}"
            );
        }
    }
}
