//! Installing a compacted log, and finishing or rolling back an interrupted installation.
//!
//! The protocol (FORMAT.md §6.6) switches from the old segments `a..=b` to the new ones
//! `b+1..=c` so that every crash state is either the whole old log or the whole new one:
//!
//! 1. the new segments are written as `N.wal.tmp`, each fdatasynced; the directory is fsynced;
//! 2. the marker `COMPACTION` (old and new ranges) is written to a temporary name, fdatasynced,
//!    renamed into place, and the directory fsynced: the commit point;
//! 3. each temporary is renamed to `N.wal`; the directory is fsynced;
//! 4. under an exclusive lock on `READERS` (readers hold it shared while they scan), the old
//!    segments are removed and the directory fsynced;
//! 5. the marker is removed and the directory fsynced.
//!
//! While the marker exists, readers use the old range if all of it is present, else the new
//! one; so they see one log or the other. Whoever opens the log next (a writer or compaction)
//! calls [`resolve`], which rolls forward from any state after step 2 and back before it.

use crate::error::{Error, Result};
use crate::repair::sync_dir;
use crate::segment::{Listing, temp_name};
use crate::storage::{LockKind, OpenMode, Storage, StorageLock, read_vec};
use std::io;
use std::path::Path;

/// Name of the compaction marker (FORMAT.md §1).
pub const MARKER_NAME: &str = "COMPACTION";

/// Name of the lock readers hold shared while they scan (FORMAT.md §6.5).
pub const READERS_LOCK_NAME: &str = "READERS";

const MARKER_TEMP: &str = "COMPACTION.tmp";
const MARKER_SIZE_MAX: u64 = 4096;

/// The ranges of an installation in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    pub old_first: u64,
    pub old_last: u64,
    pub new_first: u64,
    pub new_last: u64,
}

impl Marker {
    fn encode(&self) -> String {
        serde_json::json!({
            "version": 1,
            "old_first": self.old_first,
            "old_last": self.old_last,
            "new_first": self.new_first,
            "new_last": self.new_last,
        })
        .to_string()
    }

    fn decode(bytes: &[u8]) -> Option<Marker> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let field = |k: &str| v.get(k)?.as_u64();
        let m = Marker {
            old_first: field("old_first")?,
            old_last: field("old_last")?,
            new_first: field("new_first")?,
            new_last: field("new_last")?,
        };
        (field("version")? == 1
            && m.old_first <= m.old_last
            && m.old_last < m.new_first
            && m.new_first <= m.new_last)
            .then_some(m)
    }
}

/// Reads the marker, if present. A marker that does not parse is an error: it was written
/// through a rename, so it is never half-written by a crash.
pub(crate) fn read_marker(storage: &dyn Storage, dir: &Path) -> Result<Option<Marker>> {
    let path = dir.join(MARKER_NAME);
    let file = match storage.open(&path, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let bytes =
        read_vec(&*file, 0, len, MARKER_SIZE_MAX).map_err(|e| Error::io("read", &path, e))?;
    Marker::decode(&bytes).map(Some).ok_or_else(|| {
        Error::not_a_log(
            &path,
            "the compaction marker is unreadable; inspect it by hand",
        )
    })
}

/// Narrows a listing to the segments of one log while a marker exists (readers' rule).
pub(crate) fn choose(listing: &mut Listing, marker: Option<Marker>) {
    let Some(m) = marker else { return };
    let has_all = |first: u64, last: u64, segs: &[u64]| {
        (first..=last).all(|n| segs.binary_search(&n).is_ok())
    };
    let (first, last) = if has_all(m.old_first, m.old_last, &listing.segments) {
        (m.old_first, m.old_last)
    } else {
        (m.new_first, m.new_last)
    };
    listing.segments.retain(|&n| (first..=last).contains(&n));
}

/// Commits an installation: writes the marker (step 2), then renames the temporaries (step 3).
pub(crate) fn commit(storage: &dyn Storage, dir: &Path, m: Marker) -> Result<()> {
    let temp = dir.join(MARKER_TEMP);
    if storage.exists(&temp) {
        storage
            .remove(&temp)
            .map_err(|e| Error::io("remove", &temp, e))?;
    }
    let file = storage
        .open(&temp, OpenMode::CreateNew)
        .map_err(|e| Error::io("create", &temp, e))?;
    file.write_at(m.encode().as_bytes(), 0)
        .map_err(|e| Error::io("write", &temp, e))?;
    file.sync_data()
        .map_err(|e| Error::io("fdatasync", &temp, e))?;
    let path = dir.join(MARKER_NAME);
    storage
        .rename(&temp, &path)
        .map_err(|e| Error::io("rename", &path, e))?;
    sync_dir(storage, dir)?;
    crate::kill_point("compact_committed");
    rename_new(storage, dir, m)
}

fn rename_new(storage: &dyn Storage, dir: &Path, m: Marker) -> Result<()> {
    for n in m.new_first..=m.new_last {
        let temp = dir.join(temp_name(n));
        if storage.exists(&temp) {
            let path = Listing::path(dir, n);
            storage
                .rename(&temp, &path)
                .map_err(|e| Error::io("rename", &path, e))?;
        }
    }
    sync_dir(storage, dir)?;
    Ok(())
}

/// Removes the old segments and the marker (steps 4 and 5). Waits up to `wait` for readers;
/// returns false, leaving both in place for the next open, if they do not finish in time.
pub(crate) fn finish(
    storage: &dyn Storage,
    dir: &Path,
    m: Marker,
    wait: std::time::Duration,
) -> Result<bool> {
    let Some(_readers) = exclusive_readers(storage, dir, wait)? else {
        return Ok(false);
    };
    crate::kill_point("compact_installed");
    for n in m.old_first..=m.old_last {
        let path = Listing::path(dir, n);
        match storage.remove(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &path, e)),
        }
    }
    sync_dir(storage, dir)?;
    let path = dir.join(MARKER_NAME);
    storage
        .remove(&path)
        .map_err(|e| Error::io("remove", &path, e))?;
    sync_dir(storage, dir)?;
    Ok(true)
}

