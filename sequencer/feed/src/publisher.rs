//! [`Publisher`]: one MoldUDP64 stream. Packs blocks into packets, sends
//! each packet to every destination, keeps the stream alive with
//! heartbeats and ends it with End of Session.
//!
//! Never drops: a packet that the socket refuses for now (`EAGAIN`,
//! `ENOBUFS`) stays queued, with the destinations it still owes, and the
//! next [`Publisher::flush`] resumes exactly there; the caller sees
//! [`Publisher::queued_packets`] grow and stops reading the journal (the
//! stream simply lags). Packet buffers are recycled through a free list,
//! so in steady state nothing is allocated.
//!
//! Sends are one `sendto` per packet and destination. A packet carries up
//! to ten 136-byte record blocks at the default 1,472-byte payload, which
//! already spreads one system call over ten records. `peregrine_netio`'s
//! `UdpPort` batches with `sendmmsg`, but it drops what is left of a batch
//! after its retries, and the feed must never drop; calling `sendmmsg`
//! here directly would need `unsafe` in this crate for a small gain.

use peregrine_wire::moldudp64::{
    session_name, write_header_only, SessionName, END_OF_SESSION, HEADER_LEN, HEARTBEAT,
};
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Where packets go: a UDP socket, or a test/bench sink.
pub trait PacketSink: Send {
    /// Sends one datagram to `dst`. `Err` of kind `WouldBlock` (or
    /// `ENOBUFS`) means "not now": the same datagram is offered again later.
    fn send_to(&mut self, packet: &[u8], dst: SocketAddr) -> io::Result<()>;
}

impl PacketSink for UdpSocket {
    fn send_to(&mut self, packet: &[u8], dst: SocketAddr) -> io::Result<()> {
        UdpSocket::send_to(self, packet, dst).map(|_| ())
    }
}

/// A sink that counts and discards (benchmarks, tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink {
    /// Datagrams taken.
    pub packets: u64,
    /// Bytes taken.
    pub bytes: u64,
}

impl PacketSink for NullSink {
    fn send_to(&mut self, packet: &[u8], _dst: SocketAddr) -> io::Result<()> {
        self.packets += 1;
        self.bytes += packet.len() as u64;
        Ok(())
    }
}

/// True for the errors that mean "the socket cannot take it now".
pub(crate) fn is_transient(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS)
}

/// Counters of one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Data packets sent (to every destination).
    pub packets: u64,
    /// Blocks accepted into packets.
    pub blocks: u64,
    /// Heartbeats sent.
    pub heartbeats: u64,
    /// Bytes handed to the socket, all destinations.
    pub bytes: u64,
    /// Sends refused for now (retried later).
    pub would_block: u64,
    /// Sends that failed otherwise (that destination skipped for that
    /// packet; e.g. ICMP port unreachable reported on a unicast socket).
    pub send_errors: u64,
    /// End of Session packets sent.
    pub end_of_session: u64,
    /// Sequences passed over by [`Publisher::skip_to`].
    pub skipped: u64,
}

/// A sealed packet waiting for (some of) its destinations.
struct Queued {
    buf: Vec<u8>,
    len: usize,
    /// Destinations `0..sent_to` have it.
    sent_to: usize,
}

