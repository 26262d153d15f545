#!/usr/bin/env bash
# Prepares a bare-metal host for Peregrine's polling threads and, for the
# DPDK backend, its NIC. See docs/BARE-METAL.md for the why.
#
#   scripts/setup-host.sh --dry-run --poll-cores 2-3
#   scripts/setup-host.sh --poll-cores 2-3 --hugepages 1024 --bind 0000:3b:00.0
#
# Steps (each reported; --dry-run changes NOTHING, it only reports what it
# finds and what it would do, then runs `peregrine doctor`, the full
# read-only host check, when the binary is built):
#   1. kernel command line: isolcpus / nohz_full / rcu_nocbs cover the
#      polling cores (checked only: the boot loader is yours to edit);
#   2. hugepages: reserve N pages of the default size, mount hugetlbfs;
#   3. NIC: bind PCI devices to vfio-pci with dpdk-devbind.py (skipped for
#      mlx5 devices, whose DPDK driver works beside the kernel driver);
#   4. IRQ affinity: every movable IRQ to the housekeeping cores, away from
#      the polling cores; irqbalance stopped;
#   5. CPU frequency governor: "performance" on every core.
#
# Options:
#   --dry-run            report only
#   --poll-cores LIST    cores the gateways/sequencer poll on (e.g. 2-3,6)
#   --hugepages N        number of default-size hugepages (default: leave)
#   --bind PCI[,PCI..]   devices to hand to vfio-pci
#   --driver NAME        driver for --bind (default vfio-pci)
#   --governor NAME      CPU governor (default performance)
#   --no-irq             leave IRQ affinity alone
set -euo pipefail

DRY_RUN=0
POLL_CORES=""
HUGEPAGES=""
BIND=""
DRIVER=vfio-pci
GOVERNOR=performance
DO_IRQ=1
WARNINGS=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --dry-run) DRY_RUN=1 ;;
        --poll-cores) POLL_CORES=${2:?--poll-cores needs a list}; shift ;;
        --hugepages) HUGEPAGES=${2:?--hugepages needs a number}; shift ;;
        --bind) BIND=${2:?--bind needs PCI addresses}; shift ;;
        --driver) DRIVER=${2:?--driver needs a name}; shift ;;
        --governor) GOVERNOR=${2:?--governor needs a name}; shift ;;
        --no-irq) DO_IRQ=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "setup-host: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

info() { printf '  %s\n' "$*"; }
ok() { printf '  ok: %s\n' "$*"; }
warn() { printf '  WARN: %s\n' "$*"; WARNINGS=$((WARNINGS + 1)); }
section() { printf '\n== %s\n' "$*"; }

# run CMD...: executes, or in dry-run only prints.
run() {
    if [[ $DRY_RUN -eq 1 ]]; then
        printf '  would run: %s\n' "$*"
    else
        printf '  run: %s\n' "$*"
        "$@"
    fi
}

# write_file PATH VALUE: writes a sysfs/procfs value, or in dry-run prints.
write_file() {
    local path=$1 value=$2
    if [[ $DRY_RUN -eq 1 ]]; then
        printf '  would write %s > %s\n' "$value" "$path"
    elif ! printf '%s\n' "$value" >"$path" 2>/dev/null; then
        warn "could not write $value to $path"
    fi
}

# expand_cpus "0-2,5" -> "0 1 2 5"
expand_cpus() {
    local out=() parts=() part a b i
    IFS=, read -r -a parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part == *-* ]]; then
            a=${part%-*}
            b=${part#*-}
            for ((i = a; i <= b; i++)); do out+=("$i"); done
        elif [[ -n $part ]]; then
            out+=("$part")
        fi
    done
    echo "${out[@]}"
}

# covers "LIST" "CPUS...": true when every cpu of CPUS is in LIST.
covers() {
    local have c
    have=" $(expand_cpus "$1") "
    for c in $2; do
        [[ $have == *" $c "* ]] || return 1
    done
}

NCPU=$(nproc --all)
ALL_CPUS=$(expand_cpus "0-$((NCPU - 1))")
POLL_LIST=$(expand_cpus "$POLL_CORES")
HOUSE_LIST=""
for c in $ALL_CPUS; do
    [[ " $POLL_LIST " == *" $c "* ]] || HOUSE_LIST+="$c "
done
HOUSE_LIST=${HOUSE_LIST% }

if [[ $DRY_RUN -eq 0 && $(id -u) -ne 0 ]]; then
    echo "setup-host: needs root (or use --dry-run)" >&2
    exit 1
fi

echo "setup-host: $NCPU cpus; polling cores: ${POLL_LIST:-<none given>}; housekeeping: ${HOUSE_LIST:-<none>}$([[ $DRY_RUN -eq 1 ]] && echo '; DRY RUN')"
for c in $POLL_LIST; do
    [[ $c -lt $NCPU ]] || { echo "setup-host: core $c does not exist" >&2; exit 2; }
