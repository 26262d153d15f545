//! EAL initialisation (once per process) and per-port device state.

use super::config::cache_size;
use super::{last_error, strerror, DpdkConfig, DpdkError};
use crate::wire::EthernetAddress;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::ptr::NonNull;
use std::sync::{Mutex, OnceLock};

/// The process-wide EAL. Obtain it with [`Eal::init`].
pub struct Eal {
    args: Vec<String>,
    ports: Mutex<HashMap<u16, PortShared>>,
}

/// A mempool pointer that may cross threads: DPDK mempools are
/// multi-producer/multi-consumer safe.
#[derive(Clone, Copy)]
pub(crate) struct PoolPtr(pub(crate) NonNull<dpdk_sys::rte_mempool>);

// SAFETY: a DPDK mempool is designed to be used from many threads at once
// (its ring is MP/MC); the pointer stays valid for the process lifetime
// since pools are never freed once the port has started.
unsafe impl Send for PoolPtr {}

/// What every queue of a started port shares.
pub(crate) struct PortShared {
    pub(crate) cfg: DpdkConfig,
    pub(crate) mac: EthernetAddress,
    pub(crate) pools: Vec<PoolPtr>,
    pub(crate) claimed: Vec<bool>,
    pub(crate) tx_ip_offload: bool,
    pub(crate) tx_udp_offload: bool,
}

/// The link as the driver reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link up.
    pub up: bool,
    /// Speed in Mb/s (0 when unknown or down).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Device-level counters from the driver (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Frames the NIC dropped because no RX descriptor was free (we polled
    /// too slowly).
    pub rx_missed: u64,
    /// Erroneous frames received.
    pub rx_errors: u64,
    /// Failed transmissions.
    pub tx_errors: u64,
    /// RX mbuf allocation failures (mempool exhausted).
    pub rx_no_mbuf: u64,
}

static EAL: OnceLock<Result<Eal, String>> = OnceLock::new();

impl Eal {
    /// Initialises the EAL with `args` (without a program name) the first
    /// time it is called in the process; every later call returns the same
    /// handle and ignores its `args` (the EAL cannot be re-initialised; see
    /// [`Eal::args`]). A failure is remembered and returned again.
    pub fn init(args: &[String]) -> Result<&'static Eal, DpdkError> {
        match EAL.get_or_init(|| init_once(args)) {
            Ok(e) => Ok(e),
            Err(msg) => Err(DpdkError::Eal(msg.clone())),
        }
    }

    /// The arguments the EAL was actually initialised with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Number of ethdev ports the EAL found (devices and vdevs).
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised (we exist).
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }

    /// TSC frequency measured by the EAL.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: the EAL is initialised, so the TSC rate is known.
        unsafe { dpdk_sys::pg_tsc_hz() }
    }

    /// Reads the TSC (`rte_get_tsc_cycles`).
    #[inline]
    pub fn tsc_cycles(&self) -> u64 {
        // SAFETY: rdtsc, no preconditions.
        unsafe { dpdk_sys::pg_tsc_cycles() }
    }

    /// Current link status of `port_id`, without waiting.
    pub fn link_status(&self, port_id: u16) -> Result<LinkStatus, DpdkError> {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: `link` is a valid, writable rte_eth_link.
        let rc = unsafe { dpdk_sys::rte_eth_link_get_nowait(port_id, &mut link) };
        if rc != 0 {
            return Err(port_err(port_id, "rte_eth_link_get_nowait", strerror(rc)));
        }
        Ok(LinkStatus {
            up: u32::from(link.link_status()) == dpdk_sys::RTE_ETH_LINK_UP,
            speed_mbps: if link.link_speed == u32::MAX {
                0
            } else {
                link.link_speed
            },
            full_duplex: u32::from(link.link_duplex()) == dpdk_sys::RTE_ETH_LINK_FULL_DUPLEX,
        })
    }

    /// Device counters of `port_id` (all queues).
    pub fn nic_stats(&self, port_id: u16) -> Result<NicStats, DpdkError> {
        let mut st = dpdk_sys::rte_eth_stats::default();
        // SAFETY: `st` is a valid, writable rte_eth_stats.
        let rc = unsafe { dpdk_sys::rte_eth_stats_get(port_id, &mut st) };
        if rc != 0 {
            return Err(port_err(port_id, "rte_eth_stats_get", strerror(rc)));
        }
        Ok(NicStats {
            rx_packets: st.ipackets,
            tx_packets: st.opackets,
            rx_missed: st.imissed,
            rx_errors: st.ierrors,
            tx_errors: st.oerrors,
            rx_no_mbuf: st.rx_nombuf,
        })
    }

    /// Configures and starts `cfg.port_id` if this is the first queue
    /// opened on it, then claims `queue`. Returns what the queue needs.
    pub(crate) fn claim_queue(
        &self,
        cfg: &DpdkConfig,
        queue: u16,
    ) -> Result<(EthernetAddress, PoolPtr, bool, bool), DpdkError> {
        let port = cfg.port_id;
        if queue >= cfg.rx_queues {
            return Err(DpdkError::Config(format!(
                "queue {queue} out of range (rx_queues = {})",
                cfg.rx_queues
            )));
        }
        let mut ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        let shared = match ports.entry(port) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => v.insert(start_port(cfg)?),
        };
        if shared.cfg.rx_queues != cfg.rx_queues
            || shared.cfg.tx_queues != cfg.tx_queues
            || shared.cfg.ip != cfg.ip
            || shared.cfg.udp_port != cfg.udp_port
        {
            return Err(DpdkError::Config(format!(
                "port {port} is already running with a different queue count, ip or udp_port"
            )));
        }
        let q = usize::from(queue);
        if shared.claimed[q] {
            return Err(DpdkError::QueueInUse { port, queue });
        }
        shared.claimed[q] = true;
        Ok((
            shared.mac,
            shared.pools[q],
            shared.tx_ip_offload,
            shared.tx_udp_offload,
        ))
    }

    /// Gives `queue` back (called when its `DpdkPort` drops).
    pub(crate) fn release_queue(&self, port: u16, queue: u16) {
        let mut ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = ports.get_mut(&port) {
            if let Some(c) = s.claimed.get_mut(usize::from(queue)) {
                *c = false;
            }
        }
    }
}

