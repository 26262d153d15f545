//! The UDP gateway end to end without sockets: datagrams go in through
//! netio's in-memory port, the test plays the sequencer on the rings, and
//! the datagrams the gateway sends are read back and checked.

use peregrine_gateway::directory::{SessionCredential, SessionDirectory};
use peregrine_gateway::{ring_pair, GatewayLoop, GatewayOptions, SequencerRings, UdpGateway};
use peregrine_netio::memory::{MemoryHandle, MemoryPort};
use peregrine_sequencer::slot::{InboundSlot, OutboundSlot};
use peregrine_wire::alpha::checked_alpha_field;
use peregrine_wire::message::{
    Ack, Echo, Login, LoginAccepted, LoginRejectReason, LoginRejected, MessageType, Reject, RejectReason,
    MESSAGE_LEN,
};
use peregrine_wire::moldudp64::{session_name, MoldBuilder, MoldPacket, MAX_PAYLOAD};
use std::net::SocketAddr;
use std::sync::Arc;
use zerocopy::{FromBytes, IntoBytes};

const SESSION: &str = "S0";
const SECRET: &str = "pw";

struct Rig {
    gw: UdpGateway<MemoryPort>,
    net: MemoryHandle,
    seq: SequencerRings,
}

fn client() -> SocketAddr {
    "10.1.1.1:5000".parse().unwrap()
}

fn rig(opts: GatewayOptions, ring: usize) -> Rig {
    rig_on(opts, ring, MemoryPort::new("10.0.0.1:9000".parse().unwrap()))
}

/// A rig whose port lends `slots` transmit buffers, as the DPDK port does.
fn lending_rig(opts: GatewayOptions, ring: usize, slots: usize) -> Rig {
    rig_on(
        opts,
        ring,
        MemoryPort::lending("10.0.0.1:9000".parse().unwrap(), slots),
    )
}

fn rig_on(opts: GatewayOptions, ring: usize, (port, net): (MemoryPort, MemoryHandle)) -> Rig {
    let directory = SessionDirectory::new(&[SessionCredential {
        name: checked_alpha_field(SESSION).unwrap(),
        secret: checked_alpha_field(SECRET).unwrap(),
    }])
    .unwrap();
    let (rings, seq) = ring_pair(ring).unwrap();
    let gw = UdpGateway::new(0, port, rings, Arc::new(directory), opts);
    Rig { gw, net, seq }
}

fn packet(seq: u64, blocks: &[&[u8]]) -> Vec<u8> {
    let mut buf = [0u8; MAX_PAYLOAD];
    let mut b = MoldBuilder::new(&mut buf, &session_name(SESSION), seq).unwrap();
    for m in blocks {
        assert!(b.push(m));
    }
    let n = b.finish();
    buf[..n].to_vec()
}

fn echo(tag: u64) -> Vec<u8> {
    Echo::new(0, tag).as_bytes().to_vec()
}

type Sent = Vec<(u64, Vec<[u8; MESSAGE_LEN]>)>;

impl Rig {
    /// Sends `data` from `from` and runs one receive poll and one transmit
    /// poll (which sends what the receive side queued); returns the
    /// datagrams handled.
    fn datagram(&mut self, from: SocketAddr, data: &[u8]) -> usize {
        self.net.push(from, data);
        self.poll()
    }

    fn poll(&mut self) -> usize {
        let n = self.gw.poll_rx();
        self.gw.poll_tx();
        n
    }

    /// The datagrams sent so far, as (reply sequence, messages).
    fn sent(&mut self) -> Sent {
        self.net
            .take_sent()
            .into_iter()
            .map(|(to, d)| {
                assert_eq!(to, client(), "replies go to the bound address");
                let p = MoldPacket::new_checked(&d).unwrap();
                let msgs = p
                    .blocks()
                    .map(|b| <[u8; MESSAGE_LEN]>::try_from(b).unwrap())
                    .collect();
                (p.sequence(), msgs)
            })
            .collect()
    }

