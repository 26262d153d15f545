//! Zero-copy views over the packet headers the DPDK backend speaks:
//! Ethernet II, ARP (Ethernet/IPv4), IPv4 and UDP.
//!
//! Each header has two layers, in the style of smoltcp:
//! - a *view* (`EthernetFrame`, `ArpPacket`, `Ipv4Packet`, `UdpPacket`)
//!   wrapping any `T: AsRef<[u8]>` buffer, with `new_checked` (which proves
//!   that every accessor is in bounds), getters, and setters when
//!   `T: AsMut<[u8]>`. Nothing is copied.
//! - a *representation* (`EthernetRepr`, `ArpRepr`, `Ipv4Repr`, `UdpRepr`):
//!   the header's meaning as plain values, with `parse` (validating the
//!   semantics: version, fragments, checksums...) and `emit` into a view.
//!
//! Every parser is total: any byte string yields a value or a [`WireError`],
//! never a panic. There is no `unsafe` here.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod frame;
pub mod ipv4;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use frame::{udp_frame, UdpEndpoints, UDP_FRAME_HEADERS};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use udp::{UdpPacket, UdpRepr};

/// Why a buffer is not a valid header (or header stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the fixed part of the header.
    #[error("buffer too short for the header")]
    Truncated,
    /// IPv4 version field is not 4.
    #[error("IP version is not 4")]
    BadVersion,
    /// IPv4 IHL below 5 words or beyond the buffer.
    #[error("bad IPv4 header length")]
    BadHeaderLen,
    /// IPv4 total length shorter than the header or longer than the buffer.
    #[error("IPv4 total length inconsistent with the buffer")]
    BadTotalLen,
    /// An IPv4 fragment (MF set or nonzero offset): not reassembled.
    #[error("IPv4 fragment")]
    Fragment,
    /// UDP length field below 8 or beyond the IP payload.
    #[error("UDP length inconsistent with the IP payload")]
    BadUdpLen,
    /// A header checksum does not verify.
    #[error("bad checksum")]
    BadChecksum,
    /// Well-formed but not something we handle (ARP for another
    /// hardware/protocol type, ...).
    #[error("unsupported header contents")]
    Unsupported,
}

/// How `emit` treats a checksum field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumMode {
    /// Compute it in software.
    Compute,
    /// The NIC computes it: write what the DPDK offload contract expects
    /// (0 for the IPv4 header, the pseudo-header sum for UDP).
    Offload,
    /// Leave it zero (UDP over IPv4: "no checksum").
    Skip,
}

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn put_be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// Walks the whole header stack the way the DPDK port does.
    fn parse_all(frame: &[u8]) -> Result<usize, WireError> {
        let eth = EthernetFrame::new_checked(frame)?;
        EthernetRepr::parse(&eth)?;
        match eth.ethertype() {
            EtherType::Arp => {
                let a = ArpPacket::new_checked(eth.payload())?;
                ArpRepr::parse(&a).map(|_| 0)
            }
            EtherType::Ipv4 => {
                let ip = Ipv4Packet::new_checked(eth.payload())?;
                let r = Ipv4Repr::parse(&ip, true)?;
                let udp = UdpPacket::new_checked(ip.payload())?;
                UdpRepr::parse(&udp, r.src_addr, r.dst_addr, true)?;
                Ok(udp.payload().len())
            }
            EtherType::Unknown(_) => Err(WireError::Unsupported),
        }
    }

    proptest! {
        #[test]
        fn parsers_are_total(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_all(&bytes);
        }

        #[test]
        fn parsers_are_total_on_plausible_frames(
            mut bytes in proptest::collection::vec(any::<u8>(), 34..120),
            ihl in 0u8..16,
            arp in any::<bool>(),
        ) {
            bytes[12] = 0x08;
            bytes[13] = if arp { 0x06 } else { 0x00 };
            bytes[14] = 0x40 | ihl;
            let _ = parse_all(&bytes);
        }

        #[test]
        fn emit_parse_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..1472)) {
            let src = Ipv4Addr::new(198, 18, 0, 2);
            let dst = Ipv4Addr::new(198, 18, 0, 1);
            let mut f = vec![0u8; 42 + payload.len()];
            EthernetRepr {
                src_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
                dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
                ethertype: EtherType::Ipv4,
            }
            .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
            Ipv4Repr { src_addr: src, dst_addr: dst, protocol: IpProtocol::Udp,
                       payload_len: 8 + payload.len(), ttl: 64 }
                .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]), ChecksumMode::Compute);
            UdpRepr { src_port: 1, dst_port: 2 }
                .emit(&mut UdpPacket::new_unchecked(&mut f[34..]), src, dst, &payload,
                      ChecksumMode::Compute);
            prop_assert_eq!(parse_all(&f), Ok(payload.len()));
        }
    }
}
