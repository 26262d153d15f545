//! The message blocks the feed carries inside MoldUDP64 packets.
//!
//! Every block is fixed-size per kind and big-endian (MoldUDP64's own byte
//! order), so a consumer can check a block by its length and first bytes
//! alone. Each layout is stated once as a table of field ranges (the
//! `*_field` modules, checked at compile time to tile the block) and
//! documented byte by byte in `docs/PROTOCOL.md`, section "Sequenced feed
//! (MoldUDP64)"; a test compares the two.
//!
//! Views ([`RecordBlock`], [`MarketBlockView`]) borrow validated bytes;
//! owned values ([`FeedRecord`], [`MarketBlock`]) have a total `parse` and
//! an `emit` into a caller's buffer. Nothing here allocates or panics on
//! any input.

use core::ops::Range;
use peregrine_journal::SequencedRecord;
use peregrine_wire::message::MESSAGE_LEN;
use peregrine_wire::SessionRef;

/// Bytes of an order-stream record block.
pub const RECORD_BLOCK_LEN: usize = 136;
/// Kind carried by every order-stream block this version writes: one
/// sequenced client message.
pub const RECORD_KIND_MESSAGE: u16 = 1;
/// Bytes of a market-data trade block.
pub const TRADE_BLOCK_LEN: usize = 40;
/// Bytes of a market-data level-update block.
pub const LEVEL_BLOCK_LEN: usize = 32;
/// Type byte of a trade block (`'T'`).
pub const TRADE_TYPE: u8 = b'T';
/// Type byte of a level-update block (`'L'`).
pub const LEVEL_TYPE: u8 = b'L';
/// Longest block of either stream.
pub const MAX_BLOCK_LEN: usize = RECORD_BLOCK_LEN;

/// Field ranges of the 136-byte order-stream record block (big-endian).
pub mod record_field {
    use core::ops::Range;
    /// Block kind, u16 (1: a sequenced client message).
    pub const KIND: Range<usize> = 0..2;
    /// Origin gateway id, u16.
    pub const GATEWAY: Range<usize> = 2..4;
    /// Origin session index, u32.
    pub const SESSION_INDEX: Range<usize> = 4..8;
    /// The client's sequence number in its session, u64.
    pub const CLIENT_SEQ: Range<usize> = 8..16;
    /// Gateway receive time, ns (CLOCK_MONOTONIC of the server host), u64.
    pub const GATEWAY_RX_NS: Range<usize> = 16..24;
    /// Sequencing time, ns (same clock), u64.
    pub const SEQUENCER_NS: Range<usize> = 24..32;
    /// The 100-byte message exactly as sequenced (little-endian inside,
    /// see the message tables).
    pub const MSG: Range<usize> = 32..132;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 132..136;
}

/// Field ranges of the 40-byte trade block (big-endian).
pub mod trade_field {
    use core::ops::Range;
    /// Block type `'T'`.
    pub const TYPE: Range<usize> = 0..1;
    /// Aggressor (taker) side: 1 buy, 2 sell.
    pub const AGGRESSOR: Range<usize> = 1..2;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 2..4;
    /// Instrument id, u32.
    pub const INSTRUMENT: Range<usize> = 4..8;
    /// Trade price, i64 (instrument price units).
    pub const PRICE: Range<usize> = 8..16;
    /// Traded quantity, u64.
    pub const QUANTITY: Range<usize> = 16..24;
    /// Trade (match) id, u64, unique per engine.
    pub const TRADE_ID: Range<usize> = 24..32;
    /// Global sequence of the order-stream record that caused it, u64.
    pub const SOURCE_SEQ: Range<usize> = 32..40;
}

/// Field ranges of the 32-byte level-update block (big-endian).
pub mod level_field {
    use core::ops::Range;
    /// Block type `'L'`.
    pub const TYPE: Range<usize> = 0..1;
    /// Book side: 1 bid, 2 ask.
    pub const SIDE: Range<usize> = 1..2;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 2..4;
    /// Instrument id, u32.
    pub const INSTRUMENT: Range<usize> = 4..8;
    /// Price of the level, i64.
    pub const PRICE: Range<usize> = 8..16;
    /// Total open quantity now resting at that price (0: level gone), u64.
    pub const QUANTITY: Range<usize> = 16..24;
    /// Global sequence of the order-stream record that caused it, u64.
    pub const SOURCE_SEQ: Range<usize> = 24..32;
}

