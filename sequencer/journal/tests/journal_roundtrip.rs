//! Journal writer and reader: round trips across segment rolls, reopen,
//! gap-free appends, flush bookkeeping, replay filters.
#![forbid(unsafe_code)]

use peregrine_journal::{
    encode, records_per_segment, segment_name, FlushPolicy, Journal, JournalError, Prealloc, Precreate,
    RecordFilter, SequencedRecord, WriterConfig, HEADER_LEN, RECORD_LEN,
};
use peregrine_wire::SessionRef;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "peregrine-journal-{tag}-{}-{}",
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

/// A record whose every field depends on `seq`.
fn rec(seq: u64) -> SequencedRecord {
    let mut msg = [0u8; 100];
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8;
    }
    SequencedRecord {
        global_seq: seq,
        origin: SessionRef::new((seq % 3) as u16, (seq % 7) as u32),
        client_seq: seq.wrapping_mul(2).wrapping_add(1),
        gateway_rx_ns: seq.wrapping_mul(1_000),
        sequencer_ns: seq.wrapping_mul(1_000).wrapping_add(5),
        msg,
    }
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn assert_records(dir: &Path, last: u64) {
    let j = Journal::open(dir).unwrap();
    assert_eq!(j.tail(), None);
    assert_eq!(j.next_seq(), last + 1);
    let got: Vec<SequencedRecord> = j.records().collect();
    let want: Vec<SequencedRecord> = (1..=last).map(rec).collect();
    assert_eq!(got, want);
}

#[test]
fn empty_directory_starts_at_one() {
    let t = TempDir::new("empty");
    let j = Journal::open(t.path().join("nested")).unwrap();
    assert_eq!(j.next_seq(), 1);
    assert!(j.is_empty());
    assert_eq!(j.last_seq(), None);
    assert_eq!(j.records().count(), 0);
    let mut w = j.into_writer(cfg(Precreate::Manual)).unwrap();
    assert_eq!(w.written_seq(), 0);
    assert_eq!(w.durable_seq(), 0);
    w.append(&rec(1)).unwrap();
    drop(w);
    assert_eq!(segment_files(&t.path().join("nested")), vec![segment_name(1)]);
    assert_records(&t.path().join("nested"), 1);
}

#[test]
fn round_trip_across_segment_rolls() {
    let t = TempDir::new("roll");
    let mut w = Journal::open(t.path())
        .unwrap()
        .into_writer(cfg(Precreate::Background))
        .unwrap();
    for s in 1..=23 {
        w.append(&rec(s)).unwrap();
        if s % 4 == 0 {
            w.flush(FlushPolicy::Msync).unwrap();
        }
    }
    let st = w.stats();
    assert_eq!(st.rolls, 4);
    assert_eq!(
        st.rolls_prepared, 4,
        "background precreation should serve every roll"
    );
    assert_eq!(w.current_segment(), t.path().join(segment_name(21)));
    assert_eq!(w.remaining_in_segment(), 2);
    w.close().unwrap();
    // 1, 6, 11, 16, 21 hold records; 26 was created ahead and is empty.
    let names: Vec<String> = [1, 6, 11, 16, 21, 26].iter().map(|&s| segment_name(s)).collect();
    assert_eq!(segment_files(t.path()), names);
    for n in &names {
        let len = std::fs::metadata(t.path().join(n)).unwrap().len();
        assert_eq!(len, cfg(Precreate::Manual).segment_size, "{n} is preallocated");
    }

    let j = Journal::open(t.path()).unwrap();
    assert_eq!(j.removed(), &[t.path().join(segment_name(26))][..]);
    assert_eq!(j.next_seq(), 24);
    assert_eq!(j.first_seq(), 1);
    assert_eq!(j.last_seq(), Some(23));
    let segs: Vec<(u64, u64)> = j.segments().map(|s| (s.first_seq, s.records)).collect();
    assert_eq!(segs, vec![(1, 5), (6, 5), (11, 5), (16, 5), (21, 3)]);
    assert_eq!(j.records().len(), 23);
    drop(j);
    assert_records(t.path(), 23);
}

#[test]
fn reopen_continues_gap_free_after_clean_close_and_after_a_drop() {
    let t = TempDir::new("reopen");
    let mut w = Journal::open(t.path())
        .unwrap()
        .into_writer(cfg(Precreate::Background))
        .unwrap();
    for s in 1..=7 {
        w.append(&rec(s)).unwrap();
    }
    w.close().unwrap();

    let j = Journal::open(t.path()).unwrap();
    assert_eq!(j.next_seq(), 8);
    let mut w = j.into_writer(cfg(Precreate::Manual)).unwrap();
    // Recovery made what it found durable.
    assert_eq!(w.durable_seq(), 7);
    assert!(matches!(
        w.append(&rec(7)),
        Err(JournalError::NonConsecutive { expected: 8, got: 7 })
    ));
    for s in 8..=13 {
        w.append(&rec(s)).unwrap();
    }
    // No close: a killed process leaves its appends in the page cache.
    drop(w);
    assert_records(t.path(), 13);

    // A segment that is exactly full at reopen: the next append rolls.
    let mut w = Journal::open(t.path())
        .unwrap()
        .into_writer(cfg(Precreate::Manual))
        .unwrap();
    for s in 14..=15 {
        w.append(&rec(s)).unwrap();
    }
    drop(w);
    let mut w = Journal::open(t.path())
        .unwrap()
        .into_writer(cfg(Precreate::Manual))
        .unwrap();
    assert_eq!(w.remaining_in_segment(), 0);
    w.append(&rec(16)).unwrap();
    assert_eq!(w.current_segment(), t.path().join(segment_name(16)));
    drop(w);
    assert_records(t.path(), 16);
}

