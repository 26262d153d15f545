//! A fixed-capacity vector whose buffer is aligned to, and advised for,
//! 2 MiB transparent huge pages.
//!
//! Why: the engine's tables (order pool, id index, price levels) are read
//! at random, a few cache lines per operation, across megabytes to tens of
//! megabytes. With 4 KiB pages the default id index (32 MiB) spans 8,192
//! pages, more than a core's second-level TLB maps, so a lookup can pay a
//! page walk on top of its cache miss; with 2 MiB pages the same table is
//! 16 TLB entries. Linux backs anonymous memory with huge pages where the
//! process asks for them (`madvise(MADV_HUGEPAGE)`) when transparent huge
//! pages are set to `always` or `madvise`, but only in 2 MiB-aligned
//! stretches, which the global allocator does not promise a `Vec`. With
//! them off (`never`), or on other systems, this is a plain buffer.
//!
//! The capacity is fixed at construction, as everything the engine holds
//! is: a push past it is refused, never a reallocation. Elements are
//! `Copy`, so dropping the vector frees the buffer and nothing else.

#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Bytes in one x86_64 / aarch64 transparent huge page.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// A vector of at most `capacity` elements in one allocation that starts on
/// a huge-page boundary when it is at least a huge page long, and that the
/// kernel is asked to back with huge pages. Derefs to the slice of the
/// elements pushed so far.
pub struct HugePageVec<T: Copy> {
    /// Start of the buffer; dangling (never read) when nothing is allocated.
    ptr: NonNull<T>,
    /// Elements initialised, from the start: `len <= capacity`.
    len: usize,
    capacity: usize,
    /// How the buffer was allocated; `None` when it was not (zero bytes).
    layout: Option<Layout>,
}

impl<T: Copy> HugePageVec<T> {
    /// An empty vector with room for `capacity` elements, allocated now
    /// (address space only: pages are faulted in as elements are written).
    ///
    /// Panics if `capacity` elements of `T` would exceed `isize::MAX` bytes,
    /// and aborts if the allocation fails, as `Vec::with_capacity` does.
    pub fn with_capacity(capacity: usize) -> HugePageVec<T> {
        let bytes = capacity
            .checked_mul(std::mem::size_of::<T>())
            .expect("HugePageVec capacity overflows usize");
        if bytes == 0 {
            return HugePageVec {
                ptr: NonNull::dangling(),
                len: 0,
                capacity,
                layout: None,
            };
        }
        let huge = bytes >= HUGE_PAGE_BYTES;
        let align = if huge {
            HUGE_PAGE_BYTES.max(std::mem::align_of::<T>())
        } else {
            std::mem::align_of::<T>()
        };
        let layout = Layout::from_size_align(bytes, align).expect("HugePageVec capacity overflows isize");
        // SAFETY: the layout's size is non-zero (checked above), which is
        // all `alloc` requires; a null result is handled below.
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            alloc::handle_alloc_error(layout)
        };
        if huge {
            advise_huge_pages(raw, bytes);
        }
        HugePageVec {
            ptr,
            len: 0,
            capacity,
            layout: Some(layout),
        }
    }

    /// A vector of `len` copies of `value`, full (capacity `len`). Every
    /// element is written, so every page is resident on return.
    pub fn from_elem(value: T, len: usize) -> HugePageVec<T> {
        let mut v = HugePageVec::with_capacity(len);
        while v.push(value).is_ok() {}
        v
    }

    /// Appends `value`, or hands it back when the vector is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.len == self.capacity {
            return Err(value);
        }
        // SAFETY: `len < capacity`, so the slot lies inside the allocation
        // (for a zero-sized `T`, any aligned non-null pointer is a valid
        // place); `T: Copy` has no destructor, so overwriting the
        // uninitialised slot without dropping it is sound.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
        Ok(())
    }

    /// How many elements the vector can hold.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the buffer starts on a huge-page boundary (only buffers of at
    /// least [`HUGE_PAGE_BYTES`] do).
    pub fn is_huge_page_aligned(&self) -> bool {
        self.layout.is_some() && (self.ptr.as_ptr() as usize) % HUGE_PAGE_BYTES == 0
    }
}

