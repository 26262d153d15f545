//! The bench report: a table for people, JSON for scripts (the keys are
//! listed in the README's harness section), and HdrHistogram's
//! percentile-distribution text for plots.

use crate::client::ClientResult;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::fmt::Write;

/// The percentiles reported everywhere.
pub const PERCENTILES: [(&str, f64); 6] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p999", 99.9),
    ("p9999", 99.99),
    ("max", 100.0),
];

/// Percentiles (+ mean) of `h` as JSON, ns.
pub fn rtt_json(h: &Histogram<u64>) -> Value {
    let mut m = serde_json::Map::new();
    for (k, p) in PERCENTILES {
        let v = if p >= 100.0 {
            h.max()
        } else {
            h.value_at_percentile(p)
        };
        m.insert(k.into(), json!(v));
    }
    m.insert("mean".into(), json!(h.mean().round() as u64));
    Value::Object(m)
}

fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

/// Everything one bench run produced.
pub struct BenchOutcome<'a> {
    /// `udp` or `tcp`.
    pub transport: &'a str,
    /// `pingpong`, `rate` or `throughput`.
    pub mode: &'a str,
    /// `echo` or `orders`.
    pub flow: &'a str,
    /// Peregrine's run.
    pub peregrine: &'a ClientResult,
    /// The baseline's run, if any.
    pub baseline: Option<&'a ClientResult>,
    /// What the baseline is: [`Baseline::RawEcho`] (the same sockets and
    /// polling with no gateway or sequencer) or [`Baseline::SingleNode`]
    /// (a cluster bench: the same server as one node, no replication).
    pub baseline_kind: Baseline,
    /// Nodes in the measured cluster (0: a single server).
    pub cluster: usize,
    /// How the cluster's nodes were run: `"colocated"` (one thread polls
    /// every node's loop) or `"thread-per-node"`; empty for a single
    /// server.
    pub cluster_layout: &'a str,
    /// A cluster bench's replication floor, if measured.
    pub floor: Option<Floor<'a>>,
}

/// The replication floor measured beside a cluster bench: the raw UDP echo
/// and the same echo answering only once a majority of `nodes` holds each
/// datagram over loopback TCP (no consensus, no journal). Their ratio is
/// what replication costs on this machine before any software.
#[derive(Clone, Copy)]
pub struct Floor<'a> {
    /// The raw echo's run.
    pub raw: &'a ClientResult,
    /// The replicated echo's run.
    pub replicated: &'a ClientResult,
    /// Nodes the replicated echo counts a majority of.
    pub nodes: usize,
}

/// What a bench's same-run baseline is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// A raw echo on the same sockets and polling.
    RawEcho,
    /// The same server as a single node.
    SingleNode,
}

