//! Kernel UDP port: non-blocking, batched with `recvmmsg`/`sendmmsg`.
//!
//! The caller busy-polls [`DatagramPort::receive`]; each call is one
//! `recvmmsg` that fills as many slots of the port's own batch as datagrams
//! are queued, so under load the system-call cost is spread over a whole
//! burst; [`DatagramPort::consume`] then lends them out of that batch (the
//! `recvmmsg` buffers are the backing store). [`DatagramPort::recv`]
//! receives straight into a caller's batch instead. Sends are one
//! `sendmmsg` per batch. Only standard calls are used, so OpenOnload
//! accelerates this path unchanged.
//!
//! Datagram size: the port's own receive batch has slots of
//! [`DATAGRAM_SLOT_BYTES`], so every datagram the socket can deliver (up to
//! [`crate::MAX_UDP_PAYLOAD`] bytes over IPv4) arrives whole, in the same
//! single `recvmmsg` as ordinary ones: no second receive path, no copy, no
//! allocation per datagram. The alternative, small slots with truncation
//! detected through `MSG_TRUNC`, would have to refuse what it cut off,
//! and a client cannot tell which of its messages were lost. The large
//! slots cost address space, not memory (see [`crate::batch`]), and do not
//! slow the common path: the kernel copies only the bytes a datagram has.
//! A caller's batch passed to [`DatagramPort::recv`] keeps its own slot
//! size; a datagram longer than its slots is dropped and counted
//! (`rx_oversize`), never delivered cut short.

use crate::batch::{PacketBatch, DATAGRAM_SLOT_BYTES};
use crate::error::NetError;
use crate::port::{DatagramPort, Peer, Port, PortCounters};
use crate::{sockaddr, sockopt};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Socket settings for a [`UdpPort`].
#[derive(Clone, Copy, Debug)]
pub struct UdpOptions {
    /// Requested `SO_RCVBUF` in bytes (0 = kernel default).
    pub recv_buffer: usize,
    /// Requested `SO_SNDBUF` in bytes (0 = kernel default).
    pub send_buffer: usize,
    /// Largest batch passed to `recvmmsg`/`sendmmsg` in one call.
    pub max_batch: usize,
    /// `sendmmsg` retries after `EAGAIN` before the rest of a batch is
    /// dropped (each retry is one busy-spin round).
    pub send_retries: u32,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            recv_buffer: 8 << 20,
            send_buffer: 8 << 20,
            max_batch: 64,
            send_retries: 10_000,
        }
    }
}

/// A bound, non-blocking UDP socket with preallocated `mmsghdr` arrays.
pub struct UdpPort {
    socket: UdpSocket,
    local: SocketAddr,
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    send_retries: u32,
    counters: PortCounters,
    buffers: (usize, usize),
    /// Datagrams received by `receive`, lent by `consume`; `None` only
    /// while `consume` lends from it.
    held: Option<PacketBatch>,
    /// The first held datagram not consumed yet.
    held_pos: usize,
}

// SAFETY: the raw pointers inside `hdrs`/`iovs` are scratch values rewritten
// before every system call and never dereferenced otherwise; the port is
// owned by one thread at a time.
unsafe impl Send for UdpPort {}

