#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 600), one at a
# time, and prints runs and exec/s per target.
#
#   scripts/fuzz.sh [SECONDS]
#
# Stable toolchain only: cargo-fuzz needs -Zsanitizer, so builds run with
# RUSTC_BOOTSTRAP=1. Installs cargo-fuzz if it is missing (~2.5 minutes).
# The corpus each run grows stays in fuzz/corpus/<target>/; a crash leaves
# its input in fuzz/artifacts/<target>/ (minimise it with
# `cargo fuzz tmin <target> <file>`, then copy it to
# fuzz/regressions/<target>/ so `cargo test` replays it).
#
# Environment: CARGO_TARGET_DIR (default /work/target-fuzz), FUZZ_TARGETS
# (space-separated subset), FUZZ_JOBS=N (libFuzzer -fork=N; default: off),
# FUZZ_LOG_DIR (default: a temporary directory).
set -euo pipefail

SECONDS_PER_TARGET="${1:-600}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-fuzz}"
export RUSTC_BOOTSTRAP=1
LOG_DIR="${FUZZ_LOG_DIR:-$(mktemp -d -t peregrine-fuzz.XXXXXX)}"
mkdir -p "$LOG_DIR"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz
fi

if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a TARGETS <<<"$FUZZ_TARGETS"
else
    mapfile -t TARGETS < <(cargo fuzz list)
fi

echo "== building ${#TARGETS[@]} targets"
cargo fuzz build

EXTRA=()
if [ -n "${FUZZ_JOBS:-}" ]; then
    EXTRA+=("-fork=$FUZZ_JOBS")
fi

failed=()
summary=()
for t in "${TARGETS[@]}"; do
    log="$LOG_DIR/$t.log"
    echo "== $t for ${SECONDS_PER_TARGET}s (log: $log)"
    status=ok
    if ! cargo fuzz run "$t" -- -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
        "${EXTRA[@]}" >"$log" 2>&1; then
        status=CRASH
        failed+=("$t")
        grep -E "^==[0-9]+==ERROR|panicked at|Test unit written to" "$log" | head -5 || true
    fi
    # libFuzzer's final stats; fall back to its last status line.
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    eps="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
    if [ -z "$runs" ]; then
        last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
        runs="$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")"
        eps="$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' <<<"$last")"
    fi
    corpus_files="$(find "fuzz/corpus/$t" -type f | wc -l)"
    corpus_size="$(du -sh --apparent-size "fuzz/corpus/$t" | cut -f1)"
    summary+=("$(printf '%-12s %-6s runs=%-12s exec/s=%-8s corpus=%s files, %s' \
        "$t" "$status" "${runs:-?}" "${eps:-?}" "$corpus_files" "$corpus_size")")
done

echo
echo "== summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
