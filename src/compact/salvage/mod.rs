//! Salvage: every valid record of a damaged log, with its sequence number, copied into a new
//! log in a directory of its own, with an exact account of what was lost.
//!
//! For a log whose acknowledged records are damaged, `repair --truncate-partial` refuses (a cut
//! would drop every record after the damage) and compaction refuses (it rewrites only a clean
//! log). Salvage reads the damaged log, never changing it, and writes what is readable, sequence
//! numbers kept, to a new directory: the operator's copy to run on while the damaged segment is
//! restored from a backup, or instead of it when there is none.
//!
//! Protocol (FORMAT.md §6.7): create the target directory and make it durable in its parent;
//! write and sync the marker `SALVAGE-INCOMPLETE`, which makes every reader and writer refuse
//! the directory; write the new segments as temporary files, each sealed and synced, as
//! compaction does (they are `COMPACTED`, so the holes where records were lost are legal);
//! rename them into place; read them back and compare digests; only then remove the marker. A
//! crash at any point leaves either no log or a directory every command refuses, never a log
//! that looks complete and is not.

mod copy;

pub use copy::LOST_LISTED;

use super::Pass;
use super::new_log::NewLog;
use super::read_back;
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::recovery;
use crate::repair::{hex, missing_dirs, sync_dir, sync_parents};
use crate::report::{Location, Report, Verdict};
use crate::segment::{self, Listing, SALVAGE_MARKER, temp_name};
use crate::storage::{DirSync, OpenMode, Storage};
use copy::Copy;
use sha2::Digest as _;
use std::ops::ControlFlow;
use std::path::Path;

/// What a salvage copied and what it could not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SalvageReport {
    /// The damaged log as read: its verdict, damage and ranges.
    pub source: Report,
    /// Records copied into the new log.
    pub records: u64,
    /// First and last sequence number copied.
    pub first_seq: Option<u64>,
    /// Last sequence number copied.
    pub last_seq: Option<u64>,
    /// Runs of sequence numbers that no valid record holds, each named after the damaged
    /// place that took it, in log order: the first [`LOST_LISTED`] of them.
    /// [`salvage_observed`] hands every run to its `lost` callback as it is found.
    pub lost: Vec<LostRange>,
    /// How many runs were lost in all: more than `lost.len()` when the list stopped at
    /// [`LOST_LISTED`], which bounds the report's memory whatever the damage.
    pub lost_ranges: u64,
    /// The sequence number the new log's next append gets: past every record the damaged log
    /// held or acknowledged, so none is ever handed out twice.
    pub next_seq: u64,
    /// The new log's identity (a new one: the two logs must never be mixed).
    pub log_id: u64,
    /// SHA-256 over the copied records (as compaction's digest), computed while reading the
    /// damaged log and again by reading the new log back; they are equal.
    pub digest: String,
    /// The file system refused to fsync the new log's directory (as [`crate::OpenReport`]
    /// says of a writer's): its segments and renames are less durable than FORMAT.md §6
    /// needs. Never set by a dry run, which creates nothing.
    pub durability_degraded: bool,
}

/// Sequence numbers lost at one damaged place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LostRange {
    /// Index of the damage in `SalvageReport::source.damage` (the survey's list, condensed
    /// as every report's is, FORMAT.md §8).
    pub damage: usize,
    /// First sequence number lost; `None` when no valid record precedes the damage (then the
    /// loss runs from the start of the log, wherever that was).
    pub first: Option<u64>,
    /// Last one lost: the record before the next valid one, or the last acknowledged one when
    /// the damage runs to the end of the log. `None`: the damage is at the end and no record
    /// past it was acknowledged, so how many unacknowledged records it held is unknown.
    pub last: Option<u64>,
}

/// Copies every valid record of the log in `source` into a new log in `target`, which must not
/// exist. `source` is only read.
///
/// # Errors
///
/// [`ErrorKind::InvalidOptions`] when `target` exists; [`ErrorKind::Locked`] when a writer is
/// using `source` (stop it first); [`ErrorKind::Corrupt`] when `source` changed while it was
/// read, claims sequence numbers past the range, or the new log did not read back equal (the
/// marker then stays, and the target is refused); [`ErrorKind::NotALog`] and I/O errors.
pub fn salvage(source: &Path, target: &Path, options: &Options) -> Result<SalvageReport> {
    salvage_observed(source, target, options, false, &mut |_, _| {}, &mut |_| {})
}

