#!/usr/bin/env bash
# Crash test: SIGKILL the server under load in durable mode, again and
# again, restarting it on the same journal each time. Passes (exit 0) only
# when all of this holds:
#   - every message a client saw acknowledged (first execution report or
#     reject carrying a global sequence number) is in the journal at that
#     sequence number, with the same client timestamp and order id;
#   - the journal is one gap-free run of global sequence numbers across all
#     restarts, and each restart continues exactly where the journal ends;
#   - the matching engine's state hash the restarted server reports after
#     replaying the journal equals an independent offline replay of it.
# Traffic stays on 127.0.0.1. Everything it starts is killed on exit.
#
# Environment: ROUNDS (default 20), RATE (msgs/s, default 20000),
# FLUSH (msync | fdatasync, default fdatasync), KEEP=1 keeps the work dir.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-20}
RATE=${RATE:-20000}
FLUSH=${FLUSH:-fdatasync}
PORT=${PORT:-19473}
SECRET=${SECRET:-crash}
WORK=$(mktemp -d /tmp/peregrine-crash.XXXXXX)
SERVER_PID=""
CLIENT_PID=""
log() { printf '[crash-test] %s\n' "$*"; }
die() { printf '[crash-test] FAIL: %s\n' "$*" >&2; exit 1; }
cleanup() {
    local rc=$?
    [[ -n $SERVER_PID ]] && kill -KILL "$SERVER_PID" 2>/dev/null || true
    [[ -n $CLIENT_PID ]] && kill -KILL "$CLIENT_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 || $rc -ne 0 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building peregrine (release)"
(cd "$ROOT" && cargo build --release --quiet --bin peregrine)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/peregrine
JOURNAL=$WORK/journal
expected_next=1

for round in $(seq 1 "$ROUNDS"); do
    slog=$WORK/server.$round.log
    "$BIN" serve --udp "127.0.0.1:$PORT" --app match --idle yield --sessions "PG:4:$SECRET" \
        --journal "$JOURNAL" --journal-mode durable --journal-flush "$FLUSH" \
        --counters-file "$WORK/stats" >"$slog" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        grep -q "peregrine ready" "$slog" && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$slog" >&2; die "round $round: server exited at start"; }
        sleep 0.05
    done
    grep -q "peregrine ready" "$slog" || { cat "$slog" >&2; die "round $round: server not ready"; }
    recovered=$(grep -o "next sequence [0-9]*" "$slog" | head -1 | awk '{print $3}')
    [[ $recovered == "$expected_next" ]] \
        || die "round $round: server resumed at sequence $recovered, journal ended before $expected_next"
    if [[ $round -gt 1 ]]; then
        server_hash=$(grep -o "engine state hash after replay [0-9a-f]*" "$slog" | awk '{print $6}')
        [[ $server_hash == "$offline_hash" ]] \
            || die "round $round: state hash after replay $server_hash != offline replay $offline_hash"
    fi

    "$BIN" client --udp "127.0.0.1:$PORT" --flow orders --sessions 4 --secret "$SECRET" --batch 2 --rate "$RATE" \
        --duration 2s --warmup 0s --answers-file "$WORK/answers.$round" >"$WORK/client.$round.log" 2>&1 &
    CLIENT_PID=$!
    # Kill somewhere between 0.3 s and 1.5 s into the load.
    sleep "0.$((RANDOM % 12 + 3))"
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    wait "$CLIENT_PID" 2>/dev/null || true
    CLIENT_PID=""

    # Acknowledged => journaled; continuity; offline state for the next round.
    "$BIN" replay "$JOURNAL" --summary --app match --check-answers "$WORK/answers.$round" >"$WORK/replay.$round.log" 2>&1 \
        || { cat "$WORK/replay.$round.log" >&2; die "round $round: journal check failed"; }
    offline_hash=$(grep -o "engine state hash [0-9a-f]*" "$WORK/replay.$round.log" | awk '{print $4}')
    last=$(grep -o "sequence [0-9]*\.\.=[0-9-]*" "$WORK/replay.$round.log" | head -1 | sed 's/.*=//')
    [[ $last == "-" ]] && last=0
    (( last + 1 >= expected_next )) || die "round $round: journal shrank (last $last, had $((expected_next - 1)))"
    acked=$(grep -o "[0-9]* acknowledged messages checked" "$WORK/replay.$round.log" | awk '{print $1}')
    log "round $round: killed under load; journal 1..=$last gap-free, $acked acknowledged messages all journaled"
    expected_next=$((last + 1))
done

# One last restart: it must recover everything and report the same state.
slog=$WORK/server.final.log
"$BIN" serve --udp "127.0.0.1:$PORT" --app match --idle yield --journal "$JOURNAL" \
    --sessions "PG:4:$SECRET" --journal-mode durable --counters-file "$WORK/stats" >"$slog" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do grep -q "peregrine ready" "$slog" && break; sleep 0.05; done
recovered=$(grep -o "next sequence [0-9]*" "$slog" | head -1 | awk '{print $3}')
server_hash=$(grep -o "engine state hash after replay [0-9a-f]*" "$slog" | awk '{print $6}')
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
[[ $recovered == "$expected_next" ]] || die "final restart resumed at $recovered, expected $expected_next"
[[ $server_hash == "$offline_hash" ]] || die "final state hash $server_hash != offline $offline_hash"
log "PASS: $ROUNDS SIGKILLs in durable mode; $((expected_next - 1)) messages, gap-free; state hash $server_hash identical after replay"
