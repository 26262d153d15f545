//! `peregrine exporter` as Prometheus sees it: a live server's counters
//! scraped over HTTP, in both exposition formats, and accepted by
//! `promtool check metrics` (required under CI, which installs it).
#![forbid(unsafe_code)]

mod common;

use common::*;
use peregrine_server::config::ServeConfig;
use peregrine_tools::exporter::Exporter;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn get(addr: std::net::SocketAddr, path: &str, accept: &str) -> (String, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: {accept}\r\n\r\n").unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

/// `promtool check metrics` on `text`: Some(ok) when promtool ran.
fn promtool(text: &str) -> Option<(bool, String)> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(text.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), said))
}

#[test]
fn a_live_servers_counters_are_scraped_in_prometheus_and_openmetrics_text() {
    let path = std::env::temp_dir().join(format!("peregrine-exporter-test-{}.stats", std::process::id()));
    let cfg = ServeConfig {
        counters_file: Some(path.clone()),
        ..server_config(1, 1)
    };
    let srv = peregrine_server::serve::start(&cfg).unwrap();
    let s = udp_client();
    udp_login(&s, srv.udp[0], "STAT");
    s.send_to(&mold("STAT", 1, &[&echo(1, 1), &echo(2, 2)]), srv.udp[0])
        .unwrap();
    assert_eq!(recv_blocks(&s, 2, Duration::from_secs(5)).len(), 2);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let exporter = Exporter {
        counters_file: path.clone(),
        config: vec![("layout", "shared".into())],
    };
    let stop2 = Arc::clone(&stop);
    let t = std::thread::spawn(move || exporter.serve(listener, stop2));

    // The counters file is published at intervals: wait for the messages.
    let until = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let (head, body) = get(addr, "/metrics", "text/plain");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
        if body.contains("peregrine_sequencer_sequenced_total 2\n") {
            break body;
        }
        assert!(Instant::now() < until, "sequenced never reached 2:\n{body}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        body.contains(&format!(
            "peregrine_gateway_accepted_total{{gateway=\"0\",transport=\"udp\",addr=\"{}\"}} 2\n",
            srv.udp[0]
        )),
        "{body}"
    );
    assert!(body.contains("transport=\"tcp\""), "both gateways: {body}");
    assert!(
        body.contains("peregrine_config_info{layout=\"shared\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE peregrine_sequencer_next_seq gauge\nperegrine_sequencer_next_seq 3\n"),
        "{body}"
    );

    let (head, om) = get(
        addr,
        "/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    );
    assert!(
        head.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(
        om.contains("# TYPE peregrine_sequencer_sequenced counter\n"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let (head, _) = get(addr, "/nope", "*/*");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    // Bad bytes: a request line that is not HTTP gets 405; a request that
    // never ends within 8 KiB is dropped unanswered; the exporter keeps
    // serving after both.
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"\x00\xff\xfe junk\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 405"), "{text:?}");
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(&[b'x'; 9000]);
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty(), "an endless request gets no answer: {rest:?}");
    let (head, _) = get(addr, "/metrics", "text/plain");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");

    match promtool(&body) {
        Some((ok, said)) => assert!(
            ok,
            "promtool check metrics refused the exposition:\n{said}\n{body}"
        ),
        None if std::env::var_os("CI").is_some() => {
            panic!("promtool is not installed (CI installs the prometheus package)")
        }
        None => eprintln!("promtool not installed: exposition not linted (CI lints it)"),
    }

    stop.store(true, Ordering::Relaxed);
    t.join().unwrap().unwrap();
    drop(srv);
    let _ = std::fs::remove_file(&path);
}
