//! [`RerequestServer`]: answers MoldUDP64 retransmission requests with
//! ordinary downstream packets, sent unicast to the requester.
//!
//! Where answers come from ([`RetransmitSource`]):
//! * the order stream: the journal itself ([`JournalSource`], a second
//!   [`JournalTail`] that seeks per request), so any sequence the journal
//!   still holds can be re-sent, however old;
//! * the market-data stream: an in-memory window of the newest blocks
//!   ([`RetainedBlocks`], `retain` blocks), since market data is derived
//!   and not journaled. A request older than the window is ignored and
//!   counted (`ignored_unavailable`); a consumer that far behind rebuilds
//!   from the order stream instead.
//!
//! Limits, in this order: session must match (else `ignored_session`);
//! the first sequence must be published already (else `ignored_future`;
//! a request that straddles the end is answered up to it); the count is
//! clamped to `max_count` and to what fits in one packet; each requester
//! (IP address and port) has a token bucket of `rate` messages per second
//! whose burst is one maximal answer: with less than one token the request
//! is dropped (`rate_limited`), otherwise the answer is cut to the whole
//! tokens held.

use crate::block::{emit_sequenced, MAX_BLOCK_LEN, RECORD_BLOCK_LEN};
use crate::publisher::is_transient;
use crate::FeedError;
use peregrine_journal::{JournalError, JournalTail};
use peregrine_wire::moldudp64::{
    MoldBuilder, RetransmissionRequest, SessionName, END_OF_SESSION, HEADER_LEN,
};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

/// Requesters tracked at once; past this, idle buckets are forgotten.
const MAX_REQUESTERS: usize = 4096;

/// Something that can hand out the blocks of a stream by sequence.
pub trait RetransmitSource {
    /// First sequence still held (older requests are ignored).
    fn first_held(&self) -> u64;
    /// Calls `f` with the blocks `from..` in order until `f` returns false
    /// or `count` were given or the source runs out; returns how many were
    /// given (those for which `f` returned true).
    fn blocks(&mut self, from: u64, count: u64, f: &mut dyn FnMut(&[u8]) -> bool) -> Result<u64, FeedError>;
}

/// The order stream's blocks, read from the journal.
#[derive(Debug)]
pub struct JournalSource {
    tail: JournalTail,
}

impl JournalSource {
    /// Reads the journal in `dir`.
    pub fn open(dir: &std::path::Path) -> Result<JournalSource, FeedError> {
        Ok(JournalSource {
            tail: JournalTail::open(dir, 1).or_else(|e| match e {
                // Discarded prefix: start where the journal starts.
                JournalError::OutOfRange { held_first, .. } => JournalTail::open(dir, held_first),
                other => Err(other),
            })?,
        })
    }
}

impl RetransmitSource for JournalSource {
    fn first_held(&self) -> u64 {
        // The journal is asked per request; a discarded range shows up as
        // an error from `blocks` and is counted as unavailable there.
        1
    }

    fn blocks(&mut self, from: u64, count: u64, f: &mut dyn FnMut(&[u8]) -> bool) -> Result<u64, FeedError> {
        self.tail.seek(from)?;
        let mut given = 0u64;
        let mut full = false;
        let mut block = [0u8; RECORD_BLOCK_LEN];
        // One record at a time: a refused block must not be consumed.
        while given < count && !full {
            let n = self.tail.read(from + given + 1, 1, |r| {
                emit_sequenced(r, &mut block);
                if f(&block) {
                    given += 1;
                } else {
                    full = true;
                }
            })?;
            if n == 0 {
                break;
            }
        }
        Ok(given)
    }
}

/// The newest `capacity` blocks of a stream, in memory (preallocated;
/// pushing never allocates).
#[derive(Debug)]
pub struct RetainedBlocks {
    slots: Vec<(u8, [u8; MAX_BLOCK_LEN])>,
    /// Sequence of the oldest held block.
    first: u64,
    /// One past the newest.
    next: u64,
}

impl RetainedBlocks {
    /// Room for `capacity` (≥ 1) blocks; the first pushed gets `first_seq`.
    pub fn new(capacity: usize, first_seq: u64) -> RetainedBlocks {
        RetainedBlocks {
            slots: vec![(0, [0u8; MAX_BLOCK_LEN]); capacity.max(1)],
            first: first_seq,
            next: first_seq,
        }
    }

    /// Appends the next block (at most [`MAX_BLOCK_LEN`] bytes, longer is
    /// cut), evicting the oldest when full.
    pub fn push(&mut self, block: &[u8]) {
        let cap = self.slots.len() as u64;
        let n = block.len().min(MAX_BLOCK_LEN);
        let slot = &mut self.slots[(self.next % cap) as usize];
        slot.0 = n as u8;
        slot.1[..n].copy_from_slice(&block[..n]);
        self.next += 1;
        if self.next - self.first > cap {
            self.first = self.next - cap;
        }
    }

