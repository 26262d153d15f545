//! Clients in front of a cluster: a node that does not serve refuses logins
//! with `L` and a hint, clients find the node that serves, and a client
//! whose node fails moves to the next one by itself with every message
//! answered exactly once.
//!
//! The failover runs without the cluster: server A runs on a journal; A is
//! stopped mid-stream and server B starts on other ports over the same
//! journal, rebuilding the sessions from it exactly as a new leader
//! rebuilds them from the replicated log.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_client::{FailoverOptions, LoginRejection, TcpClient, UdpClient};
use peregrine_gateway::directory::SessionDirectory;
use peregrine_gateway::{ring_pair, GatewayLoop, GatewayOptions, Leadership, TcpGateway, UdpGateway};
use peregrine_netio::{Port, TcpOptions, TcpPort, UdpOptions, UdpPort};
use peregrine_server::config::ServeConfig;
use peregrine_server::serve::{self as server, ServerHandle};
use peregrine_tools::client::{self, ClientConfig, ClientResult, Mode, TransportKind};
use peregrine_wire::message::{LoginRejectReason, LoginRejected, MessageType};
use peregrine_wire::soupbintcp::{kind, reject_reason};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use zerocopy::FromBytes;

/// A node whose gateways (UDP id 0, TCP id 1) run on real loopback sockets
/// under `leadership`, with no sequencer behind them: enough to answer
/// logins.
struct Node {
    udp: SocketAddr,
    tcp: SocketAddr,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl Node {
    fn start(leadership: Arc<Leadership>) -> Node {
        let cfg = server_config(1, 1);
        let directory = Arc::new(SessionDirectory::new(&cfg.credentials().unwrap()).unwrap());
        let opts = GatewayOptions {
            leadership: Some(leadership),
            ..GatewayOptions::default()
        };
        let udp_port = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let tcp_port = TcpPort::bind(lo(), TcpOptions::default()).unwrap();
        let (udp, tcp) = (udp_port.local_addr(), tcp_port.local_addr());
        let (ur, _us) = ring_pair(64).unwrap();
        let (tr, _ts) = ring_pair(64).unwrap();
        let mut gws: Vec<Box<dyn GatewayLoop>> = vec![
            Box::new(UdpGateway::new(
                0,
                udp_port,
                ur,
                Arc::clone(&directory),
                opts.clone(),
            )),
            Box::new(TcpGateway::new(1, tcp_port, tr, directory, opts)),
        ];
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let join = std::thread::spawn(move || {
            // The sequencer's ends stay here, so the rings live on.
            let _rings = (_us, _ts);
            while !flag.load(Ordering::Relaxed) {
                for g in gws.iter_mut() {
                    g.poll_rx();
                    g.poll_tx();
                }
                std::thread::yield_now();
            }
        });
        Node {
            udp,
            tcp,
            stop,
            join: Some(join),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

#[test]
fn a_follower_refuses_logins_with_l_and_the_hint_and_clients_find_the_leader() {
    let leader = start_server(1, 1);
    let leadership = Arc::new(Leadership::new(vec![
        (1, vec![]),
        (2, vec![leader.udp[0], leader.tcp[0]]),
    ]));
    leadership.set(false, Some(2));
    let follower = Node::start(Arc::clone(&leadership));

    // UDP: LoginRejected `L` naming node 2 and its UDP address.
    let s = udp_client();
    let m = udp_login_with(&s, follower.udp, "GOOD", SECRET);
    assert_eq!(m[0], MessageType::LoginRejected as u8);
    let v = LoginRejected::read_from_bytes(&m).unwrap();
    assert_eq!(v.reason(), Ok(LoginRejectReason::NotLeader));
    assert_eq!((v.leader_id(), v.leader_hint()), (Some(2), Some(leader.udp[0])));

    // TCP: Login Rejected `L`, and the connection is closed.
    let (mut c, answer) = SoupClient::try_login(follower.tcp, "GOOD", SECRET, 0);
    assert_eq!(
        answer,
        Some((kind::LOGIN_REJECTED, vec![reject_reason::NOT_LEADER]))
    );
    assert!(c.closed_within(Duration::from_secs(5)));

    // The client library follows the hint (the second address is a dead
    // one: only the hint leads to the leader) ...
    let dead = free_udp();
    let mut u = UdpClient::new(&[follower.udp, dead], 1).unwrap();
    u.login(SECRET, Duration::from_secs(5)).unwrap();
    assert_eq!(u.server(), leader.udp[0]);
    let st = u.failover_stats();
    assert_eq!((st.refused_not_leader, st.address_switches), (1, 1));

    // ... and over TCP, where there is no hint, tries the next address.
    let mut t = TcpClient::connect(&[follower.tcp, leader.tcp[0]], 1, 1, false, SECRET).unwrap();
    assert_eq!(t.server(), leader.tcp[0]);
    assert_eq!(t.failover_stats().refused_not_leader, 1);
    t.logout().unwrap();

    // With no leader known, no hint; a client given only followers gives
    // up after its timeout instead of spinning for ever.
    leadership.set(false, None);
    let m = udp_login_with(&s, follower.udp, "GOOD", SECRET);
    let v = LoginRejected::read_from_bytes(&m).unwrap();
    assert_eq!((v.leader_id(), v.leader_hint()), (None, None));
    let mut u = UdpClient::new(&[follower.udp], 1).unwrap().with_first_session(2);
    assert!(matches!(
        u.login(SECRET, Duration::from_millis(600)),
        Err(peregrine_client::ClientError::LoginTimeout(_))
    ));
    assert!(u.failover_stats().refused_not_leader >= 1);
    assert!(matches!(
        TcpClient::connect(&[follower.tcp], 1, 3, false, "wrong"),
        Err(peregrine_client::ClientError::LoginTimeout(_))
    ));
    // A node that serves answers as a single server does.
    leadership.set(true, Some(1));
    let m = udp_login_with(&s, follower.udp, "GOOD", "wrong");
    let v = LoginRejected::read_from_bytes(&m).unwrap();
    assert_eq!(
        LoginRejection::of(&v),
        LoginRejection::NotAuthorised,
        "a serving node checks the secret"
    );
    drop(follower);
    leader.stop().unwrap();
}

/// A loopback address nothing listens on (bound, read, released).
fn free_udp() -> SocketAddr {
    UdpSocket::bind(lo()).unwrap().local_addr().unwrap()
}

fn free_tcp() -> SocketAddr {
    TcpListener::bind(lo()).unwrap().local_addr().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peregrine-failover-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A server on `udp`/`tcp` over the journal in `dir` (durable: a message
/// is answered only once it is on disk), heartbeating every 50 ms.
fn node_on(dir: &std::path::Path, udp: SocketAddr, tcp: SocketAddr) -> ServerHandle {
    let cfg = ServeConfig {
        udp: vec![udp],
        tcp: vec![tcp],
        journal: Some(dir.to_path_buf()),
        journal_mode: "durable".into(),
        journal_segment_size: 1 << 20,
        heartbeat_interval_ms: 50,
        ..server_config(1, 1)
    };
    server::start(&cfg).expect("server starts")
}

fn fast_failover() -> FailoverOptions {
    FailoverOptions {
        silence: Duration::from_millis(300),
        login_timeout: Duration::from_millis(250),
    }
}

/// Runs the simulator against A (and B, not started yet) at a fixed rate,
/// stops A a second in, starts B over A's journal on other ports, and
/// returns what the simulator saw with the first global sequence and the
/// next one after B stopped.
fn fail_over_mid_stream(transport: TransportKind, name: &str) -> (ClientResult, u64) {
    let dir = temp_dir(name);
    let a = node_on(&dir, lo(), lo());
    let (b_udp, b_tcp) = (free_udp(), free_tcp());
    let (a_addr, b_addr) = match transport {
        TransportKind::Udp => (a.udp[0], b_udp),
        TransportKind::Tcp => (a.tcp[0], b_tcp),
    };
    let cfg = ClientConfig {
        secret: SECRET.into(),
        sessions: 2,
        first_session: 4,
        mode: Mode::Rate(2_000.0),
        batch: 2,
        duration: Duration::from_millis(2_500),
        warmup: Duration::ZERO,
        drain: Duration::from_secs(5),
        keep_global_seqs: true,
        more_servers: vec![b_addr],
        failover: Some(fast_failover()),
        ..ClientConfig::new(transport, a_addr)
    };
    let run = std::thread::spawn(move || client::run(&cfg));
    std::thread::sleep(Duration::from_millis(1_000));
    let (report_a, _) = a.stop().unwrap();
    assert!(report_a.failure.is_none(), "{:?}", report_a.failure);
    assert!(report_a.next_seq > 100, "A sequenced part of the stream");
    // B comes up a little later, as a new leader would after an election.
    std::thread::sleep(Duration::from_millis(200));
    let b = node_on(&dir, b_udp, b_tcp);
    assert_eq!(b.first_seq, report_a.next_seq, "B continues A's sequence");
    let r = run
        .join()
        .unwrap()
        .expect("the simulator runs through the failover");
    let (report_b, _) = b.stop().unwrap();
    assert!(report_b.failure.is_none(), "{:?}", report_b.failure);
    let _ = std::fs::remove_dir_all(&dir);
    (r, report_b.next_seq)
}

/// Every message answered exactly once, the acknowledged global sequences
/// one gap-free run covering everything both nodes sequenced.
fn assert_exactly_once(r: &ClientResult, next_seq: u64) {
    eprintln!(
        "sent {} answered {} duplicates {} next_seq {next_seq} failover {:?}",
        r.sent, r.recorder.answered, r.recorder.duplicates, r.failover
    );
    assert!(r.sent > 2_000, "sent {}", r.sent);
    assert_eq!(r.lost(), 0, "every message answered");
    assert_eq!(r.recorder.duplicates, 0, "no message sequenced twice");
    assert_eq!(r.recorder.rejected, 0);
    assert_eq!(r.recorder.answered, r.sent);
    let mut g = r.recorder.global_seqs.clone().unwrap();
    g.sort_unstable();
    let want: Vec<u64> = (1..next_seq).collect();
    assert_eq!(g.len(), want.len(), "one global sequence per message");
    assert!(
        g == want,
        "acknowledged global sequences are 1..{next_seq}, gap-free"
    );
    let f = r.failover;
    assert!(f.failovers >= 1 && f.completed >= 1, "{f:?}");
    assert!(f.max_gap_ns > 0, "{f:?}");
}

#[test]
fn udp_client_fails_over_by_itself_exactly_once() {
    let (r, next) = fail_over_mid_stream(TransportKind::Udp, "udp");
    assert_exactly_once(&r, next);
    // Messages sent while A was silent reached no node: B had not
    // sequenced them, and they were resent to it.
    assert!(r.failover.resent > 0, "{:?}", r.failover);
}

#[test]
fn tcp_client_fails_over_by_itself_exactly_once() {
    let (r, next) = fail_over_mid_stream(TransportKind::Tcp, "tcp");
    assert_exactly_once(&r, next);
}
