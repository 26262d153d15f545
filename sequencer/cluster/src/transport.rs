//! [`NodeTransport`]: raft-rs messages between cluster nodes over kernel
//! TCP, driven from the caller's poll loop (no async runtime; one idle
//! connector thread per peer, see below).
//!
//! Why it is shaped so:
//!
//! * **Inbound** connections are accepted by a netio [`TcpPort`] listening
//!   on this node's `raft` address: one `epoll_wait(0)` per poll, many
//!   connections, never blocking, the same port the gateways use.
//! * **Outbound** connections (one per peer) are plain
//!   [`std::net::TcpStream`]s set non-blocking after connecting, because
//!   netio's `TcpPort` only accepts and cannot dial out (and this crate does
//!   not change netio). std has no non-blocking connect without `unsafe`
//!   (which this crate forbids), and a connect to a machine that is gone
//!   waits for its timeout, so each peer has a small connector thread that
//!   dials when asked (bounded by [`CONNECT_TIMEOUT`]) and hands the
//!   connected stream back through a channel: the polling loop only ever
//!   sends a request and checks for an answer, never waits. A request goes
//!   out when a link is down, at most once per peer per
//!   [`RECONNECT_BACKOFF`].
//! * Each connection carries traffic one way: a node writes to its peers on
//!   the connections it dialled and reads on the ones it accepted. No
//!   handshake is needed, since every raft message names its sender.
//! * Frames are a 4-byte little-endian length, then the protobuf encoding
//!   of `raft::eraftpb::Message`. A length above [`MAX_FRAME_BYTES`] or a
//!   body that does not parse closes that connection and is counted: a peer
//!   speaking garbage is cut off, never trusted and never a panic.
//! * Raft retransmits whatever is lost, so a peer whose link is down, or
//!   whose output buffer would exceed [`MAX_PENDING_BYTES`], has its
//!   messages dropped (and counted) instead of queued without bound.
//!
//! Costs: encoding appends to a per-peer buffer that is reused, so sending
//! does not allocate once the buffers have grown; decoding allocates what
//! raft-rs's `Message` holds (entries are `Vec`s), as raft-rs does anyway.

use crate::config::{ClusterConfig, ConfigError};
use peregrine_netio::{ConnId, NetError, PacketBatch, Peer, RxEvent, StreamPort, TcpOptions, TcpPort};
use protobuf::Message as _;
use raft::eraftpb::Message;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Largest frame body accepted or sent, in bytes (64 MiB). A received
/// length above it closes the connection.
pub const MAX_FRAME_BYTES: usize = 64 << 20;
/// Most bytes waiting to be written to one peer; a message that would
/// exceed it is dropped and counted (Raft retransmits).
pub const MAX_PENDING_BYTES: usize = MAX_FRAME_BYTES + FRAME_HEADER_BYTES;
/// How long after a failed or closed link the next connect is tried.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
/// How often an idle-looking outbound link is checked for the peer having
/// closed it (one non-blocking `read` per peer at most this often), so a
/// dead peer is noticed even while nothing is written to it.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(10);
/// Upper bound on one outbound connect attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(20);
/// The length prefix: a `u32`, little-endian.
const FRAME_HEADER_BYTES: usize = 4;
/// Receive batch entries per `recv`: room for one chunk from each inbound
/// connection of a 5-node cluster plus connection events.
const RX_BATCH: usize = 16;
/// Bytes per received chunk. A follower behind the leader finds many
/// appends waiting in its socket; reading them in large chunks lets it take
/// them all in one poll (one append, one answer) instead of one small
/// chunk, and one entry, per poll.
const RX_CHUNK_BYTES: usize = 64 << 10;
/// Most `recv` calls per [`NodeTransport::poll`] while chunks keep coming
/// back full (about 2 MiB from one connection), so one busy peer cannot
/// hold the loop.
const RX_ROUNDS: usize = 32;

/// Why a [`NodeTransport`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The cluster configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listener could not be set up or polled.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A peer's connector thread could not be started.
    #[error("starting a connector thread: {0}")]
    Connector(#[source] std::io::Error),
}