/// True when `fields` tile `0..len` in order, without gap or overlap.
const fn tiles(fields: &[Range<usize>], len: usize) -> bool {
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

/// One block layout: its name and its (field, byte range) rows.
pub type BlockLayout = (&'static str, &'static [(&'static str, Range<usize>)]);

/// Every block layout: what `docs/PROTOCOL.md` must show (a test compares
/// them).
pub const BLOCK_LAYOUTS: &[BlockLayout] = &[
    (
        "Order record block",
        &[
            ("kind", record_field::KIND),
            ("gateway", record_field::GATEWAY),
            ("session_index", record_field::SESSION_INDEX),
            ("client_seq", record_field::CLIENT_SEQ),
            ("gateway_rx_ns", record_field::GATEWAY_RX_NS),
            ("sequencer_ns", record_field::SEQUENCER_NS),
            ("msg", record_field::MSG),
            ("reserved", record_field::RESERVED),
        ],
    ),
    (
        "Trade block",
        &[
            ("type", trade_field::TYPE),
            ("aggressor", trade_field::AGGRESSOR),
            ("reserved", trade_field::RESERVED),
            ("instrument", trade_field::INSTRUMENT),
            ("price", trade_field::PRICE),
            ("quantity", trade_field::QUANTITY),
            ("trade_id", trade_field::TRADE_ID),
            ("source_seq", trade_field::SOURCE_SEQ),
        ],
    ),
    (
        "Level update block",
        &[
            ("type", level_field::TYPE),
            ("side", level_field::SIDE),
            ("reserved", level_field::RESERVED),
            ("instrument", level_field::INSTRUMENT),
            ("price", level_field::PRICE),
            ("quantity", level_field::QUANTITY),
            ("source_seq", level_field::SOURCE_SEQ),
        ],
    ),
];

const _: () = assert!(tiles(
    &[
        record_field::KIND,
        record_field::GATEWAY,
        record_field::SESSION_INDEX,
        record_field::CLIENT_SEQ,
        record_field::GATEWAY_RX_NS,
        record_field::SEQUENCER_NS,
        record_field::MSG,
        record_field::RESERVED
    ],
    RECORD_BLOCK_LEN
));
const _: () = assert!(record_field::MSG.end - record_field::MSG.start == MESSAGE_LEN);
const _: () = assert!(tiles(
    &[
        trade_field::TYPE,
        trade_field::AGGRESSOR,
        trade_field::RESERVED,
        trade_field::INSTRUMENT,
        trade_field::PRICE,
        trade_field::QUANTITY,
        trade_field::TRADE_ID,
        trade_field::SOURCE_SEQ
    ],
    TRADE_BLOCK_LEN
));
const _: () = assert!(tiles(
    &[
        level_field::TYPE,
        level_field::SIDE,
        level_field::RESERVED,
        level_field::INSTRUMENT,
        level_field::PRICE,
        level_field::QUANTITY,
        level_field::SOURCE_SEQ
    ],
    LEVEL_BLOCK_LEN
));

/// Why a block was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The block's length is not the one its kind requires.
    #[error("block of {got} bytes, expected {expected}")]
    Length {
        /// Bytes received.
        got: usize,
        /// Bytes the kind requires.
        expected: usize,
    },
    /// An unknown record kind or market-data type byte.
    #[error("unknown block kind {0}")]
    UnknownKind(u16),
    /// A side byte other than 1 (buy/bid) or 2 (sell/ask).
    #[error("bad side {0}")]
    BadSide(u8),
    /// Reserved bytes that are not zero.
    #[error("reserved bytes not zero")]
    Reserved,
}

#[inline]
fn arr<const N: usize>(b: &[u8], r: Range<usize>) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[r]);
    a
}

#[inline]
fn be_u16(b: &[u8], r: Range<usize>) -> u16 {
    u16::from_be_bytes(arr(b, r))
}

#[inline]
fn be_u32(b: &[u8], r: Range<usize>) -> u32 {
    u32::from_be_bytes(arr(b, r))
}

#[inline]
fn be_u64(b: &[u8], r: Range<usize>) -> u64 {
    u64::from_be_bytes(arr(b, r))
}

#[inline]
fn be_i64(b: &[u8], r: Range<usize>) -> i64 {
    i64::from_be_bytes(arr(b, r))
}

/// A checked, borrowed order-stream record block.
#[derive(Clone, Copy, Debug)]
pub struct RecordBlock<'a> {
    buf: &'a [u8],
}

