//! Pinning threads to cores: the server's polling threads (through the
//! runtime), the client simulators, the baselines and the benchmarks all
//! pin through here.
//!
//! Why the core list is read once: a thread inherits its parent's
//! affinity, so asking the OS for "the cores" from a thread spawned by a
//! pinned one would see only the parent's core. The first call reads the
//! list, before anything here has pinned a thread, and every later check
//! uses that list.

use std::sync::OnceLock;

/// Why a thread could not be pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// The core is not one of this machine's.
    #[error("core {core} does not exist (this machine has cores 0..{available})")]
    NoSuchCore {
        /// The core asked for.
        core: usize,
        /// How many cores the machine has.
        available: usize,
    },
    /// The OS refused to pin the thread.
    #[error("could not pin thread to core {0}")]
    Failed(usize),
}

/// The cores this process may run on, read once (see the module docs);
/// empty when the OS does not say.
fn machine_cores() -> &'static [core_affinity::CoreId] {
    static CORES: OnceLock<Vec<core_affinity::CoreId>> = OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

/// Number of cores (at least 1).
pub fn core_count() -> usize {
    machine_cores().len().max(1)
}

/// Checks that every core in `cores` exists, before any thread is started.
pub fn check_cores(cores: &[usize]) -> Result<(), PinError> {
    let available = machine_cores().len();
    match cores.iter().find(|&&c| c >= available) {
        Some(&core) => Err(PinError::NoSuchCore { core, available }),
        None => Ok(()),
    }
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

/// Pins the calling thread to `core` when the machine has at least two
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
    fn missing_cores_are_named() {
        let n = machine_cores().len();
        assert_eq!(check_cores(&[]), Ok(()));
        assert_eq!(
            check_cores(&[0, n]),
            Err(PinError::NoSuchCore {
                core: n,
                available: n
            })
        );
        assert_eq!(
            pin_current(Some(n + 5)),
            Err(PinError::NoSuchCore {
                core: n + 5,
                available: n
            })
        );
        assert_eq!(pin_current(None), Ok(()));
        assert_eq!(
            PinError::NoSuchCore {
                core: 9,
                available: 2
            }
            .to_string(),
            "core 9 does not exist (this machine has cores 0..2)"
        );
        assert!(core_count() >= 1);
    }

    #[test]
    fn a_thread_can_be_pinned_to_an_existing_core() {
        // In a thread of its own, so the test harness's threads stay free.
        let pinned = std::thread::spawn(|| pin_current(Some(0))).join().unwrap();
        if !machine_cores().is_empty() {
            assert_eq!(pinned, Ok(()));
        }
    }
}
