//! The TCP gateway without sockets: a scripted stream port hands it
//! connection events and byte chunks, the test plays the sequencer on the
//! rings, and the bytes the gateway writes are parsed back.

use peregrine_gateway::directory::{SessionCredential, SessionDirectory};
use peregrine_gateway::{ring_pair, GatewayLoop, GatewayOptions, SequencerRings, TcpGateway};
use peregrine_netio::{ConnId, NetError, PacketBatch, Peer, Port, PortCounters, RxEvent, StreamPort};
use peregrine_sequencer::slot::InboundSlot;
use peregrine_wire::alpha::checked_alpha_field;
use peregrine_wire::message::{Echo, Reject, RejectReason};
use peregrine_wire::soupbintcp::{self, kind, parse_packet, SoupPacket};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use zerocopy::{FromBytes, IntoBytes};

#[derive(Default)]
struct Wire {
    inbox: VecDeque<(ConnId, RxEvent, Vec<u8>)>,
    /// Bytes written per connection index.
    written: Vec<(ConnId, Vec<u8>)>,
    closed_by_gateway: Vec<ConnId>,
    /// At most this many entries per `recv` (a kernel port reads each
    /// connection once per call); unlimited when `None`.
    entries_per_recv: Option<usize>,
    /// `recv` calls so far.
    recv_calls: usize,
}

/// A stream port whose events a test scripts.
#[derive(Clone, Default)]
struct ScriptedStream(Arc<Mutex<Wire>>);

impl ScriptedStream {
    fn wire(&self) -> std::sync::MutexGuard<'_, Wire> {
        self.0.lock().unwrap()
    }

    fn push(&self, conn: ConnId, event: RxEvent, data: &[u8]) {
        self.wire().inbox.push_back((conn, event, data.to_vec()));
    }

    /// The SoupBinTCP packets written to `conn` so far, as (type, payload).
    fn packets(&self, conn: ConnId) -> Vec<(u8, Vec<u8>)> {
        let w = self.wire();
        let bytes: Vec<u8> = w
            .written
            .iter()
            .filter(|(c, _)| *c == conn)
            .flat_map(|(_, b)| b.iter().copied())
            .collect();
        let mut out = Vec::new();
        let mut at = 0;
        while let Ok(Some((p, n))) = parse_packet(&bytes[at..]) {
            out.push(match p {
                SoupPacket::LoginAccepted { sequence, .. } => {
                    (kind::LOGIN_ACCEPTED, sequence.to_le_bytes().to_vec())
                }
                SoupPacket::LoginRejected(r) => (kind::LOGIN_REJECTED, vec![r]),
                SoupPacket::UnsequencedData(m) => (kind::UNSEQUENCED_DATA, m.to_vec()),
                SoupPacket::SequencedData(m) => (kind::SEQUENCED_DATA, m.to_vec()),
                other => panic!("unexpected {other:?}"),
            });
            at += n;
        }
        assert_eq!(at, bytes.len(), "whole packets only");
        out
    }
}

impl StreamPort for ScriptedStream {
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        batch.clear();
        let mut w = self.wire();
        w.recv_calls += 1;
        let limit = w.entries_per_recv.unwrap_or(usize::MAX);
        while !batch.is_full() && batch.len() < limit {
            let Some((conn, event, data)) = w.inbox.pop_front() else {
                break;
            };
            let ok = match event {
                RxEvent::Data => batch.push(Peer::Conn(conn), &data),
                e => batch.push_event(Peer::Conn(conn), e),
            };
            assert!(ok);
        }
        Ok(batch.len())
    }

    fn poll_tx(&mut self) -> Result<usize, NetError> {
        Ok(0)
    }

    fn close(&mut self, conn: ConnId) {
        let mut w = self.wire();
        w.closed_by_gateway.push(conn);
        w.inbox.push_back((conn, RxEvent::Closed, Vec::new()));
    }
}

impl Port for ScriptedStream {
    fn local_addr(&self) -> SocketAddr {
        "10.0.0.1:9001".parse().unwrap()
    }

    fn send(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        let mut w = self.wire();
        for i in 0..batch.len() {
            let (peer, _, data) = batch.get(i);
            let Peer::Conn(c) = peer else {
                panic!("stream reply to {peer:?}")
            };
            w.written.push((c, data.to_vec()));
        }
        let n = batch.len();
        batch.clear();
        Ok(n)
    }

    fn counters(&self) -> PortCounters {
        PortCounters::default()
    }
}

const CONN: ConnId = ConnId {
    index: 0,
    generation: 1,
};

struct Rig {
    gw: TcpGateway<ScriptedStream>,
    net: ScriptedStream,
    seq: SequencerRings,
}

