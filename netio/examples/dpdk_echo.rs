//! A UDP echo over a DPDK port, plus the kernel-socket client that checks
//! it: the stand-in server of `scripts/dpdk-netns-test.sh` until
//! `peregrine serve --dpdk` exists.
//!
//! ```text
//! dpdk_echo serve --config FILE      # FILE has a [dpdk] section (DpdkConfig)
//! dpdk_echo client --server IP:PORT [--count N] [--size BYTES] [--window W] [--timeout-ms MS]
//! ```
//!
//! `serve` echoes every datagram back to its sender until SIGINT/SIGTERM,
//! then prints its counters. `client` (plain kernel UDP, no DPDK) sends
//! `count` datagrams numbered 0.., at most `window` unanswered at a time,
//! and exits 0 only if every one came back exactly once with its contents
//! intact.

use peregrine_netio::dpdk::{DpdkConfig, DpdkPort, Eal};
use peregrine_netio::{DatagramPort, PacketBatch, Port};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn num(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match arg(args, name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("{name}: not a number: {v}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("client") => client(&args[1..]),
        _ => Err("usage: dpdk_echo serve --config FILE | client --server IP:PORT [--count N] [--size B] [--window W] [--timeout-ms MS]".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpdk_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &[String]) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct File {
        dpdk: DpdkConfig,
    }
    let path = arg(args, "--config").ok_or("serve needs --config FILE")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let cfg = toml::from_str::<File>(&text)
        .map_err(|e| format!("{path}: {e}"))?
        .dpdk;
    cfg.validate().map_err(|e| e.to_string())?;

    // SAFETY: installing an async-signal-safe handler (one atomic store).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let eal = Eal::init(&cfg.eal_args).map_err(|e| e.to_string())?;
    let mut port = DpdkPort::open_queue(eal, &cfg, 0).map_err(|e| e.to_string())?;
    let link = port.link().map_err(|e| e.to_string())?;
    println!(
        "ready port={} mac={} ip={} udp_port={} link_up={} tx_cksum_offload={:?}",
        port.port_id(),
        port.mac(),
        cfg.ip,
        cfg.udp_port,
        link.up,
        port.tx_checksum_offload()
    );
    let mut batch = PacketBatch::new(usize::from(cfg.burst));
    while !STOP.load(Ordering::Relaxed) {
        let n = port.recv(&mut batch).map_err(|e| e.to_string())?;
        if n > 0 {
            // Entries carry their sender as peer: sending the batch echoes.
            port.send(&mut batch).map_err(|e| e.to_string())?;
        } else {
            std::hint::spin_loop();
        }
    }
    println!("counters {:?}", port.counters());
    println!("stats {:?}", port.stats());
    Ok(())
}

fn client(args: &[String]) -> Result<(), String> {
    let server: SocketAddr = arg(args, "--server")
        .ok_or("client needs --server IP:PORT")?
        .parse()
        .map_err(|e| format!("--server: {e}"))?;
    let count = num(args, "--count", 1000)?;
    let size = num(args, "--size", 100)?.clamp(8, 1472) as usize;
    let window = num(args, "--window", 16)?.max(1);
    let timeout = Duration::from_millis(num(args, "--timeout-ms", 5000)?);

    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let fill = |seq: u64, buf: &mut [u8]| {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        for (i, b) in buf[8..].iter_mut().enumerate() {
            *b = (seq as u8).wrapping_add(i as u8);
        }
    };
    let mut out = vec![0u8; size];
    let mut inb = vec![0u8; 2048];
    let mut expect = vec![0u8; size];
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let (mut next, mut corrupt, mut received) = (0u64, 0u64, 0u64);
    let mut last_progress = Instant::now();
    let started = Instant::now();
    while received < count {
        while next < count && next - received < window {
            fill(next, &mut out);
            sock.send(&out).map_err(|e| format!("send: {e}"))?;
            next += 1;
        }
        match sock.recv(&mut inb) {
            Ok(n) => {
                if n != size {
                    corrupt += 1;
                    continue;
                }
                let seq = u64::from_le_bytes(inb[..8].try_into().unwrap_or_default());
                fill(seq, &mut expect);
                if seq >= count || inb[..n] != expect[..] {
                    corrupt += 1;
                    continue;
                }
                let c = seen.entry(seq).or_insert(0);
                *c += 1;
                if *c == 1 {
                    received += 1;
                    last_progress = Instant::now();
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                // A lost datagram stalls the window: give up after the
                // timeout and report what is missing.
                if last_progress.elapsed() > timeout {
                    break;
                }
            }
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
    let missing: Vec<u64> = (0..next).filter(|s| !seen.contains_key(s)).collect();
    let dups: u64 = seen.values().map(|&c| u64::from(c - 1)).sum();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "client: sent={next} echoed={} missing={} duplicates={dups} corrupt={corrupt} in {secs:.3}s",
        seen.len(),
        missing.len()
    );
    if !missing.is_empty() {
        let show: Vec<_> = missing.iter().take(10).collect();
        println!("client: first missing sequences: {show:?}");
    }
    if next == count && missing.is_empty() && dups == 0 && corrupt == 0 {
        println!("client: OK, all {count} datagrams echoed exactly once");
        Ok(())
    } else {
        Err("echo check FAILED".into())
    }
}