/// What the transport has done, as plain integers owned by the polling
/// thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportCounters {
    /// Messages encoded into a live peer link's output buffer.
    pub msgs_sent: u64,
    /// Bytes (headers included) written to peer sockets.
    pub bytes_sent: u64,
    /// Messages dropped on the way out: link down, unknown recipient,
    /// output buffer full, too large or unencodable.
    pub msgs_dropped: u64,
    /// Complete frames received and delivered.
    pub msgs_received: u64,
    /// Bytes read from inbound connections.
    pub bytes_received: u64,
    /// Received frames refused (length above [`MAX_FRAME_BYTES`] or a body
    /// that does not parse); each closed its connection.
    pub frames_dropped: u64,
    /// Outbound connect attempts made after a link failed, closed, or an
    /// earlier attempt failed.
    pub reconnects: u64,
    /// Outbound connect attempts that failed.
    pub connect_failures: u64,
    /// Outbound links lost to a write error or a peer closing.
    pub links_lost: u64,
}

/// One outbound link to a peer.
struct PeerLink {
    id: u64,
    addr: SocketAddr,
    stream: Option<TcpStream>,
    /// Asks the peer's connector thread to dial.
    dial: mpsc::Sender<()>,
    /// The connector thread's answers.
    dialled: mpsc::Receiver<io::Result<TcpStream>>,
    /// A dial was requested and not yet answered.
    dialling: bool,
    /// Encoded frames not yet taken by the socket.
    out: Vec<u8>,
    /// When the next connect may be tried.
    next_attempt: Instant,
    /// Whether a connect was ever attempted (the first is not a reconnect).
    attempted: bool,
    /// When the link is next checked for having been closed by the peer.
    next_check: Instant,
}

/// Carries raft-rs messages between this node and its peers over TCP. See
/// the module docs for the design; no call blocks (outbound connects run
/// on the peers' connector threads).
pub struct NodeTransport {
    port: TcpPort,
    batch: PacketBatch,
    peers: Vec<PeerLink>,
    /// Partial frames per accepted connection.
    inbound: HashMap<ConnId, Vec<u8>>,
    counters: TransportCounters,
}

impl std::fmt::Debug for NodeTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTransport")
            .field("local", &self.local_addr())
            .field(
                "peers",
                &self.peers.iter().map(|p| (p.id, p.addr)).collect::<Vec<_>>(),
            )
            .field("counters", &self.counters)
            .finish()
    }
}

impl NodeTransport {
    /// Listens on this node's `raft` address from `config` and prepares a
    /// link to every other member (connected on the first
    /// [`poll`](Self::poll)).
    pub fn bind(config: &ClusterConfig) -> Result<NodeTransport, TransportError> {
        config.validate()?;
        let me = config
            .this_member()
            .ok_or(ConfigError::UnknownSelf(config.node_id))?;
        let port = TcpPort::bind(me.raft, TcpOptions::default())?;
        NodeTransport::with_port(port, config)
    }

    /// Like [`bind`](Self::bind) over an already bound `port` (for example
    /// one bound to port 0 before the configuration naming its address was
    /// written). The port is used for receiving only.
    pub fn with_port(port: TcpPort, config: &ClusterConfig) -> Result<NodeTransport, TransportError> {
        config.validate()?;
        let now = Instant::now();
        let peers = config
            .members
            .iter()
            .filter(|m| m.id != config.node_id)
            .map(|m| {
                let (dial, dialled) = spawn_connector(m.id, m.raft)?;
                Ok(PeerLink {
                    id: m.id,
                    addr: m.raft,
                    stream: None,
                    dial,
                    dialled,
                    dialling: false,
                    out: Vec::new(),
                    next_attempt: now,
                    attempted: false,
                    next_check: now,
                })
            })
            .collect::<Result<Vec<_>, TransportError>>()?;
        Ok(NodeTransport {
            port,
            batch: PacketBatch::with_slot_bytes(RX_BATCH, RX_CHUNK_BYTES),
            peers,
            inbound: HashMap::new(),
            counters: TransportCounters::default(),
        })
    }

    /// The address this node listens on for its peers.
    pub fn local_addr(&self) -> SocketAddr {
        use peregrine_netio::Port as _;
        self.port.local_addr()
    }

    /// The counters so far.
    pub fn counters(&self) -> TransportCounters {
        self.counters
    }

    /// Whether the outbound link to peer `id` is up.
    pub fn is_connected(&self, id: u64) -> bool {
        self.peers.iter().any(|p| p.id == id && p.stream.is_some())
    }

