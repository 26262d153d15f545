//! The `[dpdk]` configuration section.

use super::DpdkError;
use serde::Deserialize;
use std::net::Ipv4Addr;

/// How to bring up the DPDK port. Deserialises from a `[dpdk]` TOML
/// section; every field has a default except `ip` and `udp_port`, which
/// must be set.
///
/// ```toml
/// [dpdk]
/// eal_args = ["-l", "0", "--in-memory", "--no-pci", "--vdev=net_af_xdp0,iface=va"]
/// port_id = 0
/// ip = "198.18.0.1"
/// udp_port = 9000
/// rx_queues = 1
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpdkConfig {
    /// EAL arguments, without the program name. Default: one lcore, no
    /// hugepages, no PCI scan:
    /// `["-l", "0", "--no-huge", "-m", "256", "--no-shconf", "--no-pci"]`.
    /// On bare metal use hugepages and an allow-list, e.g.
    /// `["-l", "2", "--in-memory", "-a", "0000:3b:00.0"]`. Note: the EAL pins
    /// the thread that initialises it to the first lcore of `-l`.
    pub eal_args: Vec<String>,
    /// The ethdev port id (0 for the first device or vdev).
    pub port_id: u16,
    /// The IPv4 address this port owns (answers ARP for, accepts UDP to).
    pub ip: Ipv4Addr,
    /// The UDP port datagrams are accepted on and sent from.
    pub udp_port: u16,
    /// RX queues (RSS spreads flows over them): one `DpdkPort` each.
    pub rx_queues: u16,
    /// TX queues; at least `rx_queues` (queue pair `q` = RX q + TX q).
    pub tx_queues: u16,
    /// RX descriptors per queue (the driver may round it).
    pub rx_ring_size: u16,
    /// TX descriptors per queue (the driver may round it).
    pub tx_ring_size: u16,
    /// Mbufs per queue pair's mempool (a power of two minus one is
    /// optimal); must cover both rings, bursts and the mempool cache.
    pub mempool_size: u32,
    /// Frames per rx/tx burst (1..=1024).
    pub burst: u16,
    /// Verify UDP checksums in software when the driver gives no verdict.
    pub verify_udp_checksum: bool,
    /// Use the NIC's IPv4/UDP TX checksum offload when advertised.
    pub tx_checksum_offload: bool,
    /// Put the port in promiscuous mode (not needed: we accept our MAC and
    /// broadcast only).
    pub promiscuous: bool,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig {
            eal_args: ["-l", "0", "--no-huge", "-m", "256", "--no-shconf", "--no-pci"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            port_id: 0,
            ip: Ipv4Addr::UNSPECIFIED,
            udp_port: 0,
            rx_queues: 1,
            tx_queues: 1,
            rx_ring_size: 1024,
            tx_ring_size: 1024,
            mempool_size: 8191,
            burst: 32,
            verify_udp_checksum: true,
            tx_checksum_offload: true,
            promiscuous: false,
        }
    }
}

/// Mempool per-lcore cache size for a pool of `n` mbufs.
pub(crate) fn cache_size(n: u32) -> u32 {
    // DPDK requires cache * 1.5 <= n and cache <= 512.
    (n * 2 / 3).saturating_sub(1).min(256)
}

impl DpdkConfig {
    /// Checks the values are usable; called by `DpdkPort::open_queue`.
    pub fn validate(&self) -> Result<(), DpdkError> {
        let bad = |m: String| Err(DpdkError::Config(m));
        if self.ip.is_unspecified() || self.ip.is_broadcast() || self.ip.is_multicast() {
            return bad(format!("ip must be a unicast address, got {}", self.ip));
        }
        if self.udp_port == 0 {
            return bad("udp_port must be set".into());
        }
        if self.rx_queues == 0 || self.tx_queues < self.rx_queues {
            return bad(format!(
                "need rx_queues >= 1 and tx_queues >= rx_queues (got {} and {})",
                self.rx_queues, self.tx_queues
            ));
        }
        if self.burst == 0 || self.burst > 1024 {
            return bad(format!("burst must be in 1..=1024, got {}", self.burst));
        }
        if self.rx_ring_size == 0 || self.tx_ring_size == 0 {
            return bad("ring sizes must be nonzero".into());
        }
        let need = u32::from(self.rx_ring_size)
            + u32::from(self.tx_ring_size)
            + 4 * u32::from(self.burst)
            + cache_size(self.mempool_size);
        if self.mempool_size < need {
            return bad(format!(
                "mempool_size {} too small: rings, bursts and cache need {need}",
                self.mempool_size
            ));
        }
        Ok(())
    }
}

/// EAL arguments for an in-process `net_ring` loopback device on `core`,
/// with `memory_mb` of ordinary (not huge) pages and no PCI probing: DPDK's
/// real code paths with no NIC, no hugepages and no root, for tests and
/// software-cost benchmarks.
pub fn net_ring_eal_args(core: usize, memory_mb: u32) -> Vec<String> {
    vec![
        "-l".into(),
        core.to_string(),
        "--no-huge".into(),
        "-m".into(),
        memory_mb.to_string(),
        "--no-shconf".into(),
        "--no-pci".into(),
        "--vdev=net_ring0".into(),
        "--log-level=warning".into(),
    ]
}
