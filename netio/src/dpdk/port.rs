// Over 600 lines: one ethdev queue pair (setup, rx parse in place, lent views, tx burst, ARP, checksums) whose unsafe mbuf handling is easier to audit in one file.
//! One RX/TX queue pair of a DPDK ethdev port, as a [`DatagramPort`].
//!
//! Received datagrams are not copied: [`DatagramPort::receive`] parses a
//! burst in place and keeps, per datagram for us, where its payload lies
//! in its mbuf; [`DatagramPort::consume`] lends those payloads straight out
//! of the mbufs, which go back to the pool once the whole burst has been
//! consumed. The one copy left is the caller's (the gateway's, into a ring
//! slot).
//!
//! Datagrams are sent without a copy too: the port lends the payload areas
//! of fresh mbufs through [`Port::tx_slots`] (see the `in_place` module),
//! the caller writes each datagram's payload straight into one, and the
//! port writes the Ethernet, IPv4 and UDP headers around it at commit. A
//! [`PacketBatch`] handed to [`Port::send`] is still taken (one copy per
//! entry, into its mbuf) for callers that build elsewhere.

mod cycles;
mod in_place;

pub use cycles::PortCycles;

use super::eal::{Eal, LinkStatus, NicStats, PoolPtr};
use super::neigh::NeighbourTable;
use super::{DpdkConfig, DpdkError};
use crate::batch::{PacketBatch, SLOT_BYTES};
use crate::port::{DatagramPort, Peer, Port, PortCounters, TxSlots};
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, ChecksumMode, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr, WireError,
};
use crate::NetError;
use dpdk_sys::rte_mbuf;
use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ptr;

const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;
const HEADERS: usize = ETH_LEN + IP_LEN + UDP_LEN;
/// Largest UDP payload sent: a 1,500-byte IP MTU.
pub const MAX_UDP_PAYLOAD: usize = 1500 - IP_LEN - UDP_LEN;
/// Frames shorter than this (without FCS) are zero-padded on transmit.
const MIN_FRAME: usize = 60;
const TTL: u8 = 64;
/// Transmit attempts for what the NIC did not take at once.
const TX_RETRIES: usize = 3;

/// Detailed counters of a [`DpdkPort`], beyond [`PortCounters`].
///
/// Every dropped received frame increments exactly one `rx_*` drop counter
/// here and [`PortCounters::rx_not_for_us`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DpdkStats {
    /// Frames taken from the NIC (everything, before parsing).
    pub rx_frames: u64,
    /// Too short for a header, or spread over several segments.
    pub rx_truncated: u64,
    /// Destination MAC neither ours nor broadcast.
    pub rx_wrong_mac: u64,
    /// Ethertype neither IPv4 nor ARP (IPv6, VLAN-tagged, ...).
    pub rx_non_ipv4: u64,
    /// IPv4 header inconsistent: version, IHL, total length.
    pub rx_bad_ip_header: u64,
    /// IPv4 header checksum wrong (software or driver verdict).
    pub rx_bad_ip_checksum: u64,
    /// IPv4 fragments (MF set or offset nonzero): not reassembled.
    pub rx_fragment: u64,
    /// IPv4 for another address.
    pub rx_wrong_ip: u64,
    /// IPv4 carrying something other than UDP.
    pub rx_not_udp: u64,
    /// UDP length field below 8, or not equal to the IP payload length.
    pub rx_bad_udp_length: u64,
    /// UDP checksum wrong.
    pub rx_bad_udp_checksum: u64,
    /// UDP to another port.
    pub rx_wrong_port: u64,
    /// ARP requests for our IP, answered.
    pub arp_replied: u64,
    /// ARP replies received (their sender learned).
    pub arp_replies_seen: u64,
    /// ARP not for us or not Ethernet/IPv4, dropped.
    pub arp_ignored: u64,
    /// ARP requests we sent for unknown neighbours.
    pub arp_requests_sent: u64,
    /// Datagrams dropped because the peer's MAC is unknown (an ARP request
    /// was sent; the protocol above retransmits).
    pub tx_no_neighbour: u64,
    /// Datagrams dropped: peer not IPv4 (`Peer::Conn`, IPv6).
    pub tx_bad_peer: u64,
    /// Datagrams dropped: payload above [`MAX_UDP_PAYLOAD`].
    pub tx_oversize: u64,
    /// Datagrams dropped: the mempool was empty.
    pub tx_no_mbuf: u64,
    /// Datagrams dropped: the NIC did not take them after retries.
    pub tx_ring_full: u64,
    /// Control frames (ARP) dropped: no mbuf or TX ring full.
    pub ctrl_dropped: u64,
}

thread_local! {
    static LCORE: LcoreGuard = const { LcoreGuard { registered: Cell::new(false) } };
}

