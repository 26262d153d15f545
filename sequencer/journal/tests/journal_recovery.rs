// Over 600 lines: one case per recovery rule (torn tail, corruption per field and place), kept as one catalogue.
//! Journal recovery: torn and corrupt tails are dropped (exactly them) and
//! writing continues gap-free; corruption anywhere else stops the open with
//! an error naming the file and byte offset.
#![forbid(unsafe_code)]

use peregrine_journal::{
    segment_name, Journal, JournalError, Prealloc, Precreate, SequencedRecord, WriterConfig, HEADER_LEN,
    RECORD_LEN,
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

fn cfg() -> WriterConfig {
    WriterConfig {
        segment_size: (HEADER_LEN + PER_SEG as usize * RECORD_LEN) as u64,
        prealloc: Prealloc::Fallocate,
        populate: false,
        populate_writable: false,
        precreate: Precreate::Manual,
    }
}

fn rec(seq: u64) -> SequencedRecord {
    let mut msg = [0u8; 100];
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (seq.wrapping_mul(131).wrapping_add(i as u64 * 13) % 253) as u8;
    }
    SequencedRecord {
        global_seq: seq,
        origin: SessionRef::new((seq % 2) as u16, (seq % 5) as u32),
        client_seq: seq.wrapping_add(100),
        gateway_rx_ns: seq.wrapping_mul(10),
        sequencer_ns: seq.wrapping_mul(10).wrapping_add(3),
        msg,
    }
}

/// Writes records 1..=n and drops the writer.
fn write_journal(dir: &Path, n: u64) {
    let mut w = Journal::open(dir).unwrap().into_writer(cfg()).unwrap();
    for s in 1..=n {
        w.append(&rec(s)).unwrap();
    }
}

