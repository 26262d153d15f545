//! Zeroed byte storage mapped straight from the operating system.
//!
//! Why not `vec![0u8; n]`: the batch's promise is that its untouched pages
//! cost no memory (a kernel UDP port's 64 KiB slots are mostly address
//! space; see the parent module). glibc's `calloc` keeps that promise only
//! while it maps a large request freshly. Once a process has freed one
//! large block, glibc raises its mapping threshold to that size and serves
//! the next such request from its heap, clearing reused memory with a
//! `memset` that makes every page resident at once. An anonymous mapping of
//! our own is zero-filled by the kernel page by page on first write,
//! whatever the process allocated before.

use std::ptr::NonNull;

/// `len` zeroed bytes in a private anonymous mapping of their own,
/// unmapped on drop. Pages become resident as they are first written.
pub(crate) struct ZeroedPages {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned exclusively by this value (no other handle
// to it exists), so moving it to another thread or sharing `&` to it is as
// safe as for a `Box<[u8]>`.
unsafe impl Send for ZeroedPages {}
// SAFETY: as above; `&ZeroedPages` only gives out `&[u8]`.
unsafe impl Sync for ZeroedPages {}

impl ZeroedPages {
    /// Maps `len` zeroed bytes (at least one page of address space).
    ///
    /// # Panics
    /// If the kernel refuses the mapping (out of address space or memory
    /// map count): like an allocation failure, only at construction.
    pub(crate) fn new(len: usize) -> Self {
        // SAFETY: a fresh private anonymous mapping: no file, no fixed
        // address, so it cannot alias or replace any existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let mapped = (p != libc::MAP_FAILED)
            .then(|| NonNull::new(p.cast::<u8>()))
            .flatten();
        let Some(ptr) = mapped else {
            panic!(
                "mapping {len} bytes for a packet batch: {}",
                std::io::Error::last_os_error()
            );
        };
        ZeroedPages { ptr, len }
    }

    /// The bytes.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is the start of a live mapping of at least `len`
        // readable bytes, zero-initialised by the kernel and only ever
        // written through `&mut self`; the borrow of `self` keeps it mapped.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, writable.
    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and the exclusive borrow of `self` makes
        // this the only reference to the bytes while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for ZeroedPages {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new` with this address and length,
        // unmapped exactly once; no reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len.max(1)) };
    }
}

#[cfg(test)]
mod tests {
    use super::ZeroedPages;

    /// Pages of `bytes` resident now, and pages in all.
    fn resident(bytes: &[u8]) -> (usize, usize) {
        let n = bytes.len().div_ceil(4096);
        let mut pages = vec![0u8; n];
        // SAFETY: `bytes` starts a page-aligned mapping spanning `n` pages,
        // and `pages` has one byte per page.
        let rc = unsafe {
            libc::mincore(
                bytes.as_ptr() as *mut libc::c_void,
                bytes.len(),
                pages.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        (pages.iter().filter(|&&b| b & 1 != 0).count(), n)
    }

    #[test]
    fn only_written_pages_become_resident_even_after_large_frees() {
        // Make glibc raise its mapping threshold: a large block, freed.
        drop(vec![1u8; 8 << 20]);
        let mut z = ZeroedPages::new(4 << 20);
        assert_eq!(
            resident(z.as_slice()),
            (0, 1024),
            "nothing resident before a write"
        );
        z.as_mut_slice()[5 * 4096 + 7] = 9;
        z.as_mut_slice()[(4 << 20) - 1] = 3;
        // (Transparent huge pages, where the host maps them for any
        // anonymous memory, would fault in 2 MiB per write.)
        let huge = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|s| s.contains("[always]"));
        let (now, _) = resident(z.as_slice());
        assert!(
            now == 2 || (huge && now <= 1024),
            "{now} pages resident after two writes"
        );
        assert_eq!((z.as_slice()[5 * 4096 + 7], z.as_slice()[(4 << 20) - 1]), (9, 3));
        assert_eq!(z.as_slice().iter().map(|&b| u64::from(b)).sum::<u64>(), 12);
    }
}