/// Registers a non-EAL thread with the EAL on its first packet call (so
/// mempool per-lcore caches work) and unregisters it when the thread ends.
struct LcoreGuard {
    registered: Cell<bool>,
}

impl LcoreGuard {
    #[inline]
    fn ensure(&self) {
        if self.registered.get() {
            return;
        }
        // SAFETY: the EAL is initialised (a DpdkPort exists); both calls
        // act on the calling thread only. Registration may fail (no lcore
        // ids left): the thread then works without a mempool cache.
        unsafe {
            if dpdk_sys::pg_lcore_id() == dpdk_sys::PG_LCORE_ID_ANY {
                dpdk_sys::rte_thread_register();
            }
        }
        self.registered.set(true);
    }
}

impl Drop for LcoreGuard {
    fn drop(&mut self) {
        if self.registered.get() {
            // SAFETY: undoes rte_thread_register on this thread; a no-op
            // for EAL threads and unregistered ones.
            unsafe { dpdk_sys::rte_thread_unregister() };
        }
    }
}

#[inline]
fn register_thread() {
    // Access fails only during thread teardown, when no packets move.
    let _ = LCORE.try_with(LcoreGuard::ensure);
}

/// Why a received frame was dropped.
#[derive(Clone, Copy, Debug)]
enum Drop_ {
    Truncated,
    WrongMac,
    NonIpv4,
    BadIpHeader,
    BadIpChecksum,
    Fragment,
    WrongIp,
    NotUdp,
    BadUdpLength,
    BadUdpChecksum,
    WrongPort,
    ArpIgnored,
    Oversize,
}

/// One RX queue and one TX queue of a DPDK port, owned by one thread.
///
/// Created with [`DpdkPort::open_queue`]; `Send` so it can move to the
/// gateway thread that polls it, not `Sync`.
pub struct DpdkPort {
    eal: &'static Eal,
    port_id: u16,
    queue: u16,
    pool: PoolPtr,
    mac: EthernetAddress,
    ip: Ipv4Addr,
    udp_port: u16,
    burst: usize,
    verify_udp: bool,
    tx_ip_offload: bool,
    tx_udp_offload: bool,
    rx_mbufs: Box<[*mut rte_mbuf]>,
    tx_mbufs: Box<[*mut rte_mbuf]>,
    ctrl_mbufs: Box<[*mut rte_mbuf]>,
    ctrl_len: usize,
    neigh: NeighbourTable,
    last_arp_ip: Ipv4Addr,
    last_arp_tsc: u64,
    arp_interval: u64,
    counters: PortCounters,
    stats: DpdkStats,
    /// Mbufs of the last burst still held (`rx_mbufs[..rx_held]`): their
    /// datagrams are lent by `consume` until every one is consumed.
    rx_held: usize,
    /// Where each datagram of the held burst lies, in arrival order.
    rx_views: Box<[RxView]>,
    rx_view_len: usize,
    /// The first view not consumed yet.
    rx_view_pos: usize,
    /// Datagrams built in place in lent mbufs, not yet transmitted.
    in_place: in_place::InPlaceTx,
    /// Cycles spent in the driver and in parsing, when timing is on.
    meter: cycles::CycleMeter,
}

/// A received datagram's place in a held mbuf.
#[derive(Clone, Copy, Debug)]
struct RxView {
    /// Index into `rx_mbufs`.
    mbuf: u16,
    /// Payload offset in the frame, bytes.
    offset: u16,
    /// Payload length, bytes.
    len: u16,
    from: SocketAddr,
}

impl RxView {
    const EMPTY: RxView = RxView {
        mbuf: 0,
        offset: 0,
        len: 0,
        from: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
    };
}

// SAFETY: the mbuf pointer arrays are only scratch space owned by this
// value (pending control mbufs are owned too); the mempool is MP/MC safe;
// the RX/TX queue pair is used by whichever single thread owns the port.
unsafe impl Send for DpdkPort {}