/// One MoldUDP64 stream's sending side.
pub struct Publisher {
    session: SessionName,
    sink: Box<dyn PacketSink>,
    destinations: Vec<SocketAddr>,
    max_payload: usize,
    heartbeat: Duration,
    /// The packet being filled: header space, then blocks.
    building: Vec<u8>,
    build_len: usize,
    build_count: u16,
    build_seq: u64,
    queue: VecDeque<Queued>,
    pool: Vec<Vec<u8>>,
    next_seq: u64,
    last_send: Instant,
    stats: PublisherStats,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("session", &String::from_utf8_lossy(&self.session))
            .field("destinations", &self.destinations)
            .field("next_seq", &self.next_seq)
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl Publisher {
    /// A stream named `session` whose first block gets sequence
    /// `first_seq`, sending through `sink` to every address in
    /// `destinations`, packets of at most `max_payload` bytes (clamped to
    /// 1472), a heartbeat after `heartbeat` without a send.
    pub fn new(
        session: &str,
        first_seq: u64,
        sink: Box<dyn PacketSink>,
        destinations: Vec<SocketAddr>,
        max_payload: usize,
        heartbeat: Duration,
    ) -> Publisher {
        let max_payload = max_payload.clamp(HEADER_LEN + 2, peregrine_wire::moldudp64::MAX_PAYLOAD);
        Publisher {
            session: session_name(session),
            sink,
            destinations,
            max_payload,
            heartbeat,
            building: vec![0u8; max_payload],
            build_len: HEADER_LEN,
            build_count: 0,
            build_seq: first_seq,
            queue: VecDeque::with_capacity(64),
            pool: Vec::with_capacity(64),
            next_seq: first_seq,
            last_send: Instant::now(),
            stats: PublisherStats::default(),
        }
    }

    /// Sequence the next pushed block gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The wire session name.
    pub fn session(&self) -> &SessionName {
        &self.session
    }

    /// Sealed packets not yet sent to every destination.
    pub fn queued_packets(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is queued or being built.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.build_count == 0
    }

    /// Counters so far.
    pub fn stats(&self) -> PublisherStats {
        self.stats
    }

    /// Largest block that fits in a packet.
    pub fn max_block(&self) -> usize {
        self.max_payload - HEADER_LEN - 2
    }

    /// Appends `block` (at most [`max_block`](Self::max_block) bytes) to
    /// the packet being built, sealing that packet first when the block
    /// does not fit; returns the block's sequence. An oversized block is
    /// refused (`None`, nothing changes).
    pub fn push(&mut self, block: &[u8]) -> Option<u64> {
        if block.len() > self.max_block() {
            return None;
        }
        if self.build_len + 2 + block.len() > self.max_payload || self.build_count >= END_OF_SESSION - 1 {
            self.seal();
        }
        let at = self.build_len;
        self.building[at..at + 2].copy_from_slice(&(block.len() as u16).to_be_bytes());
        self.building[at + 2..at + 2 + block.len()].copy_from_slice(block);
        self.build_len += 2 + block.len();
        self.build_count += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.stats.blocks += 1;
        Some(seq)
    }

    /// Moves the stream forward to `seq` without blocks for the sequences
    /// in between (the records are not held here any more: a cluster node
    /// that installed a snapshot). The packet being built is sealed first,
    /// so packets already queued keep their numbers; consumers see a gap
    /// and re-request it elsewhere. A `seq` at or below the next sequence
    /// changes nothing. Returns how many sequences were skipped.
    pub fn skip_to(&mut self, seq: u64) -> u64 {
        if seq <= self.next_seq {
            return 0;
        }
        self.seal();
        let skipped = seq - self.next_seq;
        self.next_seq = seq;
        self.build_seq = seq;
        self.stats.skipped += skipped;
        skipped
    }

    /// Closes the packet being built (if it holds a block) and queues it.
    pub fn seal(&mut self) {
        if self.build_count == 0 {
            return;
        }
        let mut h = [0u8; HEADER_LEN];
        write_header_only(&mut h, &self.session, self.build_seq, self.build_count);
        self.building[..HEADER_LEN].copy_from_slice(&h);
        let fresh = self.pool.pop().unwrap_or_else(|| vec![0u8; self.max_payload]);
        let buf = std::mem::replace(&mut self.building, fresh);
        self.queue.push_back(Queued {
            buf,
            len: self.build_len,
            sent_to: 0,
        });
        self.build_len = HEADER_LEN;
        self.build_count = 0;
        self.build_seq = self.next_seq;
    }

    /// Sends queued packets in order until all are out or the socket
    /// refuses one for now. Returns true when the queue is empty.
    pub fn flush(&mut self, now: Instant) -> bool {
        while let Some(q) = self.queue.front_mut() {
            while q.sent_to < self.destinations.len() {
                let dst = self.destinations[q.sent_to];
                match self.sink.send_to(&q.buf[..q.len], dst) {
                    Ok(()) => {
                        self.stats.bytes += q.len as u64;
                        q.sent_to += 1;
                    }
                    Err(e) if is_transient(&e) => {
                        self.stats.would_block += 1;
                        return false;
                    }
                    Err(e) => {
                        self.stats.send_errors += 1;
                        tracing::debug!(%dst, error = %e, "feed send failed; destination skipped for this packet");
                        q.sent_to += 1;
                    }
                }
            }
            self.stats.packets += 1;
            self.last_send = now;
            if let Some(done) = self.queue.pop_front() {
                self.pool.push(done.buf);
            }
        }
        true
    }

    /// Sends a heartbeat (count 0, sequence = next sequence) when nothing
    /// was sent for the heartbeat interval and nothing is pending. Returns
    /// true when one went out.
    pub fn heartbeat_if_due(&mut self, now: Instant) -> bool {
        if !self.is_idle() || now.duration_since(self.last_send) < self.heartbeat {
            return false;
        }
        self.send_header_only(HEARTBEAT);
        self.stats.heartbeats += 1;
        self.last_send = now;
        true
    }

    /// Ends the stream: seals and sends what is pending (retrying a
    /// refused send for up to `drain`), then sends End of Session (count
    /// 0xFFFF, sequence = next sequence) `repeats` times.
    pub fn end_of_session(&mut self, drain: Duration, repeats: u32) {
        self.seal();
        let deadline = Instant::now() + drain;
        while !self.flush(Instant::now()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(100));
        }
        for i in 0..repeats {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.send_header_only(END_OF_SESSION);
            self.stats.end_of_session += 1;
        }
    }

