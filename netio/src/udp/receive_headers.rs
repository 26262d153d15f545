//! The `recvmmsg` headers a UDP port receives with, kept armed between
//! calls.
//!
//! Why: arming a header means its iovec, its address buffer, its control
//! buffer and four lengths and flags; for 64 headers that is about a
//! thousand instructions, and a busy-polling gateway calls `recvmmsg` on
//! every round, most of them finding nothing. The kernel writes back only
//! three fields of a header it filled (the address length, the control
//! length and the flags; the byte count is `msg_len`, which it only
//! writes), and nothing of a header it did not fill. So the headers stay
//! armed from one call to the next as long as the batch they point into
//! has the same layout, and only the entries the last call filled are
//! re-set. Sends use the port's other header array, so they never disarm
//! these.

/// Room for the control messages of one received message (a `UDP_GRO`
/// one is `CMSG_SPACE(sizeof(int))`, 24 bytes), aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct ReceiveControl {
    bytes: [u8; 64],
}

/// `n` receive headers with their iovecs, address buffers and (with
/// coalescing on) control buffers, each header pointing at its own.
pub(super) struct ReceiveHeaders {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    controls: Vec<ReceiveControl>,
    coalescing: bool,
    /// The batch layout the armed entries point into: the slots' start
    /// address, their stride and the bytes each may take.
    layout: (usize, usize, usize),
    /// Entries `0..armed` point into `layout`.
    armed: usize,
    /// Entries the kernel may have written since they were armed.
    dirty: usize,
}

impl ReceiveHeaders {
    /// `n` unarmed headers; with `coalescing`, each gets a control buffer
    /// for the kernel's datagram-size message.
    pub(super) fn new(n: usize, coalescing: bool) -> Self {
        // SAFETY: all-zero bytes are valid values of these plain C structs.
        let (hdr, iov, addr) = unsafe {
            (
                std::mem::zeroed::<libc::mmsghdr>(),
                std::mem::zeroed::<libc::iovec>(),
                std::mem::zeroed::<libc::sockaddr_storage>(),
            )
        };
        ReceiveHeaders {
            hdrs: vec![hdr; n],
            iovs: vec![iov; n],
            addrs: vec![addr; n],
            controls: vec![ReceiveControl { bytes: [0; 64] }; n],
            coalescing,
            layout: (0, 0, 0),
            armed: 0,
            dirty: 0,
        }
    }

    /// How many headers there are: the most one call can fill.
    pub(super) fn len(&self) -> usize {
        self.hdrs.len()
    }

    /// Arms the first `n` headers (at most [`len`](Self::len)) to receive
    /// into the slots at `base`, `stride` bytes apart, `room` bytes each,
    /// and returns the first header. Re-arms everything only when the
    /// layout or `n` grew past what is armed; otherwise re-sets just the
    /// entries the kernel filled last time. The caller passes the headers
    /// to `recvmmsg` with at most `n` entries and then reports what it got
    /// with [`filled`](Self::filled).
    pub(super) fn arm(&mut self, base: *mut u8, stride: usize, room: usize, n: usize) -> *mut libc::mmsghdr {
        let n = n.min(self.hdrs.len());
        let layout = (base as usize, stride, room);
        if layout != self.layout || n > self.armed {
            for j in 0..n {
                self.iovs[j].iov_base = base.wrapping_add(j * stride) as *mut libc::c_void;
                self.iovs[j].iov_len = room;
                let h = &mut self.hdrs[j].msg_hdr;
                h.msg_name = &mut self.addrs[j] as *mut libc::sockaddr_storage as *mut libc::c_void;
                h.msg_iov = &mut self.iovs[j];
                h.msg_iovlen = 1;
                h.msg_control = if self.coalescing {
                    &mut self.controls[j] as *mut ReceiveControl as *mut libc::c_void
                } else {
                    std::ptr::null_mut()
                };
                self.reset(j);
            }
            self.layout = layout;
            self.armed = n;
        } else {
            for j in 0..self.dirty {
                self.reset(j);
            }
        }
        self.dirty = 0;
        self.hdrs.as_mut_ptr()
    }

    /// The fields the kernel writes back, to their armed values.
    #[inline]
    fn reset(&mut self, j: usize) {
        let h = &mut self.hdrs[j].msg_hdr;
        h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_controllen = if self.coalescing {
            std::mem::size_of::<ReceiveControl>() as _
        } else {
            0
        };
        h.msg_flags = 0;
    }

    /// The last `recvmmsg` on the armed headers filled `got` entries.
    pub(super) fn filled(&mut self, got: usize) {
        // One past what it reports, in case a kernel wrote to the entry it
        // failed on; never beyond what is armed.
        self.dirty = (got + 1).min(self.armed);
    }

    /// Entry `j` as the kernel filled it: its header (byte count, flags,
    /// control messages) and the sender's address.
    #[inline]
    pub(super) fn entry(&self, j: usize) -> (&libc::mmsghdr, &libc::sockaddr_storage) {
        (&self.hdrs[j], &self.addrs[j])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> Vec<u8> {
        vec![0u8; 8 * 256]
    }

    #[test]
    fn rearming_resets_only_what_the_kernel_wrote_and_rearms_on_a_new_layout() {
        let mut a = slots();
        let mut h = ReceiveHeaders::new(8, true);
        h.arm(a.as_mut_ptr(), 256, 200, 8);
        // What a kernel does to the two entries it fills.
        for j in 0..2 {
            h.hdrs[j].msg_hdr.msg_namelen = 16;
            h.hdrs[j].msg_hdr.msg_controllen = 24;
            h.hdrs[j].msg_hdr.msg_flags = libc::MSG_TRUNC;
        }
        h.filled(2);
        h.arm(a.as_mut_ptr(), 256, 200, 8);
        let storage = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        for j in 0..8 {
            let m = &h.hdrs[j].msg_hdr;
            assert_eq!(
                (m.msg_namelen, m.msg_controllen, m.msg_flags),
                (storage, 64, 0),
                "entry {j}"
            );
            assert_eq!(h.iovs[j].iov_base as usize, a.as_ptr() as usize + j * 256);
            assert_eq!(h.iovs[j].iov_len, 200);
            assert_eq!(m.msg_iov as usize, &h.iovs[j] as *const libc::iovec as usize);
            assert_eq!(
                m.msg_control as usize,
                &h.controls[j] as *const ReceiveControl as usize
            );
        }
        // Another batch: every entry points into it.
        let mut b = slots();
        h.arm(b.as_mut_ptr(), 128, 100, 8);
        for j in 0..8 {
            assert_eq!(h.iovs[j].iov_base as usize, b.as_ptr() as usize + j * 128);
            assert_eq!(h.iovs[j].iov_len, 100);
        }
        // More entries than armed: the new ones are armed too.
        let mut h = ReceiveHeaders::new(8, false);
        h.arm(a.as_mut_ptr(), 256, 200, 2);
        h.arm(a.as_mut_ptr(), 256, 200, 8);
        for j in 0..8 {
            let m = &h.hdrs[j].msg_hdr;
            assert_eq!(
                h.iovs[j].iov_base as usize,
                a.as_ptr() as usize + j * 256,
                "entry {j}"
            );
            assert_eq!((m.msg_namelen, m.msg_controllen, m.msg_iovlen), (storage, 0, 1));
            assert!(m.msg_control.is_null());
        }
    }
}
