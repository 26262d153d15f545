#!/usr/bin/env bash
# Runs `peregrine serve` on the kernel-socket path under OpenOnload (AMD
# Solarflare / X2 / X3 NICs), with the latency profile plus the spinning
# settings below. Peregrine uses only standard socket calls on that path,
# so Onload accelerates it unchanged.
#
#   scripts/run-onload.sh [serve args...]
#   e.g. scripts/run-onload.sh --config /etc/peregrine/peregrine.toml
#
# Environment:
#   PEREGRINE     path of the binary (default: target/release/peregrine,
#                 else `peregrine` on PATH)
#   ONLOAD_PROFILE  onload profile (default: latency)
#   Any EF_* variable set by the caller wins over the defaults below.
#
# Check acceleration while it runs: `onload_stackdump lots` (a stack per
# process or thread, with our sockets in it), and `onload_stackdump doc`
# for the meaning of every EF_* option.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${PEREGRINE:-} ]]; then
    if [[ -x $ROOT/target/release/peregrine ]]; then
        PEREGRINE=$ROOT/target/release/peregrine
    else
        PEREGRINE=peregrine
    fi
fi
ONLOAD_PROFILE=${ONLOAD_PROFILE:-latency}

if ! command -v onload >/dev/null 2>&1; then
    echo "run-onload: 'onload' not found: install OpenOnload (see docs/BARE-METAL.md)" >&2
    exit 1
fi

# --- spinning -------------------------------------------------------------
# EF_POLL_USEC: how long a blocking call (recv, poll, epoll_wait, ...) busy-
# waits on the Onload stack before going to sleep in the kernel; it also
# sets EF_SPIN_USEC and EF_BUZZ_USEC (lock buzzing). The latency profile sets
# 100000 (100 ms). Our gateways use non-blocking sockets and poll them
# themselves, so every recvmmsg already polls the NIC in user space; this
# still matters for any blocking call and for epoll in the TCP path.
export EF_POLL_USEC=${EF_POLL_USEC:-100000}
# Spin forever instead of sleeping after EF_POLL_USEC (-1): only with a
# dedicated, isolated core per polling thread. Off by default.
# export EF_SPIN_USEC=-1
# Per-API spinning switches (EF_POLL_USEC turns them on; listed so they can
# be turned off selectively, e.g. EF_TCP_SEND_SPIN=0).
export EF_UDP_RECV_SPIN=${EF_UDP_RECV_SPIN:-1}
export EF_UDP_SEND_SPIN=${EF_UDP_SEND_SPIN:-1}
export EF_TCP_RECV_SPIN=${EF_TCP_RECV_SPIN:-1}
export EF_TCP_SEND_SPIN=${EF_TCP_SEND_SPIN:-1}
export EF_EPOLL_SPIN=${EF_EPOLL_SPIN:-1}
export EF_POLL_SPIN=${EF_POLL_SPIN:-1}
export EF_SELECT_SPIN=${EF_SELECT_SPIN:-1}
# Interrupts: with spinning Onload defaults to heuristics that enable
# interrupts when a thread stops spinning; EF_INT_DRIVEN=1 keeps the stack
# interrupt-driven as a back-stop, which avoids outliers when a spinning
# thread is descheduled (pair it with NIC interrupt moderation ~100 us).
export EF_INT_DRIVEN=${EF_INT_DRIVEN:-1}

# --- stacks ---------------------------------------------------------------
# One Onload stack per thread: each gateway thread polls only its own
# sockets and never contends for another thread's stack lock.
export EF_STACK_PER_THREAD=${EF_STACK_PER_THREAD:-1}
# Fail loudly instead of silently falling back to kernel sockets when an
# accelerated stack cannot be created (e.g. interface not Onload-capable).
export EF_NO_FAIL=${EF_NO_FAIL:-0}

# --- transmit -------------------------------------------------------------
# CTPIO (X2/X3 NICs): the CPU writes small frames straight to the NIC's
# transmit path instead of via a DMA descriptor fetch. The latency profile
# uses store-and-forward mode; the latency-best profile uses cut-through
# (EF_CTPIO_MODE=ct, 10G only). Ignored on NICs without CTPIO.
export EF_CTPIO=${EF_CTPIO:-1}

echo "run-onload: onload --profile=$ONLOAD_PROFILE $PEREGRINE serve $*" >&2
exec onload --profile="$ONLOAD_PROFILE" "$PEREGRINE" serve "$@"
