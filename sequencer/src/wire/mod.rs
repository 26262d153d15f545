//! Wire formats, kept apart from logic.
//!
//! - [`message`]: the fixed 100-byte little-endian application messages.
//! - [`moldudp64`]: MoldUDP64 packet framing (UDP, both directions).
//! - [`soupbintcp`]: SoupBinTCP 3.00 packet framing (TCP).
//!
//! Every parser is total: any byte string yields a value or a typed error,
//! never a panic. The session protocols are NASDAQ's, so Wireshark's built-in
//! dissectors decode our traffic; our messages ride inside as opaque blocks.

pub mod message;
pub mod moldudp64;
pub mod soupbintcp;
