//! Settings of the publishing side ([`FeedConfig`], read from the server's
//! `[feed]` table) and of a consumer ([`ConsumerConfig`]).

use peregrine_wire::moldudp64::MAX_PAYLOAD;
use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The publisher side: the order stream, its re-request server, and
/// optionally the market-data stream. Every field has a default except
/// `destinations`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// MoldUDP64 session name of the order stream (up to 10 ASCII
    /// characters, space padded on the wire). Default `PEREGRINE`.
    #[serde(default = "default_session")]
    pub session: String,
    /// Where every packet goes: a multicast `group:port`, or unicast
    /// addresses (each gets every packet).
    pub destinations: Vec<SocketAddr>,
    /// Outgoing interface for multicast (`IP_MULTICAST_IF`); `None` = the
    /// routing table's choice.
    #[serde(default)]
    pub interface: Option<Ipv4Addr>,
    /// Multicast TTL (hops). Default 1 (the local segment only).
    #[serde(default = "default_ttl")]
    pub multicast_ttl: u32,
    /// Deliver our own multicast to local listeners. Default true.
    #[serde(default = "default_true")]
    pub multicast_loop: bool,
    /// Milliseconds without data after which a heartbeat (count 0,
    /// sequence = next sequence) is sent. Default 1000.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// Largest UDP payload built, bytes (header + blocks); packets are
    /// packed up to it. Default and maximum 1472.
    #[serde(default = "default_max_payload")]
    pub max_payload: usize,
    /// Bind address of the order stream's re-request server; `None` = no
    /// server.
    #[serde(default)]
    pub rerequest: Option<SocketAddr>,
    /// Most messages in one answer; answers are also cut to what fits in
    /// one packet (10 order blocks at 1,472 bytes). Default 0xFFFE: only
    /// the packet bounds it.
    #[serde(default = "default_rerequest_max_count")]
    pub rerequest_max_count: u16,
    /// Messages per second each requester (address) may be sent, as a
    /// token bucket whose burst is one maximal answer; 0 = unlimited.
    /// Default 100,000.
    #[serde(default = "default_rerequest_rate")]
    pub rerequest_rate: u32,
    /// Most packets one answer spans (each full): a consumer far behind
    /// catches up this many packets per round trip. Default 100, which
    /// covers the 1,000 order records `peregrine-feed` consumers ask for at
    /// once (a consumer that asks for more than one answer holds waits for
    /// its request timeout before asking for the rest); 1 answers every
    /// request with one packet, as NASDAQ's servers do.
    #[serde(default = "default_rerequest_max_packets")]
    pub rerequest_max_packets: u16,
    /// After End of Session, the re-request servers keep answering until
    /// no request has come for this many milliseconds, so consumers still
    /// filling gaps when the server stops can finish. Default 2000; 0 ends
    /// them with the stream.
    #[serde(default = "default_rerequest_linger_ms")]
    pub rerequest_linger_ms: u64,
    /// The market-data stream, if any.
    #[serde(default)]
    pub market_data: Option<MarketDataFeedConfig>,
    /// CPU core to pin the feed thread to; `None` = not pinned.
    #[serde(default)]
    pub core: Option<usize>,
}

/// The market-data stream: its own MoldUDP64 session and sequence,
/// published with the order stream's socket settings (interface, TTL,
/// loop, heartbeat, payload size, re-request limits).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MarketDataFeedConfig {
    /// Session name. Default `PEREGRINEMD`; like every session name it is
    /// cut to the 10 bytes the wire carries (`PEREGRINEM`).
    #[serde(default = "default_md_session")]
    pub session: String,
    /// Destinations (multicast group or unicast addresses).
    pub destinations: Vec<SocketAddr>,
    /// Bind address of its re-request server; `None` = none.
    #[serde(default)]
    pub rerequest: Option<SocketAddr>,
    /// Blocks kept in memory for re-requests (the newest ones; older
    /// requests are ignored and counted). Default 1,048,576 (~40 MiB).
    #[serde(default = "default_md_retain")]
    pub retain: usize,
}

fn default_session() -> String {
    "PEREGRINE".into()
}
fn default_md_session() -> String {
    "PEREGRINEMD".into()
}
fn default_ttl() -> u32 {
    1
}
fn default_true() -> bool {
    true
}
fn default_heartbeat_ms() -> u64 {
    1000
}
fn default_max_payload() -> usize {
    MAX_PAYLOAD
}
fn default_rerequest_max_count() -> u16 {
    0xFFFE
}
fn default_rerequest_rate() -> u32 {
    100_000
}
fn default_rerequest_max_packets() -> u16 {
    100
}
fn default_rerequest_linger_ms() -> u64 {
    2000
}
fn default_md_retain() -> usize {
    1 << 20
}

