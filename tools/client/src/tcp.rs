//! TCP sessions: one SoupBinTCP connection per session, non-blocking after
//! login, partial writes kept and retried.
//!
//! TCP delivers in order and without loss, so there is no retransmission
//! here: a session that loses its connection logs in again (a failover
//! would do that on another node, asking for replies from the last one
//! received).

use crate::event::{decode_block, Event, LoginRejection};
use crate::names::session_name;
use crate::outbound::Outbound;
use crate::ClientError;
use peregrine_netio::clock::now_ns;
use peregrine_wire::message::MESSAGE_LEN;
use peregrine_wire::soupbintcp::{kind, parse_packet, write_login_request, write_packet, SoupPacket};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bytes of received stream kept per connection (many replies; a frame is
/// at most 103 bytes).
const INBUF: usize = 1 << 16;
/// Initial room for bytes waiting to be written per connection; it grows
/// only if the server stops reading for long.
const OUTBUF: usize = 1 << 20;

struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    out_start: usize,
    inbuf: Vec<u8>,
    in_len: usize,
    next_seq: u64,
    /// Our own messages echoed back (raw echo baseline).
    echoed: u64,
}

/// Any number of TCP sessions, one connection each.
pub struct TcpClient {
    conns: Vec<Conn>,
}

impl TcpClient {
    /// Connects `sessions` sessions named PG`first`, PG`first + 1`, ... to
    /// `servers[0]` and logs each in with `secret`, waiting up to 5 s for
    /// each answer; `raw`: the peer is a raw echo that speaks no SoupBinTCP
    /// (baseline), so no login. The other addresses are for a failover.
    pub fn connect(
        servers: &[SocketAddr],
        sessions: usize,
        first: usize,
        raw: bool,
        secret: &str,
    ) -> Result<Self, ClientError> {
        let server = *servers.first().ok_or(ClientError::NoServer)?;
        let mut conns = Vec::with_capacity(sessions);
        for s in 0..sessions {
            let mut stream = TcpStream::connect(server)?;
            stream.set_nodelay(true)?;
            if !raw {
                login(&mut stream, &session_name(first + s), secret)?;
            }
            stream.set_nonblocking(true)?;
            conns.push(Conn {
                stream,
                out: Vec::with_capacity(OUTBUF),
                out_start: 0,
                inbuf: vec![0u8; INBUF],
                in_len: 0,
                next_seq: 1,
                echoed: 0,
            });
        }
        Ok(TcpClient { conns })
    }

    /// Number of sessions.
    pub fn sessions(&self) -> usize {
        self.conns.len()
    }

    /// Queues `messages` on session `s`; returns the client sequence number
    /// of the first (counted by the client: SoupBinTCP numbers unsequenced
    /// messages implicitly). Written at the next [`TcpClient::flush`].
    pub fn send(&mut self, s: usize, messages: &[Outbound]) -> Result<u64, ClientError> {
        self.send_with(s, messages.len(), |k, _, out| messages[k].write(out))
    }

    /// Queues `count` messages on session `s`, each written by
    /// `fill(k, client_seq, out)`; returns the client sequence number of
    /// the first.
    pub fn send_with(
        &mut self,
        s: usize,
        count: usize,
        mut fill: impl FnMut(usize, u64, &mut [u8; MESSAGE_LEN]),
    ) -> Result<u64, ClientError> {
        let c = self.conns.get_mut(s).ok_or(ClientError::NoSession(s))?;
        let first = c.next_seq;
        let mut msg = [0u8; MESSAGE_LEN];
        let mut frame = [0u8; 3 + MESSAGE_LEN];
        for k in 0..count {
            fill(k, first + k as u64, &mut msg);
            let len = write_packet(&mut frame, kind::UNSEQUENCED_DATA, &msg).unwrap_or(0);
            c.out.extend_from_slice(&frame[..len]);
        }
        c.next_seq += count as u64;
        Ok(first)
    }

    /// Writes what is queued, as much as each socket takes now.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        for c in &mut self.conns {
            while c.out_start < c.out.len() {
                match c.stream.write(&c.out[c.out_start..]) {
                    Ok(0) => return Err(ClientError::Closed),
                    Ok(n) => c.out_start += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if c.out_start == c.out.len() {
                c.out.clear();
                c.out_start = 0;
            }
        }
        Ok(())
    }