impl DpdkPort {
    /// Opens queue pair `queue` (RX `queue` + TX `queue`) of
    /// `cfg.port_id`. The first queue opened configures and starts the
    /// device with all `cfg.rx_queues`/`cfg.tx_queues` queues; later calls
    /// must pass the same queue counts, IP and UDP port. A queue can be
    /// open once at a time.
    pub fn open_queue(eal: &Eal, cfg: &DpdkConfig, queue: u16) -> Result<DpdkPort, DpdkError> {
        cfg.validate()?;
        // The handle is the process-wide one: re-borrow it as 'static.
        let eal = Eal::init(eal.args())?;
        let (mac, pool, tx_ip, tx_udp) = eal.claim_queue(cfg, queue)?;
        let burst = usize::from(cfg.burst);
        Ok(DpdkPort {
            eal,
            port_id: cfg.port_id,
            queue,
            pool,
            mac,
            ip: cfg.ip,
            udp_port: cfg.udp_port,
            burst,
            verify_udp: cfg.verify_udp_checksum,
            tx_ip_offload: tx_ip,
            tx_udp_offload: tx_udp,
            rx_mbufs: vec![ptr::null_mut(); burst].into_boxed_slice(),
            tx_mbufs: vec![ptr::null_mut(); burst].into_boxed_slice(),
            ctrl_mbufs: vec![ptr::null_mut(); burst].into_boxed_slice(),
            ctrl_len: 0,
            neigh: NeighbourTable::new(),
            last_arp_ip: Ipv4Addr::UNSPECIFIED,
            last_arp_tsc: 0,
            arp_interval: eal.tsc_hz() / 10,
            counters: PortCounters::default(),
            stats: DpdkStats::default(),
            rx_held: 0,
            rx_views: vec![RxView::EMPTY; burst].into_boxed_slice(),
            rx_view_len: 0,
            rx_view_pos: 0,
            in_place: in_place::InPlaceTx::new(burst),
            meter: cycles::CycleMeter::default(),
        })
    }

    /// Opens every queue pair of the port: one `DpdkPort` per RX queue.
    pub fn open_all(eal: &Eal, cfg: &DpdkConfig) -> Result<Vec<DpdkPort>, DpdkError> {
        (0..cfg.rx_queues)
            .map(|q| DpdkPort::open_queue(eal, cfg, q))
            .collect()
    }

    /// The port's MAC address.
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// The ethdev port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The queue pair index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Turns the port's own cycle accounting on or off (off when opened)
    /// and restarts its totals: see [`PortCycles`]. On, it reads the TSC a
    /// few times per burst (tens of cycles each).
    pub fn set_stage_timing(&mut self, on: bool) {
        self.meter.set(on);
    }

    /// Cycles spent by part since stage timing was last turned on (all
    /// zero while it is off).
    pub fn stage_cycles(&self) -> PortCycles {
        self.meter.spent
    }

    /// Whether (IPv4 header, UDP) checksums are offloaded on transmit.
    pub fn tx_checksum_offload(&self) -> (bool, bool) {
        (self.tx_ip_offload, self.tx_udp_offload)
    }

