//! Replays every checked-in fuzz input through its entry point on stable:
//! the seeds (straight from `seeds::all()`), `fuzz/corpus/<target>/` (seeds
//! plus what fuzzing kept) and `fuzz/regressions/<target>/` (every crash ever
//! found, minimised). A failure names the file; rerun just that input with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`.
#![forbid(unsafe_code)]

use peregrine_fuzz_entries::{seeds, Entry, TARGETS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn entry(target: &str) -> Entry {
    TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no target {target}"))
}

/// Files directly under `dir` (none if it does not exist), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

/// Runs every input, collecting failures instead of stopping at the first.
fn replay(target: &str, inputs: Vec<(String, Vec<u8>)>) -> usize {
    let f = entry(target);
    let mut failed = Vec::new();
    let n = inputs.len();
    for (name, bytes) in inputs {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(&bytes))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{name}: {msg}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {n} inputs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    n
}

fn replay_dirs(target: &str) {
    let corpus = files(&fuzz_dir().join("corpus").join(target));
    assert!(!corpus.is_empty(), "fuzz/corpus/{target}/ is empty or missing");
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    let inputs = corpus
        .iter()
        .chain(&regressions)
        .map(|p| (p.display().to_string(), std::fs::read(p).expect("readable")))
        .collect();
    replay(target, inputs);
}

fn replay_seeds(target: &str) {
    let inputs: Vec<(String, Vec<u8>)> = seeds::all()
        .into_iter()
        .filter(|(t, _, _)| *t == target)
        .map(|(_, n, b)| (format!("seed {n}"), b))
        .collect();
    assert!(!inputs.is_empty(), "no seeds for {target}");
    replay(target, inputs);
}

macro_rules! target_tests {
    ($($t:ident),*) => {$(
        mod $t {
            #[test]
            fn corpus_and_regressions() {
                super::replay_dirs(stringify!($t));
            }

            #[test]
            fn seeds() {
                super::replay_seeds(stringify!($t));
            }
        }
    )*};
}

target_tests!(
    moldudp64,
    soupbintcp,
    message,
    netio_wire,
    session,
    journal_recovery,
    engine_restore,
    feed
);

/// Every target has a cargo-fuzz binary and a corpus directory, and every
/// cargo-fuzz binary has an entry.
#[test]
fn targets_match_the_cargo_fuzz_crate() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let bins: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "peregrine-fuzz")
        .collect();
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(bins, names);
    for n in names {
        let src = std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{n}.rs")))
            .expect("fuzz target source");
        assert!(
            src.contains(&format!("peregrine_fuzz_entries::{n}(")),
            "{n}.rs must call its entry"
        );
    }
}
