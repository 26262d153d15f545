//! The individual checks: each reads the host, compares it with what the
//! configuration needs, and says PASS, WARN or FAIL with the exact fix.
//!
//! FAIL is for what breaks the deployment or makes its latency figures
//! meaningless (a slow clocksource, DPDK without hugepages); WARN is for
//! what costs tail latency or headroom (jitter from unisolated cores,
//! interrupts on polling cores, small socket buffers).

use super::host::{cmdline_cpus, cmdline_value, format_cpu_list, parse_cpu_list, Host};
use super::{Finding, Needs};
use std::collections::BTreeSet;

/// Runs every check that applies to `needs` on `host`, in a fixed order.
pub fn all(host: &dyn Host, needs: &Needs) -> Vec<Finding> {
    let cmdline = host.read("/proc/cmdline").unwrap_or_default();
    let mut out = Vec::new();
    out.push(pinned_cores(host, needs));
    for (param, why) in [
        (
            "isolcpus",
            "keeps the scheduler's other tasks off the polling cores",
        ),
        ("nohz_full", "stops the timer tick on the polling cores"),
        ("rcu_nocbs", "moves RCU callbacks off the polling cores"),
    ] {
        out.extend(isolation(&cmdline, param, why, needs));
    }
    out.extend(governor(host, needs));
    out.push(cstates(host, &cmdline));
    out.push(transparent_hugepages(host));
    out.push(clocksource(host));
    out.extend(irq_affinity(host, needs));
    if needs.kernel_sockets {
        out.push(busy_poll(host));
        out.extend(socket_buffers(host, needs));
    }
    if let Some(d) = &needs.dpdk {
        out.push(memlock(host));
        if d.hugepages {
            out.push(hugepages(host));
        }
        if d.pci {
            out.push(vfio(host));
        }
    }
    for iface in &needs.ifaces {
        out.extend(nic(host, iface));
    }
    out
}

fn cores_set(needs: &Needs) -> BTreeSet<usize> {
    needs.cores.iter().copied().collect()
}

/// The CPUs this process may run on, from `Cpus_allowed_list` in
/// `/proc/self/status` (the same affinity mask the server checks its cores
/// against, and with the machine's cores from
/// `/sys/devices/system/cpu/present`, the same check); `None` when it
/// cannot be read.
fn allowed_cpus(host: &dyn Host) -> Option<Vec<usize>> {
    let status = host.read("/proc/self/status")?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    Some(parse_cpu_list(list)?.into_iter().collect())
}

fn pinned_cores(host: &dyn Host, needs: &Needs) -> Finding {
    if needs.cores.is_empty() {
        return Finding::warn(
            "cores",
            "no polling cores configured: the threads float between cores".into(),
            "set `cores = [2]` (shared layout) or `cores = [2, 3, 4]` (dedicated: sequencer, then gateways) in the config, on cores you isolate",
        );
    }
    let allowed = allowed_cpus(host).unwrap_or_default();
    let present: Vec<usize> = host
        .read("/sys/devices/system/cpu/present")
        .and_then(|s| parse_cpu_list(&s))
        .map(|set| set.into_iter().collect())
        .unwrap_or_default();
    match crate::pinning::check_cores_in(&needs.cores, &allowed, &present) {
        Ok(()) => Finding::pass(
            "cores",
            format!("polling on cores {}", format_cpu_list(&cores_set(needs))),
        ),
        Err(e) => Finding::fail(
            "cores",
            format!("{e}: the server would refuse to start"),
            "configure cores inside the CPU set, or widen it (taskset -c, systemd CPUAffinity=, the cgroup's cpuset.cpus); run doctor under the same affinity as the server",
        ),
    }
}

