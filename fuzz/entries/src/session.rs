// Over 600 lines: the scripted network, its operations and the invariants checked after each are one executable model of the session layer.
//! The gateway session layer under a scripted, in-memory network.
//!
//! The input is a small configuration (ring capacity, bursts, session table
//! size, ...) followed by a script of operations: UDP datagrams (raw bytes,
//! or MoldUDP64 packets built from a few parameter bytes), TCP connection
//! events and stream chunks (raw, or SoupBinTCP logins and data), and polls
//! that run parts of one shared-layout round. A `UdpGateway` (gateway 0)
//! owns netio's in-memory datagram port, and a `TcpGateway` (gateway 1) a
//! fake stream port; they hand those events out, and every reply sent is
//! checked (the UDP ones as the run reads them back from the in-memory
//! port after each poll); a real `Sequencer` runs `EchoApp` behind a
//! wrapper that checks the sequenced stream.
//!
//! Sessions are configured: UDP sessions S0–S2 and a probe session, TCP
//! sessions T0, T1 and usernames u0, u1 with secret `pw`, T2 with another
//! secret (so `pw` is refused), u2/u3 and the garbage name unknown. UDP
//! logins and logouts are blocks of kinds [`LOGIN`], [`BAD_LOGIN`] and
//! [`LOGOUT`].
//!
//! The fake stream port keeps the `StreamPort` contract as the kernel port
//! does: `recv` clears the batch; a slot is reopened only after its
//! `Closed` event with a new generation; `close` makes a later `recv`
//! report `Closed`. A raw datagram op whose source is not an address has
//! no datagram-port equivalent (datagram ports deliver addressed
//! datagrams only, by type) and is skipped.

use crate::Bytes;
use peregrine_gateway::directory::{SessionCredential, SessionDirectory};
use peregrine_gateway::GatewayOptions;
use peregrine_gateway::{ring_pair, GatewayLoop, TcpGateway, UdpGateway};
use peregrine_netio::memory::{MemoryHandle, MemoryPort};
use peregrine_netio::{
    ConnId, NetError, PacketBatch, Peer, Port, PortCounters, RxEvent, StreamPort, MAX_UDP_PAYLOAD, SLOT_BYTES,
};
use peregrine_sequencer::{Application, EchoApp, ReplySink, Sequenced, Sequencer};
use peregrine_wire::alpha::checked_alpha_field;
use peregrine_wire::message::{
    classify_inbound, Ack, Echo, Login, Logout, MessageType, Reject, LAYOUT_VERSION, MESSAGE_LEN,
};
use peregrine_wire::moldudp64::{MoldPacket, SessionName, MAX_MESSAGES_PER_PACKET};
use peregrine_wire::soupbintcp::{self, kind, parse_packet, SoupPacket};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use zerocopy::{FromBytes, IntoBytes};

/// Connection slots the script uses; slot [`PROBE_CONN`] is kept for the
/// final liveness probe.
pub(crate) const CONNS: u32 = 4;
const PROBE_CONN: u32 = 7;
/// UDP sources the script uses.
const ADDRS: u8 = 4;
/// Most operations decoded from one input.
const MAX_OPS: usize = 512;
/// Bound on polls while draining; reaching it means a livelock.
const MAX_DRAIN_ROUNDS: usize = 200_000;
/// Rounds in a row with no work at all while events are still pending
/// before we call it a stall (the state cannot change any more): 4, plus
/// the rounds a TCP gateway with no connection open lets pass between
/// polls of its port.
const STALL_ROUNDS: usize = 4 + peregrine_gateway::tcp::IDLE_LISTEN_POLLS as usize;

/// Gateway sizing and the sequencer's batch limit, from the first 4 bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub ring_capacity: usize,
    pub rx_burst: usize,
    pub tx_burst: usize,
    pub max_sessions: usize,
    pub seq_batch: usize,
    pub reply_burst: usize,
    pub per_recv: usize,
}

impl Config {
    pub(crate) fn decode(r: &mut Bytes<'_>) -> Config {
        let (c0, c1, c2, c3) = (r.u8(), r.u8(), r.u8(), r.u8());
        Config {
            ring_capacity: 1 << (1 + c0 % 8),
            rx_burst: 1 + usize::from(c1 % 8),
            tx_burst: 1 + usize::from((c1 >> 3) % 4),
            max_sessions: 1 + usize::from(c2 % 4),
            seq_batch: 1 + usize::from((c2 >> 2) % 16),
            reply_burst: 1 + usize::from(c3 % 32),
            per_recv: 1 + usize::from(c3 >> 5),
        }
    }

