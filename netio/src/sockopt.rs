//! Socket options set at start-up (never on the hot path).

use std::io;
use std::os::fd::RawFd;

/// Sets an integer socket option.
pub(crate) fn set_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` lives for the duration of the call and its size is
    // passed correctly; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads an integer socket option.
pub(crate) fn get_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and `len` holds the
    // size of `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut value as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets receive and send buffer sizes in bytes (0 = leave the default).
///
/// Tries the privileged `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` first (root can
/// exceed `net.core.rmem_max`), then the ordinary options, which the kernel
/// silently caps. Returns the sizes actually in force (the kernel reports
/// double the requested value for bookkeeping overhead).
pub(crate) fn set_buffers(fd: RawFd, rcvbuf: usize, sndbuf: usize) -> io::Result<(usize, usize)> {
    let clamp = |v: usize| v.min(i32::MAX as usize / 2) as libc::c_int;
    if rcvbuf > 0 && set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, clamp(rcvbuf)).is_err() {
        set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, clamp(rcvbuf))?;
    }
    if sndbuf > 0 && set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, clamp(sndbuf)).is_err() {
        set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, clamp(sndbuf))?;
    }
    let r = get_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF)? as usize;
    let s = get_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF)? as usize;
    Ok((r, s))
}