done
if [[ -n $POLL_LIST && -z $HOUSE_LIST ]]; then
    echo "setup-host: leave at least one core for housekeeping" >&2
    exit 2
fi

# ---------------------------------------------------------------- 1. cmdline
section "kernel command line (/proc/cmdline)"
CMDLINE=$(cat /proc/cmdline)
param() { tr ' ' '\n' <<<"$CMDLINE" | sed -n "s/^$1=//p" | tail -1; }
if [[ -z $POLL_LIST ]]; then
    info "no --poll-cores given: only reporting"
fi
for p in isolcpus nohz_full rcu_nocbs; do
    v=$(param "$p")
    # isolcpus may carry flags: isolcpus=managed_irq,domain,2-3
    list=${v##*[a-z_],}
    [[ $list == "$v" && $v == *[a-z]* ]] && list=""
    if [[ -z $v ]]; then
        if [[ -n $POLL_LIST ]]; then warn "$p not set"; else info "$p not set"; fi
    elif [[ -n $POLL_LIST ]] && ! covers "$list" "$POLL_LIST"; then
        warn "$p=$v does not cover polling cores $POLL_CORES"
    else
        ok "$p=$v"
    fi
done
if [[ -n $POLL_LIST ]]; then
    info "suggested boot parameters (edit GRUB_CMDLINE_LINUX, update-grub, reboot):"
    info "  isolcpus=managed_irq,domain,$POLL_CORES nohz_full=$POLL_CORES rcu_nocbs=$POLL_CORES irqaffinity=${HOUSE_LIST// /,}"
fi
if [[ -n $(param intel_iommu) || -n $(param amd_iommu) || -n $(param iommu) ]]; then
    ok "iommu parameters: $(tr ' ' '\n' <<<"$CMDLINE" | grep -E '^(intel_|amd_)?iommu' | tr '\n' ' ')"
else
    info "no iommu= parameter (vfio-pci on Intel usually needs intel_iommu=on iommu=pt)"
fi

# --------------------------------------------------------------- 2. hugepages
section "hugepages"
HP_SIZE_KB=$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo)
HP_DIR=/sys/kernel/mm/hugepages/hugepages-${HP_SIZE_KB}kB
if [[ ! -d $HP_DIR ]]; then
    warn "no hugepage support ($HP_DIR missing)"
else
    cur=$(cat "$HP_DIR/nr_hugepages")
    info "default size ${HP_SIZE_KB} kB, reserved: $cur, free: $(cat "$HP_DIR/free_hugepages")"
    if [[ -n $HUGEPAGES ]]; then
        if [[ $cur -ge $HUGEPAGES ]]; then
            ok "already $cur >= $HUGEPAGES"
        else
            write_file "$HP_DIR/nr_hugepages" "$HUGEPAGES"
            [[ $DRY_RUN -eq 1 ]] || info "now reserved: $(cat "$HP_DIR/nr_hugepages") (fragmented memory may give fewer: reserve at boot with hugepages=N)"
        fi
    fi
    if grep -q '^[^ ]* [^ ]* hugetlbfs ' /proc/mounts; then
        ok "hugetlbfs mounted at $(awk '$3 == "hugetlbfs" {print $2; exit}' /proc/mounts)"
    else
        info "hugetlbfs not mounted (DPDK's --in-memory does not need it)"
        [[ -z $HUGEPAGES ]] || { run mkdir -p /dev/hugepages; run mount -t hugetlbfs nodev /dev/hugepages; }
    fi
fi

# ------------------------------------------------------------------- 3. NIC
section "NIC binding"
DEVBIND=$(command -v dpdk-devbind.py || command -v dpdk-devbind || true)
if [[ -z $DEVBIND ]]; then
    info "dpdk-devbind.py not found (apt-get install dpdk)"
else
    info "network devices ($DEVBIND --status-dev net):"
    "$DEVBIND" --status-dev net 2>&1 | sed 's/^/    /' || true
fi
if [[ -d /sys/kernel/iommu_groups ]] && [[ -n $(ls -A /sys/kernel/iommu_groups 2>/dev/null) ]]; then
    ok "IOMMU groups present (vfio-pci usable)"
else
    info "no IOMMU groups: vfio-pci needs the IOMMU on (or noiommu mode, unsafe)"
