//! Cutting a torn tail: the only repair walctl performs (FORMAT.md §7).
//!
//! Used by [`crate::Log::open`] when a crashed writer left a torn tail, and by
//! [`truncate_partial`] behind `walctl repair --truncate-partial`. The order is fixed: save the
//! cut bytes to a side file (created exclusively) and sync it and the directory; truncate through
//! the same open handle the scan validated; fdatasync it; fsync the directory; then record the
//! cut in the repair journal. A crash at any point leaves either the old file or the cut one, and
//! the cut bytes are never lost before the cut is durable.

use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::recovery;
use crate::report::{DamageClass, Report, Verdict};
use crate::segment::{JOURNAL_NAME, LOCK_NAME, Listing, segment_name};
use crate::storage::{DirSync, OpenMode, Storage, StorageFile, StorageLock, entry_dir};
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A tail that was cut (or, in a plan, would be).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailCut {
    /// Segment number.
    pub segment: u64,
    /// Offset of the cut: the new file length.
    pub offset: u64,
    /// Bytes removed.
    pub length: u64,
    /// SHA-256 of the removed bytes, lower-case hex (empty in a plan).
    pub sha256: String,
    /// Name of the side file in the log directory holding the removed bytes (empty in a plan).
    pub side_file: String,
    /// Sequence number of the last record that survives, if any.
    pub last_seq: Option<u64>,
    /// Valid records in the removed bytes: never acknowledged as durable, but readable (a
    /// crash can leave them after damage); the side file keeps their bytes.
    pub records_lost: u64,
    /// Whether the file system refused a directory fsync while cutting, so the side file's
    /// name (and a journal created by this cut) may not survive a power loss. The cut itself
    /// is made durable by the segment's own fdatasync. Always false in a plan.
    pub durability_degraded: bool,
}

/// What `truncate_partial` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairOutcome {
    /// The log was clean: nothing to do.
    Clean,
    /// The torn tail that was cut (or, for a dry run, would be).
    Cut(TailCut),
}

/// Cuts the torn tail of the log in `dir`, and nothing else.
///
/// Takes the writer lock (waiting up to `options.lock_wait`), scans the whole log, and acts
/// only when the verdict is [`Verdict::TornTail`]. On corruption it returns
/// [`ErrorKind::Corrupt`] and has changed no byte. With `dry_run` it only plans.
///
/// # Errors
///
/// [`ErrorKind::Corrupt`], [`ErrorKind::Locked`], [`ErrorKind::NotALog`], I/O errors.
pub fn truncate_partial(
    dir: &Path,
    options: &Options,
    dry_run: bool,
) -> Result<(Report, RepairOutcome)> {
    let storage = &*options.storage;
    let _lock = acquire_lock(storage, dir, options)?;
    let report = recovery::scan_log_as(
        storage,
        dir,
        &mut |_| std::ops::ControlFlow::Continue(()),
        true,
    )?;
    let outcome = match report.verdict() {
        Verdict::Clean => RepairOutcome::Clean,
        Verdict::Corrupt => {
            return Err(Error::new(ErrorKind::Corrupt {
                summary: report.first_damage_summary(),
            }));
        }
        Verdict::TornTail => {
            let seg = report
                .segments
                .last()
                .expect("a torn tail lives in the last segment");
            // The cut starts at the first torn damage: what precedes it survives, and every
            // valid record after it (`last_seq` may be one of them) goes.
            let first = (report.damage.iter())
                .find(|d| d.class == DamageClass::Torn)
                .expect("a torn tail has torn damage");
            debug_assert_eq!(
                first.offset, seg.valid_len,
                "the cut is at the first torn damage"
            );
            let plan = TailCut {
                segment: seg.segment,
                offset: seg.valid_len,
                length: seg.file_len - seg.valid_len,
                sha256: String::new(),
                side_file: String::new(),
                last_seq: first.last_good_seq,
                records_lost: first.records_after,
                durability_degraded: false,
            };
            if dry_run {
                RepairOutcome::Cut(plan)
            } else {
                let path = Listing::path(dir, seg.segment);
                let file = storage
                    .open(&path, OpenMode::ReadWrite)
                    .map_err(|e| Error::io("open", &path, e))?;
                let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
                if len != seg.file_len {
                    return Err(Error::io(
                        "check length",
                        &path,
                        io::Error::other("the segment changed during the scan; run repair again"),
                    ));
                }
                let cut = cut_tail(storage, dir, &*file, plan, "repair --truncate-partial")?;
                RepairOutcome::Cut(cut)
            }
        }
    };
    Ok((report, outcome))
}

