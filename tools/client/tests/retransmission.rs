//! The UDP client's retransmission against a scripted peer on loopback (no
//! server): what it resends when the server reports a gap, when its timer
//! runs out, and which replies it asks for again.
#![forbid(unsafe_code)]

use peregrine_client::{session_name, Event, Outbound, UdpClient};
use peregrine_netio::clock::now_ns;
use peregrine_wire::message::{Ack, LoginAccepted, Reject, RejectReason};
use peregrine_wire::moldudp64::{MoldBuilder, MoldPacket, RetransmissionRequest};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use zerocopy::little_endian::U64;
use zerocopy::IntoBytes;

/// A packet of session 0 with sequence `seq` and `blocks`.
fn packet(seq: u64, blocks: &[&[u8]]) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut b = MoldBuilder::new(&mut buf, &session_name(0), seq).unwrap();
    for block in blocks {
        assert!(b.push(block));
    }
    let n = b.finish();
    buf.truncate(n);
    buf
}

fn ack(client_seq: u64) -> Ack {
    let mut a = Ack::empty();
    a.client_seq = U64::new(client_seq);
    a.global_seq = U64::new(100 + client_seq);
    a
}

/// What the client sends next: (packet sequence, message count, raw, from).
/// With `data_only`, retransmission requests are skipped.
fn next_from_client(peer: &UdpSocket, c: &mut UdpClient, data_only: bool) -> (u64, u16, Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        assert!(Instant::now() < until, "the client sent nothing");
        c.poll(|_, _| {}).unwrap();
        c.tick(now_ns()).unwrap();
        if let Ok((n, from)) = peer.recv_from(&mut buf) {
            let d = buf[..n].to_vec();
            if let Some(r) = RetransmissionRequest::parse(&d) {
                if data_only {
                    continue;
                }
                return (r.sequence, r.count, d, from);
            }
            let p = MoldPacket::new_checked(&d).unwrap();
            return (p.sequence(), p.count(), d, from);
        }
    }
}

#[test]
fn resends_what_the_server_reports_missing_and_what_times_out_and_asks_for_lost_replies() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let rto = Duration::from_millis(200);
    let mut c = UdpClient::new(&[peer.local_addr().unwrap()], 1)
        .unwrap()
        .with_retransmission(rto);

    // Login: answered with the sequences to resume at.
    c.start_login("test").unwrap();
    let (seq, count, _, to) = next_from_client(&peer, &mut c, true);
    assert_eq!((seq, count), (0, 1), "a login");
    assert!(c.logging_in());
    peer.send_to(&packet(0, &[LoginAccepted::new(0, 5, 1, 4096).as_bytes()]), to)
        .unwrap();
    let mut accepted = false;
    let until = Instant::now() + Duration::from_secs(2);
    while !accepted && Instant::now() < until {
        c.poll(|e, _| {
            accepted |= matches!(
                e,
                Event::LoginAccepted {
                    next_client_seq: 5,
                    ..
                }
            )
        })
        .unwrap();
    }
    assert!(accepted && !c.logging_in());
    assert_eq!(c.next_client_seq(0), Some(5), "resumes where the server says");

    // Three messages in one datagram, then one more alone.
    c.send(
        0,
        &[Outbound::echo(1, 1), Outbound::echo(2, 2), Outbound::echo(3, 3)],
    )
    .unwrap();
    c.send(0, &[Outbound::echo(4, 4)]).unwrap();
    c.flush().unwrap();
    assert_eq!(next_from_client(&peer, &mut c, true).0, 5);
    assert_eq!(next_from_client(&peer, &mut c, true).0, 8);

    // The server reports 6 missing: 6 and 7 (the rest of its datagram) go
    // again at once, 8 (another datagram) does not.
    let gap = Reject::for_block(&[], RejectReason::SequenceGap as u16, 6, 0);
    peer.send_to(&packet(0, &[gap.as_bytes()]), to).unwrap();
    let (seq, count, _, _) = next_from_client(&peer, &mut c, true);
    assert_eq!((seq, count), (6, 2));
    assert_eq!(c.retransmitted(), 2);

    // Everything is answered, in replies 1 and 3..5: reply 2 is lost and is
    // asked for once it has stayed missing.
    peer.send_to(&packet(1, &[ack(5).as_bytes()]), to).unwrap();
    peer.send_to(
        &packet(3, &[ack(6).as_bytes(), ack(7).as_bytes(), ack(8).as_bytes()]),
        to,
    )
    .unwrap();
    let (seq, count, raw, _) = next_from_client(&peer, &mut c, false);
    assert!(
        RetransmissionRequest::parse(&raw).is_some(),
        "a retransmission request"
    );
    assert_eq!((seq, count), (2, 1));
    assert_eq!(c.next_reply_seq(0), Some(2));
    assert!(c.ready(0));

    // A message nobody answers is resent alone when the timer runs out.
    c.send(0, &[Outbound::echo(9, 9)]).unwrap();
    c.flush().unwrap();
    let sent = Instant::now();
    assert_eq!(next_from_client(&peer, &mut c, true).0, 9);
    let (seq, count, _, _) = next_from_client(&peer, &mut c, true);
    assert_eq!((seq, count), (9, 1));
    assert!(
        sent.elapsed() >= rto - Duration::from_millis(5),
        "after the timeout"
    );
    assert_eq!(c.retransmitted(), 3);

    // A late or duplicated login answer does not rewind the session.
    peer.send_to(&packet(0, &[LoginAccepted::new(0, 1, 1, 4096).as_bytes()]), to)
        .unwrap();
    let mut seen = false;
    let until = Instant::now() + Duration::from_secs(2);
    while !seen && Instant::now() < until {
        c.poll(|e, _| {
            seen |= matches!(
                e,
                Event::LoginAccepted {
                    next_client_seq: 1,
                    ..
                }
            )
        })
        .unwrap();
    }
    assert!(seen);
    assert_eq!(c.next_client_seq(0), Some(10));
    assert_eq!(c.next_reply_seq(0), Some(2));
}
