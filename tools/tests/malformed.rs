//! Malformed input over real loopback sockets: rejected or counted, and the
//! server keeps serving everyone else.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_wire::message::{MessageType, RejectReason};
use peregrine_wire::soupbintcp::{kind, write_packet};
use std::io::Write;
use std::time::Duration;

#[test]
fn malformed_udp_datagrams_are_dropped_or_rejected() {
    let srv = start_server(1, 0);
    let addr = srv.udp[0];
    let s = udp_client();
    udp_login(&s, addr, "BAD");
    // Framing errors: dropped, no reply.
    s.send_to(&[1, 2, 3], addr).unwrap(); // shorter than the header
    let mut mismatch = mold("BAD", 1, &[&echo(1, 1), &echo(1, 2)]);
    mismatch[19] = 3; // count 3, two blocks
    s.send_to(&mismatch, addr).unwrap();
    let mut trailing = mold("BAD", 1, &[&echo(1, 1)]);
    trailing.extend_from_slice(&[0, 0, 0]);
    s.send_to(&trailing, addr).unwrap();
    let mut truncated = mold("BAD", 1, &[&echo(1, 1)]);
    truncated.truncate(truncated.len() - 10); // block cut short
    s.send_to(&truncated, addr).unwrap();
    // Well-framed, bad messages: each rejected with its reason.
    let mut unknown = echo(5, 5);
    unknown[0] = 0xEE;
    let mut outbound = echo(6, 6);
    outbound[0] = MessageType::Ack as u8;
    let mut version = echo(7, 7);
    version[1] = 9;
    let short = [b'E'; 99];
    s.send_to(&mold("BAD", 1, &[&unknown, &outbound, &version, &short]), addr)
        .unwrap();
    // And a good message afterwards is served normally.
    s.send_to(&mold("BAD", 5, &[&echo(8, 8)]), addr).unwrap();

    let replies = recv_blocks(&s, 5, Duration::from_secs(10));
    assert_eq!(replies.len(), 5);
    let reasons: Vec<(u64, u16)> = replies[..4]
        .iter()
        .map(|(_, m)| {
            let r = as_reject(m).expect("a Reject");
            assert_eq!(r.global_seq.get(), 0, "rejected before sequencing");
            (r.client_seq.get(), r.reason.get())
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (1, RejectReason::UnknownType as u16),
            (2, RejectReason::UnknownType as u16),
            (3, RejectReason::UnsupportedVersion as u16),
            (4, RejectReason::WrongLength as u16),
        ]
    );
    let ack = as_ack(&replies[4].1).expect("the good message is acked");
    assert_eq!(
        (ack.client_seq.get(), ack.global_seq.get()),
        (5, 1),
        "nothing bad was sequenced"
    );

    // Another client is unaffected.
    let other = udp_client();
    udp_login(&other, addr, "GOOD");
    other.send_to(&mold("GOOD", 1, &[&echo(9, 9)]), addr).unwrap();
    let r = recv_blocks(&other, 1, Duration::from_secs(5));
    assert_eq!(as_ack(&r[0].1).unwrap().global_seq.get(), 2);

    let (report, _) = srv.stop().unwrap();
    let g = report.gateways[0].1;
    assert_eq!(g.dropped_malformed, 4);
    assert_eq!(g.rejected_unknown_type, 2);
    assert_eq!(g.rejected_bad_version, 1);
    assert_eq!(g.rejected_wrong_length, 1);
    assert_eq!(g.accepted, 2);
    assert_eq!(report.sequencer.sequenced, 2);
}

#[test]
fn malformed_tcp_frames_are_rejected_or_disconnected() {
    let srv = start_server(0, 1);
    let addr = srv.tcp[0];
    let mut good = SoupClient::login(addr, "GOOD");

    // Data before login: disconnected.
    let mut early = SoupClient::connect(addr);
    early.send_message(&echo(1, 1));
    assert!(
        early.closed_within(Duration::from_secs(5)),
        "data before login closes"
    );

    // Oversize frame after login: disconnected.
    let mut big = SoupClient::login(addr, "BIG");
    big.stream.write_all(&[0xFF, 0xFF, b'U', 0, 0]).unwrap();
    assert!(big.closed_within(Duration::from_secs(5)), "oversize frame closes");

    // A frame split across reads is reassembled.
    let mut f = [0u8; 200];
    let n = write_packet(&mut f, kind::UNSEQUENCED_DATA, &echo(11, 11)).unwrap();
    good.stream.write_all(&f[..5]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    good.stream.write_all(&f[5..n]).unwrap();
    let a = as_ack(&good.next_reply(Duration::from_secs(5)).unwrap()).expect("split frame acked");
    assert_eq!((a.client_seq.get(), a.client_tag.get()), (1, 11));

    // Bad messages inside good frames: rejected in order, connection kept.
    let mut unknown = echo(12, 12);
    unknown[0] = b'?';
    let mut version = echo(13, 13);
    version[1] = 0;
    good.send_message(&unknown);
    good.send_message(&version);
    good.send_message(&[b'E'; 50]);
    // An unknown packet type is skipped.
    let mut junk = [0u8; 8];
    let jn = write_packet(&mut junk, b'#', b"abc").unwrap();
    good.stream.write_all(&junk[..jn]).unwrap();
    good.send_message(&echo(14, 14));
    let mut reasons = Vec::new();
    for _ in 0..3 {
        let m = good.next_reply(Duration::from_secs(5)).unwrap();
        let r = as_reject(&m).expect("a Reject");
        reasons.push((r.client_seq.get(), r.reason.get()));
    }
    assert_eq!(
        reasons,
        vec![
            (2, RejectReason::UnknownType as u16),
            (3, RejectReason::UnsupportedVersion as u16),
            (4, RejectReason::WrongLength as u16),
        ]
    );
    let a = as_ack(&good.next_reply(Duration::from_secs(5)).unwrap()).expect("still served");
    assert_eq!((a.client_seq.get(), a.global_seq.get()), (5, 2));

    let (report, _) = srv.stop().unwrap();
    let g = report.gateways[0].1;
    assert_eq!(g.dropped_not_logged_in, 1);
    assert_eq!(g.closed_oversize_frame, 1);
    assert_eq!(g.dropped_malformed, 1, "the unknown packet type");
    assert_eq!(g.rejected(), 3);
    assert_eq!(report.sequencer.sequenced, 2);
}

#[test]
fn udp_flood_of_garbage_does_not_stop_service() {
    let srv = start_server(1, 0);
    let addr = srv.udp[0];
    let junk = udp_client();
    let mut x = 0x1234_5678u64;
    for _ in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 1500) as usize;
        let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
        let _ = junk.send_to(&bytes, addr);
    }
    let s = udp_client();
    udp_login(&s, addr, "AFTER");
    s.send_to(&mold("AFTER", 1, &[&echo(1, 1)]), addr).unwrap();
    let r = recv_blocks(&s, 1, Duration::from_secs(10));
    assert!(as_ack(&r[0].1).is_some(), "served after the flood");
}

