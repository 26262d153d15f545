#!/usr/bin/env bash
# Failover test: a three-node cluster on loopback under client load, its
# leader killed (SIGKILL) again and again, stopped (SIGSTOP, later SIGCONT:
# it comes back deposed and must rejoin as a follower), and followers
# killed; every killed node is restarted on its journal. Reports the
# failover times (kill -> a new leader serving clients) and passes (exit 0)
# only when all of this holds:
#   - every failover finished within MAX_FAILOVER_MS (default 500);
#   - ack=replicated: the client saw every message answered exactly once
#     (none lost, none twice) and every answer it saw is in the final log at
#     the sequence the answer named;
#   - ack=local: the same run, reporting how many acknowledged messages the
#     failovers lost (the trade-off `ack = "local"` makes) instead of failing;
#   - all three nodes end with the same log (same last sequence, same
#     matching-engine state hash after an offline replay of each journal).
# Traffic stays on 127.0.0.1. Everything it starts is killed on exit.
#
# Environment: ACK (replicated | local, default replicated), LEADER_KILLS
# (10), STOPS (3), FOLLOWER_KILLS (3), RATE (msgs/s, 10000), MAX_FAILOVER_MS
# (500), BASE_PORT (19600), KEEP=1 keeps the work dir, QUICK=1 = 2/1/1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ACK=${ACK:-replicated}
if [[ ${QUICK:-0} == 1 ]]; then
    LEADER_KILLS=${LEADER_KILLS:-2}; STOPS=${STOPS:-1}; FOLLOWER_KILLS=${FOLLOWER_KILLS:-1}
fi
LEADER_KILLS=${LEADER_KILLS:-10}
STOPS=${STOPS:-3}
FOLLOWER_KILLS=${FOLLOWER_KILLS:-3}
RATE=${RATE:-10000}
MAX_FAILOVER_MS=${MAX_FAILOVER_MS:-500}
BASE_PORT=${BASE_PORT:-19600}
# The client gives a node up after this much silence (nodes heartbeat
# every 50 ms while they have nothing else to send).
SILENCE_MS=${SILENCE_MS:-250}
SECRET=failover
WORK=$(mktemp -d /tmp/peregrine-failover.XXXXXX)
declare -a PIDS=("" "" "" "")
CLIENT_PID=""
log() { printf '[failover-test] %s\n' "$*"; }
die() { printf '[failover-test] FAIL: %s\n' "$*" >&2; exit 1; }
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}" "$CLIENT_PID"; do
        [[ -n $p ]] && { kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; } || true
    done
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

raft_port() { echo $((BASE_PORT + $1)); }
udp_port() { echo $((BASE_PORT + 10 + $1)); }
for n in 1 2 3; do
    {
        echo "app = \"match\""
        echo "idle = \"backoff\""
        echo "heartbeat_interval_ms = 50"
        echo "journal = \"$WORK/node$n\""
        echo "counters_file = \"$WORK/node$n.stats\""
        echo "[[sessions]]"
        echo "prefix = \"PG\""
        echo "count = 4"
        echo "secret = \"$SECRET\""
        echo "[cluster]"
        echo "node_id = $n"
        echo "ack = \"$ACK\""
        for m in 1 2 3; do
            echo "[[cluster.members]]"
            echo "id = $m"
            echo "raft = \"127.0.0.1:$(raft_port "$m")\""
            echo "udp = [\"127.0.0.1:$(udp_port "$m")\"]"
        done
    } >"$WORK/node$n.toml"
done
FILES=(--file "$WORK/node1.stats" --file "$WORK/node2.stats" --file "$WORK/node3.stats")

