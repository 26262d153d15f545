//! Server configuration: a TOML file (`--config FILE`) whose keys mirror the
//! `serve` flags; a flag given on the command line wins over the file.
//!
//! ```toml
//! udp = ["127.0.0.1:9000"]
//! tcp = ["127.0.0.1:9001"]
//! layout = "shared"          # or "dedicated"
//! cores = [1]                # shared: first; dedicated: sequencer, then gateways
//! idle = "spin"              # spin | yield | backoff
//! app = "echo"               # echo | match
//! ring_capacity = 1024       # slots per ring, power of two (default by layout)
//! recv_buffer = 8388608      # socket buffer bytes
//! send_buffer = 8388608
//! udp_segmentation = true    # UDP GSO for runs of replies to one client
//! udp_receive_coalescing = true # UDP GRO: runs of client datagrams as one receive
//! max_sessions = 4096
//! rx_burst = 32
//! ```

use crate::idle::IdleKind;
use crate::runtime::Layout;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// Default slots per ring with the `shared` layout. One thread polls the
/// gateways, then the sequencer, then the replies, so an input ring holds
/// about one round's receive bursts (32 datagrams of 14 messages, 448, per
/// UDP gateway, and more when the kernel coalesces runs; what does not
/// fit waits in the port for the next round)
/// and an output ring one poll's replies (the sequencer's overflow queue
/// takes any excess): 1,024 slots (128 KiB) cover a round, and the
/// round's slots stay in the core's nearest caches. A ring walks all its
/// slots whatever its occupancy, so at 65,536 slots (8 MiB) every slot
/// written is a cache miss; measured under `bench --throughput`, 1,024
/// slots also beat 4,096 (longer rounds, more cache lines per round) and
/// 256 (rounds too short to spread the per-round costs).
pub const SHARED_RING_CAPACITY: usize = 1024;

/// Default slots per ring with the `dedicated` layout, where each ring also
/// absorbs the time its consumer thread is away (a journal sync, a
/// preemption): 65,536 slots, 13 ms of a 5M messages/s stream.
pub const DEDICATED_RING_CAPACITY: usize = 1 << 16;

/// Which application the sequencer feeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// Pure sequencing: every message acknowledged.
    #[default]
    Echo,
    /// The matching engine.
    Match,
}

impl std::str::FromStr for AppKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "echo" => Ok(AppKind::Echo),
            "match" => Ok(AppKind::Match),
            o => Err(format!("unknown app {o:?} (echo, match)")),
        }
    }
}