impl<'a> RecordBlock<'a> {
    /// Checks length, kind and reserved bytes.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, BlockError> {
        if buf.len() != RECORD_BLOCK_LEN {
            return Err(BlockError::Length {
                got: buf.len(),
                expected: RECORD_BLOCK_LEN,
            });
        }
        let kind = be_u16(buf, record_field::KIND);
        if kind != RECORD_KIND_MESSAGE {
            return Err(BlockError::UnknownKind(kind));
        }
        if buf[record_field::RESERVED].iter().any(|&b| b != 0) {
            return Err(BlockError::Reserved);
        }
        Ok(RecordBlock { buf })
    }

    /// Block kind (1).
    pub fn kind(&self) -> u16 {
        be_u16(self.buf, record_field::KIND)
    }

    /// The sending session.
    pub fn origin(&self) -> SessionRef {
        SessionRef::new(
            be_u16(self.buf, record_field::GATEWAY),
            be_u32(self.buf, record_field::SESSION_INDEX),
        )
    }

    /// The client's sequence number in its session.
    pub fn client_seq(&self) -> u64 {
        be_u64(self.buf, record_field::CLIENT_SEQ)
    }

    /// Gateway receive time, ns.
    pub fn gateway_rx_ns(&self) -> u64 {
        be_u64(self.buf, record_field::GATEWAY_RX_NS)
    }

    /// Sequencing time, ns.
    pub fn sequencer_ns(&self) -> u64 {
        be_u64(self.buf, record_field::SEQUENCER_NS)
    }

    /// The 100-byte message.
    pub fn msg(&self) -> &'a [u8; MESSAGE_LEN] {
        let m: &'a [u8] = &self.buf[record_field::MSG];
        // The range has exactly MESSAGE_LEN bytes (checked at compile time).
        m.try_into().unwrap_or(&[0u8; MESSAGE_LEN])
    }
}

/// One order-stream record, owned: a journal record without its CRC, plus
/// the global sequence its position in the MoldUDP64 stream gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedRecord {
    /// Global sequence (MoldUDP64 sequence of the block).
    pub global_seq: u64,
    /// The sending session (`reserved` always 0).
    pub origin: SessionRef,
    /// The client's sequence number in its session.
    pub client_seq: u64,
    /// Gateway receive time, ns.
    pub gateway_rx_ns: u64,
    /// Sequencing time, ns.
    pub sequencer_ns: u64,
    /// The 100-byte message.
    pub msg: [u8; MESSAGE_LEN],
}

impl FeedRecord {
    /// Parses the block at position `global_seq` of the stream.
    pub fn parse(global_seq: u64, block: &[u8]) -> Result<FeedRecord, BlockError> {
        let b = RecordBlock::new_checked(block)?;
        Ok(FeedRecord {
            global_seq,
            origin: b.origin(),
            client_seq: b.client_seq(),
            gateway_rx_ns: b.gateway_rx_ns(),
            sequencer_ns: b.sequencer_ns(),
            msg: *b.msg(),
        })
    }

    /// Writes the block into `dst[..RECORD_BLOCK_LEN]` and returns
    /// [`RECORD_BLOCK_LEN`]; writes nothing and returns 0 when `dst` is
    /// shorter.
    pub fn emit(&self, dst: &mut [u8]) -> usize {
        let Some(d) = dst.get_mut(..RECORD_BLOCK_LEN) else {
            return 0;
        };
        emit_record(
            d,
            self.origin,
            self.client_seq,
            self.gateway_rx_ns,
            self.sequencer_ns,
            &self.msg,
        );
        RECORD_BLOCK_LEN
    }

    /// The journal's form of the same record.
    pub fn to_sequenced_record(&self) -> SequencedRecord {
        SequencedRecord {
            global_seq: self.global_seq,
            origin: self.origin,
            client_seq: self.client_seq,
            gateway_rx_ns: self.gateway_rx_ns,
            sequencer_ns: self.sequencer_ns,
            msg: self.msg,
        }
    }

