//! Real DPDK code paths on the `net_ring` virtual device, no root needed:
//! Ethernet frames in, through the real gateway and sequencer, acks out as
//! Ethernet frames. One EAL per process, so this binary holds one test.
#![cfg(feature = "dpdk")]

use peregrine_gateway::GatewayOptions;
use peregrine_gateway::{ring_pair, GatewayLoop, UdpGateway};
use peregrine_netio::dpdk::{net_ring_eal_args, DpdkConfig, DpdkPort, Eal};
use peregrine_netio::wire::{EthernetFrame, Ipv4Packet, UdpPacket};
use peregrine_sequencer::{EchoApp, Sequencer};
use peregrine_tools::dpdk_ring::{
    client_frame, login_frame, ring_directory, CLIENT_IP, CLIENT_PORT, MOLD_SEQ_AT, SERVER_IP, SERVER_PORT,
};
use peregrine_wire::message::Ack;
use peregrine_wire::moldudp64::MoldPacket;
use zerocopy::FromBytes;

#[test]
fn frames_in_acks_out_through_gateway_and_sequencer() {
    let eal_args: Vec<String> = net_ring_eal_args(0, 256);
    let cfg = DpdkConfig {
        eal_args,
        ip: SERVER_IP,
        udp_port: SERVER_PORT,
        ..DpdkConfig::default()
    };
    let eal = Eal::init(&cfg.eal_args).expect("EAL initialises on net_ring");
    let mut port = DpdkPort::open_queue(eal, &cfg, 0).expect("port");
    let mac = port.mac();
    port.add_neighbour(CLIENT_IP, mac);
    let (g, s) = ring_pair(1024).unwrap();
    let mut gw = UdpGateway::new(0, port, g, ring_directory(), GatewayOptions::default());
    let mut seq = Sequencer::new(vec![s], EchoApp::new(), 1, 1024);

    // Data before the login is dropped; the login binds the session.
    let early = client_frame(mac);
    assert_eq!(gw.port_mut().tx_raw(&[&early[..]]), 1);
    gw.poll_rx();
    assert_eq!(gw.counters().dropped_unauthenticated, 1);
    assert_eq!(gw.port_mut().tx_raw(&[&login_frame(mac)[..]]), 1);
    gw.poll_rx();
    gw.poll_tx(); // the LoginAccepted frame loops back through the ring
    assert_eq!(gw.counters().logins, 1);

    // Five MoldUDP64 packets of 14 Echo messages, client sequences 1..=70,
    // plus garbage frames between them.
    let mut frames = Vec::new();
    for k in 0..5u64 {
        let mut f = client_frame(mac);
        f[MOLD_SEQ_AT..MOLD_SEQ_AT + 8].copy_from_slice(&(1 + 14 * k).to_be_bytes());
        frames.push(f);
        let mut truncated = client_frame(mac);
        truncated.truncate(30);
        frames.push(truncated);
    }
    let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    assert_eq!(gw.port_mut().tx_raw(&refs), refs.len());

    // Receive and sequence everything first; transmit once, so the replies
    // that loop back through the ring stay there for us to read.
    for _ in 0..1000 {
        gw.poll_rx();
        seq.poll();
        if seq.counters().sequenced == 70 {
            break;
        }
    }
    gw.poll_tx();
    assert_eq!(seq.counters().sequenced, 70);
    assert_eq!(
        gw.port_counters().rx_not_for_us,
        6,
        "the five truncated frames and the looped-back LoginAccepted, counted"
    );
    assert_eq!(gw.counters().accepted, 70);
    assert_eq!(gw.counters().tx_replies, 70);

    // The replies looped back through the ring: read them raw and check
    // every layer.
    let mut acks = Vec::new();
    for _ in 0..100 {
        gw.port_mut().rx_raw(|f| {
            let eth = EthernetFrame::new_checked(f).expect("ethernet");
            let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
            assert_eq!((ip.src_addr(), ip.dst_addr()), (SERVER_IP, CLIENT_IP));
            let udp = UdpPacket::new_checked(ip.payload()).expect("udp");
            assert_eq!((udp.src_port(), udp.dst_port()), (SERVER_PORT, CLIENT_PORT));
            let mold = MoldPacket::new_checked(udp.payload()).expect("MoldUDP64");
            for (k, b) in mold.blocks().enumerate() {
                let a = Ack::read_from_bytes(b).expect("ack");
                acks.push((
                    mold.sequence() + k as u64,
                    a.client_seq.get(),
                    a.global_seq.get(),
                    a.client_tag.get(),
                ));
            }
        });
    }
    assert_eq!(acks.len(), 70);
    for (i, (reply_seq, client_seq, global, tag)) in acks.iter().enumerate() {
        let i = i as u64;
        assert_eq!(*reply_seq, i + 1, "reply stream numbered from 1");
        assert_eq!(*client_seq, i + 1);
        assert_eq!(*global, i + 1, "gap-free global sequence");
        assert_eq!(*tag, i % 14, "ack carries the message's own tag");
    }
}