    /// One past the newest block.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Continues at `seq` after a jump of the stream
    /// ([`Publisher::skip_to`](crate::Publisher::skip_to)): the window
    /// must be contiguous, so what it held is forgotten and the next block
    /// pushed gets `seq`. A `seq` at or below the next changes nothing.
    pub fn skip_to(&mut self, seq: u64) {
        if seq > self.next {
            self.first = seq;
            self.next = seq;
        }
    }
}

impl RetransmitSource for RetainedBlocks {
    fn first_held(&self) -> u64 {
        self.first
    }

    fn blocks(&mut self, from: u64, count: u64, f: &mut dyn FnMut(&[u8]) -> bool) -> Result<u64, FeedError> {
        let cap = self.slots.len() as u64;
        let mut given = 0;
        let mut seq = from.max(self.first);
        if seq != from {
            return Ok(0);
        }
        while given < count && seq < self.next {
            let (n, b) = &self.slots[(seq % cap) as usize];
            if !f(&b[..usize::from(*n)]) {
                break;
            }
            given += 1;
            seq += 1;
        }
        Ok(given)
    }
}

/// Counters of one re-request server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RerequestStats {
    /// Datagrams received.
    pub received: u64,
    /// Requests answered with at least one message.
    pub served: u64,
    /// Messages sent in answers.
    pub messages: u64,
    /// Packets sent in answers (an answer may span several).
    pub packets: u64,
    /// Requests for another session.
    pub ignored_session: u64,
    /// Requests starting at or after the next publishable sequence (or at 0).
    pub ignored_future: u64,
    /// Requests for sequences no longer held.
    pub ignored_unavailable: u64,
    /// Requests dropped by the requester's token bucket.
    pub rate_limited: u64,
    /// Datagrams that are not a retransmission request.
    pub malformed: u64,
    /// Answers the socket refused (the requester asks again).
    pub send_failed: u64,
}

/// A requester's token bucket (messages).
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Answers retransmission requests for one stream.
pub struct RerequestServer {
    socket: UdpSocket,
    session: SessionName,
    max_count: u16,
    /// Most packets one answer spans.
    max_packets: u16,
    max_payload: usize,
    min_block: usize,
    rate: u32,
    buckets: HashMap<SocketAddr, Bucket>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    stats: RerequestStats,
}

impl std::fmt::Debug for RerequestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RerequestServer")
            .field("local", &self.socket.local_addr().ok())
            .field("stats", &self.stats)
            .finish()
    }
}

