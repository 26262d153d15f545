//! Discarding a suffix (`JournalWriter::truncate_from`), reading records
//! back through the writer (`JournalWriter::copy_encoded`) and appending
//! records in their stored form (`JournalWriter::append_encoded`): within a
//! segment, across segment boundaries, followed by appends and reopens, and
//! against a simple model.
#![forbid(unsafe_code)]

use peregrine_journal::{
    encode, segment_name, Journal, JournalError, JournalWriter, Prealloc, Precreate, SequencedRecord,
    WriterConfig, HEADER_LEN, RECORD_LEN,
};
use peregrine_wire::SessionRef;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "peregrine-jtrunc-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PER_SEG: u64 = 5;

fn cfg(precreate: Precreate) -> WriterConfig {
    WriterConfig {
        segment_size: (HEADER_LEN + PER_SEG as usize * RECORD_LEN) as u64,
        prealloc: Prealloc::Fallocate,
        populate: false,
        populate_writable: false,
        precreate,
    }
}

/// A record whose fields depend on `seq` and on a `generation`, so a
/// rewritten suffix is told apart from the one it replaced.
fn rec(seq: u64, generation: u8) -> SequencedRecord {
    let mut msg = [0u8; 100];
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8 ^ generation;
    }
    SequencedRecord {
        global_seq: seq,
        origin: SessionRef::new((seq % 3) as u16, (seq % 7) as u32),
        client_seq: seq.wrapping_mul(2).wrapping_add(generation as u64),
        gateway_rx_ns: seq.wrapping_mul(1_000),
        sequencer_ns: seq.wrapping_mul(1_000).wrapping_add(5),
        msg,
    }
}

fn encoded(r: &SequencedRecord) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    encode(&r.as_sequenced(), &mut b);
    b
}

fn open_writer(dir: &Path, precreate: Precreate) -> JournalWriter {
    Journal::open(dir).unwrap().into_writer(cfg(precreate)).unwrap()
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".journal"))
        .collect();
    v.sort();
    v
}

/// What `Journal::open` (the server's recovery) finds on disk.
fn on_disk(dir: &Path) -> Vec<SequencedRecord> {
    let j = Journal::open(dir).unwrap();
    assert_eq!(j.tail(), None, "truncation must leave no torn tail");
    j.records().collect()
}

#[test]
fn truncate_within_the_current_segment_then_reopen_and_append() {
    let t = TempDir::new("within");
    let mut w = open_writer(t.path(), Precreate::Manual);
    for s in 1..=4 {
        w.append(&rec(s, 0)).unwrap();
    }
    w.flush(peregrine_journal::FlushPolicy::Fdatasync).unwrap();
    w.truncate_from(3).unwrap();
    assert_eq!((w.next_seq(), w.written_seq(), w.durable_seq()), (3, 2, 2));
    // Nothing of 3 and 4 is readable any more, 1..2 still are.
    assert!(matches!(
        w.copy_encoded(3, 1, &mut Vec::new()),
        Err(JournalError::OutOfRange { next: 3, .. })
    ));
    let j = Journal::open_read_only(t.path()).unwrap();
    assert_eq!(j.next_seq(), 3);
    assert_eq!(j.tail(), None);
    drop(j);
    // The writer continues at the truncation point with new records.
    assert!(matches!(
        w.append(&rec(4, 1)),
        Err(JournalError::NonConsecutive { expected: 3, got: 4 })
    ));
    w.append(&rec(3, 1)).unwrap();
    w.append(&rec(4, 1)).unwrap();
    drop(w);
    let want = vec![rec(1, 0), rec(2, 0), rec(3, 1), rec(4, 1)];
    assert_eq!(on_disk(t.path()), want);

    // Truncate then drop without appending: recovery ends at seq - 1.
    let mut w = open_writer(t.path(), Precreate::Manual);
    w.truncate_from(2).unwrap();
    drop(w);
    assert_eq!(on_disk(t.path()), vec![rec(1, 0)]);
    let w = open_writer(t.path(), Precreate::Manual);
    assert_eq!(w.next_seq(), 2);
}

