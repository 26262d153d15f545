//! Where a port's own time goes, in TSC cycles: the driver's receive, the
//! parsing of received frames, and the driver's transmit.
//!
//! Why: a loop that brackets only its callers' stages (gateway receive,
//! sequencer, gateway transmit) cannot tell the driver's share of a stage
//! from Peregrine's. The port brackets its own driver calls and its parse
//! loop, so a caller that times its stages can split them further by
//! subtraction. Off by default: the meter then reads no clock, and each
//! bracket costs a predictable branch per burst, not per datagram.

/// TSC cycles a [`DpdkPort`](super::DpdkPort) spent since stage timing was
/// turned on ([`DpdkPort::set_stage_timing`](super::DpdkPort::set_stage_timing)),
/// by part. All zero while timing is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCycles {
    /// In the driver on receive: rx bursts, and freeing the mbufs of
    /// consumed bursts back to the pool.
    pub rx: u64,
    /// Parsing each received frame (Ethernet, ARP, IPv4, UDP, checksums)
    /// and holding the datagrams for us; frames not for us are dropped
    /// (and their mbufs freed) here too.
    pub parse: u64,
    /// In the driver on transmit: tx bursts of datagram frames (retries
    /// included) and the freeing of frames it refused. Frames sent through
    /// [`DpdkPort::tx_raw`](super::DpdkPort::tx_raw) are not counted.
    pub tx: u64,
}

/// The port's meter: a clock that reads 0 while timing is off, so the
/// brackets add nothing, and the running totals.
#[derive(Debug, Default)]
pub(super) struct CycleMeter {
    on: bool,
    pub(super) spent: PortCycles,
}

impl CycleMeter {
    /// Turns timing on or off; the totals restart from zero.
    pub(super) fn set(&mut self, on: bool) {
        self.on = on;
        self.spent = PortCycles::default();
    }

    /// The TSC now, or 0 while timing is off.
    #[inline]
    pub(super) fn now(&self) -> u64 {
        if self.on {
            // SAFETY: rdtsc through the shim; no memory is touched.
            unsafe { dpdk_sys::pg_tsc_cycles() }
        } else {
            0
        }
    }

    /// Cycles from `since` (a [`now`](Self::now) reading taken while the
    /// setting was the same) to now: 0 while timing is off.
    #[inline]
    pub(super) fn since(&self, since: u64) -> u64 {
        self.now().wrapping_sub(since)
    }
}
