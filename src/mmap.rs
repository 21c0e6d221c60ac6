//! The one memory mapping in the library, and the only module allowed `unsafe`: the mapping,
//! and on Linux one system call the standard library does not wrap (`sync_file_range`).
//!
//! Sealed segments are mapped read-only for scans so that verify, dump and export touch each
//! byte once without copying it. A mapping of a file that shrinks raises SIGBUS on access, so the
//! contract is: map only files that nothing truncates while the map lives. The locking design
//! gives that: only the last segment of a log is ever truncated (torn-tail repair, under the
//! writer lock), sealed segments are never written again, and compaction replaces files by
//! rename and unlink, which leaves an existing mapping valid. The last segment is mapped only by a
//! writer's open while it holds the writer lock, which every truncation also needs, and the
//! mapping is dropped before open itself cuts a torn tail; readers without the lock read it a
//! bounded window at a time (`window/`).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

/// A read-only mapping of a whole file.
#[derive(Debug)]
pub struct Map(memmap2::Mmap);

impl Map {
    /// Maps `file`, which must be a sealed segment or the last segment under the writer lock
    /// (see the module contract).
    ///
    /// # Errors
    ///
    /// The operating system's error.
    pub(crate) fn sealed(file: &File) -> io::Result<Map> {
        // SAFETY: the file is a sealed segment, which no walctl process truncates or rewrites,
        // or the last segment while this process holds the writer lock (module docs). A
        // foreign process modifying it would break that promise; the worst outcome is then a
        // checksum failure or SIGBUS, never reading outside the mapping.
        // Populating the whole mapping up front (MAP_POPULATE on Linux) replaces one page fault
        // per 4 KiB with one call: scans read every byte anyway.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(file)? };
        Ok(Map(map))
    }
}

impl std::ops::Deref for Map {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Asks Linux to start writing a byte range of `file` to the device without waiting for it
/// (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`), so a later fdatasync has less left to do.
/// Promises no durability.
///
/// # Errors
///
/// The operating system's error.
#[cfg(target_os = "linux")]
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Ok(());
    };
    // SAFETY: a plain system call on a descriptor this `File` owns and keeps open for the
    // duration of the call; it reads and writes no memory of ours.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The system call's result is read the right way round: a range of a file starts its
    /// writeback, and a range past what a file offset can hold is the kernel's EINVAL.
    #[test]
    fn start_writeback_reports_the_kernels_answer() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &[7u8; 8192]).unwrap();
        start_writeback(&file, 0, 8192).expect("writeback of written bytes starts");
        let past = start_writeback(&file, i64::MAX as u64, 1).unwrap_err();
        assert_eq!(past.raw_os_error(), Some(libc::EINVAL));
    }
}