impl UdpPort {
    /// Binds `addr` (port 0 picks a free port) with `opts`.
    pub fn bind(addr: SocketAddr, opts: UdpOptions) -> Result<Self, NetError> {
        let setup = |what: &'static str, source: io::Error| NetError::Setup {
            what,
            addr: addr.to_string(),
            source,
        };
        let socket = UdpSocket::bind(addr).map_err(|e| setup("bind", e))?;
        Self::from_socket(socket, opts).map_err(|e| setup("socket options", e))
    }

    /// Wraps an already bound socket (made non-blocking here).
    pub fn from_socket(socket: UdpSocket, opts: UdpOptions) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let buffers = sockopt::set_buffers(socket.as_raw_fd(), opts.recv_buffer, opts.send_buffer)?;
        let local = socket.local_addr()?;
        let n = opts.max_batch.max(1);
        // SAFETY: all-zero bytes are valid values of these plain C structs.
        let (hdr, iov, st) = unsafe {
            (
                std::mem::zeroed::<libc::mmsghdr>(),
                std::mem::zeroed::<libc::iovec>(),
                std::mem::zeroed::<libc::sockaddr_storage>(),
            )
        };
        Ok(UdpPort {
            socket,
            local,
            hdrs: vec![hdr; n],
            iovs: vec![iov; n],
            addrs: vec![st; n],
            send_retries: opts.send_retries,
            counters: PortCounters::default(),
            buffers,
            held: Some(PacketBatch::with_slot_bytes(n, DATAGRAM_SLOT_BYTES)),
            held_pos: 0,
        })
    }

    /// The underlying socket (e.g. for `connect` in a client).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// `(SO_RCVBUF, SO_SNDBUF)` as the kernel reports them.
    pub fn buffer_sizes(&self) -> (usize, usize) {
        self.buffers
    }

    fn send_slice(
        &mut self,
        batch: &PacketBatch,
        from: usize,
        to: usize,
        base: *const u8,
    ) -> Result<usize, NetError> {
        let n = to - from;
        let stride = batch.slot_stride();
        for j in 0..n {
            let i = from + j;
            let (peer, _, data) = batch.get(i);
            let addr = match peer {
                Peer::Addr(a) => a,
                Peer::Conn(_) => {
                    // Not addressable over UDP: send nowhere, count it.
                    self.addrs[j].ss_family = libc::AF_UNSPEC as libc::sa_family_t;
                    self.hdrs[j].msg_hdr.msg_namelen = 0;
                    self.iovs[j].iov_len = 0;
                    continue;
                }
            };
            let namelen = sockaddr::to_storage(&addr, &mut self.addrs[j]);
            // SAFETY: slot `i` lies within the batch storage (i < len <= capacity).
            self.iovs[j].iov_base = unsafe { base.add(i * stride) } as *mut libc::c_void;
            self.iovs[j].iov_len = data.len();
            let h = &mut self.hdrs[j].msg_hdr;
            h.msg_name = &mut self.addrs[j] as *mut libc::sockaddr_storage as *mut libc::c_void;
            h.msg_namelen = namelen;
            h.msg_iov = &mut self.iovs[j];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let mut sent = 0usize;
        let mut retries = 0u32;
        while sent < n {
            // SAFETY: hdrs[sent..n] were initialised above and point at live
            // iovecs, addresses and batch slots that outlive the call.
            let rc = unsafe {
                libc::sendmmsg(
                    self.socket.as_raw_fd(),
                    self.hdrs.as_mut_ptr().add(sent),
                    (n - sent) as libc::c_uint,
                    0,
                )
            };
            if rc > 0 {
                sent += rc as usize;
                continue;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ENOBUFS) => {
                    retries += 1;
                    if retries > self.send_retries {
                        break;
                    }
                    std::hint::spin_loop();
                }
                Some(libc::ECONNREFUSED)
                | Some(libc::EDESTADDRREQ)
                | Some(libc::EINVAL)
                | Some(libc::EAFNOSUPPORT) => {
                    // This datagram cannot go (bad address, ICMP unreachable
                    // reported late): drop it and carry on with the rest.
                    self.counters.tx_dropped += 1;
                    sent += 1;
                }
                _ => {
                    return Err(NetError::Syscall {
                        call: "sendmmsg",
                        source: err,
                    })
                }
            }
        }
        Ok(sent)
    }

    /// True while datagrams received by `receive` wait to be consumed.
    fn holds(&self) -> bool {
        self.held.as_ref().is_some_and(|b| self.held_pos < b.len())
    }

    /// One `recvmmsg` of up to `max` datagrams into `batch` (cleared).
    fn recv_burst(&mut self, batch: &mut PacketBatch, max: usize) -> Result<usize, NetError> {
        batch.clear();
        let n = max.min(batch.capacity()).min(self.hdrs.len());
        let (stride, room) = (batch.slot_stride(), batch.slot_bytes());
        let base = batch.slots_ptr();
        for j in 0..n {
            // SAFETY: slot j lies within the batch's storage (j < capacity),
            // starting at j * stride with `room` bytes (room <= stride).
            self.iovs[j].iov_base = unsafe { base.add(j * stride) } as *mut libc::c_void;
            self.iovs[j].iov_len = room;
            let h = &mut self.hdrs[j].msg_hdr;
            h.msg_name = &mut self.addrs[j] as *mut libc::sockaddr_storage as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[j];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        // SAFETY: the n headers point at live iovecs/addresses and at batch
        // slots of `stride` bytes each; MSG_DONTWAIT never blocks; a null timeout
        // is allowed.
        let rc = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
                // A previous send's ICMP port-unreachable surfaces here on
                // some kernels: not a receive failure.
                Some(libc::ECONNREFUSED) => Ok(0),
                _ => Err(NetError::Syscall {
                    call: "recvmmsg",
                    source: err,
                }),
            };
        }
        let got = rc as usize;
        let mut kept = 0usize;
        for j in 0..got {
            let len = self.hdrs[j].msg_len as usize;
            let truncated = self.hdrs[j].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let peer = sockaddr::from_storage(&self.addrs[j]);
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += len as u64;
            match (peer, truncated) {
                (Some(addr), false) => {
                    if kept != j {
                        // Compact: move datagram j down to slot `kept`.
                        // SAFETY: both ranges lie inside the batch storage
                        // and `kept < j`, so `copy` (memmove) is sound.
                        unsafe {
                            std::ptr::copy(base.add(j * stride), base.add(kept * stride), len);
                        }
                    }
                    batch.set_entry(kept, Peer::Addr(addr), len);
                    kept += 1;
                }
                _ => self.counters.rx_oversize += 1,
            }
        }
        batch.set_len(kept);
        Ok(kept)
    }
}

