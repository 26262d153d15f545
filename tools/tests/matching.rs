//! Orders over real UDP and TCP sockets come back as execution reports from
//! the matching engine, fills going to both the taker's and the maker's
//! session.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_server::config::{AppKind, ServeConfig};
use peregrine_wire::message::{
    ExecReport, MessageType, NewOrder, ENGINE_REASON_BASE, LAYOUT_VERSION, MESSAGE_LEN,
};
use std::time::Duration;
use zerocopy::little_endian::{I64, U32, U64};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

fn order(id: u64, side: u8, price: i64, qty: u64, ts: u64) -> [u8; MESSAGE_LEN] {
    let mut o = NewOrder::new_zeroed();
    o.msg_type = MessageType::NewOrder as u8;
    o.version = LAYOUT_VERSION;
    o.side = side;
    o.order_kind = 1;
    o.time_in_force = 1;
    o.client_ts_ns = U64::new(ts);
    o.order_id = U64::new(id);
    o.instrument = U32::new(1);
    o.price = I64::new(price);
    o.quantity = U64::new(qty);
    let mut m = [0u8; MESSAGE_LEN];
    m.copy_from_slice(o.as_bytes());
    m
}

fn report(m: &[u8; MESSAGE_LEN]) -> ExecReport {
    ExecReport::read_from_bytes(m).unwrap()
}

#[test]
fn udp_maker_and_tcp_taker_both_get_their_fill() {
    let cfg = ServeConfig {
        sessions: common::test_sessions(),
        udp: vec![lo()],
        tcp: vec![lo()],
        idle: "yield".into(),
        app: AppKind::Match,
        ..ServeConfig::default()
    };
    let srv = peregrine_server::serve::start(&cfg).unwrap();

    // Maker rests a sell of 10 @ 100 over UDP.
    let maker = udp_client();
    udp_login(&maker, srv.udp[0], "MAKER");
    maker
        .send_to(&mold("MAKER", 1, &[&order(7, 2, 100, 10, 111)]), srv.udp[0])
        .unwrap();
    let r = recv_blocks(&maker, 1, Duration::from_secs(5));
    let acc = report(&r[0].1);
    assert_eq!(acc.msg_type, MessageType::Accepted as u8);
    assert_eq!(
        (acc.order_id.get(), acc.client_seq.get(), acc.client_ts_ns.get()),
        (7, 1, 111)
    );
    assert_eq!(
        (acc.price.get(), acc.quantity.get(), acc.leaves.get()),
        (100, 10, 10)
    );

    // Taker buys 4 @ 101 over TCP: accepted, then a fill at the maker's price.
    let mut taker = SoupClient::login(srv.tcp[0], "TAKER");
    taker.send_message(&order(1, 1, 101, 4, 222));
    let a = report(&taker.next_reply(Duration::from_secs(5)).unwrap());
    assert_eq!(a.msg_type, MessageType::Accepted as u8);
    assert_eq!(
        (a.order_id.get(), a.client_seq.get(), a.client_ts_ns.get()),
        (1, 1, 222)
    );
    let f = report(&taker.next_reply(Duration::from_secs(5)).unwrap());
    assert_eq!(f.msg_type, MessageType::Fill as u8);
    assert_eq!(
        (f.price.get(), f.quantity.get(), f.leaves.get(), f.liquidity),
        (100, 4, 0, 2)
    );
    let match_id = f.match_id.get();
    assert!(match_id > 0);

    // The maker's session gets its side of the same match.
    let r = recv_blocks(&maker, 1, Duration::from_secs(5));
    let mf = report(&r[0].1);
    assert_eq!(mf.msg_type, MessageType::Fill as u8);
    assert_eq!(
        (
            mf.order_id.get(),
            mf.price.get(),
            mf.quantity.get(),
            mf.leaves.get()
        ),
        (7, 100, 4, 6)
    );
    assert_eq!((mf.liquidity, mf.match_id.get()), (1, match_id));
    assert_eq!(mf.client_seq.get(), 0, "the maker did not send this input");
    assert_eq!(
        mf.global_seq.get(),
        f.global_seq.get(),
        "both fills come from the same input"
    );

    // An order for an unknown instrument is rejected with the engine's code.
    let mut bad = order(2, 1, 100, 1, 333);
    bad[24] = 99;
    taker.send_message(&bad);
    let j = as_reject(&taker.next_reply(Duration::from_secs(5)).unwrap()).expect("a Reject");
    assert_eq!(j.reason.get(), ENGINE_REASON_BASE + 1);
    assert_eq!(
        (j.order_id.get(), j.client_seq.get(), j.rejected_type),
        (2, 2, b'O')
    );
    assert!(j.global_seq.get() > 0, "engine rejects are sequenced");

    // A side outside the enumeration never reaches the engine.
    taker.send_message(&order(3, 9, 100, 1, 444));
    let j = as_reject(&taker.next_reply(Duration::from_secs(5)).unwrap()).expect("a Reject");
    assert_eq!(j.reason.get(), 6);

    let (_, app) = srv.stop().unwrap();
    match app {
        peregrine_server::serve::ServerApp::Match(m) => {
            assert_eq!(m.engine().best_ask(1), Some(100));
            assert_eq!(m.engine().depth_at(1, peregrine_engine::Side::Sell, 100), 6);
        }
        _ => panic!("match app expected"),
    }
}

#[test]
fn order_flow_through_the_simulator_loses_nothing() {
    use peregrine_tools::client::{self, flow::FlowKind, ClientConfig, Mode, TransportKind};
    for t in [TransportKind::Udp, TransportKind::Tcp] {
        let mut cfg = ServeConfig {
            sessions: common::test_sessions(),
            idle: "yield".into(),
            app: AppKind::Match,
            ..ServeConfig::default()
        };
        match t {
            TransportKind::Udp => cfg.udp = vec![lo()],
            TransportKind::Tcp => cfg.tcp = vec![lo()],
        }
        let srv = peregrine_server::serve::start(&cfg).unwrap();
        let addr = if t == TransportKind::Udp {
            srv.udp[0]
        } else {
            srv.tcp[0]
        };
        let r = client::run(&ClientConfig {
            secret: common::SECRET.into(),
            sessions: 4,
            mode: Mode::Rate(20_000.0),
            batch: 2,
            duration: Duration::from_millis(1000),
            warmup: Duration::ZERO,
            flow: FlowKind::Orders,
            ..ClientConfig::new(t, addr)
        })
        .unwrap();
        assert!(r.sent > 1000);
        assert_eq!(r.lost(), 0, "{t:?}: every order answered");
        assert!(
            r.recorder.reports > r.sent,
            "{t:?}: fills add reports beyond one per order"
        );
        let (report, _) = srv.stop().unwrap();
        assert_eq!(report.sequencer.sequenced, r.sent);
    }
}
