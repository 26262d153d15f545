//! Typed errors of the I/O layer.

use std::io;

/// An I/O failure a caller may want to tell apart from "nothing to do".
///
/// "Would block" is never an error here: ports return `Ok(0)` instead.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Binding or configuring a socket failed at start-up.
    #[error("cannot set up {what} on {addr}: {source}")]
    Setup {
        /// What was being set up (a socket option, the bind, ...).
        what: &'static str,
        /// The address it was for.
        addr: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A system call on the hot path failed with something other than
    /// `EAGAIN`/`EINTR`.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The call, e.g. `recvmmsg`.
        call: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The backend could not be initialised (DPDK EAL, port setup...).
    #[error("backend initialisation failed: {0}")]
    Backend(String),
}
