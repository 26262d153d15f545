//! Helpers shared by the end-to-end tests: real sockets on loopback.
#![allow(dead_code)]

use peregrine_server::config::{ServeConfig, SessionSpec};
use peregrine_server::serve::{self as server, ServerHandle};
use peregrine_wire::alpha::checked_alpha_field;
use peregrine_wire::message::{Ack, Echo, Login, LoginAccepted, MessageType, Reject, MESSAGE_LEN};
use peregrine_wire::moldudp64::{session_name, MoldBuilder, MoldPacket};
use peregrine_wire::soupbintcp::{kind, parse_packet, write_login_request, write_packet, SoupPacket};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use zerocopy::{FromBytes, IntoBytes};

pub fn lo() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The secret of every test session.
pub const SECRET: &str = "test";

/// Session names the tests use by hand (the simulator's are PG00000000..).
pub const NAMES: &[&str] = &[
    "AFTER", "BAD", "BIG", "DEDUP", "GOOD", "HB", "HOLD", "MAKER", "MATCH", "RATE", "ONLYONE", "QUIET",
    "RATETCP", "TAKER", "TCPMATCH", "REPLAY", "SPOOF", "OTHER", "STAT",
];

/// The test sessions: [`NAMES`] and PG00000000..PG00000015, all with
/// [`SECRET`].
pub fn test_sessions() -> Vec<SessionSpec> {
    let mut v: Vec<SessionSpec> = NAMES.iter().map(|n| SessionSpec::single(n, SECRET)).collect();
    v.push(SessionSpec::block("PG", 16, SECRET));
    v
}

/// The test server's configuration: `udp` UDP gateways and `tcp` TCP
/// gateways on loopback, polling with `yield` so tests share the cores
/// politely, the test sessions configured.
pub fn server_config(udp: usize, tcp: usize) -> ServeConfig {
    ServeConfig {
        udp: vec![lo(); udp],
        tcp: vec![lo(); tcp],
        idle: "yield".into(),
        ring_capacity: Some(1024),
        sessions: test_sessions(),
        ..ServeConfig::default()
    }
}

/// A server with [`server_config`].
pub fn start_server(udp: usize, tcp: usize) -> ServerHandle {
    server::start(&server_config(udp, tcp)).expect("server starts")
}

/// Logs `session` in over UDP from `s` to `server` with `secret`; returns
/// the answer block (LoginAccepted `W` or LoginRejected `V`).
pub fn udp_login_with(s: &UdpSocket, server: SocketAddr, session: &str, secret: &str) -> [u8; MESSAGE_LEN] {
    let login = Login::new(checked_alpha_field(secret).unwrap(), 0, 7);
    s.send_to(&mold(session, 0, &[login.as_bytes()]), server).unwrap();
    let got = recv_blocks(s, 1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "an answer to the login");
    assert_eq!(got[0].0, 0, "login answers are unsequenced");
    got[0].1
}

/// Logs `session` in over UDP with the test secret; panics unless accepted.
/// Returns (next client sequence, next reply sequence).
pub fn udp_login(s: &UdpSocket, server: SocketAddr, session: &str) -> (u64, u64) {
    let m = udp_login_with(s, server, session, SECRET);
    assert_eq!(
        m[0],
        MessageType::LoginAccepted as u8,
        "login of {session} accepted"
    );
    let a = LoginAccepted::read_from_bytes(&m).unwrap();
    (a.next_client_seq.get(), a.next_reply_seq.get())
}

pub fn echo(ts: u64, tag: u64) -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    m.copy_from_slice(Echo::new(ts, tag).as_bytes());
    m
}

pub fn mold(session: &str, seq: u64, blocks: &[&[u8]]) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let mut b = MoldBuilder::new(&mut buf, &session_name(session), seq).unwrap();
    for blk in blocks {
        assert!(b.push(blk));
    }
    let n = b.finish();
    buf[..n].to_vec()
}

