//! `peregrine client`: a UDP or TCP client simulator against a running server.

use super::load::LoadArgs;
use clap::Args;
use peregrine_client::FailoverOptions;
use peregrine_tools::client::{self, ClientConfig, TransportKind};
use peregrine_tools::plot::{command_line, write_svg, Curve};
use peregrine_tools::report::{hgrm, rtt_json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct ClientArgs {
    /// Server UDP address; in a cluster, every node's address for this
    /// gateway, comma separated (the client finds the leader and fails over).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["tcp", "server"])]
    udp: Vec<SocketAddr>,
    /// Server TCP address(es), as for --udp.
    #[arg(long, value_delimiter = ',', conflicts_with = "server")]
    tcp: Vec<SocketAddr>,
    /// Node addresses a,b,c of a cluster (or one server), over --transport.
    #[arg(long, value_delimiter = ',', required_unless_present_any = ["udp", "tcp"])]
    server: Vec<SocketAddr>,
    /// Transport for --server: udp or tcp.
    #[arg(long, default_value = "udp", value_parser = ["udp", "tcp"])]
    transport: String,
    /// Fail over when the node in use fails (on by default with more than
    /// one address): UDP gives a node up after this much silence, ms.
    #[arg(long)]
    failover_silence_ms: Option<u64>,
    /// Core to pin the client to.
    #[arg(long)]
    core: Option<usize>,
    /// UDP: resend a message unanswered for this many milliseconds (with its
    /// original client sequence; the server answers copies with the
    /// original reply).
    #[arg(long)]
    retransmit_ms: Option<u64>,
    /// Write every first answer (global_seq session client_seq client_ts
    /// order_id_or_tag kind) to this file, e.g. to check it against the
    /// journal after crashes.
    #[arg(long)]
    answers_file: Option<PathBuf>,
    /// Exit non-zero unless every message was acknowledged exactly once and
    /// the acknowledged global sequence numbers are gap-free (use when this
    /// client is the server's only sender).
    #[arg(long)]
    verify: bool,
    /// Draw the latency percentile plot into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
}

/// The transport, the node addresses in order (at least one), and how to
/// fail over: on by default with more than one address.
fn nodes(a: &ClientArgs) -> anyhow::Result<(TransportKind, Vec<SocketAddr>, Option<FailoverOptions>)> {
    let (transport, servers) = match (a.udp.is_empty(), a.tcp.is_empty(), a.transport.as_str()) {
        (false, _, _) => (TransportKind::Udp, a.udp.clone()),
        (true, false, _) => (TransportKind::Tcp, a.tcp.clone()),
        (true, true, "tcp") => (TransportKind::Tcp, a.server.clone()),
        (true, true, _) => (TransportKind::Udp, a.server.clone()),
    };
    anyhow::ensure!(
        !servers.is_empty(),
        "give --server ADDR[,ADDR...], --udp ADDR or --tcp ADDR"
    );
    let failover = (servers.len() > 1 || a.failover_silence_ms.is_some()).then(|| {
        let mut f = FailoverOptions::default();
        if let Some(ms) = a.failover_silence_ms {
            f.silence = Duration::from_millis(ms.max(1));
        }
        f
    });
    Ok((transport, servers, failover))
}

pub fn run(a: ClientArgs) -> anyhow::Result<()> {
    let (transport, servers, failover) = nodes(&a)?;
    let (&server, more) = servers
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("give --server ADDR[,ADDR...], --udp ADDR or --tcp ADDR"))?;
    let l = &a.load;
    let cfg = ClientConfig {
        sessions: l.sessions,
        mode: l.mode(),
        batch: l.batch(),
        duration: l.duration,
        warmup: l.warmup(),
        flow: l.flow,
        core: a.core,
        keep_global_seqs: a.verify,
        keep_answers: a.answers_file.is_some(),
        retransmit: a.retransmit_ms.map(Duration::from_millis),
        secret: l.secret.clone().unwrap_or_default(),
        first_session: l.first_session,
        more_servers: more.to_vec(),
        failover,
        ..ClientConfig::new(transport, server)
    };
    let r = client::run(&cfg)?;
    let h = &r.recorder.hist;
    let summary = serde_json::json!({
        "transport": transport.name(),
        "mode": cfg.mode.name(),
        "offered_rate": r.offered_rate,
        "messages_sent": r.sent,
        "messages_acked": r.recorder.answered - r.recorder.rejected,
        "messages_rejected": r.recorder.rejected,
        "lost": r.lost(),
        "duplicates": r.recorder.duplicates,
        "answers_never_sent": r.recorder.never_sent,
        "reports": r.recorder.reports,
        "throughput_msgs_per_s": r.throughput().round(),
        "rtt_ns": rtt_json(h),
        "failovers": r.failover.failovers,
        "failover_gap_ns_max": r.failover.max_gap_ns,
        "resent_after_failover": r.failover.resent,
    });
    println!(
        "sent {} acked {} rejected {} lost {} duplicates {} reports {} throughput {:.0} msg/s",
        r.sent,
        r.recorder.answered - r.recorder.rejected,
        r.recorder.rejected,
        r.lost(),
        r.recorder.duplicates,
        r.recorder.reports,
        r.throughput()
    );
    println!(
        "rtt µs: p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} p99.99 {:.2} max {:.2} mean {:.2} ({} samples)",
        h.value_at_percentile(50.0) as f64 / 1e3,
        h.value_at_percentile(90.0) as f64 / 1e3,
        h.value_at_percentile(99.0) as f64 / 1e3,
        h.value_at_percentile(99.9) as f64 / 1e3,
        h.value_at_percentile(99.99) as f64 / 1e3,
        h.max() as f64 / 1e3,
        h.mean() / 1e3,
        h.len()
    );
    if r.failover.failovers > 0 || r.failover.refused_not_leader > 0 {
        let f = &r.failover;
        println!(
            "failovers {} (completed {}), refused not-leader {}, address switches {}, resent {}, gap ms last {:.1} max {:.1}",
            f.failovers,
            f.completed,
            f.refused_not_leader,
            f.address_switches,
            f.resent,
            f.last_gap_ns as f64 / 1e6,
            f.max_gap_ns as f64 / 1e6
        );
    }
    if let Some(p) = &l.json {
        std::fs::write(p, serde_json::to_string_pretty(&summary)? + "\n")?;
    }
    if let Some(p) = &l.hgrm {
        std::fs::write(p, hgrm(h))?;
    }
    if let Some(p) = &a.plot {
        let curve = Curve {
            label: "peregrine",
            hist: h,
        };
        write_svg(p, &command_line(), &[curve])?;
    }
    if let (Some(p), Some(ans)) = (&a.answers_file, &r.recorder.answers) {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(p)?);
        for x in ans {
            writeln!(
                f,
                "{} {} {} {} {} {:?}",
                x.global_seq, x.session, x.client_seq, x.client_ts_ns, x.order_id, x.kind
            )?;
        }
    }
    if a.verify {
        anyhow::ensure!(r.sent > 0, "verify: nothing was sent");
        anyhow::ensure!(r.lost() == 0, "verify: {} messages never acknowledged", r.lost());
        anyhow::ensure!(
            r.recorder.duplicates == 0,
            "verify: {} duplicate acks",
            r.recorder.duplicates
        );
        anyhow::ensure!(
            r.recorder.rejected == 0,
            "verify: {} rejects",
            r.recorder.rejected
        );
        let mut g = r.recorder.global_seqs.clone().unwrap_or_default();
        g.sort_unstable();
        let first = g.first().copied().unwrap_or(0);
        let gap_free = g.iter().enumerate().all(|(i, &v)| v == first + i as u64);
        anyhow::ensure!(
            gap_free && g.len() as u64 == r.sent,
            "verify: acknowledged global sequence numbers are not one gap-free run"
        );
        println!(
            "verify: OK, {} messages acknowledged once each, global sequence {first}..={} gap-free",
            r.sent,
            first + r.sent - 1
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
    }

    fn parse(args: &[&str]) -> Result<ClientArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("client").chain(args.iter().copied())).map(|c| c.client)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn server_lists_pick_the_transport_and_turn_failover_on() {
        let a = parse(&["--server", "127.0.0.1:1,127.0.0.1:2", "--transport", "tcp"]).unwrap();
        let (t, servers, failover) = nodes(&a).unwrap();
        assert_eq!(t, TransportKind::Tcp);
        assert_eq!(servers, vec![addr("127.0.0.1:1"), addr("127.0.0.1:2")]);
        assert_eq!(failover, Some(FailoverOptions::default()));

        let a = parse(&["--server", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"]).unwrap();
        let (t, servers, _) = nodes(&a).unwrap();
        assert_eq!((t, servers.len()), (TransportKind::Udp, 3), "UDP by default");

        let a = parse(&["--udp", "127.0.0.1:1,127.0.0.1:2", "--failover-silence-ms", "250"]).unwrap();
        let (t, _, failover) = nodes(&a).unwrap();
        assert_eq!(t, TransportKind::Udp);
        assert_eq!(failover.map(|f| f.silence), Some(Duration::from_millis(250)));

        // One address: a single server, no failover unless asked for.
        let a = parse(&["--tcp", "127.0.0.1:1"]).unwrap();
        assert_eq!(
            nodes(&a).unwrap(),
            (TransportKind::Tcp, vec![addr("127.0.0.1:1")], None)
        );

        assert!(parse(&[]).is_err(), "an address is required");
        assert!(parse(&["--udp", "127.0.0.1:1", "--server", "127.0.0.1:2"]).is_err());
        assert!(parse(&["--udp", "127.0.0.1:1", "--tcp", "127.0.0.1:2"]).is_err());
    }
}
