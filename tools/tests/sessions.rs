//! Sessions end to end over real sockets: credentials, address binding,
//! unauthenticated and spoofed senders, take-over, MoldUDP64 retransmission
//! requests and SoupBinTCP re-login replay.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_wire::message::{LoginRejected, Logout, MessageType};
use peregrine_wire::moldudp64::{session_name, write_header_only, HEADER_LEN};
use peregrine_wire::soupbintcp::kind;
use std::time::Duration;
use zerocopy::{FromBytes, IntoBytes};

fn rejected_with(m: &[u8; 100]) -> u8 {
    assert_eq!(m[0], MessageType::LoginRejected as u8, "a LoginRejected");
    LoginRejected::read_from_bytes(m).unwrap().reason
}

#[test]
fn unauthenticated_and_spoofed_udp_senders_get_nothing_sequenced() {
    let srv = start_server(1, 0);
    let addr = srv.udp[0];
    let quiet = Duration::from_millis(300);

    // An unknown session, and a configured one that never logged in: no
    // answer at all (no reflection), nothing sequenced.
    let stranger = udp_client();
    stranger
        .send_to(&mold("NOBODY", 1, &[&echo(1, 1)]), addr)
        .unwrap();
    stranger.send_to(&mold("SPOOF", 1, &[&echo(1, 2)]), addr).unwrap();
    assert!(recv_blocks(&stranger, 1, quiet).is_empty());

    // Wrong secret, unknown session: Login Rejected `A`, still nothing taken.
    assert_eq!(
        rejected_with(&udp_login_with(&stranger, addr, "SPOOF", "guess")),
        b'A'
    );
    assert_eq!(
        rejected_with(&udp_login_with(&stranger, addr, "NOBODY", SECRET)),
        b'A'
    );
    stranger.send_to(&mold("SPOOF", 1, &[&echo(1, 3)]), addr).unwrap();
    assert!(recv_blocks(&stranger, 1, quiet).is_empty());

    // The real client logs in and is served.
    let owner = udp_client();
    assert_eq!(udp_login(&owner, addr, "SPOOF"), (1, 1));
    owner.send_to(&mold("SPOOF", 1, &[&echo(1, 4)]), addr).unwrap();
    let r = recv_blocks(&owner, 1, Duration::from_secs(5));
    assert_eq!(as_ack(&r[0].1).expect("acked").global_seq.get(), 1);

    // Another address naming the bound session (a spoofed source, or a
    // hijack attempt) is dropped; its login is refused while the owner is
    // live (policy reject).
    let spoofer = udp_client();
    spoofer
        .send_to(&mold("SPOOF", 2, &[&echo(1, 5), &echo(1, 6)]), addr)
        .unwrap();
    let mut h = [0u8; HEADER_LEN];
    write_header_only(&mut h, &session_name("SPOOF"), 1, 5); // re-request
    spoofer.send_to(&h, addr).unwrap();
    assert!(
        recv_blocks(&spoofer, 1, quiet).is_empty(),
        "nothing answered to a spoofer"
    );
    assert_eq!(
        rejected_with(&udp_login_with(&spoofer, addr, "SPOOF", SECRET)),
        b'S'
    );
    assert!(
        recv_blocks(&owner, 1, quiet).is_empty(),
        "the owner saw nothing of it"
    );

    let (report, _) = srv.stop().unwrap();
    let g = report.gateways[0].1;
    assert_eq!(report.sequencer.sequenced, 1, "only the owner's message");
    assert_eq!(g.accepted, 1);
    assert_eq!(
        g.dropped_unauthenticated, 5,
        "2 stranger, 1 after bad login, 1 spoofed, 1 re-request"
    );
    assert_eq!((g.logins, g.logins_rejected), (1, 3));
}