    /// Link status, without waiting.
    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        self.eal.link_status(self.port_id)
    }

    /// The driver's counters for the whole port (all queues).
    pub fn nic_stats(&self) -> Result<NicStats, DpdkError> {
        self.eal.nic_stats(self.port_id)
    }

    /// Mbufs currently free in this queue pair's mempool.
    pub fn mempool_available(&self) -> u32 {
        // SAFETY: the pool is valid for the process lifetime.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.pool.0.as_ptr()) }
    }

    /// Detailed counters.
    pub fn stats(&self) -> DpdkStats {
        self.stats
    }

    /// Adds or refreshes a static neighbour (e.g. a gateway's MAC).
    pub fn add_neighbour(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
        self.neigh.learn(ip, mac);
    }

    /// The MAC known for `ip`.
    pub fn neighbour(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.neigh.lookup(ip)
    }

    /// Transmits raw Ethernet frames exactly as given, without padding
    /// (tests, traffic injection). Returns how many the NIC took; the rest are freed.
    pub fn tx_raw(&mut self, frames: &[&[u8]]) -> usize {
        register_thread();
        let mut taken = 0;
        for chunk in frames.chunks(self.burst) {
            let n = chunk.len();
            if !self.alloc_tx(n) {
                self.stats.ctrl_dropped += n as u64;
                continue;
            }
            let mut built = 0;
            for f in chunk {
                let m = self.tx_mbufs[built];
                if let Some(buf) = mbuf_frame(m, f.len()) {
                    buf.copy_from_slice(f);
                    built += 1;
                } else {
                    self.stats.ctrl_dropped += 1;
                }
            }
            self.free_tx(built, n);
            let sent = self.tx_burst_retry(built);
            self.free_tx(sent, built);
            taken += sent;
        }
        taken
    }

    /// One RX burst of raw frames, each passed to `f` unparsed (tests and
    /// diagnostics). Returns the number of frames. Datagrams still held
    /// from an earlier [`DatagramPort::receive`] are discarded first.
    pub fn rx_raw(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        self.release_rx();
        register_thread();
        let n = self.rx_burst(self.burst);
        for i in 0..n {
            let (frame, _, _) = rx_frame(self.rx_mbufs[i]);
            f(frame);
        }
        self.free_rx(n);
        n
    }

    // ---- fast path helpers -------------------------------------------

    #[inline]
    fn rx_burst(&mut self, want: usize) -> usize {
        let want = want.min(self.burst) as u16;
        // SAFETY: rx_mbufs has `burst` writable slots; the port is started
        // and this value owns RX queue `queue`.
        usize::from(unsafe {
            dpdk_sys::pg_rx_burst(self.port_id, self.queue, self.rx_mbufs.as_mut_ptr(), want)
        })
    }

    /// Frees the held burst's mbufs and forgets its views.
    #[inline]
    fn release_rx(&mut self) {
        self.free_rx(self.rx_held);
        self.rx_held = 0;
        self.rx_view_len = 0;
        self.rx_view_pos = 0;
    }

    #[inline]
    fn free_rx(&mut self, n: usize) {
        if n > 0 {
            // SAFETY: the first n entries are mbufs the driver handed us,
            // not yet freed; nothing refers to them after this.
            unsafe { dpdk_sys::pg_pktmbuf_free_bulk(self.rx_mbufs.as_mut_ptr(), n as u32) };
        }
    }

    /// Fills `tx_mbufs[..n]` with fresh mbufs; false when the pool is short.
    #[inline]
    fn alloc_tx(&mut self, n: usize) -> bool {
        // SAFETY: tx_mbufs has at least n (<= burst) writable slots; the
        // pool outlives the port.
        unsafe {
            dpdk_sys::pg_pktmbuf_alloc_bulk(self.pool.0.as_ptr(), self.tx_mbufs.as_mut_ptr(), n as u32) == 0
        }
    }

    /// Frees `tx_mbufs[from..to]` (built but not taken, or unused).
    #[inline]
    fn free_tx(&mut self, from: usize, to: usize) {
        if to > from {
            // SAFETY: those entries are mbufs we allocated and still own.
            unsafe {
                dpdk_sys::pg_pktmbuf_free_bulk(self.tx_mbufs.as_mut_ptr().add(from), (to - from) as u32)
            };
        }
    }

    /// Transmits `tx_mbufs[..n]`, retrying briefly; returns how many the
    /// NIC took (ownership of those passes to the driver).
    #[inline]
    fn tx_burst_retry(&mut self, n: usize) -> usize {
        tx_burst_retry(self.port_id, self.queue, &mut self.tx_mbufs[..n])
    }

    /// Queues a control frame (ARP) built by `build` into a fresh mbuf;
    /// sent at the end of the current `recv`/`send`.
    fn queue_ctrl(&mut self, len: usize, build: impl FnOnce(&mut [u8])) {
        if self.ctrl_len == self.ctrl_mbufs.len() {
            self.stats.ctrl_dropped += 1;
            return;
        }
        // SAFETY: the pool outlives the port.
        let m = unsafe { dpdk_sys::pg_pktmbuf_alloc(self.pool.0.as_ptr()) };
        if m.is_null() {
            self.stats.ctrl_dropped += 1;
            return;
        }
        let len = len.max(MIN_FRAME);
        match mbuf_frame(m, len) {
            Some(buf) => {
                buf.fill(0);
                build(buf);
                self.ctrl_mbufs[self.ctrl_len] = m;
                self.ctrl_len += 1;
            }
            None => {
                // SAFETY: allocated above, owned, not queued.
                unsafe { dpdk_sys::pg_pktmbuf_free(m) };
                self.stats.ctrl_dropped += 1;
            }
        }
    }

    fn flush_ctrl(&mut self) {
        let n = self.ctrl_len;
        if n == 0 {
            return;
        }
        // SAFETY: ctrl_mbufs[..n] are owned, built mbufs.
        let sent = usize::from(unsafe {
            dpdk_sys::pg_tx_burst(self.port_id, self.queue, self.ctrl_mbufs.as_mut_ptr(), n as u16)
        });
        if sent < n {
            // SAFETY: the rest were not taken and are still ours.
            unsafe {
                dpdk_sys::pg_pktmbuf_free_bulk(self.ctrl_mbufs.as_mut_ptr().add(sent), (n - sent) as u32)
            };
            self.stats.ctrl_dropped += (n - sent) as u64;
        }
        self.ctrl_len = 0;
    }

    fn drop_frame(&mut self, why: Drop_) {
        self.counters.rx_not_for_us += 1;
        let s = &mut self.stats;
        match why {
            Drop_::Truncated => s.rx_truncated += 1,
            Drop_::WrongMac => s.rx_wrong_mac += 1,
            Drop_::NonIpv4 => s.rx_non_ipv4 += 1,
            Drop_::BadIpHeader => s.rx_bad_ip_header += 1,
            Drop_::BadIpChecksum => s.rx_bad_ip_checksum += 1,
            Drop_::Fragment => s.rx_fragment += 1,
            Drop_::WrongIp => s.rx_wrong_ip += 1,
            Drop_::NotUdp => s.rx_not_udp += 1,
            Drop_::BadUdpLength => s.rx_bad_udp_length += 1,
            Drop_::BadUdpChecksum => s.rx_bad_udp_checksum += 1,
            Drop_::WrongPort => s.rx_wrong_port += 1,
            Drop_::ArpIgnored => s.arp_ignored += 1,
            Drop_::Oversize => {
                self.counters.rx_not_for_us -= 1;
                self.counters.rx_oversize += 1;
            }
        }
    }

    /// Parses received frame `mbuf` (`frame` is its data); a datagram for
    /// us is recorded as a view into it.
    #[inline]
    fn handle_frame(&mut self, frame: &[u8], ip_ck: u8, l4_ck: u8, mbuf: usize) -> Result<(), Drop_> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| Drop_::Truncated)?;
        let dst = eth.dst_addr();
        if dst != self.mac && !dst.is_broadcast() {
            return Err(Drop_::WrongMac);
        }
        match eth.ethertype() {
            EtherType::Ipv4 => {
                let (from, payload) = self.handle_ipv4(&eth, ip_ck, l4_ck)?;
                // Both lie within `frame` (a frame is at most 64 KiB).
                let offset = payload.as_ptr() as usize - frame.as_ptr() as usize;
                // Always a free view: a burst has at most `burst` frames,
                // each yielding at most one datagram.
                if let Some(v) = self.rx_views.get_mut(self.rx_view_len) {
                    *v = RxView {
                        mbuf: mbuf as u16,
                        offset: offset as u16,
                        len: payload.len() as u16,
                        from,
                    };
                    self.rx_view_len += 1;
                }
                Ok(())
            }
            EtherType::Arp => self.handle_arp(eth.payload()),
            EtherType::Unknown(_) => Err(Drop_::NonIpv4),
        }
    }

    /// The source and payload of an IPv4/UDP frame for us.
    #[inline]
    fn handle_ipv4<'f>(
        &mut self,
        eth: &EthernetFrame<&'f [u8]>,
        ip_ck: u8,
        l4_ck: u8,
    ) -> Result<(SocketAddr, &'f [u8]), Drop_> {
        let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|e| match e {
            WireError::Truncated => Drop_::Truncated,
            _ => Drop_::BadIpHeader,
        })?;
        let sw_ip_check = match u32::from(ip_ck) {
            dpdk_sys::PG_CKSUM_BAD => return Err(Drop_::BadIpChecksum),
            dpdk_sys::PG_CKSUM_GOOD => false,
            _ => true,
        };
        let repr = Ipv4Repr::parse(&ip, sw_ip_check).map_err(|e| match e {
            WireError::Fragment => Drop_::Fragment,
            WireError::BadChecksum => Drop_::BadIpChecksum,
            _ => Drop_::BadIpHeader,
        })?;
        if repr.dst_addr != self.ip {
            return Err(Drop_::WrongIp);
        }
        if repr.protocol != IpProtocol::Udp {
            return Err(Drop_::NotUdp);
        }
        let ip_payload = ip.payload();
        let udp = UdpPacket::new_checked(ip_payload).map_err(|e| match e {
            WireError::Truncated => Drop_::Truncated,
            _ => Drop_::BadUdpLength,
        })?;
        if usize::from(udp.len()) != ip_payload.len() {
            return Err(Drop_::BadUdpLength);
        }
        if udp.dst_port() != self.udp_port {
            return Err(Drop_::WrongPort);
        }
        let sw_udp_check = match u32::from(l4_ck) {
            dpdk_sys::PG_CKSUM_BAD => return Err(Drop_::BadUdpChecksum),
            dpdk_sys::PG_CKSUM_GOOD | dpdk_sys::PG_CKSUM_NONE => false,
            _ => self.verify_udp,
        };
        if sw_udp_check && !udp.verify_checksum(repr.src_addr, repr.dst_addr) {
            return Err(Drop_::BadUdpChecksum);
        }
        let payload = udp.payload();
        if payload.len() > SLOT_BYTES {
            return Err(Drop_::Oversize);
        }
        let src_mac = eth.src_addr();
        if src_mac.is_unicast() && self.neigh.lookup(repr.src_addr) != Some(src_mac) {
            self.neigh.learn(repr.src_addr, src_mac);
        }
        let from = SocketAddr::V4(SocketAddrV4::new(repr.src_addr, udp.src_port()));
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += payload.len() as u64;
        Ok((from, payload))
    }

    fn handle_arp(&mut self, payload: &[u8]) -> Result<(), Drop_> {
        let pkt = ArpPacket::new_checked(payload).map_err(|_| Drop_::Truncated)?;
        let arp = ArpRepr::parse(&pkt).map_err(|_| Drop_::ArpIgnored)?;
        let sender_ok = arp.source_hardware_addr.is_unicast() && !arp.source_protocol_addr.is_unspecified();
        let for_us = arp.target_protocol_addr == self.ip;
        match arp.operation {
            ArpOperation::Request if for_us => {
                if sender_ok {
                    self.neigh
                        .learn(arp.source_protocol_addr, arp.source_hardware_addr);
                }
                let reply = ArpRepr {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: self.mac,
                    source_protocol_addr: self.ip,
                    target_hardware_addr: arp.source_hardware_addr,
                    target_protocol_addr: arp.source_protocol_addr,
                };
                let eth = EthernetRepr {
                    src_addr: self.mac,
                    dst_addr: arp.source_hardware_addr,
                    ethertype: EtherType::Arp,
                };
                self.queue_ctrl(ETH_LEN + 28, |buf| emit_arp(buf, &eth, &reply));
                self.stats.arp_replied += 1;
                Ok(())
            }
            ArpOperation::Reply if for_us && sender_ok => {
                self.neigh
                    .learn(arp.source_protocol_addr, arp.source_hardware_addr);
                self.stats.arp_replies_seen += 1;
                Ok(())
            }
            _ => {
                if sender_ok {
                    self.neigh
                        .refresh(arp.source_protocol_addr, arp.source_hardware_addr);
                }
                Err(Drop_::ArpIgnored)
            }
        }
    }

    /// Sends (at most once per 100 ms per address) an ARP request for `ip`.
    fn request_neighbour(&mut self, ip: Ipv4Addr) {
        // SAFETY: rdtsc.
        let now = unsafe { dpdk_sys::pg_tsc_cycles() };
        if ip == self.last_arp_ip && now.wrapping_sub(self.last_arp_tsc) < self.arp_interval {
            return;
        }
        self.last_arp_ip = ip;
        self.last_arp_tsc = now;
        let req = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.mac,
            source_protocol_addr: self.ip,
            target_hardware_addr: EthernetAddress::default(),
            target_protocol_addr: ip,
        };
        let eth = EthernetRepr {
            src_addr: self.mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EtherType::Arp,
        };
        self.queue_ctrl(ETH_LEN + 28, |buf| emit_arp(buf, &eth, &req));
        self.stats.arp_requests_sent += 1;
    }

    /// Builds a datagram of `payload` to `peer` into fresh mbuf `m`: the
    /// payload copied after the headers' room, then the headers around
    /// it. Returns the payload length.
    #[inline]
    fn build_datagram(&mut self, m: *mut rte_mbuf, peer: Peer, payload: &[u8]) -> Result<usize, ()> {
        if payload.len() > MAX_UDP_PAYLOAD {
            self.stats.tx_oversize += 1;
            return Err(());
        }
        let Some(buf) = mbuf_frame(m, HEADERS + payload.len()) else {
            self.stats.tx_oversize += 1;
            return Err(());
        };
        buf[HEADERS..].copy_from_slice(payload);
        self.frame_around(m, peer, payload.len())
    }

    /// Writes the Ethernet, IPv4 and UDP headers of a datagram to `peer`
    /// around the `payload_len` bytes (at most [`MAX_UDP_PAYLOAD`]) that
    /// already sit [`HEADERS`] bytes into fresh mbuf `m`; pads a short
    /// frame, sets the mbuf's length and checksum offload. Returns the
    /// payload length; on `Err` (counted) `m` is still the caller's.
    #[inline]
    fn frame_around(&mut self, m: *mut rte_mbuf, peer: Peer, payload_len: usize) -> Result<usize, ()> {
        let dst = match peer {
            Peer::Addr(SocketAddr::V4(a)) => a,
            _ => {
                self.stats.tx_bad_peer += 1;
                return Err(());
            }
        };
        let Some(dst_mac) = self.neigh.lookup(*dst.ip()) else {
            self.stats.tx_no_neighbour += 1;
            self.request_neighbour(*dst.ip());
            return Err(());
        };
        let len = (HEADERS + payload_len).max(MIN_FRAME);
        let Some(buf) = mbuf_frame(m, len) else {
            self.stats.tx_oversize += 1;
            return Err(());
        };
        let ip_mode = if self.tx_ip_offload {
            ChecksumMode::Offload
        } else {
            ChecksumMode::Compute
        };
        let udp_mode = if self.tx_udp_offload {
            ChecksumMode::Offload
        } else {
            ChecksumMode::Compute
        };
        let (eth_buf, rest) = buf.split_at_mut(ETH_LEN);
        EthernetRepr {
            src_addr: self.mac,
            dst_addr: dst_mac,
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut EthernetFrame::new_unchecked(eth_buf));
        let (ip_buf, rest) = rest.split_at_mut(IP_LEN);
        Ipv4Repr {
            src_addr: self.ip,
            dst_addr: *dst.ip(),
            protocol: IpProtocol::Udp,
            payload_len: UDP_LEN + payload_len,
            ttl: TTL,
        }
        .emit(&mut Ipv4Packet::new_unchecked(ip_buf), ip_mode);
        let (udp_buf, pad) = rest.split_at_mut(UDP_LEN + payload_len);
        UdpRepr {
            src_port: self.udp_port,
            dst_port: dst.port(),
        }
        .emit_around(
            &mut UdpPacket::new_unchecked(udp_buf),
            self.ip,
            *dst.ip(),
            payload_len,
            udp_mode,
        );
        pad.fill(0);
        if self.tx_ip_offload || self.tx_udp_offload {
            // SAFETY: m is a valid mbuf we own.
            unsafe {
                dpdk_sys::pg_mbuf_tx_cksum_offload(
                    m,
                    ETH_LEN as u16,
                    IP_LEN as u16,
                    i32::from(self.tx_ip_offload),
                    i32::from(self.tx_udp_offload),
                )
            };
        }
        Ok(payload_len)
    }
}