impl<T: Copy> Deref for HugePageVec<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` is non-null and aligned for `T`, the allocation
        // holds `capacity >= len` elements, and the first `len` were
        // initialised by `push`; the borrow of `self` keeps the buffer alive
        // and unaliased by any `&mut`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for HugePageVec<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; the exclusive borrow of `self` makes this
        // the only reference into the buffer.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for HugePageVec<T> {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: `ptr` came from `alloc::alloc(layout)` with this very
            // layout and is freed once, here; elements need no drop (`Copy`).
            unsafe { alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), layout) };
        }
    }
}

// SAFETY: the vector owns its buffer exclusively, like `Vec<T>`: sending it
// moves the elements, sharing it shares only `&[T]`.
unsafe impl<T: Copy + Send> Send for HugePageVec<T> {}
// SAFETY: as above; `&HugePageVec<T>` gives out only `&T`.
unsafe impl<T: Copy + Sync> Sync for HugePageVec<T> {}

impl<T: Copy> fmt::Debug for HugePageVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HugePageVec")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("huge_page_aligned", &self.is_huge_page_aligned())
            .finish()
    }
}

/// Asks the kernel to back `[start, start + bytes)` with transparent huge
/// pages. Best effort: a kernel without them refuses (EINVAL) and the range
/// keeps ordinary pages, which is correct, only slower.
#[cfg(target_os = "linux")]
fn advise_huge_pages(start: *mut u8, bytes: usize) {
    // Whole 4 KiB pages only, so that the advice never reaches past the
    // buffer into memory the allocator hands to someone else.
    let len = bytes & !4095;
    // SAFETY: MADV_HUGEPAGE changes only the kernel's paging policy for the
    // range, never its contents or mappings; `start` is 2 MiB-aligned (so
    // page-aligned, as madvise requires) and the range lies inside this
    // vector's allocation.
    let _ = unsafe { libc::madvise(start.cast::<libc::c_void>(), len, libc::MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: *mut u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_up_to_capacity_then_refuses() {
        let mut v = HugePageVec::with_capacity(3);
        assert_eq!(v.len(), 0);
        for x in [7u32, 8, 9] {
            assert_eq!(v.push(x), Ok(()));
        }
        assert_eq!(v.push(10), Err(10));
        assert_eq!(&v[..], &[7, 8, 9]);
        v[1] = 80;
        assert_eq!(&v[..], &[7, 80, 9]);
        assert_eq!(v.capacity(), 3);
    }

    #[test]
    fn large_buffers_start_on_a_huge_page_and_every_buffer_is_aligned_for_its_elements() {
        let big = HugePageVec::from_elem(0xA5u8, HUGE_PAGE_BYTES + 1);
        assert!(big.is_huge_page_aligned());
        assert_eq!(big.len(), HUGE_PAGE_BYTES + 1);
        assert!(big.iter().all(|&b| b == 0xA5));
        let entries = HugePageVec::from_elem((1u64, 2u32), 1 << 18);
        assert!(entries.is_huge_page_aligned());
        assert_eq!(entries[(1 << 18) - 1], (1, 2));
        let small = HugePageVec::from_elem(1u64, 10);
        assert_eq!(small.as_ptr() as usize % std::mem::align_of::<u64>(), 0);
        assert_eq!(&small[..], &[1; 10]);
    }

    #[test]
    fn zero_capacity_and_zero_sized_elements_allocate_nothing() {
        let mut empty: HugePageVec<u64> = HugePageVec::with_capacity(0);
        assert_eq!(empty.push(1), Err(1));
        assert!(empty.is_empty());
        let mut units = HugePageVec::with_capacity(5);
        for _ in 0..5 {
            assert_eq!(units.push(()), Ok(()));
        }
        assert_eq!(units.push(()), Err(()));
        assert_eq!(units.len(), 5);
        assert!(!units.is_huge_page_aligned());
    }

    /// Where the kernel has transparent huge pages in `always` or `madvise`
    /// mode, a written huge-page-aligned buffer lies in a mapping advised
    /// for them (`hg` in its `VmFlags`) and backed by at least one. The
    /// mapping is found by address in `/proc/self/smaps`, so engines built
    /// and dropped by tests on other threads do not disturb the reading.
    /// Skipped, with a message, where the mode is `never` or unreadable.
    #[cfg(target_os = "linux")]
    #[test]
    fn written_buffers_get_huge_pages_where_the_kernel_offers_them() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if !(mode.contains("[always]") || mode.contains("[madvise]")) {
            eprintln!("transparent huge pages not offered ({mode:?}): skipped");
            return;
        }
        let v = HugePageVec::from_elem(1u64, 4 * HUGE_PAGE_BYTES / 8);
        assert_eq!(v.len(), HUGE_PAGE_BYTES / 2);
        let at = v.as_ptr() as usize;
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps readable");
        let mut in_mapping = false;
        let (mut huge_kib, mut flags) = (None, None);
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = first.split_once('-') {
                if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) {
                    in_mapping = lo <= at && at < hi;
                    continue;
                }
            }
            if !in_mapping {
                continue;
            }
            if let Some(kib) = line.strip_prefix("AnonHugePages:") {
                huge_kib = kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok();
            } else if let Some(f) = line.strip_prefix("VmFlags:") {
                flags = Some(f.split_whitespace().map(str::to_string).collect::<Vec<_>>());
            }
        }
        let flags = flags.expect("the buffer's mapping is in smaps");
        assert!(
            flags.iter().any(|f| f == "hg"),
            "mapping not advised for huge pages: {flags:?}"
        );
        // At least one of the four pages (the kernel may be short of free
        // 2 MiB blocks for the others).
        let huge_kib = huge_kib.unwrap_or(0);
        assert!(
            huge_kib >= (HUGE_PAGE_BYTES / 1024) as u64,
            "AnonHugePages {huge_kib} kB"
        );
    }
}
