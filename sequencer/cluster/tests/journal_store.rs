//! `JournalLogStore`: the journal as the Raft log. The behaviours
//! `MemLogStore`'s tests check, plus reopening, overwriting an uncommitted
//! suffix (its journal records go), torn tails on either side, typed errors
//! for bad entry data, and a 3-node cluster in temp dirs whose nodes are
//! killed and reopened while it commits.

use peregrine_cluster::{
    decode_snapshot_data, encode_snapshot_data, BadEntryReason, ClusterConfig, CommittedEntry, Entry,
    HardState, JournalLogStore, JournalStoreError, LogStore, MemberConfig, ReplicatedLog, StoreError,
};
use peregrine_journal::{
    encode, FlushPolicy, Journal, Prealloc, Precreate, SequencedRecord, WriterConfig, HEADER_LEN, RECORD_LEN,
};
use peregrine_wire::SessionRef;
use raft::eraftpb::{EntryType, Snapshot};
use raft::{GetEntriesContext, Storage};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "peregrine-jstore-{tag}-{}-{}",
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

/// Small segments (5 records) so entries straddle segment boundaries.
fn writer_cfg() -> WriterConfig {
    WriterConfig {
        segment_size: (HEADER_LEN + 5 * RECORD_LEN) as u64,
        prealloc: Prealloc::Fallocate,
        populate: false,
        populate_writable: false,
        precreate: Precreate::Manual,
    }
}

fn open(dir: &Path) -> JournalLogStore {
    JournalLogStore::open(dir, &[1, 2, 3], writer_cfg(), FlushPolicy::Fdatasync)
        .unwrap()
        .0
}

/// A record whose content depends on `seq` and a `tag`.
fn rec(seq: u64, tag: u8) -> SequencedRecord {
    let mut msg = [0u8; 100];
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(3) ^ tag ^ seq as u8;
    }
    SequencedRecord {
        global_seq: seq,
        origin: SessionRef::new(1, tag as u32),
        client_seq: seq * 10 + tag as u64,
        gateway_rx_ns: seq * 100,
        sequencer_ns: seq * 100 + 1,
        msg,
    }
}

/// `n` encoded records from `first_seq`.
fn batch(first_seq: u64, n: u64, tag: u8) -> Vec<u8> {
    let mut out = vec![0u8; n as usize * RECORD_LEN];
    for (k, dst) in out.chunks_exact_mut(RECORD_LEN).enumerate() {
        encode(&rec(first_seq + k as u64, tag).as_sequenced(), dst);
    }
    out
}

