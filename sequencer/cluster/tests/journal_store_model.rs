//! `JournalLogStore` against `MemLogStore` as the model: random appends
//! (including overwrites of the uncommitted suffix), commits, snapshots
//! taken or installed (matching the log or not), cache limits and reopens
//! must leave both with the same log, and the journal with exactly the
//! records of that log after the snapshot.

use peregrine_cluster::{encode_snapshot_data, Entry, JournalLogStore, LogStore, MemLogStore};
use peregrine_journal::{
    encode, FlushPolicy, Journal, Prealloc, Precreate, SequencedRecord, WriterConfig, HEADER_LEN, RECORD_LEN,
};
use peregrine_wire::SessionRef;
use proptest::prelude::*;
use raft::eraftpb::Snapshot;
use raft::{GetEntriesContext, Storage};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "peregrine-jstore-model-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &Path) -> JournalLogStore {
    let cfg = WriterConfig {
        segment_size: (HEADER_LEN + 4 * RECORD_LEN) as u64,
        prealloc: Prealloc::Fallocate,
        populate: false,
        populate_writable: false,
        precreate: Precreate::Manual,
    };
    JournalLogStore::open(dir, &[1, 2, 3], cfg, FlushPolicy::None)
        .unwrap()
        .0
}

fn records(first_seq: u64, n: u64, tag: u8) -> Vec<u8> {
    let mut out = vec![0u8; n as usize * RECORD_LEN];
    for (k, dst) in out.chunks_exact_mut(RECORD_LEN).enumerate() {
        let seq = first_seq + k as u64;
        let r = SequencedRecord {
            global_seq: seq,
            origin: SessionRef::new(2, tag as u32),
            client_seq: seq,
            gateway_rx_ns: 0,
            sequencer_ns: 0,
            msg: [tag ^ seq as u8; 100],
        };
        encode(&r.as_sequenced(), dst);
    }
    out
}

#[derive(Clone, Debug)]
enum Op {
    /// Append `sizes.len()` entries after discarding up to `back` entries
    /// of the uncommitted suffix.
    Append {
        back: u8,
        sizes: Vec<u8>,
    },
    Commit(u8),
    /// Take a snapshot up to `k` entries past the current one (at most the
    /// commit index).
    TakeSnapshot(u8),
    /// Install a leader's snapshot `ahead` entries past the commit index,
    /// in a new term when `new_term` (so it matches no entry).
    InstallSnapshot {
        ahead: u8,
        new_term: bool,
    },
    CacheLimit(u16),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..4, proptest::collection::vec(0u8..5, 1..4)).prop_map(|(back, sizes)| Op::Append { back, sizes }),
        2 => (0u8..4).prop_map(Op::Commit),
        1 => (0u8..4).prop_map(Op::TakeSnapshot),
        1 => (0u8..4, any::<bool>()).prop_map(|(ahead, new_term)| Op::InstallSnapshot { ahead, new_term }),
        1 => any::<u16>().prop_map(Op::CacheLimit),
        1 => Just(Op::Reopen),
    ]
}

/// Records held by the model's entries below `index` (after its snapshot).
fn seqs_before(model: &MemLogStore, index: u64) -> u64 {
    model
        .stored_entries()
        .iter()
        .take_while(|e| e.index < index)
        .map(|e| (e.data.len() / RECORD_LEN) as u64)
        .sum()
}