start_node() {
    local n=$1 out="$WORK/node$1.log"
    "$BIN" serve --config "$WORK/node$n.toml" >>"$out" 2>&1 &
    PIDS[$n]=$!
    local before
    before=$(grep -c "peregrine ready" "$out" 2>/dev/null || true)
    for _ in $(seq 200); do
        [[ $(grep -c "peregrine ready" "$out" 2>/dev/null || true) -gt ${before:-0} ]] && return 0
        kill -0 "${PIDS[$n]}" 2>/dev/null || { tail -20 "$out" >&2; die "node $n exited at start"; }
        sleep 0.025
    done
    die "node $n not ready"
}

for n in 1 2 3; do : >"$WORK/node$n.log"; start_node "$n"; done
read -r LEADER _ < <("$BIN" cluster wait-leader "${FILES[@]}" --timeout 10s) || die "no leader elected"
log "cluster up, ack=$ACK, leader node $LEADER"

EVENTS=$((LEADER_KILLS + STOPS + FOLLOWER_KILLS))
DURATION=$((EVENTS * 2 + 6))
"$BIN" client --server "127.0.0.1:$(udp_port 1),127.0.0.1:$(udp_port 2),127.0.0.1:$(udp_port 3)" \
    --flow orders --sessions 4 --secret "$SECRET" --batch 2 --rate "$RATE" --duration "${DURATION}s" --warmup 0s \
    --failover-silence-ms "$SILENCE_MS" --answers-file "$WORK/answers" >"$WORK/client.log" 2>&1 &
CLIENT_PID=$!
sleep 1.5

TIMES=()
# Kills (or stops) node $1, waits for a new leader, records the time.
fail_leader() {
    local how=$1 old=$LEADER t0 out ms
    t0=$(date +%s%N)
    kill "-$how" "${PIDS[$old]}"
    out=$("$BIN" cluster wait-leader "${FILES[@]}" --not "$old" --since-ns "$t0" --timeout 5s) \
        || die "no new leader within 5 s after SIG$how of node $old"
    read -r LEADER ms <<<"$out"
    TIMES+=("$ms")
    log "SIG$how leader $old -> leader $LEADER serving after $ms ms"
}

for k in $(seq 1 "$LEADER_KILLS"); do
    fail_leader KILL
    for n in 1 2 3; do
        if ! kill -0 "${PIDS[$n]}" 2>/dev/null; then wait "${PIDS[$n]}" 2>/dev/null || true; start_node "$n"; fi
    done
    sleep 0.8
done
for k in $(seq 1 "$STOPS"); do
    stopped=$LEADER
    fail_leader STOP
    sleep 0.5
    kill -CONT "${PIDS[$stopped]}"
    # The old leader wakes deposed: it must rebuild itself as a follower.
    for _ in $(seq 200); do
        grep -q "rebuilding from the journal as a follower" "$WORK/node$stopped.log" && break
        sleep 0.025
    done
    grep -q "rebuilding from the journal as a follower" "$WORK/node$stopped.log" \
        || die "node $stopped did not step down after SIGCONT"
    log "node $stopped resumed, stepped down and rejoined as a follower"
    sleep 0.8
done
for k in $(seq 1 "$FOLLOWER_KILLS"); do
    f=$(( (LEADER % 3) + 1 ))
    kill -KILL "${PIDS[$f]}"
    wait "${PIDS[$f]}" 2>/dev/null || true
    still=$("$BIN" cluster wait-leader "${FILES[@]}" --timeout 2s | awk '{print $1}') || die "leader lost after a follower kill"
    [[ $still == "$LEADER" ]] || die "killing follower $f moved leadership from $LEADER to $still"
    log "SIGKILL follower $f: leader $LEADER kept serving"
    start_node "$f"
    sleep 0.8
done

log "waiting for the client to finish"
client_rc=0
wait "$CLIENT_PID" || client_rc=$?
CLIENT_PID=""
grep -v "^ " "$WORK/client.log" | grep -v "^Stack" || true
read -r c_sent c_acked c_rejected c_lost c_dup < <(awk '/^sent /{print $2, $4, $6, $8, $10; exit}' "$WORK/client.log")
client_gaps=$(grep -o "gap ms last [0-9.]* max [0-9.]*" "$WORK/client.log" || true)
sleep 1
"$BIN" cluster status "${FILES[@]}" || true
for n in 1 2 3; do kill -TERM "${PIDS[$n]}" 2>/dev/null || true; done
for n in 1 2 3; do wait "${PIDS[$n]}" 2>/dev/null || true; PIDS[$n]=""; done

