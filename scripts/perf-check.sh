#!/usr/bin/env bash
# Runs the headline benchmarks once each (or RUNS times) from a release
# build and checks each same-run figure against its target, one PASS/FAIL
# line per check:
#
#   udp, tcp pingpong   p99.9 vs the same-run raw echo <= 1.25x (p50 ratio
#                       printed alongside)
#   udp throughput      acked msgs/s vs the raw echo's >= 0.95, lost 0,
#                       p99.99 <= 2x the echo's, max <= 10 ms
#   engine-vs-peers     >= 20M ops/s, p99.9 < 1 us or <= 1.25x the same-run
#                       memory floor
#   dpdk-ring           >= 20M msgs/s and <= 100 cycles/msg, with the
#                       cycles by stage (only when DPDK is installed)
#
# A benchmark, not a test: CI does not run it, and its figures mean
# something only on a quiet machine (nothing else building or running).
#
# Usage:
#   scripts/perf-check.sh                 build, run everything, check
#   scripts/perf-check.sh --check DIR     only check the JSON files a
#                                         previous run left in DIR
# Environment:
#   OUT=DIR        where the JSON summaries, logs and SVG latency plots go
#                  (default target/perf-check)
#   DURATION=10s   each bench run's length (baseline and Peregrine each)
#   DPDK=0|1       force the dpdk-ring run off/on (default: on when
#                  pkg-config finds libdpdk)
#   RUNS=N         rounds of every bench (default 1); with more than one,
#                  round K goes to OUT/run-K and the end gives each
#                  check's verdict in every round, for targets that ask
#                  for N consecutive runs
# Each bench's host steal (the share of CPU time the hypervisor gave to
# other guests while it ran) is printed beside the verdicts: a figure
# measured under steal is not a quiet-machine figure. Low steal does not
# prove the host quiet, though: a neighbour sharing the caches or memory
# bandwidth takes no time from this guest and still slows it.
# Exit status: 0 when every check passed, 1 when one failed, 2 on usage
# errors.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=${OUT:-target/perf-check}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-1}
TARGET=${CARGO_TARGET_DIR:-target}

