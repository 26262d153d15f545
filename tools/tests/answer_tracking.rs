//! The simulator's answer accounting end to end, over real sockets on
//! loopback: every message answered exactly once, no answer for a
//! sequence that was never sent, and the answer trackers staying at the
//! size the window asked for (their memory follows the messages in flight,
//! not the messages sent).

mod common;

use peregrine_netio::UdpOptions;
use peregrine_server::idle::IdleKind;
use peregrine_tools::baseline;
use peregrine_tools::client::recorder::HISTORY_SLOTS;
use peregrine_tools::client::{self, ClientConfig, ClientResult, Mode, TransportKind};
use std::time::Duration;

const WINDOW: usize = 14 * 8;
const SESSIONS: usize = 2;

fn throughput(t: TransportKind, addr: std::net::SocketAddr, raw: bool, first_session: usize) -> ClientResult {
    let cfg = ClientConfig {
        secret: common::SECRET.into(),
        first_session,
        sessions: SESSIONS,
        mode: Mode::Throughput { window: WINDOW },
        batch: 14,
        duration: Duration::from_millis(800),
        warmup: Duration::ZERO,
        drain: Duration::from_secs(5),
        raw_peer: raw,
        ..ClientConfig::new(t, addr)
    };
    client::run(&cfg).expect("client run")
}

fn check(what: &str, r: &ClientResult) {
    assert!(
        r.sent > 10 * WINDOW as u64,
        "{what}: a meaningful load ({} sent)",
        r.sent
    );
    assert_eq!(r.lost(), 0, "{what}: every message answered");
    assert_eq!(r.recorder.answered, r.sent, "{what}: answered once each");
    assert_eq!(r.recorder.pending(), 0, "{what}: nothing left unanswered");
    assert_eq!(
        r.recorder.never_sent, 0,
        "{what}: no answer to a sequence never sent"
    );
    assert_eq!(r.recorder.duplicates, 0, "{what}: nothing sequenced twice");
    assert_eq!(
        r.recorder.tracker_slots(),
        WINDOW.max(HISTORY_SLOTS / SESSIONS).next_power_of_two(),
        "{what}: the tracker kept the size it started with"
    );
}

#[test]
fn peregrine_over_udp_and_tcp_answers_each_message_once_in_bounded_memory() {
    let srv = common::start_server(1, 1);
    check("udp", &throughput(TransportKind::Udp, srv.udp[0], false, 0));
    check("tcp", &throughput(TransportKind::Tcp, srv.tcp[0], false, 2));
    srv.stop().unwrap();
}

#[test]
fn the_raw_echo_baseline_is_tracked_the_same_way() {
    let echo =
        baseline::start_udp_echo(common::lo(), UdpOptions::default(), 64, None, IdleKind::Yield).unwrap();
    check("udp echo", &throughput(TransportKind::Udp, echo.addr, true, 0));
    echo.stop();
    let echo = baseline::start_tcp_echo(common::lo(), 64, None, IdleKind::Yield).unwrap();
    check("tcp echo", &throughput(TransportKind::Tcp, echo.addr, true, 0));
    echo.stop();
    // The cluster bench's replication floor: every datagram comes back
    // once, after crossing the loopback TCP links to the followers.
    for nodes in [3, 5] {
        let echo = baseline::start_replicated_udp_echo(
            common::lo(),
            UdpOptions::default(),
            64,
            None,
            IdleKind::Yield,
            nodes,
        )
        .unwrap();
        let what = format!("udp echo replicated over {nodes} nodes");
        check(&what, &throughput(TransportKind::Udp, echo.addr, true, 0));
        assert!(echo.stop() > 0, "{what}: the echo counted what it sent");
    }
}