/// Transmits `mbufs` on TX queue `queue` of `port_id`, retrying briefly;
/// returns how many the NIC took (ownership of `mbufs[..taken]` passes to
/// the driver; the rest stay the caller's). The caller must own that queue
/// and every mbuf in `mbufs`.
#[inline]
fn tx_burst_retry(port_id: u16, queue: u16, mbufs: &mut [*mut rte_mbuf]) -> usize {
    let n = mbufs.len().min(usize::from(u16::MAX));
    let mut sent = 0;
    for _ in 0..=TX_RETRIES {
        // SAFETY: entries sent..n are valid mbufs the caller owns, and the
        // caller owns TX queue `queue` (see above).
        let k =
            unsafe { dpdk_sys::pg_tx_burst(port_id, queue, mbufs.as_mut_ptr().add(sent), (n - sent) as u16) };
        sent += usize::from(k);
        if sent == n {
            break;
        }
    }
    sent
}

fn emit_arp(buf: &mut [u8], eth: &EthernetRepr, arp: &ArpRepr) {
    let (e, a) = buf.split_at_mut(ETH_LEN);
    eth.emit(&mut EthernetFrame::new_unchecked(e));
    arp.emit(&mut ArpPacket::new_unchecked(a));
}

/// The first segment of received mbuf `m` with its checksum verdicts;
/// a multi-segment frame yields an empty slice (dropped as truncated).
#[inline]
fn rx_frame<'a>(m: *mut rte_mbuf) -> (&'a [u8], u8, u8) {
    let mut v = dpdk_sys::pg_rx_view::default();
    // SAFETY: m is a valid mbuf handed to us by rx_burst; `v` is writable.
    unsafe { dpdk_sys::pg_mbuf_rx_view(m, &mut v) };
    if v.data.is_null() || v.pkt_len != u32::from(v.data_len) {
        return (&[], 0, 0);
    }
    // SAFETY: data..data+data_len is the mbuf's first segment, valid and
    // unchanged until the mbuf is freed. Received mbufs are freed only by
    // `release_rx` (from `receive`, `rx_raw`, `drop`, and `consume` after
    // its last lend) and `rx_raw` after its loop: never while a slice of
    // theirs is in use. A closure lent a payload by `consume` can reach
    // the port only as `&mut dyn Port`, whose methods (send, tx_slots,
    // counters) never touch received mbufs (tx_slots lends fresh ones).
    // Built tx frames are read before they are sent or freed.
    let frame = unsafe { std::slice::from_raw_parts(v.data, usize::from(v.data_len)) };
    (frame, v.ip_cksum, v.l4_cksum)
}

