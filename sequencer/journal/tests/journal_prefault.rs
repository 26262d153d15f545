//! Appends into a segment mapped with `populate_writable` take no page
//! faults; without it, every new page of the mapping faults on its first
//! write. Counted with the calling thread's minor-fault counter.
#![forbid(unsafe_code)]

use peregrine_journal::{Journal, Prealloc, Precreate, SequencedRecord, WriterConfig};
use peregrine_wire::SessionRef;

/// Minor page faults of the calling thread so far (field 10 of
/// `/proc/thread-self/stat`, counted after the parenthesised name).
fn thread_minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    // Fields from the 3rd on: state, ppid, pgrp, session, tty, tpgid,
    // flags, minflt.
    after_name.split(' ').nth(7).unwrap().parse().unwrap()
}

/// Faults taken by this thread while appending `n` records to a fresh
/// journal.
fn faults_appending(populate_writable: bool, n: u64) -> u64 {
    let dir = std::env::temp_dir().join(format!(
        "peregrine-journal-prefault-{populate_writable}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut w = Journal::open(&dir)
        .unwrap()
        .into_writer(WriterConfig {
            segment_size: 4 << 20,
            prealloc: Prealloc::Fallocate,
            populate: true,
            populate_writable,
            precreate: Precreate::Manual,
        })
        .unwrap();
    let rec = |seq| SequencedRecord {
        global_seq: seq,
        origin: SessionRef::new(0, 1),
        client_seq: seq,
        gateway_rx_ns: 0,
        sequencer_ns: 0,
        msg: [seq as u8; 100],
    };
    let before = thread_minor_faults();
    for seq in 1..=n {
        w.append(&rec(seq)).unwrap();
    }
    let faults = thread_minor_faults() - before;
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
    faults
}

#[test]
fn a_writable_prefaulted_segment_takes_no_faults_on_append() {
    // 2,000 records of 144 bytes: 288,000 bytes, 71 pages.
    let cold = faults_appending(false, 2_000);
    let warm = faults_appending(true, 2_000);
    assert!(cold >= 60, "without prefaulting, each page faults once: {cold}");
    assert!(warm <= 5, "prefaulted writable: {warm} faults");
}
