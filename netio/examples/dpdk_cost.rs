//! Software cost of the DPDK datagram path, on one core, no kernel:
//! `recv` (rx burst, Ethernet/IPv4/UDP parse and checks, copy into the
//! batch) plus `send` (frame build, software IPv4+UDP checksums, tx burst)
//! per packet, over the `net_ring` loopback vdev.
//!
//! A burst of frames addressed from our own IP:port to itself is injected
//! once; every `recv` then gets them back and `send` echoes them to their
//! sender (ourselves), so the same frames circulate for the whole run and
//! every iteration exercises the full receive and transmit path.
//!
//! ```text
//! cargo run --release -p peregrine-netio --features dpdk --example dpdk_cost -- [--seconds S] [--burst B]
//! ```

use peregrine_netio::dpdk::{net_ring_eal_args, DpdkConfig, DpdkPort, Eal};
use peregrine_netio::wire::{udp_frame, ChecksumMode, UdpEndpoints};
use peregrine_netio::{DatagramPort, PacketBatch, Port};
use std::net::{Ipv4Addr, SocketAddrV4};

const IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const UDP_PORT: u16 = 9000;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn frame(mac: peregrine_netio::wire::EthernetAddress, payload: &[u8]) -> Vec<u8> {
    let me = SocketAddrV4::new(IP, UDP_PORT);
    let ends = UdpEndpoints {
        src_mac: mac,
        dst_mac: mac,
        src: me,
        dst: me,
    };
    udp_frame(&ends, payload, ChecksumMode::Compute, 0)
}

fn main() {
    let seconds = arg("--seconds", 2.0);
    let burst = arg("--burst", 32.0) as u16;
    let eal_args: Vec<String> = net_ring_eal_args(0, 256);
    let eal = Eal::init(&eal_args).expect("EAL");
    let cfg = DpdkConfig {
        eal_args: eal_args.clone(),
        ip: IP,
        udp_port: UDP_PORT,
        burst,
        ..DpdkConfig::default()
    };
    let mut port = DpdkPort::open_queue(eal, &cfg, 0).expect("port");
    let mac = port.mac();
    port.add_neighbour(IP, mac);
    let hz = eal.tsc_hz() as f64;
    println!(
        "dpdk_cost: net_ring, burst {burst}, {seconds} s per size, TSC {:.2} GHz",
        hz / 1e9
    );
    println!("payload_bytes  msgs/pkt  pkts/s        cycles/pkt  ns/pkt   msgs/s        cycles/msg");
    // 100 bytes: one message; 1,448 bytes: a MoldUDP64 packet of 14
    // 100-byte messages (20-byte header + 14 x (2 + 100)).
    for (size, msgs) in [(100usize, 1u64), (1448, 14)] {
        let f = frame(mac, &vec![0x5a; size]);
        let frames: Vec<&[u8]> = (0..burst).map(|_| &f[..]).collect();
        assert_eq!(port.tx_raw(&frames), usize::from(burst), "inject");
        let mut batch = PacketBatch::new(usize::from(burst));
        // Warm-up.
        for _ in 0..10_000 {
            port.recv(&mut batch).expect("recv");
            port.send(&mut batch).expect("send");
        }
        let before = port.counters();
        let t0 = eal.tsc_cycles();
        let budget = (seconds * hz) as u64;
        let mut pkts = 0u64;
        loop {
            let n = port.recv(&mut batch).expect("recv");
            pkts += n as u64;
            port.send(&mut batch).expect("send");
            if pkts & 0xfff < n as u64 && eal.tsc_cycles() - t0 > budget {
                break;
            }
        }
        let cycles = (eal.tsc_cycles() - t0) as f64;
        let after = port.counters();
        assert_eq!(after.tx_dropped, before.tx_dropped, "no drops");
        assert_eq!(after.rx_not_for_us, 0, "every frame parsed as ours");
        let secs = cycles / hz;
        let pps = pkts as f64 / secs;
        let cpp = cycles / pkts as f64;
        println!(
            "{size:<14} {msgs:<9} {pps:<13.0} {cpp:<11.1} {:<8.1} {:<13.0} {:.1}",
            cpp / hz * 1e9,
            pps * msgs as f64,
            cpp / msgs as f64
        );
        // Drain the circulating frames before the next size.
        while port.rx_raw(|_| {}) > 0 {}
    }
}
