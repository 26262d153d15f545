//! UDP client: all sessions share one socket (sessions are told apart by
//! the MoldUDP64 session name, `PG` + 8 digits), datagrams batched with
//! `sendmmsg`/`recvmmsg` through the same netio port the server uses.

use super::flow::Flow;
use super::recorder::Reply;
use super::transport::{decode_reply, ClientTransport};
use peregrine_netio::{PacketBatch, Peer, Port, UdpOptions, UdpPort};
use peregrine_sequencer::wire::message::MESSAGE_LEN;
use peregrine_sequencer::wire::moldudp64::{MoldBuilder, MoldPacket, SessionName, MAX_MESSAGES_PER_PACKET};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

/// Session name of client session `i`.
pub fn client_session_name(i: usize) -> SessionName {
    let mut n = [b'0'; 10];
    n[0] = b'P';
    n[1] = b'G';
    let mut x = i;
    for k in (2..10).rev() {
        n[k] = b'0' + (x % 10) as u8;
        x /= 10;
    }
    n
}

/// Client session index from a session name made by [`client_session_name`].
pub fn client_session_index(n: &SessionName) -> Option<usize> {
    if &n[..2] != b"PG" {
        return None;
    }
    let mut v = 0usize;
    for &c in &n[2..] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as usize;
    }
    Some(v)
}

/// The UDP simulator's transport.
pub struct UdpClient {
    port: UdpPort,
    server: SocketAddr,
    tx: PacketBatch,
    rx: PacketBatch,
    names: Vec<SessionName>,
    next_seq: Vec<u64>,
    /// Retransmission timeout, ns (None: never retransmit).
    rto_ns: Option<u64>,
    /// Per session: messages sent and not yet answered, oldest first
    /// (consecutive client sequence numbers).
    outstanding: Vec<VecDeque<Outstanding>>,
    /// Per session: the server reported a sequence gap, resend now.
    fast: Vec<bool>,
    resent: u64,
}

/// A message kept for retransmission.
struct Outstanding {
    seq: u64,
    msg: [u8; MESSAGE_LEN],
    sent_ns: u64,
    answered: bool,
}

impl UdpClient {
    /// Binds an ephemeral loopback-or-any socket for `sessions` sessions
    /// talking to `server`.
    pub fn new(server: SocketAddr, sessions: usize) -> anyhow::Result<Self> {
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let port = UdpPort::bind(
            local,
            UdpOptions {
                max_batch: 64,
                ..UdpOptions::default()
            },
        )?;
        Ok(UdpClient {
            port,
            server,
            tx: PacketBatch::new(64),
            rx: PacketBatch::new(64),
            names: (0..sessions).map(client_session_name).collect(),
            next_seq: vec![1; sessions],
            rto_ns: None,
            outstanding: (0..sessions).map(|_| VecDeque::new()).collect(),
            fast: vec![false; sessions],
            resent: 0,
        })
    }

    /// Keeps every message until it is answered and resends it (with its
    /// original client sequence number) after `rto` without an answer.
    /// The server recognises the copy and answers with the original reply,
    /// so each message is sequenced exactly once.
    pub fn with_retransmission(mut self, rto: std::time::Duration) -> Self {
        self.rto_ns = Some(rto.as_nanos() as u64);
        self
    }

    /// Sends a raw datagram to the server (tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush()?;
        self.tx.push(Peer::Addr(self.server), bytes);
        self.flush()
    }
}

/// True for a Reject saying the server saw a client sequence gap.
fn is_gap_reject(block: &[u8]) -> bool {
    block.len() == MESSAGE_LEN
        && block[0] == peregrine_sequencer::wire::message::MessageType::Reject as u8
        && u16::from_le_bytes([block[4], block[5]])
            == peregrine_sequencer::wire::message::RejectReason::SequenceGap as u16
}

/// Marks message `seq` of session `s` answered and forgets the answered
/// prefix.
fn mark_answered(outstanding: &mut [VecDeque<Outstanding>], s: usize, seq: u64) {
    let Some(q) = outstanding.get_mut(s) else { return };
    let Some(front) = q.front() else { return };
    if seq < front.seq {
        return;
    }
    if let Some(o) = q.get_mut((seq - front.seq) as usize) {
        o.answered = true;
    }
    while q.front().is_some_and(|o| o.answered) {
        q.pop_front();
    }
}

