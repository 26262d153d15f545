//! `peregrine relay`: a lossy UDP relay between clients and a server.

use clap::Args;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Args)]
pub struct RelayArgs {
    /// Where clients send.
    #[arg(long)]
    listen: SocketAddr,
    /// The server.
    #[arg(long)]
    upstream: SocketAddr,
    /// Probability of each fault (drop, duplicate, reorder) per datagram and direction.
    #[arg(long)]
    loss: f64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(a: RelayArgs) -> anyhow::Result<()> {
    use peregrine_tools::relay::{start, Faults};
    let r = start(a.listen, a.upstream, Faults::uniform(a.loss), a.seed)?;
    println!(
        "relay {} -> {} with {:.1}% drop/duplicate/reorder each way; Ctrl-C to stop",
        r.addr,
        a.upstream,
        a.loss * 100.0
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = std::sync::Arc::clone(&stop);
    ctrlc::set_handler(move || s2.store(true, Ordering::Relaxed))?;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("{:?}", r.stop()?);
    Ok(())
}
