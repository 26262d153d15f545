#!/usr/bin/env bash
# Counts the page faults of the server and of the client simulator over a
# short and a long throughput run (`perf stat -e page-faults`), for UDP and
# TCP. The server is counted from the moment it is ready (start-up
# allocation excluded, logins included), the client over its whole life.
# When the steady state takes no page faults, the short and the long run
# give the same counts.
#
# A measurement, not a test: CI does not run it. Needs `perf` (Debian:
# linux-perf) and a release build (`cargo build --release -p peregrine-tools`).
#
# Usage: scripts/page-faults.sh [SHORT [LONG]]     (default 2s 10s)
# Environment: LOCK=0 serves without --lock-memory; PORT (default 40011).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SHORT=${1:-2s}
LONG=${2:-10s}
PORT=${PORT:-40011}
BIN=${CARGO_TARGET_DIR:-target}/release/peregrine
LOCK_FLAG=--lock-memory
[ "${LOCK:-1}" = 0 ] && LOCK_FLAG=
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "$BIN not built" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT

faults() { awk '/page-faults/ { gsub(",", "", $1); print $1 }' "$1"; }

run() {
    local transport=$1 duration=$2
    "$BIN" serve "--$transport" "127.0.0.1:$PORT" --layout shared --cores 1 $LOCK_FLAG \
        --sessions PG:4:s3cret --counters-file "$WORK/stats" >"$WORK/serve.log" 2>&1 &
    local server=$!
    for _ in $(seq 100); do grep -q ready "$WORK/serve.log" && break; sleep 0.1; done
    grep -q ready "$WORK/serve.log" || { cat "$WORK/serve.log" >&2; exit 1; }
    perf stat -e page-faults -p "$server" -o "$WORK/server.txt" &
    local counter=$!
    sleep 0.2
    perf stat -e page-faults -o "$WORK/client.txt" \
        "$BIN" client "--$transport" "127.0.0.1:$PORT" --core 0 --secret s3cret \
        --throughput --duration "$duration" >"$WORK/client.log" 2>&1
    kill -INT "$counter"; wait "$counter" 2>/dev/null || true
    kill -INT "$server"; wait "$server" 2>/dev/null || true
    printf '%-4s %-6s server %6s  client %6s   %s\n' "$transport" "$duration" \
        "$(faults "$WORK/server.txt")" "$(faults "$WORK/client.txt")" \
        "$(grep -m1 '^sent' "$WORK/client.log")"
}

echo "page faults (server since ready${LOCK_FLAG:+, $LOCK_FLAG}; client whole process)"
for transport in udp tcp; do
    run "$transport" "$SHORT"
    run "$transport" "$LONG"
done
