//! An in-memory datagram port for tests (cargo feature `test-util`).
//!
//! Like a loopback device with the wire cut: a test pushes datagrams into
//! the receive queue through a [`MemoryHandle`] and reads back what the
//! code under test sent, without sockets, so gateway behaviour can be
//! driven datagram by datagram, deterministically. The port and its
//! handles share one queue pair behind a mutex (the port is `Send` and may
//! move to another thread); it allocates freely and is not for the hot
//! path. A port made with [`MemoryPort::lending`] also lends transmit
//! buffers ([`Port::tx_slots`]) as the DPDK port does, so code that builds
//! datagrams in place can be tested without DPDK.

use crate::batch::PacketBatch;
use crate::error::NetError;
use crate::port::{DatagramPort, Peer, Port, PortCounters, TxSlots};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Queues {
    inbox: VecDeque<(SocketAddr, Vec<u8>)>,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    counters: PortCounters,
}

/// The port side: give it to the code under test.
#[derive(Debug)]
pub struct MemoryPort {
    local: SocketAddr,
    queues: Arc<Mutex<Queues>>,
    /// The burst taken in by `receive`, lent by `consume`.
    held: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Transmit buffers lent through `tx_slots` (a lending port only).
    lent: Option<PacketBatch>,
}

/// The test side: fills the receive queue, reads what was sent.
#[derive(Clone, Debug)]
pub struct MemoryHandle {
    queues: Arc<Mutex<Queues>>,
}

impl MemoryPort {
    /// A port "bound" to `local`, and the handle that feeds and drains it.
    pub fn new(local: SocketAddr) -> (MemoryPort, MemoryHandle) {
        let queues = Arc::new(Mutex::new(Queues::default()));
        let handle = MemoryHandle {
            queues: Arc::clone(&queues),
        };
        let port = MemoryPort {
            local,
            queues,
            held: VecDeque::new(),
            lent: None,
        };
        (port, handle)
    }

    /// Like [`new`](Self::new), and the port lends `slots` transmit
    /// buffers through [`Port::tx_slots`]; what is committed there is
    /// "sent" by the next [`Port::send`], ahead of its batch.
    pub fn lending(local: SocketAddr, slots: usize) -> (MemoryPort, MemoryHandle) {
        let (mut port, handle) = MemoryPort::new(local);
        port.lent = Some(PacketBatch::new(slots.max(1)));
        (port, handle)
    }

    fn queues(&self) -> MutexGuard<'_, Queues> {
        lock(&self.queues)
    }
}

/// A poisoned lock only means a test already failed while holding it.
fn lock(q: &Mutex<Queues>) -> MutexGuard<'_, Queues> {
    q.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryHandle {
    /// Queues a datagram from `from` for the port to receive.
    pub fn push(&self, from: SocketAddr, data: &[u8]) {
        lock(&self.queues).inbox.push_back((from, data.to_vec()));
    }

    /// Datagrams queued and not yet received by the port.
    pub fn pending(&self) -> usize {
        lock(&self.queues).inbox.len()
    }

    /// Takes every datagram the port has sent so far, oldest first, each
    /// with its destination.
    pub fn take_sent(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        lock(&self.queues).outbox.drain(..).collect()
    }

    /// The port's counters.
    pub fn counters(&self) -> PortCounters {
        lock(&self.queues).counters
    }
}

impl DatagramPort for MemoryPort {
    fn receive(&mut self, max: usize) -> Result<usize, NetError> {
        if !self.held.is_empty() {
            return Ok(0);
        }
        let mut q = lock(&self.queues);
        while self.held.len() < max {
            let Some((from, data)) = q.inbox.pop_front() else {
                break;
            };
            q.counters.rx_packets += 1;
            q.counters.rx_bytes += data.len() as u64;
            self.held.push_back((from, data));
        }
        Ok(self.held.len())
    }

    fn consume<F>(&mut self, mut f: F) -> usize
    where
        F: FnMut(SocketAddr, &[u8], &mut dyn Port) -> bool,
    {
        let mut n = 0;
        while let Some((from, data)) = self.held.pop_front() {
            if !f(from, &data, self) {
                self.held.push_front((from, data));
                break;
            }
            n += 1;
        }
        n
    }
}