/// How long a lock that looks held is looked at again, even with no `lock_wait`, on storage
/// whose locks can outlive their holder (`Storage::locks_outlive_their_holder`).
///
/// An `flock` is lent to every child its process forks until the child execs, so a writer
/// dropped while another thread spawns a process leaves `LOCK` held for that moment, and an
/// immediate reopen would fail with a spurious `Locked`. A live writer holds the lock for its
/// whole session, so a truly refused open pays only this once. (Readers judging whether a
/// writer is live, `recovery::writer_active`, look for longer, 42 ms: they only decide how to
/// label a tail, and nobody waits on them for a lock.)
pub const LENT_LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(10);

/// Takes the writer lock, waiting up to `options.lock_wait` (at least [`LENT_LOCK_GRACE`] on
/// storage whose locks can outlive their holder).
pub(crate) fn acquire_lock(
    storage: &dyn Storage,
    dir: &Path,
    options: &Options,
) -> Result<Box<dyn StorageLock>> {
    use std::time::{Duration, Instant};
    let path = dir.join(LOCK_NAME);
    let grace = if storage.locks_outlive_their_holder() {
        LENT_LOCK_GRACE
    } else {
        Duration::ZERO
    };
    let limit = options.lock_wait.unwrap_or(Duration::ZERO).max(grace);
    // The clock starts at the first refusal, so a grace always buys at least one more look.
    let mut refused_at: Option<Instant> = None;
    let mut pause = Duration::from_millis(1);
    loop {
        match storage.try_lock(&path, crate::storage::LockKind::Exclusive) {
            Ok(lock) => return Ok(lock),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let waited = refused_at.get_or_insert_with(Instant::now).elapsed();
                if waited >= limit {
                    return Err(Error::new(ErrorKind::Locked { path }));
                }
                std::thread::sleep(pause.min(limit - waited));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(Error::io("lock", &path, e)),
        }
    }
}

/// Saves `[plan.offset, end)` of `file` to a side file, then truncates `file` to `plan.offset`.
pub(crate) fn cut_tail(
    storage: &dyn Storage,
    dir: &Path,
    file: &dyn StorageFile,
    mut plan: TailCut,
    reason: &str,
) -> Result<TailCut> {
    let seg_path = Listing::path(dir, plan.segment);
    // The journal is opened first: if it cannot be (a planted FIFO or symlink, a permission),
    // the repair refuses before any byte changes, rather than cutting without a record.
    let journal = open_journal(storage, dir)?;
    // Until the cut, nothing has changed: a failure leaves no trace, neither a partial copy
    // (on a full disk every retry would leave another) nor a journal this repair created.
    let (side_name, sha256) = match save_tail(storage, dir, file, &seg_path, &plan) {
        Ok(saved) => saved,
        Err(e) => {
            if journal.1 {
                drop(journal);
                let _ = storage.remove(&dir.join(JOURNAL_NAME));
            }
            return Err(e);
        }
    };
    let mut syncs = vec![sync_dir(storage, dir)?];
    crate::kill_point("repair_saved");
    file.set_len(plan.offset)
        .map_err(|e| Error::io("truncate", &seg_path, e))?;
    file.sync_data()
        .map_err(|e| Error::io("fdatasync", &seg_path, e))?;
    syncs.push(sync_dir(storage, dir)?);
    crate::kill_point("repair_cut");
    plan.sha256 = sha256;
    plan.side_file = side_name;
    syncs.push(append_journal(storage, dir, journal, &plan, reason)?);
    plan.durability_degraded = syncs.contains(&DirSync::Unsupported);
    Ok(plan)
}

/// Copies the bytes `plan` cuts from `file` to a new side file and makes the copy durable;
/// returns the side file's name and the copy's SHA-256. A copy that fails is removed.
fn save_tail(
    storage: &dyn Storage,
    dir: &Path,
    file: &dyn StorageFile,
    seg_path: &Path,
    plan: &TailCut,
) -> Result<(String, String)> {
    let (side_name, side) = create_side_file(storage, dir, plan.segment, plan.offset)?;
    let side_path = dir.join(&side_name);
    let copied = copy_tail(file, seg_path, &*side, &side_path, plan);
    drop(side);
    match copied {
        Ok(sha256) => Ok((side_name, sha256)),
        Err(e) => {
            let _ = storage.remove(&side_path);
            Err(e)
        }
    }
}