#[test]
fn takeover_policy_rebinds_a_udp_session_and_the_old_address_is_cut_off() {
    let mut cfg = server_config(1, 1);
    cfg.login_policy = "takeover".into();
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let addr = srv.udp[0];
    let old = udp_client();
    udp_login(&old, addr, "OTHER");
    old.send_to(&mold("OTHER", 1, &[&echo(1, 1)]), addr).unwrap();
    assert_eq!(recv_blocks(&old, 1, Duration::from_secs(5)).len(), 1);
    // The new address takes over and continues the session's sequences.
    let new = udp_client();
    assert_eq!(udp_login(&new, addr, "OTHER"), (2, 2));
    old.send_to(&mold("OTHER", 2, &[&echo(1, 2)]), addr).unwrap();
    assert!(recv_blocks(&old, 1, Duration::from_millis(300)).is_empty());
    new.send_to(&mold("OTHER", 2, &[&echo(1, 3)]), addr).unwrap();
    let r = recv_blocks(&new, 1, Duration::from_secs(5));
    assert_eq!(r[0].0, 2, "reply sequence continues");
    assert_eq!(as_ack(&r[0].1).unwrap().client_tag.get(), 3);

    // TCP: the second login wins, the first connection is closed.
    let mut first = SoupClient::login(srv.tcp[0], "ONLYONE");
    let _second = SoupClient::login(srv.tcp[0], "ONLYONE");
    assert!(first.closed_within(Duration::from_secs(5)));
    let (report, _) = srv.stop().unwrap();
    assert_eq!(report.gateways[0].1.logins_taken_over, 1);
    assert_eq!(report.gateways[1].1.logins_taken_over, 1);
    assert_eq!(report.sequencer.sequenced, 2);
}

#[test]
fn lost_udp_replies_are_served_again_on_a_moldudp64_request() {
    let srv = start_server(1, 0);
    let addr = srv.udp[0];
    let s = udp_client();
    udp_login(&s, addr, "REPLAY");
    let blocks: Vec<[u8; 100]> = (0..20).map(|k| echo(k, 100 + k)).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    s.send_to(&mold("REPLAY", 1, &refs[..10]), addr).unwrap();
    s.send_to(&mold("REPLAY", 11, &refs[10..]), addr).unwrap();
    let first = recv_blocks(&s, 20, Duration::from_secs(5));
    assert_eq!(first.len(), 20);
    // Pretend replies 5..=16 were lost: ask for them.
    let mut h = [0u8; HEADER_LEN];
    write_header_only(&mut h, &session_name("REPLAY"), 5, 12);
    s.send_to(&h, addr).unwrap();
    let again = recv_blocks(&s, 12, Duration::from_secs(5));
    assert_eq!(again.len(), 12);
    for (seq, m) in &again {
        let orig = first.iter().find(|(q, _)| q == seq).expect("a reply sent before");
        assert_eq!(&orig.1, m, "reply {seq} resent byte for byte");
    }
    assert_eq!(
        again.iter().map(|r| r.0).collect::<Vec<_>>(),
        (5..17).collect::<Vec<_>>()
    );
    // A request past the end gets only what exists.
    write_header_only(&mut h, &session_name("REPLAY"), 19, 50);
    s.send_to(&h, addr).unwrap();
    assert_eq!(recv_blocks(&s, 5, Duration::from_millis(500)).len(), 2);
    let (report, _) = srv.stop().unwrap();
    assert_eq!(report.sequencer.sequenced, 20, "requests never sequence anything");
    assert_eq!(report.gateways[0].1.rerequests, 2);
}

#[test]
fn soupbintcp_checks_passwords_and_replays_from_the_requested_sequence() {
    let srv = start_server(0, 1);
    let addr = srv.tcp[0];
    let (mut bad, answer) = SoupClient::try_login(addr, "TAKER", "wrong", 0);
    assert_eq!(answer, Some((kind::LOGIN_REJECTED, vec![b'A'])));
    assert!(bad.closed_within(Duration::from_secs(5)));
    let (_, answer) = SoupClient::try_login(addr, "STRANGER", SECRET, 0);
    assert_eq!(answer, Some((kind::LOGIN_REJECTED, vec![b'A'])));

    let mut c = SoupClient::login(addr, "TAKER");
    for k in 0..6 {
        c.send_message(&echo(k, k));
    }
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(c.next_reply(Duration::from_secs(5)).expect("a reply"));
    }
    // A live session refuses a second login (policy reject) ...
    let (_, answer) = SoupClient::try_login(addr, "TAKER", SECRET, 0);
    assert_eq!(answer, Some((kind::LOGIN_REJECTED, vec![b'S'])));
    // ... and once the connection is gone, a re-login with sequence 3 gets
    // replies 3..=6 again, then new ones continue at 7.
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    let (mut again, answer) = SoupClient::try_login(addr, "TAKER", SECRET, 3);
    assert_eq!(answer, Some((kind::LOGIN_ACCEPTED, 3u64.to_le_bytes().to_vec())));
    for want in &seen[2..] {
        assert_eq!(&again.next_reply(Duration::from_secs(5)).expect("replayed"), want);
    }
    again.send_message(&echo(9, 9));
    let next = again.next_reply(Duration::from_secs(5)).expect("a new reply");
    assert_eq!(
        as_ack(&next).unwrap().client_seq.get(),
        7,
        "client sequence continues"
    );
    let (report, _) = srv.stop().unwrap();
    assert_eq!(report.sequencer.sequenced, 7);
    let g = report.gateways[0].1;
    assert_eq!((g.logins, g.logins_rejected, g.replies_retransmitted), (2, 3, 4));
}

