//! `lock_memory = true`: the server locks what start-up allocated (its
//! rings alone are 16 MiB at the default capacity) before serving, and
//! still answers; where the locked-memory limit forbids it, start-up fails
//! with an error that says how to raise the limit. Its own test binary, so
//! the lock affects no other test.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_server::config::ServeConfig;
use peregrine_server::memory_lock::locked_bytes;
use peregrine_server::ServeError;
use std::time::Duration;

#[test]
fn a_locked_server_holds_its_rings_resident_and_answers() {
    let cfg = ServeConfig {
        sessions: test_sessions(),
        udp: vec![lo()],
        idle: "yield".into(),
        lock_memory: true,
        ..ServeConfig::default()
    };
    assert_eq!(locked_bytes(), 0, "nothing locked before start");
    let srv = match peregrine_server::serve::start(&cfg) {
        Ok(srv) => srv,
        Err(ServeError::LockMemory(e)) => {
            let msg = e.to_string();
            assert!(msg.contains("ulimit -l") && msg.contains("limit is"), "{msg}");
            return;
        }
        Err(e) => panic!("start: {e}"),
    };
    let rings = 2 * cfg.ring_slots() * 128;
    assert!(
        locked_bytes() >= rings as u64,
        "VmLck {} below the rings' {rings} bytes",
        locked_bytes()
    );
    let s = udp_client();
    let session = "PG00000001";
    udp_login(&s, srv.udp[0], session);
    s.send_to(&mold(session, 1, &[&echo(1, 7), &echo(2, 8)]), srv.udp[0])
        .unwrap();
    assert_eq!(recv_blocks(&s, 2, Duration::from_secs(5)).len(), 2);
    drop(srv);
}