fn entry(index: u64, term: u64, data: Vec<u8>) -> Entry {
    Entry {
        index,
        term,
        data: data.into(),
        ..Entry::default()
    }
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

/// (index, term, data) of `low..high`, for comparisons.
fn read(s: &JournalLogStore, low: u64, high: u64) -> Vec<(u64, u64, Vec<u8>)> {
    s.entries(low, high, None, ctx())
        .unwrap()
        .into_iter()
        .map(|e| (e.index, e.term, e.data.to_vec()))
        .collect()
}

fn journal_bytes(dir: &Path) -> Vec<u8> {
    let j = Journal::open_read_only(dir).unwrap();
    assert_eq!(j.tail(), None);
    let mut out = vec![0u8; j.len() as usize * RECORD_LEN];
    for (r, dst) in j.records().zip(out.chunks_exact_mut(RECORD_LEN)) {
        encode(&r.as_sequenced(), dst);
    }
    out
}

#[test]
fn append_overwrites_a_suffix_and_refuses_gaps() {
    let t = TempDir::new("overwrite");
    let mut s = open(t.path());
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
    assert_eq!((s.next_seq(), s.committed_seq()), (1, 0));
    s.append(&[
        entry(1, 1, vec![]),
        entry(2, 1, batch(1, 3, 0)),
        entry(3, 1, batch(4, 4, 0)),
    ])
    .unwrap();
    assert_eq!(s.next_seq(), 8);
    assert_eq!(s.seq_range(3), Some((4, 4)));
    assert_eq!(journal_bytes(s.journal_dir()).len(), 7 * RECORD_LEN);

    // A new leader overwrites entry 3 (uncommitted) with a shorter one.
    s.append(&[entry(3, 2, batch(4, 1, 9))]).unwrap();
    assert_eq!(s.last_index().unwrap(), 3);
    assert_eq!(s.term(3).unwrap(), 2);
    assert_eq!(s.term(0).unwrap(), 0);
    assert_eq!(s.next_seq(), 5);
    let mut want = batch(1, 3, 0);
    want.extend(batch(4, 1, 9));
    assert_eq!(
        journal_bytes(s.journal_dir()),
        want,
        "the overwritten records are gone"
    );

    // Overwrite entries 2.. with an empty entry: their records go too.
    s.append(&[entry(2, 3, vec![])]).unwrap();
    assert_eq!((s.last_index().unwrap(), s.next_seq()), (2, 1));
    assert!(journal_bytes(s.journal_dir()).is_empty());
    assert!(matches!(
        s.append(&[entry(5, 3, vec![])]),
        Err(StoreError::Gap { first: 5, last: 2 })
    ));
    assert!(s.term(3).is_err());
    s.append(&[entry(3, 3, batch(1, 2, 1))]).unwrap();
    let got = read(&s, 1, 4);
    assert_eq!(
        got.iter().map(|(i, t, _)| (*i, *t)).collect::<Vec<_>>(),
        vec![(1, 1), (2, 3), (3, 3)]
    );
    assert_eq!(got[2].2, batch(1, 2, 1));
    assert!(s.entries(0, 2, None, ctx()).is_err());
    assert!(s.entries(2, 5, None, ctx()).is_err());
    assert!(s.entries(3, 2, None, ctx()).is_err());
    assert!(s.append(&[]).is_ok());
}

#[test]
fn initial_state_carries_membership_and_hard_state() {
    let t = TempDir::new("initial");
    let mut s = open(t.path());
    let hs = HardState {
        term: 4,
        vote: 2,
        commit: 0,
        ..HardState::default()
    };
    s.set_hard_state(&hs).unwrap();
    s.set_commit(0).unwrap();
    let st = s.initial_state().unwrap();
    assert_eq!(st.hard_state, hs);
    assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
    drop(s);
    assert_eq!(open(t.path()).initial_state().unwrap().hard_state, hs);
    // Another membership is refused.
    assert!(matches!(
        JournalLogStore::open(t.path(), &[1, 2], writer_cfg(), FlushPolicy::None),
        Err(StoreError::Journal(JournalStoreError::MembershipMismatch { .. }))
    ));
}

/// Entries 1..=n (entry 1 empty, entry k holding k - 1 records).
fn fill(s: &mut JournalLogStore, n: u64, term: u64) {
    let mut seq = s.next_seq();
    let start = s.last_index().unwrap() + 1;
    let entries: Vec<Entry> = (start..=n)
        .map(|k| {
            let e = entry(k, term, batch(seq, k - 1, 0));
            seq += k - 1;
            e
        })
        .collect();
    s.append(&entries).unwrap();
}

#[test]
fn drop_and_reopen_gives_the_same_log() {
    let t = TempDir::new("reopen");
    let mut s = open(t.path());
    fill(&mut s, 6, 1);
    fill(&mut s, 9, 2);
    let hs = HardState {
        term: 2,
        vote: 1,
        commit: 7,
        ..HardState::default()
    };
    s.set_hard_state(&hs).unwrap();
    let before = read(&s, 1, 10);
    let terms: Vec<u64> = (0..=9).map(|i| s.term(i).unwrap()).collect();
    // 1 + 2 + ... + 6 records in entries 2..=7.
    assert_eq!(s.committed_seq(), 21);
    assert_eq!(s.next_seq(), 37);
    drop(s);

    let (s, rec) = JournalLogStore::open(t.path(), &[3, 2, 1], writer_cfg(), FlushPolicy::Fdatasync).unwrap();
    assert_eq!(
        (
            rec.index_rows_dropped,
            rec.journal_records_dropped,
            rec.last_index
        ),
        (0, 0, 9)
    );
    assert_eq!((rec.commit, rec.committed_seq), (7, 21));
    assert_eq!(rec.journal_tail, None);
    assert_eq!(s.initial_state().unwrap().hard_state, hs);
    assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1, 2, 3]);
    assert_eq!((0..=9).map(|i| s.term(i).unwrap()).collect::<Vec<_>>(), terms);
    // Rebuilt from the journal (the cache starts empty).
    assert_eq!(read(&s, 1, 10), before);
    assert_eq!(read(&s, 4, 7), before[3..6].to_vec());
    assert_eq!((s.committed_seq(), s.next_seq()), (21, 37));
    assert_eq!(s.seq_range(1), Some((1, 0)));
    assert_eq!(s.seq_range(9), Some((29, 8)));
    assert_eq!(s.seq_range(10), None);
    let j = Journal::open_read_only(s.journal_dir()).unwrap();
    assert_eq!(j.next_seq(), 37);
}

