//! The simulator's wait counts over real loopback sockets: against a peer
//! that never answers, every receive poll is empty and, once the window
//! is full, every sending round sends nothing; against a raw echo, the
//! answers arrive, so polls find them and the window reopens.

use peregrine_netio::UdpOptions;
use peregrine_server::idle::IdleKind;
use peregrine_tools::baseline;
use peregrine_tools::client::{self, ClientConfig, Mode, TransportKind};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

const WINDOW: usize = 14 * 4;

fn raw_throughput(to: SocketAddr, duration: Duration) -> client::ClientResult {
    let cfg = ClientConfig {
        mode: Mode::Throughput { window: WINDOW },
        batch: 14,
        duration,
        warmup: Duration::ZERO,
        drain: Duration::from_millis(50),
        raw_peer: true,
        ..ClientConfig::new(TransportKind::Udp, to)
    };
    client::run(&cfg).expect("client run")
}

#[test]
fn a_silent_peer_leaves_every_poll_empty_and_the_window_full() {
    // Bound, never read: datagrams to it are simply not answered.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = raw_throughput(silent.local_addr().unwrap(), Duration::from_millis(150));
    let w = r.waits;
    assert_eq!(r.sent, WINDOW as u64, "one window sent, then nothing");
    assert_eq!(r.lost(), r.sent, "nothing answered");
    assert!(w.polls > 100, "the loop kept polling: {w:?}");
    assert_eq!(w.empty_polls, w.polls, "no poll found anything: {w:?}");
    assert_eq!(w.rounds, w.polls, "one poll per round: {w:?}");
    assert_eq!(
        w.window_full_rounds,
        w.rounds - 1,
        "only the first round could send: {w:?}"
    );
}

#[test]
fn against_an_echo_polls_find_answers_and_the_window_reopens() {
    let echo = baseline::start_udp_echo(
        "127.0.0.1:0".parse().unwrap(),
        UdpOptions::default(),
        64,
        None,
        IdleKind::Yield,
    )
    .unwrap();
    let r = raw_throughput(echo.addr, Duration::from_millis(300));
    echo.stop();
    let w = r.waits;
    assert_eq!(r.lost(), 0, "every message answered");
    assert!(
        r.sent > 10 * WINDOW as u64,
        "the window reopened many times: {}",
        r.sent
    );
    assert!(w.empty_polls < w.polls, "some polls found answers: {w:?}");
    assert!(w.window_full_rounds < w.rounds, "some rounds could send: {w:?}");
}
