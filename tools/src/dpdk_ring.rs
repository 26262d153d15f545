//! `bench --transport dpdk-ring` (feature `dpdk`): the software cost of
//! the whole DPDK path, measured without a NIC.
//!
//! The dpdk-ring bench drives the full receive → gateway → sequencer →
//! reply → transmit path on one core over the `net_ring` loopback vdev, no
//! kernel anywhere: client frames (MoldUDP64, 14 Echo messages each,
//! addressed from a fake client to our IP) are injected into the ring, the
//! gateway receives and validates them, the sequencer acks every message,
//! the gateway packs the acks into reply frames addressed to the client,
//! which loop back through the ring and are parsed and dropped as not ours.
//! So every message pays real rx parsing, ring hops, sequencing, reply
//! framing, checksums and tx; the injection (a frame copy into an mbuf) is
//! the only client-side cost included.

use peregrine_gateway::GatewayOptions;
use peregrine_gateway::{ring_pair, GatewayLoop, UdpGateway};
use peregrine_netio::dpdk::{net_ring_eal_args, DpdkConfig, DpdkPort, Eal};
use peregrine_netio::wire::{udp_frame, ChecksumMode, EthernetAddress, UdpEndpoints};
use peregrine_sequencer::{EchoApp, Sequencer};
use peregrine_server::serve::ServerApp;
use peregrine_wire::alpha::checked_alpha_field;
use peregrine_wire::moldudp64::{MoldBuilder, MAX_MESSAGES_PER_PACKET};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// The server's IP in the dpdk-ring run and tests.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The simulated client's IP.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The server's UDP port.
pub const SERVER_PORT: u16 = 9000;
/// The simulated client's UDP port.
pub const CLIENT_PORT: u16 = 9001;

/// Offset of the MoldUDP64 sequence field in an injected frame.
pub const MOLD_SEQ_AT: usize = 14 + 20 + 8 + 10;

/// A client frame to (`SERVER_IP`, `SERVER_PORT`) carrying one MoldUDP64
/// packet of 14 Echo messages (tags 0..14) for session `PG00000000`,
/// sequence 1 (rewrite it at [`MOLD_SEQ_AT`]), without UDP checksum.
pub fn client_frame(mac: EthernetAddress) -> Vec<u8> {
    client_payload_frame(mac, |b| {
        for k in 0..MAX_MESSAGES_PER_PACKET as u64 {
            let e = peregrine_wire::message::Echo::new(0, k);
            b.push(zerocopy::IntoBytes::as_bytes(&e));
        }
    })
}

/// Secret of the dpdk-ring run's session.
pub const RING_SECRET: &str = "ring";

/// The sessions of the dpdk-ring run and tests: the simulated client's.
pub fn ring_directory() -> std::sync::Arc<peregrine_gateway::directory::SessionDirectory> {
    use peregrine_gateway::directory::{SessionCredential, SessionDirectory};
    let cred = SessionCredential {
        name: peregrine_client::session_name(0),
        secret: checked_alpha_field(RING_SECRET).expect("a valid secret"),
    };
    std::sync::Arc::new(SessionDirectory::new(&[cred]).expect("one session"))
}

/// The simulated client's Login frame (session 0, [`RING_SECRET`]).
pub fn login_frame(mac: EthernetAddress) -> Vec<u8> {
    client_payload_frame(mac, |b| {
        let secret = checked_alpha_field(RING_SECRET).expect("a valid secret");
        let login = peregrine_wire::message::Login::new(secret, 0, 0);
        b.push(zerocopy::IntoBytes::as_bytes(&login));
    })
}

