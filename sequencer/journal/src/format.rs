//! Byte layout of segment headers and records (see the module doc of
//! the crate docs for the tables). Pure functions over byte slices: no
//! I/O, no allocation, total on any input.

use super::{Sequenced, SequencedRecord};
use peregrine_wire::message::MESSAGE_LEN;
use peregrine_wire::SessionRef;

/// First 8 bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"PRGNJRNL";
/// On-disk format version written by this code.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the segment header; records start right after it.
pub const HEADER_LEN: usize = 64;
/// Bytes of one record (8-byte multiple).
pub const RECORD_LEN: usize = 144;
/// Record kind of a sequenced client message.
pub const KIND_MESSAGE: u16 = 1;

/// Where each field of the 64-byte segment header lives (little-endian),
/// stated once; the crate docs show the same table.
pub mod header_field {
    use core::ops::Range;
    /// Magic `PRGNJRNL`.
    pub const MAGIC: Range<usize> = 0..8;
    /// Format version, u16.
    pub const VERSION: Range<usize> = 8..10;
    /// Header length (64), u16.
    pub const HEADER_LEN: Range<usize> = 10..12;
    /// Record length (144), u32.
    pub const RECORD_LEN: Range<usize> = 12..16;
    /// First global sequence of the segment, u64.
    pub const FIRST_SEQ: Range<usize> = 16..24;
    /// Segment size in bytes, u64.
    pub const SEGMENT_SIZE: Range<usize> = 24..32;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 32..60;
    /// CRC32C of the bytes before it, u32.
    pub const CRC: Range<usize> = 60..64;
}

/// Where each field of a 144-byte record lives (little-endian), stated
/// once; the crate docs show the same table.
pub mod record_field {
    use core::ops::Range;
    /// Record kind, u16 (1: a sequenced message).
    pub const KIND: Range<usize> = 0..2;
    /// Origin gateway id, u16.
    pub const GATEWAY: Range<usize> = 2..4;
    /// Origin session index, u32.
    pub const SESSION_INDEX: Range<usize> = 4..8;
    /// Global sequence, u64.
    pub const GLOBAL_SEQ: Range<usize> = 8..16;
    /// Client sequence, u64.
    pub const CLIENT_SEQ: Range<usize> = 16..24;
    /// Gateway receive time, ns, u64.
    pub const GATEWAY_RX_NS: Range<usize> = 24..32;
    /// Sequencer time, ns, u64.
    pub const SEQUENCER_NS: Range<usize> = 32..40;
    /// The 100-byte message as received.
    pub const MSG: Range<usize> = 40..140;
    /// CRC32C of the bytes before it, u32.
    pub const CRC: Range<usize> = 140..144;
}

use header_field as hf;
use record_field as rf;

/// True when `fields` tile `0..len` in order, without gap or overlap.
const fn tiles(fields: &[core::ops::Range<usize>], len: usize) -> bool {
    let mut at = 0;
    let mut i = 0;
    while i < fields.len() {
        if fields[i].start != at || fields[i].end <= at {
            return false;
        }
        at = fields[i].end;
        i += 1;
    }
    at == len
}

const _: () = assert!(tiles(
    &[
        hf::MAGIC,
        hf::VERSION,
        hf::HEADER_LEN,
        hf::RECORD_LEN,
        hf::FIRST_SEQ,
        hf::SEGMENT_SIZE,
        hf::RESERVED,
        hf::CRC
    ],
    HEADER_LEN
));
const _: () = assert!(tiles(
    &[
        rf::KIND,
        rf::GATEWAY,
        rf::SESSION_INDEX,
        rf::GLOBAL_SEQ,
        rf::CLIENT_SEQ,
        rf::GATEWAY_RX_NS,
        rf::SEQUENCER_NS,
        rf::MSG,
        rf::CRC
    ],
    RECORD_LEN
));
const _: () = assert!(rf::MSG.end - rf::MSG.start == MESSAGE_LEN);
const _: () = assert!(RECORD_LEN % 8 == 0);
const _: () = assert!(HEADER_LEN % 8 == 0);

