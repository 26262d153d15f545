//! The polling surface every gateway offers the runtime, whatever its
//! transport: the runtime's thread layouts call these in their loops.

use crate::counters::GatewayCounters;
use peregrine_netio::PortCounters;

/// One gateway's polling surface, whatever its transport.
pub trait GatewayLoop: Send {
    /// Receives, validates and forwards to the sequencer; returns work done.
    fn poll_rx(&mut self) -> usize;
    /// Drains replies and sends them; returns work done.
    fn poll_tx(&mut self) -> usize;
    /// Gateway counters.
    fn counters(&self) -> GatewayCounters;
    /// Port counters.
    fn port_counters(&self) -> PortCounters;
    /// Backend-specific port counters as text (empty if none).
    fn port_detail(&self) -> String {
        String::new()
    }
    /// One line for logs: transport and address.
    fn describe(&self) -> String;
    /// The gateway's session table, for recovery before the loop runs
    /// (`None`: the gateway holds no sessions).
    fn sessions_mut(&mut self) -> Option<&mut crate::session::SessionTable> {
        None
    }
}
