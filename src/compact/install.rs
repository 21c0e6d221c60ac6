//! Installing a compacted log, and finishing or rolling back an interrupted installation.
//!
//! Two protocols (FORMAT.md §6.6), each with a marker file `COMPACTION` that makes every crash
//! state either the whole old log or the whole new one.
//!
//! **Rewrite** (marker version 1, `rewrite.rs`) switches from the old segments `a..=b` to new
//! ones `b+1..=c`:
//!
//! 1. the new segments are written as `N.wal.tmp`, each fdatasynced; the directory is fsynced;
//! 2. the marker (old and new ranges) is written to a temporary name, fdatasynced, renamed into
//!    place, and the directory fsynced: the commit point;
//! 3. each temporary is renamed to `N.wal`; the directory is fsynced;
//! 4. under an exclusive lock on `READERS` (readers hold it shared while they scan), the old
//!    segments are removed and the directory fsynced;
//! 5. the marker is removed and the directory fsynced.
//!
//! While it exists, readers use the old range if all of it is present, else the new one.
//!
//! **In place** (marker version 2, `in_place.rs`) removes the head segments `a..=h` and rewrites
//! at most one segment `k` under its own number. The marker is written (when there is a head to
//! remove) after `k.wal.tmp` is durable, and the commit point is the rename of that temporary
//! over `k.wal`, or the marker itself when nothing is rewritten. The marker names the
//! replacement by its header's `created_nanos`: while it exists, readers see the log without
//! `a..=h` if `k.wal` holds that header, else the old log. (Not "if the temporary is gone": a
//! crash can keep a rename's new name and lose the removal of its old one.)
//!
//! Whoever opens the log next (a writer or compaction) calls [`resolve`], which rolls forward
//! from any state after the commit point and back before it.

use super::{Stage, Stages};
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

pub(crate) const MARKER_TEMP: &str = "COMPACTION.tmp";
const MARKER_SIZE_MAX: u64 = 4096;

/// An installation in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Marker {
    /// Version 1: the whole log rewritten into new segments after the old ones.
    Rewrite(Rewrite),
    /// Version 2: the head removed and at most one segment rewritten under its own number.
    InPlace(InPlace),
}

/// The ranges of a rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rewrite {
    pub old_first: u64,
    pub old_last: u64,
    pub new_first: u64,
    pub new_last: u64,
}

/// What a compaction in place removes and replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InPlace {
    pub remove_first: u64,
    pub remove_last: u64,
    /// The segment whose temporary replaces it, and the `created_nanos` of the replacement's
    /// header; the rename is the commit point.
    pub replace: Option<(u64, u64)>,
}

impl Marker {
    fn encode(&self) -> String {
        match self {
            Marker::Rewrite(m) => serde_json::json!({
                "version": 1,
                "old_first": m.old_first,
                "old_last": m.old_last,
                "new_first": m.new_first,
                "new_last": m.new_last,
            }),
            Marker::InPlace(m) => serde_json::json!({
                "version": 2,
                "remove_first": m.remove_first,
                "remove_last": m.remove_last,
                "replace": m.replace.map(|(k, _)| k),
                "replace_created_nanos": m.replace.map(|(_, c)| c),
            }),
        }
        .to_string()
    }

