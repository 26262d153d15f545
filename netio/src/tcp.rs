//! Kernel TCP port: one listener, many non-blocking connections, epoll.
//!
//! Reads: one `epoll_wait(0)` per poll, then one `read` per ready connection
//! into a batch slot (level-triggered, so a connection not served because the
//! batch filled is reported again next poll; nobody starves). Writes: replies
//! are appended to the connection's bounded output buffer and written with
//! one `write` per connection per batch; what the socket does not take stays
//! buffered and is retried by [`StreamPort::poll_tx`]. A connection whose buffer
//! would overflow is a reader too slow to keep up: it is closed and counted,
//! never waited for, so it cannot stall the gateway or other clients.

use crate::batch::PacketBatch;
use crate::error::NetError;
use crate::port::{ConnId, Peer, Port, PortCounters, RxEvent, StreamPort};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// Settings for a [`TcpPort`].
#[derive(Clone, Copy, Debug)]
pub struct TcpOptions {
    /// Most simultaneous connections; further ones are accepted and closed.
    pub max_connections: usize,
    /// Per-connection output buffer in bytes; overflow closes the connection.
    pub output_buffer: usize,
    /// Requested `SO_RCVBUF`/`SO_SNDBUF` for accepted sockets (0 = default).
    pub socket_buffer: usize,
    /// Most epoll events handled per poll.
    pub max_events: usize,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            max_connections: 1024,
            output_buffer: 4 << 20,
            socket_buffer: 0,
            max_events: 256,
        }
    }
}

/// Bounded FIFO of bytes waiting to be written to one connection.
struct OutputBuffer {
    buf: Vec<u8>,
    start: usize,
}

impl OutputBuffer {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }
    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }
    /// Appends unless the pending total would exceed `limit`.
    fn append(&mut self, data: &[u8], limit: usize) -> bool {
        if self.buf.len() - self.start + data.len() > limit {
            return false;
        }
        if self.start > 0 && self.buf.len() + data.len() > self.buf.capacity() {
            // Compact instead of growing.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
        true
    }
}

struct Connection {
    stream: Option<TcpStream>,
    generation: u32,
    out: OutputBuffer,
    dirty: bool,
}

const LISTENER_TOKEN: u64 = u64::MAX;

/// A TCP listener and its connections, polled without blocking.
pub struct TcpPort {
    listener: TcpListener,
    local: SocketAddr,
    epoll: std::os::fd::OwnedFd,
    events: Vec<libc::epoll_event>,
    conns: Vec<Connection>,
    free: Vec<u32>,
    dirty: Vec<u32>,
    /// Connections closed by us (slow reader, `close`) whose `Closed` event
    /// has not been reported yet.
    closed_pending: Vec<ConnId>,
    /// Connections accepted, `Opened` not yet reported (batch was full).
    opened_pending: Vec<ConnId>,
    opts: TcpOptions,
    counters: PortCounters,
}