    /// The 4 bytes that decode to this configuration (fields must be in
    /// range).
    pub(crate) fn encode(&self) -> [u8; 4] {
        let c0 = self.ring_capacity.trailing_zeros() as u8 - 1;
        let c1 = (self.rx_burst - 1) as u8 | ((self.tx_burst - 1) as u8) << 3;
        let c2 = (self.max_sessions - 1) as u8 | ((self.seq_batch - 1) as u8) << 2;
        let c3 = (self.reply_burst - 1) as u8 | ((self.per_recv - 1) as u8) << 5;
        [c0, c1, c2, c3]
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ring_capacity: 64,
            rx_burst: 8,
            tx_burst: 4,
            max_sessions: 4,
            seq_batch: 16,
            reply_burst: 32,
            per_recv: 8,
        }
    }
}

/// A block kind (byte): 0–3 Echo, 4 NewOrder, 5 wrong length, 6 a
/// server→client type, 7 a bad layout version. Higher bits vary contents.
/// Block kind: a UDP Login with the right secret.
pub(crate) const LOGIN: u8 = 0xFA;
/// Block kind: a UDP Login with a wrong secret.
pub(crate) const BAD_LOGIN: u8 = 0xFB;
/// Block kind: a UDP Logout.
pub(crate) const LOGOUT: u8 = 0xFC;
/// The secret of the configured sessions.
const SECRET: &str = "pw";

pub(crate) fn block(kind: u8) -> Vec<u8> {
    let secret = |s: &str| checked_alpha_field::<10>(s).expect("valid secret");
    match kind {
        LOGIN => return Login::new(secret(SECRET), 0, 1).as_bytes().to_vec(),
        BAD_LOGIN => return Login::new(secret("nope"), 0, 1).as_bytes().to_vec(),
        LOGOUT => return Logout::new(1).as_bytes().to_vec(),
        _ => {}
    }
    let mut m = Echo::new(u64::from(kind) * 1_000, u64::from(kind))
        .as_bytes()
        .to_vec();
    match kind % 8 {
        0..=3 => {}
        4 => m[0] = MessageType::NewOrder as u8,
        5 => m.truncate(usize::from(kind) % MESSAGE_LEN),
        6 => m[0] = MessageType::Ack as u8,
        _ => m[1] = LAYOUT_VERSION.wrapping_add(1 + kind / 8),
    }
    m
}

/// One scripted step.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// Raw datagram from source `from` (0–3; 4 = a non-address peer).
    UdpRaw { from: u8, bytes: Vec<u8> },
    /// A MoldUDP64 packet from `from` for session `session` (0–3) with
    /// client sequence `seq`: `blocks` kinds (see [`block`]), or a
    /// heartbeat when empty, or end of session.
    UdpMold {
        from: u8,
        session: u8,
        seq: u8,
        blocks: Vec<u8>,
        end_of_session: bool,
    },
    /// Connection slot `conn` opens (closing first if open).
    TcpOpen { conn: u8 },
    /// Connection slot `conn` closes (peer hung up).
    TcpClose { conn: u8 },
    /// A raw stream chunk on `conn`.
    TcpRaw { conn: u8, bytes: Vec<u8> },
    /// A Login Request on `conn`: username `user` (0–3), session `session`
    /// (0–2, 3 = blank: the username), split in two chunks at `split`.
    TcpLogin {
        conn: u8,
        user: u8,
        session: u8,
        split: u8,
    },
    /// Unsequenced Data packets with `blocks` kinds, streamed in chunks of
    /// `chunk` bytes (1–2048).
    TcpData { conn: u8, blocks: Vec<u8>, chunk: u16 },
    /// `rounds + 1` polls (1–16) skipping the parts `skip` says: bit 0 UDP
    /// receive, bit 1 TCP receive, bit 2 sequencer, bit 3 transmit.
    Poll { skip: u8, rounds: u8 },
}

impl Op {
    fn decode(r: &mut Bytes<'_>) -> Op {
        let op = r.u8();
        let arg = op >> 3;
        match op & 7 {
            0 => {
                // Any size a UDP socket delivers, past one 1,472-byte frame.
                let n = usize::from(r.u16()) % (MAX_UDP_PAYLOAD + 1);
                Op::UdpRaw {
                    from: arg % (ADDRS + 1),
                    bytes: r.take(n).to_vec(),
                }
            }
            1 => {
                let seq = r.u8();
                let shape = r.u8();
                let n = usize::from(shape % 24);
                Op::UdpMold {
                    from: arg % ADDRS,
                    session: (arg >> 2) % 4,
                    seq,
                    blocks: r.take(n).to_vec(),
                    end_of_session: shape == 0xff,
                }
            }
            2 => Op::TcpOpen {
                conn: arg % CONNS as u8,
            },
            3 => Op::TcpClose {
                conn: arg % CONNS as u8,
            },
            4 => {
                let n = usize::from(r.u16()) % (SLOT_BYTES + 1);
                Op::TcpRaw {
                    conn: arg % CONNS as u8,
                    bytes: r.take(n).to_vec(),
                }
            }
            5 => {
                let sel = r.u8();
                Op::TcpLogin {
                    conn: arg % CONNS as u8,
                    user: sel % 4,
                    session: (sel >> 2) % 4,
                    split: r.u8(),
                }
            }
            6 => {
                let n = 1 + usize::from(r.u8() % 20);
                let blocks = r.take(n).to_vec();
                Op::TcpData {
                    conn: arg % CONNS as u8,
                    blocks,
                    chunk: r.u16(),
                }
            }
            _ => Op::Poll {
                skip: arg & 0xf,
                rounds: r.u8() % 16,
            },
        }
    }