#[test]
fn cached_and_rebuilt_reads_agree_and_respect_max_size() {
    let t = TempDir::new("cache");
    let mut s = open(t.path());
    fill(&mut s, 12, 1);
    let cached = read(&s, 1, 13);
    for limit in [0usize, 3_000, 1 << 20] {
        s.set_cache_limit(limit);
        assert!(s.cache_bytes() <= limit);
        for low in 1..=12 {
            for high in low..=13 {
                assert_eq!(
                    read(&s, low, high),
                    cached[low as usize - 1..high as usize - 1].to_vec()
                );
                for max in [0u64, 1, 500, 2_000, 10_000] {
                    let got = s.entries(low, high, max, ctx()).unwrap();
                    let mut want: Vec<Entry> = cached[low as usize - 1..high as usize - 1]
                        .iter()
                        .map(|(i, t, d)| entry(*i, *t, d.clone()))
                        .collect();
                    raft::util::limit_size(&mut want, Some(max));
                    let got: Vec<_> = got.iter().map(|e| (e.index, e.data.to_vec())).collect();
                    let want: Vec<_> = want.iter().map(|e| (e.index, e.data.to_vec())).collect();
                    assert_eq!(got, want, "limit {limit} {low}..{high} max {max}");
                }
            }
        }
    }
}

/// The entry an append refused, and why.
fn bad_entry(r: Result<(), StoreError>) -> (u64, BadEntryReason) {
    match r {
        Err(StoreError::Journal(JournalStoreError::BadEntry { index, reason })) => (index, reason),
        other => panic!("expected BadEntry, got {other:?}"),
    }
}

/// Why an append was refused.
fn reason(r: Result<(), StoreError>) -> BadEntryReason {
    bad_entry(r).1
}

#[test]
fn bad_entry_data_is_a_typed_error_and_writes_nothing() {
    let t = TempDir::new("bad");
    let mut s = open(t.path());
    fill(&mut s, 3, 1); // records 1..=3

    let mut short = batch(4, 2, 0);
    short.pop();
    let (i, why) = bad_entry(s.append(&[entry(4, 1, batch(4, 1, 0)), entry(5, 1, short)]));
    assert_eq!(i, 5);
    assert!(matches!(why, BadEntryReason::NotWholeRecords { len: 287, .. }));

    let mut flipped = batch(4, 3, 0);
    flipped[RECORD_LEN + 7] ^= 0x10;
    let (i, why) = bad_entry(s.append(&[entry(4, 1, flipped)]));
    assert_eq!(i, 4);
    assert!(matches!(why, BadEntryReason::BadRecord { record: 1, .. }));

    let (_, why) = bad_entry(s.append(&[entry(4, 1, batch(5, 1, 0))]));
    assert_eq!(
        why,
        BadEntryReason::SequenceGap {
            record: 0,
            expected: 4,
            found: 5
        }
    );
    let (i, why) = bad_entry(s.append(&[entry(4, 1, batch(4, 2, 0)), entry(5, 1, batch(7, 1, 0))]));
    assert_eq!(i, 5);
    assert!(matches!(
        why,
        BadEntryReason::SequenceGap {
            expected: 6,
            found: 7,
            ..
        }
    ));
    // Overwriting entry 3 (records 2..=3): the replacement must start at 2.
    let (_, why) = bad_entry(s.append(&[entry(3, 2, batch(4, 1, 0))]));
    assert!(matches!(
        why,
        BadEntryReason::SequenceGap {
            expected: 2,
            found: 4,
            ..
        }
    ));

    let mut conf = entry(4, 1, vec![]);
    conf.set_entry_type(EntryType::EntryConfChange);
    let (_, why) = bad_entry(s.append(&[conf]));
    assert!(matches!(why, BadEntryReason::UnsupportedType(_)));
    let mut with_ctx = entry(4, 1, vec![]);
    with_ctx.context = vec![1, 2].into();
    let (_, why) = bad_entry(s.append(&[with_ctx]));
    assert_eq!(why, BadEntryReason::Context(2));
    assert!(matches!(
        s.append(&[entry(4, 1, vec![]), entry(6, 1, vec![])]),
        Err(StoreError::Journal(JournalStoreError::NonConsecutiveEntries {
            expected: 5,
            found: 6
        }))
    ));

    // Nothing of any refused append was written.
    assert_eq!((s.last_index().unwrap(), s.next_seq()), (3, 4));
    assert_eq!(journal_bytes(s.journal_dir()), batch(1, 3, 0));
    drop(s);
    let s = open(t.path());
    assert_eq!((s.last_index().unwrap(), s.next_seq()), (3, 4));
}

