#!/usr/bin/env bash
# Root integration rig for the DPDK backend over real Ethernet frames.
#
#   ns-a: veth end `va`, NO kernel address; the DPDK server is bound to it
#         (net_af_packet, then net_af_xdp) and owns 198.18.0.1.
#   ns-b: veth end `vb`, 198.18.0.2/15; the UDP client talks to 198.18.0.1
#         through the ns-b kernel, whose ARP request only our DPDK port
#         can answer.
#
# Exit status 0 only when, over every driver, the client got every datagram
# back (exactly once, intact) and ns-b learned our MAC through our ARP reply.
# Namespaces and processes are removed on exit, also on failure or Ctrl-C.
# Only the namespaces created here ever carry traffic.
#
# Environment (all optional):
#   SERVER_CMD   server command; {CONFIG} is replaced by the path of a TOML
#                file with a [dpdk] section. Default: Peregrine itself,
#                "target/release/peregrine serve --dpdk --config {CONFIG}".
#   CLIENT_CMD   client command run in ns-b; {ADDR} -> 198.18.0.1:9000 and
#                {COUNT} -> $COUNT. Default: "peregrine client --udp {ADDR}
#                --rate COUNT --duration 1s ... --verify" (COUNT messages).
#   USE_EXAMPLE  1: test the bare DpdkPort with the dpdk_echo example instead.
#   CONFIG_EXTRA extra TOML appended to the generated config (other sections).
#   READY_PATTERN  text the server prints once serving (default "ready").
#   DRIVERS      "af_packet af_xdp" (default) or a subset.
#   COUNT        datagrams per driver (default 2000).
#   BAD_FRAMES   malformed frames injected from ns-b during the run, which
#                the server must drop and count (default 500; 0 disables).
#   SERVER_LCORE lcore for the DPDK server (default 0).
#   NS_A, NS_B   namespace names (default ns-a, ns-b).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NS_A=${NS_A:-ns-a}
NS_B=${NS_B:-ns-b}
IP_A=198.18.0.1
IP_B=198.18.0.2
UDP_PORT=9000
COUNT=${COUNT:-2000}
BAD_FRAMES=${BAD_FRAMES:-500}
DRIVERS=${DRIVERS:-"af_packet af_xdp"}
SERVER_LCORE=${SERVER_LCORE:-0}
READY_PATTERN_SET=${READY_PATTERN:-}
READY_PATTERN=${READY_PATTERN:-peregrine ready}
CONFIG_EXTRA=${CONFIG_EXTRA:-}

log() { printf '[dpdk-netns] %s\n' "$*"; }
die() { printf '[dpdk-netns] FAIL: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, AF_PACKET/AF_XDP)"
for tool in ip ethtool; do
    command -v "$tool" >/dev/null || die "missing $tool (apt-get install iproute2 ethtool)"
done

WORK=$(mktemp -d /tmp/dpdk-netns.XXXXXX)
SERVER_PID=""

cleanup() {
    local rc=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    ip netns del "$NS_A" 2>/dev/null || true
    ip netns del "$NS_B" 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

# Malformed frames, sent raw on vb while the client runs: truncated IPv4
# header, IHL below 5, UDP length past the packet, non-IPv4 ethertype, and
# IPv4 fragments. Every one must be dropped and counted by the server.
cat >"$WORK/bad_frames.py" <<'PY'
import socket, struct, sys, time
ifname, src_mac, dst_mac, src_ip, dst_ip, port, count = sys.argv[1:8]
count = int(count)
mac = lambda m: bytes.fromhex(m.replace(":", ""))
ip = lambda a: socket.inet_aton(a)
eth = mac(dst_mac) + mac(src_mac)
def ipv4(payload, ihl=5, flags_frag=0, total=None):
    total = 20 + len(payload) if total is None else total
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, flags_frag, 64, 17, 0, ip(src_ip), ip(dst_ip))
    s = sum(struct.unpack("!10H", h))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return h[:10] + struct.pack("!H", ~s & 0xFFFF) + h[12:] + payload
udp = lambda data, length=None: struct.pack("!HHHH", 40000, int(port), 8 + len(data) if length is None else length, 0) + data
body = b"\x00" * 120
frames = [
    eth + b"\x08\x00" + ipv4(udp(body))[:12],              # truncated IPv4 header
    eth + b"\x08\x00" + ipv4(udp(body), ihl=4),            # IHL 4
    eth + b"\x08\x00" + ipv4(udp(body, length=400)),       # UDP length past the packet
    eth + b"\x86\xdd" + b"\x60" + b"\x00" * 60,            # not IPv4
    eth + b"\x08\x00" + ipv4(udp(body), flags_frag=0x2000),  # more-fragments set
]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for i in range(count):
    s.send(frames[i % len(frames)])
    if i % 50 == 49:
        time.sleep(0.01)
PY
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ${USE_EXAMPLE:-0} == 1 ]]; then
    log "building the dpdk_echo example (release)"
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
    (cd "$ROOT" && cargo build --release --quiet -p peregrine-netio --features dpdk --example dpdk_echo)
    EXAMPLE=$CARGO_TARGET_DIR/release/examples/dpdk_echo
    SERVER_CMD=${SERVER_CMD:-"$EXAMPLE serve --config {CONFIG}"}
    CLIENT_CMD=${CLIENT_CMD:-"$EXAMPLE client --server {ADDR} --count {COUNT}"}
    READY_PATTERN=${READY_PATTERN_SET:-ready}
