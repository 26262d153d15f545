//! Minimal raw echo servers: the same netio ports, socket options, polling
//! and pinning as the server, but no gateway, no rings, no sequencer. The
//! bench runs one in the same run as Peregrine, so the report shows what
//! Peregrine adds on top of the kernel and the machine at that moment.

use peregrine_netio::{
    DatagramPort, PacketBatch, Port, RxEvent, StreamPort, TcpOptions, TcpPort, UdpOptions, UdpPort,
};
use peregrine_server::idle::{IdleKind, IdleStrategy, Idler};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running echo server.
pub struct EchoServer {
    /// The bound address.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<u64>>,
}

impl EchoServer {
    /// Stops it; returns the number of packets echoed.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.join.take().and_then(|j| j.join().ok()).unwrap_or(0)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Runs `step` on a new pinned thread named `name` until the returned
/// server is stopped; `step` reports how much work it found (for the idle
/// strategy) and adds what it echoed to the running count.
fn spawn_echo(
    name: &str,
    local: SocketAddr,
    core: Option<usize>,
    idle: IdleKind,
    mut step: impl FnMut(&mut u64) -> usize + Send + 'static,
) -> anyhow::Result<EchoServer> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let join = std::thread::Builder::new().name(name.into()).spawn(move || {
        let _ = peregrine_server::pinning::pin_current(core);
        let mut idler = Idler::new(idle);
        let mut echoed = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            idler.idle(step(&mut echoed));
        }
        echoed
    })?;
    Ok(EchoServer {
        addr: local,
        stop,
        join: Some(join),
    })
}

/// Starts a UDP echo: every datagram goes straight back to its sender.
pub fn start_udp_echo(
    addr: SocketAddr,
    opts: UdpOptions,
    burst: usize,
    core: Option<usize>,
    idle: IdleKind,
) -> anyhow::Result<EchoServer> {
    let mut port = UdpPort::bind(addr, opts)?;
    let local = port.local_addr();
    let mut batch = PacketBatch::new(burst.max(1));
    spawn_echo("echo-udp", local, core, idle, move |echoed| {
        let n = port.recv(&mut batch).unwrap_or(0);
        if n > 0 {
            // Each entry is addressed to its sender: send the batch back.
            *echoed += port.send(&mut batch).unwrap_or(0) as u64;
        }
        n
    })
}

/// Starts a TCP echo: bytes read from a connection are written back to it,
/// read in chunks of the SoupBinTCP gateway's size.
pub fn start_tcp_echo(
    addr: SocketAddr,
    burst: usize,
    core: Option<usize>,
    idle: IdleKind,
) -> anyhow::Result<EchoServer> {
    let mut port = TcpPort::bind(addr, TcpOptions::default())?;
    let local = port.local_addr();
    // The gateway's read size, so that the echo is the same socket work.
    let chunk = peregrine_gateway::tcp::RX_CHUNK_BYTES;
    let mut rx = PacketBatch::with_slot_bytes(burst.max(1), chunk);
    let mut tx = PacketBatch::with_slot_bytes(burst.max(1), chunk);
    spawn_echo("echo-tcp", local, core, idle, move |echoed| {
        let n = port.recv(&mut rx).unwrap_or(0);
        for i in 0..n {
            let (peer, ev, data) = rx.get(i);
            if ev == RxEvent::Data {
                tx.push(peer, data);
            }
        }
        if !tx.is_empty() {
            *echoed += port.send(&mut tx).unwrap_or(0) as u64;
        }
        let _ = port.poll_tx();
        n
    })
}

/// What one follower connection of the replicated echo holds.
struct FloorLink {
    /// The leader's end: replicated bytes go out here, acks come back.
    leader: std::net::TcpStream,
    /// The follower's end.
    follower: std::net::TcpStream,
    /// Replicated bytes not yet accepted by the leader's socket.
    backlog: Vec<u8>,
    /// Bytes the follower has received (what it acknowledges).
    received: u64,
    /// The follower's acknowledgements not yet taken by its socket.
    ack_out: Vec<u8>,
    /// Highest byte count the leader has seen acknowledged.
    acked: u64,
    /// A partial acknowledgement read so far.
    ack_buf: [u8; 8],
    ack_len: usize,
}