impl Port for MemoryPort {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Every entry for a `Peer::Addr` is "sent" (kept for the handle);
    /// entries for a connection are dropped and counted.
    fn send(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        let mut q = lock(&self.queues);
        let mut sent = 0;
        if let Some(lent) = self.lent.as_mut() {
            sent += deliver(&mut q, lent);
        }
        sent += deliver(&mut q, batch);
        Ok(sent)
    }

    fn tx_slots(&mut self) -> Option<&mut dyn TxSlots> {
        self.lent.as_mut().map(|b| b as &mut dyn TxSlots)
    }

    fn counters(&self) -> PortCounters {
        self.queues().counters
    }
}

/// Moves every entry of `batch` to the outbox (entries for a connection
/// are dropped and counted), clearing it; returns the entries sent.
fn deliver(q: &mut Queues, batch: &mut PacketBatch) -> usize {
    let mut sent = 0;
    for i in 0..batch.len() {
        let (peer, _, data) = batch.get(i);
        match peer {
            Peer::Addr(to) => {
                q.outbox.push_back((to, data.to_vec()));
                q.counters.tx_packets += 1;
                q.counters.tx_bytes += data.len() as u64;
                sent += 1;
            }
            Peer::Conn(_) => q.counters.tx_dropped += 1,
        }
    }
    batch.clear();
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_feeds_datagrams_in_and_reads_replies_out() {
        let at: SocketAddr = "10.0.0.1:9000".parse().unwrap();
        let client: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        let (mut port, h) = MemoryPort::new(at);
        for i in 0..3u8 {
            h.push(client, &[i; 4]);
        }
        assert_eq!(port.receive(2).unwrap(), 2, "at most max per burst");
        assert_eq!(h.pending(), 1);
        let mut seen = Vec::new();
        let n = port.consume(|from, data, tx| {
            assert_eq!(from, client);
            seen.push(data[0]);
            let mut b = PacketBatch::new(1);
            b.push(Peer::Addr(from), &[data[0] + 10]);
            tx.send(&mut b).unwrap();
            false
        });
        assert_eq!((n, seen), (0, vec![0]), "refused: stays held");
        assert_eq!(port.receive(2).unwrap(), 0, "nothing new while held");
        let mut copy = PacketBatch::new(4);
        assert_eq!(port.recv(&mut copy).unwrap(), 2);
        assert_eq!(port.recv(&mut copy).unwrap(), 1);
        assert_eq!(copy.get(0).2, &[2u8; 4][..]);
        assert_eq!(h.take_sent(), vec![(client, vec![10u8])]);
        assert_eq!((port.counters().rx_packets, h.counters().tx_packets), (3, 1));
    }

    #[test]
    fn a_lending_port_sends_what_was_built_in_its_buffers_first() {
        let at: SocketAddr = "10.0.0.1:9000".parse().unwrap();
        let client: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        let (mut plain, _) = MemoryPort::new(at);
        assert!(plain.tx_slots().is_none(), "a plain port lends nothing");
        let (mut port, h) = MemoryPort::lending(at, 2);
        let slots = port.tx_slots().expect("lends");
        assert!(slots.queue(Peer::Addr(client), b"one"));
        let slot = slots.next_slot().unwrap();
        slot[..3].copy_from_slice(b"two");
        slots.commit(Peer::Addr(client), 3);
        assert_eq!(slots.committed(), 2);
        assert!(slots.next_slot().is_none(), "both buffers committed");
        let mut batch = PacketBatch::new(1);
        batch.push(Peer::Addr(client), b"three");
        assert_eq!(port.send(&mut batch).unwrap(), 3);
        let sent: Vec<Vec<u8>> = h.take_sent().into_iter().map(|(_, d)| d).collect();
        assert_eq!(sent, vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        assert_eq!(port.tx_slots().unwrap().committed(), 0, "sent and cleared");
    }
}