impl RerequestServer {
    /// Binds `addr` (non-blocking) for the stream named `session`, whose
    /// smallest block is `min_block` bytes (sizes the rate limiter's
    /// burst: one packet of such blocks, at most `max_count`).
    pub fn bind(
        addr: SocketAddr,
        session: SessionName,
        max_count: u16,
        max_payload: usize,
        min_block: usize,
        rate: u32,
    ) -> Result<RerequestServer, FeedError> {
        let socket = UdpSocket::bind(addr).map_err(|e| FeedError::io("bind re-request server", addr, e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| FeedError::io("re-request socket options", addr, e))?;
        let max_payload = max_payload.clamp(HEADER_LEN + 2, peregrine_wire::moldudp64::MAX_PAYLOAD);
        Ok(RerequestServer {
            socket,
            session,
            max_count: max_count.clamp(1, END_OF_SESSION - 1),
            max_packets: 1,
            max_payload,
            min_block,
            rate,
            buckets: HashMap::new(),
            rx: vec![0u8; 2048],
            tx: vec![0u8; max_payload],
            stats: RerequestStats::default(),
        })
    }

    /// Lets one answer span up to `packets` full packets (at least 1; the
    /// default is 1, one packet per request as NASDAQ's servers answer).
    /// A consumer far behind then catches up `packets` times faster per
    /// round trip; the token bucket's burst grows to one such answer.
    pub fn with_max_packets(mut self, packets: u16) -> Self {
        self.max_packets = packets.max(1);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Counters so far.
    pub fn stats(&self) -> RerequestStats {
        self.stats
    }

    /// Handles up to `max` pending requests without blocking; `limit` is
    /// the next publishable sequence (requests at or past it are ignored).
    /// Returns how many datagrams were handled.
    pub fn poll(
        &mut self,
        source: &mut dyn RetransmitSource,
        limit: u64,
        now: Instant,
        max: usize,
    ) -> Result<usize, FeedError> {
        let mut handled = 0;
        while handled < max {
            let (n, from) = match self.socket.recv_from(&mut self.rx) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors of earlier answers surface here: not ours to fix.
                Err(_) => {
                    handled += 1;
                    continue;
                }
            };
            handled += 1;
            self.stats.received += 1;
            let Some(req) = RetransmissionRequest::parse(&self.rx[..n]) else {
                self.stats.malformed += 1;
                continue;
            };
            self.answer(source, req, from, limit, now)?;
        }
        Ok(handled)
    }

    /// Validates, limits and answers one request.
    pub fn answer(
        &mut self,
        source: &mut dyn RetransmitSource,
        req: RetransmissionRequest,
        from: SocketAddr,
        limit: u64,
        now: Instant,
    ) -> Result<(), FeedError> {
        if req.session != self.session {
            self.stats.ignored_session += 1;
            return Ok(());
        }
        if req.sequence == 0 || req.sequence >= limit {
            self.stats.ignored_future += 1;
            return Ok(());
        }
        if req.sequence < source.first_held() {
            self.stats.ignored_unavailable += 1;
            return Ok(());
        }
        let mut want = u64::from(req.count.min(self.max_count)).min(limit - req.sequence);
        if self.rate > 0 {
            let burst = self.burst();
            if self.buckets.len() >= MAX_REQUESTERS && !self.buckets.contains_key(&from) {
                let rate = f64::from(self.rate);
                self.buckets
                    .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
                if self.buckets.len() >= MAX_REQUESTERS {
                    self.buckets.clear();
                }
            }
            let b = self.buckets.entry(from).or_insert(Bucket {
                tokens: burst,
                at: now,
            });
            b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * f64::from(self.rate)).min(burst);
            b.at = now;
            if b.tokens < 1.0 {
                self.stats.rate_limited += 1;
                return Ok(());
            }
            want = want.min(b.tokens as u64);
        }
        // The answer: full packets of blocks from the source, at most
        // `max_packets` of them, until `want` messages are sent.
        let (mut seq, mut left) = (req.sequence, want);
        let mut sent = 0u64;
        let mut refused = false;
        for _ in 0..self.max_packets {
            if left == 0 {
                break;
            }
            let (given, len) = match self.build(source, seq, left) {
                Ok(x) => x,
                Err(FeedError::Journal(JournalError::OutOfRange { .. })) => (0, 0),
                Err(e) => return Err(e),
            };
            if given == 0 {
                break;
            }
            match self.socket.send_to(&self.tx[..len], from) {
                Ok(_) => {
                    self.stats.packets += 1;
                    sent += given;
                    seq += given;
                    left -= given;
                }
                Err(e) => {
                    // The requester asks again for what it still misses.
                    self.stats.send_failed += 1;
                    refused = true;
                    if !is_transient(&e) {
                        tracing::debug!(%from, error = %e, "re-request answer not sent");
                    }
                    break;
                }
            }
        }
        if sent == 0 {
            if !refused {
                // The source holds nothing from the requested sequence.
                self.stats.ignored_unavailable += 1;
            }
            return Ok(());
        }
        if let Some(b) = self.buckets.get_mut(&from) {
            b.tokens -= sent as f64;
        }
        self.stats.served += 1;
        self.stats.messages += sent;
        Ok(())
    }

    /// Writes into `tx` one packet of blocks from `seq` (at most `left`
    /// of them, as many as fit); returns (blocks, packet length).
    fn build(
        &mut self,
        source: &mut dyn RetransmitSource,
        seq: u64,
        left: u64,
    ) -> Result<(u64, usize), FeedError> {
        let Some(mut packet) = MoldBuilder::new(&mut self.tx[..self.max_payload], &self.session, seq) else {
            return Ok((0, 0));
        };
        let given = source.blocks(seq, left, &mut |block: &[u8]| packet.push(block))?;
        Ok((given, packet.finish()))
    }

    /// The token bucket's burst: one maximal answer.
    fn burst(&self) -> f64 {
        let per_answer = u32::from(self.per_packet_max()) * u32::from(self.max_packets);
        f64::from(u32::from(self.max_count).min(per_answer))
    }

    /// Most blocks of the smallest kind one answer packet holds.
    fn per_packet_max(&self) -> u16 {
        ((self.max_payload - HEADER_LEN) / (2 + self.min_block)).clamp(1, usize::from(u16::MAX - 1)) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(src: &mut dyn RetransmitSource, from: u64, count: u64) -> Vec<u8> {
        let mut v = Vec::new();
        src.blocks(from, count, &mut |b| {
            v.push(b[0]);
            true
        })
        .unwrap();
        v
    }

    #[test]
    fn retained_blocks_keep_the_newest_window() {
        let mut r = RetainedBlocks::new(4, 1);
        for i in 1..=10u8 {
            r.push(&[i; 32]);
        }
        assert_eq!((r.first_held(), r.next_seq()), (7, 11));
        assert_eq!(collect(&mut r, 7, 10), vec![7, 8, 9, 10]);
        assert_eq!(collect(&mut r, 8, 2), vec![8, 9]);
        assert_eq!(collect(&mut r, 3, 5), Vec::<u8>::new(), "evicted");
        assert_eq!(collect(&mut r, 11, 5), Vec::<u8>::new(), "not yet");
        // A refusing callback stops the walk.
        let mut n = 0;
        let given = r
            .blocks(7, 4, &mut |_| {
                n += 1;
                n < 3
            })
            .unwrap();
        assert_eq!(given, 2);
    }
}
