//! Pinning threads to cores: the server's polling threads (through the
//! runtime), the client simulators, the baselines and the benchmarks all
//! pin through here.
//!
//! Why cores are checked against the process's CPU set and not against a
//! count: under `taskset`, systemd's `CPUAffinity=`, a cgroup cpuset or a
//! container, the process may run only on some cores, and their ids need
//! not start at 0 (`taskset -c 1` allows core 1 alone). A requested core is
//! valid exactly when it is in that set.
//!
//! Why the set is read once: a thread inherits its parent's affinity, so
//! asking the OS for "the cores" from a thread spawned by a pinned one
//! would see only the parent's core. The first call reads the set, before
//! anything here has pinned a thread, and every later check uses it.

use std::fmt::Write;
use std::sync::OnceLock;

/// Why a thread could not be pinned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// The core is not one of this machine's at all.
    #[error(
        "core {core} does not exist (this machine has cores {})",
        format_cpu_list(present)
    )]
    NoSuchCore {
        /// The core asked for.
        core: usize,
        /// The cores the machine has, ascending.
        present: Vec<usize>,
    },
    /// The core exists but is not in the set of cores this process may run on.
    #[error(
        "core {core} is not in this process's CPU set {{{}}}",
        format_cpu_list(allowed)
    )]
    NotAllowed {
        /// The core asked for.
        core: usize,
        /// The cores the process may run on, ascending.
        allowed: Vec<usize>,
    },
    /// The OS refused to pin the thread.
    #[error("could not pin thread to core {0}")]
    Failed(usize),
}

/// Formats ascending core ids as a kernel CPU list (`0-3,6`); empty for
/// none.
pub fn format_cpu_list(cores: &[usize]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < cores.len() {
        let start = cores[i];
        let mut end = start;
        while i + 1 < cores.len() && cores[i + 1] == end + 1 {
            i += 1;
            end = cores[i];
        }
        if !s.is_empty() {
            s.push(',');
        }
        let _ = match end - start {
            0 => write!(s, "{start}"),
            1 => write!(s, "{start},{end}"),
            _ => write!(s, "{start}-{end}"),
        };
        i += 1;
    }
    s
}

/// The ids of the cores this process may run on (its affinity mask, from
/// `sched_getaffinity`), ascending, read once (see the module docs); empty
/// when the OS does not say.
pub fn allowed_cores() -> &'static [usize] {
    static CORES: OnceLock<Vec<usize>> = OnceLock::new();
    CORES.get_or_init(|| {
        let mut ids: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    })
}

/// The ids of the cores this machine has (`/sys/devices/system/cpu/present`),
/// ascending, read once; empty when unknown.
pub fn present_cores() -> &'static [usize] {
    static CORES: OnceLock<Vec<usize>> = OnceLock::new();
    CORES.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/present")
            .ok()
            .and_then(|s| crate::doctor::host::parse_cpu_list(&s))
            .map(|set| set.into_iter().collect())
            .unwrap_or_default()
    })
}

/// Number of cores this process may run on (at least 1).
pub fn core_count() -> usize {
    allowed_cores().len().max(1)
}

/// Checks that every core in `requested` is in `allowed` (the process's
/// CPU set, ascending core ids); the first one that is not is named: as
/// missing from the machine when it is not in `present` (the machine's
/// cores, ascending), else with the whole allowed set. An empty `allowed`
/// or `present` means that set is unknown: nothing is refused for it here,
/// and pinning itself reports a core the OS refuses.
pub fn check_cores_in(requested: &[usize], allowed: &[usize], present: &[usize]) -> Result<(), PinError> {
    let outside = |set: &[usize], c: &usize| !set.is_empty() && set.binary_search(c).is_err();
    if let Some(&core) = requested.iter().find(|c| outside(present, c)) {
        return Err(PinError::NoSuchCore {
            core,
            present: present.to_vec(),
        });
    }
    match requested.iter().find(|c| outside(allowed, c)) {
        Some(&core) => Err(PinError::NotAllowed {
            core,
            allowed: allowed.to_vec(),
        }),
        None => Ok(()),
    }
}