    fn login(&mut self) {
        let login = Login::new(checked_alpha_field(SECRET).unwrap(), 0, 7);
        self.datagram(client(), &packet(0, &[login.as_bytes()]));
        let sent = self.sent();
        assert_eq!(sent.len(), 1);
        let ok = LoginAccepted::read_from_bytes(&sent[0].1[0]).unwrap();
        assert_eq!(ok.msg_type, MessageType::LoginAccepted as u8);
        assert_eq!((ok.next_client_seq.get(), ok.next_reply_seq.get()), (1, 1));
    }

    /// What reached the sequencer since the last call.
    fn staged(&mut self) -> Vec<InboundSlot> {
        std::iter::from_fn(|| self.seq.0.pop()).collect()
    }

    /// The application answers `slot` with an Ack naming its client sequence.
    fn answer(&mut self, slot: &InboundSlot) {
        let mut a = Ack::empty();
        a.client_seq.set(slot.client_seq);
        let out = OutboundSlot::reply(slot.origin, &zerocopy::transmute!(a));
        assert!(self.seq.1.push(out).is_ok());
    }
}

fn client_seqs(slots: &[InboundSlot]) -> Vec<u64> {
    slots.iter().map(|s| s.client_seq).collect()
}

fn reject(msg: &[u8; MESSAGE_LEN]) -> (u16, u64) {
    let r = Reject::read_from_bytes(msg).unwrap();
    assert_eq!(r.msg_type, MessageType::Reject as u8);
    (r.reason.get(), r.client_seq.get())
}

#[test]
fn messages_are_staged_in_order_and_replies_packed_per_session() {
    let mut r = rig(GatewayOptions::default(), 64);
    r.login();
    assert_eq!(
        r.datagram(client(), &packet(1, &[&echo(1), &echo(2), &echo(3)])),
        1
    );
    let staged = r.staged();
    assert_eq!(client_seqs(&staged), vec![1, 2, 3]);
    assert_eq!(staged[1].msg[..], echo(2)[..], "the block, copied once");
    for s in &staged {
        r.answer(s);
    }
    assert_eq!(r.gw.poll_tx(), 3);
    let sent = r.sent();
    assert_eq!(sent.len(), 1, "one datagram for the three replies");
    assert_eq!((sent[0].0, sent[0].1.len()), (1, 3));
}

/// Login, 40 messages answered in one drain, a retransmission request for
/// replies 3..=5, and a message past a gap: everything the gateway sends,
/// as raw datagrams.
fn conversation(r: &mut Rig) -> Vec<(SocketAddr, Vec<u8>)> {
    r.login();
    let blocks: Vec<Vec<u8>> = (1..=40).map(echo).collect();
    let mut next = 1;
    for chunk in blocks.chunks(10) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        r.net.push(client(), &packet(next, &refs));
        next += chunk.len() as u64;
    }
    r.gw.poll_rx();
    for s in r.staged() {
        r.answer(&s);
    }
    r.gw.poll_tx();
    let mut request = [0u8; 20];
    peregrine_wire::moldudp64::write_header_only(&mut request, &session_name(SESSION), 3, 3);
    r.datagram(client(), &request);
    r.datagram(client(), &packet(45, &[&echo(45)]));
    r.net.take_sent()
}

