//! DPDK port over the `net_ring` virtual device: real EAL, mempools and
//! ethdev rx/tx bursts, no privileges needed. A single `net_ring` port loops
//! every transmitted frame back to its own receive queue, so the test
//! injects frames with `tx_raw`, reads them through `recv`, and reads what
//! `send` (and the ARP responder) transmitted with `rx_raw`.
//!
//! The EAL initialises once per process, so everything that touches the
//! port runs inside one `#[test]`, step by step.
#![cfg(feature = "dpdk")]

use peregrine_netio::dpdk::{net_ring_eal_args, DpdkConfig, DpdkError, DpdkPort, Eal, PortCycles};
use peregrine_netio::wire::{
    ArpOperation, ArpPacket, ArpRepr, ChecksumMode, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket,
};
use peregrine_netio::{DatagramPort, PacketBatch, Peer, Port};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const OUR_PORT: u16 = 9000;
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const CLIENT_PORT: u16 = 40000;

const ETH_HEADER: usize = 14;

fn eal_args() -> Vec<String> {
    net_ring_eal_args(0, 256)
}

/// A well-formed Ethernet/IPv4/UDP frame.
fn udp_frame(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let ends = peregrine_netio::wire::UdpEndpoints {
        src_mac,
        dst_mac,
        src: std::net::SocketAddrV4::new(src, sport),
        dst: std::net::SocketAddrV4::new(dst, dport),
    };
    peregrine_netio::wire::udp_frame(&ends, payload, ChecksumMode::Compute, 0)
}

fn client_frame(our_mac: EthernetAddress, payload: &[u8]) -> Vec<u8> {
    udp_frame(
        CLIENT_MAC,
        our_mac,
        CLIENT_IP,
        OUR_IP,
        CLIENT_PORT,
        OUR_PORT,
        payload,
    )
}