/// Exactly once over a bad network: 5% of datagrams dropped, 5% duplicated
/// and 5% reordered in both directions, through the simulator's lossy link
/// and, separately, through the relay. Every message is sequenced exactly
/// once and answered; the server's counters show the faults were real.
#[test]
fn every_message_is_sequenced_exactly_once_through_a_lossy_network() {
    use peregrine_tools::client::{self, ClientConfig, Mode, TransportKind};
    use peregrine_tools::relay::{self, Faults};
    for through_relay in [false, true] {
        let srv = start_server(1, 0);
        let relay = through_relay
            .then(|| relay::start(lo(), srv.udp[0], Faults::uniform(0.05), 7).expect("relay starts"));
        let target = relay.as_ref().map_or(srv.udp[0], |r| r.addr);
        let r = client::run(&ClientConfig {
            secret: SECRET.into(),
            sessions: 2,
            mode: Mode::Rate(20_000.0),
            duration: Duration::from_millis(1500),
            warmup: Duration::ZERO,
            keep_global_seqs: true,
            retransmit: Some(Duration::from_millis(5)),
            faults: (!through_relay).then(|| Faults::uniform(0.05)),
            drain: Duration::from_secs(5),
            ..ClientConfig::new(TransportKind::Udp, target)
        })
        .expect("client run");
        let relay_counters = relay.map(|r| r.stop().expect("relay stops"));
        let (report, _) = srv.stop().unwrap();
        assert!(r.sent > 10_000, "a real load ({})", r.sent);
        assert_eq!(r.lost(), 0, "every message answered (relay: {through_relay})");
        assert_eq!(r.recorder.duplicates, 0, "none sequenced twice");
        assert!(r.retransmitted > 0, "losses were recovered by resending");
        let mut g = r.recorder.global_seqs.unwrap();
        g.sort_unstable();
        assert_eq!(
            g,
            (1..=r.sent).collect::<Vec<_>>(),
            "one global sequence per message"
        );
        assert_eq!(report.sequencer.sequenced, r.sent);
        let c = report.gateways[0].1;
        assert!(c.dedup_hits > 0 && c.gap_notices > 0, "{c:?}");
        if let Some(rc) = relay_counters {
            assert!(rc.dropped[0] > 0 && rc.dropped[1] > 0, "{rc:?}");
        }
    }
}

/// Back-pressure over UDP: once the input ring has been full for
/// `busy_after_us`, the rest of a datagram is answered Busy (naming the
/// first message not taken) instead of waiting; nothing Busy is sequenced,
/// and the client's resend from there is taken in order.
#[test]
fn a_full_input_ring_answers_busy_and_the_resend_is_taken() {
    use peregrine_wire::message::RejectReason;
    let mut cfg = server_config(1, 0);
    cfg.ring_capacity = Some(2);
    cfg.busy_after_us = 0;
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let s = udp_client();
    udp_login(&s, srv.udp[0], "HOLD");
    let blocks: Vec<[u8; 100]> = (1..=14).map(|k| echo(k, k)).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    s.send_to(&mold("HOLD", 1, &refs), srv.udp[0]).unwrap();
    let got = recv_blocks(&s, 3, Duration::from_secs(2));
    let acks: Vec<u64> = got
        .iter()
        .filter_map(|(_, m)| as_ack(m))
        .map(|a| a.client_seq.get())
        .collect();
    let busy = got
        .iter()
        .filter_map(|(_, m)| as_reject(m))
        .find(|j| j.reason.get() == RejectReason::Busy as u16)
        .expect("a Busy reject");
    let first_untaken = busy.client_seq.get();
    assert_eq!(
        acks,
        (1..first_untaken).collect::<Vec<_>>(),
        "the taken prefix is acked"
    );
    assert!(first_untaken <= 14);
    // Resend from the first untaken message, one per datagram: all taken.
    for k in first_untaken..=14 {
        s.send_to(&mold("HOLD", k, &[refs[k as usize - 1]]), srv.udp[0])
            .unwrap();
        let r = recv_blocks(&s, 1, Duration::from_secs(2));
        assert_eq!(as_ack(&r[0].1).map(|a| a.client_seq.get()), Some(k));
    }
    let (report, _) = srv.stop().unwrap();
    assert_eq!(report.sequencer.sequenced, 14, "each message sequenced once");
    assert!(report.gateways[0].1.rejected_busy >= 1);
}