fn copy_tail(
    file: &dyn StorageFile,
    seg_path: &Path,
    side: &dyn StorageFile,
    side_path: &Path,
    plan: &TailCut,
) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < plan.length {
        let n = (plan.length - done).min(buf.len() as u64) as usize;
        file.read_at(&mut buf[..n], plan.offset + done)
            .map_err(|e| Error::io_at("read", seg_path, plan.offset + done, e))?;
        side.write_at(&buf[..n], done)
            .map_err(|e| Error::io_at("write", side_path, done, e))?;
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    side.sync_data()
        .map_err(|e| Error::io("fdatasync", side_path, e))?;
    Ok(hex(&hasher.finalize()))
}

fn create_side_file(
    storage: &dyn Storage,
    dir: &Path,
    segment: u64,
    offset: u64,
) -> Result<(String, std::sync::Arc<dyn StorageFile>)> {
    for attempt in 0..1000u32 {
        let mut name = format!("{}.cut-{offset:020}", segment_name(segment));
        if attempt > 0 {
            name.push_str(&format!("-{attempt}"));
        }
        let path = dir.join(&name);
        match storage.open(&path, OpenMode::CreateNew) {
            Ok(f) => return Ok((name, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create", &path, e)),
        }
    }
    Err(Error::io(
        "create",
        &dir.join("*.cut-*"),
        io::Error::other("too many side files"),
    ))
}

/// The repair journal, opened for appending (created if missing); whether it was created.
fn open_journal(storage: &dyn Storage, dir: &Path) -> Result<(Arc<dyn StorageFile>, bool)> {
    let path = dir.join(JOURNAL_NAME);
    match storage.open(&path, OpenMode::ReadWrite) {
        Ok(f) => Ok((f, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((
            storage
                .open(&path, OpenMode::CreateNew)
                .map_err(|e| Error::io("create", &path, e))?,
            true,
        )),
        Err(e) => Err(Error::io("open", &path, e)),
    }
}

fn append_journal(
    storage: &dyn Storage,
    dir: &Path,
    (file, created): (Arc<dyn StorageFile>, bool),
    cut: &TailCut,
    reason: &str,
) -> Result<DirSync> {
    let path = dir.join(JOURNAL_NAME);
    let now = crate::time::now_nanos();
    let line = serde_json::json!({
        "time": crate::time::rfc3339(now),
        "time_nanos": now,
        "action": "truncate_partial",
        "reason": reason,
        "segment": segment_name(cut.segment),
        "offset": cut.offset,
        "bytes_cut": cut.length,
        "sha256": cut.sha256,
        "side_file": cut.side_file,
        "last_seq": cut.last_seq,
        "records_lost": cut.records_lost,
    });
    let mut text = line.to_string();
    text.push('\n');
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    file.write_at(text.as_bytes(), len)
        .map_err(|e| Error::io_at("write", &path, len, e))?;
    file.sync_data()
        .map_err(|e| Error::io("fdatasync", &path, e))?;
    if created {
        return sync_dir(storage, dir);
    }
    Ok(DirSync::Synced)
}

/// Fsyncs `dir`; returns whether the file system supports it.
pub(crate) fn sync_dir(storage: &dyn Storage, dir: &Path) -> Result<DirSync> {
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// The directories that creating `dir` would make: `dir` and each missing ancestor, deepest
/// first. Call it before creating them, and hand the result to [`sync_parents`] after.
pub(crate) fn missing_dirs(storage: &dyn Storage, dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !storage.exists(a))
        .map(Path::to_path_buf)
        .collect()
}

/// Fsyncs the directory holding each entry in `created` ([`entry_dir`]: `.` for a bare
/// relative name): a power loss could otherwise take a new directory away, and every file
/// synced inside it. Returns `Unsupported` if any of them refused.
pub(crate) fn sync_parents(storage: &dyn Storage, created: &[PathBuf]) -> Result<DirSync> {
    let mut outcome = DirSync::Synced;
    for parent in created.iter().filter_map(|dir| entry_dir(dir)) {
        if sync_dir(storage, parent)? == DirSync::Unsupported {
            outcome = DirSync::Unsupported;
        }
    }
    Ok(outcome)
}

/// Lower-case hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