check() {
    python3 - "$1" <<'PY'
import json, os, sys

out = sys.argv[1]
failed = 0

def load(name):
    path = os.path.join(out, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return e

def line(ok, what, value, target):
    global failed
    status = {True: "PASS", False: "FAIL", None: "INFO"}[ok]
    if ok is False:
        failed += 1
    print(f"{status:<5} {what:<46} {value:>14}   {target}")

def ratio(a, b):
    return a / b if b else float("inf")

def missing(what, err):
    line(False, what, "no result", f"({err})")

def pingpong(name, label):
    j = load(name)
    if isinstance(j, Exception):
        return missing(f"{label} pingpong", j)
    p, b = j["rtt_ns"], j.get("baseline_rtt_ns")
    if b is None:
        return missing(f"{label} pingpong", "no baseline in the run")
    r999 = ratio(p["p999"], b["p999"])
    line(r999 <= 1.25, f"{label} pingpong p99.9 vs raw echo",
         f"{r999:.2f}x", f"target <= 1.25x ({p['p999']/1e3:.1f} vs {b['p999']/1e3:.1f} us)")
    r50 = ratio(p["p50"], b["p50"])
    line(None, f"{label} pingpong p50 vs raw echo",
         f"{r50:.2f}x", f"({p['p50']/1e3:.1f} vs {b['p50']/1e3:.1f} us)")

def throughput(name, label):
    j = load(name)
    if isinstance(j, Exception):
        return missing(f"{label} throughput", j)
    p, b = j["rtt_ns"], j.get("baseline_rtt_ns")
    if b is None:
        return missing(f"{label} throughput", "no baseline in the run")
    tp, btp = j["throughput_msgs_per_s"], j["baseline_throughput_msgs_per_s"]
    r = ratio(tp, btp)
    line(r >= 0.95, f"{label} throughput acked vs raw echo",
         f"{r:.2f}", f"target >= 0.95 ({tp/1e6:.2f}M vs {btp/1e6:.2f}M msgs/s)")
    line(j["lost"] == 0, f"{label} throughput lost", f"{j['lost']}", "target 0")
    r9999 = ratio(p["p9999"], b["p9999"])
    line(r9999 <= 2.0, f"{label} throughput p99.99 vs raw echo",
         f"{r9999:.2f}x", f"target <= 2x ({p['p9999']/1e3:.1f} vs {b['p9999']/1e3:.1f} us)")
    line(p["max"] <= 10_000_000, f"{label} throughput max",
         f"{p['max']/1e6:.2f} ms", "target <= 10 ms")
    # Which side bounds the run: rounds whose window was full mean the
    # messages were queued at the server.
    w, bw = j.get("client_waits"), j.get("baseline_client_waits")
    if w and bw and w["rounds"] and bw["rounds"]:
        full = 100 * w["window_full_rounds"] / w["rounds"]
        bfull = 100 * bw["window_full_rounds"] / bw["rounds"]
        line(None, f"{label} throughput client window full", f"{full:.0f}%",
             f"(raw echo {bfull:.0f}%: far above it, the server is the bound)")

def engine(name):
    j = load(name)
    if isinstance(j, Exception):
        return missing("engine", j)
    ops = j["ops_per_s"]
    line(ops >= 20e6, "engine ops/s (median of runs)", f"{ops/1e6:.1f}M", "target >= 20M")
    p999 = j["latency_ns"]["p999"]
    floor = j.get("memory_floor", {}).get("latency_ns", {}).get("p999")
    r = j.get("p999_vs_floor")
    ok = p999 < 1000 or (r is not None and r <= 1.25)
    floor_text = f"floor p99.9 {floor} ns, {r:.2f}x" if r is not None else "no floor"
    line(ok, "engine p99.9 per op", f"{p999} ns",
         f"target < 1000 ns or <= 1.25x the memory floor ({floor_text})")

def dpdk(name):
    j = load(name)
    if isinstance(j, Exception):
        return missing("dpdk-ring throughput", j)
    tp = j["throughput_msgs_per_s"]
    line(tp >= 20e6, "dpdk-ring throughput", f"{tp/1e6:.1f}M", "target >= 20M msgs/s")
    cycles = j["cycles_per_message"]
    line(cycles <= 100, "dpdk-ring cycles per message", f"{cycles:.1f}", "target <= 100")
    st = j.get("stage_cycles_per_message", {})
    parts = ["rx", "parse", "gateway", "sequencer", "reply_build", "tx", "inject"]
    if all(k in st for k in parts):
        line(None, "dpdk-ring stages (cycles/msg)", " + ".join(f"{k} {st[k]}" for k in parts), "inject is the harness")

pingpong("udp-pingpong.json", "udp")
pingpong("tcp-pingpong.json", "tcp")
throughput("udp-throughput.json", "udp")
engine("engine.json")
if os.path.exists(os.path.join(out, "dpdk-ring.json")) or os.path.exists(os.path.join(out, "dpdk-ring.expected")):
    dpdk("dpdk-ring.json")
steal = []
for name in ["udp-pingpong", "tcp-pingpong", "udp-throughput", "engine", "dpdk-ring"]:
    try:
        with open(os.path.join(out, name + ".steal")) as f:
            steal.append(f"{name} {float(f.read()):.1f}%")
    except (OSError, ValueError):
        pass
if steal:
    line(None, "host steal while each bench ran", "", ", ".join(steal))
print(f"\n{'all checks passed' if failed == 0 else f'{failed} check(s) FAILED'} (results in {out})")
sys.exit(1 if failed else 0)
PY
}

if [[ ${1:-} == --check ]]; then
    [[ -n ${2:-} ]] || { echo "usage: $0 --check DIR" >&2; exit 2; }
    check "$2"
    exit $?
elif [[ $# -gt 0 ]]; then
    sed -n '2,/^set /p' "$0" | sed '$d' >&2
    exit 2
fi

command -v python3 >/dev/null || { echo "perf-check needs python3" >&2; exit 2; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive number, not '$RUNS'" >&2; exit 2; }

if [[ -z ${DPDK:-} ]]; then
    if pkg-config --exists libdpdk 2>/dev/null; then DPDK=1; else DPDK=0; fi
fi
features=()
[[ $DPDK == 1 ]] && features=(--features peregrine-tools/dpdk)

echo "[perf-check] release build" >&2
cargo build --release -p peregrine-tools -p peregrine-benches "${features[@]}" || exit 1
PEREGRINE="$TARGET/release/peregrine"

# The host's steal and total CPU time so far, in clock ticks, from the
# first line of /proc/stat (steal is the eighth number).
cpu_ticks() {
    awk '/^cpu /{t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t; exit}' /proc/stat
}

# Runs a command, then writes to DIR/NAME.steal the share of CPU time the
# hypervisor took from this guest while it ran (percent): a run with more
# than a few percent was not on a quiet machine. Returns the command's
# status.
with_steal() {
    local dir=$1 name=$2
    shift 2
    local before after status
    before=$(cpu_ticks)
    "$@"
    status=$?
    after=$(cpu_ticks)
    echo "$before $after" | awk '{d = $4 - $2; printf "%.1f\n", (d > 0 ? 100 * ($3 - $1) / d : 0)}' \
        >"$dir/$name.steal"
    return $status
}

# One bench run into DIR: NAME, then the bench's arguments. Its output goes
# to DIR/NAME.log, its summary to DIR/NAME.json, its latency plot (not for
# dpdk-ring, which measures throughput only) to DIR/NAME.svg.
bench() {
    local dir=$1 name=$2
    shift 2
    local plot=(--plot "$dir/$name.svg")
    [[ $name == dpdk-ring ]] && plot=()
    echo "[perf-check] peregrine bench $* --duration $DURATION" >&2
    with_steal "$dir" "$name" "$PEREGRINE" bench "$@" --duration "$DURATION" \
        --json "$dir/$name.json" "${plot[@]}" >"$dir/$name.log" 2>&1 \
        || echo "[perf-check] $name failed: see $dir/$name.log" >&2
}

# Every headline bench once, into DIR.
run_all() {
    local dir=$1
    mkdir -p "$dir"
    rm -f "$dir"/*.json "$dir"/*.steal "$dir"/dpdk-ring.expected
    bench "$dir" udp-pingpong --transport udp --pingpong
    bench "$dir" tcp-pingpong --transport tcp --pingpong
    bench "$dir" udp-throughput --transport udp --throughput

    echo "[perf-check] engine-vs-peers" >&2
    with_steal "$dir" engine "$TARGET/release/engine-vs-peers" --json "$dir/engine.json" \
        >"$dir/engine.log" 2>&1 \
        || echo "[perf-check] engine-vs-peers failed: see $dir/engine.log" >&2

    if [[ $DPDK == 1 ]]; then
        touch "$dir/dpdk-ring.expected"
        bench "$dir" dpdk-ring --transport dpdk-ring --throughput
    else
        echo "[perf-check] DPDK not found (pkg-config libdpdk): dpdk-ring skipped" >&2
    fi
}

if [[ $RUNS == 1 ]]; then
    run_all "$OUT"
    echo
    check "$OUT"
    exit $?
fi

# Several rounds: each into OUT/run-K with its own verdicts, then one line
# per check with its verdict in every round, in order, so that "in N
# consecutive runs" can be read off.
status=0
for ((k = 1; k <= RUNS; k++)); do
    echo "[perf-check] round $k of $RUNS" >&2
    run_all "$OUT/run-$k"
    echo
    echo "round $k:"
    check "$OUT/run-$k" | tee "$OUT/run-$k/verdicts.txt" || status=1
done
echo
echo "verdicts by round (1..$RUNS):"
verdicts=()
for ((k = 1; k <= RUNS; k++)); do verdicts+=("$OUT/run-$k/verdicts.txt"); done
# A verdict line is the status in 5 columns, a space, then the check's
# name in 46: the name keys the row, the rounds' statuses fill it in order.
awk '/^(PASS|FAIL) / {what = substr($0, 7, 46); if (!(what in row)) order[++n] = what; row[what] = row[what] " " $1}
    END {for (i = 1; i <= n; i++) print order[i] row[order[i]]}' "${verdicts[@]}"
exit $status
