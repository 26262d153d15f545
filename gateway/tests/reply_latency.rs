//! Reply latency recording on the transmit path: exactly the replies that
//! are sent and answer a message are measured, from the message's receive
//! timestamp to the burst's transmit.

use peregrine_gateway::directory::{SessionCredential, SessionDirectory};
use peregrine_gateway::{ring_pair, GatewayLoop, GatewayOptions, UdpGateway};
use peregrine_netio::clock;
use peregrine_netio::memory::MemoryPort;
use peregrine_sequencer::slot::{OutboundKind, OutboundSlot, SessionRef};
use peregrine_wire::alpha::checked_alpha_field;
use peregrine_wire::message::{Ack, Echo, Login, MESSAGE_LEN};
use peregrine_wire::moldudp64::{session_name, MoldBuilder, MAX_PAYLOAD};
use std::net::SocketAddr;
use std::sync::Arc;
use zerocopy::IntoBytes;

fn packet(seq: u64, blocks: &[&[u8]]) -> Vec<u8> {
    let mut buf = [0u8; MAX_PAYLOAD];
    let mut b = MoldBuilder::new(&mut buf, &session_name("S0"), seq).unwrap();
    for m in blocks {
        assert!(b.push(m));
    }
    let n = b.finish();
    buf[..n].to_vec()
}

#[test]
fn only_sent_replies_that_answer_a_message_are_measured() {
    let directory = SessionDirectory::new(&[SessionCredential {
        name: checked_alpha_field("S0").unwrap(),
        secret: checked_alpha_field("pw").unwrap(),
    }])
    .unwrap();
    let (rings, mut seq) = ring_pair(64).unwrap();
    let (port, net) = MemoryPort::new("10.0.0.1:9000".parse().unwrap());
    let mut gw = UdpGateway::new(0, port, rings, Arc::new(directory), GatewayOptions::default());
    let client: SocketAddr = "10.1.1.1:5000".parse().unwrap();
    let login = Login::new(checked_alpha_field("pw").unwrap(), 0, 7);
    net.push(client, &packet(0, &[login.as_bytes()]));
    gw.poll_rx();
    gw.poll_tx();
    assert_eq!(net.take_sent().len(), 1, "login accepted");

    let before = clock::now_ns();
    let (e1, e2) = (Echo::new(0, 1), Echo::new(0, 2));
    net.push(client, &packet(1, &[e1.as_bytes(), e2.as_bytes()]));
    gw.poll_rx();
    let inbound: Vec<_> = std::iter::from_fn(|| seq.0.pop()).collect();
    assert_eq!(inbound.len(), 2);
    let rx = inbound[0].gateway_rx_ns;
    assert!(rx >= before, "stamped at receive");
    let ack: [u8; MESSAGE_LEN] = zerocopy::transmute!(Ack::empty());
    let answer = |s: &peregrine_sequencer::slot::InboundSlot| OutboundSlot {
        rx_ns: s.gateway_rx_ns,
        ..OutboundSlot::reply(s.origin, &ack)
    };
    // Two answers, one reply answering nothing, one to a session that does
    // not exist, one session-state notice: only the two answers count.
    for slot in [
        answer(&inbound[0]),
        answer(&inbound[1]),
        OutboundSlot::reply(inbound[0].origin, &ack),
        OutboundSlot {
            rx_ns: rx,
            ..OutboundSlot::reply(SessionRef::new(0, 9), &ack)
        },
        OutboundSlot {
            kind: OutboundKind::RestoreInput,
            client_seq: 3,
            rx_ns: rx,
            ..OutboundSlot::reply(inbound[0].origin, &[0; MESSAGE_LEN])
        },
    ] {
        assert!(seq.1.push(slot).is_ok());
    }
    gw.poll_tx();
    let after = clock::now_ns();
    assert_eq!(
        net.take_sent().len(),
        1,
        "the three replies to S0 in one datagram"
    );
    let lat = gw.latency_mut().expect("a UDP gateway records latency");
    assert_eq!(lat.count(), 2);
    let h = lat.interval();
    assert!(
        h.max() <= h.highest_equivalent(after - rx),
        "{} > {}",
        h.max(),
        after - rx
    );
    assert_eq!(lat.interval().len(), 2);
    lat.reset_interval(after);
    assert_eq!((lat.count(), lat.interval().len()), (2, 0));
    assert_eq!(
        lat.since_start().len(),
        2,
        "the interval was folded into since-start"
    );
}
