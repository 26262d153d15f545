//! End to end over real loopback sockets: global order and ack matching.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_tools::client::{self, ClientConfig, Mode, TransportKind};
use peregrine_wire::message::MessageType;
use std::collections::HashMap;
use std::time::Duration;

#[test]
fn gap_free_global_order_across_two_udp_gateways_and_tcp() {
    let srv = start_server(2, 1);
    let targets = [
        (TransportKind::Udp, srv.udp[0]),
        (TransportKind::Udp, srv.udp[1]),
        (TransportKind::Tcp, srv.tcp[0]),
    ];
    let handles: Vec<_> = targets
        .iter()
        .enumerate()
        .map(|(i, &(t, addr))| {
            std::thread::spawn(move || {
                let cfg = ClientConfig {
                    secret: common::SECRET.into(),
                    first_session: 3 * i,
                    sessions: 3,
                    mode: Mode::Rate(20_000.0),
                    batch: 4,
                    duration: Duration::from_millis(1500),
                    warmup: Duration::ZERO,
                    keep_global_seqs: true,
                    drain: Duration::from_secs(5),
                    ..ClientConfig::new(t, addr)
                };
                client::run(&cfg).expect("client run")
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut total_sent = 0;
    for h in handles {
        let r = h.join().unwrap();
        assert!(r.sent > 1000, "each client sent a meaningful load ({})", r.sent);
        assert_eq!(r.lost(), 0, "every message acknowledged");
        assert_eq!(r.recorder.duplicates, 0);
        assert_eq!(r.recorder.rejected, 0);
        total_sent += r.sent;
        all.extend(r.recorder.global_seqs.unwrap());
    }
    let (report, _) = srv.stop().unwrap();
    all.sort_unstable();
    let expect: Vec<u64> = (1..=total_sent).collect();
    assert_eq!(all.len(), expect.len(), "one global sequence number per message");
    assert!(
        all == expect,
        "global sequence numbers are exactly 1..={total_sent}, no gap, no repeat"
    );
    assert_eq!(report.sequencer.sequenced, total_sent);
    assert_eq!(report.next_seq, total_sent + 1);
}

#[test]
fn every_udp_ack_matches_its_message() {
    let srv = start_server(1, 0);
    let s = udp_client();
    udp_login(&s, srv.udp[0], "MATCH");
    let mut sent = HashMap::new();
    let mut client_seq = 1u64;
    for d in 0..50u64 {
        let blocks: Vec<[u8; 100]> = (0..3u64)
            .map(|k| {
                let tag = 0xABCD_0000 + d * 10 + k;
                sent.insert(client_seq + k, (tag, 1_000 + d));
                echo(1_000 + d, tag)
            })
            .collect();
        let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
        s.send_to(&mold("MATCH", client_seq, &refs), srv.udp[0]).unwrap();
        client_seq += 3;
    }
    let replies = recv_blocks(&s, 150, Duration::from_secs(10));
    assert_eq!(replies.len(), 150);
    let mut last_global = 0;
    for (i, (reply_seq, m)) in replies.iter().enumerate() {
        assert_eq!(*reply_seq, i as u64 + 1, "reply stream numbered 1, 2, 3...");
        let a = as_ack(m).expect("an Ack");
        assert_eq!(a.acked_type, MessageType::Echo as u8);
        let (tag, ts) = sent
            .remove(&a.client_seq.get())
            .expect("acks a message we sent, once");
        assert_eq!(a.client_tag.get(), tag);
        assert_eq!(a.client_ts_ns.get(), ts);
        assert!(
            a.global_seq.get() > last_global,
            "one session's acks in global order"
        );
        last_global = a.global_seq.get();
        assert!(a.sequencer_ns.get() >= a.gateway_rx_ns.get());
    }
    assert!(sent.is_empty());
    drop(srv);
}

#[test]
fn every_tcp_ack_matches_its_message() {
    let srv = start_server(0, 1);
    let mut c = SoupClient::login(srv.tcp[0], "TCPMATCH");
    for k in 1..=100u64 {
        c.send_message(&echo(k * 7, k * 1000));
    }
    for k in 1..=100u64 {
        let m = c.next_reply(Duration::from_secs(5)).expect("reply");
        let a = as_ack(&m).expect("an Ack");
        assert_eq!(a.client_seq.get(), k, "implicit client sequence");
        assert_eq!(a.client_tag.get(), k * 1000);
        assert_eq!(a.client_ts_ns.get(), k * 7);
        assert_eq!(a.global_seq.get(), k, "only sender: global = client order");
    }
}

#[test]
fn second_tcp_login_to_a_live_session_is_rejected() {
    let srv = start_server(0, 1);
    let _first = SoupClient::login(srv.tcp[0], "ONLYONE");
    let mut second = SoupClient::connect(srv.tcp[0]);
    let mut req = [0u8; 49];
    let n = peregrine_wire::soupbintcp::write_login_request(&mut req, "x", SECRET, "ONLYONE", 0);
    std::io::Write::write_all(&mut second.stream, &req[..n]).unwrap();
    let p = second.next_packet(Duration::from_secs(5));
    assert_eq!(p, Some((b'J', vec![b'S'])), "Login Rejected, session unavailable");
    assert!(second.closed_within(Duration::from_secs(5)));
}

fn run_load(
    cfg: peregrine_server::config::ServeConfig,
    t: TransportKind,
) -> (u64, peregrine_server::runtime::ServerReport) {
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let addr = match t {
        TransportKind::Udp => srv.udp[0],
        TransportKind::Tcp => srv.tcp[0],
    };
    let ccfg = ClientConfig {
        secret: common::SECRET.into(),
        sessions: 2,
        mode: Mode::Throughput { window: 14 * 64 },
        batch: 14,
        duration: Duration::from_millis(1000),
        warmup: Duration::ZERO,
        drain: Duration::from_secs(5),
        ..ClientConfig::new(t, addr)
    };
    let r = client::run(&ccfg).unwrap();
    assert_eq!(r.lost(), 0, "nothing lost");
    assert_eq!(r.recorder.duplicates, 0);
    let (report, _) = srv.stop().unwrap();
    (r.sent, report)
}

#[test]
fn tiny_rings_backpressure_without_loss() {
    for t in [TransportKind::Udp, TransportKind::Tcp] {
        let mut cfg = peregrine_server::config::ServeConfig {
            sessions: common::test_sessions(),
            idle: "yield".into(),
            ring_capacity: Some(2),
            ..Default::default()
        };
        match t {
            TransportKind::Udp => cfg.udp = vec![lo()],
            TransportKind::Tcp => cfg.tcp = vec![lo()],
        }
        let (sent, report) = run_load(cfg, t);
        assert_eq!(report.sequencer.sequenced, sent);
        assert!(report.gateways[0].1.ring_full > 0, "{t:?}: the ring did fill");
    }
}

#[test]
fn dedicated_layout_serves_both_transports() {
    for t in [TransportKind::Udp, TransportKind::Tcp] {
        let mut cfg = peregrine_server::config::ServeConfig {
            sessions: common::test_sessions(),
            idle: "backoff".into(),
            layout: "dedicated".into(),
            ..Default::default()
        };
        match t {
            TransportKind::Udp => cfg.udp = vec![lo()],
            TransportKind::Tcp => cfg.tcp = vec![lo()],
        }
        let (sent, report) = run_load(cfg, t);
        assert!(sent > 0);
        assert_eq!(report.sequencer.sequenced, sent);
    }
}

#[test]
fn nonexistent_core_is_refused() {
    let cfg = peregrine_server::config::ServeConfig {
        sessions: common::test_sessions(),
        udp: vec![lo()],
        cores: vec![4096],
        ..Default::default()
    };
    let err = peregrine_server::serve::start(&cfg)
        .err()
        .expect("refuses to start");
    assert!(err.to_string().contains("core 4096 does not exist"), "{err}");
}

#[test]
fn udp_retransmission_is_answered_with_the_original_reply_never_sequenced_twice() {
    use peregrine_wire::message::RejectReason;
    // Gap reports repeat after 10 s here (2 ms by default), so the check
    // below that a gap is not reported twice at once cannot be undone by a
    // slow machine taking 2 ms between two datagrams.
    let srv = peregrine_server::serve::start(&peregrine_server::config::ServeConfig {
        gap_report_repeat_us: 10_000_000,
        ..server_config(1, 0)
    })
    .expect("server starts");
    let s = udp_client();
    udp_login(&s, srv.udp[0], "DEDUP");
    s.send_to(
        &mold("DEDUP", 1, &[&echo(1, 11), &echo(2, 22), &echo(3, 33)]),
        srv.udp[0],
    )
    .unwrap();
    let first = recv_blocks(&s, 3, Duration::from_secs(5));
    assert_eq!(first.len(), 3);
    // The client retransmits message 2 (say its ack was lost).
    s.send_to(&mold("DEDUP", 2, &[&echo(2, 22)]), srv.udp[0]).unwrap();
    let again = recv_blocks(&s, 1, Duration::from_secs(5));
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0], first[1],
        "the very same reply, with its original reply sequence"
    );
    // A message further ahead than the reorder window (8,192 by default) is
    // refused, not sequenced; the gap report names the missing message, 4.
    s.send_to(&mold("DEDUP", 30_000, &[&echo(30_000, 1)]), srv.udp[0])
        .unwrap();
    let gap = recv_blocks(&s, 1, Duration::from_secs(5));
    let j = as_reject(&gap[0].1).expect("a Reject");
    assert_eq!(
        (j.reason.get(), j.client_seq.get(), j.global_seq.get()),
        (RejectReason::SequenceGap as u16, 4, 0)
    );
    assert_eq!(gap[0].0, 0, "session-layer rejects take no reply sequence");
    // Message 5, ahead of the gap at 4 but inside the window, is held; the
    // same gap was reported less than the repeat interval ago, so no second
    // report yet.
    s.send_to(&mold("DEDUP", 5, &[&echo(5, 55)]), srv.udp[0]).unwrap();
    assert!(recv_blocks(&s, 1, Duration::from_millis(200)).is_empty());
    // Filling the gap in order goes on normally.
    s.send_to(&mold("DEDUP", 4, &[&echo(4, 44)]), srv.udp[0]).unwrap();
    let rest = recv_blocks(&s, 2, Duration::from_secs(5));
    let g: Vec<u64> = rest
        .iter()
        .map(|(_, m)| as_ack(m).unwrap().global_seq.get())
        .collect();
    assert_eq!(g, vec![4, 5]);
    let (report, _) = srv.stop().unwrap();
    assert_eq!(
        report.sequencer.sequenced, 5,
        "retransmission not sequenced again"
    );
    let c = report.gateways[0].1;
    assert_eq!((c.dedup_hits, c.replies_retransmitted, c.rejected_gap), (1, 1, 1));
}

#[test]
fn udp_messages_ahead_of_a_gap_are_held_and_taken_in_order_when_it_fills() {
    let srv = start_server(1, 0);
    let s = udp_client();
    udp_login(&s, srv.udp[0], "HOLD");
    s.send_to(&mold("HOLD", 1, &[&echo(1, 1)]), srv.udp[0]).unwrap();
    s.send_to(&mold("HOLD", 3, &[&echo(3, 3), &echo(4, 4)]), srv.udp[0])
        .unwrap();
    s.send_to(&mold("HOLD", 5, &[&echo(5, 5)]), srv.udp[0]).unwrap();
    let first = recv_blocks(&s, 2, Duration::from_secs(5));
    assert_eq!(first.len(), 2, "the ack of 1 and a gap report, in either order");
    let ack = first.iter().find_map(|(_, m)| as_ack(m)).expect("an ack");
    assert_eq!(ack.client_seq.get(), 1);
    let report = first
        .iter()
        .find_map(|(_, m)| as_reject(m))
        .expect("a gap report");
    assert_eq!(
        (report.reason.get(), report.client_seq.get()),
        (8, 2),
        "2 is missing"
    );
    assert!(
        recv_blocks(&s, 1, Duration::from_millis(200)).is_empty(),
        "3..5 wait for 2"
    );
    s.send_to(&mold("HOLD", 2, &[&echo(2, 2)]), srv.udp[0]).unwrap();
    let rest = recv_blocks(&s, 4, Duration::from_secs(5));
    let got: Vec<(u64, u64)> = rest
        .iter()
        .map(|(_, m)| {
            let a = as_ack(m).unwrap();
            (a.client_seq.get(), a.global_seq.get())
        })
        .collect();
    assert_eq!(
        got,
        vec![(2, 2), (3, 3), (4, 4), (5, 5)],
        "taken in client order once the gap filled"
    );
    let (report, _) = srv.stop().unwrap();
    let c = report.gateways[0].1;
    assert_eq!((c.reordered_held, c.gap_notices), (3, 1));
}
