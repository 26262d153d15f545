//! Logs session PG00000000 in to a Peregrine server over UDP, sends a few
//! orders, prints the typed replies and logs out.
//!
//! ```text
//! cargo run -p peregrine-client --example send_orders -- 127.0.0.1:9000 [secret]
//! ```
//!
//! The server must run the matching engine (`app = "match"`) with
//! instrument 1 and know session PG00000000 with that secret (default
//! `test`).
#![forbid(unsafe_code)]

use peregrine_client::{Event, Outbound, Side, TimeInForce, UdpClient};
use peregrine_netio::clock::now_ns;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server: SocketAddr = args
        .next()
        .ok_or("usage: send_orders <server udp address> [secret]")?
        .parse()?;
    let secret = args.next().unwrap_or_else(|| "test".into());

    let mut client = UdpClient::new(&[server], 1)?.with_retransmission(Duration::from_millis(5));
    client.login(&secret, Duration::from_secs(5))?;
    println!(
        "logged in; next client sequence {}",
        client.next_client_seq(0).unwrap_or(0)
    );

    // A resting sell, a buy that crosses it, then a cancel of what is left.
    let orders = [
        Outbound::limit(1, 1, Side::Sell, 50_010, 10, TimeInForce::Gtc, now_ns()),
        Outbound::limit(2, 1, Side::Buy, 50_010, 4, TimeInForce::Ioc, now_ns()),
        Outbound::cancel(1, 1, now_ns()),
    ];
    let first = client.send(0, &orders)?;
    client.flush()?;
    let last = first + orders.len() as u64 - 1;

    // Poll until the cancel is answered (or give up after a second).
    let until = Instant::now() + Duration::from_secs(1);
    let mut done = false;
    while !done && Instant::now() < until {
        client.poll(|e, _| {
            println!("{e:?}");
            done |= match e {
                Event::Report { report, .. } => report.client_seq == last,
                Event::Reject { client_seq, .. } => client_seq == last,
                _ => false,
            };
        })?;
        client.tick(now_ns())?;
    }
    client.logout()?;
    if !done {
        return Err("no answer to the cancel within a second".into());
    }
    Ok(())
}
