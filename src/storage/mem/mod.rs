//! [`MemStorage`]: an in-memory backend that knows what a crash would keep.
//!
//! Every file keeps its durable bytes (as of its last `sync_data`) and the ordered list of writes
//! and truncations since then. Every directory keeps the ordered list of entry changes (create,
//! rename, remove) since its last `sync_dir`. [`MemStorage::crash`] builds the storage a power
//! loss could leave: each pending write kept, dropped, or torn into zeros or garbage, and a
//! prefix of the pending directory changes applied (so a rename can be seen half done: both
//! names present). Faults can be injected at any operation, and every operation is traced, which
//! is what the crash, protocol and error-sweep tests are built on.

use super::{Contents, DirSync, LockKind, OpenMode, Storage, StorageFile, StorageLock};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

mod crash;
mod file;

use file::MemFile;

/// Kinds of traced operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceOp {
    /// `create_dir_all` or `create_dir_new`.
    CreateDir,
    /// `list`.
    List,
    /// `open` of an existing file.
    Open,
    /// `open` with [`OpenMode::CreateNew`].
    Create,
    /// `read_at` or `contents`.
    Read,
    /// `write_at`.
    Write,
    /// `set_len`.
    SetLen,
    /// `sync_data`.
    SyncData,
    /// `sync_dir`.
    SyncDir,
    /// `rename`.
    Rename,
    /// `remove`.
    Remove,
    /// `try_lock`.
    Lock,
}

/// One traced operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// Position in the trace, from 0.
    pub index: u64,
    /// What was done.
    pub op: TraceOp,
    /// The file or directory (for a rename, the source).
    pub path: PathBuf,
    /// For a rename, the target.
    pub target: Option<PathBuf>,
    /// Offset of a read or write, or the new length of a `set_len`.
    pub offset: u64,
    /// Bytes read or written.
    pub len: u64,
    /// Whether the operation succeeded.
    pub ok: bool,
}

/// A fault to inject into one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fail with this raw OS error (for example `libc::EIO`), changing nothing.
    Errno(i32),
    /// For a write: store only the first `n` bytes, then fail with EIO.
    ShortWrite(usize),
    /// For `sync_data`: fail with EIO and, as Linux does after a writeback error, mark the
    /// pending writes clean without making them durable (the fsyncgate behaviour): a later
    /// `sync_data` then "succeeds" while the data is not on disk.
    FsyncGate,
}

/// Decides, for each operation about to run, whether it fails.
pub type FaultPlan = Box<dyn FnMut(&OpRecord) -> Option<Fault> + Send>;

/// What a simulated crash keeps of the writes and directory changes not yet synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// A process crash: the page cache survives, everything written is kept.
    KeepAll,
    /// A power loss where nothing unsynced reached the disk.
    DropUnsynced,
    /// A power loss where each unsynced write is independently kept, dropped, or torn into
    /// zeros or garbage, and a random prefix of directory changes survives; driven by the seed.
    Torn {
        /// Seed of the deterministic choice; print it to replay.
        seed: u64,
    },
}

/// The in-memory backend. Clones share one file system.
#[derive(Clone, Default)]
pub struct MemStorage {
    state: Arc<Mutex<MemState>>,
}

#[derive(Default)]
struct MemState {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    // Hash maps, not ordered ones: a `Path`'s ordering compares component by component, which
    // was a tenth of the scenario fuzz target's time. What must be ordered (listings, the
    // crash builder's walk) sorts its own copy.
    live: HashMap<PathBuf, u64>,
    durable: HashMap<PathBuf, u64>,
    pending_dir: Vec<DirOp>,
    dirs: Vec<PathBuf>,
    locks: HashMap<PathBuf, (u32, bool)>,
    trace: Vec<OpRecord>,
    faults: Option<FaultPlan>,
}

#[derive(Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    live: Vec<u8>,
    pending: Vec<PendingWrite>,
    /// After a failed fsync, what the disk will get on the next "successful" one: the live bytes
    /// without the writes the kernel dropped.
    disk_view: Option<Vec<u8>>,
}

#[derive(Clone)]
enum PendingWrite {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone)]
enum DirOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
}

