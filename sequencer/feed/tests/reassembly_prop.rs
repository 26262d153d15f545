//! Property: whatever the network does to the packets (any permutation,
//! duplication, loss, garbage in between), a consumer that keeps answering
//! its own re-requests from a reference delivers exactly the reference
//! sequence, in order, each once, with bounded memory (a small window).
#![forbid(unsafe_code)]

use peregrine_feed::Reassembler;
use peregrine_wire::moldudp64::{session_name, write_header_only, MoldBuilder, HEADER_LEN, HEARTBEAT};
use proptest::prelude::*;
use std::time::{Duration, Instant};

const BLOCK: usize = 6;

fn block_of(seq: u64) -> [u8; BLOCK] {
    let b = seq.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn check(b: &[u8]) -> bool {
    b.len() == BLOCK
}

/// A packet of blocks `seq..seq + n`.
fn packet(seq: u64, n: u64) -> Vec<u8> {
    let mut buf = vec![0u8; 1472];
    let mut b = MoldBuilder::new(&mut buf, &session_name("P"), seq).unwrap();
    for s in seq..seq + n {
        assert!(b.push(&block_of(s)));
    }
    let len = b.finish();
    buf.truncate(len);
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn any_mangling_delivers_the_reference(
        sizes in proptest::collection::vec(1u64..12, 1..60),
        order in proptest::collection::vec(any::<u32>(), 0..200),
        from in 1u64..20,
        window in 4usize..64,
        max_request in 1u16..30,
        answer_cap in 1u64..15,
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..5),
    ) {
        // The reference stream: packets of the given sizes from 1.
        let mut packets = Vec::new();
        let mut seq = 1u64;
        for n in &sizes {
            packets.push(packet(seq, *n));
            seq += n;
        }
        let end = seq; // one past the last sequence
        // The network: `order` picks packets (repeats are duplicates; those
        // never picked are lost) in arbitrary order.
        let mut r = Reassembler::new(
            Some("P"),
            from,
            window,
            check,
            Duration::from_millis(100),
            Duration::from_millis(10),
            max_request,
        );
        let mut now = Instant::now();
        let mut delivered = Vec::new();
        let take = |r: &mut Reassembler, delivered: &mut Vec<u64>| {
            r.deliver(&mut |s, b| {
                assert_eq!(b, &block_of(s)[..]);
                delivered.push(s);
            });
        };
        for (i, pick) in order.iter().enumerate() {
            r.on_packet(&packets[*pick as usize % packets.len()], now);
            if let Some(g) = garbage.get(i) {
                r.on_packet(g, now);
            }
            take(&mut r, &mut delivered);
        }
        // The publisher's heartbeat announces the end.
        let mut hb = [0u8; HEADER_LEN];
        write_header_only(&mut hb, &session_name("P"), end, HEARTBEAT);
        r.on_packet(&hb, now);
        // Re-requests answered from the reference (at most `answer_cap`
        // per answer, like a server cut to one packet) until done.
        let mut rounds = 0;
        while r.next_seq() < end.max(from) {
            rounds += 1;
            prop_assert!(rounds < 100_000, "no progress at {}", r.next_seq());
            now += Duration::from_millis(11);
            take(&mut r, &mut delivered);
            if let Some(q) = r.due_request(now) {
                prop_assert_eq!(q.sequence, r.next_seq());
                prop_assert!(q.count >= 1 && q.count <= max_request);
                let n = u64::from(q.count).min(answer_cap).min(end - q.sequence);
                r.on_packet(&packet(q.sequence, n), now);
            }
            take(&mut r, &mut delivered);
        }
        let want: Vec<u64> = (from..end).collect();
        prop_assert_eq!(delivered, want);
        prop_assert_eq!(r.due_request(now + Duration::from_millis(50)), None);
        prop_assert!(r.stats().delivered <= r.stats().records);
    }
}