impl DatagramPort for UdpPort {
    fn receive(&mut self, max: usize) -> Result<usize, NetError> {
        if self.holds() {
            return Ok(0);
        }
        let Some(mut batch) = self.held.take() else {
            return Ok(0);
        };
        self.held_pos = 0;
        let got = self.recv_burst(&mut batch, max);
        self.held = Some(batch);
        got
    }

    fn consume<F>(&mut self, mut f: F) -> usize
    where
        F: FnMut(SocketAddr, &[u8], &mut dyn Port) -> bool,
    {
        // Moved out while lent, so `f` can have the port to send with.
        let Some(batch) = self.held.take() else {
            return 0;
        };
        let start = self.held_pos;
        while self.held_pos < batch.len() {
            let (peer, _, data) = batch.get(self.held_pos);
            let Peer::Addr(from) = peer else {
                self.held_pos += 1;
                continue;
            };
            if !f(from, data, self) {
                break;
            }
            self.held_pos += 1;
        }
        let consumed = self.held_pos - start;
        self.held = Some(batch);
        consumed
    }

    /// Held datagrams first (copied); otherwise one `recvmmsg` straight
    /// into `batch`.
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        if !self.holds() {
            return self.recv_burst(batch, batch.capacity());
        }
        batch.clear();
        // A held datagram longer than the caller's slots cannot be lent
        // whole: dropped and counted, as the kernel would have cut it.
        let mut too_long = 0u64;
        self.consume(|from, data, _| {
            if data.len() > batch.slot_bytes() {
                too_long += 1;
                return true;
            }
            batch.push(Peer::Addr(from), data)
        });
        self.counters.rx_oversize += too_long;
        Ok(batch.len())
    }
}

impl Port for UdpPort {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn send(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        let total = batch.len();
        let base = batch.slots_ptr() as *const u8;
        let chunk = self.hdrs.len();
        let mut done = 0usize;
        let mut sent_total = 0usize;
        while done < total {
            let to = (done + chunk).min(total);
            let sent = self.send_slice(batch, done, to, base)?;
            for i in done..done + sent {
                self.counters.tx_bytes += batch.get(i).2.len() as u64;
            }
            self.counters.tx_packets += sent as u64;
            self.counters.tx_dropped += (to - done - sent) as u64;
            sent_total += sent;
            done = to;
        }
        batch.clear();
        Ok(sent_total)
    }

    fn counters(&self) -> PortCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lo() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn recv_some(port: &mut UdpPort, batch: &mut PacketBatch, want: usize) -> usize {
        let start = std::time::Instant::now();
        let mut got = 0;
        while got < want && start.elapsed() < std::time::Duration::from_secs(5) {
            got = port.recv(batch).unwrap();
        }
        got
    }

