//! [`FeedConsumer`]: a [`Reassembler`] on a UDP socket. Joins the group
//! (if any), reads everything pending per poll, sends due re-requests from
//! the same socket (so answers come back to it), delivers in order.
//!
//! One type serves both streams: [`FeedConsumer::new`] checks every block
//! as an order-stream record block and [`FeedConsumer::poll`] hands out
//! [`FeedRecord`]s; [`FeedConsumer::new_market_data`] checks market-data
//! blocks and [`FeedConsumer::poll_market`] hands out [`MarketBlock`]s;
//! [`FeedConsumer::poll_blocks`] gives either as raw `(sequence, bytes)`.

use crate::block::{FeedRecord, MarketBlock, RecordBlock};
use crate::reassembly::{ConsumerStats, Reassembler};
use crate::{ConsumerConfig, FeedError, RerequestTargets};
use peregrine_wire::moldudp64::HEADER_LEN;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Datagrams read per poll at most (then delivery and requests run).
const MAX_READS_PER_POLL: usize = 1024;

fn is_record_block(b: &[u8]) -> bool {
    RecordBlock::new_checked(b).is_ok()
}

fn is_market_block(b: &[u8]) -> bool {
    MarketBlock::parse(b).is_ok()
}

/// A consumer of one MoldUDP64 stream of the feed.
pub struct FeedConsumer {
    socket: UdpSocket,
    rerequest: RerequestTargets,
    core: Reassembler,
    rx: Vec<u8>,
    send_failures: u64,
}

impl std::fmt::Debug for FeedConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedConsumer")
            .field("local", &self.socket.local_addr().ok())
            .field("core", &self.core)
            .finish()
    }
}

impl FeedConsumer {
    /// A consumer of the order stream.
    pub fn new(cfg: ConsumerConfig) -> Result<FeedConsumer, FeedError> {
        Self::with_check(cfg, is_record_block)
    }

    /// A consumer of the market-data stream.
    pub fn new_market_data(cfg: ConsumerConfig) -> Result<FeedConsumer, FeedError> {
        Self::with_check(cfg, is_market_block)
    }

    fn with_check(cfg: ConsumerConfig, check: fn(&[u8]) -> bool) -> Result<FeedConsumer, FeedError> {
        let addr = cfg.listen;
        let io = |what: &'static str| move |e| FeedError::io(what, addr, e);
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .map_err(io("consumer socket"))?;
        if cfg.group.is_some() {
            // Several listeners of one group on one host share the port.
            socket.set_reuse_address(true).map_err(io("SO_REUSEADDR"))?;
        }
        // Best effort: a larger queue absorbs catch-up bursts (the kernel
        // caps it at net.core.rmem_max; losses are re-requested anyway).
        let _ = socket.set_recv_buffer_size(8 << 20);
        socket.bind(&addr.into()).map_err(io("bind consumer"))?;
        if let Some(group) = cfg.group {
            socket
                .join_multicast_v4(&group, &cfg.interface)
                .map_err(io("IP_ADD_MEMBERSHIP"))?;
        }
        socket.set_nonblocking(true).map_err(io("O_NONBLOCK"))?;
        let core = Reassembler::new(
            cfg.session.as_deref(),
            cfg.from_seq,
            cfg.buffer,
            check,
            cfg.heartbeat_timeout,
            cfg.request_timeout,
            cfg.max_request,
        );
        Ok(FeedConsumer {
            socket: socket.into(),
            rerequest: RerequestTargets::new(cfg.rerequest, &cfg.rerequest_fallbacks),
            core,
            rx: vec![0u8; 2048],
            send_failures: 0,
        })
    }

    /// The bound local address.
    pub fn local_addr(&self) -> Result<SocketAddr, FeedError> {
        self.socket
            .local_addr()
            .map_err(|e| FeedError::io("local address", SocketAddr::from(([0, 0, 0, 0], 0)), e))
    }

    /// Non-blocking: reads what the socket has, sends a due request, and
    /// calls `deliver` with every block now next in sequence, strictly in
    /// order, each sequence exactly once. Returns how many it delivered.
    pub fn poll_blocks(&mut self, deliver: &mut dyn FnMut(u64, &[u8])) -> Result<usize, FeedError> {
        let now = Instant::now();
        for _ in 0..MAX_READS_PER_POLL {
            match self.socket.recv_from(&mut self.rx) {
                Ok((n, _from)) => self.core.on_packet(&self.rx[..n], now),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors of our requests (server down), signals: keep going.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    return Err(FeedError::io(
                        "receive",
                        self.rerequest.current().unwrap_or(self.listen_addr()),
                        e,
                    ))
                }
            }
        }
        let n = self.core.deliver(deliver);
        if self.rerequest.current().is_some() {
            if let Some(req) = self.core.due_request(now) {
                if let Some(target) = self.rerequest.target_for(req.sequence) {
                    let mut h = [0u8; HEADER_LEN];
                    req.emit(&mut h);
                    if self.socket.send_to(&h, target).is_err() {
                        self.send_failures += 1;
                    }
                }
            }
        }
        Ok(n)
    }

    /// [`poll_blocks`](Self::poll_blocks) for the order stream, typed.
    pub fn poll(&mut self, deliver: &mut dyn FnMut(&FeedRecord)) -> Result<usize, FeedError> {
        self.poll_blocks(&mut |seq, b| {
            // Every stored block passed `RecordBlock::new_checked`.
            if let Ok(r) = FeedRecord::parse(seq, b) {
                deliver(&r);
            }
        })
    }

    /// [`poll_blocks`](Self::poll_blocks) for the market-data stream, typed.
    pub fn poll_market(&mut self, deliver: &mut dyn FnMut(u64, &MarketBlock)) -> Result<usize, FeedError> {
        self.poll_blocks(&mut |seq, b| {
            if let Ok(m) = MarketBlock::parse(b) {
                deliver(seq, &m);
            }
        })
    }

    /// Blocks up to `timeout` waiting for a datagram (for callers that do
    /// not spin); returns early when one is pending.
    pub fn wait(&mut self, timeout: Duration) -> Result<(), FeedError> {
        let addr = self.listen_addr();
        let io = |e| FeedError::io("wait", addr, e);
        self.socket.set_nonblocking(false).map_err(io)?;
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_micros(1))))
            .map_err(io)?;
        let mut one = [0u8; 1];
        let r = self.socket.peek(&mut one);
        self.socket.set_nonblocking(true).map_err(io)?;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(io(e)),
        }
    }

    fn listen_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Changes the first re-request server (e.g. once the server's bound
    /// address is known), keeping the fallbacks; `None` stops asking.
    pub fn set_rerequest(&mut self, target: Option<SocketAddr>) {
        self.rerequest.set_primary(target);
    }

    /// Next sequence to deliver.
    pub fn next_seq(&self) -> u64 {
        self.core.next_seq()
    }

    /// End of Session seen and everything before it delivered.
    pub fn end_of_session(&self) -> bool {
        self.core.end_of_session()
    }

    /// Counters (`requests` counts requests sent, failed sends excluded).
    pub fn stats(&self) -> ConsumerStats {
        let mut s = self.core.stats();
        s.requests = s.requests.saturating_sub(self.send_failures);
        s.server_switches = self.rerequest.switches();
        s
    }
}
