//! A lossy UDP relay for fault injection: sits between clients and a
//! server and, in both directions, drops, duplicates and reorders
//! datagrams with a given probability each. Every client gets its own
//! upstream socket, so the server still sees one source address per client.
//!
//! It runs on its own thread until stopped and counts what it did. The
//! fault model is [`crate::faults`]'s, the one the client simulator's lossy
//! link uses too; its random choices come from a seeded generator, so a run
//! is repeatable for a given arrival order. Traffic only goes where it is told: use loopback
//! or namespace addresses.
//!
//! Datagrams move in batches through netio's [`UdpPort`] (one `recvmmsg` per
//! socket and poll round, one `sendmmsg` per destination socket), so the
//! system-call cost is paid per burst rather than per datagram. Datagrams the
//! relay decided to forward wait in a per-socket outbox until the kernel
//! accepts them; while an outbox is backed up, the sockets feeding it are not
//! read (their kernel buffers absorb the burst). Datagrams larger than a
//! batch slot ([`peregrine_netio::SLOT_BYTES`]) are not relayed.

use crate::faults::{FaultInjector, Held};
use peregrine_netio::{DatagramPort, PacketBatch, Peer, Port, UdpOptions, UdpPort};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use crate::faults::{FaultCounters as RelayCounters, Faults};

/// A running relay.
pub struct Relay {
    /// Where clients send.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<io::Result<RelayCounters>>>,
}

