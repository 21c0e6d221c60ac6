//! The storage seam: every byte the library reads or writes goes through [`Storage`].
//!
//! The trait is deliberately narrow (open, read, write, set length, sync data, sync directory,
//! rename, remove, list, lock) so that a test backend can model exactly what survives a crash.
//! Two backends ship: [`FsStorage`] over the real file system, and [`MemStorage`], which keeps
//! what was written apart from what was synced and can produce the state a power loss would
//! leave behind, inject I/O errors, and record a trace of every operation.

mod fs;
mod mem;

pub use fs::FsStorage;
pub use mem::{CrashMode, Fault, FaultPlan, MemStorage, OpRecord, TraceOp};

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// The directory that holds `path`'s entry, which a directory fsync must cover before a new or
/// renamed `path` is durable: its parent, or `.` for a bare relative name (whose parent is the
/// empty path, which names no directory). `None` for a root, which has no entry.
#[must_use]
pub fn entry_dir(path: &Path) -> Option<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Some(Path::new(".")),
        parent => parent,
    }
}

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Existing file, read only.
    Read,
    /// Existing file, read and write.
    ReadWrite,
    /// New file, read and write; fails if the name exists (never follows a symlink). Created
    /// with mode 0600 where the platform has modes.
    CreateNew,
}

/// Whether a directory fsync took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirSync {
    /// The directory's entries are on stable storage.
    Synced,
    /// The file system refused to fsync a directory (EINVAL and kin); durability of renames and
    /// new files is degraded and the caller reports it.
    Unsupported,
}

/// Kind of advisory lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// One holder at a time: the writer.
    Exclusive,
    /// Many holders; excluded by an exclusive holder. Used only to probe for a live writer.
    Shared,
}

/// A storage backend. Paths are full paths; backends need not support relative ones.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates a directory and its parents (mode 0700 where the platform has modes).
    ///
    /// # Errors
    /// The operating system's error.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates exactly `dir` (mode 0700 where the platform has modes), whose parent exists,
    /// failing with [`io::ErrorKind::AlreadyExists`] when anything has that name, a symlink
    /// included: whoever gets `Ok` made the directory, so nothing planted there is written
    /// through.
    ///
    /// The default checks, then creates, which a name planted in between defeats; both shipped
    /// backends create atomically.
    ///
    /// # Errors
    /// The operating system's error.
    fn create_dir_new(&self, dir: &Path) -> io::Result<()> {
        if self.exists(dir) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        self.create_dir_all(dir)
    }
    /// Names of the entries of a directory (files only; order unspecified).
    ///
    /// # Errors
    /// `NotFound` when the directory does not exist.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens a file. Opening refuses anything that is not a regular file.
    ///
    /// # Errors
    /// The operating system's error.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;
    /// Renames a file within one directory, replacing the target.
    ///
    /// # Errors
    /// The operating system's error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    ///
    /// # Errors
    /// The operating system's error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    ///
    /// # Errors
    /// The operating system's error, other than the "unsupported" family reported as
    /// [`DirSync::Unsupported`].
    fn sync_dir(&self, dir: &Path) -> io::Result<DirSync>;
    /// Takes an advisory lock on `path` (created if missing) without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when another holder excludes it; otherwise the operating system's error.
    fn try_lock(&self, path: &Path, kind: LockKind) -> io::Result<Box<dyn StorageLock>>;
    /// Whether `path` exists (any file type, symlinks not followed).
    fn exists(&self, path: &Path) -> bool;
    /// Whether a lock can look held for a moment after its holder let go: an `flock` is lent
    /// to every child its process forks, until the child execs. Probes for a live writer then
    /// look again over a few milliseconds before they believe it. Default false.
    fn locks_outlive_their_holder(&self) -> bool {
        false
    }
}

/// An open file.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Current length in bytes.
    ///
    /// # Errors
    /// The operating system's error.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    ///
    /// # Errors
    /// The operating system's error.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fills `buf` from `offset`; fails with `UnexpectedEof` if the file is shorter.
    ///
    /// # Errors
    /// The operating system's error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`. A failure may leave part of it written.
    ///
    /// # Errors
    /// The operating system's error.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Truncates or extends the file.
    ///
    /// # Errors
    /// The operating system's error.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// fdatasync: the file's data and size are durable when this returns Ok. Never retried.
    ///
    /// # Errors
    /// The operating system's error.
    fn sync_data(&self) -> io::Result<()>;
    /// Asks the OS to start writing `len` bytes at `offset` to the device without waiting, so a
    /// later fdatasync has less to do. Only a hint: it promises no durability. Default: nothing.
    ///
    /// # Errors
    /// The operating system's error.
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Read-only view of the whole file, memory-mapped where the backend can. Only called on
    /// files that nothing truncates while the view lives (sealed segments, and the last segment
    /// under the writer lock until its torn tail is cut).
    ///
    /// # Errors
    /// The operating system's error.
    fn contents(&self) -> io::Result<Contents>;
}

/// A held lock; dropping it releases the lock.
pub trait StorageLock: Send + Sync + fmt::Debug {}

/// Bytes of a whole file: a mapping or an owned copy.
pub enum Contents {
    /// Read into memory.
    Owned(Vec<u8>),
    /// Memory-mapped (see `crate::mmap` for the safety contract).
    Mapped(crate::mmap::Map),
}

impl std::ops::Deref for Contents {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Contents::Owned(v) => v,
            Contents::Mapped(m) => m,
        }
    }
}

impl fmt::Debug for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Contents({} bytes)", self.len())
    }
}

/// Reads `len` bytes at `offset` into a new buffer, after checking them against `limit`.
pub(crate) fn read_vec(
    file: &dyn StorageFile,
    offset: u64,
    len: u64,
    limit: u64,
) -> io::Result<Vec<u8>> {
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("refusing to read {len} bytes (limit {limit})"),
        ));
    }
    let mut buf = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
    file.read_at(&mut buf, offset)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::entry_dir;
    use std::path::Path;

    #[test]
    fn a_bare_name_lives_in_the_current_directory_and_a_root_in_none() {
        let dir = |p: &str| entry_dir(Path::new(p)).map(|d| d.to_str().unwrap().to_owned());
        assert_eq!(dir("wal").as_deref(), Some("."));
        assert_eq!(dir("./wal").as_deref(), Some("."));
        assert_eq!(dir("a/wal").as_deref(), Some("a"));
        assert_eq!(dir("/data/log").as_deref(), Some("/data"));
        assert_eq!(dir("/log").as_deref(), Some("/"));
        assert_eq!(dir("/"), None);
    }
}
