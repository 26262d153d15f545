//! `peregrine doctor`: is this host ready for a low-latency deployment of
//! the configuration it is given?
//!
//! It reads the same config as `serve` and checks the host against what
//! that config needs: the polling cores isolated (`isolcpus`, `nohz_full`,
//! `rcu_nocbs`), their frequency governor, C-states, transparent
//! hugepages, the clocksource, IRQs kept off the polling cores; for kernel
//! sockets, busy polling and the socket-buffer limits against the
//! configured buffers; for DPDK, the locked-memory limit, hugepages and
//! vfio; for each named interface, ring sizes, interrupt coalescing and
//! receive offloads. Every finding is PASS, WARN or FAIL with the exact
//! command that fixes it, and the exit status is the worst finding (0, 1,
//! 2), so a deployment script can gate on it.
//!
//! It only reads: `/proc`, `/sys` and `ethtool`'s query options. Changing
//! the host is `scripts/setup-host.sh`'s job (whose `--dry-run` runs this).

mod checks;
pub mod host;

use crate::config::ServeConfig;
use host::Host;
use serde::Serialize;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// As a low-latency deployment wants it.
    Pass,
    /// Works, but costs tail latency or headroom.
    Warn,
    /// Breaks the deployment or makes its latency meaningless.
    Fail,
}

impl Status {
    /// The label printed in reports.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked (`isolcpus`, `nic eth1 rings`, ...).
    pub check: String,
    /// How it came out.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// The exact fix (WARN and FAIL only).
    pub fix: Option<String>,
}

impl Finding {
    fn pass(check: &str, detail: String) -> Finding {
        Finding {
            check: check.into(),
            status: Status::Pass,
            detail,
            fix: None,
        }
    }

    fn warn(check: &str, detail: String, fix: &str) -> Finding {
        Finding {
            check: check.into(),
            status: Status::Warn,
            detail,
            fix: Some(fix.into()),
        }
    }

    fn fail(check: &str, detail: String, fix: &str) -> Finding {
        Finding {
            check: check.into(),
            status: Status::Fail,
            detail,
            fix: Some(fix.into()),
        }
    }
}

/// What the deployment needs from the host, taken from its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needs {
    /// Polling cores (the config's `cores`).
    pub cores: Vec<usize>,
    /// Kernel UDP or TCP gateways are configured.
    pub kernel_sockets: bool,
    /// Configured socket receive buffer, bytes.
    pub recv_buffer: usize,
    /// Configured socket send buffer, bytes.
    pub send_buffer: usize,
    /// The server will run as root (it then forces socket buffer sizes).
    pub root: bool,
    /// A `[dpdk]` section is configured.
    pub dpdk: Option<Dpdk>,
    /// Network interfaces whose NIC settings to check.
    pub ifaces: Vec<String>,
}

/// What a DPDK configuration needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dpdk {
    /// The EAL will use hugepages (no `--no-huge`).
    pub hugepages: bool,
    /// The EAL will probe PCI devices (no `--no-pci`).
    pub pci: bool,
}

impl Needs {
    /// What `cfg` needs, running as `root`, with NIC checks for `ifaces`.
    pub fn from_config(cfg: &ServeConfig, root: bool, ifaces: Vec<String>) -> Needs {
        Needs {
            cores: cfg.cores.clone(),
            // A server without DPDK serves kernel sockets.
            kernel_sockets: !cfg.udp.is_empty() || !cfg.tcp.is_empty() || cfg.dpdk.is_none(),
            recv_buffer: cfg.recv_buffer,
            send_buffer: cfg.send_buffer,
            root,
            dpdk: dpdk_eal_args(cfg).map(|args| Dpdk {
                hugepages: !args.iter().any(|a| a == "--no-huge"),
                pci: !args.iter().any(|a| a == "--no-pci"),
            }),
            ifaces,
        }
    }
}

#[cfg(feature = "dpdk")]
fn dpdk_eal_args(cfg: &ServeConfig) -> Option<Vec<String>> {
    cfg.dpdk.as_ref().map(|d| d.eal_args.clone())
}

#[cfg(not(feature = "dpdk"))]
fn dpdk_eal_args(cfg: &ServeConfig) -> Option<Vec<String>> {
    cfg.dpdk.as_ref().map(|t| {
        t.get("eal_args")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    })
}

/// Every finding for `needs` on `host`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// In check order.
    pub findings: Vec<Finding>,
    /// The worst status among them (PASS when there are none).
    pub worst: Status,
}

impl Report {
    /// The process exit status: 0 all PASS, 1 some WARN, 2 some FAIL.
    pub fn exit_code(&self) -> i32 {
        self.worst as i32
    }

    /// The report for people: one line per check, its fix indented below.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for f in &self.findings {
            s.push_str(&format!("{}  {:<22} {}\n", f.status.label(), f.check, f.detail));
            if let Some(fix) = &f.fix {
                s.push_str(&format!("      {:<22} fix: {fix}\n", ""));
            }
        }
        let count = |st| self.findings.iter().filter(|f| f.status == st).count();
        s.push_str(&format!(
            "\n{} passed, {} warnings, {} failures: {}\n",
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail),
            self.worst.label()
        ));
        s
    }
}

/// Runs every check that applies.
pub fn examine(host: &dyn Host, needs: &Needs) -> Report {
    let findings = checks::all(host, needs);
    let worst = findings.iter().map(|f| f.status).max().unwrap_or(Status::Pass);
    Report { findings, worst }
}

#[cfg(test)]
mod tests {
    use super::host::FakeHost;
    use super::*;

    #[test]
    fn needs_follow_the_config_and_the_exit_code_the_worst_finding() {
        let mut cfg = ServeConfig {
            cores: vec![1],
            ..ServeConfig::default()
        };
        cfg.udp.push("127.0.0.1:9000".parse().unwrap());
        let n = Needs::from_config(&cfg, false, vec![]);
        assert_eq!(
            (n.cores.as_slice(), n.kernel_sockets, n.dpdk),
            (&[1][..], true, None)
        );
        let host = FakeHost::default()
            .file("/proc/cmdline", "isolcpus=1 nohz_full=1 rcu_nocbs=1")
            .file(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
                "hpet",
            );
        let r = examine(&host, &n);
        assert_eq!((r.worst, r.exit_code()), (Status::Fail, 2));
        let text = r.to_text();
        assert!(text.contains("FAIL  clocksource"), "{text}");
        assert!(text.contains("fix: add `clocksource=tsc tsc=reliable`"), "{text}");
        assert!(text.trim_end().ends_with("FAIL"), "{text}");
    }
}
