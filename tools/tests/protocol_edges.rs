//! The protocol's edges over real loopback sockets: datagrams larger than
//! one 1,472-byte frame, a client's End of Session, requests for replies
//! that have left the reply log, and how fast `peregrine stat` sees a
//! change under every idle strategy.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_server::counters_file::read_counters;
use peregrine_wire::message::{MessageType, RejectReason};
use peregrine_wire::moldudp64::{session_name, write_header_only, MoldPacket, END_OF_SESSION, HEADER_LEN};
use std::time::{Duration, Instant};

/// A MoldUDP64 datagram of any size (the common helper stops at 2 KiB).
fn big_mold(session: &str, seq: u64, blocks: &[&[u8]]) -> Vec<u8> {
    let mut h = [0u8; HEADER_LEN];
    write_header_only(&mut h, &session_name(session), seq, blocks.len() as u16);
    let mut out = h.to_vec();
    for b in blocks {
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

#[test]
fn a_20_block_datagram_is_acknowledged_block_by_block() {
    let srv = start_server(1, 0);
    let addr = srv.udp[0];
    let s = udp_client();
    udp_login(&s, addr, "BIG");
    let blocks: Vec<[u8; 100]> = (0..20).map(|k| echo(k, 500 + k)).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    let dgram = big_mold("BIG", 1, &refs);
    assert_eq!(dgram.len(), 2060);
    s.send_to(&dgram, addr).unwrap();
    let replies = recv_blocks(&s, 20, Duration::from_secs(5));
    assert_eq!(replies.len(), 20, "every block answered");
    let acked: Vec<u64> = replies
        .iter()
        .map(|(_, m)| as_ack(m).expect("an Ack").client_seq.get())
        .collect();
    assert_eq!(acked, (1..=20).collect::<Vec<_>>());
    let (report, _) = srv.stop().unwrap();
    assert_eq!(report.sequencer.sequenced, 20);
    assert_eq!(report.gateways[0].2.rx_oversize, 0);
}

#[test]
fn a_65507_byte_datagram_gets_its_acks_and_rejects() {
    let srv = start_server(1, 0);
    let addr = srv.udp[0];
    let s = udp_client();
    udp_login(&s, addr, "BIG");
    // One block of the largest size: a WrongLength reject for client
    // sequence 1, echoing its type and timestamp.
    let mut huge = vec![0u8; 65_507 - HEADER_LEN - 2];
    huge[..100].copy_from_slice(&echo(42, 1));
    let dgram = big_mold("BIG", 1, &[&huge]);
    assert_eq!(dgram.len(), 65_507);
    s.send_to(&dgram, addr).unwrap();
    let r = recv_blocks(&s, 1, Duration::from_secs(5));
    assert_eq!(r.len(), 1, "the oversized block is answered");
    let j = as_reject(&r[0].1).expect("a Reject");
    assert_eq!(
        (
            j.reason.get(),
            j.client_seq.get(),
            j.rejected_type,
            j.client_ts_ns.get()
        ),
        (RejectReason::WrongLength as u16, 1, MessageType::Echo as u8, 42)
    );
    // 642 messages and a 1-byte block fill 65,507 bytes exactly.
    let blocks: Vec<[u8; 100]> = (0..642).map(|k| echo(k, k)).collect();
    let mut refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    refs.push(b"E");
    let dgram = big_mold("BIG", 2, &refs);
    assert_eq!(dgram.len(), 65_507);
    s.send_to(&dgram, addr).unwrap();
    let replies = recv_blocks(&s, 643, Duration::from_secs(10));
    assert_eq!(replies.len(), 643, "every block answered");
    // The reject leaves from the gateway at once, the acks after
    // sequencing: compare each kind in its own order.
    let acked: Vec<u64> = replies
        .iter()
        .filter_map(|(_, m)| as_ack(m).map(|a| a.client_seq.get()))
        .collect();
    assert_eq!(acked, (2..644).collect::<Vec<_>>());
    let rejected: Vec<(u16, u64)> = replies
        .iter()
        .filter_map(|(_, m)| as_reject(m).map(|j| (j.reason.get(), j.client_seq.get())))
        .collect();
    assert_eq!(rejected, vec![(RejectReason::WrongLength as u16, 644)]);
    let (report, _) = srv.stop().unwrap();
    assert_eq!(report.sequencer.sequenced, 642);
    assert_eq!(report.gateways[0].1.rejected_wrong_length, 2);
    assert_eq!(report.gateways[0].2.rx_oversize, 0);
}

#[test]
fn a_client_end_of_session_header_logs_the_session_out() {
    let srv = start_server(1, 0);
    let addr = srv.udp[0];
    let s = udp_client();
    udp_login(&s, addr, "QUIET");
    s.send_to(&mold("QUIET", 1, &[&echo(1, 1)]), addr).unwrap();
    assert_eq!(recv_blocks(&s, 1, Duration::from_secs(5)).len(), 1);
    let mut h = [0u8; HEADER_LEN];
    write_header_only(&mut h, &session_name("QUIET"), 2, END_OF_SESSION);
    s.send_to(&h, addr).unwrap();
    let mut buf = [0u8; 2048];
    let n = s.recv(&mut buf).expect("an End of Session answer");
    let p = MoldPacket::new_checked(&buf[..n]).unwrap();
    assert!(p.is_end_of_session());
    assert_eq!(p.sequence(), 2, "carries the next reply sequence");
    // Logged out: the address no longer speaks for the session.
    s.send_to(&mold("QUIET", 2, &[&echo(2, 2)]), addr).unwrap();
    assert!(recv_blocks(&s, 1, Duration::from_millis(300)).is_empty());
    let (report, _) = srv.stop().unwrap();
    let g = report.gateways[0].1;
    assert_eq!((g.logouts, g.dropped_unauthenticated, g.heartbeats), (1, 1, 0));
    assert_eq!(report.sequencer.sequenced, 1);
}

#[test]
fn a_request_below_the_reply_log_gets_only_what_it_asked_for_and_a_notice() {
    let mut cfg = server_config(1, 0);
    cfg.reply_log_depth = 4;
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let addr = srv.udp[0];
    let s = udp_client();
    udp_login(&s, addr, "REPLAY");
    let blocks: Vec<[u8; 100]> = (1..=8).map(|k| echo(k, k)).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    s.send_to(&mold("REPLAY", 1, &refs), addr).unwrap();
    assert_eq!(recv_blocks(&s, 8, Duration::from_secs(2)).len(), 8);
    let gone_notice = |m: &[u8; 100]| {
        let j = as_reject(m).expect("a notice");
        (
            j.reason.get(),
            j.rejected_type,
            j.client_seq.get(),
            j.order_id.get(),
        )
    };
    let notice = (RejectReason::TooOld as u16, 0, 0, 5);
    // Replies 1..=3, all gone (5..=8 kept): the notice, never 5..=7.
    let mut h = [0u8; HEADER_LEN];
    write_header_only(&mut h, &session_name("REPLAY"), 1, 3);
    s.send_to(&h, addr).unwrap();
    let got = recv_blocks(&s, 4, Duration::from_millis(500));
    assert_eq!(got.len(), 1, "nothing but the notice: {got:?}");
    assert_eq!(got[0].0, 0, "unsequenced");
    assert_eq!(gone_notice(&got[0].1), notice);
    // Replies 3..=6: the notice, then exactly 5 and 6.
    write_header_only(&mut h, &session_name("REPLAY"), 3, 4);
    s.send_to(&h, addr).unwrap();
    let got = recv_blocks(&s, 4, Duration::from_millis(500));
    assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 5, 6]);
    assert_eq!(gone_notice(&got[0].1), notice);
    // From past the next reply: nothing at all.
    write_header_only(&mut h, &session_name("REPLAY"), 20, 4);
    s.send_to(&h, addr).unwrap();
    assert!(recv_blocks(&s, 1, Duration::from_millis(300)).is_empty());
    let (report, _) = srv.stop().unwrap();
    let g = report.gateways[0].1;
    assert_eq!((g.rerequests, g.replies_gone, g.replies_retransmitted), (3, 2, 2));
}