    /// Appends the bytes that decode to this op (fields must be in range).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::UdpRaw { from, bytes } => {
                out.push(from << 3);
                out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Op::UdpMold {
                from,
                session,
                seq,
                blocks,
                end_of_session,
            } => {
                out.push(1 | (from | session << 2) << 3);
                out.push(*seq);
                out.push(if *end_of_session { 0xff } else { blocks.len() as u8 });
                out.extend_from_slice(if *end_of_session { &[] } else { blocks });
            }
            Op::TcpOpen { conn } => out.push(2 | conn << 3),
            Op::TcpClose { conn } => out.push(3 | conn << 3),
            Op::TcpRaw { conn, bytes } => {
                out.push(4 | conn << 3);
                out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Op::TcpLogin {
                conn,
                user,
                session,
                split,
            } => {
                out.extend_from_slice(&[5 | conn << 3, user | session << 2, *split]);
            }
            Op::TcpData { conn, blocks, chunk } => {
                out.extend_from_slice(&[6 | conn << 3, (blocks.len() - 1) as u8]);
                out.extend_from_slice(blocks);
                out.extend_from_slice(&chunk.to_le_bytes());
            }
            Op::Poll { skip, rounds } => out.extend_from_slice(&[7 | skip << 3, *rounds]),
        }
    }
}

/// A whole script as fuzz input bytes.
pub(crate) fn encode(cfg: &Config, ops: &[Op]) -> Vec<u8> {
    let mut out = cfg.encode().to_vec();
    for op in ops {
        op.encode(&mut out);
    }
    out
}

/// The configured sessions (see the module docs).
fn directory() -> SessionDirectory {
    let cred = |name: &str, secret: &str| SessionCredential {
        name: checked_alpha_field(name).expect("valid name"),
        secret: checked_alpha_field(secret).expect("valid secret"),
    };
    let creds: Vec<SessionCredential> = ["S0", "S1", "S2", PROBE_SESSION, "T0", "T1", "u0", "u1"]
        .iter()
        .map(|n| cred(n, SECRET))
        .chain([cred("T2", "other")])
        .collect();
    SessionDirectory::new(&creds).expect("distinct names")
}

/// The session the final liveness probe logs in.
const PROBE_SESSION: &str = "PROBE";

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1 + i], 40_000 + u16::from(i)))
}

fn session_field(i: u8) -> SessionName {
    match i % 4 {
        3 => [0xff, 0, b' ', b'A', 0x80, 0, 0, 0, 0, 1],
        i => peregrine_wire::moldudp64::session_name(&format!("S{i}")),
    }
}

fn mold_packet(seq: u64, session: &SessionName, blocks: &[u8], end_of_session: bool) -> Vec<u8> {
    let mut p = Vec::with_capacity(MAX_UDP_PAYLOAD);
    p.extend_from_slice(session);
    p.extend_from_slice(&seq.to_be_bytes());
    let count: u16 = if end_of_session {
        0xffff
    } else {
        blocks.len() as u16
    };
    p.extend_from_slice(&count.to_be_bytes());
    if !end_of_session {
        for &k in blocks {
            let b = block(k);
            p.extend_from_slice(&(b.len() as u16).to_be_bytes());
            p.extend_from_slice(&b);
        }
    }
    // Up to 23 blocks (2,366 bytes) never reach the largest datagram a
    // port delivers; cut there all the same, as a socket would refuse more.
    p.truncate(MAX_UDP_PAYLOAD);
    p
}

// ---------------------------------------------------------------------------
// Fake ports.

#[derive(Default)]
struct ConnSlot {
    generation: u32,
    open: bool,
}

