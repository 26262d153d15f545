#!/usr/bin/env bash
# The sequenced feed end to end, across network namespaces (root).
#
#   pgf-srv: veth pgf0 10.88.0.1/24. The server (match app, journal,
#            [feed] to multicast group 239.77.0.1:31000 out of pgf0 and,
#            unicast, to the lossy relay), its re-request server on
#            10.88.0.1:31001, and the client simulator sending to it on
#            that namespace's loopback at RATE messages/s for DURATION.
#   pgf-cli: veth pgf1 10.88.0.2/24. Three consumers (`peregrine tail
#            --verify --app match`):
#              live   joins the group before the load starts;
#              late   joins the group LATE_S seconds into the load, from
#                     sequence 1 (everything before it by re-request);
#              lossy  takes the unicast copy through `peregrine relay`
#                     (the project's fault injector: LOSS drop, duplicate
#                     and reorder each), recovering every gap by re-request.
#
# The server is stopped after the load (SIGTERM): the feed publishes what is
# left and ends its session. Exit 0 only when the server and all three
# consumers report the same last sequence and the same engine state hash,
# the lossy consumer had gaps and filled them, and every consumer verified
# strict order with no gap and no duplicate. Prints the publisher's lag
# (sequenced -> published) percentiles, each consumer's counters, the
# client's achieved rate, and per-thread CPU of every process over the load.
# Namespaces and processes are removed on exit, also on failure or Ctrl-C.
#
# Environment (all optional): RATE (default 1000000 messages/s, open loop;
# "max": closed loop, as fast as the server acknowledges), DURATION_S (10),
# SESSIONS (4), LOSS (0.01), LATE_S (4), PEREGRINE (binary; default: build
# target/release/peregrine), KEEP=1 keeps the work directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RATE=${RATE:-1000000}
DURATION_S=${DURATION_S:-10}
SESSIONS=${SESSIONS:-4}
LOSS=${LOSS:-0.01}
LATE_S=${LATE_S:-4}
NS_S=pgf-srv
NS_C=pgf-cli
IP_S=10.88.0.1
IP_C=10.88.0.2
GROUP=239.77.0.1
FEED_PORT=31000
REREQ=$IP_S:31001
RELAY=$IP_C:32000
LOSSY_LISTEN=$IP_C:32001
SECRET=feedtest

log() { printf '[feed-test] %s\n' "$*"; }
die() { printf '[feed-test] FAIL: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces)"
command -v ip >/dev/null || die "missing ip (apt-get install iproute2)"

WORK=$(mktemp -d /tmp/feed-test.XXXXXX)
PIDS=()

cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_C" 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n ${PEREGRINE:-} ]]; then
    BIN=$PEREGRINE
else
    log "building peregrine (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin peregrine)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/peregrine
fi

log "namespaces $NS_S ($IP_S) <-> $NS_C ($IP_C)"
ip netns del "$NS_S" 2>/dev/null || true
ip netns del "$NS_C" 2>/dev/null || true
ip netns add "$NS_S"
ip netns add "$NS_C"
ip link add pgf0 netns "$NS_S" type veth peer name pgf1 netns "$NS_C"
for ns in "$NS_S" "$NS_C"; do ip -n "$ns" link set lo up; done
ip -n "$NS_S" addr add "$IP_S/24" dev pgf0
ip -n "$NS_C" addr add "$IP_C/24" dev pgf1
ip -n "$NS_S" link set pgf0 up multicast on
ip -n "$NS_C" link set pgf1 up multicast on
ip -n "$NS_S" route add 224.0.0.0/4 dev pgf0
ip -n "$NS_C" route add 224.0.0.0/4 dev pgf1
# Room for bursts in both namespaces (per-namespace sysctls).
for ns in "$NS_S" "$NS_C"; do
    ip netns exec "$ns" sysctl -qw net.core.rmem_max=67108864 net.core.wmem_max=67108864 || true
done
sysctl -qw net.core.rmem_max=67108864 net.core.wmem_max=67108864 2>/dev/null || true

cat >"$WORK/server.toml" <<EOF
udp = ["127.0.0.1:9000"]
app = "match"
journal = "$WORK/journal"
journal_mode = "async"
counters_file = "$WORK/stats"
idle = "yield"

[feed]
session = "PGFEEDTEST"
destinations = ["$GROUP:$FEED_PORT", "$RELAY"]
interface = "$IP_S"
multicast_ttl = 1
heartbeat_ms = 200
rerequest = "$REREQ"
rerequest_max_count = 1000
rerequest_rate = 0
EOF

tail_cmd() { # name, extra args...
    local name=$1; shift
    ip netns exec "$NS_C" "$BIN" tail --rerequest "$REREQ" --verify --app match --config "$WORK/server.toml" --until-end --quiet \
        --heartbeat-timeout 1s "$@" >"$WORK/$name.log" 2>&1
}

# CPU time (utime + stime, clock ticks) of every thread of the given
# processes, one "tid name ticks" line each, for deltas over the load.
thread_ticks() {
    local pid t line rest comm
    for pid in "$@"; do
        for t in /proc/"$pid"/task/*; do
            line=$(cat "$t/stat" 2>/dev/null) || continue
            rest=${line##*) }
            comm=${line#*(}
            comm=${comm%%)*}
            # shellcheck disable=SC2086
            set -- $rest
            echo "${t##*/} ${comm// /_} $(( ${12} + ${13} ))"
        done
    done
}

log "server"
ip netns exec "$NS_S" "$BIN" serve --config "$WORK/server.toml" --sessions "PG:$SESSIONS:$SECRET" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for _ in $(seq 200); do
    grep -q "peregrine ready" "$WORK/server.log" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "server exited at start"; }
    sleep 0.05
