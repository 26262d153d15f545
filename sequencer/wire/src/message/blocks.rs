//! Named reads and writes of the few fields generic code takes from a block
//! whose layout it does not decode: the type byte, the client timestamp and
//! order id / echo tag of any client → server message, and the client
//! sequence of any sequenced reply.
//!
//! Why free functions over bytes: the gateway keeps replies and rejects as
//! raw 100-byte blocks (its reply log finds and rewrites them by client
//! sequence) and echoes a timestamp even from a block it refuses, so these
//! reads must work on any block, of any type, of any length, without a
//! decode. The offsets are taken from the layouts and checked at compile
//! time to be shared by every layout that carries the field, so a layout
//! change that moved one of them would not build.

use super::{Ack, Cancel, Echo, ExecReport, NewOrder, Reject, Replace, MESSAGE_LEN};
use core::mem::offset_of;
use core::ops::Range;

/// Bytes of a `u64` field.
const U64_LEN: usize = 8;

/// Where every client → server layout keeps the client timestamp.
const INBOUND_CLIENT_TS: Range<usize> = field_u64(offset_of!(Echo, client_ts_ns));
const _: () = assert!(
    offset_of!(NewOrder, client_ts_ns) == INBOUND_CLIENT_TS.start
        && offset_of!(Cancel, client_ts_ns) == INBOUND_CLIENT_TS.start
        && offset_of!(Replace, client_ts_ns) == INBOUND_CLIENT_TS.start
);

/// Where every client → server layout keeps its key: Echo's `client_tag`,
/// the order messages' `order_id`.
const INBOUND_ORDER_ID_OR_TAG: Range<usize> = field_u64(offset_of!(Echo, client_tag));
const _: () = assert!(
    offset_of!(NewOrder, order_id) == INBOUND_ORDER_ID_OR_TAG.start
        && offset_of!(Cancel, order_id) == INBOUND_ORDER_ID_OR_TAG.start
        && offset_of!(Replace, order_id) == INBOUND_ORDER_ID_OR_TAG.start
);

/// Where every sequenced reply layout (Ack, Reject, ExecReport) keeps the
/// client sequence of the message it answers.
const REPLY_CLIENT_SEQ: Range<usize> = field_u64(offset_of!(Ack, client_seq));
const _: () = assert!(
    offset_of!(Reject, client_seq) == REPLY_CLIENT_SEQ.start
        && offset_of!(ExecReport, client_seq) == REPLY_CLIENT_SEQ.start
        && REPLY_CLIENT_SEQ.end <= MESSAGE_LEN
);

const fn field_u64(at: usize) -> Range<usize> {
    at..at + U64_LEN
}

#[inline]
fn u64_in(block: &[u8], field: Range<usize>) -> u64 {
    block
        .get(field)
        .and_then(|b| <[u8; U64_LEN]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// The type byte (offset 0) of any block; 0 for an empty one.
#[inline]
pub fn msg_type_of(block: &[u8]) -> u8 {
    block.first().copied().unwrap_or(0)
}

/// The client timestamp of a client → server block, where every inbound
/// layout keeps it (offset 8). Zero when the block is too short.
#[inline]
pub fn client_ts_of(block: &[u8]) -> u64 {
    u64_in(block, INBOUND_CLIENT_TS)
}

/// The key of a client → server block: Echo's `client_tag`, or the
/// `order_id` of a NewOrder, Cancel or Replace (all at offset 16). Zero when
/// the block is too short; meaningless for other types.
#[inline]
pub fn order_id_or_tag_of(block: &[u8]) -> u64 {
    u64_in(block, INBOUND_ORDER_ID_OR_TAG)
}

/// The client sequence a sequenced reply (Ack, Reject or any execution
/// report) answers, read in place (offset 16 in all of them).
#[inline]
pub fn reply_client_seq(reply: &[u8; MESSAGE_LEN]) -> u64 {
    u64_in(reply, REPLY_CLIENT_SEQ)
}

/// Overwrites the client sequence of a sequenced reply (Ack, Reject or any
/// execution report) in place; the other 92 bytes are untouched.
#[inline]
pub fn set_reply_client_seq(reply: &mut [u8; MESSAGE_LEN], client_seq: u64) {
    reply[REPLY_CLIENT_SEQ].copy_from_slice(&client_seq.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::{FieldLayout, MessageType};
    use super::*;
    use zerocopy::little_endian::U64;
    use zerocopy::IntoBytes;

    fn field(fields: &[FieldLayout], name: &str) -> (usize, usize) {
        let f = fields.iter().find(|f| f.name == name).unwrap();
        (f.offset, f.len)
    }

    /// The gateway's reply log finds and rewrites replies of every type by
    /// this one offset.
    #[test]
    fn every_reply_type_keeps_client_seq_at_16() {
        for (name, fields) in [
            ("Ack", Ack::FIELDS),
            ("Reject", Reject::FIELDS),
            ("ExecReport", ExecReport::FIELDS),
        ] {
            assert_eq!(field(fields, "client_seq"), (16, 8), "{name}");
        }
        let mut ack = Ack::empty();
        ack.client_seq = U64::new(11);
        let mut reject = Reject::for_block(&[], 1, 12, 0);
        let mut report = ExecReport::empty(MessageType::Fill);
        report.client_seq = U64::new(13);
        for (bytes, want) in [
            (ack.as_mut_bytes(), 11),
            (reject.as_mut_bytes(), 12),
            (report.as_mut_bytes(), 13),
        ] {
            let block: &mut [u8; MESSAGE_LEN] = bytes.try_into().unwrap();
            assert_eq!(reply_client_seq(block), want);
            let before = *block;
            set_reply_client_seq(block, 99);
            assert_eq!(reply_client_seq(block), 99);
            let changed: Vec<usize> = (0..MESSAGE_LEN).filter(|&i| block[i] != before[i]).collect();
            assert!(changed.iter().all(|i| (16..24).contains(i)), "{changed:?}");
        }
        assert_eq!(ack.client_seq.get(), 99);
        assert_eq!(reject.client_seq.get(), 99);
        assert_eq!(report.client_seq.get(), 99);
    }

    #[test]
    fn every_inbound_type_keeps_its_key_at_16() {
        assert_eq!(field(Echo::FIELDS, "client_tag"), (16, 8));
        for fields in [NewOrder::FIELDS, Cancel::FIELDS, Replace::FIELDS] {
            assert_eq!(field(fields, "order_id"), (16, 8));
        }
        let mut o = NewOrder::empty();
        o.order_id = U64::new(42);
        o.client_ts_ns = U64::new(7);
        assert_eq!(order_id_or_tag_of(o.as_bytes()), 42);
        assert_eq!(client_ts_of(o.as_bytes()), 7);
        assert_eq!(msg_type_of(o.as_bytes()), b'O');
        assert_eq!(order_id_or_tag_of(Echo::new(1, 5).as_bytes()), 5);
    }

    #[test]
    fn short_blocks_read_as_zero() {
        let e = Echo::new(3, 4);
        assert_eq!(
            (msg_type_of(&[]), client_ts_of(&[]), order_id_or_tag_of(&[])),
            (0, 0, 0)
        );
        assert_eq!(client_ts_of(&e.as_bytes()[..15]), 0);
        assert_eq!(client_ts_of(&e.as_bytes()[..16]), 3);
        assert_eq!(order_id_or_tag_of(&e.as_bytes()[..23]), 0);
        assert_eq!(order_id_or_tag_of(&e.as_bytes()[..24]), 4);
    }
}
