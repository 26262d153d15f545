//! A preallocated batch of packets, the unit every port moves.
//!
//! Slots are fixed-size and evenly spaced. Most batches use [`SLOT_BYTES`]
//! (a 1,500-byte-MTU frame); a kernel UDP port receives into slots of
//! [`DATAGRAM_SLOT_BYTES`] so that any datagram the socket can deliver
//! arrives whole. A batch's storage is a mapping of its own, which the
//! kernel fills with zero pages as they are first written (not the
//! allocator's, which may hand back reused memory and clear all of it):
//! only the pages a datagram actually writes ever become resident, so
//! ordinary traffic touches the first page of each slot, exactly as with
//! small slots, and the 64 KiB of address space per slot costs memory only
//! while large datagrams arrive. A port that takes runs of datagrams the kernel
//! coalesced fills its slots routinely instead, so it makes them resident
//! at start-up ([`PacketBatch::fault_in`]), where a page fault costs
//! nothing, rather than page by page on the receive path.

use crate::port::{Peer, RxEvent, TxSlots};

mod zeroed_pages;
use zeroed_pages::ZeroedPages;

/// Bytes per ordinary batch slot: room for a full 1,500-byte-MTU UDP payload.
pub const SLOT_BYTES: usize = 2048;

/// Largest UDP payload over IPv4 (65,535 minus the IPv4 and UDP headers):
/// the largest datagram a kernel socket can deliver to an IPv4 port.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Bytes per slot of a kernel UDP port's receive batch: room for any UDP
/// payload, IPv4 ([`MAX_UDP_PAYLOAD`]) or IPv6 (65,527).
pub const DATAGRAM_SLOT_BYTES: usize = 65_536;

/// Distance between slot starts for slots of `slot` bytes. Large slots are
/// spaced 2 KiB apart beyond their size: slots exactly 64 KiB apart would
/// start in the same cache set of every level (the set index repeats every
/// 4 KiB in L1 and every 64 KiB in a 1 MiB 16-way L2), so a burst of
/// 1.4 KB datagrams would fight over a few sets while most stay empty.
/// With the extra 2 KiB, consecutive slots start 32 lines apart and a
/// burst spreads over the cache as contiguous 2 KiB slots do. Small slots
/// are back to back.
const fn stride_for(slot: usize) -> usize {
    if slot > SLOT_BYTES {
        slot + SLOT_BYTES
    } else {
        slot
    }
}

/// A fixed-capacity batch of byte chunks with their peers.
///
/// All memory is allocated once in [`PacketBatch::new`]; filling, reading and
/// clearing never allocate. Slots are laid out back to back so a backend can
/// point a `recvmmsg` iovec array (or DPDK copies) straight at them.
pub struct PacketBatch {
    bufs: ZeroedPages,
    /// Bytes per slot.
    slot: usize,
    /// Distance between slot starts (see [`stride_for`]).
    stride: usize,
    lens: Box<[u32]>,
    peers: Box<[Peer]>,
    events: Box<[RxEvent]>,
    len: usize,
}

impl PacketBatch {
    /// Makes every slot's memory resident now (writes each page once), so
    /// the receive path never takes a page fault on it: for a batch whose
    /// slots fill deep (see the module docs). Costs its whole size in
    /// memory.
    pub fn fault_in(&mut self) {
        const PAGE: usize = 4096;
        // The first byte of every 4 KiB from the start, and the last byte:
        // every page the storage spans, wherever it starts in a page.
        let bufs = self.bufs.as_mut_slice();
        let last = bufs.len() - 1;
        for at in (0..bufs.len()).step_by(PAGE).chain([last]) {
            // A volatile write: fresh zero pages look like zeros to the
            // compiler, which could drop a plain one.
            // SAFETY: `at` is below the length of `bufs`, which is
            // exclusively borrowed here.
            unsafe { std::ptr::write_volatile(bufs.as_mut_ptr().add(at), 0) };
        }
    }

