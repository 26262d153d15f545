//! The sequenced feed's parsers and the consumer's packet handling.

use crate::Bytes;
use peregrine_feed::block::{MAX_BLOCK_LEN, RECORD_BLOCK_LEN};
use peregrine_feed::{FeedRecord, MarketBlock, Reassembler, RecordBlock};
use std::time::{Duration, Instant};

pub(crate) fn run(data: &[u8]) {
    blocks(data);
    consumer(data);
}

/// Whole input as one block: a block that parses re-emits to the same
/// bytes; the record view agrees with the owned parse.
fn blocks(data: &[u8]) {
    if let Ok(r) = FeedRecord::parse(7, data) {
        let mut out = [0u8; RECORD_BLOCK_LEN];
        assert_eq!(r.emit(&mut out), RECORD_BLOCK_LEN);
        assert_eq!(&out[..], data, "record block must re-emit byte for byte");
        let v = RecordBlock::new_checked(data).expect("view accepts what parse accepts");
        assert_eq!(
            (v.origin(), v.client_seq(), *v.msg()),
            (r.origin, r.client_seq, r.msg)
        );
        assert_eq!(r.global_seq, 7);
    } else {
        assert!(RecordBlock::new_checked(data).is_err());
    }
    if let Ok(m) = MarketBlock::parse(data) {
        let mut out = [0u8; MAX_BLOCK_LEN];
        let n = m.emit(&mut out);
        assert_eq!(n, m.len());
        assert_eq!(&out[..n], data, "market block must re-emit byte for byte");
    }
}

fn is_record(b: &[u8]) -> bool {
    RecordBlock::new_checked(b).is_ok()
}

fn is_market(b: &[u8]) -> bool {
    MarketBlock::parse(b).is_ok()
}

/// A consumer fed datagrams cut from the input (u16 length, then bytes,
/// then a time step): deliveries are consecutive from the start sequence,
/// each once, each a valid block; requests start at the next sequence and
/// respect the configured maximum.
fn consumer(data: &[u8]) {
    let mut b = Bytes::new(data);
    let mode = b.u8();
    let window = 1 + usize::from(b.u8() % 32);
    let from = 1 + u64::from(b.u8() % 8);
    let max_request = 1 + u16::from(b.u8() % 20);
    let check: fn(&[u8]) -> bool = if mode & 1 == 0 { is_record } else { is_market };
    let session = (mode & 2 == 0).then_some("FEED");
    let mut r = Reassembler::new(
        session,
        from,
        window,
        check,
        Duration::from_millis(100),
        Duration::from_millis(10),
        max_request,
    );
    let mut now = Instant::now();
    let mut next = from;
    while !b.is_empty() {
        let len = usize::from(b.u16() % 1600);
        let dgram = b.take(len);
        r.on_packet(dgram, now);
        r.deliver(&mut |seq, block| {
            assert_eq!(seq, next, "out of order or repeated delivery");
            assert!(check(block), "delivered an invalid block");
            next += 1;
        });
        assert_eq!(r.next_seq(), next);
        now += Duration::from_millis(u64::from(b.u8() % 64));
        if let Some(q) = r.due_request(now) {
            assert_eq!(q.sequence, r.next_seq());
            assert!(q.count >= 1 && q.count <= max_request);
        }
    }
    let s = r.stats();
    assert_eq!(s.delivered, next - from);
    assert!(s.delivered <= s.records);
}