impl BenchOutcome<'_> {
    /// The JSON summary.
    pub fn json(&self) -> Value {
        let p = self.peregrine;
        let mut v = json!({
            "transport": self.transport,
            "mode": self.mode,
            "flow": self.flow,
            "offered_rate": p.offered_rate,
            "messages_sent": p.sent,
            "messages_acked": p.recorder.answered - p.recorder.rejected,
            "messages_rejected": p.recorder.rejected,
            "lost": p.lost(),
            "duplicates": p.recorder.duplicates,
            "answers_never_sent": p.recorder.never_sent,
            "retransmitted": p.retransmitted,
            "throughput_msgs_per_s": p.throughput().round(),
            "client_waits": waits_json(&p.waits),
            "rtt_ns": rtt_json(&p.recorder.hist),
            "samples": p.recorder.hist.len(),
        });
        if self.cluster > 0 {
            v["cluster"] = json!(self.cluster);
            v["cluster_layout"] = json!(self.cluster_layout);
        }
        if let Some(b) = self.baseline {
            v["baseline_kind"] = json!(match self.baseline_kind {
                Baseline::RawEcho => "raw-echo",
                Baseline::SingleNode => "single-node",
            });
            v["baseline_rtt_ns"] = rtt_json(&b.recorder.hist);
            v["baseline_lost"] = json!(b.lost());
            v["baseline_throughput_msgs_per_s"] = json!(b.throughput().round());
            v["baseline_client_waits"] = waits_json(&b.waits);
        }
        if let Some(f) = &self.floor {
            v["floor"] = json!({
                "nodes": f.nodes,
                "raw_echo_rtt_ns": rtt_json(&f.raw.recorder.hist),
                "raw_echo_lost": f.raw.lost(),
                "raw_echo_throughput_msgs_per_s": f.raw.throughput().round(),
                "replicated_echo_rtt_ns": rtt_json(&f.replicated.recorder.hist),
                "replicated_echo_lost": f.replicated.lost(),
                "replicated_echo_throughput_msgs_per_s": f.replicated.throughput().round(),
            });
        }
        v
    }

    /// The table printed to the terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let p = self.peregrine;
        let _ = writeln!(
            s,
            "\nPeregrine bench: transport {} mode {} flow {}",
            self.transport, self.mode, self.flow
        );
        let _ = writeln!(
            s,
            "round trip from intended send time, µs (HdrHistogram, 3 significant digits)"
        );
        let _ = writeln!(
            s,
            "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean", "samples"
        );
        let row = |name: &str, h: &Histogram<u64>| {
            let mut line = format!("{name:<10}");
            for (_, pc) in PERCENTILES {
                let v = if pc >= 100.0 {
                    h.max()
                } else {
                    h.value_at_percentile(pc)
                };
                let _ = write!(line, " {:>9}", us(v));
            }
            let _ = write!(
                line,
                " {:>9} {:>10}",
                format!("{:.2}", h.mean() / 1000.0),
                h.len()
            );
            line
        };
        let ratio_line = |a: &Histogram<u64>, b: &Histogram<u64>| {
            let mut line = format!("{:<10}", "ratio");
            for (_, pc) in PERCENTILES {
                let (x, y) = if pc >= 100.0 {
                    (a.max(), b.max())
                } else {
                    (a.value_at_percentile(pc), b.value_at_percentile(pc))
                };
                let r = if y > 0 { x as f64 / y as f64 } else { f64::NAN };
                let _ = write!(line, " {:>9}", format!("{r:.2}x"));
            }
            line
        };
        let (name, base) = match (self.cluster, self.baseline_kind) {
            (0, Baseline::RawEcho) => ("peregrine".to_string(), "baseline"),
            (n, _) => (format!("{n} nodes"), "1 node"),
        };
        let _ = writeln!(s, "{}", row(&name, &p.recorder.hist));
        if let Some(b) = self.baseline {
            let _ = writeln!(s, "{}", row(base, &b.recorder.hist));
            let _ = writeln!(s, "{}", ratio_line(&p.recorder.hist, &b.recorder.hist));
        }
        if let Some(f) = &self.floor {
            let _ = writeln!(
                s,
                "floor: the same round trip on raw sockets, replicated to a majority of {} over loopback TCP (no consensus, no journal)",
                f.nodes
            );
            let _ = writeln!(s, "{}", row("repl echo", &f.replicated.recorder.hist));
            let _ = writeln!(s, "{}", row("raw echo", &f.raw.recorder.hist));
            let _ = writeln!(
                s,
                "{}",
                ratio_line(&f.replicated.recorder.hist, &f.raw.recorder.hist)
            );
        }
        let _ = writeln!(
            s,
            "\nsent {}  acked {}  rejected {}  lost {}  duplicates {}  retransmitted {}  offered {:.0} msg/s  throughput {:.0} msg/s",
            p.sent,
            p.recorder.answered - p.recorder.rejected,
            p.recorder.rejected,
            p.lost(),
            p.recorder.duplicates,
            p.retransmitted,
            p.offered_rate,
            p.throughput()
        );
        let _ = writeln!(s, "{}", waits_line("client waits (peregrine)", &p.waits));
        if let Some(b) = self.baseline {
            let _ = writeln!(s, "{}", waits_line("client waits (baseline) ", &b.waits));
            let what = match self.baseline_kind {
                Baseline::RawEcho => "baseline (raw echo, same sockets and polling, no gateway/sequencer)",
                Baseline::SingleNode => "baseline (the same server as a single node, no replication)",
            };
            let _ = writeln!(
                s,
                "{what}: sent {} lost {} throughput {:.0} msg/s  -> measured/baseline throughput {:.2}",
                b.sent,
                b.lost(),
                b.throughput(),
                if b.throughput() > 0.0 {
                    p.throughput() / b.throughput()
                } else {
                    f64::NAN
                }
            );
        }
        s
    }
}

/// The simulator's wait counts as JSON.
fn waits_json(w: &crate::client::waits::ClientWaits) -> Value {
    json!({
        "polls": w.polls,
        "empty_polls": w.empty_polls,
        "rounds": w.rounds,
        "window_full_rounds": w.window_full_rounds,
    })
}

/// One report line: how often the simulator's receive polls were empty
/// and (throughput mode) its window full. Mostly empty and full: the
/// messages queue at the server; rarely: the simulator is the bound.
fn waits_line(what: &str, w: &crate::client::waits::ClientWaits) -> String {
    let mut line = format!(
        "{what}: receive polls {} ({:.1}% empty)",
        w.polls,
        100.0 * w.empty_share()
    );
    if w.rounds > 0 {
        let _ = write!(
            line,
            ", sending rounds {} ({:.1}% with the window full)",
            w.rounds,
            100.0 * w.window_full_share()
        );
    }
    line
}

/// HdrHistogram's percentile distribution text (values in µs, as
/// HdrHistogram's plotter expects with a scaling ratio of 1000).
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(1) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 { 1.0 / (1.0 - q) } else { f64::INFINITY };
        if inv.is_finite() {
            let _ = writeln!(
                s,
                "{:>12.3} {:>14.12} {:>10} {:>14.2}",
                v.value_iterated_to() as f64 / 1000.0,
                q,
                total,
                inv
            );
        } else {
            let _ = writeln!(
                s,
                "{:>12.3} {:>14.12} {:>10}",
                v.value_iterated_to() as f64 / 1000.0,
                q,
                total
            );
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    s
}
