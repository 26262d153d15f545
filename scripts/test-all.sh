#!/usr/bin/env bash
# Runs every test Peregrine has:
#   1. the workspace tests: unit, property (incl. 10,000 random order flows
#      against the reference book), loopback end-to-end over real UDP/TCP
#      sockets, the protocol-document check, and the fuzz corpus replay;
#   2. DPDK on virtual devices (net_ring, unprivileged): the DpdkPort tests
#      and frames -> gateway -> sequencer -> acks;
#   2b. the crash test (scripts/crash-test.sh, CRASH_ROUNDS rounds, 5 here);
#   2c. the cluster failover test (scripts/failover-test.sh; QUICK: 2 leader
#       kills, 1 leader stop, 1 follower kill; FAILOVER_FULL=1 for 10/3/3);
#   2d. as root: the sequenced feed across network namespaces
#       (scripts/feed-test.sh at FEED_RATE, default 100,000 messages/s, for
#       FEED_SECONDS, default 5), then the Kafka bridge (feature `kafka`:
#       its mock-cluster tests and scripts/kafka-bridge-test.sh, 1,000,000
#       records, two SIGKILLs);
#   2e. with PACKAGE_TEST=1 (CI) and as root: the Debian package
#       (scripts/package.sh), installed with dpkg, `peregrine --version`
#       from /usr/bin, removed again;
#   3. as root: the network-namespace rig, Peregrine on a veth end through
#      net_af_packet and net_af_xdp, the client simulator in the other
#      namespace (scripts/dpdk-netns-test.sh).
#
# DPDK (libdpdk-dev) is installed with apt-get when missing and we are root.
# Without it (not root), parts 2 and 3 are skipped and say so; with
# REQUIRE_DPDK=1 (CI) a skip is a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REQUIRE_DPDK=${REQUIRE_DPDK:-0}

log() { printf '\n[test-all] %s\n' "$*"; }

log "workspace tests"
cargo test --workspace --exclude dpdk-sys

log "engine touch census (feature touch-count): the counting itself"
cargo test -p peregrine-engine --features touch-count --lib touch

log "crash test: SIGKILL under load in durable mode, restart, verify the journal (${CRASH_ROUNDS:-5} rounds)"
ROUNDS=${CRASH_ROUNDS:-5} bash scripts/crash-test.sh

log "failover test: a 3-node cluster under load, leaders killed and stopped, followers killed"
if [[ ${FAILOVER_FULL:-0} == 1 ]]; then bash scripts/failover-test.sh; else QUICK=1 bash scripts/failover-test.sh; fi

if [[ $(id -u) -eq 0 ]] && command -v ip >/dev/null; then
    log "feed test: MoldUDP64 multicast across network namespaces, a late and a lossy consumer, re-requests, Wireshark's dissector"
    RATE=${FEED_RATE:-100000} DURATION_S=${FEED_SECONDS:-5} LATE_S=2 bash scripts/feed-test.sh
else
    log "SKIPPED: feed test (needs root and iproute2 for its network namespaces)"
fi

log "Kafka bridge: in-process mock cluster tests, then 1,000,000 records with the bridge SIGKILLed twice"
cargo test -p peregrine-tools --features kafka --test kafka_bridge
bash scripts/kafka-bridge-test.sh

if [[ ${PACKAGE_TEST:-0} == 1 ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v dpkg >/dev/null; then
        log "package: build the .deb, install it, run /usr/bin/peregrine --version, remove it"
        started=$SECONDS
        deb=$(bash scripts/package.sh | tail -n1)
        dpkg -i "$deb" >/dev/null
        version=$(/usr/bin/peregrine --version) || version="(--version failed)"
        dpkg -r peregrine >/dev/null
        [[ $version == "peregrine "* ]] || { echo "unexpected --version output: $version" >&2; exit 1; }
        [[ ! -e /usr/bin/peregrine ]] || { echo "/usr/bin/peregrine left after dpkg -r" >&2; exit 1; }
        log "package ok: $version, $(basename "$deb"), $((SECONDS - started)) s"
    else
        log "SKIPPED: package test (needs root and dpkg)"
    fi
fi

have_dpdk() { pkg-config --exists libdpdk 2>/dev/null; }
if ! have_dpdk && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing DPDK and friends (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libdpdk-dev pkg-config libclang-dev build-essential iproute2 ethtool >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libdpdk-dev pkg-config libclang-dev build-essential iproute2 ethtool >/dev/null; }
fi
if ! have_dpdk; then
    log "SKIPPED: DPDK tests (libdpdk-dev not installed; run as root to install it)"
    [[ $REQUIRE_DPDK == 1 ]] && { echo "REQUIRE_DPDK=1: failing" >&2; exit 1; }
    exit 0
fi

log "DPDK tests on net_ring (unprivileged code paths)"
cargo test -p peregrine-netio --features dpdk
cargo test -p peregrine-tools --features dpdk --test dpdk_ring --test dpdk_ring_bench

if [[ $(id -u) -eq 0 ]]; then
    log "DPDK netns rig: net_af_packet and net_af_xdp on a veth pair"
    bash scripts/dpdk-netns-test.sh
else
    log "SKIPPED: DPDK netns rig (needs root)"
    [[ $REQUIRE_DPDK == 1 ]] && { echo "REQUIRE_DPDK=1: failing" >&2; exit 1; }
fi
log "all tests passed"
