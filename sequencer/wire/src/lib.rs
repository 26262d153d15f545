//! Wire formats, kept apart from logic.
//!
//! - [`message`]: the fixed 100-byte little-endian application messages.
//! - [`alpha`]: space-padded fixed-width ASCII fields (names, secrets).
//! - [`moldudp64`]: MoldUDP64 packet framing (UDP, both directions).
//! - [`soupbintcp`]: SoupBinTCP 3.00 packet framing (TCP).
//! - [`SessionRef`]: which gateway and session a message came from or goes
//!   to, as carried on the rings and stored in journal records.
//!
//! Every parser is total: any byte string yields a value or a typed error,
//! never a panic. The session protocols are NASDAQ's, so Wireshark's built-in
//! dissectors decode our traffic; our messages ride inside as opaque blocks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alpha;
pub mod message;
pub mod moldudp64;
mod session_ref;
pub mod soupbintcp;

pub use session_ref::SessionRef;