#[test]
fn idle_sessions_get_heartbeats_and_silent_tcp_clients_are_closed() {
    use peregrine_wire::moldudp64::MoldPacket;
    let cfg = peregrine_server::config::ServeConfig {
        sessions: common::test_sessions(),
        udp: vec![lo()],
        tcp: vec![lo()],
        idle: "yield".into(),
        heartbeat_interval_ms: 100,
        idle_timeout_ms: 1000,
        ..Default::default()
    };
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    // UDP: after one acked message, an idle session receives heartbeats
    // carrying the next reply sequence (2).
    let s = udp_client();
    udp_login(&s, srv.udp[0], "HB");
    s.send_to(&mold("HB", 1, &[&echo(1, 1)]), srv.udp[0]).unwrap();
    assert_eq!(recv_blocks(&s, 1, Duration::from_secs(5)).len(), 1);
    let mut buf = [0u8; 2048];
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let n = s.recv(&mut buf).expect("a heartbeat within 2 s");
    let p = MoldPacket::new_checked(&buf[..n]).unwrap();
    assert!(p.is_heartbeat());
    assert_eq!(p.sequence(), 2, "heartbeat names the next reply sequence");

    // TCP: a logged-in client that stays silent gets Server Heartbeats, then
    // is disconnected after the idle timeout.
    let mut c = SoupClient::login(srv.tcp[0], "QUIET");
    let p = c.next_packet(Duration::from_secs(2));
    assert_eq!(p.map(|p| p.0), Some(kind::SERVER_HEARTBEAT));
    assert!(c.closed_within(Duration::from_secs(5)), "silent client closed");
    let (report, _) = srv.stop().unwrap();
    let tcp = report.gateways[1].1;
    assert_eq!(tcp.closed_idle, 1);
    assert!(report.gateways[0].1.heartbeats_sent >= 1);
}

#[test]
fn sessions_over_their_rate_limit_get_rejects_not_sequencing() {
    use peregrine_wire::message::RejectReason;
    let cfg = peregrine_server::config::ServeConfig {
        sessions: common::test_sessions(),
        udp: vec![lo()],
        tcp: vec![lo()],
        idle: "yield".into(),
        session_rate_limit: 1,
        session_rate_burst: 5,
        ..Default::default()
    };
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    // UDP: 14 messages at once; the burst of 5 passes, the rest is rejected.
    let s = udp_client();
    udp_login(&s, srv.udp[0], "RATE");
    let blocks: Vec<[u8; 100]> = (0..14).map(|k| echo(k, k)).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    s.send_to(&mold("RATE", 1, &refs), srv.udp[0]).unwrap();
    let r = recv_blocks(&s, 14, Duration::from_secs(5));
    assert_eq!(r.len(), 14);
    let acks = r.iter().filter(|(_, m)| as_ack(m).is_some()).count();
    let limited = r
        .iter()
        .filter_map(|(_, m)| as_reject(m))
        .filter(|j| j.reason.get() == RejectReason::RateLimited as u16 && j.global_seq.get() == 0)
        .count();
    assert_eq!((acks, limited), (5, 9));
    // TCP likewise, on its own session.
    let mut c = SoupClient::login(srv.tcp[0], "RATETCP");
    for k in 0..8 {
        c.send_message(&echo(k, k));
    }
    let mut kinds = Vec::new();
    for _ in 0..8 {
        let m = c.next_reply(Duration::from_secs(5)).unwrap();
        kinds.push(as_ack(&m).is_some());
    }
    assert_eq!(kinds.iter().filter(|a| **a).count(), 5, "{kinds:?}");
    let (report, _) = srv.stop().unwrap();
    assert_eq!(
        report.sequencer.sequenced, 10,
        "rate-limited messages are never sequenced"
    );
    assert_eq!(report.gateways[0].1.rejected_rate_limited, 9);
    assert_eq!(report.gateways[1].1.rejected_rate_limited, 3);
}
