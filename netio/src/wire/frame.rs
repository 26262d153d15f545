//! Whole Ethernet/IPv4/UDP frames built in one call, for tests, tools and
//! traffic injection (it allocates; the transmit path builds frames in
//! mbufs itself).

use super::{
    ChecksumMode, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
    UdpPacket, UdpRepr,
};
use std::net::SocketAddrV4;

/// Ethernet + IPv4 + UDP header bytes.
pub const UDP_FRAME_HEADERS: usize = 14 + 20 + 8;

/// Addresses of a UDP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpEndpoints {
    /// Source MAC.
    pub src_mac: EthernetAddress,
    /// Destination MAC.
    pub dst_mac: EthernetAddress,
    /// Source IPv4 address and UDP port.
    pub src: SocketAddrV4,
    /// Destination IPv4 address and UDP port.
    pub dst: SocketAddrV4,
}

/// A well-formed frame carrying `payload`, TTL 64, IPv4 header checksum
/// computed, UDP checksum per `udp_checksum`, followed by `pad` zero bytes
/// (trailing Ethernet padding that IPv4/UDP lengths do not count).
pub fn udp_frame(ends: &UdpEndpoints, payload: &[u8], udp_checksum: ChecksumMode, pad: usize) -> Vec<u8> {
    let mut f = vec![0u8; UDP_FRAME_HEADERS + payload.len() + pad];
    EthernetRepr {
        src_addr: ends.src_mac,
        dst_addr: ends.dst_mac,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv4Repr {
        src_addr: *ends.src.ip(),
        dst_addr: *ends.dst.ip(),
        protocol: IpProtocol::Udp,
        payload_len: 8 + payload.len(),
        ttl: 64,
    }
    .emit(
        &mut Ipv4Packet::new_unchecked(&mut f[14..]),
        ChecksumMode::Compute,
    );
    UdpRepr {
        src_port: ends.src.port(),
        dst_port: ends.dst.port(),
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut f[34..]),
        *ends.src.ip(),
        *ends.dst.ip(),
        payload,
        udp_checksum,
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_parses_back_with_its_addresses_and_payload() {
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let ends = UdpEndpoints {
            src_mac: mac,
            dst_mac: mac,
            src: "198.18.0.2:40000".parse().unwrap(),
            dst: "198.18.0.1:9000".parse().unwrap(),
        };
        let f = udp_frame(&ends, b"hello", ChecksumMode::Compute, 3);
        assert_eq!(f.len(), UDP_FRAME_HEADERS + 5 + 3);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (*ends.src.ip(), *ends.dst.ip()));
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (40000, 9000));
        assert_eq!(udp.payload(), b"hello");
    }
}
