//! The polling surface every gateway offers the runtime, whatever its
//! transport: the runtime's thread layouts call these in their loops.
//!
//! A gateway supplies its two polls, its [`SessionCore`] and its port; the
//! reporting methods (counters, description, session table for recovery)
//! follow from those, so every transport reports the same way.

use crate::counters::GatewayCounters;
use crate::latency::ReplyLatency;
use crate::session::SessionTable;
use crate::session_core::SessionCore;
use peregrine_netio::{Port, PortCounters};

/// One gateway's polling surface, whatever its transport.
pub trait GatewayLoop: Send {
    /// Receives, validates and forwards to the sequencer; returns work done.
    fn poll_rx(&mut self) -> usize;
    /// Drains replies and sends them; returns work done.
    fn poll_tx(&mut self) -> usize;
    /// The gateway's session layer (its id, counters and sessions).
    fn core(&self) -> &SessionCore;
    /// The session layer, mutably (recovery before the loop runs).
    fn core_mut(&mut self) -> &mut SessionCore;
    /// The port the gateway owns.
    fn port(&self) -> &dyn Port;
    /// The transport's name in logs (`udp`, `tcp`).
    fn transport(&self) -> &'static str;

    /// Gateway counters.
    fn counters(&self) -> GatewayCounters {
        *self.core().counters()
    }
    /// Port counters.
    fn port_counters(&self) -> PortCounters {
        self.port().counters()
    }
    /// Backend-specific port counters as text (empty if none).
    fn port_detail(&self) -> String {
        self.port().detail()
    }
    /// One line for logs: transport, gateway id and address.
    fn describe(&self) -> String {
        format!(
            "{} gateway {} on {}",
            self.transport(),
            self.core().gateway(),
            self.port().local_addr()
        )
    }
    /// The gateway's reply latency recorder (the publisher reads it and
    /// resets its interval); `None` for a gateway that records none.
    fn latency_mut(&mut self) -> Option<&mut ReplyLatency> {
        None
    }
    /// The gateway's session table, for recovery before the loop runs.
    fn sessions_mut(&mut self) -> Option<&mut SessionTable> {
        Some(self.core_mut().sessions_mut())
    }
}