impl FeedConfig {
    /// A configuration with every default, sending to `destinations`.
    pub fn new(destinations: Vec<SocketAddr>) -> FeedConfig {
        FeedConfig {
            session: default_session(),
            destinations,
            interface: None,
            multicast_ttl: default_ttl(),
            multicast_loop: true,
            heartbeat_ms: default_heartbeat_ms(),
            max_payload: default_max_payload(),
            rerequest: None,
            rerequest_max_count: default_rerequest_max_count(),
            rerequest_rate: default_rerequest_rate(),
            rerequest_linger_ms: default_rerequest_linger_ms(),
            rerequest_max_packets: default_rerequest_max_packets(),
            market_data: None,
            core: None,
        }
    }

    /// Checks ranges; `Err` says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.destinations.is_empty() {
            return Err("feed: `destinations` is empty".into());
        }
        let min = peregrine_wire::moldudp64::HEADER_LEN + 2 + crate::block::MAX_BLOCK_LEN;
        if self.max_payload < min || self.max_payload > MAX_PAYLOAD {
            return Err(format!(
                "feed: `max_payload` {} is outside {min}..={MAX_PAYLOAD}",
                self.max_payload
            ));
        }
        if self.heartbeat_ms == 0 {
            return Err("feed: `heartbeat_ms` must be at least 1".into());
        }
        if self.rerequest_max_count == 0 {
            return Err("feed: `rerequest_max_count` must be at least 1".into());
        }
        if !self.session.is_ascii() || !self.session.chars().all(|c| !c.is_control()) {
            return Err("feed: `session` must be printable ASCII".into());
        }
        if let Some(md) = &self.market_data {
            if md.destinations.is_empty() {
                return Err("feed.market_data: `destinations` is empty".into());
            }
            if md.retain == 0 {
                return Err("feed.market_data: `retain` must be at least 1".into());
            }
            if !md.session.is_ascii() {
                return Err("feed.market_data: `session` must be ASCII".into());
            }
        }
        Ok(())
    }
}

/// A consumer of one stream.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// Local bind address, e.g. `0.0.0.0:PORT` (the group's port) or a
    /// unicast port. Re-requests are sent from this socket, so answers
    /// arrive on it too.
    pub listen: SocketAddr,
    /// Multicast group to join (`IP_ADD_MEMBERSHIP`) on `interface`.
    pub group: Option<Ipv4Addr>,
    /// Interface address for the membership (`0.0.0.0`: the kernel's
    /// choice).
    pub interface: Ipv4Addr,
    /// Expected session; `None` = adopt the first one seen. Packets of
    /// other sessions are counted and dropped.
    pub session: Option<String>,
    /// Where re-requests go; `None` = gaps are only waited out (a lost
    /// packet then stalls delivery).
    pub rerequest: Option<SocketAddr>,
    /// Further re-request servers (the other nodes of a cluster), asked in
    /// turn after `rerequest` when a request goes unanswered for
    /// `request_timeout` (see [`crate::RerequestTargets`]).
    pub rerequest_fallbacks: Vec<SocketAddr>,
    /// First sequence to deliver (1 = everything). A late joiner asks for
    /// `[from_seq, first seen)` by re-request.
    pub from_seq: u64,
    /// Silence after which the consumer asks for everything from its next
    /// sequence (it may have lost the tail).
    pub heartbeat_timeout: Duration,
    /// An unanswered request is sent again after this.
    pub request_timeout: Duration,
    /// Most messages asked for in one request.
    pub max_request: u16,
    /// Out-of-order blocks held while a gap is filled (a window of this
    /// many sequences from the next one to deliver); blocks beyond it are
    /// dropped, counted, and asked for again later.
    pub buffer: usize,
}

impl ConsumerConfig {
    /// Defaults for a unicast listener on `listen` asking `rerequest`:
    /// from sequence 1, 1.5 s heartbeat timeout, 50 ms request timeout,
    /// requests of up to 1,000 messages, a 65,536-block window.
    pub fn new(listen: SocketAddr, rerequest: Option<SocketAddr>) -> ConsumerConfig {
        ConsumerConfig {
            listen,
            group: None,
            interface: Ipv4Addr::UNSPECIFIED,
            session: None,
            rerequest,
            rerequest_fallbacks: Vec::new(),
            from_seq: 1,
            heartbeat_timeout: Duration::from_millis(1500),
            request_timeout: Duration::from_millis(50),
            max_request: 1000,
            buffer: 1 << 16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_and_unknown_fields_are_refused() {
        let c: FeedConfig = toml::from_str(r#"destinations = ["239.1.1.1:30001"]"#).unwrap();
        assert_eq!(c, FeedConfig::new(vec!["239.1.1.1:30001".parse().unwrap()]));
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<FeedConfig>("destinations = []\nbogus = 1").is_err());
        let c: FeedConfig = toml::from_str(
            "destinations = [\"127.0.0.1:1\"]\nrerequest = \"127.0.0.1:2\"\n[market_data]\ndestinations = [\"127.0.0.1:3\"]",
        )
        .unwrap();
        let md = c.market_data.unwrap();
        assert_eq!((md.session.as_str(), md.retain), ("PEREGRINEMD", 1 << 20));
        let mut bad = FeedConfig::new(vec![]);
        assert!(bad.validate().is_err());
        bad.destinations.push("127.0.0.1:1".parse().unwrap());
        bad.max_payload = 100;
        assert!(bad.validate().is_err());
    }
}
