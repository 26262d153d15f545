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
/// Why it is written this way: it runs once per transmitted packet over up
/// to 1,472 bytes, so it is one of the larger per-packet costs of a
/// software-checksummed transmit. The sum is taken over 32-bit words read
/// in the machine's own byte order into a 64-bit accumulator, a plain
/// reduction the compiler vectorises. Both shortcuts are exact: 2^16 = 1
/// modulo 0xffff, so summing 32-bit words is summing their 16-bit halves;
/// and the ones'-complement sum commutes with byte swapping (RFC 1071
/// §2(B)), so a sum of swapped words is the swapped sum, undone once at
/// the end. The accumulator cannot overflow below 2^32 words (16 GiB).
#[inline]
pub fn data(data: &[u8]) -> u16 {
    if let Ok(header) = <&[u8; 20]>::try_from(data) {
        return header20(header);
    }
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    // The last 1–3 bytes, zero-padded to a word: the same as padding an
    // odd last byte with zero.
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_ne_bytes(tail));
    u16::from_be(fold(acc))
}

/// [`data`] over exactly 20 bytes (an IPv4 header without options, every
/// received frame's): five words added straight, where the general loop's
/// set-up for vectors would cost more than the sum.
#[inline]
fn header20(h: &[u8; 20]) -> u16 {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    u16::from_be(fold(w(0) + w(4) + w(8) + w(12) + w(16)))
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
    fn matches_reference_at_every_alignment_and_for_large_buffers() {
        let buf: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..8 {
            for n in [1_471, 1_472, 1_473, 9_000, 65_507] {
                let d = &buf[start..start + n];
                assert_eq!(data(d), reference(d), "start {start} len {n}");
            }
        }
        let ones = vec![0xffu8; 65_536];
        assert_eq!(data(&ones), reference(&ones));
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