#[test]
fn truncate_across_segment_boundaries_removes_later_segments() {
    for precreate in [Precreate::Manual, Precreate::Background] {
        let t = TempDir::new("across");
        let mut w = open_writer(t.path(), precreate);
        for s in 1..=13 {
            w.append(&rec(s, 0)).unwrap();
        }
        w.prepare_next_segment().unwrap();
        assert_eq!(w.current_segment(), t.path().join(segment_name(11)));
        // Seq 4 lives in the first segment (1..=5): 6.. and 11.. go.
        w.truncate_from(4).unwrap();
        assert_eq!(w.next_seq(), 4);
        assert_eq!(w.current_segment(), t.path().join(segment_name(1)));
        assert_eq!(w.remaining_in_segment(), 2);
        let files = segment_files(t.path());
        assert!(
            files
                .iter()
                .all(|f| f == &segment_name(1) || f == &segment_name(6)),
            "{precreate:?}: only the first segment (and a precreated next) may remain: {files:?}"
        );
        let j = Journal::open_read_only(t.path()).unwrap();
        assert_eq!((j.next_seq(), j.tail()), (4, None), "{precreate:?}");
        drop(j);
        // Append past the boundary again: the roll finds (or makes) segment 6.
        for s in 4..=12 {
            w.append(&rec(s, 1)).unwrap();
        }
        assert_eq!(w.current_segment(), t.path().join(segment_name(11)));
        let mut got = Vec::new();
        w.copy_encoded(1, 12, &mut got).unwrap();
        let want: Vec<u8> = (1..=3)
            .map(|s| rec(s, 0))
            .chain((4..=12).map(|s| rec(s, 1)))
            .flat_map(|r| encoded(&r))
            .collect();
        assert_eq!(got, want, "{precreate:?}");
        drop(w);
        let mut want_recs: Vec<_> = (1..=3).map(|s| rec(s, 0)).collect();
        want_recs.extend((4..=12).map(|s| rec(s, 1)));
        assert_eq!(on_disk(t.path()), want_recs, "{precreate:?}");

        // Truncating exactly at a segment's first sequence.
        let mut w = open_writer(t.path(), precreate);
        w.truncate_from(6).unwrap();
        assert_eq!(w.next_seq(), 6);
        drop(w);
        assert_eq!(on_disk(t.path()).len(), 5, "{precreate:?}");
        let w = open_writer(t.path(), precreate);
        assert_eq!(w.next_seq(), 6);
    }
}

#[test]
fn truncate_bounds() {
    let t = TempDir::new("bounds");
    let mut w = open_writer(t.path(), Precreate::Manual);
    for s in 1..=7 {
        w.append(&rec(s, 0)).unwrap();
    }
    assert!(matches!(
        w.truncate_from(0),
        Err(JournalError::TruncateBelowFirst { seq: 0, first: 1 })
    ));
    // At or past the end: nothing to discard.
    w.truncate_from(8).unwrap();
    w.truncate_from(100).unwrap();
    assert_eq!(w.next_seq(), 8);
    // Everything.
    w.truncate_from(1).unwrap();
    assert_eq!((w.first_seq(), w.next_seq(), w.written_seq()), (1, 1, 0));
    drop(w);
    let j = Journal::open(t.path()).unwrap();
    assert!(j.is_empty());
    assert_eq!(j.next_seq(), 1);
    let mut w = j.into_writer(cfg(Precreate::Manual)).unwrap();
    w.append(&rec(1, 2)).unwrap();
    drop(w);
    assert_eq!(on_disk(t.path()), vec![rec(1, 2)]);
}