impl ClientTransport for UdpClient {
    fn queue(&mut self, s: usize, n: usize, ts_ns: u64, flow: &mut Flow) -> io::Result<u64> {
        if self.tx.is_full() {
            self.flush()?;
        }
        let first = self.next_seq[s];
        let name = self.names[s];
        let Some(slot) = self.tx.next_slot() else {
            return Err(io::Error::other("tx batch full"));
        };
        let Some(mut b) = MoldBuilder::new(slot, &name, first) else {
            return Err(io::Error::other("slot too small"));
        };
        let mut msg = [0u8; MESSAGE_LEN];
        let mut k = 0;
        while k < n {
            flow.next(s, ts_ns, first + k as u64, &mut msg);
            if !b.push(&msg) {
                break;
            }
            if self.rto_ns.is_some() {
                self.outstanding[s].push_back(Outstanding {
                    seq: first + k as u64,
                    msg,
                    sent_ns: peregrine_netio::clock::now_ns(),
                    answered: false,
                });
            }
            k += 1;
        }
        let len = b.finish();
        self.tx.commit(Peer::Addr(self.server), len);
        self.next_seq[s] += k as u64;
        Ok(first)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.tx.is_empty() {
            self.port.send(&mut self.tx).map_err(io::Error::other)?;
        }
        Ok(())
    }

    fn poll(&mut self, f: &mut dyn FnMut(Reply, u64)) -> io::Result<usize> {
        let n = self.port.recv(&mut self.rx).map_err(io::Error::other)?;
        if n == 0 {
            return Ok(0);
        }
        let now = peregrine_netio::clock::now_ns();
        for i in 0..n {
            let (_, _, data) = self.rx.get(i);
            let Ok(p) = MoldPacket::new_checked(data) else {
                continue;
            };
            let Some(s) = client_session_index(&p.session()) else {
                continue;
            };
            let first = p.sequence();
            for (k, block) in p.blocks().enumerate() {
                if is_gap_reject(block) {
                    // The server is missing an earlier message: resend from
                    // the oldest unanswered one without waiting.
                    if let Some(f) = self.fast.get_mut(s) {
                        *f = true;
                    }
                    continue;
                }
                // A raw echo returns our own packet: its sequence is ours.
                if let Some(r) = decode_reply(s, block, first + k as u64) {
                    if self.rto_ns.is_some() && r.client_seq != 0 {
                        mark_answered(&mut self.outstanding, s, r.client_seq);
                    }
                    f(r, now);
                }
            }
        }
        Ok(n)
    }

    fn retransmit(&mut self, now_ns: u64) -> io::Result<usize> {
        let Some(rto) = self.rto_ns else { return Ok(0) };
        let mut resent = 0;
        for s in 0..self.outstanding.len() {
            // Go back N: the server takes a session's messages only in
            // order, so resend, in order, every unanswered message older
            // than the timeout (runs of up to 14 per datagram, at most 64
            // datagrams per session per call).
            let mut i = 0;
            let fast = std::mem::take(&mut self.fast[s]);
            for _ in 0..64 {
                let q = &self.outstanding[s];
                while q.get(i).is_some_and(|o| o.answered) {
                    i += 1;
                }
                let Some(o) = q.get(i) else { break };
                if !fast && now_ns.saturating_sub(o.sent_ns) < rto {
                    break;
                }
                let first = o.seq;
                if self.tx.is_full() {
                    self.flush()?;
                }
                let name = self.names[s];
                let Some(slot) = self.tx.next_slot() else { break };
                let Some(mut b) = MoldBuilder::new(slot, &name, first) else {
                    break;
                };
                let q = &mut self.outstanding[s];
                let mut n = 0;
                while let Some(o) = q.get_mut(i + n) {
                    if n == MAX_MESSAGES_PER_PACKET || !b.push(&o.msg) {
                        break;
                    }
                    o.sent_ns = now_ns;
                    n += 1;
                }
                let len = b.finish();
                self.tx.commit(Peer::Addr(self.server), len);
                resent += n;
                i += n;
            }
        }
        if resent > 0 {
            self.flush()?;
            self.resent += resent as u64;
        }
        Ok(resent)
    }

    fn retransmitted(&self) -> u64 {
        self.resent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_round_trip() {
        for i in [0, 1, 42, 99_999_999] {
            assert_eq!(client_session_index(&client_session_name(i)), Some(i));
        }
        assert_eq!(client_session_index(b"XX00000000"), None);
    }
}