    /// Frames every message for its recipient (`Message::to`) and then
    /// writes once per peer. A message for a peer whose link is down, for an
    /// unknown node, or that does not fit in the peer's output buffer is
    /// dropped and counted in [`TransportCounters::msgs_dropped`]; Raft
    /// retransmits. What the socket does not take now stays buffered and is
    /// written by later calls or [`poll`](Self::poll).
    pub fn send(&mut self, msgs: impl Iterator<Item = Message>) {
        for msg in msgs {
            let Some(peer) = self.peers.iter_mut().find(|p| p.id == msg.to) else {
                self.counters.msgs_dropped += 1;
                continue;
            };
            if peer.stream.is_none() {
                self.counters.msgs_dropped += 1;
                continue;
            }
            if encode_frame(&msg, &mut peer.out) {
                self.counters.msgs_sent += 1;
            } else {
                self.counters.msgs_dropped += 1;
            }
        }
        self.flush_all();
    }

    /// Blocks until a peer's message (or connection) arrives or `timeout`
    /// passes (whole milliseconds); true when something is ready for
    /// [`poll`](Self::poll). A follower with nothing else to do waits here
    /// instead of spinning, and still sees the leader's next append within
    /// microseconds.
    pub fn wait(&self, timeout: std::time::Duration) -> Result<bool, TransportError> {
        Ok(self.port.wait_readable(timeout)?)
    }

    /// Makes progress on everything: connects links that are down and due,
    /// writes buffered output, and reads every inbound connection, handing
    /// each complete received frame to `f` in arrival order per
    /// connection. Returns how many messages were delivered. Fails only if
    /// the listener's poll fails; a bad peer only loses its connection.
    pub fn poll(&mut self, mut f: impl FnMut(Message)) -> Result<usize, TransportError> {
        let now = Instant::now();
        for peer in &mut self.peers {
            if peer.stream.is_none() {
                connect(peer, now, &mut self.counters);
            } else if peer.stream.is_some() && now >= peer.next_check {
                peer.next_check = now + LIVENESS_CHECK;
                check_alive(peer, now, &mut self.counters);
            }
        }
        self.flush_all();
        let mut delivered = 0;
        for _ in 0..RX_ROUNDS {
            let n = self.port.recv(&mut self.batch)?;
            for i in 0..n {
                let (peer, event, data) = self.batch.get(i);
                let Peer::Conn(conn) = peer else {
                    continue;
                };
                match event {
                    RxEvent::Opened => {
                        self.inbound.insert(conn, Vec::new());
                    }
                    RxEvent::Closed => {
                        self.inbound.remove(&conn);
                    }
                    RxEvent::Data => {
                        self.counters.bytes_received += data.len() as u64;
                        let Some(buf) = self.inbound.get_mut(&conn) else {
                            continue;
                        };
                        buf.extend_from_slice(data);
                        match decode_frames(buf, &mut f) {
                            Ok(k) => {
                                delivered += k;
                                self.counters.msgs_received += k as u64;
                            }
                            Err(k) => {
                                delivered += k;
                                self.counters.msgs_received += k as u64;
                                self.counters.frames_dropped += 1;
                                self.inbound.remove(&conn);
                                self.port.close(conn);
                            }
                        }
                    }
                }
            }
            if !self.batch.may_have_more() {
                break;
            }
        }
        Ok(delivered)
    }

    /// One write per peer with pending output.
    fn flush_all(&mut self) {
        let now = Instant::now();
        for peer in &mut self.peers {
            flush(peer, now, &mut self.counters);
        }
    }
}

/// Appends `msg` as one frame to `out`; false (and `out` unchanged) if it is
/// too large, would overflow the peer's buffer, or cannot be encoded.
fn encode_frame(msg: &Message, out: &mut Vec<u8>) -> bool {
    let size = msg.compute_size() as usize;
    if size > MAX_FRAME_BYTES || out.len() + FRAME_HEADER_BYTES + size > MAX_PENDING_BYTES {
        return false;
    }
    let start = out.len();
    out.extend_from_slice(&(size as u32).to_le_bytes());
    if msg.write_to_vec(out).is_err() || out.len() - start != FRAME_HEADER_BYTES + size {
        out.truncate(start);
        return false;
    }
    true
}

