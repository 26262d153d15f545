//! The DPDK backend (cargo feature `dpdk`): datagram semantics over NIC
//! queues, with our own Ethernet/ARP/IPv4/UDP handling on top of
//! [`crate::wire`].
//!
//! Pieces:
//! - [`Eal`]: the DPDK Environment Abstraction Layer, initialised once per
//!   process from [`DpdkConfig::eal_args`]; later calls return the same
//!   handle. It also owns the per-port state (device configuration,
//!   mempools, which queues are taken).
//! - [`DpdkPort`]: one RX/TX queue pair of one ethdev port, implementing
//!   [`crate::DatagramPort`]. With several RX
//!   queues (RSS) open one `DpdkPort` per queue with
//!   [`DpdkPort::open_queue`] and give each to its own gateway thread.
//!
//! What a port does with received frames, in order (first failure drops the
//! frame and counts it in [`crate::PortCounters::rx_not_for_us`] plus one
//! detailed counter of [`DpdkStats`]):
//! 1. Ethernet header present; destination MAC is ours or broadcast.
//! 2. ARP (Ethernet/IPv4): a request for our IP is answered (the reply is
//!    transmitted at the end of the same `receive`); the sender is learned
//!    into the neighbour table. Other ARP is dropped.
//! 3. IPv4: header within the frame (IHL >= 5, total length consistent),
//!    version 4, header checksum, not a fragment, destination is our IP,
//!    protocol UDP.
//! 4. UDP: header within the packet, length field equal to the IP payload
//!    length, destination port ours, checksum (see below).
//! 5. The payload is held in its mbuf, with its source address, and lent
//!    to the caller by [`crate::DatagramPort::consume`] (no copy); the
//!    source MAC is learned for the source IP.
//!
//! Checksums on receive: a driver verdict of GOOD (or "NONE": data intact,
//! field not filled) is trusted, BAD drops; with no verdict (UNKNOWN, e.g.
//! net_af_packet, net_ring) the IPv4 header checksum is always verified in
//! software and the UDP checksum when [`DpdkConfig::verify_udp_checksum`]
//! is set (default) and nonzero. Caveat: a Linux sender on a veth pair
//! leaves its UDP checksum *partial* (offloaded to a NIC that does not
//! exist), which fails software verification: turn the sender's offload
//! off (`ethtool -K vb tx off`, as `scripts/dpdk-netns-test.sh` does) or
//! set `verify_udp_checksum = false` for such rigs. Real NICs deliver full
//! checksums.
//!
//! On transmit: IPv4 and UDP checksums are offloaded to the NIC when the
//! port advertises it and [`DpdkConfig::tx_checksum_offload`] is set,
//! otherwise computed in software. The destination MAC comes from a small
//! neighbour table learned from received frames and ARP; a datagram for an
//! unknown neighbour triggers an ARP request and is dropped (datagram
//! semantics: the protocol above retransmits). All peers are assumed
//! on-link: there is no routing.

mod config;
mod eal;
mod neigh;
mod port;

pub use config::{net_ring_eal_args, DpdkConfig};
pub use eal::{Eal, LinkStatus, NicStats};
pub use port::{DpdkPort, DpdkStats, PortCycles};

/// Errors of the DPDK backend (start-up only: the packet path never fails).
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// `rte_eal_init` failed (this persists: the EAL cannot be retried).
    #[error("DPDK EAL initialisation failed: {0}")]
    Eal(String),
    /// The configuration is inconsistent.
    #[error("invalid [dpdk] configuration: {0}")]
    Config(String),
    /// A DPDK call on a port failed.
    #[error("DPDK port {port}: {what} failed: {reason}")]
    Port {
        /// The ethdev port id.
        port: u16,
        /// The operation.
        what: &'static str,
        /// DPDK's explanation.
        reason: String,
    },
    /// The queue is already owned by another `DpdkPort`.
    #[error("DPDK port {port} queue {queue} is already open")]
    QueueInUse {
        /// The ethdev port id.
        port: u16,
        /// The queue.
        queue: u16,
    },
}

impl From<DpdkError> for crate::NetError {
    fn from(e: DpdkError) -> Self {
        crate::NetError::Backend(e.to_string())
    }
}

/// DPDK's text for a (positive or negative) errno value.
fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a pointer to a
    // static or thread-local NUL-terminated string, copied out at once.
    let p = unsafe { dpdk_sys::rte_strerror(code.abs()) };
    if p.is_null() {
        return format!("error {code}");
    }
    // SAFETY: non-null, NUL-terminated (see above).
    let s = unsafe { std::ffi::CStr::from_ptr(p) };
    format!("{} ({})", s.to_string_lossy(), code.abs())
}

/// The current thread's `rte_errno` as text.
fn last_error() -> String {
    // SAFETY: reads a thread-local integer.
    strerror(unsafe { dpdk_sys::pg_errno() })
}