fn exclusive_readers(
    storage: &dyn Storage,
    dir: &Path,
    wait: std::time::Duration,
) -> Result<Option<Box<dyn StorageLock>>> {
    let path = dir.join(READERS_LOCK_NAME);
    let deadline = std::time::Instant::now() + wait;
    loop {
        match storage.try_lock(&path, LockKind::Exclusive) {
            Ok(lock) => return Ok(Some(lock)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(e) => return Err(Error::io("lock", &path, e)),
        }
    }
}

/// Holds the readers' lock shared for the life of a scan, so compaction cannot remove a segment
/// the scan has listed but not yet opened. Readers never create the lock file (a scan changes
/// nothing); every writer open creates it, so a log compaction can touch always has it. `None`
/// where it is absent or cannot be locked (a read-only copy), where no compaction runs either.
pub(crate) fn shared_readers(storage: &dyn Storage, dir: &Path) -> Option<Box<dyn StorageLock>> {
    let path = dir.join(READERS_LOCK_NAME);
    if !storage.exists(&path) {
        return None;
    }
    // Compaction holds it exclusively only while it removes files: a short wait.
    for _ in 0..5000 {
        match storage.try_lock(&path, LockKind::Shared) {
            Ok(lock) => return Some(lock),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(_) => return None,
        }
    }
    None
}

/// Creates the readers' lock file if it is missing (writers and compaction call this).
pub(crate) fn ensure_readers_lock(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let path = dir.join(READERS_LOCK_NAME);
    if !storage.exists(&path) {
        drop(
            storage
                .try_lock(&path, LockKind::Shared)
                .map_err(|e| Error::io("create", &path, e))?,
        );
        sync_dir(storage, dir)?;
    }
    Ok(())
}

/// Finishes or rolls back an interrupted installation. Called with the writer lock held, before
/// anything else looks at the segments. Returns what it did, for the open report.
pub(crate) fn resolve(storage: &dyn Storage, dir: &Path) -> Result<Option<&'static str>> {
    let Some(m) = read_marker(storage, dir)? else {
        return Ok(None);
    };
    let complete =
        |n: u64| storage.exists(&Listing::path(dir, n)) || storage.exists(&dir.join(temp_name(n)));
    if (m.new_first..=m.new_last).all(complete) {
        rename_new(storage, dir, m)?;
        finish(storage, dir, m, std::time::Duration::from_secs(30))?;
        return Ok(Some("finished an interrupted compaction"));
    }
    // The new segments were all durable before the marker was written, so this means the
    // marker outlived them: keep the old log, which step 4 never touched.
    for n in m.new_first..=m.new_last {
        for path in [Listing::path(dir, n), dir.join(temp_name(n))] {
            if storage.exists(&path) {
                storage
                    .remove(&path)
                    .map_err(|e| Error::io("remove", &path, e))?;
            }
        }
    }
    let path = dir.join(MARKER_NAME);
    storage
        .remove(&path)
        .map_err(|e| Error::io("remove", &path, e))?;
    sync_dir(storage, dir)?;
    Ok(Some("rolled back an interrupted compaction"))
}