impl fmt::Debug for MemStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("MemStorage")
            .field("files", &sorted(st.live.keys().cloned()))
            .finish()
    }
}

impl MemStorage {
    /// An empty file system.
    #[must_use]
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // A panic while holding this lock is a test failure already; keep going with the data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Installs (or removes) a fault plan consulted before every operation.
    pub fn set_faults(&self, plan: Option<FaultPlan>) {
        self.lock().faults = plan;
    }

    /// The operations performed so far.
    #[must_use]
    pub fn trace(&self) -> Vec<OpRecord> {
        self.lock().trace.clone()
    }

    /// Number of operations performed so far.
    #[must_use]
    pub fn op_count(&self) -> u64 {
        self.lock().trace.len() as u64
    }

    /// The live bytes of a file, as a reader would see them now.
    #[must_use]
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        st.live.get(path).map(|ino| st.inodes[ino].live.clone())
    }

    /// Replaces a file's bytes, live and durable alike: the tool for planting damage.
    pub fn set_file_bytes(&self, path: &Path, bytes: Vec<u8>) {
        let mut st = self.lock();
        let ino = st
            .live
            .get(path)
            .copied()
            .unwrap_or_else(|| st.alloc_inode());
        st.live.insert(path.to_path_buf(), ino);
        st.durable.insert(path.to_path_buf(), ino);
        let inode = st.inodes.get_mut(&ino).expect("allocated");
        inode.durable.clone_from(&bytes);
        inode.live = bytes;
        inode.pending.clear();
        inode.disk_view = None;
    }

    /// Removes a file at once, live and durable: planting a missing segment.
    pub fn delete_file(&self, path: &Path) {
        let mut st = self.lock();
        st.live.remove(path);
        st.durable.remove(path);
    }

    /// Paths of all live files, sorted.
    #[must_use]
    pub fn files(&self) -> Vec<PathBuf> {
        sorted(self.lock().live.keys().cloned())
    }
}

fn sorted<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = items.collect();
    v.sort_unstable();
    v
}

/// Writes `data` at `offset`, growing `bytes` with zeros first as a file would (shared by live
/// writes and by the crash builder replaying pending ones).
fn apply_write(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let offset = offset as usize;
    if bytes.len() < offset + data.len() {
        bytes.resize(offset + data.len(), 0);
    }
    bytes[offset..offset + data.len()].copy_from_slice(data);
}

impl MemState {
    fn alloc_inode(&mut self) -> u64 {
        self.next_ino += 1;
        self.inodes.insert(self.next_ino, Inode::default());
        self.next_ino
    }

    /// Records the operation and consults the fault plan. Returns the fault to apply, if any.
    fn begin(&mut self, op: TraceOp, path: &Path, offset: u64, len: u64) -> Option<Fault> {
        let record = OpRecord {
            index: self.trace.len() as u64,
            op,
            path: path.to_path_buf(),
            target: None,
            offset,
            len,
            ok: true,
        };
        let fault = self.faults.as_mut().and_then(|plan| plan(&record));
        self.trace.push(OpRecord {
            ok: fault.is_none(),
            ..record
        });
        fault
    }

    fn ino(&self, path: &Path) -> io::Result<u64> {
        self.live
            .get(path)
            .copied()
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}

fn fault_error(fault: Fault) -> io::Error {
    match fault {
        Fault::Errno(code) => io::Error::from_raw_os_error(code),
        Fault::ShortWrite(_) | Fault::FsyncGate => io::Error::from_raw_os_error(5),
    }
}

fn check(fault: Option<Fault>) -> io::Result<()> {
    fault.map_or(Ok(()), |f| Err(fault_error(f)))
}

#[derive(Debug)]
struct MemLock {
    storage: MemStorage,
    path: PathBuf,
    exclusive: bool,
}

impl StorageLock for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        let mut st = self.storage.lock();
        if let Some(entry) = st.locks.get_mut(&self.path) {
            if self.exclusive {
                entry.1 = false;
            } else {
                entry.0 = entry.0.saturating_sub(1);
            }
        }
    }
}