/// CRC32C (Castagnoli), hardware-accelerated where the CPU has it.
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// The `N` bytes of `field` (a constant range of length `N`).
#[inline]
fn bytes_of<const N: usize>(b: &[u8], field: core::ops::Range<usize>) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[field]);
    a
}

#[inline]
fn u16_of(b: &[u8], field: core::ops::Range<usize>) -> u16 {
    u16::from_le_bytes(bytes_of(b, field))
}

#[inline]
fn u32_of(b: &[u8], field: core::ops::Range<usize>) -> u32 {
    u32::from_le_bytes(bytes_of(b, field))
}

#[inline]
fn u64_of(b: &[u8], field: core::ops::Range<usize>) -> u64 {
    u64::from_le_bytes(bytes_of(b, field))
}

/// A decoded, CRC-checked segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Global sequence of the segment's first record slot.
    pub first_seq: u64,
    /// Total file size in bytes, header included.
    pub segment_size: u64,
}

impl SegmentHeader {
    /// Record slots in a segment of this size.
    pub fn capacity(&self) -> u64 {
        capacity_of(self.segment_size)
    }
}

/// Record slots in a segment of `segment_size` bytes.
pub fn capacity_of(segment_size: u64) -> u64 {
    segment_size.saturating_sub(HEADER_LEN as u64) / RECORD_LEN as u64
}

/// Byte offset in a segment file of record slot `index` (slot 0 follows
/// the header).
#[inline]
pub fn slot_offset(index: u64) -> u64 {
    HEADER_LEN as u64 + index * RECORD_LEN as u64
}

/// The header bytes of a segment.
pub fn encode_header(h: &SegmentHeader) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[hf::MAGIC].copy_from_slice(&MAGIC);
    b[hf::VERSION].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[hf::HEADER_LEN].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    b[hf::RECORD_LEN].copy_from_slice(&(RECORD_LEN as u32).to_le_bytes());
    b[hf::FIRST_SEQ].copy_from_slice(&h.first_seq.to_le_bytes());
    b[hf::SEGMENT_SIZE].copy_from_slice(&h.segment_size.to_le_bytes());
    let crc = crc32c(&b[..hf::CRC.start]);
    b[hf::CRC].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes and checks a header; `Err` says what is wrong.
pub fn decode_header(b: &[u8]) -> Result<SegmentHeader, String> {
    if b.len() < HEADER_LEN {
        return Err(format!(
            "file is {} bytes, shorter than the {HEADER_LEN}-byte header",
            b.len()
        ));
    }
    let b = &b[..HEADER_LEN];
    if b[hf::MAGIC] != MAGIC {
        return Err("bad magic (not a Peregrine journal segment)".into());
    }
    let stored = u32_of(b, hf::CRC);
    let actual = crc32c(&b[..hf::CRC.start]);
    if stored != actual {
        return Err(format!(
            "header CRC32C mismatch (stored {stored:#010x}, computed {actual:#010x})"
        ));
    }
    let version = u16_of(b, hf::VERSION);
    if version != FORMAT_VERSION {
        return Err(format!(
            "unsupported format version {version} (this build reads {FORMAT_VERSION})"
        ));
    }
    let hlen = u16_of(b, hf::HEADER_LEN) as usize;
    let rlen = u32_of(b, hf::RECORD_LEN) as usize;
    if hlen != HEADER_LEN || rlen != RECORD_LEN {
        return Err(format!(
            "header/record length {hlen}/{rlen}, expected {HEADER_LEN}/{RECORD_LEN}"
        ));
    }
    if b[hf::RESERVED].iter().any(|&x| x != 0) {
        return Err("reserved header bytes are not zero".into());
    }
    let h = SegmentHeader {
        first_seq: u64_of(b, hf::FIRST_SEQ),
        segment_size: u64_of(b, hf::SEGMENT_SIZE),
    };
    if h.first_seq == 0 {
        return Err("first sequence is 0 (sequences start at 1)".into());
    }
    if h.capacity() == 0 {
        return Err(format!("segment size {} holds no record", h.segment_size));
    }
    Ok(h)
}