impl TcpPort {
    /// Listens on `addr` (port 0 picks a free port).
    pub fn bind(addr: SocketAddr, opts: TcpOptions) -> Result<Self, NetError> {
        let setup = |what: &'static str, source: io::Error| NetError::Setup {
            what,
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).map_err(|e| setup("listen", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| setup("non-blocking", e))?;
        let local = listener.local_addr().map_err(|e| setup("local address", e))?;
        // SAFETY: plain system call; the returned descriptor is checked below
        // and then owned by OwnedFd.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(setup("epoll_create1", io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let epoll = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let max = opts.max_connections.max(1);
        let port = TcpPort {
            listener,
            local,
            epoll,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; opts.max_events.max(1)],
            conns: Vec::with_capacity(max),
            free: Vec::with_capacity(max),
            dirty: Vec::with_capacity(max),
            closed_pending: Vec::with_capacity(max),
            opened_pending: Vec::with_capacity(max),
            opts: TcpOptions {
                max_connections: max,
                ..opts
            },
            counters: PortCounters::default(),
        };
        let lfd = port.listener.as_raw_fd();
        port.epoll_ctl(libc::EPOLL_CTL_ADD, lfd, LISTENER_TOKEN)
            .map_err(|e| setup("epoll_ctl", e))?;
        Ok(port)
    }

    /// Blocks until a connection or the listener has something to read, or
    /// `timeout` passes (rounded up to whole milliseconds, at most about 24
    /// days); true when something is ready. Consumes nothing: the next
    /// `recv` handles it. For a loop that has nothing else to do (a cluster
    /// follower waiting for its leader) and should neither spin nor sleep
    /// past the next message.
    pub fn wait_readable(&self, timeout: std::time::Duration) -> Result<bool, NetError> {
        if !self.closed_pending.is_empty() || !self.opened_pending.is_empty() {
            return Ok(true);
        }
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `ev` is one valid, writable epoll_event and we pass
        // maxevents 1; the epoll descriptor is owned by `self`. Level
        // triggering reports the same readiness again to `recv`.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), &mut ev, 1, ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EINTR) => Ok(true),
                _ => Err(NetError::Syscall {
                    call: "epoll_wait",
                    source: err,
                }),
            };
        }
        Ok(n > 0)
    }

    /// Number of open connections.
    pub fn open_connections(&self) -> usize {
        self.conns.iter().filter(|c| c.stream.is_some()).count()
    }

    fn epoll_ctl(&self, op: libc::c_int, fd: i32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: token,
        };
        // SAFETY: valid epoll and target descriptors; `ev` outlives the call.
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        let c = self.conns.get_mut(id.index as usize)?;
        (c.stream.is_some() && c.generation == id.generation).then_some(c)
    }

    fn accept_all(&mut self, batch: &mut PacketBatch) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    if self.opts.socket_buffer > 0 {
                        let _ = crate::sockopt::set_buffers(
                            stream.as_raw_fd(),
                            self.opts.socket_buffer,
                            self.opts.socket_buffer,
                        );
                    }
                    let index = match self.free.pop() {
                        Some(i) => i,
                        None if self.conns.len() < self.opts.max_connections => {
                            self.conns.push(Connection {
                                stream: None,
                                generation: 0,
                                out: OutputBuffer {
                                    buf: Vec::new(),
                                    start: 0,
                                },
                                dirty: false,
                            });
                            (self.conns.len() - 1) as u32
                        }
                        None => {
                            self.counters.conns_refused += 1;
                            drop(stream);
                            continue;
                        }
                    };
                    let fd = stream.as_raw_fd();
                    let c = &mut self.conns[index as usize];
                    c.generation = c.generation.wrapping_add(1);
                    c.stream = Some(stream);
                    c.out.buf.clear();
                    c.out.start = 0;
                    c.dirty = false;
                    let id = ConnId {
                        index,
                        generation: c.generation,
                    };
                    if self.epoll_ctl(libc::EPOLL_CTL_ADD, fd, index as u64).is_err() {
                        self.drop_conn(id);
                        continue;
                    }
                    self.counters.conns_opened += 1;
                    if !batch.push_event(Peer::Conn(id), RxEvent::Opened) {
                        self.opened_pending.push(id);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ECONNABORTED, EMFILE...: skip this one, try again next poll.
                Err(_) => break,
            }
        }
    }

    /// Closes the socket and frees the slot; the caller reports `Closed`.
    fn drop_conn(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(id.index as usize) else {
            return;
        };
        if c.generation != id.generation {
            return;
        }
        if let Some(stream) = c.stream.take() {
            // SAFETY: valid descriptors; a null event is allowed for DEL.
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    stream.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
            drop(stream);
            c.out.buf.clear();
            c.out.start = 0;
            c.dirty = false;
            self.free.push(id.index);
            self.counters.conns_closed += 1;
        }
    }

    /// Writes as much of connection `index`'s buffer as the socket takes.
    /// Returns bytes written, and whether the connection failed.
    fn flush_conn(&mut self, index: u32) -> (usize, bool) {
        let c = &mut self.conns[index as usize];
        let Some(stream) = c.stream.as_mut() else {
            return (0, false);
        };
        let mut written = 0usize;
        while !c.out.is_empty() {
            match stream.write(c.out.pending()) {
                Ok(0) => return (written, true),
                Ok(n) => {
                    written += n;
                    c.out.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return (written, true),
            }
        }
        (written, false)
    }

    fn flush_dirty(&mut self) -> usize {
        let mut total = 0usize;
        let mut i = 0usize;
        while i < self.dirty.len() {
            let index = self.dirty[i];
            let (n, failed) = self.flush_conn(index);
            total += n;
            let c = &mut self.conns[index as usize];
            if failed {
                let id = ConnId {
                    index,
                    generation: c.generation,
                };
                self.drop_conn(id);
                self.closed_pending.push(id);
                self.dirty.swap_remove(i);
            } else if c.out.is_empty() {
                c.dirty = false;
                self.dirty.swap_remove(i);
            } else {
                i += 1;
            }
        }
        self.counters.tx_bytes += total as u64;
        total
    }
}