    /// From the journal's form (`origin.reserved` is not carried: 0).
    pub fn from_sequenced_record(r: &SequencedRecord) -> FeedRecord {
        FeedRecord {
            global_seq: r.global_seq,
            origin: SessionRef::new(r.origin.gateway, r.origin.index),
            client_seq: r.client_seq,
            gateway_rx_ns: r.gateway_rx_ns,
            sequencer_ns: r.sequencer_ns,
            msg: r.msg,
        }
    }
}

/// Writes a journal record's block straight into `dst` (exactly
/// [`RECORD_BLOCK_LEN`] bytes): the publisher's path, no intermediate copy.
pub fn emit_sequenced(r: &SequencedRecord, dst: &mut [u8; RECORD_BLOCK_LEN]) {
    emit_record(
        dst,
        r.origin,
        r.client_seq,
        r.gateway_rx_ns,
        r.sequencer_ns,
        &r.msg,
    );
}

fn emit_record(
    d: &mut [u8],
    origin: SessionRef,
    client_seq: u64,
    gateway_rx_ns: u64,
    sequencer_ns: u64,
    msg: &[u8; MESSAGE_LEN],
) {
    d[record_field::KIND].copy_from_slice(&RECORD_KIND_MESSAGE.to_be_bytes());
    d[record_field::GATEWAY].copy_from_slice(&origin.gateway.to_be_bytes());
    d[record_field::SESSION_INDEX].copy_from_slice(&origin.index.to_be_bytes());
    d[record_field::CLIENT_SEQ].copy_from_slice(&client_seq.to_be_bytes());
    d[record_field::GATEWAY_RX_NS].copy_from_slice(&gateway_rx_ns.to_be_bytes());
    d[record_field::SEQUENCER_NS].copy_from_slice(&sequencer_ns.to_be_bytes());
    d[record_field::MSG].copy_from_slice(msg);
    d[record_field::RESERVED].fill(0);
}

/// A side of the book or of a trade's aggressor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BookSide {
    /// Buy / bid (wire value 1).
    Buy = 1,
    /// Sell / ask (wire value 2).
    Sell = 2,
}

impl BookSide {
    /// The wire value.
    pub fn to_wire(self) -> u8 {
        self as u8
    }

    /// From the wire value.
    pub fn from_wire(b: u8) -> Result<BookSide, BlockError> {
        match b {
            1 => Ok(BookSide::Buy),
            2 => Ok(BookSide::Sell),
            other => Err(BlockError::BadSide(other)),
        }
    }
}

/// One block of the market-data stream (its own MoldUDP64 session and
/// sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarketBlock {
    /// A trade between an incoming (aggressor) order and a resting one.
    Trade {
        /// Instrument id.
        instrument: u32,
        /// Trade price.
        price: i64,
        /// Traded quantity.
        quantity: u64,
        /// Side of the incoming order.
        aggressor: BookSide,
        /// The engine's match id.
        trade_id: u64,
        /// Order-stream record that caused it.
        source_seq: u64,
    },
    /// The total open quantity at one price level changed.
    Level {
        /// Instrument id.
        instrument: u32,
        /// Book side.
        side: BookSide,
        /// Level price.
        price: i64,
        /// Total open quantity now at that level; 0 = the level is gone.
        quantity: u64,
        /// Order-stream record that caused it.
        source_seq: u64,
    },
}

impl MarketBlock {
    /// Encoded length of this block.
    pub fn len(&self) -> usize {
        match self {
            MarketBlock::Trade { .. } => TRADE_BLOCK_LEN,
            MarketBlock::Level { .. } => LEVEL_BLOCK_LEN,
        }
    }

    /// Never empty (for the `len` convention).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The order-stream sequence that caused it.
    pub fn source_seq(&self) -> u64 {
        match *self {
            MarketBlock::Trade { source_seq, .. } | MarketBlock::Level { source_seq, .. } => source_seq,
        }
    }