impl Relay {
    /// Stops the relay and returns its counters.
    pub fn stop(mut self) -> io::Result<RelayCounters> {
        self.stop.store(true, Ordering::Relaxed);
        match self.join.take() {
            Some(j) => j.join().map_err(|_| io::Error::other("relay thread panicked"))?,
            None => Ok(RelayCounters::default()),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Datagrams per `recvmmsg`/`sendmmsg`.
const BATCH: usize = 64;
/// Requested kernel socket buffers, each way (root may exceed `rmem_max`;
/// the kernel doubles the figure). Enough for several milliseconds of
/// traffic while the relay is not scheduled, not so much that an overloaded
/// relay queues for hundreds of milliseconds (and sets off every
/// retransmission timer behind it).
const SOCKET_BUFFER: usize = 4 << 20;
/// A socket is read only while every outbox its datagrams may go to holds
/// fewer than this many; one received batch adds at most `2 * BATCH + 1`
/// (each datagram sent twice, plus one that was held).
const OUTBOX_HIGH_WATER: usize = 2 * BATCH;
/// Empty poll rounds spent spinning before the relay starts sleeping.
const IDLE_SPINS: u32 = 4;
/// Sleep per empty round after that (the kernel adds its timer slack,
/// 50 µs by default).
const IDLE_SLEEP: Duration = Duration::from_micros(20);
/// Short sleeps (at least 20 ms of silence) before sleeping longer.
const IDLE_NAPS: u32 = 1000;
/// Sleep per empty round once the relay has been idle that long.
const IDLE_LONG_SLEEP: Duration = Duration::from_micros(500);

fn port_options() -> UdpOptions {
    UdpOptions {
        recv_buffer: SOCKET_BUFFER,
        send_buffer: SOCKET_BUFFER,
        max_batch: BATCH,
        // A full socket is retried on the next poll round (the datagrams
        // stay in the outbox), not spun on inside `send`.
        send_retries: 0,
        segmentation: true,
        receive_coalescing: true,
    }
}

/// Datagrams decided on and not yet accepted by the kernel, in order.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Emptied buffers, reused so a steady flow does not allocate.
    spare: Vec<Vec<u8>>,
}

impl Outbox {
    fn push(&mut self, to: SocketAddr, data: &[u8]) {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.queue.push_back((to, buf));
    }

    fn has_room(&self) -> bool {
        self.queue.len() < OUTBOX_HIGH_WATER
    }

    /// Hands queued datagrams to the kernel, a batch per `sendmmsg`, until
    /// the queue is empty or the socket is full. Returns how many left the
    /// queue.
    fn flush(&mut self, port: &mut UdpPort, tx: &mut PacketBatch) -> usize {
        let mut done = 0;
        while !self.queue.is_empty() {
            tx.clear();
            for (to, data) in self.queue.iter().take(tx.capacity()) {
                // Every datagram came out of a batch slot, so it fits one.
                let fits = tx.push(Peer::Addr(*to), data);
                debug_assert!(fits);
            }
            let n = tx.len();
            // The port sends a prefix of the batch in order and reports its
            // length (datagrams it had to drop for a per-datagram error are
            // part of that prefix); the rest found the socket full. On any
            // other error it cannot say how much went out: the batch is
            // given up, like a send error on a plain socket.
            let taken = port.send(tx).map_or(n, |sent| sent.min(n));
            for (_, buf) in self.queue.drain(..taken) {
                self.spare.push(buf);
            }
            done += taken;
            if taken < n {
                break;
            }
        }
        done
    }
}

/// One client: its upstream socket and what is in flight for it.
struct Client {
    addr: SocketAddr,
    up: UdpPort,
    /// Client → server datagrams waiting for the upstream socket.
    to_server: Outbox,
    /// Held datagram per direction.
    held: [Held<()>; 2],
}

/// Decides the fate of one datagram travelling in `dir` (the shared fault
/// model, with no hold bound: a held datagram waits for the next one) and
/// queues what goes out in `out`, addressed to `to`. The outbox always has
/// room (it is bounded by not reading while it is backed up).
fn relay_one(
    f: &mut FaultInjector,
    data: &[u8],
    dir: usize,
    held: &mut Held<()>,
    out: &mut Outbox,
    to: SocketAddr,
) {
    f.pass(dir, (), data, held, 0, &mut |(), d: &[u8]| {
        out.push(to, d);
        true
    });
}

/// What an empty poll round does: spin a few rounds (under load the next
/// datagram is microseconds away), then sleep briefly so the relay leaves
/// the CPU to the client and server it sits between, and sleep longer once
/// nothing has come for a while. A relay that only yielded would stay
/// runnable and, next to busy-polling threads, wait whole scheduler slices
/// for its turn.
struct Idle {
    streak: u32,
}

impl Idle {
    fn round(&mut self, busy: bool) {
        if busy {
            self.streak = 0;
            return;
        }
        self.streak = self.streak.saturating_add(1);
        if self.streak <= IDLE_SPINS {
            std::hint::spin_loop();
        } else if self.streak <= IDLE_SPINS + IDLE_NAPS {
            std::thread::sleep(IDLE_SLEEP);
        } else {
            std::thread::sleep(IDLE_LONG_SLEEP);
        }
    }
}

/// Starts a relay listening on `listen` and forwarding to `upstream`.
pub fn start(listen: SocketAddr, upstream: SocketAddr, faults: Faults, seed: u64) -> io::Result<Relay> {
    let front = UdpPort::from_socket(UdpSocket::bind(listen)?, port_options())?;
    let addr = front.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let join = std::thread::Builder::new()
        .name("loss-relay".into())
        .spawn(move || run(front, upstream, faults, seed, &stop2))?;
    Ok(Relay {
        addr,
        stop,
        join: Some(join),
    })
}

fn connect_upstream(upstream: SocketAddr) -> io::Result<UdpPort> {
    let any: SocketAddr = if upstream.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any)?;
    // Connected: only the server's datagrams come back on it.
    socket.connect(upstream)?;
    UdpPort::from_socket(socket, port_options())
}

/// The relay thread.
fn run(
    mut front: UdpPort,
    upstream: SocketAddr,
    faults: Faults,
    seed: u64,
    stop: &AtomicBool,
) -> io::Result<RelayCounters> {
    let mut f = FaultInjector::new(faults, seed, None);
    let mut clients: Vec<Client> = Vec::new();
    let mut index: HashMap<SocketAddr, usize> = HashMap::new();
    // Server → client datagrams waiting for the front socket.
    let mut to_clients = Outbox::default();
    // Clients whose outbox is over the high-water mark.
    let mut backed_up = 0usize;
    let mut rx = PacketBatch::new(BATCH);
    let mut tx = PacketBatch::new(BATCH);
    let mut idle = Idle { streak: 0 };
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        // Client -> server: one batch from the listening socket, unless a
        // client's outbox could not take it.
        if backed_up == 0 {
            let n = front.recv(&mut rx).unwrap_or(0);
            busy |= n > 0;
            for i in 0..n {
                let (Peer::Addr(from), _, data) = rx.get(i) else {
                    continue;
                };
                let k = match index.get(&from) {
                    Some(&k) => k,
                    None => {
                        clients.push(Client {
                            addr: from,
                            up: connect_upstream(upstream)?,
                            to_server: Outbox::default(),
                            held: Default::default(),
                        });
                        index.insert(from, clients.len() - 1);
                        clients.len() - 1
                    }
                };
                let c = &mut clients[k];
                relay_one(&mut f, data, 0, &mut c.held[0], &mut c.to_server, upstream);
            }
        }
        backed_up = 0;
        for c in clients.iter_mut() {
            busy |= c.to_server.flush(&mut c.up, &mut tx) > 0;
            backed_up += usize::from(!c.to_server.has_room());
        }
        // Server -> clients: one batch from each upstream socket.
        for c in clients.iter_mut() {
            if !to_clients.has_room() {
                break;
            }
            let n = c.up.recv(&mut rx).unwrap_or(0);
            busy |= n > 0;
            for i in 0..n {
                relay_one(&mut f, rx.get(i).2, 1, &mut c.held[1], &mut to_clients, c.addr);
            }
            // Send as we go so a batch from one client does not wait for
            // the others' receive calls.
            busy |= to_clients.flush(&mut front, &mut tx) > 0;
        }
        busy |= to_clients.flush(&mut front, &mut tx) > 0;
        idle.round(busy);
    }
    // Best effort for what is already decided (held datagrams stay held).
    for c in clients.iter_mut() {
        c.to_server.flush(&mut c.up, &mut tx);
    }
    to_clients.flush(&mut front, &mut tx);
    Ok(f.counters())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn faults_happen_at_about_the_configured_rate_in_both_directions() {
        // An echo server behind the relay.
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let echo_addr = echo.local_addr().unwrap();
        echo.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = Arc::clone(&stop);
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 64];
            while !s2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = echo.recv_from(&mut b) {
                    let _ = echo.send_to(&b[..n], from);
                }
            }
        });
        let relay = start("127.0.0.1:0".parse().unwrap(), echo_addr, Faults::uniform(0.1), 7).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        let mut got = Vec::new();
        let n = 2000u32;
        for chunk in 0..n / 20 {
            for i in chunk * 20..(chunk + 1) * 20 {
                client.send_to(&i.to_le_bytes(), relay.addr).unwrap();
            }
            let mut b = [0u8; 4];
            while let Ok(k) = client.recv(&mut b) {
                if k == 4 {
                    got.push(u32::from_le_bytes(b));
                }
            }
        }
        let until = Instant::now() + Duration::from_millis(300);
        let mut b = [0u8; 4];
        while Instant::now() < until {
            if let Ok(4) = client.recv(&mut b) {
                got.push(u32::from_le_bytes(b));
            }
        }
        let c = relay.stop().unwrap();
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        assert_eq!(c.received[0], n as u64);
        for dir in 0..2 {
            let r = c.received[dir] as f64;
            for (what, v) in [
                ("drop", c.dropped[dir]),
                ("dup", c.duplicated[dir]),
                ("reorder", c.reordered[dir]),
            ] {
                let rate = v as f64 / r;
                assert!((0.05..0.15).contains(&rate), "dir {dir} {what} rate {rate}");
            }
        }
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        assert!(unique.len() < n as usize, "some lost");
        assert!(got.len() > unique.len(), "some duplicated");
        assert!(got.windows(2).any(|w| w[1] < w[0]), "some reordered");
    }

    /// A batched echo server behind the relay (every datagram goes back to
    /// its sender) with large socket buffers. Returns its address, its
    /// receive buffer size and a stop function.
    fn batch_echo_server() -> (SocketAddr, usize, impl FnOnce()) {
        let mut port = UdpPort::bind("127.0.0.1:0".parse().unwrap(), UdpOptions::default()).unwrap();
        let (addr, rcvbuf) = (port.local_addr(), port.buffer_sizes().0);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = Arc::clone(&stop);
        let t = std::thread::spawn(move || {
            let mut batch = PacketBatch::new(64);
            while !s2.load(Ordering::Relaxed) {
                if port.recv(&mut batch).unwrap() > 0 {
                    port.send(&mut batch).unwrap();
                } else {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        });
        (addr, rcvbuf, move || {
            stop.store(true, Ordering::Relaxed);
            t.join().unwrap();
        })
    }

    #[test]
    fn without_faults_a_burst_arrives_once_and_in_order_both_ways() {
        let (echo_addr, echo_rcvbuf, stop_echo) = batch_echo_server();
        let relay = start("127.0.0.1:0".parse().unwrap(), echo_addr, Faults::uniform(0.0), 3).unwrap();
        let to_relay = Peer::Addr(relay.addr);
        let mut client = UdpPort::bind("127.0.0.1:0".parse().unwrap(), UdpOptions::default()).unwrap();
        // Datagrams of 4 to 1472 bytes: the sequence number, then a pattern
        // derived from it.
        let datagram = |i: u32| {
            let mut d = vec![i as u8 ^ 0x5a; 4 + (i as usize * 97) % 1469];
            d[..4].copy_from_slice(&i.to_le_bytes());
            d
        };
        let n = 10_000u32;
        // Sent in bursts as large as every socket buffer on the way holds
        // (a datagram takes up to about 4 KiB of one), so that the kernel
        // has no reason to drop any. The relay's buffers are at most
        // `2 * SOCKET_BUFFER`; without root, the same cap as the test's own.
        let smallest = echo_rcvbuf.min(client.buffer_sizes().0).min(2 * SOCKET_BUFFER);
        let window = ((smallest / 4096) as u32).clamp(32, n);
        let mut tx = PacketBatch::new(64);
        let mut rx = PacketBatch::new(64);
        let mut sent = 0u32;
        let mut got: Vec<u32> = Vec::with_capacity(n as usize);
        let check = |rx: &PacketBatch, got: &mut Vec<u32>| {
            for k in 0..rx.len() {
                let d = rx.get(k).2;
                let i = u32::from_le_bytes(d[..4].try_into().unwrap());
                assert_eq!(d, &datagram(i)[..], "datagram {i} altered");
                got.push(i);
            }
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < n as usize && Instant::now() < deadline {
            while sent < n && sent - (got.len() as u32) < window {
                tx.push(to_relay, &datagram(sent));
                sent += 1;
                if tx.is_full() || sent == n || sent - (got.len() as u32) == window {
                    let k = tx.len();
                    assert_eq!(client.send(&mut tx).unwrap(), k, "client send");
                }
            }
            if client.recv(&mut rx).unwrap() > 0 {
                check(&rx, &mut got);
            }
        }
        // Anything extra (a duplicate) would turn up here.
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until {
            if client.recv(&mut rx).unwrap() > 0 {
                check(&rx, &mut got);
            }
        }
        let c = relay.stop().unwrap();
        stop_echo();
        let first_wrong = got.iter().enumerate().find(|&(k, &i)| i != k as u32);
        assert_eq!(first_wrong, None, "{} of {n} came back ({sent} sent)", got.len());
        assert_eq!(got.len(), n as usize);
        let all = [n as u64; 2];
        assert_eq!(
            c,
            RelayCounters {
                received: all,
                forwarded: all,
                ..RelayCounters::default()
            }
        );
    }

    #[test]
    fn a_held_datagram_goes_out_right_after_the_next_one() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut f = FaultInjector::new(
            Faults {
                drop: 0.0,
                duplicate: 0.0,
                reorder: 1.0,
            },
            1,
            None,
        );
        let mut held = Held::default();
        let mut out = Outbox::default();
        for i in 1..=5u8 {
            relay_one(&mut f, &[i], 0, &mut held, &mut out, to);
        }
        let order: Vec<u8> = out.queue.iter().map(|(_, d)| d[0]).collect();
        // 1 is held and follows 2, 3 follows 4, 5 waits for a sixth.
        assert_eq!(order, [2, 1, 4, 3]);
        assert!(held.is_full() && held.data() == [5]);
        assert_eq!(f.counters().reordered[0], 3);
        assert_eq!(f.counters().forwarded[0], 4);
        // A dropped datagram still lets the held one go.
        f.set_faults(Faults {
            drop: 1.0,
            duplicate: 0.0,
            reorder: 0.0,
        });
        relay_one(&mut f, &[6], 0, &mut held, &mut out, to);
        assert_eq!(out.queue.back().map(|(_, d)| d[0]), Some(5));
        assert!(!held.is_full());
    }
}
