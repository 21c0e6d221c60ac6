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
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Kinds of traced operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceOp {
    /// `create_dir_all`.
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
    live: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
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
            .field("files", &st.live.keys().collect::<Vec<_>>())
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
        self.lock().live.keys().cloned().collect()
    }

    /// The storage a crash would leave behind. Locks are released; faults and trace start empty.
    #[must_use]
    pub fn crash(&self, mode: CrashMode) -> MemStorage {
        let st = self.lock();
        let mut rng = Rng(match mode {
            CrashMode::Torn { seed } => seed ^ 0x9e37_79b9_7f4a_7c15,
            _ => 1,
        });
        let keep_dir_ops = match mode {
            CrashMode::KeepAll => st.pending_dir.len(),
            CrashMode::DropUnsynced => 0,
            CrashMode::Torn { .. } => rng.below(st.pending_dir.len() as u64 + 1) as usize,
        };
        let mut entries = st.durable.clone();
        for op in &st.pending_dir[..keep_dir_ops] {
            match op {
                DirOp::Link(p, ino) => entries.insert(p.clone(), *ino),
                DirOp::Unlink(p) => entries.remove(p),
            };
        }
        let mut out = MemState {
            dirs: st.dirs.clone(),
            next_ino: st.next_ino,
            ..MemState::default()
        };
        for (path, ino) in entries {
            out.inodes.entry(ino).or_insert_with(|| {
                let bytes = crash_contents(&st.inodes[&ino], mode, &mut rng);
                Inode {
                    durable: bytes.clone(),
                    live: bytes,
                    ..Inode::default()
                }
            });
            out.live.insert(path.clone(), ino);
            out.durable.insert(path, ino);
        }
        MemStorage {
            state: Arc::new(Mutex::new(out)),
        }
    }
}

fn crash_contents(inode: &Inode, mode: CrashMode, rng: &mut Rng) -> Vec<u8> {
    match mode {
        CrashMode::KeepAll => return inode.live.clone(),
        CrashMode::DropUnsynced => return inode.durable.clone(),
        CrashMode::Torn { .. } => {}
    }
    let mut bytes = inode.durable.clone();
    for w in &inode.pending {
        match w {
            PendingWrite::SetLen(len) => {
                if rng.below(2) == 0 {
                    bytes.resize(*len as usize, 0);
                }
            }
            PendingWrite::Write { offset, data } => {
                let (keep, fill) = match rng.below(5) {
                    0 => (0, None),
                    1 | 2 => (data.len(), None),
                    3 => (rng.below(data.len() as u64 + 1) as usize, Some(0u8)),
                    _ => (rng.below(data.len() as u64 + 1) as usize, Some(0xa5)),
                };
                let mut torn = data[..keep].to_vec();
                if let Some(fill) = fill {
                    torn.extend(
                        (keep..data.len()).map(|i| if fill == 0 { 0 } else { rng.byte(i) }),
                    );
                }
                apply_write(&mut bytes, *offset, &torn);
            }
        }
    }
    bytes
}

fn apply_write(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let offset = offset as usize;
    if bytes.len() < offset + data.len() {
        bytes.resize(offset + data.len(), 0);
    }
    bytes[offset..offset + data.len()].copy_from_slice(data);
}

/// A small deterministic generator (xorshift64*), so the library needs no `rand`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn byte(&mut self, _i: usize) -> u8 {
        (self.next() >> 32) as u8
    }
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
struct MemFile {
    storage: MemStorage,
    ino: u64,
    path: PathBuf,
    writable: bool,
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
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        Ok(names)
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

impl StorageFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        let st = self.storage.lock();
        Ok(st.inodes[&self.ino].live.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut st = self.storage.lock();
        check(st.begin(TraceOp::Read, &self.path, offset, buf.len() as u64))?;
        let live = &st.inodes[&self.ino].live;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start.checked_add(buf.len()).filter(|&e| e <= live.len());
        let Some(end) = end else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        buf.copy_from_slice(&live[start..end]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.storage.lock();
        if !self.writable {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        let fault = st.begin(TraceOp::Write, &self.path, offset, buf.len() as u64);
        let stored = match fault {
            None => buf,
            Some(Fault::ShortWrite(n)) => &buf[..n.min(buf.len())],
            Some(f) => return Err(fault_error(f)),
        };
        let inode = st.inodes.get_mut(&self.ino).expect("open inode exists");
        apply_write(&mut inode.live, offset, stored);
        if let Some(view) = inode.disk_view.as_mut() {
            apply_write(view, offset, stored);
        }
        inode.pending.push(PendingWrite::Write {
            offset,
            data: stored.to_vec(),
        });
        check(fault)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.storage.lock();
        check(st.begin(TraceOp::SetLen, &self.path, len, 0))?;
        let inode = st.inodes.get_mut(&self.ino).expect("open inode exists");
        let new_len = usize::try_from(len).map_err(io::Error::other)?;
        inode.live.resize(new_len, 0);
        if let Some(view) = inode.disk_view.as_mut() {
            view.resize(new_len, 0);
        }
        inode.pending.push(PendingWrite::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.storage.lock();
        let fault = st.begin(TraceOp::SyncData, &self.path, 0, 0);
        let inode = st.inodes.get_mut(&self.ino).expect("open inode exists");
        match fault {
            None => {
                inode.durable = inode.disk_view.take().unwrap_or_else(|| inode.live.clone());
                inode.pending.clear();
                Ok(())
            }
            Some(Fault::FsyncGate) => {
                // The kernel drops the dirty state: the data never becomes durable, and the
                // next sync has nothing left to report, though reads still see the new bytes.
                inode.disk_view = Some(inode.durable.clone());
                inode.pending.clear();
                Err(fault_error(Fault::FsyncGate))
            }
            Some(f) => Err(fault_error(f)),
        }
    }

    fn contents(&self) -> io::Result<Contents> {
        let mut st = self.storage.lock();
        let len = st.inodes[&self.ino].live.len() as u64;
        check(st.begin(TraceOp::Read, &self.path, 0, len))?;
        Ok(Contents::Owned(st.inodes[&self.ino].live.clone()))
    }
}