#[test]
fn non_consecutive_append_is_rejected_and_writes_nothing() {
    let t = TempDir::new("gap");
    let mut w = Journal::open(t.path())
        .unwrap()
        .into_writer(cfg(Precreate::Manual))
        .unwrap();
    assert!(matches!(
        w.append(&rec(0)),
        Err(JournalError::NonConsecutive { expected: 1, got: 0 })
    ));
    w.append(&rec(1)).unwrap();
    w.append(&rec(2)).unwrap();
    for bad in [4, 2, 1, 0, u64::MAX] {
        let e = w.append(&rec(bad)).unwrap_err();
        assert!(
            matches!(e, JournalError::NonConsecutive { expected: 3, got } if got == bad),
            "{e}"
        );
        assert_eq!(w.next_seq(), 3);
    }
    // The same rule at a segment boundary (slot 5 is the last of segment 1).
    for s in 3..=5 {
        w.append(&rec(s)).unwrap();
    }
    assert!(w.append(&rec(7)).is_err());
    assert_eq!(w.stats().rolls, 0, "a rejected append must not roll");
    w.append(&rec(6)).unwrap();
    drop(w);
    assert_records(t.path(), 6);
}

/// Records `from..=to` in their stored form, back to back.
fn encoded(from: u64, to: u64) -> Vec<u8> {
    let mut out = vec![0u8; (to + 1 - from) as usize * RECORD_LEN];
    for (slot, seq) in out.chunks_exact_mut(RECORD_LEN).zip(from..=to) {
        encode(&rec(seq).as_sequenced(), slot);
    }
    out
}

#[test]
fn verified_spans_are_copied_across_rolls_and_their_sequences_checked() {
    let t = TempDir::new("verified");
    let mut w = Journal::open(t.path())
        .unwrap()
        .into_writer(cfg(Precreate::Manual))
        .unwrap();
    w.append_verified(&[]).unwrap();
    w.append_verified(&encoded(1, 3)).unwrap();
    // Seven records from slot 4 of a 5-slot segment fill it and the next.
    w.append_verified(&encoded(4, 10)).unwrap();
    assert_eq!((w.next_seq(), w.stats().rolls), (11, 1));
    let not_next = w.append_verified(&encoded(12, 13)).unwrap_err();
    assert!(
        matches!(
            not_next,
            JournalError::NonConsecutive {
                expected: 11,
                got: 12
            }
        ),
        "{not_next}"
    );
    let mut gap = encoded(11, 12);
    gap.extend_from_slice(&encoded(14, 14));
    assert!(matches!(
        w.append_verified(&gap),
        Err(JournalError::InvalidRecord { expected_seq: 11, .. })
    ));
    let partial = encoded(11, 12);
    assert!(matches!(
        w.append_verified(&partial[..RECORD_LEN + 1]),
        Err(JournalError::InvalidRecord { expected_seq: 11, .. })
    ));
    assert_eq!(w.next_seq(), 11, "a refused span writes nothing");
    w.append_verified(&encoded(11, 12)).unwrap();
    assert_eq!(w.stats().rolls, 2);
    drop(w);
    assert_records(t.path(), 12);
}

#[test]
fn flush_policies_move_durable_seq() {
    let t = TempDir::new("flush");
    let mut w = Journal::open(t.path())
        .unwrap()
        .into_writer(cfg(Precreate::Manual))
        .unwrap();
    for s in 1..=3 {
        w.append(&rec(s)).unwrap();
    }
    assert_eq!((w.written_seq(), w.durable_seq()), (3, 0));
    w.flush(FlushPolicy::None).unwrap();
    assert_eq!(w.durable_seq(), 0, "FlushPolicy::None promises nothing");
    assert_eq!(w.stats().syncs, 0);
    w.flush(FlushPolicy::Msync).unwrap();
    assert_eq!(w.durable_seq(), 3);
    assert_eq!(w.stats().syncs, 1);
    w.flush(FlushPolicy::Msync).unwrap();
    assert_eq!(w.stats().syncs, 1, "nothing pending: no syscall");
    // Across two rolls: the rolled-away segments are synced too.
    for s in 4..=12 {
        w.append(&rec(s)).unwrap();
    }
    assert_eq!(w.durable_seq(), 3);
    w.flush(FlushPolicy::Fdatasync).unwrap();
    assert_eq!(w.durable_seq(), 12);
    assert_eq!(w.stats().syncs, 1 + 3, "two retired segments + the current one");
    drop(w);
    assert_records(t.path(), 12);
}