# Failover times: p50 and max.
read -r P50 MAX < <(printf '%s\n' "${TIMES[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[NR]}')
log "failover times (ms, kill -> new leader serving): ${TIMES[*]}"
log "failover p50 ${P50} ms, max ${MAX} ms over ${#TIMES[@]} failovers"

# Every node holds the same log.
declare -a HASH LAST
for n in 1 2 3; do
    "$BIN" replay "$WORK/node$n/journal" --summary --app match >"$WORK/replay.$n.log" 2>&1 \
        || { cat "$WORK/replay.$n.log" >&2; die "node $n journal does not replay"; }
    HASH[$n]=$(grep -o "engine state hash [0-9a-f]*" "$WORK/replay.$n.log" | awk '{print $4}')
    LAST[$n]=$(grep -o "sequence [0-9]*\.\.=[0-9-]*" "$WORK/replay.$n.log" | head -1 | sed 's/.*=//')
done
log "logs: node1 last ${LAST[1]} hash ${HASH[1]}; node2 last ${LAST[2]} hash ${HASH[2]}; node3 last ${LAST[3]} hash ${HASH[3]}"
[[ ${LAST[1]} == "${LAST[2]}" && ${LAST[2]} == "${LAST[3]}" ]] || die "nodes ended with different logs"
[[ ${HASH[1]} == "${HASH[2]}" && ${HASH[2]} == "${HASH[3]}" ]] || die "nodes ended with different engine states"

# Acknowledged => in the final log at the acknowledged sequence.
check_rc=0
"$BIN" replay "$WORK/node1/journal" --check-answers "$WORK/answers" >"$WORK/check.log" 2>&1 || check_rc=$?
cat "$WORK/check.log" | tail -3
lost=$(grep -o "[0-9]* missing or different" "$WORK/check.log" | awk '{print $1}')
checked=$(grep -o "[0-9]* acknowledged messages checked" "$WORK/check.log" | awk '{print $1}')
if [[ $ACK == replicated ]]; then
    [[ $client_rc == 0 ]] || die "client failed (exit $client_rc)"
    [[ $c_lost == 0 && $c_dup == 0 ]] || die "client saw $c_lost messages never answered and $c_dup answered twice"
    [[ $check_rc == 0 && $lost == 0 ]] || die "$lost acknowledged messages missing from the final log"
    awk -v max="$MAX" -v lim="$MAX_FAILOVER_MS" 'BEGIN { exit !(max < lim) }' \
        || die "slowest failover ${MAX} ms >= ${MAX_FAILOVER_MS} ms"
    log "PASS: ack=replicated, ${#TIMES[@]} failovers (p50 ${P50} ms, max ${MAX} ms; client-side $client_gaps), $c_sent sent, every one answered exactly once ($c_acked acks, $c_rejected engine rejects), $checked answers all in the final log at their sequence; 3 nodes identical (hash ${HASH[1]})"
else
    log "ack=local: $lost of $checked acknowledged messages were lost by the failovers (not in the final log at their acknowledged sequence)"
    awk -v max="$MAX" -v lim="$MAX_FAILOVER_MS" 'BEGIN { exit !(max < lim) }' \
        || die "slowest failover ${MAX} ms >= ${MAX_FAILOVER_MS} ms"
    log "PASS: ack=local, ${#TIMES[@]} failovers (p50 ${P50} ms, max ${MAX} ms; client-side $client_gaps), $c_sent sent, client lost $c_lost duplicates $c_dup; 3 nodes identical (hash ${HASH[1]}); acknowledged-then-lost: $lost of $checked"
fi
