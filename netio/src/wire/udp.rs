//! UDP datagrams (RFC 768) over IPv4.

use super::checksum;
use super::{be16, put_be16, ChecksumMode, WireError};
use std::net::Ipv4Addr;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

const PROTO_UDP: u8 = 17;

/// A view of a UDP datagram (the IPv4 payload).
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Length of the UDP header.
    pub const HEADER_LEN: usize = 8;

    /// Wraps `buffer` without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after [`UdpPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The buffer holds the header (`Truncated`), and the length field is
    /// at least 8 and within the buffer (`BadUdpLen`).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let l = self.len() as usize;
        if l < Self::HEADER_LEN || l > len {
            return Err(WireError::BadUdpLen);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field (header + payload).
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True when the length field says there is no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= Self::HEADER_LEN
    }

    /// Checksum field (0 = none was computed).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// True when the checksum verifies, or is 0 (IPv4: "not computed").
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let l = self.len();
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, PROTO_UDP, l),
            checksum::data(&self.buffer.as_ref()[..l as usize]),
        ]);
        sum == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpPacket<&'a T> {
    /// The payload, bounded by the length field.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let l = self.len() as usize;
        &self.buffer.as_ref()[Self::HEADER_LEN..l]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::SRC_PORT, v)
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::DST_PORT, v)
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::LENGTH, v)
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    /// Computes and stores the checksum over header and payload (as
    /// bounded by the length field, which must be set and in bounds).
    /// A computed 0 is sent as 0xffff (0 means "none").
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let l = self.len();
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, PROTO_UDP, l),
            checksum::data(&self.buffer.as_ref()[..l as usize]),
        ]);
        let c = !sum;
        self.set_checksum(if c == 0 { 0xffff } else { c })
    }

    /// Everything after the header, mutable (to the end of the buffer).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[Self::HEADER_LEN..]
    }
}

/// The meaning of a UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Header length.
    pub const HEADER_LEN: usize = 8;

    /// Validates lengths and (if `verify_checksum`) the checksum, which
    /// needs the IPv4 addresses for the pseudo-header.
    pub fn parse<T: AsRef<[u8]>>(
        p: &UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<Self, WireError> {
        p.check_len()?;
        if verify_checksum && !p.verify_checksum(src, dst) {
            return Err(WireError::BadChecksum);
        }
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    /// Header plus payload length.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        Self::HEADER_LEN + payload_len
    }

    /// Writes header and `payload` into `p` (whose buffer must hold both),
    /// then the checksum as `cksum` says.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
        cksum: ChecksumMode,
    ) {
        p.payload_mut()[..payload.len()].copy_from_slice(payload);
        self.emit_around(p, src, dst, payload.len(), cksum);
    }

    /// Writes the header around a payload of `payload_len` bytes already in
    /// place after it (a datagram built where it is sent from), then the
    /// checksum as `cksum` says, computed over the payload in place.
    pub fn emit_around<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload_len: usize,
        cksum: ChecksumMode,
    ) {
        let l = (Self::HEADER_LEN + payload_len) as u16;
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(l);
        match cksum {
            // The header's words from the values, not read back from the
            // buffer: the 16-bit stores above would delay a wider read of
            // them (see `Ipv4Repr::header_checksum`).
            ChecksumMode::Compute => {
                let payload = &p.buffer.as_ref()[Self::HEADER_LEN..usize::from(l)];
                let sum = checksum::combine(&[
                    checksum::pseudo_header(src, dst, PROTO_UDP, l),
                    self.src_port,
                    self.dst_port,
                    l,
                    checksum::data(payload),
                ]);
                let c = !sum;
                p.set_checksum(if c == 0 { 0xffff } else { c })
            }
            ChecksumMode::Offload => p.set_checksum(checksum::pseudo_header(src, dst, PROTO_UDP, l)),
            ChecksumMode::Skip => p.set_checksum(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    #[test]
    fn round_trip_and_checksum() {
        let repr = UdpRepr {
            src_port: 40000,
            dst_port: 9000,
        };
        let mut buf = [0u8; 32];
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            b"hello",
            ChecksumMode::Compute,
        );
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.len(), 13);
        assert_eq!(p.payload(), b"hello");
        assert!(p.checksum() != 0);
        assert_eq!(UdpRepr::parse(&p, SRC, DST, true).unwrap(), repr);
        // A different pseudo-header breaks it.
        assert_eq!(UdpRepr::parse(&p, SRC, SRC, true), Err(WireError::BadChecksum));
        buf[9] ^= 1;
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert!(!p.verify_checksum(SRC, DST));
        buf[6] = 0;
        buf[7] = 0;
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST), "zero means no checksum");
    }

    proptest::proptest! {
        #[test]
        fn the_emitted_checksum_is_the_sum_over_the_emitted_datagram(
            src in proptest::prelude::any::<u32>(),
            dst in proptest::prelude::any::<u32>(),
            src_port in proptest::prelude::any::<u16>(),
            dst_port in proptest::prelude::any::<u16>(),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1_473),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let repr = UdpRepr { src_port, dst_port };
            let mut buf = vec![0u8; 8 + payload.len()];
            let mut p = UdpPacket::new_unchecked(&mut buf[..]);
            repr.emit(&mut p, src, dst, &payload, ChecksumMode::Compute);
            let emitted = p.checksum();
            p.fill_checksum(src, dst);
            proptest::prop_assert_eq!(emitted, p.checksum());
            proptest::prop_assert!(UdpPacket::new_unchecked(&buf[..]).verify_checksum(src, dst));
        }
    }

    #[test]
    fn a_header_emitted_around_a_payload_in_place_matches_a_copying_emit() {
        let repr = UdpRepr {
            src_port: 9000,
            dst_port: 40001,
        };
        let payload: Vec<u8> = (0..37u8).map(|b| b.wrapping_mul(29)).collect();
        let mut copied = [0u8; 8 + 37];
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut copied[..]),
            SRC,
            DST,
            &payload,
            ChecksumMode::Compute,
        );
        // Stale bytes where the header goes: all of them must be rewritten.
        let mut in_place = [0xa5u8; 8 + 37];
        in_place[8..].copy_from_slice(&payload);
        repr.emit_around(
            &mut UdpPacket::new_unchecked(&mut in_place[..]),
            SRC,
            DST,
            payload.len(),
            ChecksumMode::Compute,
        );
        assert_eq!(in_place, copied);
        assert!(UdpPacket::new_checked(&in_place[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut buf = [0u8; 16];
        assert_eq!(
            UdpPacket::new_checked(&buf[..7]).unwrap_err(),
            WireError::Truncated
        );
        buf[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&buf[..]).unwrap_err(),
            WireError::BadUdpLen
        );
        buf[5] = 17;
        assert_eq!(
            UdpPacket::new_checked(&buf[..]).unwrap_err(),
            WireError::BadUdpLen
        );
        buf[5] = 16;
        assert!(UdpPacket::new_checked(&buf[..]).is_ok());
    }
}