#[test]
fn a_leaders_own_entries_skip_only_the_crc_check() {
    let t = TempDir::new("proposed");
    let mut s = open(t.path());
    fill(&mut s, 3, 1); // records 1..=3

    // Structure and sequences are still checked.
    assert!(matches!(
        reason(s.append_proposed(&[entry(4, 1, batch(5, 1, 0))])),
        BadEntryReason::SequenceGap {
            expected: 4,
            found: 5,
            ..
        }
    ));
    let mut short = batch(4, 1, 0);
    short.pop();
    assert!(matches!(
        reason(s.append_proposed(&[entry(4, 1, short)])),
        BadEntryReason::NotWholeRecords { .. }
    ));
    // A record's CRC is not: the same bytes `append` refuses (from a peer)
    // are taken as the node's own (whose sequencer computed that CRC).
    let mut flipped = batch(4, 2, 0);
    flipped[RECORD_LEN + 3] ^= 0x01;
    assert!(matches!(
        reason(s.append(&[entry(4, 1, flipped.clone())])),
        BadEntryReason::BadRecord { record: 1, .. }
    ));
    assert_eq!(s.last_index().unwrap(), 3, "refused whole");
    s.append_proposed(&[entry(4, 1, flipped.clone())]).unwrap();
    assert_eq!((s.last_index().unwrap(), s.next_seq()), (4, 6));
    assert_eq!(read(&s, 4, 5), vec![(4, 1, flipped)]);
}

#[test]
fn committed_entries_are_never_discarded() {
    let t = TempDir::new("committed");
    let mut s = open(t.path());
    fill(&mut s, 4, 1);
    s.set_commit(3).unwrap();
    assert!(matches!(
        s.append(&[entry(3, 2, vec![])]),
        Err(StoreError::Journal(JournalStoreError::TruncatesCommitted {
            index: 3,
            commit: 3
        }))
    ));
    s.append(&[entry(4, 2, vec![])]).unwrap();
    // No snapshot taken yet: none to hand out.
    assert!(s.snapshot(0, 2).is_err());
}

fn snapshot(index: u64, term: u64, last_seq: u64, app: &[u8]) -> Snapshot {
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = index;
    snap.mut_metadata().term = term;
    snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
    snap.data = encode_snapshot_data(last_seq, app).into();
    snap
}

/// Copies the files of store directory `from` into `to` (a crash image).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_snapshot_taken_at_a_committed_index_compacts_the_log_and_old_segments() {
    let t = TempDir::new("take");
    let mut s = open(t.path());
    fill(&mut s, 6, 1);
    fill(&mut s, 9, 2); // records 1..=36; entry 5 ends at seq 10
    s.set_commit(7).unwrap();
    let after = read(&s, 6, 10);
    for bad in [0, 8] {
        assert!(matches!(
            s.create_snapshot(bad, b"x"),
            Err(StoreError::Journal(JournalStoreError::BadSnapshot(_)))
        ));
    }
    s.create_snapshot(5, b"app state").unwrap();
    let check = |s: &JournalLogStore| {
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (6, 9));
        assert_eq!(s.term(5).unwrap(), 1);
        assert!(s.term(4).is_err());
        assert!(s.entries(5, 7, None, ctx()).is_err(), "compacted");
        assert_eq!(read(s, 6, 10), after);
        assert_eq!((s.committed_seq(), s.next_seq()), (21, 37));
        let (meta, last_seq, app) = s.snapshot_state().unwrap();
        assert_eq!(
            (meta.index, meta.term, last_seq, app),
            (5, 1, 10, &b"app state"[..])
        );
        let snap = s.snapshot(0, 2).unwrap();
        assert_eq!(decode_snapshot_data(&snap.data), Some((10, &b"app state"[..])));
        assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1, 2, 3]);
        // Segments 1..=5 and 6..=10 held only snapshotted records.
        let j = Journal::open_read_only(s.journal_dir()).unwrap();
        assert_eq!((j.first_seq(), j.next_seq()), (11, 37));
    };
    check(&s);
    assert!(matches!(
        s.create_snapshot(4, b"old"),
        Err(StoreError::StaleSnapshot {
            snapshot: 4,
            stored: 5
        })
    ));
    drop(s);
    let mut s = open(t.path());
    check(&s);
    // A later snapshot, then appends continue.
    s.create_snapshot(7, b"later").unwrap();
    assert_eq!(s.first_index().unwrap(), 8);
    s.append(&[entry(10, 2, batch(37, 2, 0))]).unwrap();
    drop(s);
    let s = open(t.path());
    assert_eq!(
        (s.first_index().unwrap(), s.last_index().unwrap(), s.next_seq()),
        (8, 10, 39)
    );
    assert_eq!(s.snapshot_state().unwrap().2, b"later");
}