elif [[ -z ${SERVER_CMD:-} || -z ${CLIENT_CMD:-} ]]; then
    # Default: Peregrine itself, the real gateway and sequencer on the DPDK
    # port, and the real UDP client simulator in ns-b, which exits non-zero
    # unless every message was acknowledged once with gap-free global
    # sequence numbers.
    log "building peregrine with DPDK (release)"
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
    (cd "$ROOT" && cargo build --release --quiet --features peregrine-tools/dpdk --bin peregrine)
    BIN=$CARGO_TARGET_DIR/release/peregrine
    SERVER_CMD=${SERVER_CMD:-"$BIN serve --dpdk --config {CONFIG}"}
    CLIENT_CMD=${CLIENT_CMD:-"$BIN client --udp {ADDR} --rate $((COUNT)) --duration 1s --warmup 0s --sessions 2 --secret netns --batch 2 --verify"}
fi

setup_netns() {
    ip netns del "$NS_A" 2>/dev/null || true
    ip netns del "$NS_B" 2>/dev/null || true
    ip netns add "$NS_A"
    ip netns add "$NS_B"
    ip link add va netns "$NS_A" type veth peer name vb netns "$NS_B"
    # No IPv6 chatter, and no kernel address on va: the DPDK app owns IP_A.
    ip netns exec "$NS_A" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$NS_B" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n "$NS_A" link set lo up
    ip -n "$NS_A" link set va up
    ip -n "$NS_B" link set lo up
    ip -n "$NS_B" addr add "$IP_B/15" dev vb
    ip -n "$NS_B" link set vb up
    # veth offloads the sender's UDP checksum (leaves it partial); make the
    # ns-b kernel compute full checksums so our port can verify them.
    ip netns exec "$NS_B" ethtool -K vb tx off >/dev/null
}

# run_driver NAME VDEV
run_driver() {
    local name=$1 vdev=$2
    local cfg=$WORK/$name.toml slog=$WORK/$name.server.log
    setup_netns
    local va_mac
    va_mac=$(ip -n "$NS_A" -o link show va | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
    cat >"$cfg" <<TOML
[dpdk]
eal_args = ["-l", "$SERVER_LCORE", "--no-huge", "-m", "256", "--no-shconf", "--no-pci", "--vdev=$vdev", "--log-level=warning"]
port_id = 0
ip = "$IP_A"
udp_port = $UDP_PORT
burst = 32
$CONFIG_EXTRA
TOML
    # Sessions are top-level keys: they go before the [dpdk] table.
    printf '[[sessions]]\nprefix = "PG"\ncount = 4\nsecret = "netns"\n\n%s\n' "$(cat "$cfg")" >"$cfg.tmp" && mv "$cfg.tmp" "$cfg"
    local server=${SERVER_CMD//\{CONFIG\}/$cfg}
    local client=${CLIENT_CMD//\{ADDR\}/$IP_A:$UDP_PORT}
    client=${client//\{COUNT\}/$COUNT}

    log "[$name] server: $server (va mac $va_mac)"
    # shellcheck disable=SC2086 # the commands are word-split on purpose
    ip netns exec "$NS_A" $server >"$slog" 2>&1 &
    SERVER_PID=$!
    local ok=0
    for _ in $(seq 300); do
        if grep -q -- "$READY_PATTERN" "$slog"; then ok=1; break; fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ $ok -ne 1 ]]; then
        cat "$slog" >&2
        die "[$name] server did not become ready"
    fi

    log "[$name] client: $client (with $BAD_FRAMES malformed frames injected alongside)"
    local vb_mac
    vb_mac=$(ip -n "$NS_B" -o link show vb | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
    ip netns exec "$NS_B" python3 "$WORK/bad_frames.py" vb "$vb_mac" "$va_mac" "$IP_B" "$IP_A" "$UDP_PORT" "$BAD_FRAMES" &
    local inj=$!
    local rc=0
    # shellcheck disable=SC2086
    ip netns exec "$NS_B" $client || rc=$?
    wait "$inj" || die "[$name] malformed-frame injector failed"

    local neigh
    neigh=$(ip -n "$NS_B" neigh show "$IP_A" dev vb)
    log "[$name] ns-b neighbour entry: ${neigh:-<none>}"

    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    sed "s/^/[$name server] /" "$slog"

    [[ $rc -eq 0 ]] || die "[$name] client reported missing/duplicate/corrupt echoes (rc $rc)"
    if [[ $BAD_FRAMES -gt 0 ]]; then
        # Every fifth injected frame is an IPv4 fragment. The af_packet PMD's
        # socket is in a PACKET_FANOUT group, and the kernel holds fragments
        # for such sockets (observed: none of them ever reaches the PMD), so
        # over af_packet only the other four kinds can be counted.
        local expect=$BAD_FRAMES
        [[ $name == af_packet ]] && expect=$((BAD_FRAMES - (BAD_FRAMES + 1) / 5))
        local dropped
        dropped=$(sed -n 's/.*rx not for us \([0-9]*\).*/\1/p' "$slog" | head -1)
        [[ -n $dropped && $dropped -ge $expect ]] \
            || die "[$name] expected >= $expect malformed frames dropped and counted, server says '${dropped:-none}'"
        log "[$name] $dropped malformed frames dropped and counted (>= $expect expected of $BAD_FRAMES injected)"
    fi
    [[ $neigh == *"lladdr $va_mac"* ]] || die "[$name] ns-b did not learn $IP_A -> $va_mac via ARP"
    log "[$name] PASS: client verified every message acknowledged, gap-free; ARP answered by the DPDK port"
}

passed=0
for d in $DRIVERS; do
    case $d in
        af_packet) run_driver af_packet "net_af_packet0,iface=va" ;;
        af_xdp) run_driver af_xdp "net_af_xdp0,iface=va" ;;
        *) die "unknown driver $d" ;;
    esac
    passed=$((passed + 1))
done
log "all $passed driver(s) passed"