/// Sets fresh mbuf `m` to `len` bytes and returns them, or None when the
/// segment is too small.
#[inline]
fn mbuf_frame<'a>(m: *mut rte_mbuf, len: usize) -> Option<&'a mut [u8]> {
    let l = u16::try_from(len).ok()?;
    // SAFETY: m is a valid, freshly allocated single-segment mbuf we own.
    if unsafe { dpdk_sys::pg_mbuf_set_len(m, l) } != 0 {
        return None;
    }
    // SAFETY: set_len checked that `len` bytes from the data pointer lie
    // inside the mbuf's buffer, which we own exclusively until tx/free.
    Some(unsafe { std::slice::from_raw_parts_mut(dpdk_sys::pg_mbuf_data(m), len) })
}

impl DatagramPort for DpdkPort {
    /// One RX burst of at most `min(burst, max)` frames, parsed in place:
    /// ARP is answered, frames not for us are dropped and counted, and the
    /// datagrams for us are held in their mbufs for `consume`.
    fn receive(&mut self, max: usize) -> Result<usize, NetError> {
        if self.rx_view_pos < self.rx_view_len {
            return Ok(0);
        }
        let t0 = self.meter.now();
        self.release_rx();
        register_thread();
        let n = self.rx_burst(max);
        let t1 = self.meter.now();
        self.meter.spent.rx += t1.wrapping_sub(t0);
        self.rx_held = n;
        self.stats.rx_frames += n as u64;
        for i in 0..n {
            let (frame, ip_ck, l4_ck) = rx_frame(self.rx_mbufs[i]);
            if let Err(why) = self.handle_frame(frame, ip_ck, l4_ck, i) {
                self.drop_frame(why);
            }
        }
        if self.rx_view_len == 0 {
            self.release_rx();
        }
        self.flush_ctrl();
        self.meter.spent.parse += self.meter.since(t1);
        Ok(self.rx_view_len)
    }