fn isolation(cmdline: &str, param: &str, why: &str, needs: &Needs) -> Option<Finding> {
    let want = cores_set(needs);
    if want.is_empty() {
        return None;
    }
    let have = cmdline_cpus(cmdline, param);
    let missing: BTreeSet<usize> = want.difference(&have).copied().collect();
    let check = param;
    Some(if missing.is_empty() {
        Finding::pass(check, format!("{param} covers cores {}", format_cpu_list(&want)))
    } else {
        let all: BTreeSet<usize> = have.union(&want).copied().collect();
        let value = if param == "isolcpus" {
            format!("managed_irq,domain,{}", format_cpu_list(&all))
        } else {
            format_cpu_list(&all)
        };
        Finding::warn(
            check,
            format!(
                "{param} does not cover polling core(s) {} ({why})",
                format_cpu_list(&missing)
            ),
            &format!(
                "add `{param}={value}` to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub, reboot"
            ),
        )
    })
}

fn governor(host: &dyn Host, needs: &Needs) -> Vec<Finding> {
    let mut slow = Vec::new();
    let mut seen = false;
    for &c in &needs.cores {
        let path = format!("/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor");
        if let Some(g) = host.read(&path) {
            seen = true;
            if g.trim() != "performance" {
                slow.push(format!("cpu{c}: {}", g.trim()));
            }
        }
    }
    if needs.cores.is_empty() {
        return Vec::new();
    }
    vec![if !seen {
        Finding::pass(
            "governor",
            "no cpufreq on the polling cores (fixed frequency, or a VM)".into(),
        )
    } else if slow.is_empty() {
        Finding::pass("governor", "performance on every polling core".into())
    } else {
        Finding::warn(
            "governor",
            format!("frequency scaling on polling cores: {}", slow.join(", ")),
            "cpupower frequency-set -g performance (or echo performance > /sys/devices/system/cpu/cpuN/cpufreq/scaling_governor)",
        )
    }]
}

fn cstates(host: &dyn Host, cmdline: &str) -> Finding {
    let limited_by_cmdline = cmdline_value(cmdline, "idle") == Some("poll")
        || cmdline_value(cmdline, "intel_idle.max_cstate").is_some_and(|v| v == "0" || v == "1")
        || cmdline_value(cmdline, "processor.max_cstate").is_some_and(|v| v == "0" || v == "1");
    let intel = host
        .read("/sys/module/intel_idle/parameters/max_cstate")
        .and_then(|v| v.trim().parse::<u32>().ok());
    match intel {
        _ if limited_by_cmdline => Finding::pass("cstates", "deep C-states disabled on the command line".into()),
        Some(n) if n <= 1 => Finding::pass("cstates", format!("intel_idle max_cstate {n}")),
        Some(n) => Finding::warn(
            "cstates",
            format!("intel_idle allows C-states up to {n}: waking from them costs tens of µs"),
            "add `intel_idle.max_cstate=1 processor.max_cstate=1` to the kernel command line (polling cores never idle, but their siblings and the housekeeping cores do)",
        ),
        None => Finding::pass("cstates", "no intel_idle driver (C-states managed elsewhere)".into()),
    }
}

fn transparent_hugepages(host: &dyn Host) -> Finding {
    let Some(v) = host.read("/sys/kernel/mm/transparent_hugepage/enabled") else {
        return Finding::pass("thp", "transparent hugepages not built in".into());
    };
    if v.contains("[always]") {
        Finding::warn(
            "thp",
            "transparent hugepages are [always]: khugepaged compaction stalls land on the hot path".into(),
            "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (or transparent_hugepage=madvise on the command line)",
        )
    } else {
        Finding::pass("thp", format!("transparent hugepages: {}", v.trim()))
    }
}