#[test]
fn a_snapshot_beyond_the_log_restarts_the_journal_after_it() {
    let t = TempDir::new("install");
    let mut s = open(t.path());
    fill(&mut s, 4, 1); // records 1..=6
    s.set_commit(2).unwrap();
    let before = t.path().with_extension("before");
    copy_dir(t.path(), &before);
    let _cleanup = TempDir(before.clone());

    for bad in [Snapshot::default(), snapshot(0, 0, 0, b""), {
        let mut short = snapshot(6, 3, 50, b"");
        short.data = vec![1, 2, 3].into();
        short
    }] {
        assert!(matches!(
            s.apply_snapshot(&bad),
            Err(StoreError::Journal(JournalStoreError::BadSnapshot(_)))
        ));
    }
    // From a leader: index 6, term 3, covering sequences up to 50.
    let snap = snapshot(6, 3, 50, b"leader state");
    s.apply_snapshot(&snap).unwrap();
    let check = |s: &JournalLogStore| {
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (7, 6));
        assert_eq!(s.term(6).unwrap(), 3);
        assert_eq!((s.committed_seq(), s.next_seq()), (50, 51));
        assert_eq!(s.hard_state().commit, 6);
        assert!(s.hard_state().term >= 3);
        let j = Journal::open_read_only(s.journal_dir()).unwrap();
        assert!(j.is_empty());
        assert_eq!(
            (j.first_seq(), j.next_seq()),
            (51, 51),
            "the old records are gone"
        );
    };
    check(&s);
    assert!(matches!(
        s.apply_snapshot(&snapshot(5, 3, 40, b"")),
        Err(StoreError::StaleSnapshot {
            snapshot: 5,
            stored: 6
        })
    ));
    drop(s);
    let mut s = open(t.path());
    check(&s);
    s.append(&[entry(7, 3, batch(51, 3, 0))]).unwrap();
    assert_eq!(read(&s, 7, 8)[0].2, batch(51, 3, 0));
    drop(s);
    let s = open(t.path());
    assert_eq!((s.last_index().unwrap(), s.next_seq()), (7, 54));
    assert_eq!(journal_bytes(s.journal_dir()), batch(51, 3, 0));
    drop(s);

    // A crash right after the snapshot file was written: open finishes the
    // install (old rows dropped, journal restarted).
    std::fs::copy(t.path().join("snapshot"), before.join("snapshot")).unwrap();
    let (s, rec) = JournalLogStore::open(&before, &[1, 2, 3], writer_cfg(), FlushPolicy::Fdatasync).unwrap();
    assert_eq!(rec.index_rows_dropped, 4);
    check(&s);
}