fn port_err(port: u16, what: &'static str, reason: String) -> DpdkError {
    DpdkError::Port { port, what, reason }
}

fn init_once(args: &[String]) -> Result<Eal, String> {
    let mut owned = Vec::with_capacity(args.len() + 1);
    for a in std::iter::once("peregrine").chain(args.iter().map(String::as_str)) {
        owned.push(CString::new(a).map_err(|_| format!("EAL argument {a:?} contains NUL"))?);
    }
    // The EAL may keep pointers into argv (and permutes the array), so both
    // the strings and the array live for the rest of the process.
    let argv: &'static mut [*mut c_char] = Box::leak(
        owned
            .into_iter()
            .map(CString::into_raw)
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let argc = argv.len() as i32;
    // SAFETY: argv holds argc valid NUL-terminated strings that are never
    // freed; OnceLock guarantees a single call per process.
    let rc = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if rc < 0 {
        return Err(format!("rte_eal_init({args:?}): {}", last_error()));
    }
    Ok(Eal {
        args: args.to_vec(),
        ports: Mutex::new(HashMap::new()),
    })
}

fn start_port(cfg: &DpdkConfig) -> Result<PortShared, DpdkError> {
    let port = cfg.port_id;
    // SAFETY: plain query on an initialised EAL.
    if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(port) } == 0 {
        // SAFETY: as above.
        let n = unsafe { dpdk_sys::rte_eth_dev_count_avail() };
        return Err(DpdkError::Config(format!(
            "no ethdev port {port} ({n} available: check the -a/--vdev EAL arguments)"
        )));
    }
    let mut info = dpdk_sys::rte_eth_dev_info::default();
    // SAFETY: `info` is a valid, writable rte_eth_dev_info.
    let rc = unsafe { dpdk_sys::rte_eth_dev_info_get(port, &mut info) };
    if rc != 0 {
        return Err(port_err(port, "rte_eth_dev_info_get", strerror(rc)));
    }
    if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
        return Err(DpdkError::Config(format!(
            "port {port} supports at most {} rx / {} tx queues, asked {} / {}",
            info.max_rx_queues, info.max_tx_queues, cfg.rx_queues, cfg.tx_queues
        )));
    }

    let mut conf = dpdk_sys::rte_eth_conf::default();
    if cfg.rx_queues > 1 && info.flow_type_rss_offloads != 0 {
        conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf =
            (dpdk_sys::PG_RSS_IP | dpdk_sys::PG_RSS_UDP) & info.flow_type_rss_offloads;
    }
    conf.rxmode.offloads =
        info.rx_offload_capa & (dpdk_sys::PG_RX_OFFLOAD_IPV4_CKSUM | dpdk_sys::PG_RX_OFFLOAD_UDP_CKSUM);
    let tx_ip = cfg.tx_checksum_offload && info.tx_offload_capa & dpdk_sys::PG_TX_OFFLOAD_IPV4_CKSUM != 0;
    let tx_udp = cfg.tx_checksum_offload && info.tx_offload_capa & dpdk_sys::PG_TX_OFFLOAD_UDP_CKSUM != 0;
    if tx_ip {
        conf.txmode.offloads |= dpdk_sys::PG_TX_OFFLOAD_IPV4_CKSUM;
    }
    if tx_udp {
        conf.txmode.offloads |= dpdk_sys::PG_TX_OFFLOAD_UDP_CKSUM;
    }

    // SAFETY: `conf` is a fully initialised rte_eth_conf; the port is valid
    // and not started (we hold the registry lock and have not started it).
    let rc = unsafe { dpdk_sys::rte_eth_dev_configure(port, cfg.rx_queues, cfg.tx_queues, &conf) };
    if rc != 0 {
        return Err(port_err(port, "rte_eth_dev_configure", strerror(rc)));
    }
    let (mut nb_rxd, mut nb_txd) = (cfg.rx_ring_size, cfg.tx_ring_size);
    // SAFETY: both pointers are valid, writable u16s.
    let rc = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut nb_rxd, &mut nb_txd) };
    if rc != 0 {
        return Err(port_err(port, "rte_eth_dev_adjust_nb_rx_tx_desc", strerror(rc)));
    }
    // SAFETY: plain query; -1 (SOCKET_ID_ANY) is acceptable below.
    let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port) };

    let mut pools = Vec::with_capacity(usize::from(cfg.rx_queues));
    let result = setup_queues(cfg, socket, nb_rxd, nb_txd, &mut pools);
    if let Err(e) = result {
        for p in pools {
            // SAFETY: created by us just above and not in use: the port
            // did not start.
            unsafe { dpdk_sys::rte_mempool_free(p.0.as_ptr()) };
        }
        return Err(e);
    }
    // SAFETY: all queues are set up.
    let rc = unsafe { dpdk_sys::rte_eth_dev_start(port) };
    if rc != 0 {
        return Err(port_err(port, "rte_eth_dev_start", strerror(rc)));
    }
    if cfg.promiscuous {
        // SAFETY: valid started port. Failure is harmless (not needed).
        unsafe { dpdk_sys::rte_eth_promiscuous_enable(port) };
    }
    let mut mac = dpdk_sys::rte_ether_addr::default();
    // SAFETY: `mac` is a valid, writable rte_ether_addr.
    let rc = unsafe { dpdk_sys::rte_eth_macaddr_get(port, &mut mac) };
    if rc != 0 {
        return Err(port_err(port, "rte_eth_macaddr_get", strerror(rc)));
    }
    Ok(PortShared {
        cfg: cfg.clone(),
        mac: EthernetAddress(mac.addr_bytes),
        pools,
        claimed: vec![false; usize::from(cfg.rx_queues)],
        tx_ip_offload: tx_ip,
        tx_udp_offload: tx_udp,
    })
}

