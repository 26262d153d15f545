//! The internet checksum (RFC 1071): ones'-complement sum of 16-bit words.

use std::net::Ipv4Addr;

/// Folds a wide accumulator into 16 bits with end-around carry.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Ones'-complement sum of `data` as big-endian 16-bit words (an odd last
/// byte is padded with zero), folded but not inverted.
///
/// Sums 32-bit words into a 64-bit accumulator: since 2^16 = 1 modulo
/// 0xffff, that is the same sum as over 16-bit words, in half the steps.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    fold(acc)
}

/// Ones'-complement sum of several partial sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo-header used by UDP and TCP checksums.
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    fold(u64::from(s) + u64::from(d) + u64::from(protocol) + u64::from(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward 16-bit reference implementation.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            acc += u64::from(w);
        }
        fold(acc)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2.
        assert_eq!(data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
    }

    #[test]
    fn matches_reference_for_all_lengths() {
        let buf: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..buf.len() {
            assert_eq!(data(&buf[..n]), reference(&buf[..n]), "len {n}");
        }
    }

    #[test]
    fn pseudo_header_matches_bytes() {
        let src = Ipv4Addr::new(198, 18, 0, 2);
        let dst = Ipv4Addr::new(198, 19, 255, 1);
        let mut b = Vec::new();
        b.extend_from_slice(&src.octets());
        b.extend_from_slice(&dst.octets());
        b.extend_from_slice(&[0, 17, 0x05, 0xdc]);
        assert_eq!(pseudo_header(src, dst, 17, 1500), reference(&b));
    }
}