#[test]
fn replies_built_in_the_ports_own_buffers_are_the_datagrams_a_batch_gives() {
    let plain = conversation(&mut rig(GatewayOptions::default(), 64));
    // Two buffers: the drain of 40 replies fills them and must send
    // mid-drain, then go on.
    let lent = conversation(&mut lending_rig(GatewayOptions::default(), 64, 2));
    assert_eq!(lent.len(), plain.len());
    let (last, replies) = plain.split_last().unwrap();
    assert!(
        lent[..replies.len()] == *replies,
        "the replies: same datagrams, same order, byte for byte"
    );
    // The gap report carries its arrival time: compare what it says.
    let gap_report = |d: &[u8]| {
        let p = MoldPacket::new_checked(d).unwrap();
        let msg = <[u8; MESSAGE_LEN]>::try_from(p.blocks().next().unwrap()).unwrap();
        (d.len(), p.sequence(), reject(&msg))
    };
    assert_eq!(gap_report(&lent.last().unwrap().1), gap_report(&last.1));
    assert_eq!(lent.last().unwrap().0, last.0);
    let shape: Vec<(u64, u16)> = plain
        .iter()
        .map(|(_, d)| {
            let p = MoldPacket::new_checked(d).unwrap();
            (p.sequence(), p.count())
        })
        .collect();
    assert_eq!(
        shape,
        vec![(1, 14), (15, 14), (29, 12), (3, 3), (0, 1)],
        "replies packed 14 per datagram, the three asked for again, the gap reported"
    );
}

#[test]
fn a_retransmission_gets_its_original_reply_and_is_not_staged_again() {
    let mut r = rig(GatewayOptions::default(), 64);
    r.login();
    r.datagram(client(), &packet(1, &[&echo(1), &echo(2)]));
    for s in r.staged() {
        r.answer(&s);
    }
    r.gw.poll_tx();
    let first = r.sent();
    r.datagram(client(), &packet(2, &[&echo(2)]));
    assert!(r.staged().is_empty(), "never sequenced twice");
    let again = r.sent();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, 2, "its original reply sequence");
    assert_eq!(again[0].1[0], first[0].1[1]);
    assert_eq!(r.gw.counters().dedup_hits, 1);
}

#[test]
fn a_gap_is_reported_and_held_messages_follow_once_it_fills() {
    let mut r = rig(GatewayOptions::default(), 64);
    r.login();
    r.datagram(client(), &packet(2, &[&echo(2), &echo(3)]));
    assert!(r.staged().is_empty(), "held behind the gap");
    let sent = r.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, 0, "session-layer rejects are unsequenced");
    assert_eq!(reject(&sent[0].1[0]), (RejectReason::SequenceGap as u16, 1));
    r.datagram(client(), &packet(1, &[&echo(1)]));
    assert_eq!(client_seqs(&r.staged()), vec![1, 2, 3]);
    assert!(r.sent().is_empty(), "nothing left to report");
}

#[test]
fn strangers_and_broken_datagrams_get_no_answer() {
    let mut r = rig(GatewayOptions::default(), 64);
    r.login();
    let stranger: SocketAddr = "10.9.9.9:1".parse().unwrap();
    r.net.push(stranger, &packet(1, &[&echo(1)]));
    r.net.push(client(), &[1, 2, 3]);
    r.poll();
    assert!(r.staged().is_empty());
    assert!(r.net.take_sent().is_empty(), "no reflection");
    let c = r.gw.counters();
    assert_eq!((c.dropped_unauthenticated, c.dropped_malformed), (1, 1));
}

#[test]
fn a_full_ring_keeps_the_datagram_in_the_port_then_answers_busy() {
    let opts = GatewayOptions {
        busy_after: std::time::Duration::from_millis(20),
        ..GatewayOptions::default()
    };
    let mut r = rig(opts, 2);
    r.login();
    r.datagram(client(), &packet(1, &[&echo(1), &echo(2), &echo(3)]));
    // Message 3 waits in the port while the ring is full.
    assert_eq!(client_seqs(&r.staged()), vec![1, 2]);
    assert_eq!(r.gw.counters().ring_full, 1);
    assert!(r.net.take_sent().is_empty());
    // The ring has drained: the next poll resumes with it.
    r.poll();
    assert_eq!(client_seqs(&r.staged()), vec![3]);
    // Full again, and for longer than busy_after: Busy for the first
    // message not taken.
    r.datagram(client(), &packet(4, &[&echo(4), &echo(5), &echo(6)]));
    std::thread::sleep(std::time::Duration::from_millis(30));
    r.poll();
    let sent = r.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(reject(&sent[0].1[0]), (RejectReason::Busy as u16, 6));
    assert_eq!(r.gw.counters().rejected_busy, 1);
    assert_eq!(client_seqs(&r.staged()), vec![4, 5]);
}