    fn decode(bytes: &[u8]) -> Option<Marker> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let field = |k: &str| v.get(k)?.as_u64();
        match field("version")? {
            1 => {
                let m = Rewrite {
                    old_first: field("old_first")?,
                    old_last: field("old_last")?,
                    new_first: field("new_first")?,
                    new_last: field("new_last")?,
                };
                (m.old_first <= m.old_last && m.old_last < m.new_first && m.new_first <= m.new_last)
                    .then_some(Marker::Rewrite(m))
            }
            2 => {
                let replace = match (v.get("replace")?, v.get("replace_created_nanos")?) {
                    (serde_json::Value::Null, serde_json::Value::Null) => None,
                    (k, c) => Some((k.as_u64()?, c.as_u64()?)),
                };
                let m = InPlace {
                    remove_first: field("remove_first")?,
                    remove_last: field("remove_last")?,
                    replace,
                };
                (m.remove_first <= m.remove_last && replace.is_none_or(|(k, _)| k > m.remove_last))
                    .then_some(Marker::InPlace(m))
            }
            _ => None,
        }
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
pub(crate) fn choose(storage: &dyn Storage, dir: &Path, listing: &mut Listing) -> Result<()> {
    let m = match read_marker(storage, dir)? {
        None => return Ok(()),
        Some(Marker::InPlace(m)) => {
            if committed(storage, dir, m)? {
                listing
                    .segments
                    .retain(|n| !(m.remove_first..=m.remove_last).contains(n));
            }
            return Ok(());
        }
        Some(Marker::Rewrite(m)) => m,
    };
    let has_all = |first: u64, last: u64, segs: &[u64]| {
        (first..=last).all(|n| segs.binary_search(&n).is_ok())
    };
    let (first, last) = if has_all(m.old_first, m.old_last, &listing.segments) {
        (m.old_first, m.old_last)
    } else {
        (m.new_first, m.new_last)
    };
    listing.segments.retain(|&n| (first..=last).contains(&n));
    Ok(())
}

/// Whether a compaction in place passed its commit point: it replaces nothing (the marker was
/// the commit), or the segment it replaces holds the replacement's header.
fn committed(storage: &dyn Storage, dir: &Path, m: InPlace) -> Result<bool> {
    let Some((k, created)) = m.replace else {
        return Ok(true);
    };
    if !storage.exists(&Listing::path(dir, k)) {
        return Ok(false);
    }
    let header = crate::segment::open_with_header(storage, dir, k)?.header;
    Ok(header.is_ok_and(|h| h.created_nanos == created))
}

/// Commits a rewrite: writes the marker (step 2), then renames the temporaries (step 3).
pub(crate) fn commit(storage: &dyn Storage, dir: &Path, m: Rewrite, stage: &Stages) -> Result<()> {
    write_marker(storage, dir, Marker::Rewrite(m), Some(stage))?;
    crate::kill_point("compact_committed");
    rename_new(storage, dir, m)
}

/// Writes the marker through a temporary name, durably. When the marker is the commit, `stage`
/// follows it: committing once renamed (readers obey it), committed once that is durable.
pub(crate) fn write_marker(
    storage: &dyn Storage,
    dir: &Path,
    m: Marker,
    stage: Option<&Stages>,
) -> Result<()> {
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
    stage.inspect(|s| s.set(Stage::Committing));
    sync_dir(storage, dir)?;
    stage.inspect(|s| s.set(Stage::Committed));
    Ok(())
}

fn rename_new(storage: &dyn Storage, dir: &Path, m: Rewrite) -> Result<()> {
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
    old: std::ops::RangeInclusive<u64>,
    wait: std::time::Duration,
) -> Result<bool> {
    let Some(_readers) = exclusive_readers(storage, dir, wait)? else {
        return Ok(false);
    };
    crate::kill_point("compact_installed");
    remove_segments(storage, dir, old)?;
    Ok(true)
}

/// Removes segments `old` (any of them may be gone already), then the marker, with the
/// directory fsynced after each step. The caller holds `READERS` exclusively.
pub(crate) fn remove_segments(
    storage: &dyn Storage,
    dir: &Path,
    old: std::ops::RangeInclusive<u64>,
) -> Result<()> {
    for n in old {
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
    Ok(())
}

/// How long a compaction waits for readers to let go before it removes segments: the options'
/// lock wait, or 10 seconds.
pub(crate) fn readers_wait(options: &crate::options::Options) -> std::time::Duration {
    options
        .lock_wait
        .unwrap_or(std::time::Duration::from_secs(10))
}

/// Takes `READERS` exclusively, waiting up to `wait` for the scans that hold it; `None` if they
/// do not finish in time.
pub(crate) fn exclusive_readers(
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
pub(crate) fn resolve(storage: &dyn Storage, dir: &Path) -> Result<Option<Resolved>> {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(30);
    let m = match read_marker(storage, dir)? {
        None => return Ok(None),
        Some(Marker::Rewrite(m)) => m,
        Some(Marker::InPlace(m)) => {
            // A temporary left beside its committed segment (a crash kept the rename's new name
            // only) or never renamed: either way it goes.
            let temp = m.replace.map(|(k, _)| dir.join(temp_name(k)));
            let temp = temp.filter(|t| storage.exists(t));
            if !committed(storage, dir, m)? {
                // The marker first: a marker without its temporary must never be left behind.
                remove_file(storage, &dir.join(MARKER_NAME))?;
                sync_dir(storage, dir)?;
                if let Some(t) = temp {
                    remove_file(storage, &t)?;
                    sync_dir(storage, dir)?;
                }
                return Ok(Some(Resolved::RolledBack));
            }
            if let Some(t) = temp {
                remove_file(storage, &t)?;
            }
            finish(storage, dir, m.remove_first..=m.remove_last, WAIT)?;
            return Ok(Some(Resolved::Finished));
        }
    };
    let complete =
        |n: u64| storage.exists(&Listing::path(dir, n)) || storage.exists(&dir.join(temp_name(n)));
    if (m.new_first..=m.new_last).all(complete) {
        rename_new(storage, dir, m)?;
        finish(storage, dir, m.old_first..=m.old_last, WAIT)?;
        return Ok(Some(Resolved::Finished));
    }
    // The new segments were all durable before the marker was written, so this means the
    // marker outlived them: keep the old log, which step 4 never touched.
    roll_back(storage, dir, m)?;
    Ok(Some(Resolved::RolledBack))
}

/// What [`resolve`] did with an interrupted installation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// Finished one past its commit point.
    Finished,
    /// Rolled back one that had not reached it.
    RolledBack,
}

impl Resolved {
    /// The words of the open report ([`crate::OpenReport::compaction`]).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Resolved::Finished => "finished an interrupted compaction",
            Resolved::RolledBack => "rolled back an interrupted compaction",
        }
    }
}