#[test]
fn a_matching_snapshot_keeps_the_log_after_it_even_across_a_crash() {
    let t = TempDir::new("matching");
    let mut s = open(t.path());
    fill(&mut s, 6, 2); // entry 4 ends at seq 6
    s.set_commit(3).unwrap();
    let before = t.path().with_extension("before");
    copy_dir(t.path(), &before);
    let _cleanup = TempDir(before.clone());
    let after = read(&s, 5, 7);
    s.apply_snapshot(&snapshot(4, 2, 6, b"s")).unwrap();
    let check = |s: &JournalLogStore| {
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (5, 6));
        assert_eq!(read(s, 5, 7), after);
        assert_eq!(
            (s.hard_state().commit, s.committed_seq(), s.next_seq()),
            (4, 6, 16)
        );
    };
    check(&s);
    drop(s);
    check(&open(t.path()));
    std::fs::copy(t.path().join("snapshot"), before.join("snapshot")).unwrap();
    let (s, rec) = JournalLogStore::open(&before, &[1, 2, 3], writer_cfg(), FlushPolicy::Fdatasync).unwrap();
    assert_eq!((rec.index_rows_dropped, rec.journal_records_dropped), (4, 0));
    check(&s);
}

#[test]
fn torn_tails_recover_to_a_consistent_log() {
    let t = TempDir::new("torn");
    let mut s = open(t.path());
    fill(&mut s, 5, 1); // entries 1..=5, records 1..=10
    s.set_commit(3).unwrap();
    let jdir = s.journal_dir().to_path_buf();
    drop(s);

    // Records without an index row: a crash after the journal write, before
    // the index row. They are truncated away.
    let mut w = Journal::open(&jdir).unwrap().into_writer(writer_cfg()).unwrap();
    for seq in 11..=13 {
        w.append(&rec(seq, 5)).unwrap();
    }
    drop(w);
    let (s, r) = JournalLogStore::open(t.path(), &[1, 2, 3], writer_cfg(), FlushPolicy::Fdatasync).unwrap();
    assert_eq!((r.journal_records_dropped, r.index_rows_dropped), (3, 0));
    assert_eq!(
        (s.last_index().unwrap(), s.next_seq(), s.committed_seq()),
        (5, 11, 3)
    );
    assert_eq!(Journal::open_read_only(&jdir).unwrap().next_seq(), 11);
    drop(s);

    // An index row whose records are torn away: entry 5 (records 7..=10)
    // loses its last record (zeroed as a torn write would leave it).
    let path = jdir.join(peregrine_journal::segment_name(6));
    let mut bytes = std::fs::read(&path).unwrap();
    let off = HEADER_LEN + 4 * RECORD_LEN; // seq 10
    bytes[off..off + RECORD_LEN].fill(0);
    bytes[off + 3] = 0x55; // torn, not clean
    std::fs::write(&path, &bytes).unwrap();
    // Plus half an index row after the last one.
    let idx = t.path().join("entries.idx");
    let mut ib = std::fs::read(&idx).unwrap();
    ib.extend_from_slice(&[7; 20]);
    std::fs::write(&idx, &ib).unwrap();

    let (mut s, r) =
        JournalLogStore::open(t.path(), &[1, 2, 3], writer_cfg(), FlushPolicy::Fdatasync).unwrap();
    assert!(r.journal_tail.is_some());
    // The torn half row, and entry 5 whose records are not all there; the
    // records 7..=9 entry 5 left behind are then uncovered: dropped.
    assert_eq!((r.index_rows_dropped, r.journal_records_dropped), (2, 3));
    assert_eq!((s.last_index().unwrap(), s.next_seq()), (4, 7));
    assert_eq!(journal_bytes(&jdir), batch(1, 6, 0));
    // And it continues from there.
    s.append(&[entry(5, 2, batch(7, 2, 3))]).unwrap();
    drop(s);
    let s = open(t.path());
    assert_eq!(
        (s.last_index().unwrap(), s.next_seq(), s.term(5).unwrap()),
        (5, 9, 2)
    );

    // A commit index past what survived cannot start.
    drop(s);
    let mut s = open(t.path());
    s.set_commit(5).unwrap();
    drop(s);
    let mut w = Journal::open(&jdir).unwrap().into_writer(writer_cfg()).unwrap();
    w.truncate_from(8).unwrap();
    drop(w);
    assert!(matches!(
        JournalLogStore::open(t.path(), &[1, 2, 3], writer_cfg(), FlushPolicy::Fdatasync),
        Err(StoreError::Journal(JournalStoreError::CommitBeyondLog {
            commit: 5,
            last: 4
        }))
    ));
}