/// A login clears messages held behind a gap: a restarted client resends
/// from `next_client_seq`, and its new message must not be replaced by the
/// old client's held copy with the same number.
#[test]
fn a_new_login_drops_held_messages_of_the_previous_client() {
    let srv = start_server(1, 0);
    let addr = srv.udp[0];
    let old = udp_client();
    udp_login(&old, addr, "HOLD");
    old.send_to(&mold("HOLD", 1, &[&echo(1, 1)]), addr).unwrap();
    old.send_to(&mold("HOLD", 3, &[&echo(3, 333)]), addr).unwrap(); // held: 2 is missing
    assert_eq!(
        recv_blocks(&old, 2, Duration::from_secs(2)).len(),
        2,
        "ack of 1 and a gap report"
    );
    old.send_to(&mold("HOLD", 0, &[Logout::new(1).as_bytes()]), addr)
        .unwrap();
    let new = udp_client();
    assert_eq!(udp_login(&new, addr, "HOLD"), (2, 2));
    new.send_to(&mold("HOLD", 2, &[&echo(2, 22), &echo(3, 3)]), addr)
        .unwrap();
    let r = recv_blocks(&new, 2, Duration::from_secs(2));
    let tags: Vec<(u64, u64)> = r
        .iter()
        .filter_map(|(_, m)| as_ack(m))
        .map(|a| (a.client_seq.get(), a.client_tag.get()))
        .collect();
    assert_eq!(
        tags,
        vec![(2, 22), (3, 3)],
        "the new client's messages, not the old held one"
    );
    srv.stop().unwrap();
}

/// Answers that are gone still get an answer: a retransmission request
/// starting before the oldest kept reply gets the kept ones, and a resent
/// message whose reject has left the reject log gets TooOld.
#[test]
fn replies_and_rejects_no_longer_kept_are_skipped_or_answered_too_old() {
    use peregrine_wire::message::RejectReason;
    let mut cfg = server_config(1, 0);
    cfg.reply_log_depth = 4;
    cfg.session_rate_limit = 1;
    cfg.session_rate_burst = 8;
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let s = udp_client();
    udp_login(&s, srv.udp[0], "REPLAY");
    let blocks: Vec<[u8; 100]> = (1..=8).map(|k| echo(k, k)).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    s.send_to(&mold("REPLAY", 1, &refs), srv.udp[0]).unwrap();
    assert_eq!(recv_blocks(&s, 8, Duration::from_secs(2)).len(), 8);
    let mut h = [0u8; HEADER_LEN];
    write_header_only(&mut h, &session_name("REPLAY"), 1, 8);
    s.send_to(&h, srv.udp[0]).unwrap();
    let kept = recv_blocks(&s, 8, Duration::from_millis(500));
    // Replies 1..=4 are gone: an unsequenced TooOld notice naming the
    // first one kept comes before the kept ones.
    let (notice_seq, notice) = kept.first().expect("an answer");
    let notice = as_reject(notice).expect("the replies-gone notice");
    assert_eq!(
        (
            *notice_seq,
            notice.reason.get(),
            notice.client_seq.get(),
            notice.order_id.get()
        ),
        (0, RejectReason::TooOld as u16, 0, 5)
    );
    assert_eq!(
        kept[1..].iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![5, 6, 7, 8],
        "the four kept"
    );
    // 80 more messages over the rate limit: rejected, and the first of
    // those rejects leaves the 64-entry reject log.
    for k in 0..8u64 {
        let more: Vec<[u8; 100]> = (0..10).map(|j| echo(9 + 10 * k + j, 0)).collect();
        let more: Vec<&[u8]> = more.iter().map(|b| &b[..]).collect();
        s.send_to(&mold("REPLAY", 9 + 10 * k, &more), srv.udp[0]).unwrap();
    }
    assert_eq!(recv_blocks(&s, 80, Duration::from_secs(2)).len(), 80);
    s.send_to(&mold("REPLAY", 9, &[&echo(9, 0)]), srv.udp[0]).unwrap();
    let r = recv_blocks(&s, 1, Duration::from_secs(2));
    let j = as_reject(&r[0].1).expect("an answer");
    assert_eq!(
        (j.reason.get(), j.client_seq.get()),
        (RejectReason::TooOld as u16, 9)
    );
    let (report, _) = srv.stop().unwrap();
    assert_eq!(report.sequencer.sequenced, 8);
}
