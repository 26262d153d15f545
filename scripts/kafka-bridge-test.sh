#!/usr/bin/env bash
# Kafka bridge test: a journal of RECORDS (default 1,000,000) sequenced
# messages, published by `peregrine feed` (MoldUDP64 unicast to the bridge +
# re-request server), bridged into a mock Kafka partition by
# `peregrine kafka-bridge`, which is SIGKILLed twice mid-stream and
# restarted. Passes (exit 0) only when all of this holds:
#   - both kills hit a running bridge that had produced records, and each
#     restarted bridge resumed after every record the killed one had seen
#     acknowledged (acks=all: acknowledged records are never lost);
#   - the last bridge stops by itself at sequence RECORDS (exit 0);
#   - `kafka-check --follow --expect RECORDS`: the partition holds exactly
#     the keys 1..=RECORDS at offsets 0..RECORDS-1, in order, each once, and
#     nothing after them. (It follows the partition from offset 0 as the
#     bridges write it, started before them: the mock broker keeps only the
#     newest ~5 MB of a partition, about 25,000 records.)
# Prints each bridge run's throughput. Traffic stays on 127.0.0.1; every
# process it starts is killed on exit.
#
# Environment: PEREGRINE (binary to use; default: build the release binary
# with --features kafka), RECORDS (default 1000000), PORT_BASE (default
# 19570), TIMEOUT (seconds for the whole bridging, default 900), KEEP=1
# keeps the work dir.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECORDS=${RECORDS:-1000000}
PORT_BASE=${PORT_BASE:-19570}
TIMEOUT=${TIMEOUT:-900}
SERVER_PORT=$PORT_BASE
BRIDGE_PORT=$((PORT_BASE + 1))
RR_PORT=$((PORT_BASE + 2))
SECRET=kafka
TOPIC=peregrine
WORK=$(mktemp -d /tmp/peregrine-kafka.XXXXXX)
PIDS=()
log() { printf '[kafka-bridge-test] %s\n' "$*"; }
die() { printf '[kafka-bridge-test] FAIL: %s\n' "$*" >&2; exit 1; }
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 || $rc -ne 0 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n ${PEREGRINE:-} ]]; then
    BIN=$PEREGRINE
else
    log "building peregrine (release, --features kafka)"
    (cd "$ROOT" && cargo build --release --quiet -p peregrine-tools --features kafka)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/peregrine
fi
[[ -x $BIN ]] || die "no peregrine binary at $BIN"

