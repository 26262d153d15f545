//! The load options `client` and `bench` share: how many sessions, which
//! mode, how long, what flow, and where the results go.

use clap::Args;
use peregrine_tools::client::flow::FlowKind;
use peregrine_tools::client::Mode;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Clone)]
pub struct LoadArgs {
    /// Client sessions.
    #[arg(long, default_value_t = 1)]
    pub(crate) sessions: usize,
    /// Open loop at this many messages per second.
    #[arg(long, conflicts_with_all = ["pingpong", "throughput"])]
    pub(crate) rate: Option<f64>,
    /// One message in flight (default).
    #[arg(long)]
    pub(crate) pingpong: bool,
    /// Closed loop, `--window` messages in flight.
    #[arg(long)]
    pub(crate) throughput: bool,
    /// Messages in flight in throughput mode.
    #[arg(long, default_value_t = 14 * 512)]
    pub(crate) window: usize,
    /// Messages per datagram / write. Default: 1 in ping-pong mode, 14 in
    /// throughput mode; in rate mode the messages due at the same moment
    /// are packed (up to 14), none ever held back for company.
    #[arg(long)]
    pub(crate) batch: Option<usize>,
    /// Sending time, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Warm-up discarded from the results.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) warmup: Duration,
    /// echo | orders.
    #[arg(long, default_value = "echo")]
    pub(crate) flow: FlowKind,
    /// Write the JSON summary here.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Write HdrHistogram percentile distribution here.
    #[arg(long)]
    pub(crate) hgrm: Option<PathBuf>,
    /// Number of the first session: sessions are PG + 8 digits from it
    /// (simulators sharing a server need disjoint sessions).
    #[arg(long, default_value_t = 0)]
    pub(crate) first_session: usize,
    /// The sessions' secret (sessions are PG00000000, PG00000001, ...).
    /// `bench` with an in-process server and no [[sessions]] in its config
    /// generates one.
    #[arg(long)]
    pub(crate) secret: Option<String>,
}

impl LoadArgs {
    pub(crate) fn mode(&self) -> Mode {
        if let Some(r) = self.rate {
            Mode::Rate(r)
        } else if self.throughput {
            Mode::Throughput { window: self.window }
        } else {
            Mode::PingPong
        }
    }
    pub(crate) fn batch(&self) -> usize {
        match (self.batch, self.mode()) {
            (Some(b), _) => b.clamp(1, 14),
            (None, Mode::Throughput { .. }) => 14,
            (None, Mode::Rate(_)) => 0,
            (None, Mode::PingPong) => 1,
        }
    }
    pub(crate) fn warmup(&self) -> Duration {
        self.warmup.min(self.duration / 2)
    }
}