#[test]
fn manual_precreation_serves_the_roll() {
    let t = TempDir::new("manual");
    let mut w = Journal::open(t.path())
        .unwrap()
        .into_writer(cfg(Precreate::Manual))
        .unwrap();
    for s in 1..=5 {
        w.append(&rec(s)).unwrap();
    }
    w.append(&rec(6)).unwrap(); // roll without preparation
    assert_eq!((w.stats().rolls, w.stats().rolls_prepared), (1, 0));
    w.prepare_next_segment().unwrap();
    assert!(t.path().join(segment_name(11)).exists());
    for s in 7..=11 {
        w.append(&rec(s)).unwrap();
    }
    assert_eq!((w.stats().rolls, w.stats().rolls_prepared), (2, 1));
    drop(w);
    assert_records(t.path(), 11);
}

#[test]
fn zero_filled_segments_work_too() {
    let t = TempDir::new("zerofill");
    let c = WriterConfig {
        segment_size: 1 << 16,
        prealloc: Prealloc::ZeroFill,
        populate: true,
        populate_writable: true,
        precreate: Precreate::Background,
    };
    let per = records_per_segment(c.segment_size);
    assert_eq!(per, ((1 << 16) - 64) / 144);
    let n = per * 2 + 17;
    let mut w = Journal::open(t.path()).unwrap().into_writer(c).unwrap();
    for s in 1..=n {
        w.append(&rec(s)).unwrap();
    }
    w.flush(FlushPolicy::Fdatasync).unwrap();
    assert_eq!(w.durable_seq(), n);
    drop(w);
    assert_records(t.path(), n);
}

#[test]
fn replay_filters_by_range_and_session() {
    let t = TempDir::new("filter");
    let mut w = Journal::open(t.path())
        .unwrap()
        .into_writer(cfg(Precreate::Manual))
        .unwrap();
    for s in 1..=40 {
        w.append(&rec(s)).unwrap();
    }
    drop(w);
    let j = Journal::open_read_only(t.path()).unwrap();
    let seqs = |it: &mut dyn Iterator<Item = SequencedRecord>| it.map(|r| r.global_seq).collect::<Vec<_>>();
    assert_eq!(seqs(&mut j.range(7..=19)), (7..=19).collect::<Vec<_>>());
    assert_eq!(seqs(&mut j.range(36..)), (36..=40).collect::<Vec<_>>());
    assert_eq!(seqs(&mut j.range(..3)), vec![1, 2]);
    assert_eq!(seqs(&mut j.range(41..100)), Vec::<u64>::new());
    assert_eq!(seqs(&mut j.range(0..=0)), Vec::<u64>::new());
    assert_eq!(j.range(5..=15).len(), 11);
    assert_eq!(j.get(17), Some(rec(17)));
    assert_eq!(j.get(41), None);

    let f = RecordFilter::all().session(1, 3).seqs(5..=35);
    let got: Vec<SequencedRecord> = j.select(&f).collect();
    let want: Vec<SequencedRecord> = (5..=35)
        .map(rec)
        .filter(|r| r.origin == SessionRef::new(1, 3))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    assert_eq!(j.select(&RecordFilter::all()).count(), 40);
    assert_eq!(
        j.select(&RecordFilter::all().session(1, 3)).count() as u64,
        (1..=40).filter(|s| s % 3 == 1 && s % 7 == 3).count() as u64
    );

    // One segment file on its own.
    let one = Journal::open_read_only(t.path().join(segment_name(11))).unwrap();
    assert_eq!(seqs(&mut one.records()), (11..=15).collect::<Vec<_>>());
    assert!(matches!(
        one.into_writer(cfg(Precreate::Manual)),
        Err(JournalError::Config(_))
    ));
    assert!(matches!(
        j.into_writer(cfg(Precreate::Manual)),
        Err(JournalError::Config(_))
    ));
}

#[test]
fn sequenced_view_round_trips() {
    let r = rec(9);
    assert_eq!(SequencedRecord::from_sequenced(&r.as_sequenced()), r);
    let t = TempDir::new("view");
    let mut w = Journal::open(t.path())
        .unwrap()
        .into_writer(cfg(Precreate::Manual))
        .unwrap();
    for s in 1..=3 {
        let r = rec(s);
        w.append_sequenced(&r.as_sequenced()).unwrap();
    }
    drop(w);
    assert_records(t.path(), 3);
}

#[test]
fn tiny_segment_size_is_a_config_error() {
    let t = TempDir::new("cfg");
    let c = WriterConfig {
        segment_size: (HEADER_LEN + RECORD_LEN - 1) as u64,
        ..cfg(Precreate::Manual)
    };
    assert!(matches!(
        Journal::open(t.path()).unwrap().into_writer(c),
        Err(JournalError::Config(_))
    ));
}