fn client_payload_frame(mac: EthernetAddress, fill: impl FnOnce(&mut MoldBuilder<'_>)) -> Vec<u8> {
    let mut payload = [0u8; 1472];
    let name = peregrine_client::session_name(0);
    let mut b = MoldBuilder::new(&mut payload, &name, 1).expect("buffer holds a header");
    fill(&mut b);
    let n = b.finish();
    // No UDP checksum (legal over IPv4), so the sequence field can be
    // rewritten per injection without recomputing it.
    let ends = UdpEndpoints {
        src_mac: mac,
        dst_mac: mac,
        src: SocketAddrV4::new(CLIENT_IP, CLIENT_PORT),
        dst: SocketAddrV4::new(SERVER_IP, SERVER_PORT),
    };
    udp_frame(&ends, &payload[..n], ChecksumMode::Skip, 0)
}

/// What the dpdk-ring run measured.
#[derive(Clone, Debug)]
pub struct DpdkRingResult {
    /// Messages injected (accepted by the ring vdev).
    pub sent: u64,
    /// Messages sequenced and acknowledged.
    pub acked: u64,
    /// Seconds measured.
    pub secs: f64,
    /// TSC cycles per acknowledged message on the one core.
    pub cycles_per_message: f64,
    /// Reply frames parsed and dropped as not ours (they loop back).
    pub replies_looped: u64,
    /// Where the cycles went, per acknowledged message.
    pub stages: StageCycles,
}

/// TSC cycles per acknowledged message, by stage of the one-core loop.
///
/// The loop brackets its four calls with TSC reads (inject, gateway
/// receive, sequencer, gateway transmit: four reads per round of a whole
/// burst), and the port brackets its own driver calls and parse loop
/// inside them ([`peregrine_netio::dpdk::PortCycles`]); the gateway's
/// stages are split by subtracting the port's parts. The brackets cost a
/// few cycles per message in all.
#[derive(Clone, Copy, Debug, Default)]
pub struct StageCycles {
    /// The simulated client: writing the burst's frames into the ring vdev
    /// (the harness, not Peregrine).
    pub inject: f64,
    /// The driver's receive: rx bursts from the vdev and freeing consumed
    /// mbufs.
    pub rx: f64,
    /// Ethernet/IPv4/UDP parsing of every received frame. It includes the
    /// looped-back reply frames, parsed and dropped as not ours (the ring
    /// vdev returns our own transmissions), a cost a real NIC does not add.
    pub parse: f64,
    /// The gateway's receive work: MoldUDP64 parsing, the session layer,
    /// copying each message into the input ring.
    pub gateway: f64,
    /// The sequencer: input ring to application to output ring.
    pub sequencer: f64,
    /// The gateway's transmit work: reading the output ring, the reply
    /// log, MoldUDP64 packets built into mbufs with their Ethernet, IPv4
    /// and UDP headers and checksums.
    pub reply_build: f64,
    /// The driver's transmit: tx bursts.
    pub tx: f64,
}

impl StageCycles {
    /// The gateway's whole receive stage: rx, parse and gateway.
    pub fn gateway_rx(&self) -> f64 {
        self.rx + self.parse + self.gateway
    }

    /// The gateway's whole transmit stage: reply build and tx.
    pub fn gateway_tx(&self) -> f64 {
        self.reply_build + self.tx
    }

    /// The stages Peregrine spends (everything but the injection).
    pub fn peregrine(&self) -> f64 {
        self.gateway_rx() + self.sequencer + self.gateway_tx()
    }
}

impl DpdkRingResult {
    /// Acknowledged messages per second.
    pub fn throughput(&self) -> f64 {
        self.acked as f64 / self.secs
    }
}

/// Runs the full DPDK path on `net_ring0` on the calling thread, pinned by
/// the EAL to `core`.
pub fn run_dpdk_ring(duration: Duration, core: usize, burst: u16) -> anyhow::Result<DpdkRingResult> {
    let eal_args: Vec<String> = net_ring_eal_args(core, 512);
    let cfg = DpdkConfig {
        eal_args,
        ip: SERVER_IP,
        udp_port: SERVER_PORT,
        burst,
        mempool_size: 16383,
        ..DpdkConfig::default()
    };
    cfg.validate()?;
    let eal = Eal::init(&cfg.eal_args)?;
    let mut port = DpdkPort::open_queue(eal, &cfg, 0)?;
    let mac = port.mac();
    port.add_neighbour(CLIENT_IP, mac);
    // The server's rings with the shared layout, which this loop is.
    let (g, s) = ring_pair(peregrine_server::config::SHARED_RING_CAPACITY)?;
    let opts = GatewayOptions {
        rx_burst: burst as usize,
        tx_burst: burst as usize,
        ..GatewayOptions::default()
    };
    let mut gw = UdpGateway::new(0, port, g, ring_directory(), opts);
    // The server's own application type (the enum `serve` builds from its
    // configuration), so the loop measured is the one a server runs.
    let mut seq = Sequencer::new(vec![s], ServerApp::Echo(EchoApp::new()), 1, 1024);
    // Log the simulated client in first.
    for _ in 0..1000 {
        if gw.counters().logins > 0 {
            break;
        }
        gw.port_mut().tx_raw(&[&login_frame(mac)[..]]);
        gw.poll_rx();
        gw.poll_tx();
    }
    anyhow::ensure!(gw.counters().logins == 1, "dpdk-ring: the login was not accepted");
    let inject = (burst as usize / 2).max(1);
    let mut frames: Vec<Vec<u8>> = (0..inject).map(|_| client_frame(mac)).collect();
    let per = MAX_MESSAGES_PER_PACKET as u64;
    let mut next_seq = 1u64;
    let mut sent = 0u64;
    let hz = eal.tsc_hz() as f64;
    // Cycles per stage: inject, gateway rx, sequencer, gateway tx.
    let mut spent = [0u64; 4];
    let mut step = |gw: &mut UdpGateway<DpdkPort>,
                    seq: &mut Sequencer<ServerApp>,
                    sent: &mut u64,
                    spent: &mut [u64; 4]| {
        let c0 = eal.tsc_cycles();
        for f in frames.iter_mut() {
            f[MOLD_SEQ_AT..MOLD_SEQ_AT + 8].copy_from_slice(&next_seq.to_be_bytes());
            next_seq += per;
        }
        let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        let took = gw.port_mut().tx_raw(&refs);
        // Frames the vdev refused never existed: rewind their numbers.
        next_seq -= (refs.len() - took) as u64 * per;
        *sent += took as u64 * per;
        let c1 = eal.tsc_cycles();
        gw.poll_rx();
        let c2 = eal.tsc_cycles();
        seq.poll();
        let c3 = eal.tsc_cycles();
        gw.poll_tx();
        let c4 = eal.tsc_cycles();
        spent[0] += c1 - c0;
        spent[1] += c2 - c1;
        spent[2] += c3 - c2;
        spent[3] += c4 - c3;
    };
    // Warm-up.
    for _ in 0..20_000 {
        step(&mut gw, &mut seq, &mut sent, &mut spent);
    }
    spent = [0; 4];
    gw.port_mut().set_stage_timing(true);
    let (sent0, acked0) = (sent, gw.counters().tx_replies);
    let t0 = eal.tsc_cycles();
    let budget = (duration.as_secs_f64() * hz) as u64;
    let mut i = 0u64;
    loop {
        step(&mut gw, &mut seq, &mut sent, &mut spent);
        i += 1;
        if i % 256 == 0 && eal.tsc_cycles() - t0 > budget {
            break;
        }
    }
    let cycles = (eal.tsc_cycles() - t0) as f64;
    let acked = gw.counters().tx_replies - acked0;
    let port = gw.port().stage_cycles();
    gw.port_mut().set_stage_timing(false);
    // Drain what is in flight so the loss count is exact.
    for _ in 0..10_000 {
        gw.poll_rx();
        seq.poll();
        gw.poll_tx();
    }
    let total_acked = gw.counters().tx_replies;
    anyhow::ensure!(
        total_acked == sent,
        "dpdk-ring lost messages: injected {sent}, acknowledged {total_acked}"
    );
    let per_msg = |c: u64| c as f64 / acked.max(1) as f64;
    Ok(DpdkRingResult {
        sent: sent - sent0,
        acked,
        secs: cycles / hz,
        cycles_per_message: cycles / acked.max(1) as f64,
        replies_looped: gw.port_counters().rx_not_for_us,
        stages: StageCycles {
            inject: per_msg(spent[0]),
            rx: per_msg(port.rx),
            parse: per_msg(port.parse),
            gateway: per_msg(spent[1].saturating_sub(port.rx + port.parse)),
            sequencer: per_msg(spent[2]),
            reply_build: per_msg(spent[3].saturating_sub(port.tx)),
            tx: per_msg(port.tx),
        },
    })
}
