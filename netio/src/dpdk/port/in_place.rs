//! Datagrams built where they leave from: [`TxSlots`] over fresh mbufs.
//!
//! Why: a reply built in a batch slot and then copied into an mbuf is
//! written twice, and the second write is a whole datagram (up to 1,472
//! bytes) per packet on the transmit path. Here the port lends the payload
//! area of a fresh mbuf (the bytes after the room for the Ethernet, IPv4
//! and UDP headers), the caller writes the payload there, and
//! [`commit`](TxSlots::commit) writes the headers around it (the UDP
//! checksum is computed over the payload in place, or left to the NIC) and
//! queues the mbuf. The next [`Port::send`](crate::Port::send) transmits
//! the queue in one burst, ahead of that call's batch.
//!
//! Never a stall: when the mempool is empty, the buffer lent is a spare
//! one owned by the port, and what is committed in it is dropped and
//! counted (`tx_no_mbuf`, `tx_dropped`), exactly as [`send`] drops a batch
//! entry it has no mbuf for. So a caller that sends and asks again always
//! gets a buffer, and a datagram protocol above retransmits.
//!
//! [`send`]: crate::Port::send

use super::{
    mbuf_frame, mbuf_payload_len, register_thread, tx_burst_retry, DpdkPort, HEADERS, MAX_UDP_PAYLOAD,
};
use crate::port::{Peer, TxSlots};
use dpdk_sys::rte_mbuf;
use std::ptr;

/// The buffer last lent by [`TxSlots::next_slot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lent {
    /// Nothing lent (or the last one was committed).
    Nothing,
    /// The payload area of this mbuf, which the port owns until commit.
    Mbuf(*mut rte_mbuf),
    /// The spare buffer: the pool was empty.
    Spare,
    /// The spare buffer: the pool's mbufs cannot hold a full datagram.
    TooSmall,
}

/// The port's in-place transmit state (see the module docs).
pub(super) struct InPlaceTx {
    lent: Lent,
    /// Built frames waiting for the next burst: `built[..built_len]`.
    built: Box<[*mut rte_mbuf]>,
    built_len: usize,
    /// UDP payload bytes of the built frames.
    built_bytes: u64,
    /// Lent when no mbuf can be had; its contents are never sent.
    spare: Box<[u8]>,
}

impl InPlaceTx {
    /// Room for `burst` built frames.
    pub(super) fn new(burst: usize) -> Self {
        InPlaceTx {
            lent: Lent::Nothing,
            built: vec![ptr::null_mut(); burst.max(1)].into_boxed_slice(),
            built_len: 0,
            built_bytes: 0,
            spare: vec![0u8; MAX_UDP_PAYLOAD].into_boxed_slice(),
        }
    }
}

impl DpdkPort {
    /// Transmits the frames built in place, in one burst (retried
    /// briefly); what the NIC refuses is freed and counted.
    pub(super) fn flush_in_place(&mut self) -> usize {
        let n = self.in_place.built_len;
        if n == 0 {
            return 0;
        }
        let mut bytes = self.in_place.built_bytes;
        let t0 = self.meter.now();
        let sent = tx_burst_retry(self.port_id, self.queue, &mut self.in_place.built[..n]);
        if sent < n {
            for &m in &self.in_place.built[sent..n] {
                bytes = bytes.saturating_sub(u64::from(mbuf_payload_len(m)));
            }
            // SAFETY: the refused tail is mbufs we allocated and still own;
            // nothing refers to them after this.
            unsafe {
                dpdk_sys::pg_pktmbuf_free_bulk(self.in_place.built.as_mut_ptr().add(sent), (n - sent) as u32)
            };
            self.stats.tx_ring_full += (n - sent) as u64;
            self.counters.tx_dropped += (n - sent) as u64;
        }
        self.meter.spent.tx += self.meter.since(t0);
        self.counters.tx_packets += sent as u64;
        self.counters.tx_bytes += bytes;
        self.in_place.built_len = 0;
        self.in_place.built_bytes = 0;
        sent
    }

    /// Frees the lent mbuf and the built frames (the port is going away).
    pub(super) fn release_in_place(&mut self) {
        if let Lent::Mbuf(m) = self.in_place.lent {
            // SAFETY: a lent mbuf is ours until committed; it was not.
            unsafe { dpdk_sys::pg_pktmbuf_free(m) };
        }
        self.in_place.lent = Lent::Nothing;
        let n = self.in_place.built_len;
        if n > 0 {
            // SAFETY: built frames are ours until transmitted; they were not.
            unsafe { dpdk_sys::pg_pktmbuf_free_bulk(self.in_place.built.as_mut_ptr(), n as u32) };
        }
        self.in_place.built_len = 0;
    }
}

impl TxSlots for DpdkPort {
    /// The payload area (up to [`MAX_UDP_PAYLOAD`] bytes) of a fresh mbuf,
    /// or the spare buffer when the pool is empty; `None` once a burst's
    /// worth of frames is built and waiting for `send`.
    fn next_slot(&mut self) -> Option<&mut [u8]> {
        if self.in_place.built_len == self.in_place.built.len() {
            return None;
        }
        if self.in_place.lent == Lent::Nothing {
            register_thread();
            // SAFETY: the pool outlives the port.
            let m = unsafe { dpdk_sys::pg_pktmbuf_alloc(self.pool.0.as_ptr()) };
            self.in_place.lent = if m.is_null() { Lent::Spare } else { Lent::Mbuf(m) };
        }
        if let Lent::Mbuf(m) = self.in_place.lent {
            if let Some(frame) = mbuf_frame(m, HEADERS + MAX_UDP_PAYLOAD) {
                return Some(&mut frame[HEADERS..]);
            }
            // A pool of mbufs too small for a full datagram (a
            // configuration no DPDK default gives): dropped as oversize.
            // SAFETY: allocated just now or by an earlier call, never queued.
            unsafe { dpdk_sys::pg_pktmbuf_free(m) };
            self.in_place.lent = Lent::TooSmall;
        }
        Some(&mut self.in_place.spare[..])
    }

    /// Writes the headers for `peer` around the first `len` bytes of the
    /// lent mbuf's payload area and queues it for the next `send`; a
    /// datagram that cannot be framed (no neighbour yet, not IPv4) or was
    /// written in the spare buffer is dropped and counted.
    fn commit(&mut self, peer: Peer, len: usize) {
        let lent = std::mem::replace(&mut self.in_place.lent, Lent::Nothing);
        match lent {
            Lent::Nothing => {}
            Lent::Spare => {
                self.stats.tx_no_mbuf += 1;
                self.counters.tx_dropped += 1;
            }
            Lent::TooSmall => {
                self.stats.tx_oversize += 1;
                self.counters.tx_dropped += 1;
            }
            Lent::Mbuf(m) => match self.frame_around(m, peer, len.min(MAX_UDP_PAYLOAD)) {
                Ok(payload) => {
                    self.in_place.built[self.in_place.built_len] = m;
                    self.in_place.built_len += 1;
                    self.in_place.built_bytes += payload as u64;
                }
                Err(()) => {
                    // SAFETY: allocated by next_slot, never queued.
                    unsafe { dpdk_sys::pg_pktmbuf_free(m) };
                    self.counters.tx_dropped += 1;
                }
            },
        }
    }

    fn committed(&self) -> usize {
        self.in_place.built_len
    }
}
