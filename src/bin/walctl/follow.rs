//! `dump --follow`: keep printing records as a writer appends them.
//!
//! The library scans whole logs only, so following polls: it notices growth by the segment list
//! and the last segment's length, then rescans just the newest segments through a [`Storage`]
//! that hides the older ones, and prints records past the last one seen. A record still being
//! written shows up as trailing damage and is simply waited for. (A library call that scans from
//! a given location would make each poll cost only the new bytes; see the CLI report.)

use crate::select::{Emit, Filter};
use anyhow::{Context as _, Result};
use std::io;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use walctl::segment::{self, Listing};
use walctl::storage::{DirSync, FsStorage, LockKind, OpenMode, Storage, StorageFile, StorageLock};

/// How often the log is checked for new records.
const POLL: Duration = Duration::from_millis(200);

/// Scan errors tolerated in a row: a compaction may remove a segment between listing and
/// reading it, which the next poll no longer sees.
const TRANSIENT_FAILURES_MAX: u32 = 3;

/// Where following starts: after the initial scan.
pub struct Start {
    /// Highest sequence number already seen.
    pub last_seen: Option<u64>,
    /// Records already printed (for `--limit`).
    pub emitted: u64,
    /// The newest segment of the initial scan: older ones are never read again.
    pub from_segment: u64,
}

/// Prints records after `start.last_seen` as they appear, until `--limit` is reached (or
/// forever).
///
/// # Errors
/// The log disappears or cannot be read; stdout closed.
pub fn follow(dir: &Path, filter: &Filter, start: Start, emit: &mut dyn Emit) -> Result<()> {
    let Start {
        mut last_seen,
        mut emitted,
        mut from_segment,
    } = start;
    let mut shape = None;
    let mut failures = 0;
    loop {
        emit.flush()?;
        if filter.to.is_some_and(|t| last_seen.is_some_and(|s| s >= t)) {
            // Nothing appended from now on can be at or below --to.
            return Ok(());
        }
        let now = log_shape(dir)?;
        if shape.as_ref() == Some(&now) {
            std::thread::sleep(POLL);
            continue;
        }
        let storage = Newest {
            inner: FsStorage::new(),
            from_segment,
        };
        let mut failure = None;
        let mut done = false;
        let scanned = walctl::scan_log(&storage, dir, &mut |r| {
            if last_seen.is_some_and(|s| r.seq <= s) {
                return ControlFlow::Continue(());
            }
            last_seen = Some(r.seq);
            if !filter.matches(r) {
                return ControlFlow::Continue(());
            }
            if let Err(e) = emit.record(r) {
                failure = Some(e);
                return ControlFlow::Break(());
            }
            emitted += 1;
            done = filter.limit.is_some_and(|l| emitted >= l);
            if done {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Some(e) = failure {
            return Err(e.into());
        }
        if done {
            return Ok(emit.flush()?);
        }
        match scanned {
            Ok(report) => {
                failures = 0;
                from_segment = report.segments.last().map_or(0, |s| s.segment);
                shape = Some(now);
            }
            Err(e) if failures < TRANSIENT_FAILURES_MAX => {
                // The segments may have been rewritten under us: start over from the oldest.
                let _ = e;
                failures += 1;
                from_segment = 0;
                std::thread::sleep(POLL);
            }
            Err(e) => {
                return Err(e).with_context(|| format!("following the log in {}", dir.display()));
            }
        }
    }
}

/// What changes when records are appended: the segment numbers and the last one's length.
fn log_shape(dir: &Path) -> Result<(Vec<u64>, u64)> {
    let storage = FsStorage::new();
    let listing = segment::list(&storage, dir)?;
    let last_len = match listing.segments.last() {
        Some(&n) => storage
            .open(&Listing::path(dir, n), OpenMode::Read)
            .and_then(|f| f.len())
            .unwrap_or(0),
        None => 0,
    };
    Ok((listing.segments, last_len))
}

/// The real file system, with segments numbered below `from_segment` left out of listings, so a
/// scan reads only the newest segments. Reads never modify anything; writes are passed through
/// only because the trait requires them, and a scan never calls them.
#[derive(Debug)]
struct Newest {
    inner: FsStorage,
    from_segment: u64,
}

impl Storage for Newest {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = self.inner.list(dir)?;
        names.retain(|n| segment::parse_segment_name(n).is_none_or(|s| s >= self.from_segment));
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        self.inner.open(path, mode)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<DirSync> {
        self.inner.sync_dir(dir)
    }

    fn try_lock(&self, path: &Path, kind: LockKind) -> io::Result<Box<dyn StorageLock>> {
        self.inner.try_lock(path, kind)
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
}