impl Storage for MemStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        check(st.begin(TraceOp::CreateDir, dir, 0, 0))?;
        if !st.dirs.iter().any(|d| d == dir) {
            st.dirs.push(dir.to_path_buf());
        }
        Ok(())
    }

    fn create_dir_new(&self, dir: &Path) -> io::Result<()> {
        // Parents are not modelled (create_dir_all records only the leaf), so only the name
        // itself is checked.
        let mut st = self.lock();
        check(st.begin(TraceOp::CreateDir, dir, 0, 0))?;
        if st.live.contains_key(dir) || st.dirs.iter().any(|d| d == dir) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        st.dirs.push(dir.to_path_buf());
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut st = self.lock();
        check(st.begin(TraceOp::List, dir, 0, 0))?;
        if !st.dirs.iter().any(|d| d == dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let names = st
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned));
        Ok(sorted(names))
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut st = self.lock();
        let op = if mode == OpenMode::CreateNew {
            TraceOp::Create
        } else {
            TraceOp::Open
        };
        check(st.begin(op, path, 0, 0))?;
        let ino = if mode == OpenMode::CreateNew {
            if st.live.contains_key(path) {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            if !path
                .parent()
                .is_some_and(|p| st.dirs.iter().any(|d| d == p))
            {
                return Err(io::ErrorKind::NotFound.into());
            }
            let ino = st.alloc_inode();
            st.live.insert(path.to_path_buf(), ino);
            st.pending_dir.push(DirOp::Link(path.to_path_buf(), ino));
            ino
        } else {
            st.ino(path)?
        };
        drop(st);
        Ok(Arc::new(MemFile {
            storage: self.clone(),
            ino,
            path: path.to_path_buf(),
            writable: mode != OpenMode::Read,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let fault = st.begin(TraceOp::Rename, from, 0, 0);
        if let Some(last) = st.trace.last_mut() {
            last.target = Some(to.to_path_buf());
        }
        check(fault)?;
        let ino = st.ino(from)?;
        st.live.remove(from);
        st.live.insert(to.to_path_buf(), ino);
        st.pending_dir.push(DirOp::Link(to.to_path_buf(), ino));
        st.pending_dir.push(DirOp::Unlink(from.to_path_buf()));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        check(st.begin(TraceOp::Remove, path, 0, 0))?;
        st.ino(path)?;
        st.live.remove(path);
        st.pending_dir.push(DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<DirSync> {
        let mut st = self.lock();
        check(st.begin(TraceOp::SyncDir, dir, 0, 0))?;
        let pending = std::mem::take(&mut st.pending_dir);
        let (mine, others): (Vec<DirOp>, Vec<DirOp>) = pending.into_iter().partition(|op| {
            let p = match op {
                DirOp::Link(p, _) | DirOp::Unlink(p) => p,
            };
            p.parent() == Some(dir)
        });
        for op in mine {
            match op {
                DirOp::Link(p, ino) => st.durable.insert(p, ino),
                DirOp::Unlink(p) => st.durable.remove(&p),
            };
        }
        st.pending_dir = others;
        Ok(DirSync::Synced)
    }

    fn try_lock(&self, path: &Path, kind: LockKind) -> io::Result<Box<dyn StorageLock>> {
        let mut st = self.lock();
        check(st.begin(TraceOp::Lock, path, 0, 0))?;
        if !st.live.contains_key(path) {
            // Like the real backend, locking creates the lock file.
            let ino = st.alloc_inode();
            st.live.insert(path.to_path_buf(), ino);
            st.pending_dir.push(DirOp::Link(path.to_path_buf(), ino));
        }
        let entry = st.locks.entry(path.to_path_buf()).or_insert((0, false));
        let exclusive = kind == LockKind::Exclusive;
        if entry.1 || (exclusive && entry.0 > 0) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if exclusive {
            entry.1 = true;
        } else {
            entry.0 += 1;
        }
        Ok(Box::new(MemLock {
            storage: self.clone(),
            path: path.to_path_buf(),
            exclusive,
        }))
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.lock();
        st.live.contains_key(path) || st.dirs.iter().any(|d| d == path)
    }
}