/// (segment file, byte offset) of the record with sequence `seq`.
fn locate(dir: &Path, seq: u64) -> (PathBuf, u64) {
    let first = (seq - 1) / PER_SEG * PER_SEG + 1;
    let slot = (seq - 1) % PER_SEG;
    (
        dir.join(segment_name(first)),
        HEADER_LEN as u64 + slot * RECORD_LEN as u64,
    )
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

fn flip(path: &Path, byte: u64, bit: u8) {
    edit(path, |b| b[byte as usize] ^= 1 << bit);
}

/// After recovery: records 1..=kept are the originals, the journal accepts
/// `kept + 1` onwards across a roll, and a reopen sees all of it cleanly.
fn check_resume(dir: &Path, kept: u64) {
    let j = Journal::open(dir).unwrap();
    assert_eq!(j.next_seq(), kept + 1);
    assert_eq!(
        j.records().collect::<Vec<_>>(),
        (1..=kept).map(rec).collect::<Vec<_>>()
    );
    let mut w = j.into_writer(cfg()).unwrap();
    for s in kept + 1..=kept + 7 {
        w.append(&rec(s)).unwrap();
    }
    drop(w);
    let j = Journal::open(dir).unwrap();
    assert_eq!(j.tail(), None);
    assert_eq!(
        j.records().collect::<Vec<_>>(),
        (1..=kept + 7).map(rec).collect::<Vec<_>>()
    );
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// The last record written only up to byte `cut` (the rest never
    /// reached the file): dropped exactly, unless the missing bytes happened
    /// to be zeros already (then it is complete and kept).
    #[test]
    fn torn_last_record_at_any_cut(n in 1u64..=23, cut in 0usize..RECORD_LEN) {
        let t = TempDir::new("torn");
        write_journal(t.path(), n);
        let (file, off) = locate(t.path(), n);
        let orig = std::fs::read(&file).unwrap()[off as usize..off as usize + RECORD_LEN].to_vec();
        edit(&file, |b| b[off as usize + cut..off as usize + RECORD_LEN].fill(0));
        let intact = orig[cut..].iter().all(|&x| x == 0);

        let ro = Journal::open_read_only(t.path()).unwrap();
        let before = std::fs::read(&file).unwrap();
        let j = Journal::open(t.path()).unwrap();
        if intact {
            prop_assert_eq!(j.next_seq(), n + 1);
            prop_assert_eq!(j.tail(), None);
        } else {
            prop_assert_eq!(j.next_seq(), n);
            let tail = j.tail();
            if cut == 0 {
                prop_assert_eq!(tail, None, "an all-zero slot is the clean end");
            } else {
                let tail = tail.unwrap();
                prop_assert_eq!(&tail.path, &file);
                prop_assert_eq!(tail.offset, off);
                prop_assert_eq!(tail.first_dropped_seq, n);
                prop_assert_eq!(tail.dropped_records, 1);
                let nz = orig[..cut].iter().rposition(|&x| x != 0).unwrap() + 1;
                prop_assert_eq!(tail.dropped_bytes, nz as u64);
                prop_assert!(tail.truncated);
                // Read-only saw the same and changed nothing.
                let rt = ro.tail().unwrap();
                prop_assert!(!rt.truncated);
                prop_assert_eq!((rt.offset, rt.dropped_records), (off, 1));
                prop_assert_eq!(ro.next_seq(), n);
                prop_assert_eq!(&before[off as usize..off as usize + cut], &orig[..cut]);
                // Open zeroed it on disk.
                let after = std::fs::read(&file).unwrap();
                prop_assert!(after[off as usize..].iter().all(|&x| x == 0));
            }
        }
        drop((j, ro));
        check_resume(t.path(), if intact { n } else { n - 1 });
    }

    /// Records k..n (all in the last segment) each get bit flips, and maybe
    /// garbage lands in the unused slots after them: all of it is dropped.
    #[test]
    fn corrupt_tail_records_are_dropped(
        n in 1u64..=23,
        back in 0u64..PER_SEG,
        flips in prop::collection::btree_set((0usize..RECORD_LEN, 0u8..8), 1..4),
        garbage in prop::option::of((0u64..PER_SEG, 1u8..=255)),
    ) {
        let t = TempDir::new("ctail");
        write_journal(t.path(), n);
        let last_seg_first = (n - 1) / PER_SEG * PER_SEG + 1;
        let k = n.saturating_sub(back).max(last_seg_first); // first damaged seq
        for s in k..=n {
            let (file, off) = locate(t.path(), s);
            for &(byte, bit) in &flips {
                flip(&file, off + byte as u64, bit);
            }
        }
        let mut damaged = n - k + 1;
        let (file, off_k) = locate(t.path(), k);
        if let Some((slot, val)) = garbage {
            let free = PER_SEG - ((n - 1) % PER_SEG + 1);
            if free > 0 {
                let s = n + 1 + slot % free;
                let (_, off) = locate(t.path(), s);
                edit(&file, |b| b[off as usize + 50] = val);
                damaged += 1;
            }
        }
        let j = Journal::open(t.path()).unwrap();
        prop_assert_eq!(j.next_seq(), k);
        let tail = j.tail().unwrap();
        prop_assert_eq!(&tail.path, &file);
        prop_assert_eq!(tail.offset, off_k);
        prop_assert_eq!(tail.first_dropped_seq, k);
        prop_assert_eq!(tail.dropped_records, damaged);
        drop(j);
        check_resume(t.path(), k - 1);
    }

    /// A bit flip in any record but the last: valid records follow it, so
    /// it is corruption in the middle, whatever segment it is in.
    #[test]
    fn middle_corruption_stops_the_open(
        n in 2u64..=23,
        victim_sel in any::<prop::sample::Index>(),
        byte in 0usize..RECORD_LEN,
        bit in 0u8..8,
    ) {
        let t = TempDir::new("middle");
        write_journal(t.path(), n);
        let victim = 1 + victim_sel.index((n - 1) as usize) as u64; // 1..n-1
        let (file, off) = locate(t.path(), victim);
        flip(&file, off + byte as u64, bit);
        let before = std::fs::read(&file).unwrap();
        let e = Journal::open(t.path()).unwrap_err();
        prop_assert!(matches!(e, JournalError::CorruptRecord { .. }), "{}", e);
        prop_assert_eq!(e.path(), Some(file.as_path()));
        prop_assert_eq!(e.offset(), Some(off));
        let msg = e.to_string();
        prop_assert!(msg.contains(&segment_name((victim - 1) / PER_SEG * PER_SEG + 1)), "{}", msg);
        prop_assert!(msg.contains(&format!("byte offset {off}")), "{}", msg);
        prop_assert_eq!(std::fs::read(&file).unwrap(), before, "a failed open must not modify");
        let ro = Journal::open_read_only(t.path()).unwrap_err();
        prop_assert_eq!(ro.offset(), Some(off));
    }
}

#[test]
fn bad_header_in_a_non_last_segment_is_an_error() {
    for (seg, byte) in [(1u64, 3u64), (6, 20), (6, 61), (11, 16)] {
        let t = TempDir::new("hdr");
        write_journal(t.path(), 13);
        let file = t.path().join(segment_name(seg));
        flip(&file, byte, 0);
        let e = Journal::open(t.path()).unwrap_err();
        assert!(matches!(e, JournalError::BadHeader { .. }), "{e}");
        assert_eq!(e.path(), Some(file.as_path()));
        assert_eq!(e.offset(), Some(0));
        assert!(e.to_string().contains(&segment_name(seg)), "{e}");
    }
}

#[test]
fn header_of_last_segment_without_records_is_dropped() {
    let t = TempDir::new("hdr-last");
    write_journal(t.path(), 10); // segments 1 and 6 full
                                 // A last segment whose header never made it and that holds nothing.
    let bogus = t.path().join(segment_name(11));
    std::fs::write(&bogus, vec![0u8; cfg().segment_size as usize]).unwrap();
    let j = Journal::open(t.path()).unwrap();
    assert_eq!(j.removed(), &[bogus.clone()][..]);
    assert!(!bogus.exists());
    assert_eq!(j.next_seq(), 11);
    drop(j);
    check_resume(t.path(), 10);
}

#[test]
fn missing_middle_segment_is_a_sequence_gap() {
    let t = TempDir::new("hole");
    write_journal(t.path(), 14);
    std::fs::remove_file(t.path().join(segment_name(6))).unwrap();
    let e = Journal::open(t.path()).unwrap_err();
    match &e {
        JournalError::SequenceGap {
            path,
            expected,
            found,
            ..
        } => {
            assert_eq!(path, &t.path().join(segment_name(11)));
            assert_eq!((*expected, *found), (6, 11));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn hole_in_a_non_last_segment_is_an_error() {
    // The last record of segment 1 zeroed (as if its page never reached
    // the disk) while later segments exist.
    let t = TempDir::new("zeroed");
    write_journal(t.path(), 8);
    let (file, off) = locate(t.path(), 5);
    edit(&file, |b| b[off as usize..off as usize + RECORD_LEN].fill(0));
    let e = Journal::open(t.path()).unwrap_err();
    assert!(
        matches!(e, JournalError::CorruptRecord { expected_seq: 5, .. }),
        "{e}"
    );
    assert_eq!((e.path(), e.offset()), (Some(file.as_path()), Some(off)));
}

#[test]
fn zero_hole_followed_by_valid_records_in_last_segment_is_an_error() {
    let t = TempDir::new("zhole");
    write_journal(t.path(), 9);
    let (file, off) = locate(t.path(), 7);
    edit(&file, |b| b[off as usize..off as usize + RECORD_LEN].fill(0));
    let e = Journal::open(t.path()).unwrap_err();
    assert_eq!((e.path(), e.offset()), (Some(file.as_path()), Some(off)));
    assert!(e.to_string().contains("valid record (seq 8)"), "{e}");
}

#[test]
fn valid_record_with_wrong_sequence_is_an_error() {
    // A whole valid record copied over another (CRC fine, sequence wrong):
    // never a torn write, even at the very end.
    let t = TempDir::new("dup");
    write_journal(t.path(), 9);
    let (file, off9) = locate(t.path(), 9);
    let (_, off6) = locate(t.path(), 6);
    edit(&file, |b| {
        let src = b[off6 as usize..off6 as usize + RECORD_LEN].to_vec();
        b[off9 as usize..off9 as usize + RECORD_LEN].copy_from_slice(&src);
    });
    let e = Journal::open(t.path()).unwrap_err();
    assert!(
        matches!(
            e,
            JournalError::SequenceGap {
                expected: 9,
                found: 6,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!((e.path(), e.offset()), (Some(file.as_path()), Some(off9)));
}

#[test]
fn segment_name_and_header_must_agree() {
    let t = TempDir::new("rename");
    write_journal(t.path(), 4);
    std::fs::rename(t.path().join(segment_name(1)), t.path().join(segment_name(2))).unwrap();
    let e = Journal::open(t.path()).unwrap_err();
    assert!(matches!(e, JournalError::BadHeader { .. }), "{e}");

    let t = TempDir::new("badname");
    write_journal(t.path(), 4);
    std::fs::write(t.path().join("7.journal"), b"x").unwrap();
    assert!(matches!(
        Journal::open(t.path()),
        Err(JournalError::BadSegmentName { .. })
    ));
}

#[test]
fn truncated_segment_file_is_an_error() {
    let t = TempDir::new("short");
    write_journal(t.path(), 7);
    let file = t.path().join(segment_name(1));
    edit(&file, |b| b.truncate(b.len() - 10));
    let e = Journal::open(t.path()).unwrap_err();
    assert!(matches!(e, JournalError::BadHeader { .. }), "{e}");
    assert_eq!(e.path(), Some(file.as_path()));
}

#[test]
fn leftover_temporary_file_is_removed() {
    let t = TempDir::new("tmp");
    write_journal(t.path(), 3);
    let tmp = t.path().join("00000000000000000006.journal.tmp");
    std::fs::write(&tmp, b"half-made").unwrap();
    let j = Journal::open(t.path()).unwrap();
    assert_eq!(j.removed(), &[tmp.clone()][..]);
    assert!(!tmp.exists());
    drop(j);
    check_resume(t.path(), 3);
}

#[test]
fn torn_first_record_of_a_fresh_segment() {
    // The crash hit the first record of a new segment: that segment is
    // kept (empty) and writing resumes in it.
    let t = TempDir::new("first");
    write_journal(t.path(), 11);
    let (file, off) = locate(t.path(), 11);
    assert_eq!(off, HEADER_LEN as u64);
    edit(&file, |b| {
        b[off as usize + 100..off as usize + RECORD_LEN].fill(0)
    });
    let j = Journal::open(t.path()).unwrap();
    assert_eq!(j.next_seq(), 11);
    assert_eq!(j.tail().unwrap().path, file);
    assert_eq!(j.segments().last().unwrap().records, 0);
    drop(j);
    check_resume(t.path(), 10);
}

/// A segment header (module doc table), CRC included.
fn header_bytes(first_seq: u64, size: u64) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(b"PRGNJRNL");
    b[8..10].copy_from_slice(&1u16.to_le_bytes());
    b[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    b[12..16].copy_from_slice(&(RECORD_LEN as u32).to_le_bytes());
    b[16..24].copy_from_slice(&first_seq.to_le_bytes());
    b[24..32].copy_from_slice(&size.to_le_bytes());
    let crc = crc32c::crc32c(&b[..60]);
    b[60..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// A record slot (module doc table) of kind `kind`, CRC included.
fn record_bytes(r: &SequencedRecord, kind: u16) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    b[0..2].copy_from_slice(&kind.to_le_bytes());
    b[2..4].copy_from_slice(&r.origin.gateway.to_le_bytes());
    b[4..8].copy_from_slice(&r.origin.index.to_le_bytes());
    b[8..16].copy_from_slice(&r.global_seq.to_le_bytes());
    b[16..24].copy_from_slice(&r.client_seq.to_le_bytes());
    b[24..32].copy_from_slice(&r.gateway_rx_ns.to_le_bytes());
    b[32..40].copy_from_slice(&r.sequencer_ns.to_le_bytes());
    b[40..140].copy_from_slice(&r.msg);
    let crc = crc32c::crc32c(&b[..140]);
    b[140..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// A segment file image of `size` bytes: header, then `records` (kind 1).
fn segment_image(first_seq: u64, size: u64, records: &[SequencedRecord]) -> Vec<u8> {
    let mut b = vec![0u8; size as usize];
    b[..HEADER_LEN].copy_from_slice(&header_bytes(first_seq, size));
    for (k, r) in records.iter().enumerate() {
        let off = HEADER_LEN + k * RECORD_LEN;
        b[off..off + RECORD_LEN].copy_from_slice(&record_bytes(r, 1));
    }
    b
}

/// Every file of `dir`: name → bytes.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn dataless_last_segment_whose_header_disagrees_with_file_is_dropped() {
    let size = cfg().segment_size;
    // Name and header disagree (an interrupted copy of a pre-created
    // segment), or size and header do; the body is all zeros either way.
    let mut wrong_size = segment_image(11, size, &[]);
    wrong_size[..HEADER_LEN].copy_from_slice(&header_bytes(11, size + RECORD_LEN as u64));
    for image in [segment_image(16, size, &[]), wrong_size] {
        let t = TempDir::new("hdr-mismatch");
        write_journal(t.path(), 10); // segments 1 and 6 full
        let bogus = t.path().join(segment_name(11));
        std::fs::write(&bogus, &image).unwrap();
        let ro = Journal::open_read_only(t.path()).unwrap();
        assert_eq!(ro.next_seq(), 11);
        assert!(ro.removed().is_empty() && bogus.exists());
        let j = Journal::open(t.path()).unwrap();
        assert_eq!(j.removed(), &[bogus.clone()][..]);
        assert!(!bogus.exists());
        assert_eq!(j.next_seq(), 11);
        drop(j);
        check_resume(t.path(), 10);
    }
    // With a non-zero body byte the same header is an error.
    let t = TempDir::new("hdr-mismatch-data");
    write_journal(t.path(), 10);
    let bogus = t.path().join(segment_name(11));
    let mut image = segment_image(16, size, &[]);
    image[HEADER_LEN + 3] = 1;
    std::fs::write(&bogus, &image).unwrap();
    let e = Journal::open(t.path()).unwrap_err();
    assert!(matches!(e, JournalError::BadHeader { .. }), "{e}");
    assert_eq!(e.path(), Some(bogus.as_path()));
    assert!(bogus.exists());
}

#[test]
fn crc_valid_slot_of_unknown_kind_after_the_tail_is_an_error() {
    let t = TempDir::new("kind-after-tail");
    write_journal(t.path(), 7); // segment 6 holds 6 and 7; slot of 8 empty
    let (file, off8) = locate(t.path(), 8);
    let (_, off9) = locate(t.path(), 9);
    edit(&file, |b| {
        b[off9 as usize..off9 as usize + RECORD_LEN].copy_from_slice(&record_bytes(&rec(9), 9))
    });
    let before = snapshot(t.path());
    for e in [
        Journal::open(t.path()).unwrap_err(),
        Journal::open_read_only(t.path()).unwrap_err(),
    ] {
        assert!(
            matches!(e, JournalError::CorruptRecord { expected_seq: 8, .. }),
            "{e}"
        );
        assert_eq!((e.path(), e.offset()), (Some(file.as_path()), Some(off8)));
        let msg = e.to_string();
        assert!(
            msg.contains("unknown record kind 9") && msg.contains(&format!("offset {off9}")),
            "{msg}"
        );
    }
    assert_eq!(snapshot(t.path()), before, "a failed open must not modify");
}

#[test]
fn record_with_sequence_u64_max_is_an_error() {
    let t = TempDir::new("max");
    std::fs::create_dir_all(t.path()).unwrap();
    let file = t.path().join(segment_name(u64::MAX));
    std::fs::write(
        &file,
        segment_image(u64::MAX, cfg().segment_size, &[rec(u64::MAX)]),
    )
    .unwrap();
    let before = snapshot(t.path());
    for e in [
        Journal::open(t.path()).unwrap_err(),
        Journal::open_read_only(t.path()).unwrap_err(),
        Journal::open_read_only(&file).unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                JournalError::CorruptRecord {
                    expected_seq: u64::MAX,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            (e.path(), e.offset()),
            (Some(file.as_path()), Some(HEADER_LEN as u64))
        );
    }
    assert_eq!(snapshot(t.path()), before);
}

#[test]
fn writer_refuses_sequence_u64_max() {
    for precreate in [Precreate::Manual, Precreate::Background] {
        let t = TempDir::new("max-writer");
        std::fs::create_dir_all(t.path()).unwrap();
        // A segment created ahead at u64::MAX - 2 (slots up to u64::MAX + 2).
        let first = u64::MAX - 2;
        let file = t.path().join(segment_name(first));
        std::fs::write(&file, segment_image(first, cfg().segment_size, &[])).unwrap();
        let j = Journal::open(t.path()).unwrap();
        assert_eq!((j.first_seq(), j.next_seq()), (first, first));
        let mut w = j.into_writer(WriterConfig { precreate, ..cfg() }).unwrap();
        w.append(&rec(first)).unwrap();
        w.append(&rec(first + 1)).unwrap();
        let e = w.append(&rec(u64::MAX)).unwrap_err();
        assert!(
            matches!(e, JournalError::SequenceExhausted { seq: u64::MAX }),
            "{e}"
        );
        assert_eq!((w.next_seq(), w.written_seq()), (u64::MAX, u64::MAX - 1));
        // No segment can follow: preparing one does nothing.
        w.prepare_next_segment().unwrap();
        w.close().unwrap();
        assert_eq!(snapshot(t.path()).len(), 1, "{:?}", snapshot(t.path()).keys());
        let j = Journal::open(t.path()).unwrap();
        assert_eq!(j.next_seq(), u64::MAX);
        assert_eq!(j.len(), 2);
        assert_eq!(j.records().collect::<Vec<_>>(), vec![rec(first), rec(first + 1)]);
    }
}

#[test]
fn failed_open_changes_nothing() {
    let t = TempDir::new("failed");
    write_journal(t.path(), 8); // segments 1 (full) and 6 (6, 7, 8)
                                // Things a successful open would remove: a leftover temporary file, a
                                // trailing segment created ahead, a torn tail after record 8 ...
    std::fs::write(t.path().join("00000000000000000011.journal.tmp"), b"half-made").unwrap();
    std::fs::write(
        t.path().join(segment_name(11)),
        segment_image(11, cfg().segment_size, &[]),
    )
    .unwrap();
    let (file6, off9) = locate(t.path(), 9);
    edit(&file6, |b| b[off9 as usize + 7] = 0x55);
    // ... but a record of the first segment is corrupt.
    let (file1, off2) = locate(t.path(), 2);
    flip(&file1, off2 + 30, 4);
    let before = snapshot(t.path());
    let e = Journal::open(t.path()).unwrap_err();
    assert!(matches!(e, JournalError::CorruptRecord { .. }), "{e}");
    assert_eq!((e.path(), e.offset()), (Some(file1.as_path()), Some(off2)));
    assert_eq!(snapshot(t.path()), before, "a failed open must not modify");
}