/// Delivers every complete frame at the front of `buf` and removes them.
/// `Ok(n)`: `n` delivered, the rest is an incomplete frame. `Err(n)`: `n`
/// delivered, then a frame that is too long or does not parse (the
/// connection must be closed; `buf` is then meaningless).
fn decode_frames(buf: &mut Vec<u8>, f: &mut impl FnMut(Message)) -> Result<usize, usize> {
    let mut pos = 0;
    let mut delivered = 0;
    let result = loop {
        let rest = &buf[pos..];
        let Some((header, body)) = rest.split_first_chunk::<FRAME_HEADER_BYTES>() else {
            break Ok(delivered);
        };
        let len = u32::from_le_bytes(*header) as usize;
        if len > MAX_FRAME_BYTES {
            break Err(delivered);
        }
        let Some(frame) = body.get(..len) else {
            break Ok(delivered);
        };
        match Message::parse_from_bytes(frame) {
            Ok(msg) => {
                f(msg);
                delivered += 1;
                pos += FRAME_HEADER_BYTES + len;
            }
            Err(_) => break Err(delivered),
        }
    };
    buf.drain(..pos);
    result
}

/// Starts peer `id`'s connector thread: each `()` received dials `addr`
/// (bounded by [`CONNECT_TIMEOUT`]) and sends back the stream, already
/// non-blocking with Nagle off, or the error. It ends when the transport
/// (its channels) goes away.
#[allow(clippy::type_complexity)]
fn spawn_connector(
    id: u64,
    addr: SocketAddr,
) -> Result<(mpsc::Sender<()>, mpsc::Receiver<io::Result<TcpStream>>), TransportError> {
    let (dial, requests) = mpsc::channel::<()>();
    let (answers, dialled) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("raft-dial-{id}"))
        .spawn(move || {
            while requests.recv().is_ok() {
                let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).and_then(|s| {
                    s.set_nonblocking(true)?;
                    s.set_nodelay(true)?;
                    Ok(s)
                });
                if answers.send(stream).is_err() {
                    break;
                }
            }
        })
        .map_err(TransportError::Connector)?;
    Ok((dial, dialled))
}

/// Moves `peer`'s link along: asks its connector to dial when the link is
/// down and due, and takes the answer when there is one. Never waits.
fn connect(peer: &mut PeerLink, now: Instant, counters: &mut TransportCounters) {
    if peer.dialling {
        match peer.dialled.try_recv() {
            Ok(Ok(s)) => {
                peer.dialling = false;
                peer.stream = Some(s);
                peer.out.clear();
            }
            Ok(Err(_)) | Err(mpsc::TryRecvError::Disconnected) => {
                peer.dialling = false;
                counters.connect_failures += 1;
                peer.next_attempt = now + RECONNECT_BACKOFF;
            }
            Err(mpsc::TryRecvError::Empty) => {}
        }
        return;
    }
    if now < peer.next_attempt {
        return;
    }
    if peer.attempted {
        counters.reconnects += 1;
    }
    peer.attempted = true;
    if peer.dial.send(()).is_ok() {
        peer.dialling = true;
    } else {
        counters.connect_failures += 1;
        peer.next_attempt = now + RECONNECT_BACKOFF;
    }
}

/// One write of `peer`'s pending output; a failed or closed link is dropped
/// with its output and retried after [`RECONNECT_BACKOFF`].
fn flush(peer: &mut PeerLink, now: Instant, counters: &mut TransportCounters) {
    let Some(stream) = peer.stream.as_mut() else {
        return;
    };
    if peer.out.is_empty() {
        return;
    }
    match stream.write(&peer.out) {
        Ok(0) => lose(peer, now, counters),
        Ok(n) => {
            counters.bytes_sent += n as u64;
            peer.out.drain(..n);
        }
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
        Err(_) => lose(peer, now, counters),
    }
}

/// Notices a peer that closed (or reset) our outbound link: peers never
/// write on it, so a readable end of stream or an error means it is gone;
/// anything else read is discarded.
fn check_alive(peer: &mut PeerLink, now: Instant, counters: &mut TransportCounters) {
    let Some(stream) = peer.stream.as_mut() else {
        return;
    };
    let mut scratch = [0u8; 64];
    match stream.read(&mut scratch) {
        Ok(0) => lose(peer, now, counters),
        Ok(_) => {}
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
        Err(_) => lose(peer, now, counters),
    }
}