    /// Parses one block (type byte first; exact length per type).
    pub fn parse(b: &[u8]) -> Result<MarketBlock, BlockError> {
        let Some(&ty) = b.first() else {
            return Err(BlockError::Length {
                got: 0,
                expected: LEVEL_BLOCK_LEN,
            });
        };
        let expected = match ty {
            TRADE_TYPE => TRADE_BLOCK_LEN,
            LEVEL_TYPE => LEVEL_BLOCK_LEN,
            other => return Err(BlockError::UnknownKind(u16::from(other))),
        };
        if b.len() != expected {
            return Err(BlockError::Length {
                got: b.len(),
                expected,
            });
        }
        if ty == TRADE_TYPE {
            if b[trade_field::RESERVED].iter().any(|&x| x != 0) {
                return Err(BlockError::Reserved);
            }
            Ok(MarketBlock::Trade {
                instrument: be_u32(b, trade_field::INSTRUMENT),
                price: be_i64(b, trade_field::PRICE),
                quantity: be_u64(b, trade_field::QUANTITY),
                aggressor: BookSide::from_wire(b[trade_field::AGGRESSOR.start])?,
                trade_id: be_u64(b, trade_field::TRADE_ID),
                source_seq: be_u64(b, trade_field::SOURCE_SEQ),
            })
        } else {
            if b[level_field::RESERVED].iter().any(|&x| x != 0) {
                return Err(BlockError::Reserved);
            }
            Ok(MarketBlock::Level {
                instrument: be_u32(b, level_field::INSTRUMENT),
                side: BookSide::from_wire(b[level_field::SIDE.start])?,
                price: be_i64(b, level_field::PRICE),
                quantity: be_u64(b, level_field::QUANTITY),
                source_seq: be_u64(b, level_field::SOURCE_SEQ),
            })
        }
    }

    /// Writes the block at the start of `dst`; returns its length, or 0
    /// (nothing written) when `dst` is too short.
    pub fn emit(&self, dst: &mut [u8]) -> usize {
        let n = self.len();
        let Some(d) = dst.get_mut(..n) else {
            return 0;
        };
        match *self {
            MarketBlock::Trade {
                instrument,
                price,
                quantity,
                aggressor,
                trade_id,
                source_seq,
            } => {
                d[trade_field::TYPE.start] = TRADE_TYPE;
                d[trade_field::AGGRESSOR.start] = aggressor.to_wire();
                d[trade_field::RESERVED].fill(0);
                d[trade_field::INSTRUMENT].copy_from_slice(&instrument.to_be_bytes());
                d[trade_field::PRICE].copy_from_slice(&price.to_be_bytes());
                d[trade_field::QUANTITY].copy_from_slice(&quantity.to_be_bytes());
                d[trade_field::TRADE_ID].copy_from_slice(&trade_id.to_be_bytes());
                d[trade_field::SOURCE_SEQ].copy_from_slice(&source_seq.to_be_bytes());
            }
            MarketBlock::Level {
                instrument,
                side,
                price,
                quantity,
                source_seq,
            } => {
                d[level_field::TYPE.start] = LEVEL_TYPE;
                d[level_field::SIDE.start] = side.to_wire();
                d[level_field::RESERVED].fill(0);
                d[level_field::INSTRUMENT].copy_from_slice(&instrument.to_be_bytes());
                d[level_field::PRICE].copy_from_slice(&price.to_be_bytes());
                d[level_field::QUANTITY].copy_from_slice(&quantity.to_be_bytes());
                d[level_field::SOURCE_SEQ].copy_from_slice(&source_seq.to_be_bytes());
            }
        }
        n
    }
}

/// A checked, borrowed market-data block.
#[derive(Clone, Copy, Debug)]
pub struct MarketBlockView<'a> {
    buf: &'a [u8],
}

impl<'a> MarketBlockView<'a> {
    /// Checks the block fully (same rules as [`MarketBlock::parse`]).
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, BlockError> {
        MarketBlock::parse(buf)?;
        Ok(MarketBlockView { buf })
    }

    /// The type byte (`'T'` or `'L'`).
    pub fn block_type(&self) -> u8 {
        self.buf[0]
    }

