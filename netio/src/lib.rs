//! Packet and socket I/O for Peregrine, with no knowledge of messages.
//!
//! Everything above this crate talks to a [`DatagramPort`] (whole datagrams,
//! lent to the caller in bursts) or a [`StreamPort`] (chunks of byte streams
//! and connection events), both of them a [`Port`] that sends a batch of byte
//! chunks tagged with their [`Peer`].
//! Batching is the whole point: one `recvmmsg`/`sendmmsg` (or one DPDK rx/tx
//! burst) moves many packets, so the per-call cost is paid once per burst,
//! not once per message.
//!
//! Backends:
//! - [`udp::UdpPort`]: kernel UDP, non-blocking, `recvmmsg`/`sendmmsg`.
//! - [`tcp::TcpPort`]: kernel TCP, non-blocking, many connections, partial
//!   reads and writes, bounded per-connection output buffers so a slow reader
//!   never blocks anyone else.
//! - DPDK (feature `dpdk`), datagram semantics over NIC queues.
//! - [`memory::MemoryPort`] (feature `test-util`): datagrams in memory, fed
//!   and drained by a test.
//!
//! Only standard socket calls are used on the kernel paths so OpenOnload can
//! intercept and accelerate them unchanged.
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod batch;
pub mod clock;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod error;
#[cfg(feature = "test-util")]
pub mod memory;
pub mod port;
mod sockaddr;
mod sockopt;
pub mod tcp;
pub mod udp;
pub mod wire;

pub use batch::{PacketBatch, DATAGRAM_SLOT_BYTES, MAX_UDP_PAYLOAD, SLOT_BYTES};
pub use error::NetError;
pub use port::{ConnId, DatagramPort, Peer, Port, PortCounters, RxEvent, StreamPort, TxSlots};
pub use tcp::{TcpOptions, TcpPort};
pub use udp::{UdpOptions, UdpPort};