/// [`salvage`], calling `observe` with the pass ([`Pass::Survey`], then [`Pass::Copy`]) and the
/// location of every record read, for progress over the damaged log's bytes, and `lost` with
/// every run of lost sequence numbers as the copy pass finds it, in log order (the report lists
/// only the first [`LOST_LISTED`]; a caller that wants them all keeps them from here, read
/// against the returned report's `source.damage`). If salvage then fails, the runs handed over
/// describe nothing: discard them. With `dry_run` nothing is written: both passes read, and the
/// report says what a salvage would copy and lose (`digest` is over the records it would
/// copy).
///
/// # Errors
///
/// As [`salvage`].
pub fn salvage_observed(
    source: &Path,
    target: &Path,
    options: &Options,
    dry_run: bool,
    observe: &mut dyn FnMut(Pass, Location),
    lost: &mut dyn FnMut(&LostRange),
) -> Result<SalvageReport> {
    let storage = &*options.storage;
    // Checked first so that a mistyped target is refused before a long survey; the exclusive
    // create in `start_target` is what keeps a name planted in between from being used.
    if storage.exists(target) {
        return Err(target_exists(target));
    }
    let survey = recovery::scan_log(storage, source, &mut |r| {
        observe(Pass::Survey, r.location);
        ControlFlow::Continue(())
    })?;
    if survey.writer_active {
        return Err(Error::new(ErrorKind::Locked {
            path: source.join(segment::LOCK_NAME),
        }));
    }
    let next_seq = next_seq(&survey);
    if !crate::format::SEQ_RANGE.contains(&next_seq) {
        return Err(Error::new(ErrorKind::Corrupt {
            summary: format!(
                "the log in {} claims sequence numbers up to {}, past any a log can hold; \
                 nothing was salvaged",
                source.display(),
                next_seq - 1
            ),
        }));
    }
    let log_id = crate::log::random_log_id();
    let mut writer = None;
    let mut durability_degraded = false;
    if !dry_run {
        durability_degraded = start_target(storage, target)? == DirSync::Unsupported;
        let first = survey.first_seq.unwrap_or(next_seq);
        writer = Some(NewLog::new(storage, target, options, log_id, 1, first));
    }
    let copy = copy_pass(storage, source, &survey, writer.as_mut(), observe, lost)?;
    let digest = hex(&copy.hasher.finalize());
    if let Some(writer) = writer {
        let last_number = writer.finish(next_seq)?;
        install(storage, target, last_number, &digest)?;
    }
    Ok(SalvageReport {
        records: copy.records,
        first_seq: copy.first,
        last_seq: copy.last,
        lost: copy.lost,
        lost_ranges: copy.lost_ranges,
        next_seq,
        log_id,
        digest,
        source: survey,
        durability_degraded,
    })
}

/// What the copy pass leaves for the report.
struct Copied {
    hasher: sha2::Sha256,
    records: u64,
    first: Option<u64>,
    last: Option<u64>,
    lost: Vec<LostRange>,
    lost_ranges: u64,
}

/// The second pass: every kept record into the digest and, unless a dry run, the new log. It
/// must find what the survey found.
fn copy_pass(
    storage: &dyn Storage,
    source: &Path,
    survey: &Report,
    mut writer: Option<&mut NewLog<'_>>,
    observe: &mut dyn FnMut(Pass, Location),
    lost: &mut dyn FnMut(&LostRange),
) -> Result<Copied> {
    let mut copy = Copy::new(survey, lost);
    let mut failure = None;
    let read = recovery::scan_log(storage, source, &mut |r| {
        observe(Pass::Copy, r.location);
        if copy.record(r)
            && let Some(w) = writer.as_deref_mut()
            && let Err(e) = w.push(r)
        {
            failure = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if read.records != survey.records || read.damage != survey.damage {
        return Err(changed(source));
    }
    copy.finish();
    Ok(Copied {
        hasher: copy.hasher,
        records: copy.records,
        first: copy.first,
        last: copy.last,
        lost: copy.lost.listed,
        lost_ranges: copy.lost.count,
    })
}

/// Past everything the damaged log held, and everything its watermark says was acknowledged.
fn next_seq(report: &Report) -> u64 {
    let after_last = report.last_seq.map_or(1, |l| l.saturating_add(1));
    let after_durable = report.durable_seq.map_or(1, |d| d.saturating_add(1));
    after_last.max(after_durable)
}

fn changed(source: &Path) -> Error {
    Error::new(ErrorKind::Corrupt {
        summary: format!(
            "the log in {} changed while it was salvaged; nothing usable was written",
            source.display()
        ),
    })
}

/// The refusal of a target that exists, whatever it is.
fn target_exists(target: &Path) -> Error {
    Error::new(ErrorKind::InvalidOptions(format!(
        "{} exists: salvage writes a new log into a directory it creates, never into an \
         existing one",
        target.display()
    )))
}

/// Creates `target` (durably, in its parent) and the marker that keeps it from being used.
/// Returns what the fsync of `target` reported: whether its file system syncs directories.
fn start_target(storage: &dyn Storage, target: &Path) -> Result<DirSync> {
    let created = missing_dirs(storage, target);
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        storage
            .create_dir_all(parent)
            .map_err(|e| Error::io("create directory", parent, e))?;
    }
    storage.create_dir_new(target).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            target_exists(target)
        } else {
            Error::io("create directory", target, e)
        }
    })?;
    sync_parents(storage, &created)?;
    let marker = target.join(SALVAGE_MARKER);
    let file = storage
        .open(&marker, OpenMode::CreateNew)
        .map_err(|e| Error::io("create", &marker, e))?;
    file.write_at(
        b"walctl salvage in progress: delete this directory and salvage again\n",
        0,
    )
    .map_err(|e| Error::io("write", &marker, e))?;
    file.sync_data()
        .map_err(|e| Error::io("fdatasync", &marker, e))?;
    sync_dir(storage, target)
}

/// Renames the new segments into place, reads them back, and removes the marker.
fn install(storage: &dyn Storage, target: &Path, last: u64, digest: &str) -> Result<()> {
    for n in 1..=last {
        let temp = target.join(temp_name(n));
        let path = Listing::path(target, n);
        storage
            .rename(&temp, &path)
            .map_err(|e| Error::io("rename", &path, e))?;
    }
    sync_dir(storage, target)?;
    let (back, digest_back) = read_back(storage, target, 1..=last)?;
    if back.verdict() != Verdict::Clean || digest_back != digest {
        return Err(Error::new(ErrorKind::Corrupt {
            summary: format!(
                "the salvaged log in {} read back differently ({digest_back} != {digest}); it \
                 stays marked incomplete",
                target.display()
            ),
        }));
    }
    let marker = target.join(SALVAGE_MARKER);
    storage
        .remove(&marker)
        .map_err(|e| Error::io("remove", &marker, e))?;
    sync_dir(storage, target)?;
    Ok(())
}