/// A MoldUDP64 datagram past the 1,472-byte frame (the builder stops there).
fn big_packet(seq: u64, blocks: &[&[u8]]) -> Vec<u8> {
    let mut h = [0u8; peregrine_wire::moldudp64::HEADER_LEN];
    peregrine_wire::moldudp64::write_header_only(&mut h, &session_name(SESSION), seq, blocks.len() as u16);
    let mut out = h.to_vec();
    for b in blocks {
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

#[test]
fn a_datagram_of_more_than_14_blocks_is_taken_whole() {
    let mut r = rig(GatewayOptions::default(), 64);
    r.login();
    let msgs: Vec<Vec<u8>> = (1..=20).map(echo).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
    let d = big_packet(1, &refs);
    assert_eq!(d.len(), 2060);
    assert_eq!(r.datagram(client(), &d), 1);
    let staged = r.staged();
    assert_eq!(client_seqs(&staged), (1..=20).collect::<Vec<_>>());
    for s in &staged {
        r.answer(s);
    }
    r.poll();
    let sent = r.sent();
    // Replies still leave in frames of at most 14.
    assert_eq!(
        sent.iter().map(|(q, m)| (*q, m.len())).collect::<Vec<_>>(),
        vec![(1, 14), (15, 6)]
    );
}

#[test]
fn a_client_end_of_session_is_a_logout() {
    let mut r = rig(GatewayOptions::default(), 64);
    r.login();
    let mut h = [0u8; peregrine_wire::moldudp64::HEADER_LEN];
    peregrine_wire::moldudp64::write_header_only(
        &mut h,
        &session_name(SESSION),
        1,
        peregrine_wire::moldudp64::END_OF_SESSION,
    );
    r.datagram(client(), &h);
    let sent = r.net.take_sent();
    assert_eq!(sent.len(), 1);
    let p = MoldPacket::new_checked(&sent[0].1).unwrap();
    assert!(p.is_end_of_session(), "answered with End of Session");
    assert_eq!(p.sequence(), 1, "the next reply sequence");
    // Unbound: the address no longer speaks for the session.
    r.datagram(client(), &packet(1, &[&echo(1)]));
    assert!(r.staged().is_empty());
    assert!(r.net.take_sent().is_empty());
    let c = r.gw.core().counters();
    assert_eq!((c.logouts, c.dropped_unauthenticated, c.heartbeats), (1, 1, 0));
}

/// A cluster follower's gateway gets the leader's stream as session-state
/// notices: nothing is sent, and a client that logs in afterwards (once
/// this node leads) resumes at the leader's sequences, its retransmissions
/// answered from the restored reply log, never sequenced twice.
#[test]
fn restore_notices_rebuild_a_session_without_sending() {
    use peregrine_sequencer::slot::OutboundKind;
    use peregrine_sequencer::SessionRef;
    let mut r = rig(GatewayOptions::default(), 64);
    let to = SessionRef::new(0, 0);
    for c in 1..=3u64 {
        let mut ack = Ack::empty();
        ack.client_seq.set(c);
        ack.global_seq.set(100 + c);
        let input = OutboundSlot {
            kind: OutboundKind::RestoreInput,
            client_seq: c,
            ..OutboundSlot::reply(to, &[0; MESSAGE_LEN])
        };
        let reply = OutboundSlot {
            kind: OutboundKind::RestoreReply,
            ..OutboundSlot::reply(to, &zerocopy::transmute!(ack))
        };
        assert!(r.seq.1.push(input).is_ok());
        assert!(r.seq.1.push(reply).is_ok());
    }
    r.poll();
    assert!(r.net.take_sent().is_empty(), "notices are never sent");
    assert_eq!(r.gw.counters().restored_from_log, 6);
    let login = Login::new(checked_alpha_field(SECRET).unwrap(), 0, 7);
    r.datagram(client(), &packet(0, &[login.as_bytes()]));
    let sent = r.sent();
    let ok = LoginAccepted::read_from_bytes(&sent[0].1[0]).unwrap();
    assert_eq!((ok.next_client_seq.get(), ok.next_reply_seq.get()), (4, 4));
    // Client message 2 again: its original reply, nothing staged.
    r.datagram(client(), &packet(2, &[&echo(2)]));
    assert!(r.staged().is_empty());
    let again = r.sent();
    let ack = Ack::read_from_bytes(&again[0].1[0]).unwrap();
    assert_eq!((ack.client_seq.get(), ack.global_seq.get()), (2, 102));
    // A notice for a session this gateway cannot hold is counted, not applied.
    let stray = OutboundSlot {
        kind: OutboundKind::RestoreInput,
        client_seq: 1,
        ..OutboundSlot::reply(SessionRef::new(0, 9), &[0; MESSAGE_LEN])
    };
    assert!(r.seq.1.push(stray).is_ok());
    r.poll();
    assert_eq!(r.gw.counters().restore_refused, 1);
}

#[test]
fn a_node_that_does_not_serve_refuses_logins_with_the_leader_hint() {
    use peregrine_gateway::Leadership;
    let leader_udp: SocketAddr = "10.0.0.3:9000".parse().unwrap();
    let leadership = Arc::new(Leadership::new(vec![
        (1, vec!["10.0.0.1:9000".parse().unwrap()]),
        (3, vec![leader_udp, "10.0.0.3:9001".parse().unwrap()]),
    ]));
    let opts = GatewayOptions {
        leadership: Some(Arc::clone(&leadership)),
        ..GatewayOptions::default()
    };
    let mut r = rig(opts, 64);
    let login = Login::new(checked_alpha_field(SECRET).unwrap(), 0, 7);
    let refused = |r: &mut Rig| {
        let sent = r.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, 0, "unsequenced");
        let v = LoginRejected::read_from_bytes(&sent[0].1[0]).unwrap();
        assert_eq!(v.msg_type, MessageType::LoginRejected as u8);
        assert_eq!(v.reason(), Ok(LoginRejectReason::NotLeader));
        assert_eq!(v.client_ts_ns.get(), 7);
        (v.leader_id(), v.leader_hint())
    };

    // No leader known yet (an election): `L` without a hint.
    r.datagram(client(), &packet(0, &[login.as_bytes()]));
    assert_eq!(refused(&mut r), (None, None));

    // A known leader: its id and its address for this gateway (id 0).
    leadership.set(false, Some(3));
    r.datagram(client(), &packet(0, &[login.as_bytes()]));
    assert_eq!(refused(&mut r), (Some(3), Some(leader_udp)));

    // A wrong secret is refused `L` too: a follower admits nobody.
    let bad = Login::new(checked_alpha_field("nope").unwrap(), 0, 7);
    r.datagram(client(), &packet(0, &[bad.as_bytes()]));
    assert_eq!(refused(&mut r), (Some(3), Some(leader_udp)));

    // Not logged in: data is dropped unanswered, nothing staged.
    r.datagram(client(), &packet(1, &[&echo(1)]));
    assert!(r.sent().is_empty() && r.staged().is_empty());
    let c = r.gw.counters();
    assert_eq!(
        (
            c.logins_refused_not_leader,
            c.logins_rejected,
            c.logins,
            c.dropped_unauthenticated
        ),
        (3, 0, 0, 1)
    );

    // Serving: the login is accepted as on a single node.
    leadership.set(true, Some(1));
    r.login();
}
