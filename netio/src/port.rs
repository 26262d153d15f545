//! The traits transport backends implement: [`Port`], what every port
//! has (address, counters, batched send), and on top of it
//! [`DatagramPort`] or [`StreamPort`], whose receive sides differ as their
//! transports do.
//!
//! Datagram and stream ports are separate traits rather than one with a
//! runtime transport switch, so a gateway written for datagrams cannot be
//! handed connection events, nor a stream gateway whole datagrams: the type
//! says which one a port is. Datagram ports lend what they received instead
//! of copying it out ([`DatagramPort::consume`]): a DPDK port hands over a
//! view of the mbuf, and the payload is copied once, into the ring slot the
//! gateway stages it in.

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

/// Transmit buffers a sender builds outgoing datagrams (or stream chunks)
/// in, in place: take the next free buffer, write the payload into it,
/// commit it with its length and peer. A [`PacketBatch`] is one (its slots,
/// sent by [`Port::send`]); a port that lends its own buffers is another
/// (see [`Port::tx_slots`]), so a reply is written once, where it leaves
/// from.
pub trait TxSlots {
    /// The next free buffer, whole (its length is the most one entry may
    /// hold), or `None` when every buffer is committed: send, then ask
    /// again. Asking twice without committing returns the same buffer.
    fn next_slot(&mut self) -> Option<&mut [u8]>;
    /// Queues the first `len` bytes (clamped to the buffer) of the buffer
    /// last returned by [`next_slot`](Self::next_slot) for `peer`. Without
    /// such a buffer, nothing happens.
    fn commit(&mut self, peer: Peer, len: usize);
    /// Entries committed and not yet sent.
    fn committed(&self) -> usize;
    /// Copies `data` into the next buffer and commits it; false (nothing
    /// queued) when no buffer is free or `data` does not fit one.
    fn queue(&mut self, peer: Peer, data: &[u8]) -> bool {
        let Some(slot) = self.next_slot() else {
            return false;
        };
        let Some(dst) = slot.get_mut(..data.len()) else {
            return false;
        };
        dst.copy_from_slice(data);
        self.commit(peer, data.len());
        true
    }
}

/// What every port has: a local address, counters and a batched send.
///
/// Contract:
/// - Never blocks: `send` returns as soon as the kernel/NIC would block.
/// - `send` consumes every entry of `batch` and clears it. Datagram ports send
///   what the kernel accepts now; entries the kernel refuses even after a
///   short retry are dropped and counted in [`PortCounters::tx_dropped`]
///   (datagram semantics: the protocol above retransmits). Stream ports
///   append each entry to its connection's bounded output buffer and write as
///   much as the socket takes; a connection whose buffer would overflow is
///   closed (a slow reader is cut off, never waited for).
///
/// This part alone is what a datagram port lends to the closure of
/// [`DatagramPort::consume`] (as `&mut dyn Port`), so replies can be sent
/// while a received payload is still borrowed.
pub trait Port {
    /// The local address this port is bound to.
    fn local_addr(&self) -> SocketAddr;
    /// Sends (or queues, for streams) every entry of `batch`, then clears
    /// it. Returns the entries taken.
    fn send(&mut self, batch: &mut PacketBatch) -> Result<usize, crate::NetError>;
    /// The port's own transmit buffers, when it lends them for building
    /// datagrams in place (the DPDK port: the payload areas of fresh mbufs,
    /// whose headers it writes at commit); `None` (the default) when it
    /// sends only from a [`PacketBatch`]. What is committed there is
    /// transmitted by the next [`send`](Self::send), ahead of that call's
    /// batch. A sender uses one or the other for a given port, so the
    /// order of what it sends is the order it committed.
    fn tx_slots(&mut self) -> Option<&mut dyn TxSlots> {
        None
    }
    /// The port's counters.
    fn counters(&self) -> PortCounters;
    /// Backend-specific counters as text (e.g. DPDK drops by reason), for
    /// reports at shutdown; never called on the hot path.
    fn detail(&self) -> String {
        String::new()
    }
}

/// A port of whole datagrams (kernel UDP, UDP over DPDK): each received
/// payload is one datagram from a [`SocketAddr`]; each sent entry becomes
/// one datagram to its `Peer::Addr` (an entry for a `Peer::Conn` is
/// dropped and counted).
///
/// Receiving is two calls, so that the batching stays (one system call or
/// one rx burst per [`DatagramPort::receive`]) and payloads are lent, not
/// copied: `receive` takes in a burst and holds it in the port's own
/// storage (the kernel port's `recvmmsg` buffers, the DPDK port's mbufs);
/// `consume` lends the held datagrams, in order, to a closure. A closure
/// that returns false leaves that datagram and the rest held (back-pressure:
/// the caller cannot take them now); the next `consume` starts with it, and
/// `receive` takes in nothing new while anything is held.
pub trait DatagramPort: Port {
    /// When nothing is held, receives up to `max` pending datagrams without
    /// blocking and holds them; returns how many were newly received (0:
    /// nothing pending, or earlier datagrams are still held). A port that
    /// takes runs of datagrams coalesced by the kernel counts `max` in
    /// receive messages, each of which may hold a run (see
    /// [`crate::udp`]), so it may return more than `max`.
    fn receive(&mut self, max: usize) -> Result<usize, crate::NetError>;

    /// Lends each held datagram, in order, to `f` with its source address
    /// and the port itself (as `&mut dyn Port`, to send replies); stops
    /// after the first one for which `f` returns false, which stays held
    /// with those after it. A datagram for which `f` returned true is
    /// released. Returns how many were consumed.
    fn consume<F>(&mut self, f: F) -> usize
    where
        F: FnMut(SocketAddr, &[u8], &mut dyn Port) -> bool;

    /// Receives into `batch` (cleared first), copying: what is held first,
    /// else a fresh burst of up to `batch.capacity()` datagrams. For
    /// clients and tools that keep datagrams beyond the next receive.
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, crate::NetError> {
        batch.clear();
        self.receive(batch.capacity())?;
        self.consume(|from, data, _| batch.push(Peer::Addr(from), data));
        Ok(batch.len())
    }
}

/// A port of byte streams (kernel TCP): entries are chunks of
/// per-connection streams, tagged `Peer::Conn`, plus connection events.
///
/// Contract:
/// - `recv` clears `batch` and fills it with up to `batch.capacity()`
///   entries: [`RxEvent::Opened`], [`RxEvent::Data`] (an arbitrary chunk
///   of at most `batch.slot_bytes()`: framing is the caller's job; see
///   [`PacketBatch::may_have_more`](crate::PacketBatch::may_have_more)),
///   [`RxEvent::Closed`]; never blocks.
/// - `poll_tx` makes progress on buffered output.
pub trait StreamPort: Port {
    /// Receives what is pending, without blocking.
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, crate::NetError>;
    /// Flushes buffered output; returns the number of bytes written.
    fn poll_tx(&mut self) -> Result<usize, crate::NetError>;
    /// Closes connection `conn`. A `Closed` event for it is reported by a
    /// later `recv`.
    fn close(&mut self, conn: ConnId);
}