/// What the gateway was asked to send, checked as it goes.
#[derive(Default)]
struct TxCheck {
    /// UDP: next downstream sequence per session (it continues across
    /// logins from different addresses).
    udp_next: HashMap<SessionName, u64>,
    /// Last Ack global sequence per UDP (peer, session) or TCP connection.
    last_ack: HashMap<Peer, HashMap<SessionName, u64>>,
    acks: u64,
    rejects: u64,
    logins_accepted: u64,
    logins_rejected: u64,
    retransmitted: u64,
    logouts: u64,
    /// Downstream sequence numbers never sent (replies while logged out).
    skipped: u64,
}

impl TxCheck {
    fn reply(&mut self, peer: Peer, session: SessionName, msg: &[u8]) {
        assert_eq!(msg.len(), MESSAGE_LEN, "reply of {} bytes", msg.len());
        assert_eq!(msg[1], LAYOUT_VERSION);
        if msg[0] == MessageType::Ack as u8 {
            let ack = Ack::ref_from_bytes(msg).expect("100 bytes");
            let g = ack.global_seq.get();
            assert!(g >= 1, "ack with global sequence 0");
            let last = self.last_ack.entry(peer).or_default().entry(session).or_insert(0);
            assert!(g > *last, "acks out of order for {peer:?}: {g} after {last}");
            *last = g;
            self.acks += 1;
        } else if msg[0] == MessageType::Reject as u8 {
            let r = Reject::ref_from_bytes(msg).expect("100 bytes");
            // 1-3: malformed message; 8: client sequence gap; 9: a
            // retransmission whose original reply left the reply log.
            assert_eq!(r.global_seq.get(), 0, "gateway rejects are not sequenced");
            assert!(
                matches!(r.reason.get(), 1..=3 | 8 | 9),
                "gateway reject reason {}",
                r.reason.get()
            );
            self.rejects += 1;
        } else {
            panic!("unexpected reply type 0x{:02x}", msg[0]);
        }
    }

    fn datagram(&mut self, peer: Peer, data: &[u8]) {
        assert!(
            matches!(peer, Peer::Addr(_)),
            "UDP reply to a non-address peer {peer:?}"
        );
        let p = MoldPacket::new_checked(data).expect("reply datagram is valid MoldUDP64");
        if p.is_end_of_session() {
            self.logouts += 1;
            return;
        }
        let n = p.count();
        if p.sequence() == 0 {
            // Unsequenced: one login answer or session-layer reject.
            assert_eq!(n, 1, "unsequenced packets carry one message");
            for b in p.blocks() {
                match b.first().copied().and_then(MessageType::from_code) {
                    Some(MessageType::LoginAccepted) => self.logins_accepted += 1,
                    Some(MessageType::LoginRejected) => self.logins_rejected += 1,
                    Some(MessageType::Reject) => self.reply(peer, p.session(), b),
                    other => panic!("unsequenced {other:?}"),
                }
            }
            return;
        }
        assert!(
            n >= 1 && usize::from(n) <= MAX_MESSAGES_PER_PACKET,
            "reply count {n}"
        );
        let next = self.udp_next.entry(p.session()).or_insert(1);
        let (first, end) = (p.sequence(), p.sequence() + u64::from(n));
        // Replies produced while the session was logged out were numbered
        // and logged but had nowhere to go (counted unroutable; a re-login
        // or a retransmission request can ask for them): the stream resumes
        // after them, and a resend may later carry them for the first time.
        self.skipped += first.saturating_sub(*next);
        let seen_until = *next;
        *next = (*next).max(end);
        for (k, b) in p.blocks().enumerate() {
            if first + (k as u64) < seen_until {
                // An original reply sent again for a retransmitted message
                // or a request, with its original sequence number.
                self.retransmitted += 1;
            } else {
                self.reply(peer, p.session(), b);
            }
        }
    }

    fn stream(&mut self, peer: Peer, mut data: &[u8]) {
        assert!(matches!(peer, Peer::Conn(_)), "TCP reply to {peer:?}");
        assert!(!data.is_empty(), "empty TCP write");
        while !data.is_empty() {
            let Ok(Some((p, n))) = parse_packet(data) else {
                panic!("TCP write is not whole SoupBinTCP packets: {data:?}");
            };
            match p {
                SoupPacket::SequencedData(m) => {
                    assert_eq!(
                        m.first(),
                        Some(&(MessageType::Ack as u8)),
                        "only acks are sequenced"
                    );
                    self.reply(peer, [0; 10], m)
                }
                SoupPacket::UnsequencedData(m) => {
                    assert_eq!(
                        m.first(),
                        Some(&(MessageType::Reject as u8)),
                        "only rejects are unsequenced"
                    );
                    self.reply(peer, [0; 10], m)
                }
                SoupPacket::LoginAccepted { .. } => self.logins_accepted += 1,
                SoupPacket::LoginRejected(_) => self.logins_rejected += 1,
                other => panic!("gateway sent {other:?}"),
            }
            data = &data[n..];
        }
    }
}