    /// The owned value.
    pub fn to_owned_block(&self) -> Option<MarketBlock> {
        MarketBlock::parse(self.buf).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> FeedRecord {
        let mut msg = [0u8; MESSAGE_LEN];
        for (i, m) in msg.iter_mut().enumerate() {
            *m = (i as u8).wrapping_mul(7);
        }
        FeedRecord {
            global_seq: 99,
            origin: SessionRef::new(0x0102, 0x0304_0506),
            client_seq: 0x1112_1314_1516_1718,
            gateway_rx_ns: 5,
            sequencer_ns: 6,
            msg,
        }
    }

    #[test]
    fn record_block_bytes_sit_where_the_doc_says() {
        let r = sample();
        let mut b = [0xAAu8; 200];
        assert_eq!(r.emit(&mut b), RECORD_BLOCK_LEN);
        assert_eq!(&b[0..2], &[0, 1]);
        assert_eq!(&b[2..4], &[1, 2]);
        assert_eq!(&b[4..8], &[3, 4, 5, 6]);
        assert_eq!(&b[8..16], &0x1112_1314_1516_1718u64.to_be_bytes());
        assert_eq!(&b[16..24], &5u64.to_be_bytes());
        assert_eq!(&b[24..32], &6u64.to_be_bytes());
        assert_eq!(&b[32..132], &r.msg[..]);
        assert_eq!(&b[132..136], &[0, 0, 0, 0]);
        assert_eq!(b[136], 0xAA, "nothing past the block");
        assert_eq!(FeedRecord::parse(99, &b[..136]), Ok(r));
        assert_eq!(r.emit(&mut [0u8; 135]), 0);
        let j = r.to_sequenced_record();
        assert_eq!(FeedRecord::from_sequenced_record(&j), r);
        let mut direct = [0u8; RECORD_BLOCK_LEN];
        emit_sequenced(&j, &mut direct);
        assert_eq!(&direct[..], &b[..136]);
    }

    #[test]
    fn record_block_rejections() {
        let mut b = [0u8; RECORD_BLOCK_LEN];
        sample().emit(&mut b);
        assert!(matches!(
            FeedRecord::parse(1, &b[..135]),
            Err(BlockError::Length { .. })
        ));
        let mut c = b;
        c[1] = 2;
        assert_eq!(FeedRecord::parse(1, &c), Err(BlockError::UnknownKind(2)));
        let mut c = b;
        c[135] = 1;
        assert_eq!(FeedRecord::parse(1, &c), Err(BlockError::Reserved));
    }

    #[test]
    fn market_blocks_bytes() {
        let t = MarketBlock::Trade {
            instrument: 7,
            price: -3,
            quantity: 10,
            aggressor: BookSide::Sell,
            trade_id: 11,
            source_seq: 12,
        };
        let mut b = [0u8; 64];
        assert_eq!(t.emit(&mut b), 40);
        assert_eq!(&b[0..4], &[b'T', 2, 0, 0]);
        assert_eq!(&b[4..8], &7u32.to_be_bytes());
        assert_eq!(&b[8..16], &(-3i64).to_be_bytes());
        assert_eq!(&b[16..24], &10u64.to_be_bytes());
        assert_eq!(&b[24..32], &11u64.to_be_bytes());
        assert_eq!(&b[32..40], &12u64.to_be_bytes());
        assert_eq!(MarketBlock::parse(&b[..40]), Ok(t));
        let l = MarketBlock::Level {
            instrument: 1,
            side: BookSide::Buy,
            price: 100,
            quantity: 0,
            source_seq: 4,
        };
        assert_eq!(l.emit(&mut b), 32);
        assert_eq!(&b[0..4], &[b'L', 1, 0, 0]);
        assert_eq!(&b[24..32], &4u64.to_be_bytes());
        assert_eq!(MarketBlock::parse(&b[..32]), Ok(l));
        assert!(MarketBlock::parse(&b[..31]).is_err());
        assert!(MarketBlock::parse(&[]).is_err());
        b[1] = 3;
        assert_eq!(MarketBlock::parse(&b[..32]), Err(BlockError::BadSide(3)));
        assert_eq!(l.emit(&mut [0u8; 31]), 0);
    }

    proptest! {
        #[test]
        fn parsers_are_total_and_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            if let Ok(r) = FeedRecord::parse(1, &bytes) {
                let mut out = [0u8; RECORD_BLOCK_LEN];
                prop_assert_eq!(r.emit(&mut out), RECORD_BLOCK_LEN);
                prop_assert_eq!(&out[..], &bytes[..]);
            }
            if let Ok(m) = MarketBlock::parse(&bytes) {
                let mut out = [0u8; 64];
                let n = m.emit(&mut out);
                prop_assert_eq!(&out[..n], &bytes[..]);
            }
        }
    }
}
