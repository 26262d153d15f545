//! The only place in the journal that needs `unsafe`: mapping segment files
//! into memory and preallocating their blocks. Everything else works on the
//! resulting byte slices.
//!
//! Ground rules that make the mappings sound:
//! * A segment file is created at its final size (preallocated) *before* it
//!   is mapped, and nothing in this crate ever shrinks or truncates a file
//!   that is mapped, so no access through a mapping can fall past the end of
//!   the file (which would raise SIGBUS). Discarding a suffix
//!   (`JournalWriter::truncate_from`) zeroes slots and unlinks whole later
//!   segment files, which leaves any existing mapping of them valid.
//! * One process owns a journal directory for writing (the sequencer).
//!   Readers (`peregrine replay`, recovery) map read-only and treat the bytes
//!   as untrusted plain data: every `u8` value is valid, every decode is
//!   total and CRC-checked. A replay run against a live journal may observe
//!   a record half-written; it shows up as a torn tail, never as undefined
//!   behaviour at the hardware level.
#![allow(unsafe_code)]

use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Maps the whole of `file` read-only.
pub fn map_read(file: &File) -> io::Result<Mmap> {
    // SAFETY: read-only shared mapping of a file that this process does not
    // truncate while mapped (module rules above). The length is taken from
    // the file itself, so every byte of the mapping is backed by the file.
    unsafe { MmapOptions::new().map(file) }
}

/// Maps the whole of `file` read-write and shared. With `populate` the
/// pages are faulted in up front so that appends do not take major faults:
/// with `writable` too, write-faulted (see [`prefault_writable`]);
/// otherwise read-faulted (MAP_POPULATE), which maps a shared file's pages
/// read-only, so each page still faults on its first write.
pub fn map_write(file: &File, populate: bool, writable: bool) -> io::Result<MmapMut> {
    let mut opts = MmapOptions::new();
    if populate && !writable {
        opts.populate();
    }
    // SAFETY: shared writable mapping of a segment file that was created at
    // its final, preallocated size before this call; the journal writer is
    // the directory's only writer and never truncates a mapped file, so the
    // mapping stays fully backed for its lifetime. No other mapping of the
    // file is written through concurrently.
    let map = unsafe { opts.map_mut(file) }?;
    if populate && writable && !prefault_writable(&map) {
        prefault_readable(&map);
    }
    Ok(map)
}

/// Bytes faulted in per call. Faulting in holds the process's address-space
/// lock; a whole 64 MiB segment at once held it for 30-90 ms here, and any
/// thread that needed the lock exclusively (the allocator growing a heap, a
/// `munmap`) waited that long, and with it every thread that then took a
/// page fault, the polling loops included. 2 MiB (512 pages) at a time
/// lets them in between.
const PREFAULT_CHUNK: usize = 2 << 20;

/// Write-faults every page of `map` now (`MADV_POPULATE_WRITE`, Linux
/// 5.14+), a chunk at a time, so that appends never take the fault a
/// shared file page takes on its first write (where the filesystem also
/// turns a preallocated block into a written one). Called by whoever maps
/// the segment: for a segment prepared ahead, the precreate thread, not
/// the appender. False when the kernel refused (too old): nothing done.
///
/// The pages are dirty from then on, so writeback writes the segment's
/// zeros ahead of its records, and a sync of the whole file (`fdatasync`)
/// writes all of it and makes the pages read-only again (each faults once
/// more on its next write).
pub fn prefault_writable(map: &MmapMut) -> bool {
    (0..map.len()).step_by(PREFAULT_CHUNK).all(|at| {
        let len = PREFAULT_CHUNK.min(map.len() - at);
        map.advise_range(memmap2::Advice::PopulateWrite, at, len).is_ok()
    })
}

/// Read-faults every page of `map` (as MAP_POPULATE would), one read per
/// page: where the kernel cannot write-fault ahead.
fn prefault_readable(map: &MmapMut) {
    let sum = map.iter().step_by(4096).fold(0u8, |acc, &b| acc ^ b);
    std::hint::black_box(sum);
}

/// Starts writeback of every dirty page of `file` without waiting for it
/// (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`): not a durability
/// point (no metadata, no wait), only a head start, so that dirty pages do
/// not pile up until the kernel throttles whoever dirties more.
pub fn start_writeback(file: &File) -> io::Result<()> {
    // SAFETY: plain syscall on a file descriptor that `file` keeps open for
    // the duration of the call; offset 0 and length 0 mean "to the end of
    // the file"; no memory is passed to the kernel.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Allocates disk blocks for bytes `0..len` of `file` (fallocate mode 0:
/// the file grows to `len`, reads return zeros, and later writes through a
/// mapping cannot fail for lack of space).
pub fn fallocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain syscall on a file descriptor that `file` keeps open for
    // the duration of the call; no memory is passed to the kernel.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