/// Writes `r` into `dst` (exactly [`RECORD_LEN`] bytes), CRC last.
#[cfg(test)]
#[inline]
pub fn encode_record(r: &SequencedRecord, dst: &mut [u8]) {
    encode(&r.as_sequenced(), dst);
}

/// Writes the sequenced message `m` as a record into `dst` (exactly
/// [`RECORD_LEN`] bytes), CRC last (`origin.reserved` is not stored).
#[inline]
pub fn encode(m: &Sequenced<'_>, dst: &mut [u8]) {
    let dst = &mut dst[..RECORD_LEN];
    dst[rf::KIND].copy_from_slice(&KIND_MESSAGE.to_le_bytes());
    dst[rf::GATEWAY].copy_from_slice(&m.origin.gateway.to_le_bytes());
    dst[rf::SESSION_INDEX].copy_from_slice(&m.origin.index.to_le_bytes());
    dst[rf::GLOBAL_SEQ].copy_from_slice(&m.global_seq.to_le_bytes());
    dst[rf::CLIENT_SEQ].copy_from_slice(&m.client_seq.to_le_bytes());
    dst[rf::GATEWAY_RX_NS].copy_from_slice(&m.gateway_rx_ns.to_le_bytes());
    dst[rf::SEQUENCER_NS].copy_from_slice(&m.sequencer_ns.to_le_bytes());
    dst[rf::MSG].copy_from_slice(m.msg);
    let crc = crc32c(&dst[..rf::CRC.start]);
    dst[rf::CRC].copy_from_slice(&crc.to_le_bytes());
}

/// Why a record slot did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// Every byte is zero: never written (the clean end of the log).
    Empty,
    /// Non-zero bytes whose CRC does not match (torn or corrupt).
    BadCrc,
    /// CRC matches but the kind is unknown.
    BadKind(u16),
}

/// Decodes one slot (exactly [`RECORD_LEN`] bytes), checking its CRC.
#[inline]
pub fn decode_record(b: &[u8]) -> Result<SequencedRecord, SlotError> {
    let b = &b[..RECORD_LEN];
    let stored = u32_of(b, rf::CRC);
    if stored != crc32c(&b[..rf::CRC.start]) {
        return Err(if is_zero(b) {
            SlotError::Empty
        } else {
            SlotError::BadCrc
        });
    }
    let kind = u16_of(b, rf::KIND);
    if kind != KIND_MESSAGE {
        return Err(SlotError::BadKind(kind));
    }
    Ok(decode_unchecked(b))
}

/// Decodes a slot already verified by [`decode_record`].
#[inline]
pub fn decode_unchecked(b: &[u8]) -> SequencedRecord {
    SequencedRecord {
        global_seq: u64_of(b, rf::GLOBAL_SEQ),
        origin: SessionRef::new(u16_of(b, rf::GATEWAY), u32_of(b, rf::SESSION_INDEX)),
        client_seq: u64_of(b, rf::CLIENT_SEQ),
        gateway_rx_ns: u64_of(b, rf::GATEWAY_RX_NS),
        sequencer_ns: u64_of(b, rf::SEQUENCER_NS),
        msg: bytes_of(b, rf::MSG),
    }
}

/// Zeros to compare against, a page at a time.
const ZERO_PAGE: [u8; 4096] = [0; 4096];

/// True when every byte is zero.
///
/// Recovery runs this over whole segments (64 MiB by default, mostly
/// zeros), so it compares page-sized chunks against a zero page: a byte
/// slice comparison is a `memcmp`, as fast in an unoptimised build as in a
/// release one, where a byte or word loop is not.
pub fn is_zero(b: &[u8]) -> bool {
    b.chunks(ZERO_PAGE.len()).all(|c| c == &ZERO_PAGE[..c.len()])
}

