//! Byte layout of segment headers and records (see the module doc of
//! the crate docs for the tables). Pure functions over byte slices: no
//! I/O, no allocation, total on any input.

use super::SequencedRecord;
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

/// Offset of the header CRC (covers bytes `0..HDR_CRC_OFF`).
const HDR_CRC_OFF: usize = 60;
/// Offset of the record CRC (covers bytes `0..REC_CRC_OFF`).
const REC_CRC_OFF: usize = 140;
/// Offset of the message bytes inside a record.
const REC_MSG_OFF: usize = 40;

const _: () = assert!(RECORD_LEN % 8 == 0);
const _: () = assert!(REC_MSG_OFF + MESSAGE_LEN == REC_CRC_OFF);
const _: () = assert!(REC_CRC_OFF + 4 == RECORD_LEN);
const _: () = assert!(HEADER_LEN % 8 == 0);

/// CRC32C (Castagnoli), hardware-accelerated where the CPU has it.
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

#[inline]
fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_le_bytes(a)
}

#[inline]
fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

#[inline]
fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
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

/// The header bytes of a segment.
pub fn encode_header(h: &SegmentHeader) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    b[12..16].copy_from_slice(&(RECORD_LEN as u32).to_le_bytes());
    b[16..24].copy_from_slice(&h.first_seq.to_le_bytes());
    b[24..32].copy_from_slice(&h.segment_size.to_le_bytes());
    let crc = crc32c(&b[..HDR_CRC_OFF]);
    b[HDR_CRC_OFF..].copy_from_slice(&crc.to_le_bytes());
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
    if b[0..8] != MAGIC {
        return Err("bad magic (not a Peregrine journal segment)".into());
    }
    let stored = u32_at(b, HDR_CRC_OFF);
    let actual = crc32c(&b[..HDR_CRC_OFF]);
    if stored != actual {
        return Err(format!(
            "header CRC32C mismatch (stored {stored:#010x}, computed {actual:#010x})"
        ));
    }
    let version = u16_at(b, 8);
    if version != FORMAT_VERSION {
        return Err(format!(
            "unsupported format version {version} (this build reads {FORMAT_VERSION})"
        ));
    }
    let hlen = u16_at(b, 10) as usize;
    let rlen = u32_at(b, 12) as usize;
    if hlen != HEADER_LEN || rlen != RECORD_LEN {
        return Err(format!(
            "header/record length {hlen}/{rlen}, expected {HEADER_LEN}/{RECORD_LEN}"
        ));
    }
    if b[32..HDR_CRC_OFF].iter().any(|&x| x != 0) {
        return Err("reserved header bytes are not zero".into());
    }
    let h = SegmentHeader {
        first_seq: u64_at(b, 16),
        segment_size: u64_at(b, 24),
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
    encode_parts(
        r.global_seq,
        r.origin,
        r.client_seq,
        r.gateway_rx_ns,
        r.sequencer_ns,
        &r.msg,
        dst,
    );
}

/// [`encode_record`] from the fields (`origin.reserved` is not stored).
#[inline]
pub fn encode_parts(
    global_seq: u64,
    origin: SessionRef,
    client_seq: u64,
    gateway_rx_ns: u64,
    sequencer_ns: u64,
    msg: &[u8; MESSAGE_LEN],
    dst: &mut [u8],
) {
    let dst = &mut dst[..RECORD_LEN];
    dst[0..2].copy_from_slice(&KIND_MESSAGE.to_le_bytes());
    dst[2..4].copy_from_slice(&origin.gateway.to_le_bytes());
    dst[4..8].copy_from_slice(&origin.index.to_le_bytes());
    dst[8..16].copy_from_slice(&global_seq.to_le_bytes());
    dst[16..24].copy_from_slice(&client_seq.to_le_bytes());
    dst[24..32].copy_from_slice(&gateway_rx_ns.to_le_bytes());
    dst[32..40].copy_from_slice(&sequencer_ns.to_le_bytes());
    dst[REC_MSG_OFF..REC_CRC_OFF].copy_from_slice(msg);
    let crc = crc32c(&dst[..REC_CRC_OFF]);
    dst[REC_CRC_OFF..].copy_from_slice(&crc.to_le_bytes());
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
    let stored = u32_at(b, REC_CRC_OFF);
    if stored != crc32c(&b[..REC_CRC_OFF]) {
        return Err(if is_zero(b) {
            SlotError::Empty
        } else {
            SlotError::BadCrc
        });
    }
    let kind = u16_at(b, 0);
    if kind != KIND_MESSAGE {
        return Err(SlotError::BadKind(kind));
    }
    Ok(decode_unchecked(b))
}

/// Decodes a slot already verified by [`decode_record`].
#[inline]
pub fn decode_unchecked(b: &[u8]) -> SequencedRecord {
    let mut msg = [0u8; MESSAGE_LEN];
    msg.copy_from_slice(&b[REC_MSG_OFF..REC_CRC_OFF]);
    SequencedRecord {
        global_seq: u64_at(b, 8),
        origin: SessionRef::new(u16_at(b, 2), u32_at(b, 4)),
        client_seq: u64_at(b, 16),
        gateway_rx_ns: u64_at(b, 24),
        sequencer_ns: u64_at(b, 32),
        msg,
    }
}

/// True when every byte is zero.
pub fn is_zero(b: &[u8]) -> bool {
    // Word-at-a-time is plenty for a startup scan.
    let (head, words) = (b.len() % 8, b.len() / 8);
    b[..head].iter().all(|&x| x == 0) && (0..words).all(|i| u64_at(b, head + i * 8) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