/// Everything `peregrine serve` needs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// UDP (MoldUDP64) listen addresses, one gateway each.
    pub udp: Vec<SocketAddr>,
    /// TCP (SoupBinTCP) listen addresses, one gateway each.
    pub tcp: Vec<SocketAddr>,
    /// `shared` or `dedicated`.
    pub layout: String,
    /// Cores to pin to.
    pub cores: Vec<usize>,
    /// `spin`, `yield` or `backoff`.
    pub idle: String,
    /// The application.
    pub app: AppKind,
    /// Slots per ring (power of two); `None`: by layout, see
    /// [`ring_slots`](Self::ring_slots).
    pub ring_capacity: Option<usize>,
    /// Socket receive buffer, bytes.
    pub recv_buffer: usize,
    /// Socket send buffer, bytes.
    pub send_buffer: usize,
    /// UDP: send each run of reply datagrams to one client as one
    /// segmented message (UDP GSO, `UDP_SEGMENT`); off sends them one by
    /// one. The port falls back by itself where the kernel refuses.
    pub udp_segmentation: bool,
    /// UDP: let the kernel hand over runs of datagrams from one client as
    /// one message (UDP GRO, `UDP_GRO`), cut back into datagrams by the
    /// port; off receives them one by one. Off by itself where the kernel
    /// refuses the option, and under OpenOnload.
    pub udp_receive_coalescing: bool,
    /// Most sessions per gateway.
    pub max_sessions: usize,
    /// Receive messages per burst: datagrams, or with UDP receive
    /// coalescing runs of up to 64 datagrams each; TCP reads.
    pub rx_burst: usize,
    /// Per-session limit, messages per second (0: unlimited). Messages over
    /// it are rejected (reason 7), never sequenced.
    pub session_rate_limit: u64,
    /// Messages a session may send at once before the limit bites.
    pub session_rate_burst: u64,
    /// Replies kept per session to answer retransmissions (100 bytes each).
    pub reply_log_depth: usize,
    /// UDP: messages per session held when they arrive ahead of a gap.
    pub reorder_window: usize,
    /// Heartbeat to a session sent nothing for this many milliseconds.
    pub heartbeat_interval_ms: u64,
    /// A client silent this many milliseconds is gone (TCP: connection
    /// closed; UDP: no more heartbeats).
    pub idle_timeout_ms: u64,
    /// Shared-memory counters file read by `peregrine stat` (none when
    /// absent; `serve` defaults it to /dev/shm/peregrine.stats).
    pub counters_file: Option<std::path::PathBuf>,
    /// Journal directory; no journal when absent. On start the journal is
    /// recovered and replayed through the application.
    pub journal: Option<std::path::PathBuf>,
    /// `async` (replies leave once sequenced) or `durable` (a reply leaves
    /// only after its record is flushed).
    pub journal_mode: String,
    /// Durable-mode flush: `msync` or `fdatasync`.
    pub journal_flush: String,
    /// Journal segment size in bytes.
    pub journal_segment_size: u64,
    /// Matching engine configuration (`[engine]` table) for `app = "match"`.
    pub engine: Option<peregrine_engine::EngineConfig>,
    /// Who may log in (`[[sessions]]` tables); a session's id is its
    /// position in the expanded list, so only ever append.
    pub sessions: Vec<SessionSpec>,
    /// A second login to a session live elsewhere: `reject` (Login Rejected
    /// `S`) or `takeover` (the new login wins).
    pub login_policy: String,
    /// UDP: after the input ring has been full this many microseconds, new
    /// messages get a Busy reject (reason 4) instead of waiting.
    pub busy_after_us: u64,
    /// UDP: a gap still open this many microseconds after it was reported
    /// (a SequenceGap reject) is reported again.
    pub gap_report_repeat_us: u64,
    /// Record reply latency histograms (each gateway's receive-to-transmit
    /// time, the sequencer's sequence-to-reply-ready time). False turns
    /// recording off entirely (no clock read, no record; the counters
    /// file's latency sections stay at zero), for measuring its cost.
    pub latency_histograms: bool,
    /// Lock the process's memory into RAM once start-up has allocated it
    /// (`mlockall(MCL_CURRENT)`): every ring, table, log and pool is
    /// faulted in before the first message and stays resident, so the
    /// steady state takes no page faults. Start-up fails if the
    /// locked-memory limit is too low (`ulimit -l`, CAP_IPC_LOCK).
    pub lock_memory: bool,
    /// Run as one node of a replicated cluster (`[cluster]` table: this
    /// node's id, every member with its Raft and client addresses, timing,
    /// the ack level). Needs `journal`: the journal is the node's Raft log.
    /// Listen addresses default to this member's `udp`/`tcp`.
    pub cluster: Option<peregrine_cluster::ClusterConfig>,
    /// Publish the sequenced stream (`[feed]` table: MoldUDP64
    /// destinations, the re-request server, the market-data stream). Needs
    /// `journal`: the feed thread reads it; in a cluster it publishes
    /// committed records only, so any node (a follower too) can run it.
    pub feed: Option<peregrine_feed::FeedConfig>,
    /// DPDK gateways (`[dpdk]` table): one per RX queue of the port.
    #[cfg(feature = "dpdk")]
    pub dpdk: Option<peregrine_netio::dpdk::DpdkConfig>,
    /// DPDK gateways (`[dpdk]` table); this build has no DPDK support, so
    /// starting with one is an error that says how to rebuild.
    #[cfg(not(feature = "dpdk"))]
    pub dpdk: Option<toml::Table>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            udp: Vec::new(),
            tcp: Vec::new(),
            layout: "shared".into(),
            cores: Vec::new(),
            idle: "spin".into(),
            app: AppKind::Echo,
            ring_capacity: None,
            recv_buffer: 8 << 20,
            send_buffer: 8 << 20,
            udp_segmentation: true,
            udp_receive_coalescing: true,
            max_sessions: 4096,
            rx_burst: 32,
            session_rate_limit: 0,
            session_rate_burst: 1000,
            reply_log_depth: 8192,
            reorder_window: 8192,
            heartbeat_interval_ms: 1000,
            idle_timeout_ms: 15_000,
            counters_file: None,
            journal: None,
            journal_mode: "async".into(),
            journal_flush: "msync".into(),
            journal_segment_size: 64 << 20,
            engine: None,
            sessions: Vec::new(),
            login_policy: "reject".into(),
            busy_after_us: 5_000,
            gap_report_repeat_us: 2_000,
            latency_histograms: true,
            lock_memory: false,
            cluster: None,
            feed: None,
            dpdk: None,
        }
    }
}