/// `peregrine stat`'s file shows a counter change within 50 ms, however
/// the server idles (a backing-off loop iterates slowly).
#[test]
fn stat_sees_a_change_within_50_ms_under_every_idle_strategy() {
    for idle in ["spin", "yield", "backoff"] {
        let path = std::env::temp_dir().join(format!("peregrine-edges-{}-{idle}.stats", std::process::id()));
        let mut cfg = server_config(1, 0);
        cfg.idle = idle.into();
        cfg.counters_file = Some(path.clone());
        let srv = peregrine_server::serve::start(&cfg).unwrap();
        let addr = srv.udp[0];
        let s = udp_client();
        udp_login(&s, addr, "STAT");
        let accepted = || -> Option<u64> {
            let snap = read_counters(&path).ok()?;
            let (_, c) = snap.blocks.iter().find(|(t, _)| t.starts_with("udp gateway 0"))?;
            c.iter().find(|(n, _)| n == "accepted").map(|p| p.1)
        };
        // Let the loop settle into its deepest idle.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(accepted(), Some(0), "{idle}: nothing accepted yet");
        s.send_to(&mold("STAT", 1, &[&echo(1, 1)]), addr).unwrap();
        assert_eq!(recv_blocks(&s, 1, Duration::from_secs(5)).len(), 1);
        let acked = Instant::now();
        while accepted() != Some(1) {
            assert!(
                acked.elapsed() < Duration::from_millis(50),
                "{idle}: stat still shows {:?} 50 ms after the ack",
                accepted()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(srv);
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn a_malformed_soupbintcp_login_is_refused_not_authorised_and_closed() {
    use peregrine_wire::soupbintcp::{kind, write_packet};
    use std::io::Write;
    let srv = start_server(0, 1);
    let mut c = SoupClient::connect(srv.tcp[0]);
    // A Login Request one byte short.
    let mut buf = [0u8; 64];
    let n = write_packet(&mut buf, kind::LOGIN_REQUEST, &[b' '; 45]).unwrap();
    c.stream.write_all(&buf[..n]).unwrap();
    let (ty, payload) = c.next_packet(Duration::from_secs(5)).expect("an answer");
    assert_eq!((ty, payload), (kind::LOGIN_REJECTED, vec![b'A']));
    assert!(c.closed_within(Duration::from_secs(5)));
    let (report, _) = srv.stop().unwrap();
    let g = report.gateways[0].1;
    assert_eq!((g.dropped_malformed, g.logins_rejected), (1, 1));
}

#[test]
fn stated_udp_rules_hold_on_the_wire() {
    use peregrine_wire::message::Logout;
    use zerocopy::IntoBytes;
    let srv = start_server(1, 0);
    let addr = srv.udp[0];
    let s = udp_client();
    // A 99-byte Login or one of a wrong version: no answer, dropped_malformed.
    let login = peregrine_wire::message::Login::new(
        peregrine_wire::alpha::checked_alpha_field(SECRET).unwrap(),
        0,
        7,
    );
    s.send_to(&mold("OTHER", 0, &[&login.as_bytes()[..99]]), addr)
        .unwrap();
    let mut v2 = login.as_bytes().to_vec();
    v2[1] = 2;
    s.send_to(&mold("OTHER", 0, &[&v2]), addr).unwrap();
    // A Login with other blocks, from an address not logged in: unanswered.
    s.send_to(&mold("OTHER", 0, &[login.as_bytes(), &echo(1, 1)]), addr)
        .unwrap();
    assert!(recv_blocks(&s, 1, Duration::from_millis(300)).is_empty());
    let (next, _) = udp_login(&s, addr, "OTHER");
    assert_eq!(next, 1);
    // Client sequence 0: a copy of nothing kept, answered TooOld.
    s.send_to(&mold("OTHER", 0, &[&echo(1, 1)]), addr).unwrap();
    let r = recv_blocks(&s, 1, Duration::from_secs(5));
    let j = as_reject(&r[0].1).expect("a Reject");
    assert_eq!(
        (j.reason.get(), j.client_seq.get()),
        (RejectReason::TooOld as u16, 0)
    );
    // A Login or Logout inside a data packet: UnknownType, and it uses its
    // client sequence number (the Echo after it is 2).
    let logout = Logout::new(3);
    s.send_to(&mold("OTHER", 1, &[logout.as_bytes(), &echo(2, 2)]), addr)
        .unwrap();
    let r = recv_blocks(&s, 2, Duration::from_secs(5));
    let j = r.iter().find_map(|(_, m)| as_reject(m)).expect("a Reject");
    assert_eq!(
        (j.reason.get(), j.client_seq.get()),
        (RejectReason::UnknownType as u16, 1)
    );
    let a = r.iter().find_map(|(_, m)| as_ack(m)).expect("an Ack");
    assert_eq!(a.client_seq.get(), 2);
    // Header sequence + k past 2^64 - 1 never wraps to a copy: refused past
    // the reorder window with a SequenceGap report naming 3.
    s.send_to(&mold("OTHER", u64::MAX, &[&echo(3, 3), &echo(4, 4)]), addr)
        .unwrap();
    let r = recv_blocks(&s, 1, Duration::from_secs(5));
    let j = as_reject(&r[0].1).expect("a gap report");
    assert_eq!(
        (j.reason.get(), j.client_seq.get()),
        (RejectReason::SequenceGap as u16, 3)
    );
    // A Logout does not use a client sequence number.
    s.send_to(&mold("OTHER", 0, &[logout.as_bytes()]), addr).unwrap();
    let mut buf = [0u8; 2048];
    let n = s.recv(&mut buf).expect("End of Session");
    assert!(MoldPacket::new_checked(&buf[..n]).unwrap().is_end_of_session());
    assert_eq!(udp_login(&s, addr, "OTHER").0, 3);
    let (report, _) = srv.stop().unwrap();
    let g = report.gateways[0].1;
    assert_eq!(g.dropped_malformed, 2);
    assert_eq!(g.dropped_unauthenticated, 1);
    assert_eq!(report.sequencer.sequenced, 1);
}