    /// Lends each held payload straight from its mbuf; the burst's mbufs
    /// are freed once every datagram has been consumed.
    fn consume<F>(&mut self, mut f: F) -> usize
    where
        F: FnMut(SocketAddr, &[u8], &mut dyn Port) -> bool,
    {
        let start = self.rx_view_pos;
        while self.rx_view_pos < self.rx_view_len {
            let v = self.rx_views[self.rx_view_pos];
            let (frame, _, _) = rx_frame(self.rx_mbufs[usize::from(v.mbuf)]);
            let (at, len) = (usize::from(v.offset), usize::from(v.len));
            let payload = frame.get(at..at + len).unwrap_or(&[]);
            if !f(v.from, payload, self) {
                break;
            }
            self.rx_view_pos += 1;
        }
        let consumed = self.rx_view_pos - start;
        if self.rx_held > 0 && self.rx_view_pos == self.rx_view_len {
            let t0 = self.meter.now();
            self.release_rx();
            self.meter.spent.rx += self.meter.since(t0);
        }
        consumed
    }
}

impl Port for DpdkPort {
    fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ip, self.udp_port))
    }

    /// Builds one frame per entry and transmits them in bursts; entries
    /// that cannot be built or that the NIC refuses are dropped and counted
    /// in `tx_dropped`.
    fn send(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        let total = batch.len();
        if total == 0 && self.committed() == 0 {
            return Ok(0);
        }
        register_thread();
        let mut sent_total = self.flush_in_place();
        let mut start = 0;
        while start < total {
            let n = (total - start).min(self.burst);
            if !self.alloc_tx(n) {
                self.stats.tx_no_mbuf += n as u64;
                self.counters.tx_dropped += n as u64;
                start += n;
                continue;
            }
            let mut built = 0;
            let mut bytes = 0u64;
            for i in start..start + n {
                let (peer, _, data) = batch.get(i);
                let m = self.tx_mbufs[built];
                match self.build_datagram(m, peer, data) {
                    Ok(len) => {
                        built += 1;
                        bytes += len as u64;
                    }
                    Err(()) => self.counters.tx_dropped += 1,
                }
            }
            // Unused mbufs (entries that failed) go back to the pool.
            self.free_tx(built, n);
            let t0 = self.meter.now();
            let sent = self.tx_burst_retry(built);
            if sent < built {
                // Bytes of the refused tail are not counted as sent.
                for j in sent..built {
                    bytes = bytes.saturating_sub(u64::from(mbuf_payload_len(self.tx_mbufs[j])));
                }
                self.free_tx(sent, built);
                self.stats.tx_ring_full += (built - sent) as u64;
                self.counters.tx_dropped += (built - sent) as u64;
            }
            self.meter.spent.tx += self.meter.since(t0);
            self.counters.tx_packets += sent as u64;
            self.counters.tx_bytes += bytes;
            sent_total += sent;
            start += n;
        }
        batch.clear();
        self.flush_ctrl();
        Ok(sent_total)
    }

    /// Lends fresh mbufs: see the `in_place` module.
    fn tx_slots(&mut self) -> Option<&mut dyn TxSlots> {
        Some(self)
    }

    fn counters(&self) -> PortCounters {
        self.counters
    }

    fn detail(&self) -> String {
        format!("{:?}", self.stats)
    }
}

/// UDP payload length of a frame we built (for byte accounting).
fn mbuf_payload_len(m: *mut rte_mbuf) -> u16 {
    let (frame, _, _) = rx_frame(m);
    if frame.len() < HEADERS {
        return 0;
    }
    let udp_len = u16::from_be_bytes([frame[ETH_LEN + IP_LEN + 4], frame[ETH_LEN + IP_LEN + 5]]);
    udp_len.saturating_sub(UDP_LEN as u16)
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        self.release_rx();
        self.release_in_place();
        if self.ctrl_len > 0 {
            // SAFETY: pending control mbufs are ours.
            unsafe { dpdk_sys::pg_pktmbuf_free_bulk(self.ctrl_mbufs.as_mut_ptr(), self.ctrl_len as u32) };
        }
        self.eal.release_queue(self.port_id, self.queue);
    }
}
