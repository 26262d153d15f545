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
/// software-checksummed transmit. Two shortcuts are exact and used by both
/// paths below: 2^16 = 1 modulo 0xffff, so words may be summed in any
/// width and folded once at the end; and the ones'-complement sum commutes
/// with byte swapping (RFC 1071 §2(B)), so words are read in the machine's
/// own byte order and the folded sum swapped once. Where the CPU has AVX2
/// (checked at run time, once) buffers of 128 bytes or more are summed 32
/// bytes per step, pairs of 16-bit words into 32-bit lanes; elsewhere
/// [`data_portable`] sums 32-bit words into a 64-bit accumulator.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    if let Ok(header) = <&[u8; 20]>::try_from(data) {
        return header20(header);
    }
    #[cfg(target_arch = "x86_64")]
    if data.len() >= 128 && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been found to support AVX2, the only
        // requirement `sum_avx2` has beyond a valid slice.
        return u16::from_be(fold(unsafe { avx2::sum(data) }));
    }
    data_portable(data)
}

/// [`data`] without vector extensions beyond the target's baseline: the
/// fallback on CPUs without AVX2 and for short buffers, public so tests
/// and benches can compare the two paths on any machine.
#[inline]
pub fn data_portable(data: &[u8]) -> u16 {
    u16::from_be(fold(native_words(data)))
}

/// Sum of `data` as native-order 32-bit words (the last 1–3 bytes
/// zero-padded to a word), unfolded. A plain reduction the compiler
/// vectorises; it cannot overflow below 2^32 words (16 GiB).
#[inline]
fn native_words(data: &[u8]) -> u64 {
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
    acc + u64::from(u32::from_ne_bytes(tail))
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_set1_epi16,
        _mm256_setzero_si256, _mm256_storeu_si256, _mm256_xor_si256,
    };

    /// 32-byte blocks summed before the lanes are emptied into the 64-bit
    /// total. Each block adds to a lane a value in [-2^16, 2^16 - 2] (two
    /// biased words, below), so 2^14 blocks (512 KiB) keep every lane, and
    /// the sum of the four accumulators, within an `i32` (|sum| <= 2^30).
    const BLOCKS_PER_ROUND: usize = 1 << 14;

    /// The sum of `data` as native-order 16-bit words (an odd last byte
    /// zero-padded), unfolded: congruent modulo 0xffff to
    /// [`super::native_words`], since each 32-bit word is its two halves
    /// there too. The bytes after the last whole 32-byte block go through
    /// the portable loop; they start at an even offset, so their word
    /// boundaries are the same.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sum(data: &[u8]) -> u64 {
        let whole = data.len() - data.len() % 32;
        let mut total: u64 = 0;
        for round in data[..whole].chunks(32 * BLOCKS_PER_ROUND) {
            total += sum_round(round);
        }
        total + super::native_words(&data[whole..])
    }

    /// One round: at most [`BLOCKS_PER_ROUND`] whole 32-byte blocks, their
    /// exact sum as unsigned 16-bit words.
    ///
    /// Why this way: AVX2 has no unsigned 16-bit multiply-add, but flipping
    /// a word's top bit (`w ^ 0x8000`) gives the signed word `w - 2^15`, and
    /// `vpmaddwd` against ones adds adjacent signed words into 32-bit lanes.
    /// So a block costs one xor (which takes its load as an operand), one
    /// multiply-add and one add, where splitting each lane into halves took
    /// two more instructions; the bias, 2^15 for each of a block's sixteen
    /// words, is added back once at the end. Four accumulators keep four
    /// blocks in flight.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn sum_round(round: &[u8]) -> u64 {
        let mut acc = [_mm256_setzero_si256(); 4];
        let mut quads = round.chunks_exact(128);
        // SAFETY (the caller's AVX2 aside, for each `pairs` below): every
        // block handed over is 32 bytes of `round`.
        for quad in &mut quads {
            acc[0] = _mm256_add_epi32(acc[0], pairs(&quad[..32]));
            acc[1] = _mm256_add_epi32(acc[1], pairs(&quad[32..64]));
            acc[2] = _mm256_add_epi32(acc[2], pairs(&quad[64..96]));
            acc[3] = _mm256_add_epi32(acc[3], pairs(&quad[96..]));
        }
        for block in quads.remainder().chunks_exact(32) {
            acc[0] = _mm256_add_epi32(acc[0], pairs(block));
        }
        let sum = _mm256_add_epi32(_mm256_add_epi32(acc[0], acc[1]), _mm256_add_epi32(acc[2], acc[3]));
        let mut lanes = [0i32; 8];
        // SAFETY (the caller's AVX2 aside): `lanes` is 32 writable bytes
        // and an unaligned store has no alignment requirement.
        _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), sum);
        let biased: i64 = lanes.iter().map(|&l| i64::from(l)).sum();
        // Every word was read as itself minus 2^15: sixteen words a block.
        let words = (round.len() / 32 * 16) as i64;
        // Non-negative: it is the plain sum of the round's words.
        (biased + (words << 15)) as u64
    }

    /// A 32-byte block's sixteen words, each less 2^15, added in adjacent
    /// pairs into eight 32-bit lanes.
    ///
    /// # Safety
    /// The CPU must support AVX2; `block` must be at least 32 bytes.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn pairs(block: &[u8]) -> __m256i {
        debug_assert!(block.len() >= 32);
        // SAFETY (the caller's AVX2 aside): the caller gives 32 readable
        // bytes, and an unaligned load has no alignment requirement.
        let x = _mm256_loadu_si256(block.as_ptr().cast::<__m256i>());
        _mm256_madd_epi16(
            _mm256_xor_si256(x, _mm256_set1_epi16(i16::MIN)),
            _mm256_set1_epi16(1),
        )
    }
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
    fn vector_and_portable_paths_agree_with_the_reference() {
        // `data` takes the AVX2 path from 128 bytes on a CPU that has it:
        // every length around the 32-byte block edges, at every alignment.
        let buf: Vec<u8> = (0..700u32).map(|i| (i.wrapping_mul(40_503) >> 5) as u8).collect();
        for start in 0..4 {
            for n in 0..600 {
                let d = &buf[start..start + n];
                let want = reference(d);
                assert_eq!(data(d), want, "start {start} len {n}");
                assert_eq!(data_portable(d), want, "portable, start {start} len {n}");
            }
        }
    }

    #[test]
    fn vector_lanes_do_not_overflow_over_several_rounds() {
        // All-ones words are the most each lane can gain and all-zero words
        // (read as -2^15 each) the most it can lose; 1 MiB and a few bytes
        // span several 512 KiB rounds and a remainder.
        for fill in [0xffu8, 0xfe, 0x80, 0x7f, 0x01, 0x00] {
            let big = vec![fill; (1 << 20) + 37];
            assert_eq!(data(&big), reference(&big), "fill {fill:#x}");
            assert_eq!(data(&big), data_portable(&big), "fill {fill:#x}");
        }
        assert_eq!(data(&[0u8; 4096]), 0, "an all-zero buffer sums to zero");
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
