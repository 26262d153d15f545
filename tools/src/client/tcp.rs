//! TCP client: one SoupBinTCP connection per session, non-blocking after
//! login, partial writes kept and retried.

use super::flow::Flow;
use super::recorder::Reply;
use super::transport::{decode_reply, ClientTransport};
use super::udp::client_session_name;
use peregrine_wire::message::MESSAGE_LEN;
use peregrine_wire::soupbintcp::{kind, parse_packet, write_login_request, write_packet, SoupPacket};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    out_start: usize,
    inbuf: Vec<u8>,
    in_len: usize,
    next_seq: u64,
    echoed: u64,
}

/// What a Login Rejected reason byte means.
pub fn login_rejection(code: u8) -> &'static str {
    match code {
        b'A' => "A (not authorised: unknown session or wrong secret; check --secret)",
        b'S' => "S (session not available: logged in elsewhere)",
        _ => "unknown reason",
    }
}

/// The TCP simulator's transport.
pub struct TcpClient {
    conns: Vec<Conn>,
}

impl TcpClient {
    /// Connects `sessions` sessions; logs each in unless `raw` (baseline:
    /// the peer is a raw echo that speaks no SoupBinTCP).
    /// Sessions are named PG`first`, PG`first + 1`, ...
    pub fn connect(
        server: SocketAddr,
        sessions: usize,
        first: usize,
        raw: bool,
        secret: &str,
    ) -> anyhow::Result<Self> {
        let mut conns = Vec::with_capacity(sessions);
        for s in 0..sessions {
            let mut stream = TcpStream::connect(server)?;
            stream.set_nodelay(true)?;
            let mut next_seq = 1;
            if !raw {
                let name = client_session_name(first + s);
                let mut req = [0u8; 49];
                let n = write_login_request(&mut req, "pg", secret, std::str::from_utf8(&name)?, 0);
                stream.write_all(&req[..n])?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut buf = [0u8; 64];
                let mut have = 0;
                loop {
                    let r = stream.read(&mut buf[have..])?;
                    anyhow::ensure!(r > 0, "server closed during login");
                    have += r;
                    match parse_packet(&buf[..have]) {
                        Ok(Some((SoupPacket::LoginAccepted { sequence, .. }, used))) => {
                            anyhow::ensure!(used == have, "unexpected bytes after Login Accepted");
                            let _ = sequence;
                            break;
                        }
                        Ok(Some((SoupPacket::LoginRejected(r), _))) => {
                            anyhow::bail!(
                                "login of session {} rejected: {}",
                                String::from_utf8_lossy(&name).trim_end(),
                                login_rejection(r)
                            )
                        }
                        Ok(Some((other, _))) => anyhow::bail!("unexpected {other:?} during login"),
                        Ok(None) => continue,
                        Err(e) => anyhow::bail!("bad login reply: {e}"),
                    }
                }
                next_seq = 1;
            }
            stream.set_nonblocking(true)?;
            conns.push(Conn {
                stream,
                out: Vec::with_capacity(1 << 20),
                out_start: 0,
                inbuf: vec![0u8; 1 << 16],
                in_len: 0,
                next_seq,
                echoed: 0,
            });
        }
        Ok(TcpClient { conns })
    }

    /// Writes raw bytes on session `s`'s connection (malformed-input tests).
    pub fn send_raw(&mut self, s: usize, bytes: &[u8]) -> io::Result<()> {
        self.conns[s].out.extend_from_slice(bytes);
        self.flush()
    }

    /// Blocks up to `timeout` waiting for session `s`'s connection to close.
    pub fn wait_closed(&mut self, s: usize, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let c = &mut self.conns[s];
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

impl ClientTransport for TcpClient {
    fn queue(&mut self, s: usize, stamps: &[u64], flow: &mut Flow) -> io::Result<u64> {
        let c = &mut self.conns[s];
        let first = c.next_seq;
        let n = stamps.len();
        let mut msg = [0u8; MESSAGE_LEN];
        let mut frame = [0u8; 3 + MESSAGE_LEN];
        for (k, &ts_ns) in stamps.iter().enumerate() {
            flow.next(s, ts_ns, first + k as u64, &mut msg);
            let len = write_packet(&mut frame, kind::UNSEQUENCED_DATA, &msg).unwrap_or(0);
            c.out.extend_from_slice(&frame[..len]);
        }
        c.next_seq += n as u64;
        Ok(first)
    }

    fn flush(&mut self) -> io::Result<()> {
        for c in &mut self.conns {
            while c.out_start < c.out.len() {
                match c.stream.write(&c.out[c.out_start..]) {
                    Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "closed")),
                    Ok(n) => c.out_start += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            if c.out_start == c.out.len() {
                c.out.clear();
                c.out_start = 0;
            }
        }
        Ok(())
    }

    fn poll(&mut self, f: &mut dyn FnMut(Reply, u64)) -> io::Result<usize> {
        let mut got = 0;
        for (s, c) in self.conns.iter_mut().enumerate() {
            match c.stream.read(&mut c.inbuf[c.in_len..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::ConnectionReset, "server closed")),
                Ok(n) => c.in_len += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = peregrine_netio::clock::now_ns();
            let mut at = 0;
            loop {
                match parse_packet(&c.inbuf[at..c.in_len]) {
                    Ok(Some((pkt, used))) => {
                        match pkt {
                            SoupPacket::SequencedData(block) => {
                                if let Some(r) = decode_reply(s, block, 0) {
                                    f(r, now);
                                    got += 1;
                                }
                            }
                            // Raw echo baseline: our own Unsequenced Data back.
                            SoupPacket::UnsequencedData(block) => {
                                c.echoed += 1;
                                if let Some(r) = decode_reply(s, block, c.echoed) {
                                    f(r, now);
                                    got += 1;
                                }
                            }
                            _ => {}
                        }
                        at += used;
                    }
                    Ok(None) => break,
                    Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
                }
            }
            c.inbuf.copy_within(at..c.in_len, 0);
            c.in_len -= at;
        }
        Ok(got)
    }
}