done
grep -q "peregrine ready" "$WORK/server.log" || { cat "$WORK/server.log" >&2; die "server not ready"; }

log "consumers: live (multicast), lossy (unicast via relay, $LOSS faults)"
ip netns exec "$NS_C" "$BIN" relay --listen "$RELAY" --upstream "$LOSSY_LISTEN" --loss "$LOSS" --seed 7 \
    >"$WORK/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
tail_cmd live --feed "$GROUP:$FEED_PORT" --interface "$IP_C" &
LIVE_PID=$!
tail_cmd lossy --listen "$LOSSY_LISTEN" &
LOSSY_PID=$!
# `ip netns exec` runs the command as a child of the subshell: collect the
# real pids for the CPU table by name.
PIDS+=("$LIVE_PID" "$LOSSY_PID")
sleep 0.5

# Wireshark's MoldUDP64 dissector over a sample of the feed (when tshark is
# installed): every packet must decode, none malformed.
CAPTURE_PID=""
if command -v tshark >/dev/null; then
    # Three seconds of capture once it runs (tshark's own stop condition;
    # `timeout` only guards against a hang). tshark creates the file when
    # capturing starts, which can take seconds on a loaded machine: the
    # load waits for it, so the sample is never empty by accident.
    ip netns exec "$NS_C" timeout 60 tshark -q -i pgf1 -a duration:3 -c 20000 -w "$WORK/feed.pcap" -f "udp" \
        >"$WORK/tshark-capture.log" 2>&1 &
    CAPTURE_PID=$!
    for _ in $(seq 300); do
        [[ -s $WORK/feed.pcap ]] && break
        sleep 0.1
    done
    [[ -s $WORK/feed.pcap ]] || { cat "$WORK/tshark-capture.log" >&2; die "tshark did not start capturing within 30 s"; }
fi

if [[ $RATE == max ]]; then
    LOAD_ARGS=(--throughput)
    log "load: as fast as the server acknowledges (closed loop) for ${DURATION_S}s over $SESSIONS sessions"
else
    LOAD_ARGS=(--rate "$RATE")
    log "load: $RATE msgs/s for ${DURATION_S}s over $SESSIONS sessions"
fi
ip netns exec "$NS_S" "$BIN" client --udp 127.0.0.1:9000 --flow orders --sessions "$SESSIONS" --secret "$SECRET" \
    "${LOAD_ARGS[@]}" --duration "${DURATION_S}s" --warmup 0s >"$WORK/client.log" 2>&1 &