fn rig(ring: usize) -> Rig {
    rig_with(ring, GatewayOptions::default())
}

fn rig_with(ring: usize, opts: GatewayOptions) -> Rig {
    let directory = SessionDirectory::new(&[SessionCredential {
        name: checked_alpha_field("T0").unwrap(),
        secret: checked_alpha_field("pw").unwrap(),
    }])
    .unwrap();
    let (rings, seq) = ring_pair(ring).unwrap();
    let net = ScriptedStream::default();
    let gw = TcpGateway::new(1, net.clone(), rings, Arc::new(directory), opts);
    Rig { gw, net, seq }
}

fn login(password: &str) -> Vec<u8> {
    let mut b = [0u8; 49];
    let n = soupbintcp::write_login_request(&mut b, "u0", password, "T0", 0);
    b[..n].to_vec()
}

fn data(msgs: &[Echo]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        let mut f = [0u8; 103];
        let n = soupbintcp::write_packet(&mut f, kind::UNSEQUENCED_DATA, m.as_bytes()).unwrap();
        out.extend_from_slice(&f[..n]);
    }
    out
}

impl Rig {
    fn poll(&mut self) {
        self.gw.poll_rx();
        self.gw.poll_tx();
    }

    fn staged(&mut self) -> Vec<InboundSlot> {
        std::iter::from_fn(|| self.seq.0.pop()).collect()
    }
}

