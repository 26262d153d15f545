//! The one trait every transport backend implements.

use crate::batch::PacketBatch;
use std::net::SocketAddr;

/// Identifies one TCP connection inside a [`Port`]: a slot index plus a
/// generation, so a reply addressed to a connection that closed and whose
/// slot was reused is recognised as stale and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    /// Slot index inside the port's connection table.
    pub index: u32,
    /// Incremented each time the slot is reused.
    pub generation: u32,
}

/// Who a chunk of bytes came from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A datagram peer (UDP, or UDP over DPDK): its IP address and port.
    Addr(SocketAddr),
    /// A stream connection (TCP).
    Conn(ConnId),
}

impl Peer {
    /// Placeholder used for empty batch slots.
    pub const NONE: Peer = Peer::Conn(ConnId {
        index: u32::MAX,
        generation: u32::MAX,
    });
}

/// What a received batch entry means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxEvent {
    /// Bytes arrived: a whole datagram on datagram ports, an arbitrary chunk
    /// of the byte stream on stream ports (framing is the caller's job).
    Data,
    /// A stream connection was accepted (no bytes).
    Opened,
    /// A stream connection closed, by the peer, by an error, or because the
    /// port closed it (slow reader); no bytes.
    Closed,
}

/// Datagram or stream semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Each received entry is one whole datagram; each sent entry becomes one.
    Datagram,
    /// Entries are chunks of per-connection byte streams.
    Stream,
}

/// Counters every port keeps; plain integers owned by the polling thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Datagrams or stream chunks received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Datagrams or stream chunks handed to the kernel/NIC.
    pub tx_packets: u64,
    /// Bytes handed to the kernel/NIC.
    pub tx_bytes: u64,
    /// Datagrams that could not be sent (socket buffer full after retry,
    /// send error) and were dropped.
    pub tx_dropped: u64,
    /// Received datagrams larger than a batch slot, dropped (truncated).
    pub rx_oversize: u64,
    /// Frames that were not for us (DPDK: wrong MAC/IP/port, non-IPv4...).
    pub rx_not_for_us: u64,
    /// Stream connections accepted.
    pub conns_opened: u64,
    /// Stream connections closed for any reason.
    pub conns_closed: u64,
    /// Stream connections closed because their output buffer overflowed.
    pub conns_slow_closed: u64,
    /// Stream connections refused because the table was full.
    pub conns_refused: u64,
}

impl PortCounters {
    /// Counter names, in [`PortCounters::values`] order.
    pub const NAMES: [&'static str; 11] = [
        "port_rx_packets",
        "port_rx_bytes",
        "port_tx_packets",
        "port_tx_bytes",
        "port_tx_dropped",
        "port_rx_oversize",
        "port_rx_not_for_us",
        "port_conns_opened",
        "port_conns_closed",
        "port_conns_slow_closed",
        "port_conns_refused",
    ];

    /// Counter values, in [`PortCounters::NAMES`] order.
    pub fn values(&self) -> [u64; 11] {
        [
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.tx_bytes,
            self.tx_dropped,
            self.rx_oversize,
            self.rx_not_for_us,
            self.conns_opened,
            self.conns_closed,
            self.conns_slow_closed,
            self.conns_refused,
        ]
    }
}

/// A source and sink of batched packets.
///
/// Contract:
/// - Never blocks: `recv` returns `Ok(0)` when nothing is pending, `send`
///   returns as soon as the kernel/NIC would block.
/// - `recv` clears `batch` and fills it with up to `batch.capacity()` entries.
/// - `send` consumes every entry of `batch` and clears it. Datagram ports send
///   what the kernel accepts now; entries the kernel refuses even after a
///   short retry are dropped and counted in [`PortCounters::tx_dropped`]
///   (datagram semantics: the protocol above retransmits). Stream ports
///   append each entry to its connection's bounded output buffer and write as
///   much as the socket takes; a connection whose buffer would overflow is
///   closed (a slow reader is cut off, never waited for).
/// - `poll_tx` makes progress on buffered stream output; a no-op for
///   datagram ports.
pub trait Port {
    /// Datagram or stream semantics.
    fn transport(&self) -> Transport;
    /// The local address this port is bound to.
    fn local_addr(&self) -> SocketAddr;
    /// Receives what is pending, without blocking.
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, crate::NetError>;
    /// Sends (or queues, for streams) every entry of `batch`, then clears it.
    fn send(&mut self, batch: &mut PacketBatch) -> Result<usize, crate::NetError>;
    /// Flushes buffered stream output; returns the number of bytes written.
    fn poll_tx(&mut self) -> Result<usize, crate::NetError> {
        Ok(0)
    }
    /// Closes a stream connection (no-op for datagram peers). A `Closed`
    /// event for it is reported by a later `recv`.
    fn close(&mut self, _peer: Peer) {}
    /// The port's counters.
    fn counters(&self) -> PortCounters;
    /// Backend-specific counters as text (e.g. DPDK drops by reason), for
    /// reports at shutdown; never called on the hot path.
    fn detail(&self) -> String {
        String::new()
    }
}