#[test]
fn a_journal_without_an_index_is_refused_untouched() {
    let t = TempDir::new("standalone");
    let jdir = t.path().join("journal");
    let mut w = Journal::open(&jdir).unwrap().into_writer(writer_cfg()).unwrap();
    for seq in 1..=4 {
        w.append(&rec(seq, 0)).unwrap();
    }
    drop(w);
    assert!(matches!(
        JournalLogStore::open(t.path(), &[1, 2, 3], writer_cfg(), FlushPolicy::None),
        Err(StoreError::Journal(JournalStoreError::Mismatch(_)))
    ));
    assert_eq!(journal_bytes(&jdir), batch(1, 4, 0));
    assert!(!t.path().join("entries.idx").exists());
}

#[test]
fn for_each_record_replays_ranges_and_the_store_can_move_threads() {
    fn send<T: Send>(_: &T) {}
    let t = TempDir::new("replay");
    let mut s = open(t.path());
    fill(&mut s, 8, 1); // records 1..=28
    send(&s);
    let mut seen = Vec::new();
    s.for_each_record(3..20, |r| seen.push(*r)).unwrap();
    assert_eq!(seen, (3..20).map(|q| rec(q, 0)).collect::<Vec<_>>());
    let mut n = 0;
    s.for_each_record(5..5, |_| n += 1).unwrap();
    assert_eq!(n, 0);
    assert!(s.for_each_record(20..30, |_| {}).is_err());
    let s = std::thread::spawn(move || {
        s.for_each_record(1..29, |_| {}).unwrap();
        s
    })
    .join()
    .unwrap();
    assert_eq!(s.next_seq(), 29);
}

// ---- a 3-node cluster of journal-backed logs ----

fn members() -> Vec<MemberConfig> {
    (1..=3)
        .map(|id| MemberConfig {
            id,
            raft: SocketAddr::from(([127, 0, 0, 1], 7300 + id as u16)),
            udp: vec![],
            tcp: vec![],
        })
        .collect()
}

struct Node {
    dir: PathBuf,
    /// Recent-entry cache budget (0: every read is rebuilt from the journal).
    cache_limit: usize,
    log: Option<ReplicatedLog<JournalLogStore>>,
    /// The application's view: every applied record, encoded.
    applied: Vec<u8>,
}

impl Node {
    fn start(id: u64, dir: PathBuf, cache_limit: usize) -> Node {
        let mut n = Node {
            dir,
            cache_limit,
            log: None,
            applied: Vec::new(),
        };
        n.restart(id);
        n
    }

    /// Opens the store from disk; the application replays the journal up to
    /// the committed sequence and Raft starts at the stored commit.
    fn restart(&mut self, id: u64) {
        // The old process is gone before the new one opens the directory.
        self.log = None;
        let (mut store, rec) =
            JournalLogStore::open(&self.dir, &[1, 2, 3], writer_cfg(), FlushPolicy::Msync).unwrap();
        store.set_cache_limit(self.cache_limit);
        self.applied.clear();
        let applied = &mut self.applied;
        store
            .for_each_record(1..rec.committed_seq + 1, |r| {
                let mut b = [0u8; RECORD_LEN];
                encode(&r.as_sequenced(), &mut b);
                applied.extend_from_slice(&b);
            })
            .unwrap();
        let config = ClusterConfig::new(id, members());
        self.log = Some(ReplicatedLog::new(&config, store, rec.commit).unwrap());
    }

    fn log(&self) -> &ReplicatedLog<JournalLogStore> {
        self.log.as_ref().unwrap()
    }

    fn poll(&mut self) {
        let Some(log) = self.log.as_mut() else { return };
        let applied = &mut self.applied;
        let mut apply = |e: CommittedEntry<'_>| applied.extend_from_slice(e.data);
        while log.poll(&mut apply).unwrap() {}
    }
}

fn round(nodes: &mut [Node], tick: bool, cut: Option<u64>) {
    let mut mail = Vec::new();
    for node in nodes.iter_mut() {
        let Some(log) = node.log.as_mut() else { continue };
        if tick {
            log.tick();
        }
        node.poll();
        mail.extend(node.log.as_mut().unwrap().drain_outbox());
    }
    for m in mail {
        if cut == Some(m.from) || cut == Some(m.to) {
            continue;
        }
        if let Some(log) = nodes[m.to as usize - 1].log.as_mut() {
            log.step(m).unwrap();
        }
    }
}

fn elect(nodes: &mut [Node], cut: Option<u64>) -> usize {
    for _ in 0..300 {
        round(nodes, true, cut);
        if let Some(l) = nodes.iter().position(|n| {
            n.log
                .as_ref()
                .is_some_and(|l| l.is_leader() && Some(l.id()) != cut)
        }) {
            for _ in 0..4 {
                round(nodes, true, cut);
            }
            return l;
        }
    }
    panic!("no leader elected");
}

