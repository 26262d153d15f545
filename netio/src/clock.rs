//! Monotonic nanosecond timestamps shared by clients and server.
//!
//! `CLOCK_MONOTONIC` through the vDSO: no system call, comparable across
//! processes on the same host, so a client can stamp a message and compute
//! the round trip from the value echoed back.

/// Nanoseconds on the host's monotonic clock.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always
    // supported on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic() {
        let a = super::now_ns();
        let b = super::now_ns();
        assert!(b >= a && a > 0);
    }
}