/// Index of the last non-zero byte of `b`, `None` when all are zero; as
/// fast as [`is_zero`] over the zero part.
pub fn last_non_zero(b: &[u8]) -> Option<usize> {
    let page = ZERO_PAGE.len();
    let chunk = b.chunks(page).rposition(|c| c != &ZERO_PAGE[..c.len()])?;
    let start = chunk * page;
    let end = (start + page).min(b.len());
    b[start..end].iter().rposition(|&x| x != 0).map(|i| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_scans_agree_with_a_byte_loop() {
        for len in [0usize, 1, 7, 4095, 4096, 4097, 3 * 4096 + 17] {
            let zeros = vec![0u8; len];
            assert!(is_zero(&zeros));
            assert_eq!(last_non_zero(&zeros), None);
            for at in [0, len / 3, len / 2, len.saturating_sub(1)] {
                if at >= len {
                    continue;
                }
                let mut b = zeros.clone();
                b[at] = 0x80;
                if at > 0 {
                    b[at / 2] = 1;
                }
                assert!(!is_zero(&b), "len {len} at {at}");
                assert_eq!(
                    last_non_zero(&b),
                    b.iter().rposition(|&x| x != 0),
                    "len {len} at {at}"
                );
            }
        }
    }

    fn sample() -> SequencedRecord {
        let mut msg = [0u8; MESSAGE_LEN];
        for (i, m) in msg.iter_mut().enumerate() {
            *m = i as u8 ^ 0x5a;
        }
        SequencedRecord {
            global_seq: 42,
            origin: SessionRef::new(3, 77),
            client_seq: 9,
            gateway_rx_ns: 1_000,
            sequencer_ns: 2_000,
            msg,
        }
    }

    #[test]
    fn record_round_trip_and_every_bit_flip_detected() {
        let r = sample();
        let mut b = [0u8; RECORD_LEN];
        encode_record(&r, &mut b);
        assert_eq!(decode_record(&b), Ok(r));
        for bit in 0..RECORD_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_record(&c).is_err(), "flip of bit {bit} undetected");
        }
        assert_eq!(decode_record(&[0u8; RECORD_LEN]), Err(SlotError::Empty));
    }

    /// The on-disk layout, byte for byte: a change here is a format change.
    #[test]
    fn record_and_header_bytes_sit_where_the_format_says() {
        let r = sample();
        let mut b = [0u8; RECORD_LEN];
        encode_record(&r, &mut b);
        assert_eq!(&b[0..2], &1u16.to_le_bytes());
        assert_eq!(&b[2..4], &3u16.to_le_bytes());
        assert_eq!(&b[4..8], &77u32.to_le_bytes());
        assert_eq!(&b[8..16], &42u64.to_le_bytes());
        assert_eq!(&b[16..24], &9u64.to_le_bytes());
        assert_eq!(&b[24..32], &1_000u64.to_le_bytes());
        assert_eq!(&b[32..40], &2_000u64.to_le_bytes());
        assert_eq!(&b[40..140], &r.msg[..]);
        assert_eq!(&b[140..144], &crc32c(&b[..140]).to_le_bytes());

        let h = encode_header(&SegmentHeader {
            first_seq: 5,
            segment_size: 4096,
        });
        assert_eq!(&h[0..8], b"PRGNJRNL");
        assert_eq!(&h[8..10], &1u16.to_le_bytes());
        assert_eq!(&h[10..12], &64u16.to_le_bytes());
        assert_eq!(&h[12..16], &144u32.to_le_bytes());
        assert_eq!(&h[16..24], &5u64.to_le_bytes());
        assert_eq!(&h[24..32], &4096u64.to_le_bytes());
        assert!(h[32..60].iter().all(|&x| x == 0));
        assert_eq!(&h[60..64], &crc32c(&h[..60]).to_le_bytes());
    }

    #[test]
    fn header_round_trip_and_checks() {
        let h = SegmentHeader {
            first_seq: 5,
            segment_size: 4096,
        };
        let b = encode_header(&h);
        assert_eq!(decode_header(&b), Ok(h));
        for bit in 0..HEADER_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_header(&c).is_err(), "flip of header bit {bit} undetected");
        }
        assert!(decode_header(&b[..10]).is_err());
    }

    #[test]
    fn is_zero_checks_every_byte() {
        for len in 0..40 {
            assert!(is_zero(&vec![0u8; len]));
            for i in 0..len {
                let mut v = vec![0u8; len];
                v[i] = 1;
                assert!(!is_zero(&v), "len {len} byte {i}");
            }
        }
    }
}
