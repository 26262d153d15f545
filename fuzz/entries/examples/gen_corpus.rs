//! Writes the seed corpora: `fuzz/corpus/<target>/seed-<name>` for every
//! seed in `peregrine_fuzz_entries::seeds`. Files the fuzzer added are left
//! alone; seeds are overwritten.
//!
//! cargo run -p peregrine-fuzz-entries --example gen_corpus
#![forbid(unsafe_code)]

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("corpus");
    let mut n = 0;
    for (target, name, bytes) in peregrine_fuzz_entries::seeds::all() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        n += 1;
    }
    println!("wrote {n} seeds under {}", root.display());
    Ok(())
}