#[test]
fn login_then_data_split_anywhere_is_staged_with_implicit_sequences() {
    let mut r = rig(64);
    r.net.push(CONN, RxEvent::Opened, &[]);
    r.net.push(CONN, RxEvent::Data, &login("pw"));
    // Three messages, cut mid-packet.
    let bytes = data(&[Echo::new(0, 1), Echo::new(0, 2), Echo::new(0, 3)]);
    r.net.push(CONN, RxEvent::Data, &bytes[..150]);
    r.net.push(CONN, RxEvent::Data, &bytes[150..]);
    r.poll();
    let p = r.net.packets(CONN);
    assert_eq!(p[0], (kind::LOGIN_ACCEPTED, 1u64.to_le_bytes().to_vec()));
    let seqs: Vec<u64> = r.staged().iter().map(|s| s.client_seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(r.gw.counters().accepted, 3);
}

#[test]
fn a_malformed_message_is_rejected_unsequenced_and_takes_its_number() {
    let mut r = rig(64);
    r.net.push(CONN, RxEvent::Opened, &[]);
    r.net.push(CONN, RxEvent::Data, &login("pw"));
    let mut bad = Echo::new(0, 1);
    bad.version = 99;
    r.net.push(CONN, RxEvent::Data, &data(&[bad, Echo::new(0, 2)]));
    r.poll();
    let p = r.net.packets(CONN);
    assert_eq!(p.len(), 2, "accepted, then the reject");
    assert_eq!(p[1].0, kind::UNSEQUENCED_DATA);
    let j = Reject::read_from_bytes(&p[1].1).unwrap();
    assert_eq!(
        (j.reason.get(), j.client_seq.get()),
        (RejectReason::UnsupportedVersion as u16, 1)
    );
    let seqs: Vec<u64> = r.staged().iter().map(|s| s.client_seq).collect();
    assert_eq!(seqs, vec![2]);
}

#[test]
fn a_wrong_password_is_rejected_and_the_connection_closed() {
    let mut r = rig(64);
    r.net.push(CONN, RxEvent::Opened, &[]);
    r.net.push(CONN, RxEvent::Data, &login("nope"));
    r.poll();
    assert_eq!(r.net.packets(CONN), vec![(kind::LOGIN_REJECTED, vec![b'A'])]);
    assert_eq!(r.net.wire().closed_by_gateway, vec![CONN]);
    assert_eq!(r.gw.counters().logins_rejected, 1);
}

#[test]
fn data_before_login_closes_the_connection() {
    let mut r = rig(64);
    r.net.push(CONN, RxEvent::Opened, &[]);
    r.net.push(CONN, RxEvent::Data, &data(&[Echo::new(0, 1)]));
    r.poll();
    assert_eq!(r.net.wire().closed_by_gateway, vec![CONN]);
    assert_eq!(r.gw.counters().dropped_not_logged_in, 1);
    assert!(r.staged().is_empty());
}

#[test]
fn a_full_ring_keeps_bytes_buffered_until_the_sequencer_catches_up() {
    let mut r = rig(2);
    r.net.push(CONN, RxEvent::Opened, &[]);
    r.net.push(CONN, RxEvent::Data, &login("pw"));
    let msgs: Vec<Echo> = (1..=5).map(|t| Echo::new(0, t)).collect();
    r.net.push(CONN, RxEvent::Data, &data(&msgs));
    r.poll();
    assert_eq!(r.staged().len(), 2, "the ring holds two");
    assert!(r.gw.counters().ring_full >= 1);
    let mut seqs = Vec::new();
    for _ in 0..4 {
        r.poll();
        seqs.extend(r.staged().iter().map(|s| s.client_seq));
    }
    assert_eq!(seqs, vec![3, 4, 5], "nothing accepted is dropped");
}

/// A client streaming at full rate: every read returns a full chunk (the
/// gateway's 16 KiB), as a kernel socket with more waiting does. One poll
/// takes up to four such chunks, not one, and the rest follows in order.
#[test]
fn a_poll_takes_several_full_chunks_from_a_streaming_connection() {
    const CHUNK: usize = 16 << 10;
    let mut r = rig(4096);
    r.net.push(CONN, RxEvent::Opened, &[]);
    r.net.push(CONN, RxEvent::Data, &login("pw"));
    r.poll();
    r.net.wire().entries_per_recv = Some(1);
    let msgs: Vec<Echo> = (1..=1000).map(|t| Echo::new(0, t)).collect();
    let bytes = data(&msgs);
    for chunk in bytes.chunks(CHUNK) {
        r.net.push(CONN, RxEvent::Data, chunk);
    }
    r.gw.poll_rx();
    let mut seqs: Vec<u64> = r.staged().iter().map(|s| s.client_seq).collect();
    assert_eq!(seqs.len(), 4 * CHUNK / 103, "four full chunks' whole packets");
    for _ in 0..4 {
        r.poll();
        seqs.extend(r.staged().iter().map(|s| s.client_seq));
    }
    assert_eq!(seqs, (1..=1000).collect::<Vec<u64>>());
}

/// With no connection open the port is polled every 16th call; once one
/// is open, every call; when it closes, sparsely again.
#[test]
fn an_idle_gateway_polls_its_listener_sparsely_and_a_connected_one_every_time() {
    let mut r = rig(64);
    for _ in 0..32 {
        r.poll();
    }
    assert_eq!(r.net.wire().recv_calls, 2);
    r.net.push(CONN, RxEvent::Opened, &[]);
    r.net.push(CONN, RxEvent::Data, &login("pw"));
    let mut polls = 0;
    while r.net.packets(CONN).is_empty() {
        r.poll();
        polls += 1;
        assert!(polls <= 16, "accepted within 16 polls");
    }
    let before = r.net.wire().recv_calls;
    for _ in 0..5 {
        r.poll();
    }
    assert_eq!(r.net.wire().recv_calls, before + 5);
    r.net.push(CONN, RxEvent::Closed, &[]);
    r.poll();
    let closed = r.net.wire().recv_calls;
    for _ in 0..16 {
        r.poll();
    }
    assert_eq!(r.net.wire().recv_calls, closed + 1);
}

#[test]
fn a_node_that_does_not_serve_refuses_every_login_with_l_and_closes() {
    use peregrine_gateway::Leadership;
    let leadership = Arc::new(Leadership::new(vec![(
        2,
        vec!["10.0.0.2:9000".parse().unwrap(), "10.0.0.2:9001".parse().unwrap()],
    )]));
    leadership.set(false, Some(2));
    let opts = GatewayOptions {
        leadership: Some(Arc::clone(&leadership)),
        ..GatewayOptions::default()
    };
    let mut r = rig_with(64, opts);
    r.net.push(CONN, RxEvent::Opened, &[]);
    r.net.push(CONN, RxEvent::Data, &login("pw"));
    r.net.push(CONN, RxEvent::Data, &data(&[Echo::new(0, 1)]));
    r.poll();
    r.poll();
    assert_eq!(
        r.net.packets(CONN),
        vec![(kind::LOGIN_REJECTED, vec![soupbintcp::reject_reason::NOT_LEADER])]
    );
    assert_eq!(r.net.wire().closed_by_gateway, vec![CONN]);
    assert!(r.staged().is_empty(), "nothing after the refused login is taken");
    let c = r.gw.counters();
    assert_eq!(
        (c.logins_refused_not_leader, c.logins_rejected, c.logins),
        (1, 0, 0)
    );

    // Once the node serves, the same login is accepted.
    leadership.set(true, Some(1));
    let next = ConnId {
        index: 1,
        generation: 1,
    };
    r.net.push(next, RxEvent::Opened, &[]);
    r.net.push(next, RxEvent::Data, &login("pw"));
    // With no connection open the listener is polled every 16th round.
    for _ in 0..16 {
        r.poll();
    }
    assert_eq!(
        r.net.packets(next)[0],
        (kind::LOGIN_ACCEPTED, 1u64.to_le_bytes().to_vec())
    );
    assert_eq!(r.gw.counters().logins, 1);
}