#[derive(Default)]
struct PortState {
    rx: VecDeque<(Peer, RxEvent, Vec<u8>)>,
    closed_by_us: Vec<ConnId>,
    per_recv: usize,
    conns: Vec<ConnSlot>,
    tx: TxCheck,
    counters: PortCounters,
}

impl PortState {
    fn pending(&self) -> usize {
        self.rx.len() + self.closed_by_us.len()
    }

    fn conn(&mut self, i: u32) -> &mut ConnSlot {
        let i = i as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, ConnSlot::default);
        }
        &mut self.conns[i]
    }

    fn id(&mut self, i: u32) -> ConnId {
        ConnId {
            index: i,
            generation: self.conn(i).generation,
        }
    }

    fn open(&mut self, i: u32) {
        self.close_by_peer(i);
        let c = self.conn(i);
        c.generation = c.generation.wrapping_add(1);
        c.open = true;
        let id = self.id(i);
        self.rx.push_back((Peer::Conn(id), RxEvent::Opened, Vec::new()));
    }

    fn close_by_peer(&mut self, i: u32) {
        if std::mem::take(&mut self.conn(i).open) {
            let id = self.id(i);
            self.rx.push_back((Peer::Conn(id), RxEvent::Closed, Vec::new()));
        }
    }

    fn data(&mut self, i: u32, bytes: &[u8]) {
        let id = self.id(i);
        for c in bytes.chunks(SLOT_BYTES) {
            self.rx.push_back((Peer::Conn(id), RxEvent::Data, c.to_vec()));
        }
    }
}

#[derive(Clone)]
struct FakePort {
    state: Arc<Mutex<PortState>>,
}