CLIENT_PID=$!
PIDS+=("$CLIENT_PID")
tail_pids() { pgrep -f "^$BIN tail" || true; }
sleep 1
thread_ticks "$SERVER_PID" "$CLIENT_PID" "$RELAY_PID" $(tail_pids) >"$WORK/ticks.0"
T0=$(date +%s.%N)
sleep "$((LATE_S - 1))"
log "consumer late joins (from sequence 1)"
tail_cmd late --feed "$GROUP:$FEED_PORT" --interface "$IP_C" --from 1 &
LATE_PID=$!
PIDS+=("$LATE_PID")
sleep "$((DURATION_S - LATE_S - 1))"
thread_ticks "$SERVER_PID" "$CLIENT_PID" "$RELAY_PID" $(tail_pids) >"$WORK/ticks.1"
T1=$(date +%s.%N)
wait "$CLIENT_PID" || { cat "$WORK/client.log" >&2; die "client failed"; }
log "client done"
grep -E "sent|acked|rate|lost" "$WORK/client.log" | head -8 | sed 's/^/    client: /'

log "stopping the server (the feed ends its session)"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || { cat "$WORK/server.log" >&2; die "server exited non-zero"; }
for who in live lossy late; do
    pid_var=${who^^}_PID
    if ! timeout 120 tail --pid="${!pid_var}" -f /dev/null; then die "consumer $who did not finish"; fi
    wait "${!pid_var}" || { cat "$WORK/$who.log" >&2; die "consumer $who failed"; }
done

server_hash=$(grep -o "engine state hash [0-9a-f]*" "$WORK/server.log" | tail -1 | awk '{print $4}')
server_last=$(grep -E "^sequencer:" "$WORK/server.log" | grep -o "next seq [0-9]*" | tail -1 | awk '{print $3 - 1}')
[[ -n $server_hash && -n $server_last ]] || { cat "$WORK/server.log" >&2; die "server printed no hash/sequence"; }
log "server: last sequence $server_last, engine state hash $server_hash"
grep -E "^feed|publisher lag|rerequest" "$WORK/server.log" | sed 's/^/    /' || true
ok=1
for who in live late lossy; do
    h=$(grep -o "engine state hash [0-9a-f]*" "$WORK/$who.log" | tail -1 | awk '{print $4}')
    l=$(grep -o "last sequence [0-9]*" "$WORK/$who.log" | tail -1 | awk '{print $3}')
    log "consumer $who: last sequence ${l:-?}, engine state hash ${h:-?}"
    grep -Ei "gaps|requests|records|duplicates" "$WORK/$who.log" | head -4 | sed 's/^/    /' || true
    if [[ $h != "$server_hash" || $l != "$server_last" ]]; then
        ok=0
        log "  MISMATCH for $who"
    fi
done
lossy_gaps=$(grep -o "gaps recovered [0-9]*" "$WORK/lossy.log" | tail -1 | awk '{print $3}')
[[ ${lossy_gaps:-0} -gt 0 ]] || { ok=0; log "the lossy consumer saw no gap: the fault injector did not bite"; }
grep -E "dropped|forwarded" "$WORK/relay.log" | tail -2 | sed 's/^/    relay: /' || true

log "per-thread CPU over the load (% of one core)"
awk -v secs="$(awk -v a="$T0" -v b="$T1" 'BEGIN { print b - a }')" -v hz="$(getconf CLK_TCK)" '
    NR == FNR { a[$1] = $3; next }
    ($1 in a) { printf "    %5.1f%%  %-8s %s\n", 100 * ($3 - a[$1]) / hz / secs, $1, $2 }
' "$WORK/ticks.0" "$WORK/ticks.1" | sort -rn | head -20

if [[ -n $CAPTURE_PID ]]; then
    wait "$CAPTURE_PID" 2>/dev/null || true
    decode=(tshark -r "$WORK/feed.pcap" -d "udp.port==$FEED_PORT,moldudp64" -d "udp.port==${REREQ##*:},moldudp64"
        -d "udp.port==${RELAY##*:},moldudp64")
    packets=$("${decode[@]}" -Y moldudp64 2>/dev/null | wc -l)
    malformed=$("${decode[@]}" -Y "_ws.malformed" 2>/dev/null | wc -l)
    log "tshark: $packets MoldUDP64 packets decoded from a capture on pgf1, $malformed malformed"
    "${decode[@]}" -Y moldudp64 -T fields -e moldudp64.session -e moldudp64.sequence -e moldudp64.count \
        2>/dev/null | head -3 | sed 's/^/    /' || true
    [[ $packets -gt 0 && $malformed -eq 0 ]] || { ok=0; log "Wireshark's dissector did not decode the feed cleanly"; }
fi
[[ $ok == 1 ]] || die "the consumers do not agree with the server"
log "PASS: server and three consumers agree on sequence $server_last and state hash $server_hash"
