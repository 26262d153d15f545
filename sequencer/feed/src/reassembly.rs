//! [`Reassembler`]: the consumer's logic without sockets: takes packets in
//! any order (multicast, retransmissions, duplicates), holds out-of-order
//! blocks in a bounded window, hands blocks out strictly in sequence, each
//! exactly once, and says when and what to re-request.
//!
//! The window is a ring of `buffer` fixed-size slots indexed by sequence,
//! covering `next_seq .. next_seq + buffer`; it is allocated once. A block
//! beyond the window is dropped and counted (it is asked for again once
//! the window moves), so memory stays bounded however far ahead the
//! stream runs. Every packet is checked whole (framing, then every block
//! with the stream's block check) before any of it is used: a malformed
//! packet is counted and changes nothing.

use crate::block::MAX_BLOCK_LEN;
use peregrine_wire::moldudp64::{session_name, MoldPacket, RetransmissionRequest, SessionName};
use std::time::{Duration, Instant};

/// Counters of a consumer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Packets of our session taken (data, heartbeat, end of session).
    pub packets: u64,
    /// Blocks stored for delivery (each sequence once).
    pub records: u64,
    /// Blocks delivered.
    pub delivered: u64,
    /// Packets that revealed sequences beyond everything seen before with
    /// a hole in between.
    pub gaps: u64,
    /// Re-requests sent.
    pub requests: u64,
    /// Times the consumer moved on to its next re-request server (a
    /// request went unanswered).
    pub server_switches: u64,
    /// Blocks already delivered, already held, or before the start.
    pub duplicates: u64,
    /// Blocks beyond the window (dropped; asked for again later).
    pub overflow: u64,
    /// Packets of other sessions.
    pub foreign_sessions: u64,
    /// Datagrams that are not valid packets of this stream.
    pub malformed: u64,
    /// Heartbeats seen.
    pub heartbeats: u64,
}

/// One window slot.
#[derive(Clone, Copy)]
struct Slot {
    seq: u64,
    len: u8,
    full: bool,
    data: [u8; MAX_BLOCK_LEN],
}

/// The socket-free consumer state machine.
pub struct Reassembler {
    session: Option<SessionName>,
    check: fn(&[u8]) -> bool,
    next_seq: u64,
    /// One past the highest sequence known to exist.
    high: u64,
    window: Vec<Slot>,
    eos_seq: Option<u64>,
    last_rx: Option<Instant>,
    /// (first sequence asked, one past the last, when).
    last_request: Option<(u64, u64, Instant)>,
    heartbeat_timeout: Duration,
    request_timeout: Duration,
    max_request: u16,
    stats: ConsumerStats,
}

