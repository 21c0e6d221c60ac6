//! [`FsStorage`]: the real file system.
//!
//! Files are opened without following symlinks and checked to be regular files before use, new
//! files are created exclusively with mode 0600, and directories with mode 0700. Durability goes
//! through std's `sync_data`, which is fdatasync on Linux and `F_FULLFSYNC` on macOS. Everything
//! platform-specific is behind `cfg` so that the crate builds on macOS and Windows.

use super::{Contents, DirSync, LockKind, OpenMode, Storage, StorageFile, StorageLock};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Files up to this size are read into memory rather than mapped: for a small segment, a map
/// and an unmap cost more system calls and page-table work than one read.
const READ_RATHER_THAN_MAP: u64 = 256 << 10;

/// The real file-system backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

impl FsStorage {
    /// A handle on the real file system.
    #[must_use]
    pub fn new() -> FsStorage {
        FsStorage
    }
}

#[derive(Debug)]
struct FsFile {
    file: File,
}

#[derive(Debug)]
struct FsLock {
    // Dropping the file closes it, which releases the flock.
    _file: File,
}

impl StorageLock for FsLock {}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        private_dirs(true).create(dir)
    }

    fn create_dir_new(&self, dir: &Path) -> io::Result<()> {
        // mkdir(2) fails with EEXIST on any existing name and never follows a final symlink.
        private_dirs(false).create(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut opts = OpenOptions::new();
        match mode {
            OpenMode::Read => opts.read(true),
            OpenMode::ReadWrite => opts.read(true).write(true),
            OpenMode::CreateNew => opts.read(true).write(true).create_new(true),
        };
        platform::harden(&mut opts);
        let file = opts.open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        Ok(Arc::new(FsFile { file }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<DirSync> {
        platform::sync_dir(dir)
    }

    fn try_lock(&self, path: &Path, kind: LockKind) -> io::Result<Box<dyn StorageLock>> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        platform::harden(&mut opts);
        let file = opts.open(path)?;
        let result = match kind {
            LockKind::Exclusive => file.try_lock(),
            LockKind::Shared => file.try_lock_shared(),
        };
        match result {
            Ok(()) => Ok(Box::new(FsLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn exists(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok()
    }

    fn locks_outlive_their_holder(&self) -> bool {
        true
    }
}

/// Creates directories with mode 0700 where the platform has modes.
fn private_dirs(recursive: bool) -> fs::DirBuilder {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(recursive);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

impl StorageFile for FsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        platform::read_exact_at(&self.file, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        platform::write_all_at(&self.file, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        platform::start_writeback(&self.file, offset, len)
    }

    fn contents(&self) -> io::Result<Contents> {
        let len = self.len()?;
        if len <= READ_RATHER_THAN_MAP {
            let mut bytes = vec![0u8; len as usize];
            platform::read_exact_at(&self.file, &mut bytes, 0)?;
            return Ok(Contents::Owned(bytes));
        }
        Ok(Contents::Mapped(crate::mmap::Map::sealed(&self.file)?))
    }
}

#[cfg(unix)]
mod platform {
    use super::DirSync;
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    use std::path::Path;

    /// No symlink is followed at the last component; a FIFO planted at a segment's name does not
    /// block the open; new files get mode 0600 whatever the umask allows above it.
    pub(super) fn harden(opts: &mut OpenOptions) {
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .mode(0o600);
    }

    pub(super) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        file.read_exact_at(buf, offset)
    }

    /// Starts writeback without waiting (Linux); see `crate::mmap::start_writeback`.
    #[cfg(target_os = "linux")]
    pub(super) fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
        crate::mmap::start_writeback(file, offset, len)
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn start_writeback(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }

    /// A symlink at `dir` is followed: operators put a log on another disk by linking its
    /// directory, and the directory the link leads to is the one whose entries must reach the
    /// disk. Syncing a directory changes nothing in it, so following a planted link is harmless;
    /// `O_DIRECTORY` refuses anything else (a FIFO there fails at once instead of blocking).
    pub(super) fn sync_dir(dir: &Path) -> io::Result<DirSync> {
        let handle = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)?;
        match handle.sync_all() {
            Ok(()) => Ok(DirSync::Synced),
            // Some file systems cannot fsync a directory. That is tolerated only here, on a
            // handle opened with O_DIRECTORY, and reported as degraded durability.
            Err(e) if cannot_sync_dirs(&e) => Ok(DirSync::Unsupported),
            Err(e) => Err(e),
        }
    }

    /// Whether a directory fsync failed because the file system does not do it, rather than
    /// because it failed (EIO, ENOSPC...: those are errors, never "unsupported").
    pub(super) fn cannot_sync_dirs(e: &io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP))
            || e.raw_os_error() == Some(libc::EOPNOTSUPP)
    }
}

#[cfg(windows)]
mod platform {
    use super::DirSync;
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::windows::fs::FileExt;
    use std::path::Path;

    pub(super) fn harden(_opts: &mut OpenOptions) {}

    pub(super) fn read_exact_at(
        file: &File,
        mut buf: &mut [u8],
        mut offset: u64,
    ) -> io::Result<()> {
        while !buf.is_empty() {
            match file.seek_read(buf, offset)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }

    pub(super) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match file.seek_write(buf, offset)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }

    /// Windows cannot flush a directory handle opened this way; renames there are durable
    /// through the NTFS journal, which is what the caller is told by `Unsupported`.
    pub(super) fn sync_dir(_dir: &Path) -> io::Result<DirSync> {
        Ok(DirSync::Unsupported)
    }

    pub(super) fn start_writeback(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small file is read, a larger one mapped; both give the file's bytes.
    #[test]
    fn contents_read_small_files_and_map_larger_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let storage = FsStorage::new();
        for len in [
            0,
            1,
            READ_RATHER_THAN_MAP,
            READ_RATHER_THAN_MAP + 1,
            3 << 20,
        ] {
            let path = tmp.path().join(format!("f{len}"));
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            std::fs::write(&path, &bytes).unwrap();
            let file = storage.open(&path, OpenMode::Read).unwrap();
            let contents = file.contents().unwrap();
            assert_eq!(&contents[..], &bytes[..], "{len}");
            let mapped = matches!(contents, Contents::Mapped(_));
            // The threshold written out: the constant itself could drift to 0 unnoticed.
            assert_eq!(mapped, len > 256 * 1024, "{len}");
        }
    }

    /// Only the errors of a file system that cannot fsync a directory degrade durability to
    /// "unsupported"; a failed fsync stays an error, or a lost directory entry would go unseen.
    #[cfg(unix)]
    #[test]
    fn only_a_file_system_without_directory_fsync_is_unsupported() {
        let os = io::Error::from_raw_os_error;
        for errno in [libc::EINVAL, libc::ENOTSUP, libc::EOPNOTSUPP] {
            assert!(platform::cannot_sync_dirs(&os(errno)), "errno {errno}");
        }
        for errno in [
            libc::EIO,
            libc::ENOSPC,
            libc::EBADF,
            libc::EROFS,
            libc::EDQUOT,
        ] {
            assert!(!platform::cannot_sync_dirs(&os(errno)), "errno {errno}");
        }
        assert!(!platform::cannot_sync_dirs(
            &io::ErrorKind::Unsupported.into()
        ));
    }

    /// A log directory may be a symlink (a log moved to another disk and linked into place):
    /// syncing it syncs the directory the link leads to. Anything but a directory is refused.
    #[cfg(unix)]
    #[test]
    fn sync_dir_follows_a_linked_directory_and_refuses_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("disk2");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("wal");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let storage = FsStorage::new();
        storage
            .sync_dir(&link)
            .expect("a linked directory is synced");
        let file = real.join("file");
        std::fs::write(&file, b"x").unwrap();
        let linked_file = tmp.path().join("file-link");
        std::os::unix::fs::symlink(&file, &linked_file).unwrap();
        for path in [&file, &linked_file] {
            let err = storage.sync_dir(path).unwrap_err();
            assert_eq!(
                err.raw_os_error(),
                Some(libc::ENOTDIR),
                "{}",
                path.display()
            );
        }
    }
}
