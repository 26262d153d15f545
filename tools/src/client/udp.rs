//! UDP client: all sessions share one socket (sessions are told apart by
//! the MoldUDP64 session name, `PG` + 8 digits), datagrams batched with
//! `sendmmsg`/`recvmmsg` through the same netio port the server uses.

use super::flow::Flow;
use super::recorder::Reply;
use super::transport::{decode_reply, ClientTransport};
use peregrine_netio::{PacketBatch, Peer, Port, UdpOptions, UdpPort};
use peregrine_sequencer::wire::message::MESSAGE_LEN;
use peregrine_sequencer::wire::moldudp64::{MoldBuilder, MoldPacket, SessionName};
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
        })
    }

    /// Sends a raw datagram to the server (tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush()?;
        self.tx.push(Peer::Addr(self.server), bytes);
        self.flush()
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
                // A raw echo returns our own packet: its sequence is ours.
                if let Some(r) = decode_reply(s, block, first + k as u64) {
                    f(r, now);
                }
            }
        }
        Ok(n)
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