impl std::fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("next_seq", &self.next_seq)
            .field("high", &self.high)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Reassembler {
    /// Starts at `from_seq` (≥ 1; 0 is taken as 1); `session` `None`
    /// adopts the first seen; `check` validates each block; `buffer` slots
    /// (≥ 1) of window.
    pub fn new(
        session: Option<&str>,
        from_seq: u64,
        buffer: usize,
        check: fn(&[u8]) -> bool,
        heartbeat_timeout: Duration,
        request_timeout: Duration,
        max_request: u16,
    ) -> Reassembler {
        let from_seq = from_seq.max(1);
        Reassembler {
            session: session.map(session_name),
            check,
            next_seq: from_seq,
            high: from_seq,
            window: vec![
                Slot {
                    seq: 0,
                    len: 0,
                    full: false,
                    data: [0u8; MAX_BLOCK_LEN],
                };
                buffer.max(1)
            ],
            eos_seq: None,
            last_rx: None,
            last_request: None,
            heartbeat_timeout,
            request_timeout,
            max_request: max_request.max(1),
            stats: ConsumerStats::default(),
        }
    }

    /// Next sequence to deliver.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The session followed (once known).
    pub fn session(&self) -> Option<&SessionName> {
        self.session.as_ref()
    }

    /// End of Session seen and everything before it delivered.
    pub fn end_of_session(&self) -> bool {
        self.eos_seq.is_some_and(|e| self.next_seq >= e)
    }

    /// Counters.
    pub fn stats(&self) -> ConsumerStats {
        self.stats
    }

    /// Takes one datagram (any bytes).
    pub fn on_packet(&mut self, data: &[u8], now: Instant) {
        let Ok(p) = MoldPacket::new_checked(data) else {
            self.stats.malformed += 1;
            return;
        };
        match &self.session {
            Some(s) if *s != p.session() => {
                self.stats.foreign_sessions += 1;
                return;
            }
            Some(_) => {}
            None => self.session = Some(p.session()),
        }
        let seq = p.sequence();
        if p.is_end_of_session() || p.is_heartbeat() {
            if seq == 0 {
                self.stats.malformed += 1;
                return;
            }
            self.stats.packets += 1;
            self.last_rx = Some(now);
            if p.is_end_of_session() {
                self.eos_seq = Some(self.eos_seq.map_or(seq, |e| e.max(seq)));
            } else {
                self.stats.heartbeats += 1;
            }
            self.see_up_to(seq);
            return;
        }
        let count = u64::from(p.count());
        let Some(end) = seq.checked_add(count).filter(|_| seq != 0) else {
            self.stats.malformed += 1;
            return;
        };
        if !p.blocks().all(|b| b.len() <= MAX_BLOCK_LEN && (self.check)(b)) {
            self.stats.malformed += 1;
            return;
        }
        self.stats.packets += 1;
        self.last_rx = Some(now);
        if seq > self.high {
            self.stats.gaps += 1;
        }
        self.see_up_to(end);
        let cap = self.window.len() as u64;
        for (i, b) in p.blocks().enumerate() {
            let s = seq + i as u64;
            if s < self.next_seq {
                self.stats.duplicates += 1;
                continue;
            }
            if s - self.next_seq >= cap {
                self.stats.overflow += 1;
                continue;
            }
            let slot = &mut self.window[(s % cap) as usize];
            if slot.full && slot.seq == s {
                self.stats.duplicates += 1;
                continue;
            }
            slot.seq = s;
            slot.full = true;
            slot.len = b.len() as u8;
            slot.data[..b.len()].copy_from_slice(b);
            self.stats.records += 1;
        }
    }

    fn see_up_to(&mut self, end: u64) {
        self.high = self.high.max(end);
    }

    /// Hands out every block that is next in sequence, in order; returns
    /// how many.
    pub fn deliver(&mut self, f: &mut dyn FnMut(u64, &[u8])) -> usize {
        let cap = self.window.len() as u64;
        let mut n = 0;
        loop {
            let slot = &mut self.window[(self.next_seq % cap) as usize];
            if !(slot.full && slot.seq == self.next_seq) {
                break;
            }
            slot.full = false;
            f(self.next_seq, &slot.data[..usize::from(slot.len)]);
            self.next_seq += 1;
            n += 1;
        }
        self.stats.delivered += n as u64;
        n
    }

    /// The request to send now, if any (and notes it as sent):
    /// * a gap (something after `next_seq` is known to exist): from
    ///   `next_seq`, up to the first held block, at most `max_request`;
    ///   again after `request_timeout` if no progress was made;
    /// * silence for `heartbeat_timeout` (the tail may be lost): from
    ///   `next_seq`, `max_request`, at most once per `heartbeat_timeout`.
    ///
    /// Nothing before the session is known, or once End of Session is
    /// complete.
    pub fn due_request(&mut self, now: Instant) -> Option<RetransmissionRequest> {
        let session = self.session?;
        if self.end_of_session() {
            return None;
        }
        let since = |t: Instant| now.saturating_duration_since(t);
        // A request still being answered (its answer may span packets, and
        // `next_seq` moves as they arrive) is not asked again before its
        // timeout: only what it did not cover is.
        let in_flight = self.last_request.filter(|&(s, end, t)| {
            s <= self.next_seq && self.next_seq < end && since(t) < self.request_timeout
        });
        let count = if self.high > self.next_seq {
            if in_flight.is_some() {
                return None;
            }
            let cap = self.window.len() as u64;
            let limit = (self.high - self.next_seq)
                .min(cap)
                .min(u64::from(self.max_request));
            let mut gap = 1;
            while gap < limit {
                let s = self.next_seq + gap;
                let slot = &self.window[(s % cap) as usize];
                if slot.full && slot.seq == s {
                    break;
                }
                gap += 1;
            }
            gap as u16
        } else {
            let silent = self.last_rx.is_some_and(|t| since(t) >= self.heartbeat_timeout);
            if !silent
                || self
                    .last_request
                    .is_some_and(|(_, _, t)| since(t) < self.heartbeat_timeout)
            {
                return None;
            }
            self.max_request
        };
        self.last_request = Some((self.next_seq, self.next_seq + u64::from(count), now));
        self.stats.requests += 1;
        Some(RetransmissionRequest {
            session,
            sequence: self.next_seq,
            count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_wire::moldudp64::{write_header_only, MoldBuilder, END_OF_SESSION, HEADER_LEN};

    fn pkt(seq: u64, blocks: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 1472];
        let mut b = MoldBuilder::new(&mut buf, &session_name("S"), seq).unwrap();
        for &x in blocks {
            assert!(b.push(&[x; 4]));
        }
        let n = b.finish();
        buf.truncate(n);
        buf
    }

    fn ok(_: &[u8]) -> bool {
        true
    }

    fn drain(r: &mut Reassembler) -> Vec<u64> {
        let mut v = Vec::new();
        r.deliver(&mut |s, b| {
            assert_eq!(b, &[s as u8; 4]);
            v.push(s)
        });
        v
    }

    #[test]
    fn an_answer_arriving_in_parts_is_not_asked_again_before_its_timeout() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Reassembler::new(Some("S"), 1, 64, ok, ms(100), ms(10), 50);
        r.on_packet(&pkt(1, &[1]), t0);
        r.on_packet(&pkt(30, &[30]), t0);
        assert_eq!(drain(&mut r), vec![1]);
        let q = r.due_request(t0).unwrap();
        assert_eq!((q.sequence, q.count), (2, 28));
        // The first packet of a multi-packet answer: 2..=5.
        r.on_packet(&pkt(2, &[2, 3, 4, 5]), t0 + ms(1));
        assert_eq!(drain(&mut r), vec![2, 3, 4, 5]);
        assert_eq!(r.due_request(t0 + ms(2)), None, "6..30 is still on its way");
        let q = r.due_request(t0 + ms(11)).unwrap();
        assert_eq!(
            (q.sequence, q.count),
            (6, 24),
            "after the timeout, only what is missing"
        );
    }

    #[test]
    fn gap_is_requested_then_filled_in_order() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Reassembler::new(Some("S"), 1, 8, ok, ms(100), ms(10), 50);
        r.on_packet(&pkt(1, &[1, 2]), t0);
        assert_eq!(drain(&mut r), vec![1, 2]);
        assert_eq!(r.due_request(t0), None);
        r.on_packet(&pkt(6, &[6, 7]), t0);
        assert_eq!(drain(&mut r), Vec::<u64>::new());
        let q = r.due_request(t0).unwrap();
        assert_eq!((q.sequence, q.count), (3, 3));
        assert_eq!(r.due_request(t0 + ms(5)), None, "not again before the timeout");
        assert!(r.due_request(t0 + ms(11)).is_some(), "again after it");
        // Beyond the window (3 + 8): dropped, counted.
        r.on_packet(&pkt(11, &[11, 12]), t0);
        assert_eq!(r.stats().overflow, 2);
        r.on_packet(&pkt(3, &[3, 4, 5]), t0);
        r.on_packet(&pkt(3, &[3, 4, 5]), t0);
        assert_eq!(drain(&mut r), vec![3, 4, 5, 6, 7]);
        assert_eq!(r.stats().duplicates, 3);
        let q = r.due_request(t0 + ms(20)).unwrap();
        assert_eq!((q.sequence, q.count), (8, 5), "up to what exists: 8..13");
        // Foreign session and garbage change nothing.
        let mut other = pkt(8, &[8]);
        other[0] = b'X';
        r.on_packet(&other, t0);
        r.on_packet(&[1, 2, 3], t0);
        assert_eq!((r.stats().foreign_sessions, r.stats().malformed), (1, 1));
        assert_eq!(r.next_seq(), 8);
        // End of session at 13 completes once 8..13 arrive.
        let mut h = [0u8; HEADER_LEN];
        write_header_only(&mut h, &session_name("S"), 13, END_OF_SESSION);
        r.on_packet(&h, t0);
        assert!(!r.end_of_session());
        r.on_packet(&pkt(8, &[8, 9, 10, 11, 12]), t0);
        assert_eq!(drain(&mut r), vec![8, 9, 10, 11, 12]);
        assert!(r.end_of_session());
        assert_eq!(r.due_request(t0 + ms(1000)), None);
    }

    #[test]
    fn silence_asks_for_the_tail_and_late_joiner_asks_for_the_start() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Reassembler::new(None, 1, 64, ok, ms(100), ms(10), 20);
        assert_eq!(r.due_request(t0 + ms(500)), None, "no session known yet");
        r.on_packet(&pkt(40, &[40]), t0);
        let q = r.due_request(t0).unwrap();
        assert_eq!((q.sequence, q.count, q.session), (1, 20, session_name("S")));
        let mut r = Reassembler::new(Some("S"), 5, 64, ok, ms(100), ms(10), 20);
        r.on_packet(&pkt(1, &[1, 2, 3, 4, 5, 6]), t0);
        assert_eq!(drain(&mut r), vec![5, 6]);
        assert_eq!(r.due_request(t0 + ms(50)), None);
        let q = r.due_request(t0 + ms(100)).unwrap();
        assert_eq!((q.sequence, q.count), (7, 20));
        assert_eq!(r.due_request(t0 + ms(150)), None, "once per heartbeat timeout");
        assert!(r.due_request(t0 + ms(201)).is_some());
    }
}