fn clocksource(host: &dyn Host) -> Finding {
    let cs = host
        .read("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .map(|s| s.trim().to_string());
    match cs.as_deref() {
        Some("tsc") => Finding::pass("clocksource", "tsc".into()),
        Some(other) => Finding::fail(
            "clocksource",
            format!("clocksource is {other}: every clock read is a slow path, and every timestamp costs"),
            "add `clocksource=tsc tsc=reliable` to the kernel command line (check dmesg for why tsc was rejected)",
        ),
        None => Finding::warn(
            "clocksource",
            "cannot read the current clocksource".into(),
            "check /sys/devices/system/clocksource/clocksource0/current_clocksource",
        ),
    }
}

fn irq_affinity(host: &dyn Host, needs: &Needs) -> Option<Finding> {
    let polling = cores_set(needs);
    if polling.is_empty() {
        return None;
    }
    let mut on_polling = Vec::new();
    for irq in host.list("/proc/irq") {
        if !irq.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some(list) = host.read(&format!("/proc/irq/{irq}/smp_affinity_list")) else {
            continue;
        };
        if parse_cpu_list(&list).is_some_and(|c| !c.is_disjoint(&polling)) {
            on_polling.push(irq);
        }
    }
    Some(if on_polling.is_empty() {
        Finding::pass("irq_affinity", "no IRQ may run on a polling core".into())
    } else {
        let shown: Vec<&str> = on_polling.iter().take(8).map(String::as_str).collect();
        let more = on_polling.len().saturating_sub(shown.len());
        Finding::warn(
            "irq_affinity",
            format!(
                "{} IRQ(s) may run on polling cores {}: {}{}",
                on_polling.len(),
                format_cpu_list(&polling),
                shown.join(" "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            ),
            "stop irqbalance and move every IRQ to the housekeeping cores: scripts/setup-host.sh --poll-cores LIST (or echo HOUSEKEEPING > /proc/irq/N/smp_affinity_list; irqaffinity=HOUSEKEEPING on the command line)",
        )
    })
}

fn read_u64(host: &dyn Host, path: &str) -> Option<u64> {
    host.read(path).and_then(|s| s.trim().parse().ok())
}

fn busy_poll(host: &dyn Host) -> Finding {
    let poll = read_u64(host, "/proc/sys/net/core/busy_poll").unwrap_or(0);
    let read = read_u64(host, "/proc/sys/net/core/busy_read").unwrap_or(0);
    if poll > 0 && read > 0 {
        Finding::pass(
            "busy_poll",
            format!("net.core.busy_poll {poll} µs, busy_read {read} µs"),
        )
    } else {
        Finding::warn(
            "busy_poll",
            format!("net.core.busy_poll {poll}, busy_read {read}: the kernel waits for interrupts before our non-blocking reads see a packet"),
            "sysctl -w net.core.busy_poll=50 net.core.busy_read=50 (persist in /etc/sysctl.d/; needs a NIC driver with busy-poll support, none on loopback)",
        )
    }
}

fn socket_buffers(host: &dyn Host, needs: &Needs) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, sysctl, want) in [
        ("rmem_max", "rmem_max", needs.recv_buffer),
        ("wmem_max", "wmem_max", needs.send_buffer),
    ] {
        let Some(max) = read_u64(host, &format!("/proc/sys/net/core/{sysctl}")) else {
            continue;
        };
        out.push(if max >= want as u64 {
            Finding::pass(name, format!("net.core.{sysctl} {max} ≥ configured {want}"))
        } else if needs.root {
            Finding::pass(
                name,
                format!("net.core.{sysctl} {max} < configured {want}, but running as root the server forces the size (SO_RCVBUFFORCE/SO_SNDBUFFORCE)"),
            )
        } else {
            Finding::warn(
                name,
                format!("net.core.{sysctl} {max} < configured {want}: the kernel silently caps the socket buffer, and bursts overflow it"),
                &format!("sysctl -w net.core.{sysctl}={want} (persist in /etc/sysctl.d/)"),
            )
        });
    }
    out
}

fn memlock(host: &dyn Host) -> Finding {
    let line = host.read("/proc/self/limits").and_then(|l| {
        l.lines()
            .find(|l| l.starts_with("Max locked memory"))
            .map(str::to_string)
    });
    let soft = line
        .as_deref()
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_string));
    match soft.as_deref() {
        Some("unlimited") => Finding::pass("memlock", "locked memory unlimited".into()),
        Some(n) => Finding::warn(
            "memlock",
            format!("locked memory limited to {n} bytes: DPDK mempools and pinned pages may not fit"),
            "LimitMEMLOCK=infinity in the systemd unit (or `ulimit -l unlimited`; /etc/security/limits.conf memlock unlimited)",
        ),
        None => Finding::warn(
            "memlock",
            "cannot read the locked-memory limit".into(),
            "check `ulimit -l`",
        ),
    }
}