    /// Reads what is pending on every connection (never waiting) and calls
    /// `f` for each event with the time (ns) it was read. Returns the
    /// number of events.
    pub fn poll(&mut self, mut f: impl FnMut(Event, u64)) -> Result<usize, ClientError> {
        let mut got = 0;
        for (s, c) in self.conns.iter_mut().enumerate() {
            match c.stream.read(&mut c.inbuf[c.in_len..]) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => c.in_len += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            let now = now_ns();
            let mut at = 0;
            loop {
                match parse_packet(&c.inbuf[at..c.in_len]) {
                    Ok(Some((pkt, used))) => {
                        match pkt {
                            SoupPacket::SequencedData(block) => {
                                if let Some(e) = decode_block(s, block, 0) {
                                    f(e, now);
                                    got += 1;
                                }
                            }
                            // Raw echo baseline: our own Unsequenced Data back.
                            SoupPacket::UnsequencedData(block) => {
                                c.echoed += 1;
                                if let Some(e) = decode_block(s, block, c.echoed) {
                                    f(e, now);
                                    got += 1;
                                }
                            }
                            SoupPacket::EndOfSession => {
                                f(Event::EndOfSession { session: s }, now);
                                got += 1;
                            }
                            _ => {}
                        }
                        at += used;
                    }
                    Ok(None) => break,
                    Err(e) => return Err(ClientError::BadStream(e.to_string())),
                }
            }
            c.inbuf.copy_within(at..c.in_len, 0);
            c.in_len -= at;
        }
        Ok(got)
    }

    /// Sends a Logout Request on every session (best effort).
    pub fn logout(&mut self) -> Result<(), ClientError> {
        let mut frame = [0u8; 3];
        let len = write_packet(&mut frame, kind::LOGOUT_REQUEST, &[]).unwrap_or(0);
        for c in &mut self.conns {
            c.out.extend_from_slice(&frame[..len]);
        }
        self.flush()
    }

    /// Writes raw bytes on session `s`'s connection (malformed-input tests).
    pub fn send_raw(&mut self, s: usize, bytes: &[u8]) -> Result<(), ClientError> {
        self.conns
            .get_mut(s)
            .ok_or(ClientError::NoSession(s))?
            .out
            .extend_from_slice(bytes);
        self.flush()
    }

    /// Blocks up to `timeout` waiting for session `s`'s connection to close.
    pub fn wait_closed(&mut self, s: usize, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let Some(c) = self.conns.get_mut(s) else {
            return true;
        };
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            match c.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(_) => return true,
            }
        }
        false
    }
}

/// Logs `name` in on a blocking `stream`, waiting up to 5 s for the answer.
fn login(stream: &mut TcpStream, name: &[u8; 10], secret: &str) -> Result<(), ClientError> {
    let mut req = [0u8; 49];
    let n = write_login_request(&mut req, "pg", secret, std::str::from_utf8(name).unwrap_or(""), 0);
    stream.write_all(&req[..n])?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 64];
    let mut have = 0;
    loop {
        let r = stream.read(&mut buf[have..])?;
        if r == 0 {
            return Err(ClientError::Closed);
        }
        have += r;
        match parse_packet(&buf[..have]) {
            Ok(Some((SoupPacket::LoginAccepted { .. }, used))) => {
                if used != have {
                    return Err(ClientError::UnexpectedLoginAnswer(
                        "bytes after Login Accepted".into(),
                    ));
                }
                return Ok(());
            }
            Ok(Some((SoupPacket::LoginRejected(r), _))) => {
                return Err(ClientError::LoginRejected {
                    session: String::from_utf8_lossy(name).trim_end().to_string(),
                    reason: LoginRejection::from_code(r),
                })
            }
            Ok(Some((other, _))) => return Err(ClientError::UnexpectedLoginAnswer(format!("{other:?}"))),
            Ok(None) => continue,
            Err(e) => return Err(ClientError::BadStream(e.to_string())),
        }
    }
}
