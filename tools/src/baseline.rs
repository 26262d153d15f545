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
