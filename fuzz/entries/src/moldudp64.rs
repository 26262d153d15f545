//! MoldUDP64 framing invariants.

use crate::Bytes;
use peregrine_wire::moldudp64::{
    write_header_only, MoldBuilder, MoldError, MoldPacket, RetransmissionRequest, END_OF_SESSION, HEADER_LEN,
    HEARTBEAT, MAX_PAYLOAD, SESSION_LEN,
};

pub(crate) fn run(data: &[u8]) {
    parse(data);
    build(data);
    request(data);
}

/// A retransmission request is exactly a header whose count asks for
/// messages; it is never also a valid packet, and it rebuilds to the same
/// bytes.
fn request(data: &[u8]) {
    let Some(r) = RetransmissionRequest::parse(data) else {
        let count = data.get(18..20).map(|c| u16::from_be_bytes([c[0], c[1]]));
        assert!(
            data.len() != HEADER_LEN || matches!(count, Some(HEARTBEAT | END_OF_SESSION)),
            "a header asking for messages must parse as a request"
        );
        return;
    };
    assert_eq!(data.len(), HEADER_LEN);
    assert!(r.count != HEARTBEAT && r.count != END_OF_SESSION);
    assert!(MoldPacket::new_checked(data).is_err(), "its blocks are missing");
    let mut h = [0u8; HEADER_LEN];
    write_header_only(&mut h, &r.session, r.sequence, r.count);
    assert_eq!(&h[..], data);
}

/// Whole-input parse: a valid packet is exactly header + its blocks and
/// rebuilds to the same bytes; each error names a real defect.
fn parse(data: &[u8]) {
    let p = match MoldPacket::new_checked(data) {
        Ok(p) => p,
        Err(e) => return check_error(data, e),
    };
    let blocks: Vec<&[u8]> = p.blocks().collect();
    let framed: usize = blocks.iter().map(|b| 2 + b.len()).sum();
    assert_eq!(
        HEADER_LEN + framed,
        data.len(),
        "blocks must cover the packet exactly"
    );
    let expected = if p.is_end_of_session() {
        0
    } else {
        usize::from(p.count())
    };
    assert_eq!(blocks.len(), expected, "block count");
    assert_eq!(p.is_heartbeat(), p.count() == HEARTBEAT);
    assert_eq!(p.is_end_of_session(), p.count() == END_OF_SESSION);
    assert_eq!(&p.session()[..], &data[..SESSION_LEN]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&data[10..18]);
    assert_eq!(p.sequence(), u64::from_be_bytes(seq));
    // Blocks alias the input in order.
    let mut at = HEADER_LEN;
    for b in &blocks {
        assert_eq!(&data[at + 2..at + 2 + b.len()], *b);
        at += 2 + b.len();
    }
    // The fixed-size view exists exactly when every block is 100 bytes,
    // and is the same blocks; the blocks from any position are the tail.
    let all_100 = !blocks.is_empty() && blocks.iter().all(|b| b.len() == 100);
    match p.fixed_blocks::<100>() {
        Some(fixed) => {
            assert!(all_100, "a fixed view of blocks that are not all 100 bytes");
            assert!(fixed.map(|b| &b[..]).eq(blocks.iter().copied()));
        }
        None => assert!(!all_100, "no fixed view of a packet of 100-byte blocks"),
    }
    for k in [0, 1, blocks.len() / 2, blocks.len(), blocks.len() + 1] {
        assert!(
            p.blocks_from(k).eq(blocks.iter().copied().skip(k)),
            "blocks from {k}"
        );
    }

    // Rebuild: within MAX_PAYLOAD the builder must accept every block and
    // reproduce the packet byte for byte.
    if !p.is_end_of_session() && data.len() <= MAX_PAYLOAD {
        let mut buf = vec![0u8; data.len()];
        let mut b = MoldBuilder::new(&mut buf, &p.session(), p.sequence()).expect("header fits");
        for blk in &blocks {
            assert!(b.push(blk), "a block of a valid packet must fit its own length");
        }
        assert_eq!(b.count(), p.count());
        let n = b.finish();
        assert_eq!(n, data.len());
        assert_eq!(&buf[..], data, "rebuild differs");
    }
}

