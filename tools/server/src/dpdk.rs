//! `serve` over DPDK (feature `dpdk`): one UDP gateway per configured
//! queue of a DPDK port, the NIC read and written with no kernel in the way.

use peregrine_gateway::GatewayOptions;
use peregrine_gateway::{ring_pair, GatewayLoop, UdpGateway};
use peregrine_netio::dpdk::{DpdkConfig, DpdkPort, Eal};

/// Opens every configured queue of the DPDK port, one gateway each, with
/// gateway ids from `first_id`. Initialises the EAL (once per process).
pub fn dpdk_gateways(
    cfg: &DpdkConfig,
    first_id: u16,
    ring_capacity: usize,
    directory: std::sync::Arc<peregrine_gateway::directory::SessionDirectory>,
    opts: GatewayOptions,
) -> Result<(peregrine_gateway::GatewaySet, Vec<String>), crate::error::ServeError> {
    cfg.validate()?;
    let eal = Eal::init(&cfg.eal_args)?;
    let ports = DpdkPort::open_all(eal, cfg)?;
    let mut gws: Vec<Box<dyn GatewayLoop>> = Vec::new();
    let mut rings = Vec::new();
    let mut described = Vec::new();
    for (i, p) in ports.into_iter().enumerate() {
        described.push(format!(
            "dpdk port {} queue {} mac {} ip {}:{} link {:?} tx checksum offload (ipv4, udp) {:?}",
            p.port_id(),
            p.queue(),
            p.mac(),
            cfg.ip,
            cfg.udp_port,
            p.link().ok(),
            p.tx_checksum_offload()
        ));
        let (g, s) = ring_pair(ring_capacity)?;
        gws.push(Box::new(UdpGateway::new(
            first_id + i as u16,
            p,
            g,
            std::sync::Arc::clone(&directory),
            opts.clone(),
        )));
        rings.push(s);
    }
    Ok(((gws, rings), described))
}
