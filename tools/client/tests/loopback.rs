//! The client against a real server on loopback: login, typed orders and
//! replies, a refused login, resuming after a logout, TCP.
#![forbid(unsafe_code)]

use peregrine_client::{
    ClientError, Event, LoginRejection, Outbound, Side, TcpClient, TimeInForce, UdpClient,
};
use peregrine_netio::clock::now_ns;
use peregrine_server::config::{AppKind, ServeConfig, SessionSpec};
use peregrine_wire::message::MessageType;
use std::time::{Duration, Instant};

const SECRET: &str = "test";

fn server() -> peregrine_server::serve::ServerHandle {
    let lo = "127.0.0.1:0".parse().unwrap();
    peregrine_server::serve::start(&ServeConfig {
        udp: vec![lo],
        tcp: vec![lo],
        idle: "yield".into(),
        app: AppKind::Match,
        ring_capacity: Some(1024),
        sessions: vec![SessionSpec::block("PG", 4, SECRET)],
        ..ServeConfig::default()
    })
    .expect("server starts")
}

/// Polls `poll` until `want` events arrived or 5 s passed.
fn collect(mut poll: impl FnMut(&mut Vec<Event>), want: usize) -> Vec<Event> {
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while got.len() < want && Instant::now() < until {
        poll(&mut got);
    }
    got
}

#[test]
fn udp_sessions_log_in_trade_and_resume() {
    let srv = server();
    let addr = srv.udp[0];
    // Retransmission on, with a timeout no loopback answer takes even in a
    // debug build on a loaded CI machine: nothing may be resent here.
    let mut c = UdpClient::new(&[addr], 2)
        .unwrap()
        .with_retransmission(Duration::from_millis(500));
    c.login(SECRET, Duration::from_secs(5)).unwrap();
    assert_eq!(c.next_client_seq(0), Some(1));

    // Session 0 rests a sell, session 1 buys into it.
    let sell = c
        .send(
            0,
            &[Outbound::limit(1, 1, Side::Sell, 100, 10, TimeInForce::Gtc, 11)],
        )
        .unwrap();
    c.flush().unwrap();
    let got = collect(
        |got| {
            c.poll(|e, _| got.push(e)).unwrap();
            c.tick(now_ns()).unwrap();
        },
        1,
    );
    assert!(
        matches!(got[..], [Event::Report { session: 0, report }] if report.kind == MessageType::Accepted
            && report.client_seq == sell && report.client_ts_ns == 11 && report.leaves == 10),
        "{got:?}"
    );
    c.send(
        1,
        &[Outbound::limit(1, 1, Side::Buy, 100, 4, TimeInForce::Ioc, 12)],
    )
    .unwrap();
    // An echo and a cancel of an order that does not exist.
    c.send(1, &[Outbound::echo(13, 99), Outbound::cancel(42, 1, 14)])
        .unwrap();
    c.flush().unwrap();
    let got = collect(
        |got| {
            c.poll(|e, _| got.push(e)).unwrap();
            c.tick(now_ns()).unwrap();
        },
        5,
    );
    let fills: Vec<_> = got
        .iter()
        .filter_map(|e| match e {
            Event::Report { session, report } if report.kind == MessageType::Fill => {
                Some((*session, report.quantity, report.price))
            }
            _ => None,
        })
        .collect();
    assert!(
        fills.contains(&(0, 4, 100)) && fills.contains(&(1, 4, 100)),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|e| matches!(e, Event::Ack { session: 1, client_seq: 2, client_ts_ns: 13, tag: 99, global_seq } if *global_seq > 0)),
        "{got:?}"
    );
    assert!(
        got.iter().any(
            |e| matches!(e, Event::Reject { session: 1, client_seq: 3, order_id: 42, reason, .. }
                if *reason >= peregrine_wire::message::ENGINE_REASON_BASE)
        ),
        "{got:?}"
    );
    assert_eq!(c.retransmitted(), 0);
    assert!(c.ready(0) && c.ready(1));
    c.logout().unwrap();

    // A new client for the same sessions resumes where they left off.
    let mut again = UdpClient::new(&[addr], 2).unwrap();
    again.login(SECRET, Duration::from_secs(5)).unwrap();
    assert_eq!(again.next_client_seq(0), Some(2));
    assert_eq!(again.next_client_seq(1), Some(4));
    again.logout().unwrap();

    // A wrong secret is refused, typed.
    let mut bad = UdpClient::new(&[addr], 1).unwrap().with_first_session(3);
    match bad.login("wrong", Duration::from_secs(5)) {
        Err(ClientError::LoginRejected { session, reason }) => {
            assert_eq!(
                (session.as_str(), reason),
                ("PG00000003", LoginRejection::NotAuthorised)
            );
        }
        other => panic!("{other:?}"),
    }
    srv.stop().unwrap();
}

#[test]
fn tcp_sessions_send_and_receive_typed_replies() {
    let srv = server();
    let mut c = TcpClient::connect(&[srv.tcp[0]], 1, 2, false, SECRET).unwrap();
    c.send(0, &[Outbound::echo(5, 6)]).unwrap();
    c.flush().unwrap();
    let got = collect(
        |got| {
            c.poll(|e, _| got.push(e)).unwrap();
        },
        1,
    );
    assert!(
        matches!(
            got[..],
            [Event::Ack {
                session: 0,
                client_seq: 1,
                client_ts_ns: 5,
                tag: 6,
                ..
            }]
        ),
        "{got:?}"
    );
    c.logout().unwrap();
    assert!(matches!(
        TcpClient::connect(&[srv.tcp[0]], 1, 3, false, "wrong"),
        Err(ClientError::LoginRejected { .. })
    ));
    srv.stop().unwrap();
}