#[test]
fn copy_encoded_reads_current_and_rolled_segments() {
    let t = TempDir::new("copy");
    let mut w = open_writer(t.path(), Precreate::Background);
    for s in 1..=17 {
        w.append(&rec(s, 0)).unwrap();
    }
    for first in 1..=17u64 {
        for count in 0..=(18 - first) {
            let mut got = vec![0xEE];
            w.copy_encoded(first, count, &mut got).unwrap();
            let want: Vec<u8> = std::iter::once(0xEE)
                .chain((first..first + count).flat_map(|s| encoded(&rec(s, 0))))
                .collect();
            assert_eq!(
                got, want,
                "first {first} count {count}: appends after what dst held"
            );
        }
    }
    assert!(matches!(
        w.copy_encoded(17, 2, &mut Vec::new()),
        Err(JournalError::OutOfRange {
            first: 17,
            end: 19,
            held_first: 1,
            next: 18
        })
    ));
    assert!(matches!(
        w.copy_encoded(0, 1, &mut Vec::new()),
        Err(JournalError::OutOfRange { .. })
    ));
    assert!(matches!(
        w.copy_encoded(u64::MAX, 2, &mut Vec::new()),
        Err(JournalError::OutOfRange { .. })
    ));

    // A damaged rolled-away segment is a typed error naming the slot.
    let old = t.path().join(segment_name(6));
    let mut bytes = std::fs::read(&old).unwrap();
    let off = HEADER_LEN + 2 * RECORD_LEN + 50;
    bytes[off] ^= 1;
    std::fs::write(&old, &bytes).unwrap();
    match w.copy_encoded(7, 3, &mut Vec::new()) {
        Err(JournalError::CorruptRecord {
            path,
            expected_seq: 8,
            ..
        }) => assert_eq!(path, old),
        other => panic!("expected CorruptRecord at seq 8, got {other:?}"),
    }
    w.copy_encoded(7, 1, &mut Vec::new()).unwrap();
    w.copy_encoded(9, 9, &mut Vec::new()).unwrap();
}

#[test]
fn append_encoded_copies_valid_records_verbatim_and_refuses_others() {
    let t = TempDir::new("encoded");
    let mut w = open_writer(t.path(), Precreate::Manual);
    for s in 1..=12 {
        w.append_encoded(&encoded(&rec(s, 4))).unwrap();
    }
    let mut got = Vec::new();
    w.copy_encoded(1, 12, &mut got).unwrap();
    assert_eq!(
        got,
        (1..=12).flat_map(|s| encoded(&rec(s, 4))).collect::<Vec<u8>>()
    );

    let good = encoded(&rec(13, 4));
    assert!(matches!(
        w.append_encoded(&good[..RECORD_LEN - 1]),
        Err(JournalError::InvalidRecord { expected_seq: 13, .. })
    ));
    let mut flipped = good;
    flipped[60] ^= 4;
    assert!(matches!(
        w.append_encoded(&flipped),
        Err(JournalError::InvalidRecord { expected_seq: 13, .. })
    ));
    assert!(matches!(
        w.append_encoded(&[0u8; RECORD_LEN]),
        Err(JournalError::InvalidRecord { .. })
    ));
    assert!(matches!(
        w.append_encoded(&encoded(&rec(14, 4))),
        Err(JournalError::NonConsecutive {
            expected: 13,
            got: 14
        })
    ));
    assert_eq!(w.next_seq(), 13);
    w.append_encoded(&good).unwrap();
    drop(w);
    assert_eq!(on_disk(t.path()), (1..=13).map(|s| rec(s, 4)).collect::<Vec<_>>());
}

#[test]
fn reset_to_restarts_the_journal_at_a_later_sequence() {
    for precreate in [Precreate::Manual, Precreate::Background] {
        let t = TempDir::new("reset");
        let mut w = open_writer(t.path(), precreate);
        for s in 1..=12 {
            w.append(&rec(s, 0)).unwrap();
        }
        assert!(matches!(w.reset_to(0), Err(JournalError::Config(_))));
        w.reset_to(100).unwrap();
        assert_eq!((w.first_seq(), w.next_seq(), w.written_seq()), (100, 100, 99));
        assert_eq!(w.current_segment(), t.path().join(segment_name(100)));
        assert!(matches!(
            w.copy_encoded(12, 1, &mut Vec::new()),
            Err(JournalError::OutOfRange { held_first: 100, .. })
        ));
        drop(w);
        assert_eq!(segment_files(t.path()).first(), Some(&segment_name(100)));
        let j = Journal::open(t.path()).unwrap();
        assert!(j.is_empty());
        assert_eq!((j.first_seq(), j.next_seq()), (100, 100));
        let mut w = j.into_writer(cfg(precreate)).unwrap();
        for s in 100..=107 {
            w.append(&rec(s, 1)).unwrap();
        }
        let mut got = Vec::new();
        w.copy_encoded(100, 8, &mut got).unwrap();
        assert_eq!(
            got,
            (100..=107).flat_map(|s| encoded(&rec(s, 1))).collect::<Vec<u8>>()
        );
        assert!(matches!(
            w.truncate_from(99),
            Err(JournalError::TruncateBelowFirst { seq: 99, first: 100 })
        ));
        drop(w);
        let j = Journal::open(t.path()).unwrap();
        assert_eq!(j.first_seq(), 100);
        assert_eq!(
            j.records().collect::<Vec<_>>(),
            (100..=107).map(|s| rec(s, 1)).collect::<Vec<_>>()
        );
        // Truncating everything keeps the start.
        let mut w = j.into_writer(cfg(precreate)).unwrap();
        w.truncate_from(100).unwrap();
        drop(w);
        let j = Journal::open(t.path()).unwrap();
        assert!(j.is_empty());
        assert_eq!((j.first_seq(), j.next_seq()), (100, 100), "{precreate:?}");
    }
}