    /// A batch of `capacity` slots of [`SLOT_BYTES`] each.
    ///
    /// # Panics
    /// If `capacity` is 0 (a configuration error, caught at start-up).
    pub fn new(capacity: usize) -> Self {
        Self::with_slot_bytes(capacity, SLOT_BYTES)
    }

    /// A batch of `capacity` slots of `slot_bytes` each (at most
    /// [`DATAGRAM_SLOT_BYTES`]; larger values are clamped to it).
    ///
    /// # Panics
    /// If `capacity` or `slot_bytes` is 0 (a configuration error, caught at
    /// start-up), or if the kernel refuses the storage's mapping (as an
    /// allocation failure would abort).
    pub fn with_slot_bytes(capacity: usize, slot_bytes: usize) -> Self {
        assert!(capacity > 0, "a packet batch needs at least one slot");
        assert!(slot_bytes > 0, "a packet batch slot needs at least one byte");
        let slot = slot_bytes.min(DATAGRAM_SLOT_BYTES);
        let stride = stride_for(slot);
        PacketBatch {
            bufs: ZeroedPages::new(capacity * stride),
            slot,
            stride,
            lens: vec![0u32; capacity].into_boxed_slice(),
            peers: vec![Peer::NONE; capacity].into_boxed_slice(),
            events: vec![RxEvent::Data; capacity].into_boxed_slice(),
            len: 0,
        }
    }

    /// Bytes per slot: the largest entry the batch holds.
    #[inline]
    pub fn slot_bytes(&self) -> usize {
        self.slot
    }

    /// Number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Number of filled entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is filled.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when every slot is filled.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    /// True when a stream receive into this batch may have left bytes
    /// behind: every slot is filled, or some data entry filled its slot
    /// (the read took all the room it had). Callers read again while so.
    pub fn may_have_more(&self) -> bool {
        self.is_full()
            || (0..self.len).any(|i| self.events[i] == RxEvent::Data && self.lens[i] as usize == self.slot)
    }

    /// Forgets every entry (no memory is released).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Entry `i`: its peer, its event and its bytes (empty for events).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    #[inline]
    pub fn get(&self, i: usize) -> (Peer, RxEvent, &[u8]) {
        assert!(i < self.len);
        let start = i * self.stride;
        let n = self.lens[i] as usize;
        (
            self.peers[i],
            self.events[i],
            &self.bufs.as_slice()[start..start + n],
        )
    }

    /// Copies `data` into the next slot, addressed to/from `peer`.
    /// Returns false (and stores nothing) when the batch is full or `data`
    /// exceeds [`PacketBatch::slot_bytes`].
    #[inline]
    pub fn push(&mut self, peer: Peer, data: &[u8]) -> bool {
        if self.is_full() || data.len() > self.slot {
            return false;
        }
        let i = self.len;
        let start = i * self.stride;
        self.bufs.as_mut_slice()[start..start + data.len()].copy_from_slice(data);
        self.lens[i] = data.len() as u32;
        self.peers[i] = peer;
        self.events[i] = RxEvent::Data;
        self.len += 1;
        true
    }

    /// Records a connection event in the next slot. Returns false when full.
    #[inline]
    pub fn push_event(&mut self, peer: Peer, event: RxEvent) -> bool {
        if self.is_full() {
            return false;
        }
        let i = self.len;
        self.lens[i] = 0;
        self.peers[i] = peer;
        self.events[i] = event;
        self.len += 1;
        true
    }

    /// The next free slot's whole buffer, to build an entry in place; finish
    /// with [`PacketBatch::commit`]. `None` when full.
    #[inline]
    pub fn next_slot(&mut self) -> Option<&mut [u8]> {
        if self.is_full() {
            return None;
        }
        let start = self.len * self.stride;
        Some(&mut self.bufs.as_mut_slice()[start..start + self.slot])
    }