/// Checks that this process may run on every core in `cores`, before any
/// thread is started.
pub fn check_cores(cores: &[usize]) -> Result<(), PinError> {
    check_cores_in(cores, allowed_cores(), present_cores())
}

/// Pins the calling thread to `core`; `None` leaves it where it is.
pub fn pin_current(core: Option<usize>) -> Result<(), PinError> {
    let Some(c) = core else { return Ok(()) };
    check_cores(&[c])?;
    if core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
        Ok(())
    } else {
        Err(PinError::Failed(c))
    }
}

/// Pins the calling thread to `core` when the process may use at least two
/// cores (pinning two busy threads to one core would only hurt), else
/// leaves it unpinned. Returns whether it pinned. For benchmarks, where an
/// unpinned run is still a run.
pub fn pin_if_multicore(core: usize) -> bool {
    core_count() >= 2 && pin_current(Some(core)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_cores_are_checked_against_the_allowed_set_not_a_count() {
        let present: Vec<usize> = (0..8).collect();
        let check = |requested: &[usize], allowed: &[usize]| check_cores_in(requested, allowed, &present);
        // `taskset -c 1`: one allowed core, whose id is 1.
        assert_eq!(check(&[1], &[1]), Ok(()));
        assert_eq!(
            check(&[0], &[1]),
            Err(PinError::NotAllowed {
                core: 0,
                allowed: vec![1]
            })
        );
        // A cpuset with a hole.
        let allowed = [2, 3, 4, 6];
        assert_eq!(check(&[2, 6, 4], &allowed), Ok(()));
        assert_eq!(check(&[], &allowed), Ok(()));
        assert_eq!(
            check(&[2, 5, 7], &allowed),
            Err(PinError::NotAllowed {
                core: 5,
                allowed: allowed.to_vec()
            })
        );
        // A core the machine lacks is named as such, before the set.
        assert_eq!(
            check(&[5, 8], &allowed),
            Err(PinError::NoSuchCore {
                core: 8,
                present: present.clone()
            })
        );
        // Unknown sets: nothing refused before pinning.
        assert_eq!(check_cores_in(&[9], &[], &[]), Ok(()));
        assert_eq!(
            check_cores_in(&[9], &allowed, &[]),
            Err(PinError::NotAllowed {
                core: 9,
                allowed: allowed.to_vec()
            })
        );
        assert_eq!(
            PinError::NoSuchCore {
                core: 9,
                present: vec![0, 1]
            }
            .to_string(),
            "core 9 does not exist (this machine has cores 0,1)"
        );
        assert_eq!(
            PinError::NotAllowed {
                core: 3,
                allowed: vec![1]
            }
            .to_string(),
            "core 3 is not in this process's CPU set {1}"
        );
        assert_eq!(
            PinError::NotAllowed {
                core: 9,
                allowed: allowed.to_vec()
            }
            .to_string(),
            "core 9 is not in this process's CPU set {2-4,6}"
        );
    }

    #[test]
    fn cpu_lists_are_formatted_like_the_kernel() {
        assert_eq!(format_cpu_list(&[]), "");
        assert_eq!(format_cpu_list(&[1]), "1");
        assert_eq!(format_cpu_list(&[0, 1]), "0,1");
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 6, 8, 9, 10]), "0-3,6,8-10");
    }

    #[test]
    fn this_process_checks_against_its_own_set() {
        let allowed = allowed_cores();
        assert!(core_count() >= 1);
        assert_eq!(check_cores(allowed), Ok(()));
        let present = present_cores();
        if let (Some(&last), false) = (allowed.last(), present.is_empty()) {
            let outside = last.max(*present.last().unwrap()) + 5;
            assert_eq!(
                pin_current(Some(outside)),
                Err(PinError::NoSuchCore {
                    core: outside,
                    present: present.to_vec()
                })
            );
        }
        assert_eq!(pin_current(None), Ok(()));
    }

    #[test]
    fn a_thread_can_be_pinned_to_an_allowed_core() {
        // In a thread of its own, so the test harness's threads stay free.
        let Some(&first) = allowed_cores().first() else {
            return;
        };
        let pinned = std::thread::spawn(move || pin_current(Some(first)))
            .join()
            .unwrap();
        assert_eq!(pinned, Ok(()));
    }
}