/// Undoes a rewrite committed by marker `m` whose old segments are all still there: removes the
/// new segments (under either name), then the marker, fsyncing the directory after each step
/// so that no crash keeps the marker's removal and loses a new segment's (the old and new
/// segments would then read as one log).
pub(crate) fn roll_back(storage: &dyn Storage, dir: &Path, m: Rewrite) -> Result<()> {
    for n in m.new_first..=m.new_last {
        for path in [Listing::path(dir, n), dir.join(temp_name(n))] {
            if storage.exists(&path) {
                remove_file(storage, &path)?;
            }
        }
    }
    sync_dir(storage, dir)?;
    remove_file(storage, &dir.join(MARKER_NAME))?;
    sync_dir(storage, dir)?;
    Ok(())
}

fn remove_file(storage: &dyn Storage, path: &Path) -> Result<()> {
    storage
        .remove(path)
        .map_err(|e| Error::io("remove", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_of_both_versions_read_back_as_written_and_nonsense_is_refused() {
        let markers = [
            Marker::Rewrite(Rewrite {
                old_first: 1,
                old_last: 4,
                new_first: 5,
                new_last: 7,
            }),
            Marker::InPlace(InPlace {
                remove_first: 1,
                remove_last: 3,
                replace: Some((4, 1_763_000_000_000_000_123)),
            }),
            Marker::InPlace(InPlace {
                remove_first: 2,
                remove_last: 2,
                replace: None,
            }),
        ];
        for m in markers {
            assert_eq!(Marker::decode(m.encode().as_bytes()), Some(m));
        }
        for bad in [
            r#"{"version":2,"remove_first":1,"remove_last":3,"replace":3,"replace_created_nanos":9}"#,
            r#"{"version":2,"remove_first":4,"remove_last":3,"replace":null,"replace_created_nanos":null}"#,
            r#"{"version":2,"remove_first":1,"remove_last":3,"replace":5,"replace_created_nanos":null}"#,
            r#"{"version":2,"remove_first":1,"remove_last":3}"#,
            r#"{"version":3,"remove_first":1,"remove_last":3,"replace":null,"replace_created_nanos":null}"#,
            r#"{"version":1,"old_first":5,"old_last":4,"new_first":6,"new_last":6}"#,
        ] {
            assert_eq!(Marker::decode(bad.as_bytes()), None, "{bad}");
        }
    }
}