    /// Commits the slot last returned by [`PacketBatch::next_slot`] with its
    /// first `len` bytes as data for `peer`. Does nothing when full; `len`
    /// is clamped to [`PacketBatch::slot_bytes`].
    #[inline]
    pub fn commit(&mut self, peer: Peer, len: usize) {
        if self.is_full() {
            return;
        }
        let i = self.len;
        self.lens[i] = len.min(self.slot) as u32;
        self.peers[i] = peer;
        self.events[i] = RxEvent::Data;
        self.len += 1;
    }

    /// Backend access: base pointer of slot storage (slot `i` starts at
    /// `i * self.slot_stride()` and holds `self.slot_bytes()`).
    #[inline]
    pub(crate) fn slots_ptr(&mut self) -> *mut u8 {
        self.bufs.as_mut_slice().as_mut_ptr()
    }

    /// Backend access: bytes from one slot's start to the next's.
    #[inline]
    pub(crate) fn slot_stride(&self) -> usize {
        self.stride
    }

    /// Backend access: marks the first `n` slots filled after a bulk receive
    /// whose lengths and peers were written with `set_entry`.
    #[inline]
    pub(crate) fn set_len(&mut self, n: usize) {
        self.len = n.min(self.capacity());
    }

    /// Backend access: sets slot `i`'s metadata after a bulk receive.
    #[inline]
    pub(crate) fn set_entry(&mut self, i: usize, peer: Peer, len: usize) {
        self.lens[i] = len.min(self.slot) as u32;
        self.peers[i] = peer;
        self.events[i] = RxEvent::Data;
    }
}

/// Sizes and fill, not contents.
impl std::fmt::Debug for PacketBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBatch")
            .field("len", &self.len)
            .field("capacity", &self.lens.len())
            .field("slot_bytes", &self.slot)
            .finish()
    }
}

/// A batch's slots are transmit buffers: what is committed is sent by the
/// [`Port::send`](crate::Port::send) it is handed to.
impl TxSlots for PacketBatch {
    #[inline]
    fn next_slot(&mut self) -> Option<&mut [u8]> {
        PacketBatch::next_slot(self)
    }

    #[inline]
    fn commit(&mut self, peer: Peer, len: usize) {
        PacketBatch::commit(self, peer, len)
    }

    #[inline]
    fn committed(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn push_get_clear_round_trip() {
        let mut b = PacketBatch::new(2);
        let p = Peer::Addr("127.0.0.1:9".parse::<SocketAddr>().unwrap());
        assert!(b.push(p, b"abc"));
        assert!(b.push_event(Peer::NONE, RxEvent::Closed));
        assert!(b.is_full());
        assert!(!b.push(p, b"x"), "full batch must refuse");
        assert_eq!(b.get(0), (p, RxEvent::Data, &b"abc"[..]));
        assert_eq!(b.get(1).1, RxEvent::Closed);
        b.clear();
        assert!(b.is_empty());
        assert!(!b.push(p, &[0u8; SLOT_BYTES + 1]), "oversize must refuse");
    }

    #[test]
    fn datagram_slots_hold_the_largest_udp_payload() {
        let mut b = PacketBatch::with_slot_bytes(2, DATAGRAM_SLOT_BYTES);
        assert_eq!(b.slot_bytes(), DATAGRAM_SLOT_BYTES);
        let p = Peer::NONE;
        let big = vec![5u8; MAX_UDP_PAYLOAD];
        assert!(b.push(p, &big));
        assert!(b.push(p, b"small"));
        assert_eq!(b.get(0).2, &big[..]);
        assert_eq!(b.get(1).2, b"small");
        let huge = PacketBatch::with_slot_bytes(1, usize::MAX / 4);
        assert_eq!(huge.slot_bytes(), DATAGRAM_SLOT_BYTES, "clamped");
    }

    #[test]
    fn in_place_slot_commit() {
        let mut b = PacketBatch::new(1);
        let s = b.next_slot().unwrap();
        s[..2].copy_from_slice(b"hi");
        b.commit(Peer::NONE, 2);
        assert_eq!(b.get(0).2, b"hi");
        assert!(b.next_slot().is_none());
    }
}