fn check_error(data: &[u8], e: MoldError) {
    match e {
        MoldError::Truncated(n) => {
            assert_eq!(n, data.len());
            assert!(n < HEADER_LEN);
        }
        MoldError::BlockHeaderTruncated(i) | MoldError::BlockTruncated(i, _) => {
            assert!(data.len() >= HEADER_LEN);
            let count = u16::from_be_bytes([data[18], data[19]]);
            assert!(count != END_OF_SESSION && i < count, "block {i} of {count}");
        }
        MoldError::TrailingBytes(n) => {
            assert!(n > 0 && n <= data.len() - HEADER_LEN);
        }
    }
}

/// The builder driven by a byte script: buffer size, sequence, then block
/// lengths. `push` must accept exactly what fits, and the result must parse
/// back to what was pushed.
fn build(data: &[u8]) {
    let mut r = Bytes::new(data);
    let cap = usize::from(r.u16()) % 2100;
    let seq = u64::from(r.u16()) << 24 | u64::from(r.u16());
    let session: [u8; SESSION_LEN] = core::array::from_fn(|_| r.u8());

    // Header-only packets.
    let mut h = [0u8; HEADER_LEN];
    let count = u16::from_le_bytes([session[0], session[1]]);
    write_header_only(&mut h, &session, seq, count);
    match MoldPacket::new_checked(&h) {
        Ok(p) => {
            assert!(count == HEARTBEAT || count == END_OF_SESSION);
            assert_eq!((p.session(), p.sequence(), p.count()), (session, seq, count));
            assert_eq!(p.blocks().count(), 0);
        }
        Err(e) => {
            assert!(count != HEARTBEAT && count != END_OF_SESSION);
            assert_eq!(e, MoldError::BlockHeaderTruncated(0));
        }
    }

    let mut buf = vec![0xA5u8; cap];
    let Some(mut b) = MoldBuilder::new(&mut buf, &session, seq) else {
        assert!(cap < HEADER_LEN, "builder refused a {cap}-byte buffer");
        return;
    };
    assert!(cap >= HEADER_LEN);
    let limit = cap.min(MAX_PAYLOAD);
    let mut len = HEADER_LEN;
    let mut pushed: Vec<Vec<u8>> = Vec::new();
    let filler: Vec<u8> = (0..=255u8).cycle().take(1600 + 256).collect();
    let mut steps = 0;
    while !r.is_empty() && steps < 256 {
        steps += 1;
        let sel = r.u8();
        // Mostly short and 100-byte blocks, sometimes long ones.
        let n = match sel >> 6 {
            0 => usize::from(sel & 0x3f),
            1 => 100,
            2 => usize::from(sel & 0x3f) * 25,
            _ => usize::from(r.u16()) % 1600,
        };
        let block = &filler[(steps * 7) % 256..][..n];
        let fits = len + 2 + n <= limit;
        let pushed_it = match <&[u8; 100]>::try_from(block) {
            Ok(fixed) if sel & 1 == 1 => b.push_array(fixed),
            _ => b.push(block),
        };
        assert_eq!(pushed_it, fits, "push of {n} bytes at {len}/{limit}");
        if fits {
            len += 2 + n;
            pushed.push(block.to_vec());
        }
        assert_eq!(usize::from(b.count()), pushed.len());
    }
    let n = b.finish();
    assert_eq!(n, len);
    let p = MoldPacket::new_checked(&buf[..n]).expect("built packet parses");
    assert_eq!((p.session(), p.sequence()), (session, seq));
    assert_eq!(usize::from(p.count()), pushed.len());
    let got: Vec<&[u8]> = p.blocks().collect();
    assert_eq!(got.len(), pushed.len());
    for (g, w) in got.iter().zip(&pushed) {
        assert_eq!(*g, &w[..]);
    }
}