fn snapshot(index: u64, term: u64, last_seq: u64) -> Snapshot {
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = index;
    snap.mut_metadata().term = term;
    snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
    snap.data = encode_snapshot_data(last_seq, b"app").into();
    snap
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn behaves_like_the_memory_store(ops in proptest::collection::vec(op(), 1..30)) {
        let t = TempDir::new();
        let mut store = open(&t.0);
        let mut model = MemLogStore::new(&[1, 2, 3]);
        let mut term = 1;
        let mut tag = 0u8;
        // Global sequence of the first record after the model's snapshot.
        let mut base = 1u64;
        for op in ops {
            match op {
                Op::Append { back, sizes } => {
                    let last = model.last_index().unwrap();
                    let commit = model.hard_state().commit;
                    let back = u64::from(back).min(last - commit);
                    let first = last + 1 - back;
                    if back > 0 {
                        term += 1; // a new leader overwrites
                    }
                    tag = tag.wrapping_add(1);
                    let mut seq = base + seqs_before(&model, first);
                    let entries: Vec<Entry> = sizes
                        .iter()
                        .enumerate()
                        .map(|(k, &n)| {
                            let e = Entry {
                                index: first + k as u64,
                                term,
                                data: records(seq, u64::from(n), tag).into(),
                                ..Entry::default()
                            };
                            seq += u64::from(n);
                            e
                        })
                        .collect();
                    store.append(&entries).unwrap();
                    model.append(&entries).unwrap();
                }
                Op::Commit(k) => {
                    let c = (model.hard_state().commit + u64::from(k)).min(model.last_index().unwrap());
                    store.set_commit(c).unwrap();
                    model.set_commit(c).unwrap();
                }
                Op::TakeSnapshot(k) => {
                    let snap_index = model.first_index().unwrap() - 1;
                    let index = (snap_index + u64::from(k)).min(model.hard_state().commit);
                    if index == 0 {
                        continue; // nothing committed yet
                    }
                    let last_seq = base + seqs_before(&model, index + 1) - 1;
                    store.create_snapshot(index, b"app").unwrap();
                    model.apply_snapshot(&snapshot(index, model.term(index).unwrap(), last_seq)).unwrap();
                    base = last_seq + 1;
                }
                Op::InstallSnapshot { ahead, new_term } => {
                    let index = model.hard_state().commit + u64::from(ahead);
                    if index == 0 {
                        continue; // raft never sends an empty snapshot
                    }
                    let held = model.term(index).ok();
                    let (snap_term, last_seq) = match held {
                        Some(t) if !new_term => (t, base + seqs_before(&model, index + 1) - 1),
                        _ => {
                            term += 1;
                            (term, base + seqs_before(&model, u64::MAX) + 7)
                        }
                    };
                    let snap = snapshot(index, snap_term, last_seq);
                    store.apply_snapshot(&snap).unwrap();
                    model.apply_snapshot(&snap).unwrap();
                    base = last_seq + 1;
                }
                Op::CacheLimit(n) => store.set_cache_limit(usize::from(n) * 8),
                Op::Reopen => {
                    drop(store);
                    store = open(&t.0);
                }
            }
            let last = model.last_index().unwrap();
            let first = model.first_index().unwrap();
            prop_assert_eq!(store.last_index().unwrap(), last);
            prop_assert_eq!(store.first_index().unwrap(), first);
            for i in first - 1..=last {
                prop_assert_eq!(store.term(i).unwrap(), model.term(i).unwrap());
            }
            let ctx = || GetEntriesContext::empty(false);
            let got = store.entries(first, last + 1, None, ctx()).unwrap();
            let want = model.entries(first, last + 1, None, ctx()).unwrap();
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!((g.index, g.term, &g.data), (w.index, w.term, &w.data));
            }
            let total = seqs_before(&model, last + 1);
            prop_assert_eq!(store.next_seq(), base + total);
            let commit = model.hard_state().commit;
            prop_assert_eq!(store.hard_state().commit, commit);
            prop_assert_eq!(store.committed_seq(), base + seqs_before(&model, commit + 1) - 1);
            // The journal holds exactly the log's records after the
            // snapshot (and possibly committed history before it).
            let j = Journal::open_read_only(store.journal_dir()).unwrap();
            prop_assert_eq!(j.next_seq(), base + total);
            prop_assert!(j.first_seq() <= base);
            let mut bytes = Vec::new();
            for r in j.range(base..) {
                let mut b = [0u8; RECORD_LEN];
                encode(&r.as_sequenced(), &mut b);
                bytes.extend_from_slice(&b);
            }
            let want_bytes: Vec<u8> = want.iter().flat_map(|e| e.data.to_vec()).collect();
            prop_assert!(bytes == want_bytes);
        }
    }
}