/// Drops a failed link and its output; the next connect is due after
/// [`RECONNECT_BACKOFF`].
fn lose(peer: &mut PeerLink, now: Instant, counters: &mut TransportCounters) {
    counters.links_lost += 1;
    peer.stream = None;
    peer.out.clear();
    peer.next_attempt = now + RECONNECT_BACKOFF;
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, MessageType};

    fn msg(to: u64, data: &[u8]) -> Message {
        Message {
            msg_type: MessageType::MsgAppend,
            from: 1,
            to,
            term: 3,
            entries: vec![Entry {
                index: 7,
                term: 3,
                data: data.to_vec().into(),
                ..Entry::default()
            }]
            .into(),
            ..Message::default()
        }
    }

    #[test]
    fn frames_round_trip_split_anywhere() {
        let mut wire = Vec::new();
        assert!(encode_frame(&msg(2, b"abc"), &mut wire));
        assert!(encode_frame(&msg(3, b""), &mut wire));
        for cut in 0..=wire.len() {
            let mut buf = wire[..cut].to_vec();
            let mut got = Vec::new();
            let first = decode_frames(&mut buf, &mut |m| got.push(m)).unwrap();
            buf.extend_from_slice(&wire[cut..]);
            let second = decode_frames(&mut buf, &mut |m| got.push(m)).unwrap();
            assert_eq!(first + second, 2);
            assert!(buf.is_empty());
            assert_eq!(got, vec![msg(2, b"abc"), msg(3, b"")]);
        }
    }

    #[test]
    fn a_down_peer_drops_its_messages_and_backs_off() {
        use crate::config::MemberConfig;
        use peregrine_netio::{Port, TcpOptions, TcpPort};
        let port = TcpPort::bind(SocketAddr::from(([127, 0, 0, 1], 0)), TcpOptions::default()).unwrap();
        // Addresses nobody listens on: bound, noted, released.
        let dead: Vec<SocketAddr> = (0..2)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            })
            .collect();
        let members = [port.local_addr(), dead[0], dead[1]]
            .iter()
            .enumerate()
            .map(|(i, &raft)| MemberConfig {
                id: i as u64 + 1,
                raft,
                udp: vec![],
                tcp: vec![],
            })
            .collect();
        let mut t = NodeTransport::with_port(port, &ClusterConfig::new(1, members)).unwrap();
        // Connects run on the connector threads: poll until both answered.
        let failures_reach = |t: &mut NodeTransport, n: u64| {
            let until = Instant::now() + Duration::from_secs(5);
            while t.counters().connect_failures < n {
                assert_eq!(t.poll(|_| panic!("nothing was sent")).unwrap(), 0);
                assert!(Instant::now() < until, "connectors never answered");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        failures_reach(&mut t, 2);
        assert!(!t.is_connected(2) && !t.is_connected(3));
        t.send([msg(2, b"a"), msg(3, b"b"), msg(9, b"c")].into_iter());
        let c = t.counters();
        assert_eq!((c.msgs_sent, c.msgs_dropped, c.connect_failures), (0, 3, 2));
        // Within the backoff, no new attempt.
        t.poll(|_| {}).unwrap();
        assert_eq!(t.counters().reconnects, 0);
        std::thread::sleep(RECONNECT_BACKOFF);
        t.poll(|_| {}).unwrap();
        assert_eq!(t.counters().reconnects, 2);
        failures_reach(&mut t, 4);
        assert_eq!((t.counters().reconnects, t.counters().connect_failures), (2, 4));
    }

    #[test]
    fn oversized_length_and_garbage_are_refused() {
        let mut buf = Vec::new();
        assert!(encode_frame(&msg(2, b"ok"), &mut buf));
        buf.extend_from_slice(&((MAX_FRAME_BYTES as u32) + 1).to_le_bytes());
        let mut got = 0;
        assert_eq!(decode_frames(&mut buf, &mut |_| got += 1), Err(1));
        assert_eq!(got, 1);

        let mut buf = vec![3, 0, 0, 0, 0xff, 0xff, 0xff];
        assert_eq!(decode_frames(&mut buf, &mut |_| panic!("no message")), Err(0));
    }
}