impl FakePort {
    fn new(per_recv: usize) -> Self {
        FakePort {
            state: Arc::new(Mutex::new(PortState {
                per_recv,
                ..PortState::default()
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, PortState> {
        // A poisoned lock means an assertion already failed in this input.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StreamPort for FakePort {
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        batch.clear();
        let mut s = self.state();
        while !batch.is_full() {
            let Some(&id) = s.closed_by_us.first() else { break };
            batch.push_event(Peer::Conn(id), RxEvent::Closed);
            s.closed_by_us.remove(0);
        }
        let limit = s.per_recv.min(batch.capacity());
        while batch.len() < limit {
            let Some((peer, ev, bytes)) = s.rx.pop_front() else {
                break;
            };
            let ok = match ev {
                RxEvent::Data => batch.push(peer, &bytes),
                e => batch.push_event(peer, e),
            };
            assert!(ok, "fake port built an oversize entry");
            s.counters.rx_packets += 1;
        }
        Ok(batch.len())
    }

    fn poll_tx(&mut self) -> Result<usize, NetError> {
        Ok(0)
    }

    fn close(&mut self, id: ConnId) {
        let mut s = self.state();
        let c = s.conn(id.index);
        if c.open && c.generation == id.generation {
            c.open = false;
            s.closed_by_us.push(id);
        }
    }
}

impl Port for FakePort {
    fn local_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9000))
    }

    fn send(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        let mut s = self.state();
        let n = batch.len();
        for i in 0..n {
            let (peer, _, data) = batch.get(i);
            s.tx.stream(peer, data);
            s.counters.tx_packets += 1;
            s.counters.tx_bytes += data.len() as u64;
        }
        batch.clear();
        Ok(n)
    }

    fn counters(&self) -> PortCounters {
        self.state().counters
    }
}

// ---------------------------------------------------------------------------
// The application wrapper.

/// `EchoApp` behind checks on the sequenced stream.
struct CheckedApp {
    inner: EchoApp,
    next_global: u64,
    /// TCP client sequence (implicit, per session) must increase.
    tcp_client_seq: HashMap<u32, u64>,
}

impl Application for CheckedApp {
    fn on_message(&mut self, m: &Sequenced<'_>, out: &mut ReplySink<'_>) {
        assert_eq!(m.global_seq, self.next_global, "global sequence not gap-free");
        self.next_global += 1;
        assert!(
            classify_inbound(m.msg).is_ok(),
            "an invalid message was sequenced"
        );
        assert!(m.origin.gateway <= 1, "origin gateway {}", m.origin.gateway);
        if m.origin.gateway == 1 {
            let last = self.tcp_client_seq.entry(m.origin.index).or_insert(0);
            assert!(
                m.client_seq > *last,
                "TCP client sequence went {last} -> {}",
                m.client_seq
            );
            *last = m.client_seq;
        }
        self.inner.on_message(m, out);
    }
}

// ---------------------------------------------------------------------------
// The run.

struct World {
    /// The test side of the UDP gateway's in-memory port.
    udp_net: MemoryHandle,
    /// The UDP replies read back so far, checked.
    udp_tx: TxCheck,
    tcp_port: FakePort,
    udp: UdpGateway<MemoryPort>,
    tcp: TcpGateway<FakePort>,
    seq: Sequencer<CheckedApp>,
}

impl World {
    fn new(cfg: &Config) -> World {
        let (udp_rings, udp_seq) = ring_pair(cfg.ring_capacity).expect("power of two");
        let (tcp_rings, tcp_seq) = ring_pair(cfg.ring_capacity).expect("power of two");
        let opts = GatewayOptions {
            rx_burst: cfg.rx_burst,
            tx_burst: cfg.tx_burst,
            reply_burst: cfg.reply_burst,
            // Timers read the real clock; keep them out of the fuzzed run's
            // reach so every run is deterministic.
            heartbeat_interval: std::time::Duration::from_secs(3600),
            idle_timeout: std::time::Duration::from_secs(7200),
            rate_limit: Default::default(),
            reply_log_depth: 64,
            reorder_window: 8,
            login_policy: Default::default(),
            // Real clock again: never report Busy within a run.
            busy_after: std::time::Duration::from_secs(3600),
            // As in production (the harness tolerates repeated reports).
            gap_report_repeat: std::time::Duration::from_nanos(
                peregrine_gateway::options::GAP_REPORT_REPEAT_NS,
            ),
            leadership: None,
            latency_histograms: true,
        };
        let directory = Arc::new(directory());
        // The in-memory port takes in at most the gateway's burst: the UDP
        // gateway's burst is what the fake port's per-receive limit was.
        let udp_opts = GatewayOptions {
            rx_burst: cfg.rx_burst.min(cfg.per_recv),
            ..opts.clone()
        };
        let (udp_port, udp_net) = MemoryPort::new(SocketAddr::from(([127, 0, 0, 1], 9000)));
        let tcp_port = FakePort::new(cfg.per_recv);
        let app = CheckedApp {
            inner: EchoApp::new(),
            next_global: 1,
            tcp_client_seq: HashMap::new(),
        };
        World {
            udp: UdpGateway::new(0, udp_port, udp_rings, Arc::clone(&directory), udp_opts),
            tcp: TcpGateway::new(1, tcp_port.clone(), tcp_rings, directory, opts),
            udp_net,
            udp_tx: TxCheck::default(),
            tcp_port,
            seq: Sequencer::new(vec![udp_seq, tcp_seq], app, 1, cfg.seq_batch),
        }
    }

    fn accepted(&self) -> u64 {
        self.udp.counters().accepted + self.tcp.counters().accepted
    }

    /// One shared-layout round; returns the work done.
    fn round(&mut self, skip: u8) -> usize {
        let mut work = 0;
        if skip & 1 == 0 {
            work += self.udp.poll_rx();
            self.check_udp_sent();
        }
        if skip & 2 == 0 {
            work += self.tcp.poll_rx();
        }
        if skip & 4 == 0 {
            work += self.seq.poll();
        }
        if skip & 8 == 0 {
            work += self.udp.poll_tx();
            self.check_udp_sent();
            work += self.tcp.poll_tx();
        }
        let sequenced = self.seq.counters().sequenced;
        assert!(sequenced <= self.accepted(), "sequenced {sequenced} > accepted");
        work
    }

    /// Checks the datagrams the UDP gateway sent since the last call.
    fn check_udp_sent(&mut self) {
        for (to, data) in self.udp_net.take_sent() {
            self.udp_tx.datagram(Peer::Addr(to), &data);
        }
    }

    /// Polls until a round does nothing and nothing is pending.
    fn drain(&mut self) {
        let mut idle = 0;
        for _ in 0..MAX_DRAIN_ROUNDS {
            if self.round(0) > 0 {
                idle = 0;
                continue;
            }
            let (udp, tcp) = (self.udp_net.pending(), self.tcp_port.state().pending());
            if udp + tcp == 0 {
                return;
            }
            idle += 1;
            assert!(
                idle < STALL_ROUNDS,
                "stalled: no progress with events pending (udp port {udp}, tcp port {tcp})"
            );
        }
        panic!("no quiescence after {MAX_DRAIN_ROUNDS} rounds (livelock)");
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::UdpRaw { from, bytes } => {
                // Not from an address: cannot reach a datagram port.
                if *from < ADDRS {
                    self.udp_net.push(addr(*from), bytes);
                }
            }
            Op::UdpMold {
                from,
                session,
                seq,
                blocks,
                end_of_session,
            } => {
                let p = mold_packet(u64::from(*seq), &session_field(*session), blocks, *end_of_session);
                self.udp_net.push(addr(*from), &p);
            }
            Op::TcpOpen { conn } => self.tcp_port.state().open(u32::from(*conn)),
            Op::TcpClose { conn } => self.tcp_port.state().close_by_peer(u32::from(*conn)),
            Op::TcpRaw { conn, bytes } => self.tcp_port.state().data(u32::from(*conn), bytes),
            Op::TcpLogin {
                conn,
                user,
                session,
                split,
            } => {
                let mut b = [0u8; 49];
                let name = if *session == 3 {
                    String::new()
                } else {
                    format!("T{session}")
                };
                soupbintcp::write_login_request(&mut b, &format!("u{user}"), "pw", &name, 0);
                let cut = usize::from(*split) % b.len();
                let mut s = self.tcp_port.state();
                for part in [&b[..cut], &b[cut..]] {
                    if !part.is_empty() {
                        s.data(u32::from(*conn), part);
                    }
                }
            }
            Op::TcpData { conn, blocks, chunk } => {
                let mut stream = Vec::new();
                let mut frame = [0u8; 2 + 1 + MESSAGE_LEN];
                for &k in blocks {
                    let m = block(k);
                    let n = soupbintcp::write_packet(&mut frame, kind::UNSEQUENCED_DATA, &m).expect("fits");
                    stream.extend_from_slice(&frame[..n]);
                }
                let chunk = 1 + usize::from(*chunk) % SLOT_BYTES;
                let mut s = self.tcp_port.state();
                for c in stream.chunks(chunk) {
                    s.data(u32::from(*conn), c);
                }
            }
            Op::Poll { skip, rounds } => {
                for _ in 0..=*rounds {
                    self.round(*skip);
                }
            }
        }
    }

    /// End-of-run checks, after a drain.
    fn check_totals(&self) {
        let sc = self.seq.counters();
        let (u, t) = (self.udp.counters(), self.tcp.counters());
        assert_eq!(u.accepted + t.accepted, sc.sequenced, "accepted != sequenced");
        assert_eq!(self.seq.app().inner.acked(), sc.sequenced);
        assert_eq!(self.seq.app().next_global, sc.sequenced + 1);
        assert_eq!(self.seq.next_seq(), sc.sequenced + 1);
        assert_eq!(sc.replies, sc.sequenced, "EchoApp answers every message once");
        assert_eq!(sc.replies_misrouted, 0);
        assert_eq!(self.seq.held_back(), 0);
        for (name, c) in [("udp", u), ("tcp", t)] {
            assert_eq!(
                c.rx_messages,
                c.accepted + c.rejected() + c.dedup_hits,
                "{name}: messages neither accepted, rejected nor recognised as retransmissions"
            );
        }
        // UDP peers are always routable: every ack and reject left.
        let us = &self.udp_tx;
        // Every accepted message's ack left, or had nowhere to go because
        // its session was logged out (then it is logged, numbered, and may
        // leave later as a resend, first seen here).
        assert!(us.acks <= u.accepted, "udp: more acks than accepted messages");
        assert!(
            u.accepted <= us.acks + u.replies_unroutable,
            "udp: an accepted message's ack vanished"
        );
        assert!(
            us.skipped <= u.replies_unroutable,
            "downstream gap not explained by a logout"
        );
        // Everything seen was sent and counted.
        assert!(
            us.acks + us.rejects + us.retransmitted <= u.tx_replies + u.replies_retransmitted,
            "udp: replies seen that the gateway did not count"
        );
        if u.replies_unroutable == 0 {
            // Never logged out with replies pending: the exact accounting.
            assert_eq!(us.acks, u.accepted, "udp: acks sent != accepted");
            // Rejects resent for retransmitted messages are the part of the
            // gateway's retransmissions that the downstream check did not
            // see.
            let resent_rejects = u.replies_retransmitted - us.retransmitted;
            assert_eq!(
                us.rejects,
                u.rejected() - u.rejected_gap
                    + u.gap_notices
                    + u.rejected_too_old
                    + u.replies_gone
                    + resent_rejects,
                "udp: rejects sent != rejected"
            );
            assert_eq!(us.acks + us.rejects, u.tx_replies + resent_rejects);
        }
        assert_eq!(
            (us.logins_accepted, us.logins_rejected),
            (u.logins, u.logins_rejected)
        );
        // TCP replies either left or were counted unroutable.
        let ts = self.tcp_port.state();
        assert_eq!(ts.tx.acks + ts.tx.rejects, t.tx_replies);
        assert_eq!(
            t.tx_replies + t.replies_unroutable,
            t.accepted + t.rejected(),
            "tcp: replies lost"
        );
        assert_eq!(ts.tx.logins_accepted, t.logins);
        assert_eq!(ts.tx.logins_rejected, t.logins_rejected);
    }

    /// Both gateways still read their ports: a heartbeat on each must be
    /// counted.
    fn probe(&mut self) {
        let (hu, ht) = (self.udp.counters().heartbeats, self.tcp.counters().heartbeats);
        let probe = peregrine_wire::moldudp64::session_name(PROBE_SESSION);
        let login = mold_packet(0, &probe, &[LOGIN], false);
        let hb = mold_packet(0, &probe, &[], false);
        self.udp_net.push(addr(ADDRS), &login);
        self.udp_net.push(addr(ADDRS), &hb);
        {
            let mut s = self.tcp_port.state();
            s.open(PROBE_CONN);
            s.data(PROBE_CONN, &[0, 1, kind::CLIENT_HEARTBEAT]);
        }
        self.drain();
        assert_eq!(
            self.udp.counters().heartbeats,
            hu + 1,
            "UDP gateway no longer reads its port"
        );
        assert_eq!(
            self.tcp.counters().heartbeats,
            ht + 1,
            "TCP gateway no longer reads its port"
        );
    }
}

pub(crate) fn run(data: &[u8]) {
    run_world(data);
}

fn run_world(data: &[u8]) -> World {
    let mut r = Bytes::new(data);
    let cfg = Config::decode(&mut r);
    let mut ops = Vec::new();
    while !r.is_empty() && ops.len() < MAX_OPS {
        ops.push(Op::decode(&mut r));
    }
    let mut w = World::new(&cfg);
    for op in &ops {
        w.apply(op);
    }
    w.drain();
    w.check_totals();
    w.probe();
    w.check_totals();
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_ops_round_trip_through_bytes() {
        let cfg = Config {
            ring_capacity: 8,
            rx_burst: 3,
            tx_burst: 2,
            max_sessions: 2,
            seq_batch: 5,
            reply_burst: 7,
            per_recv: 4,
        };
        let ops = vec![
            Op::UdpMold {
                from: 1,
                session: 2,
                seq: 9,
                blocks: vec![0, 5, 6],
                end_of_session: false,
            },
            Op::TcpOpen { conn: 3 },
            Op::TcpLogin {
                conn: 3,
                user: 1,
                session: 3,
                split: 10,
            },
            Op::TcpData {
                conn: 3,
                blocks: vec![1, 2],
                chunk: 50,
            },
            Op::Poll { skip: 4, rounds: 2 },
        ];
        let bytes = encode(&cfg, &ops);
        let mut r = Bytes::new(&bytes);
        let d = Config::decode(&mut r);
        assert_eq!(format!("{d:?}"), format!("{cfg:?}"));
        let mut back = Vec::new();
        while !r.is_empty() {
            back.push(Op::decode(&mut r));
        }
        assert_eq!(format!("{back:?}"), format!("{ops:?}"));
        run(&bytes);
    }

    /// The harness really drives traffic end to end.
    #[test]
    fn scripts_reach_the_sequencer_and_back() {
        let mold = |from: u8, seq: u8, blocks: Vec<u8>| Op::UdpMold {
            from,
            session: 0,
            seq,
            blocks,
            end_of_session: false,
        };
        let ops = [
            // Not logged in: dropped. A wrong secret: refused.
            mold(0, 1, vec![0; 3]),
            mold(0, 0, vec![BAD_LOGIN]),
            mold(0, 0, vec![LOGIN]),
            mold(0, 1, vec![0; 14]),
            // Another address naming the bound session: dropped.
            mold(1, 15, vec![0; 2]),
            Op::TcpOpen { conn: 0 },
            Op::TcpLogin {
                conn: 0,
                user: 0,
                session: 0,
                split: 3,
            },
            Op::TcpData {
                conn: 0,
                blocks: vec![0, 1, 5],
                chunk: 10,
            },
        ];
        let w = run_world(&encode(&Config::default(), &ops));
        let (u, t) = (w.udp.counters(), w.tcp.counters());
        assert_eq!((u.accepted, t.accepted, t.rejected(), t.logins), (14, 2, 1, 1));
        // The probe's login is the second accepted one.
        assert_eq!(
            (u.logins, u.logins_rejected, u.dropped_unauthenticated),
            (2, 1, 2)
        );
        assert_eq!(w.seq.counters().sequenced, 16);
        assert_eq!(w.udp_tx.acks, 14);
        let ts = w.tcp_port.state();
        assert_eq!((ts.tx.acks, ts.tx.rejects), (2, 1));
        drop(ts);
        assert_eq!((u.heartbeats, t.heartbeats), (1, 1), "the probes");
    }
}