fi
if [[ -n $BIND ]]; then
    [[ -n $DEVBIND ]] || { warn "cannot bind without dpdk-devbind.py"; BIND=""; }
    IFS=, read -r -a DEVS <<<"$BIND"
    need_modprobe=1
    for dev in "${DEVS[@]}"; do
        [[ -n $dev ]] || continue
        [[ $dev == *:*:*.* ]] || dev=0000:$dev
        if [[ ! -e /sys/bus/pci/devices/$dev ]]; then
            warn "$dev: no such PCI device"
            continue
        fi
        cur_drv=$(basename "$(readlink -f "/sys/bus/pci/devices/$dev/driver" 2>/dev/null || echo none)")
        if [[ $cur_drv == mlx5_core || $cur_drv == mlx4_core ]]; then
            ok "$dev uses $cur_drv: Mellanox is bifurcated, DPDK drives it beside the kernel driver; not rebinding"
            continue
        fi
        if [[ $cur_drv == "$DRIVER" ]]; then
            ok "$dev already bound to $DRIVER"
            continue
        fi
        for ifc in /sys/bus/pci/devices/"$dev"/net/*; do
            [[ -e $ifc ]] || continue
            name=$(basename "$ifc")
            if [[ $(cat "$ifc/operstate" 2>/dev/null) == up ]]; then
                warn "$dev is interface $name and it is UP: binding takes it away from the kernel"
            fi
        done
        if [[ $need_modprobe -eq 1 ]]; then
            run modprobe "$DRIVER"
            need_modprobe=0
        fi
        info "$dev: $cur_drv -> $DRIVER"
        run "$DEVBIND" --bind="$DRIVER" "$dev"
    done
fi

# ------------------------------------------------------------- 4. IRQ affinity
section "IRQ affinity"
if [[ $DO_IRQ -eq 0 || -z $POLL_LIST ]]; then
    info "skipped (needs --poll-cores; disabled with --no-irq)"
else
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet irqbalance 2>/dev/null; then
        info "irqbalance is running: it would move IRQs back onto polling cores"
        run systemctl stop irqbalance
    else
        ok "irqbalance not running"
    fi
    house=${HOUSE_LIST// /,}
    moved=0
    on_poll=0
    for f in /proc/irq/[0-9]*/smp_affinity_list; do
        [[ -r $f ]] || continue
        cur=$(cat "$f")
        if covers "$house" "$(expand_cpus "$cur")"; then
            continue
        fi
        on_poll=$((on_poll + 1))
        if [[ $DRY_RUN -eq 1 ]]; then
            [[ $on_poll -le 5 ]] && info "would move $(dirname "$f" | xargs basename) ($cur) to $house"
        elif printf '%s\n' "$house" >"$f" 2>/dev/null; then
            moved=$((moved + 1))
        fi
    done
    [[ $DRY_RUN -eq 0 ]] || info "$on_poll IRQs may run on polling cores"
    [[ $DRY_RUN -eq 1 ]] || info "moved $moved of $on_poll IRQs (the rest are per-CPU or managed: use isolcpus=managed_irq)"
    write_file /proc/irq/default_smp_affinity_list "$house"
fi

# ------------------------------------------------------------- 5. governor
section "CPU frequency governor"
shopt -s nullglob
govs=(/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor)
shopt -u nullglob
if [[ ${#govs[@]} -eq 0 ]]; then
    info "no cpufreq interface (VM, or frequency fixed by firmware)"
else
    for g in "${govs[@]}"; do
        cur=$(cat "$g")
        cpu=$(basename "$(dirname "$(dirname "$g")")")
        if [[ $cur == "$GOVERNOR" ]]; then
            continue
        fi
        info "$cpu: $cur"
        write_file "$g" "$GOVERNOR"
    done
    ok "governor target: $GOVERNOR on ${#govs[@]} cpus"
fi

section "summary"
if [[ $WARNINGS -eq 0 ]]; then
    echo "  no warnings"
else
    echo "  $WARNINGS warning(s) above"
fi
[[ $DRY_RUN -eq 0 ]] || echo "  dry run: nothing was changed"

# The full host check (C-states, THP, clocksource, busy polling, socket
# buffers, memlock, vfio, NIC settings...) is `peregrine doctor`; a dry run
# ends with it when the binary is here. PEREGRINE_CONFIG names the config
# the doctor checks against (the one `serve --config` reads).
if [[ $DRY_RUN -eq 1 ]]; then
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    PEREGRINE=${PEREGRINE:-}
    [[ -n $PEREGRINE ]] || for p in "$ROOT/target/release/peregrine" "$(command -v peregrine || true)"; do
        [[ -n $p && -x $p ]] && { PEREGRINE=$p; break; }
    done
    if [[ -n $PEREGRINE ]]; then
        section "peregrine doctor"
        args=()
        [[ -n $POLL_CORES ]] && args+=(--cores "$POLL_CORES")
        [[ -n ${PEREGRINE_CONFIG:-} ]] && args+=(--config "$PEREGRINE_CONFIG")
        "$PEREGRINE" doctor "${args[@]}" || true
    else
        info "build peregrine (cargo build --release) for the full check: peregrine doctor"
    fi
fi
