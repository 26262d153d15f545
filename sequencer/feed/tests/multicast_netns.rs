//! Multicast for real: the feed sends to a group and two consumers joined
//! to it on one host both receive everything. Runs only as root with `ip`
//! available: it creates a network namespace (so the group traffic stays
//! inside it), brings its loopback up with multicast on, and runs the
//! body in a child process entered into the namespace with `ip netns
//! exec`. The namespace is removed on the way out, also on failure.
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_feed::{ConsumerConfig, FeedConfig, FeedConsumer, FeedService};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set in the child's environment.
const CHILD_ENV: &str = "PEREGRINE_FEED_MCAST_CHILD";
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 42, 1);
const PORT: u16 = 30_001;

/// Removes the namespace when dropped (also while unwinding).
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).status().is_ok_and(|s| s.success())
}

#[test]
fn multicast_group_in_a_network_namespace() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        eprintln!("skipped: needs root (creates a network namespace)");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: the `ip` command is not available");
        return;
    }
    let ns = Namespace(format!("pgfeed-{}", std::process::id()));
    assert!(ip(&["netns", "add", &ns.0]), "ip netns add {}", ns.0);
    assert!(ip(&[
        "netns",
        "exec",
        &ns.0,
        "ip",
        "link",
        "set",
        "lo",
        "up",
        "multicast",
        "on"
    ]));
    assert!(ip(&[
        "netns",
        "exec",
        &ns.0,
        "ip",
        "route",
        "add",
        "224.0.0.0/4",
        "dev",
        "lo"
    ]));
    let exe = std::env::current_exe().expect("test binary path");
    let status = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(exe)
        .args([
            "--exact",
            "multicast_body",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .status()
        .expect("run the child");
    assert!(status.success(), "the multicast body failed inside {}", ns.0);
}

#[test]
#[ignore = "the body of multicast_group_in_a_network_namespace, run inside its namespace"]
fn multicast_body() {
    if std::env::var_os(CHILD_ENV).is_none() {
        eprintln!("skipped: runs only inside the namespace its parent test creates");
        return;
    }
    const N: u64 = 5_000;
    let t = TempDir::new("mcast");
    let mut w = writer(t.path(), 1000);
    let written = append(&mut w, 1, N);
    let lo = Ipv4Addr::LOCALHOST;
    let member = || {
        let mut cfg = ConsumerConfig::new(SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)), None);
        cfg.group = Some(GROUP);
        cfg.interface = lo;
        cfg.session = Some("MCAST".into());
        cfg.request_timeout = Duration::from_millis(20);
        FeedConsumer::new(cfg).expect("join the group")
    };
    let (mut a, mut b) = (member(), member());
    let mut cfg = FeedConfig::new(vec![SocketAddr::from((GROUP, PORT))]);
    cfg.session = "MCAST".into();
    cfg.interface = Some(lo);
    cfg.rerequest = Some(localhost());
    cfg.heartbeat_ms = 20;
    let stop = Arc::new(AtomicBool::new(false));
    let h = FeedService::spawn(
        cfg,
        t.path().to_path_buf(),
        1,
        Arc::new(AtomicU64::new(N)),
        None,
        stop.clone(),
    )
    .expect("feed");
    a.set_rerequest(h.rerequest_addr());
    b.set_rerequest(h.rerequest_addr());
    let want = |s: u64| written[(s - 1) as usize];
    for c in [&mut a, &mut b] {
        let got = drain_until(c, N, Duration::from_secs(60), &want);
        assert_eq!(got, (1..=N).collect::<Vec<_>>());
        eprintln!("member stats: {:?}", c.stats());
        assert!(c.stats().packets > 0);
    }
    stop.store(true, Ordering::Release);
    let counters = h.join().expect("feed stops cleanly");
    assert_eq!(counters.records, N);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.end_of_session() && b.end_of_session()) {
        assert!(Instant::now() < deadline, "End of Session reached both members");
        a.poll(&mut |_| panic!("nothing more")).unwrap();
        b.poll(&mut |_| panic!("nothing more")).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    w.close().unwrap();
}
