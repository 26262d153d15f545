//! What the doctor reads about the machine, behind a trait so the checks
//! are tested against made-up hosts instead of whatever machine runs the
//! tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The machine as the doctor sees it: files under `/proc` and `/sys`, and
/// the output of a few read-only commands (`ethtool -g`, ...).
pub trait Host {
    /// The text of an absolute path such as `/proc/cmdline`, or `None` when
    /// it does not exist or cannot be read.
    fn read(&self, path: &str) -> Option<String>;
    /// The entries of a directory (names only), empty when it does not
    /// exist.
    fn list(&self, dir: &str) -> Vec<String>;
    /// Whether a path exists.
    fn exists(&self, path: &str) -> bool;
    /// Standard output of `program args...` when it ran and exited 0.
    fn run(&self, program: &str, args: &[&str]) -> Option<String>;
}

/// The real machine, with its files read under `root` (`/` normally; a
/// copy of `/proc` and `/sys` elsewhere works too).
#[derive(Clone, Debug)]
pub struct SystemHost {
    root: PathBuf,
}

impl SystemHost {
    /// This machine.
    pub fn new() -> Self {
        SystemHost {
            root: PathBuf::from("/"),
        }
    }

    /// Files read under `root` instead of `/`; commands still run here.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        SystemHost { root: root.into() }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }
}

impl Default for SystemHost {
    fn default() -> Self {
        SystemHost::new()
    }
}

impl Host for SystemHost {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.path(path)).ok()
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(dir))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn exists(&self, path: &str) -> bool {
        Path::exists(&self.path(path))
    }

    fn run(&self, program: &str, args: &[&str]) -> Option<String> {
        let out = Command::new(program).args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A host made up in a test: files and command outputs given by the test.
#[derive(Clone, Debug, Default)]
pub struct FakeHost {
    /// Path → contents.
    pub files: BTreeMap<String, String>,
    /// `program args` (space-joined) → standard output.
    pub commands: BTreeMap<String, String>,
}

impl FakeHost {
    /// Adds a file.
    pub fn file(mut self, path: &str, contents: &str) -> Self {
        self.files.insert(path.into(), contents.into());
        self
    }

    /// Adds a command's output.
    pub fn command(mut self, line: &str, stdout: &str) -> Self {
        self.commands.insert(line.into(), stdout.into());
        self
    }
}

impl Host for FakeHost {
    fn read(&self, path: &str) -> Option<String> {
        self.files.get(path).cloned()
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let names: BTreeSet<String> = self
            .files
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .map(str::to_string)
            .collect();
        names.into_iter().collect()
    }

    fn exists(&self, path: &str) -> bool {
        let dir = format!("{}/", path.trim_end_matches('/'));
        self.files.contains_key(path) || self.files.keys().any(|p| p.starts_with(&dir))
    }

    fn run(&self, program: &str, args: &[&str]) -> Option<String> {
        let mut line = program.to_string();
        for a in args {
            line.push(' ');
            line.push_str(a);
        }
        self.commands.get(&line).cloned()
    }
}

/// Whether the process reading `host` runs with effective user id 0
/// (from `/proc/self/status`).
pub fn running_as_root(host: &dyn Host) -> bool {
    host.read("/proc/self/status")
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Parses a kernel CPU list (`2-3,6`, `0-7:2/4` is not used by these
/// parameters); `None` when it is not one.
pub fn parse_cpu_list(s: &str) -> Option<BTreeSet<usize>> {
    let mut cores = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b || b - a > 4096 {
                    return None;
                }
                cores.extend(a..=b);
            }
            None => {
                cores.insert(part.trim().parse().ok()?);
            }
        }
    }
    Some(cores)
}

/// The CPUs a kernel command-line parameter names (`isolcpus=`,
/// `nohz_full=`, `rcu_nocbs=`), skipping `isolcpus` flags such as
/// `managed_irq,domain,`. Empty when the parameter is absent.
pub fn cmdline_cpus(cmdline: &str, param: &str) -> BTreeSet<usize> {
    let key = format!("{param}=");
    let mut cores = BTreeSet::new();
    for word in cmdline.split_whitespace() {
        let Some(value) = word.strip_prefix(&key) else {
            continue;
        };
        let list: Vec<&str> = value
            .split(',')
            .filter(|p| p.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        if let Some(c) = parse_cpu_list(&list.join(",")) {
            cores.extend(c);
        }
    }
    cores
}

/// The value of `param=` on the kernel command line, if given.
pub fn cmdline_value<'a>(cmdline: &'a str, param: &str) -> Option<&'a str> {
    let key = format!("{param}=");
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key.as_str()))
}

/// Formats cores as a kernel CPU list (`2-3,6`).
pub fn format_cpu_list(cores: &BTreeSet<usize>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = cores.iter().copied().peekable();
    while let Some(a) = it.next() {
        let mut b = a;
        while it.peek() == Some(&(b + 1)) {
            b += 1;
            it.next();
        }
        out.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_format_back() {
        let c = parse_cpu_list("2-3,6,8-9").unwrap();
        assert_eq!(c.iter().copied().collect::<Vec<_>>(), vec![2, 3, 6, 8, 9]);
        assert_eq!(format_cpu_list(&c), "2-3,6,8-9");
        assert!(parse_cpu_list("3-1").is_none());
        assert!(parse_cpu_list("x").is_none());
        assert_eq!(parse_cpu_list("").unwrap().len(), 0);
    }

    #[test]
    fn command_line_cpus_skip_isolcpus_flags() {
        let line = "ro quiet isolcpus=managed_irq,domain,2-3 nohz_full=2-3,5 rcu_nocbs=2";
        assert_eq!(format_cpu_list(&cmdline_cpus(line, "isolcpus")), "2-3");
        assert_eq!(format_cpu_list(&cmdline_cpus(line, "nohz_full")), "2-3,5");
        assert_eq!(format_cpu_list(&cmdline_cpus(line, "rcu_nocbs")), "2");
        assert!(cmdline_cpus(line, "irqaffinity").is_empty());
        assert_eq!(cmdline_value("a idle=poll b", "idle"), Some("poll"));
    }

    #[test]
    fn a_fake_host_lists_directories_from_its_files() {
        let h = FakeHost::default()
            .file("/proc/irq/24/smp_affinity_list", "0-1")
            .file("/proc/irq/25/smp_affinity_list", "0");
        assert_eq!(h.list("/proc/irq"), vec!["24", "25"]);
        assert!(h.exists("/proc/irq/24"));
        assert!(!h.exists("/proc/irq/26"));
    }
}