    /// A block-less packet to every destination, best effort (a refused
    /// heartbeat is not retried: the next one follows).
    fn send_header_only(&mut self, count: u16) {
        let mut h = [0u8; HEADER_LEN];
        write_header_only(&mut h, &self.session, self.next_seq, count);
        for &dst in &self.destinations {
            match self.sink.send_to(&h, dst) {
                Ok(()) => self.stats.bytes += HEADER_LEN as u64,
                Err(e) if is_transient(&e) => self.stats.would_block += 1,
                Err(_) => self.stats.send_errors += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_wire::moldudp64::MoldPacket;
    use std::sync::{Arc, Mutex};

    type Sent = Arc<Mutex<Vec<(SocketAddr, Vec<u8>)>>>;

    /// Records datagrams; refuses sends while `blocked`.
    #[derive(Clone, Default)]
    struct Recorder {
        sent: Sent,
        blocked: Arc<Mutex<bool>>,
    }

    impl PacketSink for Recorder {
        fn send_to(&mut self, packet: &[u8], dst: SocketAddr) -> io::Result<()> {
            if *self.blocked.lock().unwrap() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.sent.lock().unwrap().push((dst, packet.to_vec()));
            Ok(())
        }
    }

    #[test]
    fn packs_to_the_payload_keeps_refused_packets_and_heartbeats() {
        let rec = Recorder::default();
        let dsts: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap()];
        let mut p = Publisher::new(
            "TEST",
            5,
            Box::new(rec.clone()),
            dsts.clone(),
            1472,
            Duration::from_millis(10),
        );
        *rec.blocked.lock().unwrap() = true;
        for i in 0..25u8 {
            assert_eq!(p.push(&[i; 136]), Some(5 + u64::from(i)));
        }
        p.seal();
        assert_eq!(p.queued_packets(), 3, "10 + 10 + 5 blocks");
        assert!(!p.flush(Instant::now()));
        assert!(rec.sent.lock().unwrap().is_empty());
        *rec.blocked.lock().unwrap() = false;
        assert!(p.flush(Instant::now()));
        let sent = rec.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 6);
        let mut want_seq = 5;
        for pair in sent.chunks(2) {
            assert_eq!((pair[0].0, pair[1].0), (dsts[0], dsts[1]));
            assert_eq!(pair[0].1, pair[1].1);
            let pk = MoldPacket::new_checked(&pair[0].1).unwrap();
            assert!(pair[0].1.len() <= 1472);
            assert_eq!(pk.sequence(), want_seq);
            for (k, b) in pk.blocks().enumerate() {
                assert_eq!(b, &[(want_seq - 5) as u8 + k as u8; 136][..]);
            }
            want_seq += u64::from(pk.count());
        }
        assert_eq!(want_seq, 30);
        assert_eq!(p.stats().packets, 3);
        assert!(p.push(&[0u8; 1451]).is_none(), "oversized block refused");

        std::thread::sleep(Duration::from_millis(15));
        assert!(p.heartbeat_if_due(Instant::now()));
        assert!(!p.heartbeat_if_due(Instant::now()), "not again right away");
        p.end_of_session(Duration::from_millis(10), 3);
        let sent = rec.sent.lock().unwrap().clone();
        let tail: Vec<_> = sent[6..]
            .iter()
            .map(|(_, b)| {
                let pk = MoldPacket::new_checked(b).unwrap();
                (pk.sequence(), pk.count())
            })
            .collect();
        assert_eq!(
            tail,
            vec![
                (30, 0),
                (30, 0),
                (30, 0xFFFF),
                (30, 0xFFFF),
                (30, 0xFFFF),
                (30, 0xFFFF),
                (30, 0xFFFF),
                (30, 0xFFFF)
            ]
        );
    }
}