impl StreamPort for TcpPort {
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        batch.clear();
        while let Some(&id) = self.closed_pending.last() {
            if !batch.push_event(Peer::Conn(id), RxEvent::Closed) {
                return Ok(batch.len());
            }
            self.closed_pending.pop();
        }
        while let Some(&id) = self.opened_pending.last() {
            if !batch.push_event(Peer::Conn(id), RxEvent::Opened) {
                return Ok(batch.len());
            }
            self.opened_pending.pop();
        }
        // SAFETY: `events` is a valid writable array of `len` epoll_events;
        // a zero timeout never blocks.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                0,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EINTR) => Ok(batch.len()),
                _ => Err(NetError::Syscall {
                    call: "epoll_wait",
                    source: err,
                }),
            };
        }
        for k in 0..n as usize {
            let token = self.events[k].u64;
            if token == LISTENER_TOKEN {
                self.accept_all(batch);
                continue;
            }
            let index = token as u32;
            let Some(c) = self.conns.get_mut(index as usize) else {
                continue;
            };
            let id = ConnId {
                index,
                generation: c.generation,
            };
            let Some(stream) = c.stream.as_mut() else {
                continue;
            };
            let Some(slot) = batch.next_slot() else {
                break; // level-triggered: reported again next poll
            };
            match stream.read(slot) {
                Ok(0) => {
                    self.drop_conn(id);
                    if !batch.push_event(Peer::Conn(id), RxEvent::Closed) {
                        self.closed_pending.push(id);
                    }
                }
                Ok(len) => {
                    self.counters.rx_packets += 1;
                    self.counters.rx_bytes += len as u64;
                    batch.commit(Peer::Conn(id), len);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(_) => {
                    self.drop_conn(id);
                    if !batch.push_event(Peer::Conn(id), RxEvent::Closed) {
                        self.closed_pending.push(id);
                    }
                }
            }
        }
        Ok(batch.len())
    }

    fn poll_tx(&mut self) -> Result<usize, NetError> {
        if self.dirty.is_empty() {
            return Ok(0);
        }
        Ok(self.flush_dirty())
    }

    fn close(&mut self, id: ConnId) {
        if self.conn_mut(id).is_some() {
            // Best effort: push out what is already queued (e.g. a
            // rejection or logout) before closing.
            self.flush_conn(id.index);
            self.drop_conn(id);
            self.closed_pending.push(id);
        }
    }
}