/// One `[[sessions]]` entry: a single session (`name`), or a block of
/// `count` sessions named `prefix` + a zero-padded number from `first`
/// (`prefix = "PG", count = 3` gives PG00000000, PG00000001, PG00000002).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// Session name, 1–10 printable ASCII characters.
    pub name: Option<String>,
    /// Name prefix of a block of sessions.
    pub prefix: Option<String>,
    /// Sessions in the block.
    pub count: Option<usize>,
    /// Number of the block's first session.
    #[serde(default)]
    pub first: usize,
    /// The secret (SoupBinTCP password / UDP Login secret), 1–10 printable
    /// ASCII characters.
    pub secret: String,
}

impl SessionSpec {
    /// One session.
    pub fn single(name: &str, secret: &str) -> SessionSpec {
        SessionSpec {
            name: Some(name.into()),
            secret: secret.into(),
            ..SessionSpec::default()
        }
    }

    /// A block of `count` sessions named `prefix` + number.
    pub fn block(prefix: &str, count: usize, secret: &str) -> SessionSpec {
        SessionSpec {
            prefix: Some(prefix.into()),
            count: Some(count),
            secret: secret.into(),
            ..SessionSpec::default()
        }
    }

    /// The session names this entry stands for.
    pub fn names(&self) -> Result<Vec<String>, ConfigError> {
        let bad = |why: String| ConfigError::Invalid("sessions", why);
        match (&self.name, &self.prefix, self.count) {
            (Some(n), None, None) => Ok(vec![n.clone()]),
            (None, Some(p), Some(count)) => {
                let digits = 10usize.saturating_sub(p.len());
                if digits == 0 || (self.first + count) as u128 > 10u128.pow(digits as u32) {
                    return Err(bad(format!(
                        "prefix {p:?} leaves too few digits for {count} sessions"
                    )));
                }
                Ok((self.first..self.first + count)
                    .map(|i| format!("{p}{i:0digits$}"))
                    .collect())
            }
            _ => Err(bad(
                "each entry needs either `name`, or `prefix` and `count`".into()
            )),
        }
    }
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// The file is not valid TOML for this schema.
    #[error("invalid config {0}: {1}")]
    Parse(String, toml::de::Error),
    /// A value is out of range.
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
}