/// The leader proposes `n` records continuing its log, and persists them
/// at once (so the next proposal continues after them).
fn propose(nodes: &mut [Node], l: usize, n: u64, tag: u8) -> u64 {
    let seq = nodes[l].log().store().next_seq();
    let p = nodes[l]
        .log
        .as_mut()
        .unwrap()
        .propose(&batch(seq, n, tag))
        .unwrap();
    nodes[l].poll();
    p.index
}

#[test]
fn three_journal_nodes_commit_survive_restarts_and_converge() {
    three_nodes(peregrine_cluster::journal_store::DEFAULT_CACHE_BYTES);
}

#[test]
fn three_journal_nodes_converge_with_every_read_rebuilt_from_the_journal() {
    three_nodes(0);
}

fn three_nodes(cache_limit: usize) {
    let t = TempDir::new("cluster");
    let mut nodes: Vec<Node> = (1..=3u64)
        .map(|id| Node::start(id, t.path().join(format!("node{id}")), cache_limit))
        .collect();
    let l = elect(&mut nodes, None);
    for k in 0..6 {
        propose(&mut nodes, l, 1 + k % 4, 1);
        round(&mut nodes, false, None);
    }
    for _ in 0..4 {
        round(&mut nodes, false, None);
    }
    let commit = nodes[l].log().commit_index();
    assert!(commit >= 7, "commit {commit}");

    // Kill a follower and reopen it from its directory.
    let f = (l + 1) % 3;
    nodes[f].log = None;
    for _ in 0..3 {
        propose(&mut nodes, l, 3, 2);
        round(&mut nodes, false, None);
    }
    nodes[f].restart(f as u64 + 1);
    for _ in 0..10 {
        round(&mut nodes, true, None);
    }

    // The leader is cut off and proposes entries nobody else gets (an
    // uncommitted suffix), while the other two elect a new leader and
    // commit different records at the same sequences.
    let old_id = nodes[l].log().id();
    let mut lost = Vec::new();
    for _ in 0..3 {
        lost.push(propose(&mut nodes, l, 2, 0xEE));
    }
    let new = elect(&mut nodes, Some(old_id));
    assert_ne!(new, l);
    for _ in 0..3 {
        propose(&mut nodes, new, 4, 3);
        round(&mut nodes, false, Some(old_id));
    }
    // The old leader restarts too, from its directory (the suffix included).
    nodes[l].restart(old_id);
    let has_lost = |dir: &Path| {
        journal_bytes(dir)
            .chunks_exact(RECORD_LEN)
            .any(|r| peregrine_journal::decode_record(r).unwrap().origin.index == 0xEE)
    };
    assert_eq!(
        nodes[l].log().store().last_index().unwrap(),
        *lost.last().unwrap()
    );
    assert!(
        has_lost(nodes[l].log().store().journal_dir()),
        "the suffix is on disk"
    );
    for _ in 0..40 {
        round(&mut nodes, true, None);
    }
    let leader = nodes.iter().position(|n| n.log().is_leader()).unwrap();
    propose(&mut nodes, leader, 2, 4);
    for _ in 0..10 {
        round(&mut nodes, true, None);
    }

    let last = nodes[leader].log().last_index();
    let want = journal_bytes(nodes[leader].log().store().journal_dir());
    assert!(!want.is_empty());
    for n in &nodes {
        assert!(
            !has_lost(n.log().store().journal_dir()),
            "the cut-off leader's suffix is overwritten everywhere"
        );
    }
    for (i, n) in nodes.iter().enumerate() {
        let log = n.log();
        assert_eq!(log.commit_index(), last, "node {i}");
        assert_eq!(log.applied_index(), last, "node {i}");
        let store = log.store();
        assert_eq!(store.committed_seq(), store.next_seq() - 1, "node {i}");
        assert_eq!(journal_bytes(store.journal_dir()), want, "node {i}: same journal");
        assert_eq!(n.applied, want, "node {i}: applied exactly the journal");
        for idx in 1..=last {
            assert_eq!(
                store.term(idx).unwrap(),
                nodes[leader].log().store().term(idx).unwrap()
            );
        }
    }
}