impl Port for TcpPort {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn send(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        let limit = self.opts.output_buffer;
        let mut accepted = 0usize;
        for i in 0..batch.len() {
            let (peer, _, data) = batch.get(i);
            let Peer::Conn(id) = peer else {
                self.counters.tx_dropped += 1;
                continue;
            };
            let Some(c) = self.conn_mut(id) else {
                // Connection gone (stale generation): the reply has no reader.
                self.counters.tx_dropped += 1;
                continue;
            };
            if !c.out.append(data, limit) {
                self.counters.conns_slow_closed += 1;
                self.counters.tx_dropped += 1;
                self.drop_conn(id);
                self.closed_pending.push(id);
                continue;
            }
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(id.index);
            }
            self.counters.tx_packets += 1;
            accepted += 1;
        }
        batch.clear();
        self.flush_dirty();
        Ok(accepted)
    }

    fn counters(&self) -> PortCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn poll_until(port: &mut TcpPort, batch: &mut PacketBatch, mut f: impl FnMut(&PacketBatch) -> bool) {
        let start = Instant::now();
        loop {
            port.recv(batch).unwrap();
            if f(batch) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "timed out");
        }
    }

    #[test]
    fn accept_read_write_close() {
        let mut port = TcpPort::bind("127.0.0.1:0".parse().unwrap(), TcpOptions::default()).unwrap();
        let mut client = TcpStream::connect(port.local_addr()).unwrap();
        let mut batch = PacketBatch::new(16);
        let mut conn = None;
        poll_until(&mut port, &mut batch, |b| {
            for i in 0..b.len() {
                if b.get(i).1 == RxEvent::Opened {
                    conn = Some(b.get(i).0);
                }
            }
            conn.is_some()
        });
        client.write_all(b"hello").unwrap();
        let mut got = Vec::new();
        poll_until(&mut port, &mut batch, |b| {
            for i in 0..b.len() {
                got.extend_from_slice(b.get(i).2);
            }
            got.len() >= 5
        });
        assert_eq!(got, b"hello");
        let mut tx = PacketBatch::new(4);
        tx.push(conn.unwrap(), b"world");
        assert_eq!(port.send(&mut tx).unwrap(), 1);
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"world");
        drop(client);
        let mut closed = false;
        poll_until(&mut port, &mut batch, |b| {
            closed |= (0..b.len()).any(|i| b.get(i).1 == RxEvent::Closed);
            closed
        });
        assert_eq!(port.open_connections(), 0);
    }

    #[test]
    fn slow_reader_is_cut_off_and_others_keep_flowing() {
        let opts = TcpOptions {
            output_buffer: 64 << 10,
            socket_buffer: 16 << 10,
            ..TcpOptions::default()
        };
        let mut port = TcpPort::bind("127.0.0.1:0".parse().unwrap(), opts).unwrap();
        let slow = TcpStream::connect(port.local_addr()).unwrap();
        let mut fast = TcpStream::connect(port.local_addr()).unwrap();
        let mut batch = PacketBatch::new(16);
        let mut ids = Vec::new();
        poll_until(&mut port, &mut batch, |b| {
            for i in 0..b.len() {
                if b.get(i).1 == RxEvent::Opened {
                    ids.push(b.get(i).0);
                }
            }
            ids.len() == 2
        });
        // Find which id is which by writing one byte on `fast`.
        fast.write_all(b"x").unwrap();
        let mut fast_id = None;
        poll_until(&mut port, &mut batch, |b| {
            for i in 0..b.len() {
                if b.get(i).1 == RxEvent::Data {
                    fast_id = Some(b.get(i).0);
                }
            }
            fast_id.is_some()
        });
        let fast_id = fast_id.unwrap();
        let slow_id = *ids.iter().find(|&&p| p != fast_id).unwrap();
        let chunk = [9u8; 1000];
        fast.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut sink = [0u8; 1000];
        for _ in 0..2000 {
            let mut tx = PacketBatch::new(2);
            tx.push(slow_id, &chunk);
            tx.push(fast_id, &chunk);
            port.send(&mut tx).unwrap();
            fast.read_exact(&mut sink).unwrap();
        }
        assert_eq!(
            port.counters().conns_slow_closed,
            1,
            "slow reader must be cut off"
        );
        assert_eq!(port.open_connections(), 1);
        drop(slow);
    }
}
