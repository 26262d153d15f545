//! Locking the server's memory into RAM (`lock_memory = true`).
//!
//! Why: a page the hot path touches for the first time costs a fault, and a
//! page the kernel reclaims or swaps costs one again. Locking with
//! `mlockall(MCL_CURRENT)` once start-up has allocated everything (rings,
//! session tables, reply logs, the engine's pools, the journal's current
//! segment) makes the kernel fault every one of those pages in up front and
//! keep them resident, so the steady state takes no page faults however
//! long it runs. Later mappings (the journal's next segments, which their
//! helper thread pre-faults anyway, and the feed's read-only views) are
//! not locked: locking them would pin every segment ever read.
#![allow(unsafe_code)]

use thiserror::Error;

/// Why memory could not be locked.
#[derive(Debug, Error)]
#[error(
    "lock_memory: mlockall(MCL_CURRENT) failed: {source} (the locked-memory limit is {limit}; \
     raise it with `ulimit -l unlimited`, LimitMEMLOCK=infinity in a systemd unit, \
     or run with CAP_IPC_LOCK)"
)]
pub struct LockError {
    source: std::io::Error,
    limit: String,
}

/// Locks every page the process has mapped now into RAM, faulting in those
/// not yet touched. Returns the bytes resident afterwards (VmLck from
/// `/proc/self/status`, 0 where that is unreadable).
pub fn lock_current() -> Result<u64, LockError> {
    // SAFETY: mlockall takes no pointers; it only changes how the kernel
    // treats this process's existing mappings.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT) };
    if rc != 0 {
        return Err(LockError {
            source: std::io::Error::last_os_error(),
            limit: memlock_limit(),
        });
    }
    Ok(locked_bytes())
}

/// The soft RLIMIT_MEMLOCK, for the error message.
fn memlock_limit() -> String {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit for the call's duration.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) };
    match rc {
        0 if r.rlim_cur == libc::RLIM_INFINITY => "unlimited".into(),
        0 => format!("{} bytes", r.rlim_cur),
        _ => "unknown".into(),
    }
}

/// VmLck of this process, bytes.
pub fn locked_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmLck:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locking_makes_pages_resident_or_says_why_not() {
        let before = locked_bytes();
        match lock_current() {
            Ok(after) => {
                assert!(after > before, "VmLck {before} -> {after}");
                // SAFETY: no pointers; undoes the lock for the rest of the
                // test binary.
                unsafe { libc::munlockall() };
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("ulimit -l"), "{msg}");
            }
        }
    }
}