impl ServeConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.display().to_string(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.display().to_string(), e))
    }

    /// Slots per gateway ring: `ring_capacity` if set, else
    /// [`SHARED_RING_CAPACITY`] for the `shared` layout and
    /// [`DEDICATED_RING_CAPACITY`] for `dedicated`.
    pub fn ring_slots(&self) -> usize {
        self.ring_capacity.unwrap_or(match self.layout() {
            Ok(Layout::Shared) => SHARED_RING_CAPACITY,
            _ => DEDICATED_RING_CAPACITY,
        })
    }

    /// The parsed layout.
    pub fn layout(&self) -> Result<Layout, ConfigError> {
        self.layout.parse().map_err(|e| ConfigError::Invalid("layout", e))
    }

    /// The parsed idle strategy.
    pub fn idle(&self) -> Result<IdleKind, ConfigError> {
        self.idle.parse().map_err(|e| ConfigError::Invalid("idle", e))
    }

    /// The journal mode, if a journal is configured.
    pub fn journal_mode(&self) -> Result<Option<peregrine_sequencer::JournalMode>, ConfigError> {
        use peregrine_journal::FlushPolicy;
        use peregrine_sequencer::JournalMode;
        if self.journal.is_none() {
            return Ok(None);
        }
        let policy = match self.journal_flush.as_str() {
            "msync" => FlushPolicy::Msync,
            "fdatasync" => FlushPolicy::Fdatasync,
            o => {
                return Err(ConfigError::Invalid(
                    "journal_flush",
                    format!("{o:?} (msync, fdatasync)"),
                ))
            }
        };
        match self.journal_mode.as_str() {
            "async" => Ok(Some(JournalMode::Async)),
            "durable" => Ok(Some(JournalMode::Durable(policy))),
            o => Err(ConfigError::Invalid(
                "journal_mode",
                format!("{o:?} (async, durable)"),
            )),
        }
    }

    /// Every configured session's credentials, in id order.
    pub fn credentials(&self) -> Result<Vec<peregrine_gateway::directory::SessionCredential>, ConfigError> {
        use peregrine_gateway::directory::SessionCredential;
        use peregrine_wire::alpha::checked_alpha_field;
        let mut out = Vec::new();
        for spec in &self.sessions {
            let secret = checked_alpha_field(&spec.secret)
                .map_err(|e| ConfigError::Invalid("sessions", format!("secret {e}")))?;
            for n in spec.names()? {
                let name = checked_alpha_field(&n)
                    .map_err(|e| ConfigError::Invalid("sessions", format!("name {n:?} {e}")))?;
                out.push(SessionCredential { name, secret });
            }
        }
        if out.len() > self.max_sessions {
            return Err(ConfigError::Invalid(
                "sessions",
                format!(
                    "{} configured, more than max_sessions = {}",
                    out.len(),
                    self.max_sessions
                ),
            ));
        }
        Ok(out)
    }

    /// The parsed login policy.
    pub fn login_policy(&self) -> Result<peregrine_gateway::directory::LoginPolicy, ConfigError> {
        use peregrine_gateway::directory::LoginPolicy;
        match self.login_policy.as_str() {
            "reject" => Ok(LoginPolicy::Reject),
            "takeover" => Ok(LoginPolicy::TakeOver),
            o => Err(ConfigError::Invalid(
                "login_policy",
                format!("{o:?} (reject, takeover)"),
            )),
        }
    }

    /// Checks values that would otherwise fail deep inside start-up.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.layout()?;
        self.login_policy()?;
        if self.credentials()?.is_empty() {
            return Err(ConfigError::Invalid(
                "sessions",
                "no [[sessions]] configured: nobody could log in (see docs/peregrine.example.toml)".into(),
            ));
        }
        self.idle()?;
        self.journal_mode()?;
        if let Some(f) = &self.feed {
            f.validate().map_err(|e| ConfigError::Invalid("[feed]", e))?;
            if self.journal.is_none() {
                return Err(ConfigError::Invalid(
                    "[feed]",
                    "the feed publishes from the journal: set `journal`".into(),
                ));
            }
            if f.market_data.is_some() && self.app != AppKind::Match {
                return Err(ConfigError::Invalid(
                    "[feed.market_data]",
                    "the market-data stream is the matching engine's output: needs app = \"match\"".into(),
                ));
            }
        }
        if let Some(c) = &self.cluster {
            c.validate()
                .map_err(|e| ConfigError::Invalid("[cluster]", e.to_string()))?;
            if self.journal.is_none() {
                return Err(ConfigError::Invalid(
                    "[cluster]",
                    "a cluster node needs `journal`: its journal is its Raft log".into(),
                ));
            }
            if self.dpdk.is_some() {
                return Err(ConfigError::Invalid(
                    "[cluster]",
                    "cluster nodes serve clients over kernel UDP/TCP (or Onload) only; remove [dpdk]".into(),
                ));
            }
        }
        let member = self.cluster.as_ref().and_then(|c| c.this_member());
        let member_listens = member.is_some_and(|m| !m.udp.is_empty() || !m.tcp.is_empty());
        if self.udp.is_empty() && self.tcp.is_empty() && self.dpdk.is_none() && !member_listens {
            return Err(ConfigError::Invalid(
                "listen addresses",
                "give at least one --udp or --tcp, or a [dpdk] section".into(),
            ));
        }
        #[cfg(not(feature = "dpdk"))]
        if self.dpdk.is_some() {
            return Err(ConfigError::Invalid(
                "[dpdk]",
                "this peregrine was built without DPDK; rebuild with `--features peregrine-tools/dpdk` \
                 after `apt-get install libdpdk-dev pkg-config libclang-dev`"
                    .into(),
            ));
        }
        let ring_slots = self.ring_slots();
        if ring_slots < 2 || !ring_slots.is_power_of_two() {
            return Err(ConfigError::Invalid(
                "ring_capacity",
                format!("{ring_slots} is not a power of two"),
            ));
        }
        if self.max_sessions == 0 || self.rx_burst == 0 {
            return Err(ConfigError::Invalid(
                "max_sessions/rx_burst",
                "must be > 0".into(),
            ));
        }
        if self.udp.len() + self.tcp.len() > u16::MAX as usize {
            return Err(ConfigError::Invalid("gateways", "too many".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_sized_by_layout_unless_set() {
        let parse = |text: &str| toml::from_str::<ServeConfig>(text).unwrap();
        let shared = parse("udp = [\"127.0.0.1:1\"]\nlayout = \"shared\"");
        let dedicated = parse("udp = [\"127.0.0.1:1\"]\nlayout = \"dedicated\"");
        let set = parse("udp = [\"127.0.0.1:1\"]\nlayout = \"dedicated\"\nring_capacity = 512");
        assert_eq!(shared.ring_slots(), SHARED_RING_CAPACITY);
        assert_eq!(dedicated.ring_slots(), DEDICATED_RING_CAPACITY);
        assert_eq!(set.ring_slots(), 512);
        assert_eq!(
            ServeConfig::default().ring_slots(),
            SHARED_RING_CAPACITY,
            "shared is the default layout"
        );
        assert!(ServeConfig::default().udp_segmentation);
        assert!(ServeConfig::default().udp_receive_coalescing);
    }

    #[test]
    fn every_key_parses() {
        let c: ServeConfig = toml::from_str(
            r#"
            udp = ["127.0.0.1:9000"]
            tcp = ["127.0.0.1:9001"]
            layout = "dedicated"
            cores = [0, 1]
            idle = "backoff"
            app = "echo"
            ring_capacity = 1024
            recv_buffer = 1
            send_buffer = 2
            udp_segmentation = false
            udp_receive_coalescing = false
            max_sessions = 3
            rx_burst = 4
            login_policy = "takeover"
            busy_after_us = 7
            [[sessions]]
            name = "ALPHA"
            secret = "pw"
            [[sessions]]
            prefix = "B"
            count = 2
            first = 8
            secret = "x"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.layout().unwrap(), Layout::Dedicated);
        assert_eq!((c.ring_slots(), c.max_sessions, c.rx_burst), (1024, 3, 4));
        assert!(!c.udp_segmentation);
        assert!(!c.udp_receive_coalescing);
        let names: Vec<String> = c
            .credentials()
            .unwrap()
            .iter()
            .map(|s| String::from_utf8_lossy(&s.name).trim_end().to_string())
            .collect();
        assert_eq!(names, ["ALPHA", "B000000008", "B000000009"]);
        assert_eq!(
            c.login_policy().unwrap(),
            peregrine_gateway::directory::LoginPolicy::TakeOver
        );
    }

    #[test]
    fn latency_histograms_default_on_and_can_be_turned_off() {
        let parse = |extra: &str| -> ServeConfig {
            toml::from_str(&format!(
                "udp = [\"127.0.0.1:1\"]\n{extra}\n[[sessions]]\nname = \"A\"\nsecret = \"x\""
            ))
            .unwrap()
        };
        assert!(ServeConfig::default().latency_histograms);
        assert!(parse("").latency_histograms);
        assert!(parse("latency_histograms = true").latency_histograms);
        let off = parse("latency_histograms = false");
        assert!(!off.latency_histograms);
        off.validate().unwrap();
        assert!(toml::from_str::<ServeConfig>("latency_histograms = \"no\"").is_err());
    }

    #[test]
    fn sessions_are_required_and_checked() {
        let base = |extra: &str| -> ServeConfig {
            toml::from_str(&format!("udp = [\"127.0.0.1:1\"]\n{extra}")).unwrap()
        };
        assert!(base("").validate().is_err(), "no sessions: nobody could log in");
        for bad in [
            "[[sessions]]\nname = \"ELEVENCHARS\"\nsecret = \"x\"",
            "[[sessions]]\nname = \"A\"\nsecret = \"has space\"",
            "[[sessions]]\nprefix = \"P\"\nsecret = \"x\"",
            "[[sessions]]\nprefix = \"PREFIX789\"\ncount = 11\nsecret = \"x\"",
            "login_policy = \"maybe\"\n[[sessions]]\nname = \"A\"\nsecret = \"x\"",
        ] {
            assert!(base(bad).validate().is_err(), "{bad}");
        }
        assert!(
            base("[[sessions]]\nprefix = \"PREFIX789\"\ncount = 10\nsecret = \"x\"")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn the_cluster_example_is_valid_and_needs_a_journal() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/peregrine-cluster.example.toml"
        );
        let mut c = ServeConfig::from_file(std::path::Path::new(path)).unwrap();
        let cluster = c.cluster.clone().expect("[cluster] section");
        assert_eq!((cluster.node_id, cluster.members.len()), (1, 3));
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid("[cluster]", _))),
            "no journal given"
        );
        c.journal = Some("/tmp/node1".into());
        c.validate().unwrap();
        c.cluster.as_mut().unwrap().node_id = 4;
        assert!(c.validate().is_err(), "node 4 is not a member");
    }

    #[test]
    fn the_example_feed_section_parses_and_needs_a_journal_and_the_match_app() {
        // The commented [feed] block of the example, uncommented.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/peregrine.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("# [feed]").expect("the example shows [feed]");
        let feed: String = text[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let mut c: ServeConfig = toml::from_str(&format!(
            "udp = [\"127.0.0.1:9000\"]\napp = \"match\"\njournal = \"/tmp/j\"\n[[sessions]]\nname = \"A\"\nsecret = \"s\"\n{feed}"
        ))
        .unwrap();
        c.validate().unwrap();
        let f = c.feed.clone().unwrap();
        assert_eq!((f.rerequest_max_packets, f.rerequest_linger_ms), (100, 2000));
        assert_eq!(f.market_data.as_ref().unwrap().retain, 1 << 20);
        c.journal = None;
        assert!(c.validate().is_err(), "the feed reads the journal");
        c.journal = Some("/tmp/j".into());
        c.app = AppKind::Echo;
        assert!(c.validate().is_err(), "market data needs the matching engine");
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/peregrine.example.toml");
        let c = ServeConfig::from_file(std::path::Path::new(path)).unwrap();
        c.validate().unwrap();
        assert_eq!(c.app, AppKind::Match);
        let e = c.engine.clone().expect("[engine] section");
        assert_eq!(e.instruments.len(), 2);
        peregrine_engine::Engine::new(&e).expect("instruments build an engine");
        // Without max_quantity, a lot size that does not divide the default
        // ceiling still gives a valid engine.
        let mut e2 = e.clone();
        for i in &mut e2.instruments {
            i.max_quantity = peregrine_engine::DEFAULT_MAX_QUANTITY;
        }
        peregrine_engine::Engine::new(&e2).expect("default ceiling rounded to the lot size");
        assert!(c.journal_mode().unwrap().is_some());
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<ServeConfig>("nope = 1").is_err());
        let one = "\n[[sessions]]\nname = \"A\"\nsecret = \"x\"";
        let ok: ServeConfig = toml::from_str(&format!("udp = [\"127.0.0.1:1\"]{one}")).unwrap();
        ok.validate().unwrap();
        let c: ServeConfig =
            toml::from_str(&format!("udp = [\"127.0.0.1:1\"]\nring_capacity = 1000{one}")).unwrap();
        assert!(c.validate().is_err());
        let c: ServeConfig =
            toml::from_str(&format!("udp = [\"127.0.0.1:1\"]\nlayout = \"weird\"{one}")).unwrap();
        assert!(c.validate().is_err());
        let c: ServeConfig = toml::from_str(one).unwrap();
        assert!(c.validate().is_err(), "no listen address");
    }
}