#[test]
fn discard_before_removes_whole_old_segments_only() {
    for precreate in [Precreate::Manual, Precreate::Background] {
        let t = TempDir::new("discard");
        let mut w = open_writer(t.path(), precreate);
        for s in 1..=17 {
            w.append(&rec(s, 0)).unwrap();
        }
        assert_eq!(w.discard_before(1).unwrap(), 0);
        // Segments 1..=5 and 6..=10 hold only sequences below 12; 11..=15
        // holds 11, so it stays.
        assert_eq!(w.discard_before(12).unwrap(), 2);
        assert_eq!(w.first_seq(), 11);
        assert!(matches!(
            w.copy_encoded(10, 2, &mut Vec::new()),
            Err(JournalError::OutOfRange { held_first: 11, .. })
        ));
        let mut got = Vec::new();
        w.copy_encoded(11, 7, &mut got).unwrap();
        assert_eq!(
            got,
            (11..=17).flat_map(|s| encoded(&rec(s, 0))).collect::<Vec<u8>>()
        );
        assert!(matches!(
            w.truncate_from(10),
            Err(JournalError::TruncateBelowFirst { seq: 10, first: 11 })
        ));
        // Never the current segment.
        assert_eq!(w.discard_before(1_000).unwrap(), 1);
        assert_eq!(w.first_seq(), 16);
        w.append(&rec(18, 0)).unwrap();
        drop(w);
        let j = Journal::open(t.path()).unwrap();
        assert_eq!(
            (j.first_seq(), j.next_seq(), j.tail()),
            (16, 19, None),
            "{precreate:?}"
        );
        assert_eq!(
            j.records().collect::<Vec<_>>(),
            (16..=18).map(|s| rec(s, 0)).collect::<Vec<_>>()
        );
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append(u8),
    Truncate(u8),
    Reopen,
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..12).prop_map(Op::Append),
        2 => any::<u8>().prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
        1 => Just(Op::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Against a vector of records: appends, truncations anywhere, flushes
    /// and reopens leave exactly the model on disk and in `copy_encoded`.
    #[test]
    fn truncate_and_append_match_a_model(ops in proptest::collection::vec(op(), 1..24), bg in any::<bool>()) {
        let precreate = if bg { Precreate::Background } else { Precreate::Manual };
        let t = TempDir::new("model");
        let mut model: Vec<SequencedRecord> = Vec::new();
        let mut generation = 0u8;
        let mut w = open_writer(t.path(), precreate);
        for op in ops {
            match op {
                Op::Append(n) => {
                    for _ in 0..n {
                        let r = rec(model.len() as u64 + 1, generation);
                        w.append(&r).unwrap();
                        model.push(r);
                    }
                }
                Op::Truncate(at) => {
                    let seq = 1 + at as u64 % (model.len() as u64 + 2);
                    w.truncate_from(seq).unwrap();
                    model.truncate(seq as usize - 1);
                    generation = generation.wrapping_add(1);
                }
                Op::Reopen => {
                    drop(w);
                    w = open_writer(t.path(), precreate);
                }
                Op::Flush => w.flush(peregrine_journal::FlushPolicy::Msync).unwrap(),
            }
            prop_assert_eq!(w.next_seq(), model.len() as u64 + 1);
            let mut got = Vec::new();
            w.copy_encoded(1, model.len() as u64, &mut got).unwrap();
            let want: Vec<u8> = model.iter().flat_map(encoded).collect();
            prop_assert!(got == want);
        }
        drop(w);
        prop_assert_eq!(on_disk(t.path()), model);
    }
}
