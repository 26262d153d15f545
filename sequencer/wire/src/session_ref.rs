//! The routing identity of a client session, as carried on the rings and
//! stored in every journal record.

/// Identifies a client session: which gateway owns it and its index in that
/// gateway's session table. Replies carry it back so the gateway can route
/// them without any lookup by name or address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct SessionRef {
    /// Gateway id (index of its ring pair at the sequencer).
    pub gateway: u16,
    /// Padding, zero.
    pub reserved: u16,
    /// Session index in the gateway's table.
    pub index: u32,
}

impl SessionRef {
    /// A reference to session `index` of gateway `gateway`.
    pub const fn new(gateway: u16, index: u32) -> SessionRef {
        SessionRef {
            gateway,
            reserved: 0,
            index,
        }
    }
}