pub fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind(lo()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads reply blocks until `want` arrived or `timeout` passed; returns
/// (reply sequence, block).
pub fn recv_blocks(s: &UdpSocket, want: usize, timeout: Duration) -> Vec<(u64, [u8; MESSAGE_LEN])> {
    let until = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    while out.len() < want && Instant::now() < until {
        let Ok(n) = s.recv(&mut buf) else { continue };
        let p = MoldPacket::new_checked(&buf[..n]).expect("server sends valid MoldUDP64");
        for (k, b) in p.blocks().enumerate() {
            let mut m = [0u8; MESSAGE_LEN];
            m.copy_from_slice(b);
            out.push((p.sequence() + k as u64, m));
        }
    }
    out
}

pub fn as_ack(m: &[u8; MESSAGE_LEN]) -> Option<Ack> {
    (m[0] == MessageType::Ack as u8).then(|| Ack::read_from_bytes(m).unwrap())
}

pub fn as_reject(m: &[u8; MESSAGE_LEN]) -> Option<Reject> {
    (m[0] == MessageType::Reject as u8).then(|| Reject::read_from_bytes(m).unwrap())
}

pub struct SoupClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl SoupClient {
    pub fn connect(addr: SocketAddr) -> SoupClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        SoupClient {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn login(addr: SocketAddr, session: &str) -> SoupClient {
        match SoupClient::try_login(addr, session, SECRET, 0) {
            (c, Some((kind::LOGIN_ACCEPTED, _))) => c,
            (_, other) => panic!("login failed: {other:?}"),
        }
    }

    /// Sends a Login Request (password `secret`, requested sequence
    /// `sequence`) and returns the first answer packet.
    pub fn try_login(
        addr: SocketAddr,
        session: &str,
        secret: &str,
        sequence: u64,
    ) -> (SoupClient, Option<(u8, Vec<u8>)>) {
        let mut c = SoupClient::connect(addr);
        let mut req = [0u8; 49];
        let n = write_login_request(&mut req, "tester", secret, session, sequence);
        c.stream.write_all(&req[..n]).unwrap();
        let answer = c.next_packet(Duration::from_secs(5));
        (c, answer)
    }

    pub fn send_message(&mut self, m: &[u8]) {
        let mut f = [0u8; 1100];
        let n = write_packet(&mut f, kind::UNSEQUENCED_DATA, m).unwrap();
        self.stream.write_all(&f[..n]).unwrap();
    }

    /// Next whole packet: (type, payload). None on timeout or close.
    pub fn next_packet(&mut self, timeout: Duration) -> Option<(u8, Vec<u8>)> {
        let until = Instant::now() + timeout;
        loop {
            if let Ok(Some((p, n))) = parse_packet(&self.buf) {
                let out = match p {
                    SoupPacket::SequencedData(d) => (kind::SEQUENCED_DATA, d.to_vec()),
                    SoupPacket::LoginAccepted { sequence, .. } => {
                        (kind::LOGIN_ACCEPTED, sequence.to_le_bytes().to_vec())
                    }
                    SoupPacket::UnsequencedData(d) => (kind::UNSEQUENCED_DATA, d.to_vec()),
                    SoupPacket::LoginRejected(r) => (kind::LOGIN_REJECTED, vec![r]),
                    SoupPacket::ServerHeartbeat => (kind::SERVER_HEARTBEAT, Vec::new()),
                    SoupPacket::EndOfSession => (kind::END_OF_SESSION, Vec::new()),
                    _ => (0, Vec::new()),
                };
                self.buf.drain(..n);
                return Some(out);
            }
            if Instant::now() > until {
                return None;
            }
            let mut tmp = [0u8; 4096];
            match self.stream.read(&mut tmp) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(_) => {}
            }
        }
    }

    /// Next reply block, sequenced or not (session-layer rejects are
    /// unsequenced).
    pub fn next_reply(&mut self, timeout: Duration) -> Option<[u8; MESSAGE_LEN]> {
        loop {
            let (k, d) = self.next_packet(timeout)?;
            if k == kind::SEQUENCED_DATA || k == kind::UNSEQUENCED_DATA {
                let mut m = [0u8; MESSAGE_LEN];
                m.copy_from_slice(&d);
                return Some(m);
            }
        }
    }

    /// True when the server closed the connection within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let mut tmp = [0u8; 4096];
        while Instant::now() < until {
            match self.stream.read(&mut tmp) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => {}
            }
        }
        false
    }
}
