//! IPv4 headers (RFC 791). Options are carried but not interpreted.

use super::checksum;
use super::{be16, put_be16, ChecksumMode, WireError};
use std::net::Ipv4Addr;

/// The IPv4 protocol field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// 1
    Icmp,
    /// 6
    Tcp,
    /// 17
    Udp,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            o => IpProtocol::Unknown(o),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> u8 {
        match v {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(o) => o,
        }
    }
}

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of a header without options.
    pub const MIN_HEADER_LEN: usize = 20;

    /// Wraps `buffer` without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after [`Ipv4Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the lengths are consistent so every accessor (including
    /// [`Ipv4Packet::payload`]) stays in bounds:
    /// - the buffer holds the fixed header (`Truncated`);
    /// - IHL is at least 5 words and the header fits the buffer
    ///   (`BadHeaderLen`);
    /// - total length covers the header and fits the buffer (`BadTotalLen`;
    ///   a longer buffer is fine: Ethernet pads short frames).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < Self::MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len() as usize;
        if hl < Self::MIN_HEADER_LEN || hl > len {
            return Err(WireError::BadHeaderLen);
        }
        let tl = self.total_len() as usize;
        if tl < hl || tl > len {
            return Err(WireError::BadTotalLen);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4 for IPv4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN byte.
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length (header + payload).
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        self.buffer.as_ref()[field::PROTOCOL].into()
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// True when the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let hl = self.header_len() as usize;
        checksum::data(&self.buffer.as_ref()[..hl]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The payload: from the end of the header to the total length.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let hl = self.header_len() as usize;
        let tl = self.total_len() as usize;
        &self.buffer.as_ref()[hl..tl]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version and header length (bytes, a multiple of 4).
    #[inline]
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: u8) {
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ((header_len / 4) & 0x0f);
    }

    /// Sets DSCP and ECN.
    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::LENGTH, v)
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::IDENT, v)
    }

    /// Sets the flags and fragment offset (offset in bytes, multiple of 8).
    #[inline]
    pub fn set_flags_and_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        put_be16(self.buffer.as_mut(), field::FLG_OFF, v)
    }

    /// Sets the TTL.
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.into()
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets())
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets())
    }

    /// Computes and stores the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len() as usize;
        let sum = checksum::data(&self.buffer.as_ref()[..hl]);
        self.set_checksum(!sum)
    }

    /// Everything after the header, mutable (to the end of the buffer).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        &mut self.buffer.as_mut()[hl..]
    }
}

/// The meaning of an unfragmented IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Header length emitted (no options).
    pub const HEADER_LEN: usize = 20;

    /// Validates and reads a header: lengths ([`Ipv4Packet::check_len`]),
    /// version 4, not a fragment, and (if `verify_checksum`) the checksum.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>, verify_checksum: bool) -> Result<Self, WireError> {
        p.check_len()?;
        if p.version() != 4 {
            return Err(WireError::BadVersion);
        }
        if p.more_frags() || p.frag_offset() != 0 {
            return Err(WireError::Fragment);
        }
        if verify_checksum && !p.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len() as usize,
            ttl: p.ttl(),
        })
    }

    /// Header length.
    pub const fn buffer_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Writes a 20-byte header (DF set, ident 0) into `p`, whose buffer must
    /// hold at least the header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>, cksum: ChecksumMode) {
        p.set_version_and_header_len(4, Self::HEADER_LEN as u8);
        p.set_dscp_ecn(0);
        p.set_total_len((Self::HEADER_LEN + self.payload_len) as u16);
        p.set_ident(0);
        p.set_flags_and_offset(true, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        match cksum {
            ChecksumMode::Compute => p.set_checksum(self.header_checksum()),
            ChecksumMode::Offload | ChecksumMode::Skip => p.set_checksum(0),
        }
    }

    /// The header checksum of the header [`emit`](Self::emit) writes,
    /// computed from the field values.
    ///
    /// Why not sum the emitted bytes: on the transmit path the header has
    /// just been stored into a frame buffer that is often not yet in cache,
    /// and reading it back 32 bits at a time over 16- and 8-bit stores
    /// waits for those stores to complete. The values are in registers.
    #[inline]
    pub fn header_checksum(&self) -> u16 {
        let (s, d) = (u32::from(self.src_addr), u32::from(self.dst_addr));
        let total = (Self::HEADER_LEN + self.payload_len) as u16;
        let words = [
            0x4500, // version 4, 20-byte header, DSCP/ECN 0
            total,
            0, // identification
            FLAG_DF,
            u16::from_be_bytes([self.ttl, u8::from(self.protocol)]),
            (s >> 16) as u16,
            s as u16,
            (d >> 16) as u16,
            d as u16,
        ];
        !checksum::fold(words.iter().map(|&w| u64::from(w)).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Ipv4Repr, [u8; 40]) {
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 2),
            dst_addr: Ipv4Addr::new(198, 18, 0, 1),
            protocol: IpProtocol::Udp,
            payload_len: 12,
            ttl: 64,
        };
        let mut buf = [0u8; 40];
        repr.emit(
            &mut Ipv4Packet::new_unchecked(&mut buf[..]),
            ChecksumMode::Compute,
        );
        (repr, buf)
    }

    proptest::proptest! {
        #[test]
        fn header_checksum_is_the_sum_of_the_emitted_header(
            src in proptest::prelude::any::<u32>(),
            dst in proptest::prelude::any::<u32>(),
            payload_len in 0usize..65_516,
            ttl in proptest::prelude::any::<u8>(),
            udp in proptest::prelude::any::<bool>(),
        ) {
            let repr = Ipv4Repr {
                src_addr: Ipv4Addr::from(src),
                dst_addr: Ipv4Addr::from(dst),
                protocol: if udp { IpProtocol::Udp } else { IpProtocol::Tcp },
                payload_len,
                ttl,
            };
            let mut buf = [0u8; 20];
            let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut p, ChecksumMode::Compute);
            let emitted = p.checksum();
            p.fill_checksum();
            proptest::prop_assert_eq!(emitted, p.checksum());
            proptest::prop_assert!(Ipv4Packet::new_unchecked(&buf[..]).verify_checksum());
        }
    }

    #[test]
    fn round_trip_with_padding() {
        let (repr, buf) = sample();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p, true).unwrap(), repr);
        assert_eq!(p.payload().len(), 12);
        assert!(p.dont_frag());
    }

    #[test]
    fn rejects_bad_headers() {
        let (_, mut buf) = sample();
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..19]).unwrap_err(),
            WireError::Truncated
        );
        buf[0] = 0x44; // IHL 4
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::BadHeaderLen
        );
        buf[0] = 0x4f; // IHL 15 = 60 bytes > 40
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::BadHeaderLen
        );
        let (_, mut buf) = sample();
        buf[3] = 41; // total length beyond buffer
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::BadTotalLen
        );
        let (_, mut buf) = sample();
        buf[0] = 0x65;
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p, false), Err(WireError::BadVersion));
        let (_, mut buf) = sample();
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_flags_and_offset(false, true, 0);
        assert_eq!(Ipv4Repr::parse(&p, false), Err(WireError::Fragment));
        p.set_flags_and_offset(false, false, 1480);
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(Ipv4Repr::parse(&p, false), Err(WireError::Fragment));
        p.set_flags_and_offset(true, false, 0);
        assert_eq!(Ipv4Repr::parse(&p, true).map(|r| r.ttl), Ok(64));
        p.set_ttl(63);
        assert_eq!(Ipv4Repr::parse(&p, true), Err(WireError::BadChecksum));
    }
}