/// Starts the replication floor: a UDP echo that, like a cluster leader,
/// answers a datagram only once a majority of `nodes` (its own copy
/// counts) holds it. Every received batch is written in one write to each
/// of `nodes - 1` followers over loopback TCP (`TCP_NODELAY`), each
/// follower answers every read with the 8-byte count of bytes it holds,
/// and a datagram is echoed once enough followers have counted past it.
/// The leader and its followers are polled in turn by one thread, as the
/// colocated cluster bench runs its nodes, with plain non-blocking reads
/// and writes (no `epoll`). No consensus, no journal, no parsing: what
/// remains is the kernel's cost of one replicated round trip on this
/// machine, the floor under any replicated figure measured the same way.
pub fn start_replicated_udp_echo(
    addr: SocketAddr,
    opts: UdpOptions,
    burst: usize,
    core: Option<usize>,
    idle: IdleKind,
    nodes: usize,
) -> anyhow::Result<EchoServer> {
    use std::collections::VecDeque;
    use std::io::{ErrorKind, Read, Write};
    anyhow::ensure!(nodes >= 2, "a replicated echo needs at least 2 nodes");
    let mut port = UdpPort::bind(addr, opts)?;
    let local = port.local_addr();
    let mut links = Vec::with_capacity(nodes - 1);
    for _ in 1..nodes {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let leader = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (follower, _) = listener.accept()?;
        for s in [&leader, &follower] {
            s.set_nodelay(true)?;
            s.set_nonblocking(true)?;
        }
        links.push(FloorLink {
            leader,
            follower,
            backlog: Vec::with_capacity(1 << 16),
            received: 0,
            ack_out: Vec::with_capacity(64),
            acked: 0,
            ack_buf: [0; 8],
            ack_len: 0,
        });
    }
    // Followers that must hold a datagram besides the leader.
    let needed = nodes / 2;
    let mut rx = PacketBatch::new(burst.max(1));
    let mut tx = PacketBatch::new(burst.max(1));
    // Datagrams awaiting their majority: (sender, bytes, end offset in
    // the replicated stream).
    let mut pending: VecDeque<(peregrine_netio::Peer, Vec<u8>, u64)> = VecDeque::with_capacity(1024);
    let mut spare: Vec<Vec<u8>> = Vec::with_capacity(1024);
    let mut appended = 0u64;
    let mut out = Vec::with_capacity(1 << 16);
    let mut scratch = vec![0u8; 1 << 16];
    let mut acks: Vec<u64> = Vec::with_capacity(nodes);
    spawn_echo("echo-udp-replicated", local, core, idle, move |echoed| {
        let mut work = 0;
        // Leader: receive a batch, append it to every follower in one write.
        let n = port.recv(&mut rx).unwrap_or(0);
        out.clear();
        for i in 0..n {
            let (peer, _, data) = rx.get(i);
            out.extend_from_slice(data);
            appended += data.len() as u64;
            let mut copy = spare.pop().unwrap_or_default();
            copy.clear();
            copy.extend_from_slice(data);
            pending.push_back((peer, copy, appended));
        }
        work += n;
        for l in &mut links {
            if !out.is_empty() {
                l.backlog.extend_from_slice(&out);
            }
            if !l.backlog.is_empty() {
                match l.leader.write(&l.backlog) {
                    Ok(w) => {
                        l.backlog.drain(..w);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => {}
                }
            }
        }
        // Followers: hold what arrived, acknowledge the running count
        // (whole 8-byte counts: what the socket does not take now goes
        // first next time).
        for l in &mut links {
            if let Ok(r) = l.follower.read(&mut scratch) {
                if r > 0 {
                    l.received += r as u64;
                    l.ack_out.extend_from_slice(&l.received.to_le_bytes());
                    work += 1;
                }
            }
            if !l.ack_out.is_empty() {
                if let Ok(w) = l.follower.write(&l.ack_out) {
                    l.ack_out.drain(..w);
                }
            }
        }
        // Leader: read acknowledgements; echo what a majority holds.
        for l in &mut links {
            while let Ok(r) = l.leader.read(&mut scratch) {
                if r == 0 {
                    break;
                }
                for &b in &scratch[..r] {
                    l.ack_buf[l.ack_len] = b;
                    l.ack_len += 1;
                    if l.ack_len == 8 {
                        l.acked = l.acked.max(u64::from_le_bytes(l.ack_buf));
                        l.ack_len = 0;
                    }
                }
            }
        }
        acks.clear();
        acks.extend(links.iter().map(|l| l.acked));
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let committed = acks.get(needed.saturating_sub(1)).copied().unwrap_or(appended);
        while pending.front().is_some_and(|p| p.2 <= committed) {
            if tx.len() == tx.capacity() {
                *echoed += port.send(&mut tx).unwrap_or(0) as u64;
            }
            if let Some((peer, data, _)) = pending.pop_front() {
                tx.push(peer, &data);
                spare.push(data);
            }
            work += 1;
        }
        if !tx.is_empty() {
            *echoed += port.send(&mut tx).unwrap_or(0) as u64;
        }
        work
    })
}