fn arp_frame(op: ArpOperation, sha: EthernetAddress, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; 42];
    EthernetRepr {
        src_addr: sha,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    ArpRepr {
        operation: op,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: EthernetAddress::default(),
        target_protocol_addr: tpa,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

/// Rewrites the IPv4 header checksum after a deliberate mutation.
fn refill_ip_checksum(f: &mut [u8]) {
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.fill_checksum();
}

/// Receives until the ring is empty; returns (peer, payload) pairs.
fn drain(port: &mut DpdkPort, batch: &mut PacketBatch) -> Vec<(Peer, Vec<u8>)> {
    let mut out = Vec::new();
    for _ in 0..100 {
        let n = port.recv(batch).expect("recv");
        for i in 0..n {
            let (p, _, d) = batch.get(i);
            out.push((p, d.to_vec()));
        }
        if n == 0 && port.rx_raw(|_| panic!("recv left frames behind")) == 0 {
            break;
        }
    }
    out
}

fn raw_frames(port: &mut DpdkPort) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while port.rx_raw(|f| out.push(f.to_vec())) > 0 {}
    out
}

fn client_peer() -> Peer {
    Peer::Addr(SocketAddr::V4(SocketAddrV4::new(CLIENT_IP, CLIENT_PORT)))
}

#[test]
fn config_parses_from_toml() {
    #[derive(serde::Deserialize)]
    struct File {
        dpdk: DpdkConfig,
    }
    let f: File = toml::from_str(
        r#"
        [dpdk]
        eal_args = ["-l", "1", "--in-memory", "--vdev=net_af_xdp0,iface=va"]
        ip = "198.18.0.1"
        udp_port = 9000
        rx_queues = 2
        tx_queues = 2
        burst = 64
        "#,
    )
    .unwrap();
    assert_eq!(f.dpdk.ip, OUR_IP);
    assert_eq!(f.dpdk.rx_queues, 2);
    assert_eq!(f.dpdk.burst, 64);
    assert_eq!(f.dpdk.mempool_size, DpdkConfig::default().mempool_size);
    f.dpdk.validate().unwrap();
    assert!(toml::from_str::<File>("[dpdk]\nbogus = 1\n").is_err());
    let bad = DpdkConfig {
        ip: OUR_IP,
        udp_port: 1,
        mempool_size: 100,
        ..DpdkConfig::default()
    };
    assert!(matches!(bad.validate(), Err(DpdkError::Config(_))));
}

#[test]
fn net_ring_end_to_end() {
    let eal = Eal::init(&eal_args()).expect("EAL init over net_ring");
    let again = Eal::init(&[]).expect("second init returns the handle");
    assert!(std::ptr::eq(eal, again));
    assert!(eal.port_count() >= 1);

    let cfg = DpdkConfig {
        eal_args: eal_args(),
        ip: OUR_IP,
        udp_port: OUR_PORT,
        burst: 32,
        ..DpdkConfig::default()
    };
    let mut port = DpdkPort::open_queue(eal, &cfg, 0).expect("open queue 0");
    assert!(matches!(
        DpdkPort::open_queue(eal, &cfg, 0),
        Err(DpdkError::QueueInUse { .. })
    ));
    assert!(DpdkPort::open_queue(eal, &cfg, 1).is_err(), "only 1 rx queue");
    // A datagram port by type (no runtime transport switch any more).
    fn datagram_port<P: DatagramPort>(_: &P) {}
    datagram_port(&port);
    assert_eq!(
        port.local_addr(),
        SocketAddr::V4(SocketAddrV4::new(OUR_IP, OUR_PORT))
    );
    let link = port.link().expect("link status");
    assert!(link.up, "net_ring links are up: {link:?}");
    let mac = port.mac();
    let mut batch = PacketBatch::new(32);

    // 1. Valid datagrams come through with their peer.
    let frames: Vec<Vec<u8>> = (0..3u8).map(|i| client_frame(mac, &[i; 100])).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    assert_eq!(port.tx_raw(&refs), 3);
    let got = drain(&mut port, &mut batch);
    assert_eq!(got.len(), 3);
    for (i, (peer, data)) in got.iter().enumerate() {
        assert_eq!(*peer, client_peer());
        assert_eq!(data, &vec![i as u8; 100]);
    }
    assert_eq!(port.counters().rx_packets, 3);
    assert_eq!(port.counters().rx_bytes, 300);
    assert_eq!(port.neighbour(CLIENT_IP), Some(CLIENT_MAC), "learned");

    // 1b. The borrowing receive: datagrams stay in their mbufs while held,
    //     a closure returning false keeps the rest, and the mbufs go back
    //     to the pool once the burst is consumed.
    let pool_before = port.mempool_available();
    let frames: Vec<Vec<u8>> = (0..3u8).map(|i| client_frame(mac, &[0x30 + i; 20])).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    assert_eq!(port.tx_raw(&refs), 3);
    assert_eq!(port.receive(32).unwrap(), 3);
    assert_eq!(port.receive(32).unwrap(), 0, "nothing new while held");
    assert_eq!(port.mempool_available(), pool_before - 3, "held in their mbufs");
    let mut lent = Vec::new();
    let took = port.consume(|from, data, _| {
        assert_eq!(Peer::Addr(from), client_peer());
        lent.push(data.to_vec());
        lent.len() < 2
    });
    assert_eq!(took, 1);
    assert_eq!(lent, vec![vec![0x30; 20], vec![0x31; 20]], "the second is kept");
    assert_eq!(port.consume(|_, data, _| data[0] >= 0x31), 2);
    assert_eq!(port.mempool_available(), pool_before, "freed once consumed");

    // 2. ARP requests for our IP are answered; others are ignored.
    let asker = EthernetAddress([0x02, 0, 0, 0, 0, 0x03]);
    let asker_ip = Ipv4Addr::new(198, 18, 0, 3);
    let req = arp_frame(ArpOperation::Request, asker, asker_ip, OUR_IP);
    let other = arp_frame(
        ArpOperation::Request,
        asker,
        asker_ip,
        Ipv4Addr::new(198, 18, 0, 77),
    );
    assert_eq!(port.tx_raw(&[&req, &other]), 2);
    assert_eq!(port.recv(&mut batch).unwrap(), 0);
    assert_eq!(port.stats().arp_replied, 1);
    assert_eq!(port.stats().arp_ignored, 1);
    let replies = raw_frames(&mut port);
    assert_eq!(replies.len(), 1, "one ARP reply looped back");
    let eth = EthernetFrame::new_checked(&replies[0][..]).unwrap();
    assert_eq!(eth.dst_addr(), asker);
    assert_eq!(eth.src_addr(), mac);
    assert_eq!(eth.ethertype(), EtherType::Arp);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    assert_eq!(arp.operation, ArpOperation::Reply);
    assert_eq!(arp.source_hardware_addr, mac);
    assert_eq!(arp.source_protocol_addr, OUR_IP);
    assert_eq!(arp.target_hardware_addr, asker);
    assert_eq!(arp.target_protocol_addr, asker_ip);
    assert_eq!(port.neighbour(asker_ip), Some(asker));

    // 3. Malformed and foreign frames are dropped and counted; the valid
    //    frames between them come through in order.
    let before = port.stats();
    let not_for_us_before = port.counters().rx_not_for_us;
    let good = |i: u8| client_frame(mac, &[0xa0 + i; 64]);
    let base = client_frame(mac, b"malformed-base-payload");
    let mut bad: Vec<(&str, Vec<u8>)> = Vec::new();
    bad.push(("truncated ethernet", base[..10].to_vec()));
    bad.push(("truncated ipv4", base[..14 + 12].to_vec()));
    bad.push(("truncated udp", {
        let mut f = base[..14 + 20 + 4].to_vec();
        f[16..18].copy_from_slice(&24u16.to_be_bytes());
        refill_ip_checksum(&mut f);
        f
    }));
    bad.push(("ihl 4", {
        let mut f = base.clone();
        f[14] = 0x44;
        f
    }));
    bad.push(("ihl beyond frame", {
        let mut f = base[..14 + 24].to_vec();
        f[14] = 0x4f;
        f
    }));
    bad.push(("ip version 6", {
        let mut f = base.clone();
        f[14] = 0x65;
        refill_ip_checksum(&mut f);
        f
    }));
    bad.push(("total length beyond frame", {
        let mut f = base.clone();
        let tl = (f.len() - 14 + 1) as u16;
        f[16..18].copy_from_slice(&tl.to_be_bytes());
        refill_ip_checksum(&mut f);
        f
    }));
    bad.push(("bad ip checksum", {
        let mut f = base.clone();
        f[24] ^= 0x55;
        f
    }));
    bad.push(("udp length too long", {
        let mut f = base.clone();
        let l = u16::from_be_bytes([f[38], f[39]]) + 1;
        f[38..40].copy_from_slice(&l.to_be_bytes());
        f
    }));
    bad.push(("udp length too short", {
        let mut f = base.clone();
        let l = u16::from_be_bytes([f[38], f[39]]) - 1;
        f[38..40].copy_from_slice(&l.to_be_bytes());
        f
    }));
    bad.push(("udp length below header", {
        let mut f = base.clone();
        f[38..40].copy_from_slice(&7u16.to_be_bytes());
        f
    }));
    bad.push(("bad udp checksum", {
        let mut f = base.clone();
        let n = f.len();
        f[n - 1] ^= 0xff;
        f
    }));
    bad.push(("ipv6 ethertype", {
        let mut f = base.clone();
        f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        f
    }));
    bad.push(("vlan tag", {
        let mut f = base.clone();
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        f
    }));
    bad.push(("more fragments", {
        let mut f = base.clone();
        Ipv4Packet::new_unchecked(&mut f[14..]).set_flags_and_offset(false, true, 0);
        refill_ip_checksum(&mut f);
        f
    }));
    bad.push(("fragment offset", {
        let mut f = base.clone();
        Ipv4Packet::new_unchecked(&mut f[14..]).set_flags_and_offset(false, false, 1480);
        refill_ip_checksum(&mut f);
        f
    }));
    bad.push((
        "wrong dst ip",
        udp_frame(
            CLIENT_MAC,
            mac,
            CLIENT_IP,
            Ipv4Addr::new(198, 18, 0, 99),
            CLIENT_PORT,
            OUR_PORT,
            b"x",
        ),
    ));
    bad.push((
        "wrong dst port",
        udp_frame(
            CLIENT_MAC,
            mac,
            CLIENT_IP,
            OUR_IP,
            CLIENT_PORT,
            OUR_PORT + 1,
            b"x",
        ),
    ));
    bad.push((
        "wrong dst mac",
        udp_frame(
            CLIENT_MAC,
            EthernetAddress([0x02, 9, 9, 9, 9, 9]),
            CLIENT_IP,
            OUR_IP,
            CLIENT_PORT,
            OUR_PORT,
            b"x",
        ),
    ));
    bad.push(("tcp", {
        let mut f = base.clone();
        f[23] = 6;
        refill_ip_checksum(&mut f);
        f
    }));
    let mut stream: Vec<Vec<u8>> = Vec::new();
    let mut expect_good = Vec::new();
    for (i, (_, f)) in bad.iter().enumerate() {
        stream.push(good(i as u8));
        expect_good.push(vec![0xa0 + i as u8; 64]);
        stream.push(f.clone());
    }
    // Also accepted: UDP checksum 0 ("none"), and Ethernet padding past
    // the IPv4 total length.
    let mut no_ck = client_frame(mac, b"no checksum");
    no_ck[40] = 0;
    no_ck[41] = 0;
    stream.push(no_ck);
    expect_good.push(b"no checksum".to_vec());
    let mut padded = client_frame(mac, b"pad");
    padded.resize(60, 0xee);
    stream.push(padded);
    expect_good.push(b"pad".to_vec());

    let refs: Vec<&[u8]> = stream.iter().map(|f| &f[..]).collect();
    assert_eq!(port.tx_raw(&refs), stream.len());
    let got = drain(&mut port, &mut batch);
    let payloads: Vec<Vec<u8>> = got.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(payloads, expect_good, "valid frames survive, in order");
    let s = port.stats();
    let d = |a: u64, b: u64| a - b;
    assert_eq!(d(s.rx_truncated, before.rx_truncated), 3, "{s:?}");
    assert_eq!(d(s.rx_bad_ip_header, before.rx_bad_ip_header), 4, "{s:?}");
    assert_eq!(d(s.rx_bad_ip_checksum, before.rx_bad_ip_checksum), 1);
    assert_eq!(d(s.rx_bad_udp_length, before.rx_bad_udp_length), 3);
    assert_eq!(d(s.rx_bad_udp_checksum, before.rx_bad_udp_checksum), 1);
    assert_eq!(d(s.rx_non_ipv4, before.rx_non_ipv4), 2);
    assert_eq!(d(s.rx_fragment, before.rx_fragment), 2);
    assert_eq!(d(s.rx_wrong_ip, before.rx_wrong_ip), 1);
    assert_eq!(d(s.rx_wrong_port, before.rx_wrong_port), 1);
    assert_eq!(d(s.rx_wrong_mac, before.rx_wrong_mac), 1);
    assert_eq!(d(s.rx_not_udp, before.rx_not_udp), 1);
    assert_eq!(
        port.counters().rx_not_for_us - not_for_us_before,
        bad.len() as u64
    );

    // 4. send: well-formed frames with correct checksums, to the learned
    //    MAC; unknown neighbours trigger an ARP request and are dropped.
    let unknown = Ipv4Addr::new(198, 18, 0, 9);
    assert!(batch.push(client_peer(), &[7u8; 100]));
    assert!(batch.push(client_peer(), b"tiny"));
    assert!(batch.push(Peer::Addr(SocketAddr::V4(SocketAddrV4::new(unknown, 1))), b"lost"));
    assert!(batch.push(Peer::Addr("[::1]:5".parse().unwrap()), b"v6"));
    let tx_before = port.counters();
    assert_eq!(port.send(&mut batch).unwrap(), 2);
    assert!(batch.is_empty());
    let c = port.counters();
    assert_eq!(c.tx_packets - tx_before.tx_packets, 2);
    assert_eq!(c.tx_bytes - tx_before.tx_bytes, 104);
    assert_eq!(c.tx_dropped - tx_before.tx_dropped, 2);
    assert_eq!(port.stats().tx_no_neighbour, 1);
    assert_eq!(port.stats().tx_bad_peer, 1);
    assert_eq!(port.stats().arp_requests_sent, 1);

    let out = raw_frames(&mut port);
    assert_eq!(out.len(), 3, "two datagrams and one ARP request");
    let mut udp_payloads = Vec::new();
    let mut saw_arp = false;
    for f in &out {
        assert!(f.len() >= 60, "padded to the Ethernet minimum");
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.src_addr(), mac);
        match eth.ethertype() {
            EtherType::Arp => {
                assert!(eth.dst_addr().is_broadcast());
                let a = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
                assert_eq!(a.operation, ArpOperation::Request);
                assert_eq!(a.target_protocol_addr, unknown);
                assert_eq!(a.source_protocol_addr, OUR_IP);
                saw_arp = true;
            }
            EtherType::Ipv4 => {
                assert_eq!(eth.dst_addr(), CLIENT_MAC);
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                assert!(ip.verify_checksum(), "IPv4 header checksum");
                let repr = Ipv4Repr::parse(&ip, true).unwrap();
                assert_eq!(repr.src_addr, OUR_IP);
                assert_eq!(repr.dst_addr, CLIENT_IP);
                assert_eq!(repr.protocol, IpProtocol::Udp);
                assert_eq!(repr.ttl, 64);
                let udp = UdpPacket::new_checked(ip.payload()).unwrap();
                assert_ne!(udp.checksum(), 0, "checksum computed");
                assert!(udp.verify_checksum(OUR_IP, CLIENT_IP), "UDP checksum");
                assert_eq!(udp.src_port(), OUR_PORT);
                assert_eq!(udp.dst_port(), CLIENT_PORT);
                udp_payloads.push(udp.payload().to_vec());
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert!(saw_arp);
    assert_eq!(udp_payloads, vec![vec![7u8; 100], b"tiny".to_vec()]);
    let (copied_full, copied_tiny) = {
        let mut ipv4 = out.iter().filter(|f| f[12..14] == [0x08, 0x00]);
        (ipv4.next().unwrap().clone(), ipv4.next().unwrap().clone())
    };

    // 4b. Built in place: the port lends mbuf payload areas; committed
    //     datagrams leave at the next send, ahead of its batch, as the
    //     same frames a copying send builds; one that cannot be framed is
    //     dropped, counted, and its mbuf goes back to the pool.
    let pool_before = port.mempool_available();
    let tx_before = port.counters();
    let slots = port.tx_slots().expect("a DPDK port lends its mbufs");
    let slot = slots.next_slot().expect("a free mbuf");
    assert!(slot.len() >= 1472, "room for a full datagram: {}", slot.len());
    slot[..100].fill(7);
    slots.commit(client_peer(), 100);
    assert!(slots.queue(client_peer(), b"tiny"));
    assert!(slots.queue(Peer::Addr(SocketAddr::V4(SocketAddrV4::new(unknown, 1))), b"lost"));
    assert_eq!(slots.committed(), 2, "the unframable one is not queued");
    assert_eq!(port.mempool_available(), pool_before - 2, "its mbuf is back");
    assert!(batch.push(client_peer(), b"after"));
    assert_eq!(port.send(&mut batch).unwrap(), 3);
    let c = port.counters();
    assert_eq!(c.tx_packets - tx_before.tx_packets, 3);
    assert_eq!(c.tx_bytes - tx_before.tx_bytes, 109);
    assert_eq!(c.tx_dropped - tx_before.tx_dropped, 1);
    assert_eq!(port.stats().tx_no_neighbour, 2);
    assert_eq!(port.tx_slots().unwrap().committed(), 0);
    let out = raw_frames(&mut port);
    let ipv4: Vec<&Vec<u8>> = out.iter().filter(|f| f[12..14] == [0x08, 0x00]).collect();
    assert_eq!(ipv4.len(), 3, "{} frames", out.len());
    assert_eq!(
        *ipv4[0], copied_full,
        "byte for byte the frame a copying send builds"
    );
    assert_eq!(*ipv4[1], copied_tiny, "padded alike");
    let last = Ipv4Packet::new_checked(&ipv4[2][ETH_HEADER..]).unwrap();
    assert_eq!(
        UdpPacket::new_checked(last.payload()).unwrap().payload(),
        b"after"
    );
    assert_eq!(port.mempool_available(), pool_before, "every mbuf back");

    // 5. Our own frames parse back through recv (software checksums on
    //    both sides agree): send to ourselves. With stage timing on (it
    //    is off until asked for, whatever the traffic), the port counts
    //    cycles in the driver's tx and rx and in its parser.
    assert_eq!(
        port.stage_cycles(),
        PortCycles::default(),
        "timing is off by default"
    );
    port.set_stage_timing(true);
    assert_eq!(port.stage_cycles(), PortCycles::default(), "it starts from zero");
    port.add_neighbour(OUR_IP, mac);
    let me = Peer::Addr(SocketAddr::V4(SocketAddrV4::new(OUR_IP, OUR_PORT)));
    for i in 0..40u16 {
        assert!(batch.push(me, &i.to_be_bytes()) || batch.is_full());
        if batch.is_full() {
            break;
        }
    }
    let n = batch.len();
    assert_eq!(port.send(&mut batch).unwrap(), n);
    let sent = port.stage_cycles();
    assert!(sent.tx > 0 && sent.rx == 0 && sent.parse == 0, "{sent:?}");
    let got = drain(&mut port, &mut batch);
    assert_eq!(got.len(), n);
    for (i, (peer, data)) in got.iter().enumerate() {
        assert_eq!(*peer, me);
        assert_eq!(data, &(i as u16).to_be_bytes());
    }
    let received = port.stage_cycles();
    assert!(
        received.rx > 0 && received.parse > 0 && received.tx == sent.tx,
        "{received:?}"
    );
    assert_eq!(port.tx_raw(&[&client_frame(mac, &[1; 100])]), 1);
    assert_eq!(
        port.stage_cycles(),
        received,
        "injected frames are not ours to time"
    );
    let _ = drain(&mut port, &mut batch);
    port.set_stage_timing(false);
    assert_eq!(port.stage_cycles(), PortCycles::default());

    // Nothing leaked: every mbuf is back in the pool (up to the per-lcore
    // cache), and the device saw our traffic.
    let nic = port.nic_stats().expect("nic stats");
    assert!(nic.rx_packets > 0 && nic.tx_packets > 0, "{nic:?}");
    assert!(
        port.mempool_available() + 512 >= cfg.mempool_size - u32::from(cfg.rx_ring_size),
        "mbufs leaked: {} available",
        port.mempool_available()
    );

    // 6. Dropping the port frees the queue for a new owner.
    drop(port);
    let port = DpdkPort::open_queue(eal, &cfg, 0).expect("reopen after drop");
    assert_eq!(port.mac(), mac);
}
