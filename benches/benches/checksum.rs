//! The internet checksum over a reply packet's payload: ours
//! (`peregrine_netio::wire::checksum::data`, AVX2 where the CPU has it)
//! against its portable path (`data_portable`, native-order 32-bit words,
//! which the compiler vectorises for the target's baseline), against the
//! `internet-checksum` crate and against our first loop (big-endian 32-bit
//! words, one byte swap per word), in the same run.
//!
//! Why: a DPDK port without checksum offload (the `net_ring` and
//! `af_packet` vdevs, and NICs that lack it) computes the UDP checksum in
//! software once per transmitted packet, over up to 1,472 bytes: at 14
//! replies per packet it was a visible share of the dpdk-ring bench's
//! gateway-transmit cycles. We keep our own function only while this bench
//! shows it clearly ahead of the crate.
//!
//! Sizes: 20 bytes (an IPv4 header), 1,472 bytes (a full reply packet, 14
//! messages), 9,000 bytes (a jumbo frame). Every implementation's result is
//! checked against the others before timing.
#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use peregrine_netio::wire::checksum;
use std::hint::black_box;

/// The previous implementation: big-endian 32-bit words into a 64-bit
/// accumulator, folded (the baseline the current one replaced).
fn be_words(data: &[u8]) -> u16 {
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
    checksum::fold(acc)
}

/// The crate's sum, in our convention (folded, not inverted).
fn crate_sum(data: &[u8]) -> u16 {
    !u16::from_be_bytes(internet_checksum::checksum(data))
}

fn payload(n: usize) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

fn bench_checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("internet_checksum");
    for n in [20usize, 1_472, 9_000] {
        let buf = payload(n);
        // Same answer from all three (the crate maps a zero sum to 0xffff
        // differently only for all-zero input, which this is not).
        assert_eq!(checksum::data(&buf), be_words(&buf), "len {n}");
        assert_eq!(checksum::data(&buf), crate_sum(&buf), "len {n}");
        assert_eq!(checksum::data(&buf), checksum::data_portable(&buf), "len {n}");
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::new("peregrine", n), &buf, |b, d| {
            b.iter(|| checksum::data(black_box(d)))
        });
        g.bench_with_input(BenchmarkId::new("portable", n), &buf, |b, d| {
            b.iter(|| checksum::data_portable(black_box(d)))
        });
        g.bench_with_input(BenchmarkId::new("internet-checksum", n), &buf, |b, d| {
            b.iter(|| crate_sum(black_box(d)))
        });
        g.bench_with_input(BenchmarkId::new("previous_be_words", n), &buf, |b, d| {
            b.iter(|| be_words(black_box(d)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_checksum);
criterion_main!(benches);