fn hugepages(host: &dyn Host) -> Finding {
    let total = host.read("/proc/meminfo").and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("HugePages_Total:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
    });
    match total {
        Some(n) if n > 0 => Finding::pass("hugepages", format!("{n} hugepages reserved")),
        _ => Finding::fail(
            "hugepages",
            "no hugepages reserved, and the DPDK EAL arguments do not say --no-huge".into(),
            "echo 1024 > /proc/sys/vm/nr_hugepages (or scripts/setup-host.sh --hugepages 1024; hugepages=1024 on the command line)",
        ),
    }
}

fn vfio(host: &dyn Host) -> Finding {
    if host.exists("/sys/module/vfio_pci") || host.exists("/dev/vfio") {
        Finding::pass("vfio", "vfio-pci loaded".into())
    } else {
        Finding::warn(
            "vfio",
            "vfio-pci is not loaded: Intel and Solarflare NICs cannot be handed to DPDK (Mellanox mlx5 does not need it)".into(),
            "modprobe vfio-pci, enable the IOMMU (intel_iommu=on iommu=pt), then scripts/setup-host.sh --bind PCI_ADDRESS",
        )
    }
}

/// `key: value` lines of ethtool's output, in order of appearance (the
/// "Pre-set maximums" block of `-g` comes before "Current").
fn ethtool_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn nic(host: &dyn Host, iface: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let check = |what: &str| format!("nic {iface} {what}");
    match host.run("ethtool", &["-g", iface]) {
        None => out.push(Finding::warn(
            &check("rings"),
            "ethtool -g gave nothing (no ethtool, or the driver does not report rings)".into(),
            "apt-get install ethtool; check the interface name",
        )),
        Some(text) => {
            let v = ethtool_values(&text);
            let rx: Vec<u64> = v
                .iter()
                .filter(|(k, _)| k == "RX")
                .filter_map(|(_, x)| x.parse().ok())
                .collect();
            out.push(match rx[..] {
                [max, cur, ..] if cur < max => Finding::warn(
                    &check("rings"),
                    format!(
                        "RX ring {cur} of a possible {max}: a burst overflows it before the poller drains it"
                    ),
                    &format!("ethtool -G {iface} rx {max} tx {max}"),
                ),
                [_, cur, ..] => Finding::pass(&check("rings"), format!("RX ring {cur}, the maximum")),
                _ => Finding::pass(&check("rings"), "ring sizes not reported".into()),
            });
        }
    }
    if let Some(text) = host.run("ethtool", &["-c", iface]) {
        let v = ethtool_values(&text);
        let get = |k: &str| v.iter().find(|(key, _)| key == k).map(|(_, x)| x.as_str());
        let adaptive = get("Adaptive RX").is_some_and(|x| x.starts_with("on"));
        let usecs = get("rx-usecs").and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        out.push(if adaptive || usecs > 0 {
            Finding::warn(
                &check("coalescing"),
                format!(
                    "interrupt coalescing holds packets (adaptive rx {}, rx-usecs {usecs})",
                    if adaptive { "on" } else { "off" }
                ),
                &format!("ethtool -C {iface} adaptive-rx off rx-usecs 0"),
            )
        } else {
            Finding::pass(&check("coalescing"), "no receive coalescing".into())
        });
    }
    if let Some(text) = host.run("ethtool", &["-k", iface]) {
        let v = ethtool_values(&text);
        let on: Vec<&str> = ["generic-receive-offload", "large-receive-offload"]
            .into_iter()
            .filter(|k| v.iter().any(|(key, x)| key == k && x.starts_with("on")))
            .collect();
        out.push(if on.is_empty() {
            Finding::pass(&check("offloads"), "GRO and LRO off".into())
        } else {
            Finding::warn(
                &check("offloads"),
                format!(
                    "{} on: the kernel batches packets before our reads see them",
                    on.join(", ")
                ),
                &format!("ethtool -K {iface} gro off lro off"),
            )
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Dpdk, Needs, Status};
    use super::*;
    use crate::doctor::host::FakeHost;

    fn needs() -> Needs {
        Needs {
            cores: vec![2, 3],
            kernel_sockets: true,
            recv_buffer: 8 << 20,
            send_buffer: 8 << 20,
            root: false,
            dpdk: None,
            ifaces: Vec::new(),
        }
    }

    fn tuned() -> FakeHost {
        FakeHost::default()
            .file(
                "/proc/cmdline",
                "ro isolcpus=managed_irq,domain,2-3 nohz_full=2-3 rcu_nocbs=2-3 intel_idle.max_cstate=1",
            )
            .file(
                "/sys/devices/system/cpu/cpu2/cpufreq/scaling_governor",
                "performance\n",
            )
            .file(
                "/sys/devices/system/cpu/cpu3/cpufreq/scaling_governor",
                "performance\n",
            )
            .file(
                "/sys/kernel/mm/transparent_hugepage/enabled",
                "always [madvise] never\n",
            )
            .file(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
                "tsc\n",
            )
            .file("/proc/irq/24/smp_affinity_list", "0-1\n")
            .file("/proc/sys/net/core/busy_poll", "50\n")
            .file("/proc/sys/net/core/busy_read", "50\n")
            .file("/proc/sys/net/core/rmem_max", "16777216\n")
            .file("/proc/sys/net/core/wmem_max", "16777216\n")
    }

    fn status_of(f: &[Finding], check: &str) -> Status {
        f.iter()
            .find(|x| x.check == check)
            .unwrap_or_else(|| panic!("no finding {check} in {f:?}"))
            .status
    }

    #[test]
    fn a_tuned_host_passes_every_check() {
        let f = all(&tuned(), &needs());
        assert!(f.iter().all(|x| x.status == Status::Pass), "{f:#?}");
        assert_eq!(f.len(), 12, "{f:#?}");
    }

    #[test]
    fn an_untuned_host_gets_a_finding_and_a_fix_for_each_problem() {
        let host = FakeHost::default()
            .file("/proc/cmdline", "ro quiet isolcpus=3")
            .file(
                "/sys/devices/system/cpu/cpu2/cpufreq/scaling_governor",
                "powersave\n",
            )
            .file("/sys/module/intel_idle/parameters/max_cstate", "9\n")
            .file(
                "/sys/kernel/mm/transparent_hugepage/enabled",
                "[always] madvise never\n",
            )
            .file(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
                "hpet\n",
            )
            .file("/proc/irq/24/smp_affinity_list", "0-3\n")
            .file("/proc/irq/25/smp_affinity_list", "0\n")
            .file("/proc/sys/net/core/busy_poll", "0\n")
            .file("/proc/sys/net/core/busy_read", "0\n")
            .file("/proc/sys/net/core/rmem_max", "212992\n")
            .file("/proc/sys/net/core/wmem_max", "16777216\n");
        let f = all(&host, &needs());
        for (check, want) in [
            ("isolcpus", Status::Warn),
            ("nohz_full", Status::Warn),
            ("rcu_nocbs", Status::Warn),
            ("governor", Status::Warn),
            ("cstates", Status::Warn),
            ("thp", Status::Warn),
            ("clocksource", Status::Fail),
            ("irq_affinity", Status::Warn),
            ("busy_poll", Status::Warn),
            ("rmem_max", Status::Warn),
            ("wmem_max", Status::Pass),
        ] {
            assert_eq!(status_of(&f, check), want, "{check}: {f:#?}");
        }
        let iso = f.iter().find(|x| x.check == "isolcpus").unwrap();
        assert!(iso.detail.contains("core(s) 2 "), "{iso:?}");
        assert_eq!(
            iso.fix
                .as_deref()
                .map(|s| s.contains("isolcpus=managed_irq,domain,2-3")),
            Some(true),
            "{iso:?}"
        );
        let irq = f.iter().find(|x| x.check == "irq_affinity").unwrap();
        assert!(
            irq.detail.contains(": 24") && !irq.detail.contains("25"),
            "{irq:?}"
        );
        // As root the server forces its buffer size past rmem_max.
        let root = Needs {
            root: true,
            ..needs()
        };
        assert_eq!(status_of(&all(&host, &root), "rmem_max"), Status::Pass);
    }

    #[test]
    fn configured_cores_must_be_in_the_process_cpu_set() {
        let status = |list: &str| format!("Name:\tperegrine\nCpus_allowed_list:\t{list}\n");
        let inside = tuned().file("/proc/self/status", &status("1-3"));
        assert_eq!(status_of(&all(&inside, &needs()), "cores"), Status::Pass);
        let outside = tuned().file("/proc/self/status", &status("1-2"));
        let f = all(&outside, &needs());
        let cores = f.iter().find(|x| x.check == "cores").unwrap();
        assert_eq!(cores.status, Status::Fail, "{cores:?}");
        assert!(
            cores
                .detail
                .starts_with("core 3 is not in this process's CPU set {1,2}"),
            "{cores:?}"
        );
    }

    #[test]
    fn dpdk_needs_hugepages_memlock_and_vfio() {
        let n = Needs {
            kernel_sockets: false,
            dpdk: Some(Dpdk {
                hugepages: true,
                pci: true,
            }),
            ..needs()
        };
        let bare = tuned()
            .file("/proc/meminfo", "MemTotal: 1 kB\nHugePages_Total:       0\n")
            .file(
                "/proc/self/limits",
                "Limit Soft Hard Units\nMax locked memory         8388608              8388608              bytes\n",
            );
        let f = all(&bare, &n);
        assert_eq!(status_of(&f, "hugepages"), Status::Fail);
        assert_eq!(status_of(&f, "memlock"), Status::Warn);
        assert_eq!(status_of(&f, "vfio"), Status::Warn);
        assert!(
            f.iter().all(|x| x.check != "busy_poll"),
            "no kernel sockets configured"
        );
        let ready = tuned()
            .file("/proc/meminfo", "HugePages_Total:    1024\n")
            .file(
                "/proc/self/limits",
                "Max locked memory         unlimited            unlimited            bytes\n",
            )
            .file("/sys/module/vfio_pci/refcnt", "0\n");
        let f = all(&ready, &n);
        for c in ["hugepages", "memlock", "vfio"] {
            assert_eq!(status_of(&f, c), Status::Pass, "{c}");
        }
    }

    #[test]
    fn nic_rings_coalescing_and_offloads_come_from_ethtool() {
        let n = Needs {
            ifaces: vec!["eth1".into()],
            ..needs()
        };
        let host = tuned()
            .command(
                "ethtool -g eth1",
                "Ring parameters for eth1:\nPre-set maximums:\nRX:\t\t4096\nTX:\t\t4096\nCurrent hardware settings:\nRX:\t\t512\nTX:\t\t512\n",
            )
            .command(
                "ethtool -c eth1",
                "Coalesce parameters for eth1:\nAdaptive RX: on  TX: off\nrx-usecs: 50\n",
            )
            .command(
                "ethtool -k eth1",
                "Features for eth1:\ngeneric-receive-offload: on\nlarge-receive-offload: off [fixed]\n",
            );
        let f = all(&host, &n);
        let rings = f.iter().find(|x| x.check == "nic eth1 rings").unwrap();
        assert_eq!(rings.status, Status::Warn);
        assert_eq!(rings.fix.as_deref(), Some("ethtool -G eth1 rx 4096 tx 4096"));
        assert_eq!(status_of(&f, "nic eth1 coalescing"), Status::Warn);
        let off = f.iter().find(|x| x.check == "nic eth1 offloads").unwrap();
        assert!(off.detail.starts_with("generic-receive-offload on"), "{off:?}");
        let none = all(&tuned(), &n);
        assert_eq!(
            status_of(&none, "nic eth1 rings"),
            Status::Warn,
            "no ethtool output"
        );
    }
}