# Waits up to $2 seconds for $1 (a file) to contain $3 (a grep pattern).
wait_for() {
    local file=$1 secs=$2 pattern=$3 i
    for i in $(seq $((secs * 20))); do
        grep -q -- "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# --- 1. A journal of at least RECORDS records: server + client bursts. ---
JOURNAL=$WORK/journal
last=0
round=0
while (( last < RECORDS )); do
    round=$((round + 1))
    (( round <= 60 )) || die "journal still at $last records after $round client runs"
    slog=$WORK/server.$round.log
    "$BIN" serve --udp "127.0.0.1:$SERVER_PORT" --app echo --idle yield --sessions "PG:4:$SECRET" \
        --journal "$JOURNAL" --journal-mode async --counters-file "$WORK/stats" >"$slog" 2>&1 &
    spid=$!
    PIDS+=("$spid")
    wait_for "$slog" 10 "peregrine ready" || { cat "$slog" >&2; die "server not ready"; }
    "$BIN" client --udp "127.0.0.1:$SERVER_PORT" --flow echo --sessions 4 --secret "$SECRET" --throughput \
        --duration 2s --warmup 0s >"$WORK/client.$round.log" 2>&1 || { cat "$WORK/client.$round.log" >&2; die "client failed"; }
    kill -TERM "$spid"
    wait "$spid" || { cat "$slog" >&2; die "server failed"; }
    "$BIN" replay "$JOURNAL" --summary >"$WORK/replay.log" 2>&1 || { cat "$WORK/replay.log" >&2; die "journal unreadable"; }
    last=$(grep -o "sequence [0-9]*\.\.=[0-9-]*" "$WORK/replay.log" | head -1 | sed 's/.*=//')
    [[ $last == "-" ]] && last=0
    log "journal: $last records after client run $round"
done

# --- 2. Kafka (mock, in a process) and the feed publisher. ---
"$BIN" kafka-mock --topic "$TOPIC" --bootstrap-file "$WORK/bootstrap" >"$WORK/kafka-mock.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 200); do [[ -s $WORK/bootstrap ]] && break; sleep 0.05; done
[[ -s $WORK/bootstrap ]] || { cat "$WORK/kafka-mock.log" >&2; die "kafka mock did not start"; }
BROKERS=$(cat "$WORK/bootstrap")
log "kafka mock at $BROKERS, topic $TOPIC"
"$BIN" kafka-check --brokers "$BROKERS" --topic "$TOPIC" --expect "$RECORDS" --follow --timeout "${TIMEOUT}s" \
    >"$WORK/check.log" 2>&1 &
CHECK_PID=$!
PIDS+=("$CHECK_PID")

cat >"$WORK/feed.toml" <<TOML
[feed]
session = "PEREGRINE"
destinations = ["127.0.0.1:$BRIDGE_PORT"]
rerequest = "127.0.0.1:$RR_PORT"
rerequest_rate = 0
heartbeat_ms = 100
TOML

bridge() {
    local n=$1
    "$BIN" --log-format json kafka-bridge --listen "127.0.0.1:$BRIDGE_PORT" --rerequest "127.0.0.1:$RR_PORT" \
        --brokers "$BROKERS" --topic "$TOPIC" --to "$RECORDS" --report-every 100ms \
        >"$WORK/bridge.$n.log" 2>&1 &
    BRIDGE_PID=$!
    PIDS+=("$BRIDGE_PID")
}

# A field of a bridge's latest JSON progress line (empty before its first).
bridge_field() { grep -o "\"$2\":[0-9]*" "$1" 2>/dev/null | tail -1 | sed 's/.*://' || true; }
bridge_next() { bridge_field "$1" next_seq; }

start=$(date +%s.%N)
bridge 1
wait_for "$WORK/bridge.1.log" 30 "kafka bridge resuming" || { cat "$WORK/bridge.1.log" >&2; die "bridge 1 did not start"; }
"$BIN" feed --journal "$JOURNAL" --config "$WORK/feed.toml" --to "$RECORDS" >"$WORK/feed.log" 2>&1 &
PIDS+=("$!")
wait_for "$WORK/feed.log" 30 "feed ready" || { cat "$WORK/feed.log" >&2; die "feed did not start"; }

# --- 3. Two SIGKILLs mid-stream, at 30% and 60% of the records. ---
for k in 1 2; do
    threshold=$((RECORDS * 3 * k / 10))
    deadline=$(( $(date +%s) + TIMEOUT ))
    while :; do
        kill -0 "$BRIDGE_PID" 2>/dev/null || { cat "$WORK/bridge.$k.log" >&2; die "bridge $k exited before it was killed"; }
        nx=$(bridge_next "$WORK/bridge.$k.log")
        (( ${nx:-0} > threshold )) && break
        (( $(date +%s) < deadline )) || die "bridge $k stuck at ${nx:-0}"
        sleep 0.02
    done
    kill -KILL "$BRIDGE_PID"
    wait "$BRIDGE_PID" 2>/dev/null || true
    acked=$(bridge_field "$WORK/bridge.$k.log" acked_seq)
    log "bridge $k SIGKILLed mid-stream (last report: produced up to $((nx - 1)), acknowledged up to $acked); restarting"
    bridge $((k + 1))
    wait_for "$WORK/bridge.$((k + 1)).log" 30 "kafka bridge resuming" \
        || { cat "$WORK/bridge.$((k + 1)).log" >&2; die "bridge $((k + 1)) did not start"; }
    resumed=$(grep -o '"from_seq":[0-9]*' "$WORK/bridge.$((k + 1)).log" | head -1 | sed 's/.*://')
    (( resumed > acked )) || die "bridge $((k + 1)) resumed at $resumed, but bridge $k had seen $acked acknowledged"
    log "bridge $((k + 1)) resumes at sequence $resumed"
done

# --- 4. The last bridge runs to the end by itself. ---
secs=0
while kill -0 "$BRIDGE_PID" 2>/dev/null; do
    sleep 1
    secs=$((secs + 1))
    (( secs < TIMEOUT )) || die "last bridge not done after ${TIMEOUT}s (at $(bridge_next "$WORK/bridge.3.log"))"
done
wait "$BRIDGE_PID" || { tail -20 "$WORK/bridge.3.log" >&2; die "last bridge failed"; }
end=$(date +%s.%N)
for n in 1 2 3; do
    t=$(grep -o "kafka bridge throughput.*" "$WORK/bridge.$n.log" || true)
    r=$(grep -o '"records_per_sec":[0-9]*' "$WORK/bridge.$n.log" | sed 's/.*://' | sort -n | tail -1 || true)
    log "bridge run $n: ${t:-SIGKILLed}; best 100 ms interval ${r:-none} records/s"
done
log "$(awk -v n="$RECORDS" -v a="$start" -v b="$end" 'BEGIN { printf "overall: %d records bridged in %.1f s, two crashes included: %.0f records/s", n, b - a, n / (b - a) }')"

# --- 5. The partition is exactly 1..=RECORDS. ---
wait "$CHECK_PID" || { grep -v '^ ' "$WORK/check.log" >&2; die "partition check failed"; }
grep -v '^ ' "$WORK/check.log"
log "PASS: $RECORDS records, 2 SIGKILLs of the bridge, the partition is exactly 1..=$RECORDS"