    #[test]
    fn batch_round_trip_between_two_ports() {
        let mut a = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut tx = PacketBatch::new(8);
        for i in 0..5u8 {
            assert!(tx.push(Peer::Addr(b.local_addr()), &[i; 100]));
        }
        assert_eq!(a.send(&mut tx).unwrap(), 5);
        assert!(tx.is_empty());
        let mut rx = PacketBatch::new(8);
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let n = recv_some(&mut b, &mut rx, 1);
            assert!(n > 0, "datagrams did not arrive");
            for i in 0..n {
                let (peer, _, data) = rx.get(i);
                assert_eq!(peer, Peer::Addr(a.local_addr()));
                assert_eq!(data.len(), 100);
                seen.push(data[0]);
            }
        }
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        assert_eq!(a.counters().tx_packets, 5);
        assert_eq!(b.counters().rx_packets, 5);
    }

    #[test]
    fn oversize_datagram_is_counted_not_delivered() {
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let s = UdpSocket::bind(lo()).unwrap();
        s.send_to(&vec![7u8; crate::SLOT_BYTES + 100], b.local_addr())
            .unwrap();
        s.send_to(&[1u8; 10], b.local_addr()).unwrap();
        let mut rx = PacketBatch::new(4);
        let start = std::time::Instant::now();
        let mut delivered = Vec::new();
        while b.counters().rx_packets < 2 && start.elapsed() < std::time::Duration::from_secs(5) {
            let n = b.recv(&mut rx).unwrap();
            for i in 0..n {
                delivered.push(rx.get(i).2.to_vec());
            }
        }
        assert_eq!(b.counters().rx_oversize, 1);
        assert_eq!(delivered, vec![vec![1u8; 10]]);
    }

    #[test]
    fn consume_lends_held_datagrams_and_keeps_the_rest_on_false() {
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let s = UdpSocket::bind(lo()).unwrap();
        for i in 0..3u8 {
            s.send_to(&[i; 5], b.local_addr()).unwrap();
        }
        // Loopback delivers during send_to: all three are queued now.
        assert_eq!(b.receive(8).unwrap(), 3);
        assert_eq!(b.receive(8).unwrap(), 0, "nothing new while held");
        let mut seen = Vec::new();
        let n = b.consume(|from, data, _| {
            assert_eq!(from, s.local_addr().unwrap());
            seen.push(data[0]);
            data[0] < 1
        });
        assert_eq!((n, seen.clone()), (1, vec![0, 1]), "stopped at 1, kept it");
        let mut copy = PacketBatch::new(8);
        assert_eq!(b.recv(&mut copy).unwrap(), 2, "held ones first");
        assert_eq!((copy.get(0).2, copy.get(1).2), (&[1u8; 5][..], &[2u8; 5][..]));
        assert_eq!(b.consume(|_, _, _| true), 0);
    }

    #[test]
    fn receive_delivers_the_largest_datagram_whole() {
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let s = UdpSocket::bind(lo()).unwrap();
        let big: Vec<u8> = (0..crate::MAX_UDP_PAYLOAD).map(|i| i as u8).collect();
        s.send_to(&big, b.local_addr()).unwrap();
        s.send_to(&[9u8; 2060], b.local_addr()).unwrap();
        let start = std::time::Instant::now();
        let mut got = 0;
        while got < 2 && start.elapsed() < std::time::Duration::from_secs(5) {
            got = b.receive(8).unwrap();
        }
        let mut seen = Vec::new();
        b.consume(|_, data, _| {
            seen.push(data.to_vec());
            true
        });
        assert_eq!(seen.len(), 2);
        assert!(seen[0] == big, "the 65,507-byte datagram arrives whole");
        assert_eq!(seen[1], vec![9u8; 2060]);
        assert_eq!(b.counters().rx_oversize, 0);
    }

    #[test]
    fn recv_on_idle_socket_returns_zero() {
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut rx = PacketBatch::new(4);
        assert_eq!(b.recv(&mut rx).unwrap(), 0);
    }
}
