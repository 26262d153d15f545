//! A lossy UDP relay for fault injection: sits between clients and a
//! server and, in both directions, drops, duplicates and reorders
//! datagrams with a given probability each. Every client gets its own
//! upstream socket, so the server still sees one source address per client.
//!
//! It runs on its own thread until stopped and counts what it did. The
//! random choices come from a seeded generator, so a run is repeatable for
//! a given arrival order. Traffic only goes where it is told: use loopback
//! or namespace addresses.

use crate::client::flow::Rng;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Fault probabilities, each in `0.0..=1.0`, applied per datagram and
/// direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Probability a datagram is dropped.
    pub drop: f64,
    /// Probability a datagram is sent twice.
    pub duplicate: f64,
    /// Probability a datagram is held back and sent after the next one.
    pub reorder: f64,
}

impl Faults {
    /// The same probability `p` for drop, duplicate and reorder.
    pub fn uniform(p: f64) -> Faults {
        Faults {
            drop: p,
            duplicate: p,
            reorder: p,
        }
    }
}

/// What the relay did, per direction (0: client → server, 1: server → client).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayCounters {
    /// Datagrams received.
    pub received: [u64; 2],
    /// Datagrams forwarded (duplicates included).
    pub forwarded: [u64; 2],
    /// Dropped on purpose.
    pub dropped: [u64; 2],
    /// Sent twice on purpose.
    pub duplicated: [u64; 2],
    /// Held back behind the next datagram on purpose.
    pub reordered: [u64; 2],
}

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

struct Direction {
    held: Option<(Vec<u8>, usize)>,
}

/// Starts a relay listening on `listen` and forwarding to `upstream`.
pub fn start(listen: SocketAddr, upstream: SocketAddr, faults: Faults, seed: u64) -> io::Result<Relay> {
    let front = UdpSocket::bind(listen)?;
    front.set_nonblocking(true)?;
    let addr = front.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let join = std::thread::Builder::new()
        .name("loss-relay".into())
        .spawn(move || {
            let mut rng = Rng::new(seed);
            let mut counters = RelayCounters::default();
            // client address -> (upstream socket, held datagram per direction)
            let mut clients: HashMap<SocketAddr, (UdpSocket, [Direction; 2])> = HashMap::new();
            let mut buf = vec![0u8; 65536];
            let chance = |rng: &mut Rng, p: f64| p > 0.0 && (rng.next_u64() as f64 / u64::MAX as f64) < p;
            while !stop2.load(Ordering::Relaxed) {
                let mut work = false;
                // Client -> server.
                while let Ok((n, from)) = front.recv_from(&mut buf) {
                    work = true;
                    let (up, dirs) = match clients.entry(from) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let up =
                                UdpSocket::bind(if upstream.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
                            up.set_nonblocking(true)?;
                            up.connect(upstream)?;
                            v.insert((up, [Direction { held: None }, Direction { held: None }]))
                        }
                    };
                    forward(
                        &buf[..n],
                        0,
                        &mut dirs[0],
                        &mut rng,
                        &faults,
                        &mut counters,
                        &chance,
                        |d| {
                            let _ = up.send(d);
                        },
                    );
                }
                // Server -> clients.
                for (client, (up, dirs)) in clients.iter_mut() {
                    while let Ok(n) = up.recv(&mut buf) {
                        work = true;
                        forward(
                            &buf[..n],
                            1,
                            &mut dirs[1],
                            &mut rng,
                            &faults,
                            &mut counters,
                            &chance,
                            |d| {
                                let _ = front.send_to(d, client);
                            },
                        );
                    }
                }
                if !work {
                    std::thread::yield_now();
                }
            }
            Ok(counters)
        })?;
    Ok(Relay {
        addr,
        stop,
        join: Some(join),
    })
}

#[allow(clippy::too_many_arguments)]
fn forward(
    data: &[u8],
    dir: usize,
    d: &mut Direction,
    rng: &mut Rng,
    f: &Faults,
    c: &mut RelayCounters,
    chance: &impl Fn(&mut Rng, f64) -> bool,
    mut send: impl FnMut(&[u8]),
) {
    c.received[dir] += 1;
    if chance(rng, f.drop) {
        c.dropped[dir] += 1;
    } else if d.held.is_none() && chance(rng, f.reorder) {
        c.reordered[dir] += 1;
        d.held = Some((data.to_vec(), 0));
        return;
    } else {
        send(data);
        c.forwarded[dir] += 1;
        if chance(rng, f.duplicate) {
            send(data);
            c.forwarded[dir] += 1;
            c.duplicated[dir] += 1;
        }
    }
    // A held datagram goes out after the one that overtook it.
    if let Some((held, _)) = d.held.take() {
        send(&held);
        c.forwarded[dir] += 1;
    }
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
}