fn setup_queues(
    cfg: &DpdkConfig,
    socket: i32,
    nb_rxd: u16,
    nb_txd: u16,
    pools: &mut Vec<PoolPtr>,
) -> Result<(), DpdkError> {
    let port = cfg.port_id;
    for q in 0..cfg.rx_queues {
        let name = CString::new(format!("pg_p{port}_q{q}")).map_err(|_| {
            DpdkError::Config("mempool name".into()) // cannot contain NUL
        })?;
        // SAFETY: valid NUL-terminated name; sizes validated by
        // DpdkConfig::validate; DPDK copies the name.
        let mp = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                name.as_ptr(),
                cfg.mempool_size,
                cache_size(cfg.mempool_size),
                0,
                dpdk_sys::PG_MBUF_DEFAULT_BUF_SIZE,
                socket,
            )
        };
        let Some(mp) = NonNull::new(mp) else {
            return Err(port_err(port, "rte_pktmbuf_pool_create", last_error()));
        };
        pools.push(PoolPtr(mp));
        // SAFETY: configured port, queue in range, valid mempool; a NULL
        // rxconf selects the driver defaults plus the port's offloads.
        let rc = unsafe {
            dpdk_sys::rte_eth_rx_queue_setup(port, q, nb_rxd, socket as u32, std::ptr::null(), mp.as_ptr())
        };
        if rc != 0 {
            return Err(port_err(port, "rte_eth_rx_queue_setup", strerror(rc)));
        }
    }
    for q in 0..cfg.tx_queues {
        // SAFETY: configured port, queue in range; NULL = default txconf.
        let rc =
            unsafe { dpdk_sys::rte_eth_tx_queue_setup(port, q, nb_txd, socket as u32, std::ptr::null()) };
        if rc != 0 {
            return Err(port_err(port, "rte_eth_tx_queue_setup", strerror(rc)));
        }
    }
    Ok(())
}
