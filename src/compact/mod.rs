//! Compaction: the one operation that deletes records on purpose, and proves what it kept.
//!
//! `--before SEQ` drops records below a checkpoint; `--keys` keeps only the latest data record
//! of each key and drops keys whose latest record is a tombstone (keyless records are kept).
//! Survivors keep their sequence numbers and order. Two methods (FORMAT.md §6.6): in place
//! (`in_place.rs`: the head removed, at most one segment rewritten) or by rewriting the whole
//! log (`rewrite.rs`), each switched to by its protocol in `install.rs`. A SHA-256 over the
//! survivors, computed while reading the old log, must equal the one computed by reading the
//! installed log back.
//!
//! Cost: a verifying scan (which also builds the key index for `--keys`), one pass that reads
//! the old log and writes the new, and one read-back of the new log. Memory: the key index
//! (`--keys` only, [`crate::kv`] documents its size per key) plus one record.

mod in_place;
pub(crate) mod install;
mod new_log;
mod rewrite;
mod rule;
mod salvage;
mod state;

pub use salvage::{LOST_LISTED, LostRange, SalvageReport, salvage, salvage_observed};

use rule::{Fate, Rule, Survey};
pub use state::CompactionState;
use state::{Settled, settle};
pub(crate) use state::{Stage, Stages};

use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::recovery;
use crate::repair::{self, hex, sync_dir};
use crate::report::{RecordView, Report, Verdict};
use crate::segment::{self, Listing, temp_name};
use crate::storage::{DirSync, Storage};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::ops::ControlFlow;
use std::path::Path;

/// What to drop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Drop every record with a sequence number below this. A value past the log's next
    /// sequence number is refused ([`ErrorKind::InvalidOptions`]), and nothing is changed.
    pub before: Option<u64>,
    /// Keep only the latest data record of each key; drop deleted keys and all tombstones.
    pub keys: bool,
    /// Compute the report without writing anything.
    pub dry_run: bool,
    /// Rewrite every survivor into new segments even when the drops would allow compacting in
    /// place (which removes the head and rewrites at most one segment): the new log is packed
    /// into segments of `Options::segment_size`, and every old file goes.
    pub rewrite: bool,
}

/// What a compaction did (or, for a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// Records, bytes, segments and sequence range before.
    pub before: Totals,
    /// The same after (for a dry run: what they would be, bytes estimated).
    pub after: Totals,
    /// Distinct live keys in the new log.
    pub keys_kept: u64,
    /// Records dropped because their sequence number is below `--before`.
    pub dropped_before: u64,
    /// Data records dropped because a later record of the same key exists.
    pub dropped_superseded: u64,
    /// Records dropped because their key's latest record is a tombstone (tombstones included).
    pub dropped_deleted: u64,
    /// Nothing was to be dropped, so nothing was written (nor would be, for a dry run): the log
    /// is left as it is, `after` equals `before`, and there are no digests.
    pub unchanged: bool,
    /// SHA-256 over the records chosen to survive, computed while reading the old log (empty
    /// when `unchanged`).
    pub digest_expected: String,
    /// SHA-256 over the records of the installed new log, read back (empty for a dry run, and
    /// when `unchanged`).
    pub digest_installed: String,
    /// The sequence number the next append gets (unchanged by compaction).
    pub next_seq: u64,
    /// The old segments could not be removed yet because readers held on; the next open
    /// removes them. The new log is installed either way.
    pub cleanup_deferred: bool,
    /// Old segments removed (for a dry run: that would be): the head, for a compaction in
    /// place; every old segment, for a rewrite.
    pub segments_removed: u64,
    /// Old segments replaced in place by their survivors, under their own numbers (0 or 1).
    pub segments_rewritten: u64,
    /// New segments: a rewrite's, or the empty last one a compaction in place starts. The
    /// segments neither removed nor rewritten (`before.segments` minus both) are kept as they
    /// are, the last one sealed with a final watermark slot when segments are added.
    pub segments_added: u64,
    /// The file system refused to fsync the log's directory (as [`crate::OpenReport`] says of a
    /// writer's): the renames and new segments of this compaction are less durable than
    /// FORMAT.md §6 needs. Probed once before writing; never set when nothing was written.
    pub durability_degraded: bool,
}

/// Size and range of a log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Records.
    pub records: u64,
    /// Bytes of segment files.
    pub bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// First sequence number.
    pub first_seq: Option<u64>,
    /// Last sequence number.
    pub last_seq: Option<u64>,
}

/// Compacts the log in `dir`. Holds the writer lock throughout (waiting up to
/// `options.lock_wait`).
///
/// # Errors
///
/// [`ErrorKind::Corrupt`] for a corrupt log and [`ErrorKind::TornTail`] for a torn tail (repair
/// it first); both change nothing. [`ErrorKind::Locked`], I/O errors, and
/// [`ErrorKind::Corrupt`] if the read-back digest differs (the new log is then removed again and
/// the old one kept). Every error carries [`Error::compaction_state`]: whether the log is as it
/// was, compacted, or (a commit whose fsync failed) to be settled by its next open.
pub fn compact(dir: &Path, options: &Options, plan: &Compaction) -> Result<CompactReport> {
    compact_observed(dir, options, plan, &mut |_, _| {})
}

/// The passes of a compaction, for progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// The verifying scan of the old log (and the key index for `--keys`).
    Survey,
    /// Reading the old log and writing the survivors.
    Copy,
}

/// [`compact`], calling `observe` with the pass and the location of every record read, so a
/// caller can show progress over the old log's bytes.
///
/// # Errors
///
/// As [`compact`].
pub fn compact_observed(
    dir: &Path,
    options: &Options,
    plan: &Compaction,
    observe: &mut dyn FnMut(Pass, crate::report::Location),
) -> Result<CompactReport> {
    // Every error says where it left the log; one before the installation began changed
    // nothing.
    compact_settled(dir, options, plan, observe).map_err(|e| match e.compaction_state() {
        Some(_) => e,
        None => e.with_compaction_state(CompactionState::Unchanged),
    })
}

fn compact_settled(
    dir: &Path,
    options: &Options,
    plan: &Compaction,
    observe: &mut dyn FnMut(Pass, crate::report::Location),
) -> Result<CompactReport> {
    let storage = &*options.storage;
    let _lock = repair::acquire_lock(storage, dir, options)?;
    install::ensure_readers_lock(storage, dir)?;
    install::resolve(storage, dir)?;
    // Temporaries left by an interrupted rotation or compaction (the writer lock is held, so
    // no one is writing them) would stand in the way of this compaction's own. A dry run
    // writes none, and changes nothing.
    if !plan.dry_run {
        abandon(storage, dir);
    }
    let (report, survey) = survey(storage, dir, plan, observe)?;
    let old_next = next_seq(storage, dir, &report)?;
    check_checkpoint(plan, old_next)?;
    let mut out = CompactReport {
        dry_run: plan.dry_run,
        before: totals(&report),
        next_seq: old_next,
        keys_kept: survey.keys_kept(plan),
        ..CompactReport::default()
    };
    if survey.survivors(plan) == report.records {
        // Nothing to drop: rewriting the log would cost a copy of all of it, and as much free
        // space again, to produce the same records.
        out.unchanged = true;
        out.after = out.before;
        return Ok(out);
    }
    let log_first = survey.first_survivor(plan).unwrap_or(old_next);
    let rule = Rule {
        plan,
        keys: &survey.keys,
    };
    let stage = Cell::new(Stage::Before);
    let job = Job {
        storage,
        dir,
        options,
        plan,
        report: &report,
        rule: &rule,
        log_first,
        stage: &stage,
    };
    // Whether directory fsyncs take effect is the file system's property: one probe before
    // the first rename answers for all of them.
    out.durability_degraded = !plan.dry_run && sync_dir(storage, dir)? == DirSync::Unsupported;
    let shape = in_place::Shape::of(&report.segments, &survey.survivors_by_segment(plan))
        .filter(|_| !plan.rewrite);
    match by_either_method(job, shape, &mut out, observe) {
        Ok(()) => Ok(out),
        Err(e) => {
            let settled = if plan.dry_run {
                Settled::Failed
            } else {
                settle(storage, dir)
            };
            let state = CompactionState::after(stage.get(), settled);
            Err(e.with_compaction_state(state))
        }
    }
}

/// Compacts in place when the shape allows, else (or when readers hold on) by rewriting.
fn by_either_method(
    job: Job<'_>,
    shape: Option<in_place::Shape>,
    out: &mut CompactReport,
    observe: &mut dyn FnMut(Pass, crate::report::Location),
) -> Result<()> {
    if let Some(shape) = shape {
        let start = out.clone();
        match in_place::compact(job, shape, out, observe)? {
            in_place::Outcome::Done => return Ok(()),
            // Readers held the log past the wait, and replacing a segment under a running scan
            // would show it a mix: rewrite instead, which lets them finish on the old log.
            in_place::Outcome::ReadersBusy => *out = start,
        }
    }
    rewrite::rewrite(job, out, observe)
}

/// What both methods of compaction work from: the log, the plan, and what the survey found.
#[derive(Clone, Copy)]
struct Job<'a> {
    storage: &'a dyn Storage,
    dir: &'a Path,
    options: &'a Options,
    plan: &'a Compaction,
    /// The survey's report of the old log.
    report: &'a Report,
    rule: &'a Rule<'a>,
    /// The first survivor's sequence number (the old log's next one if none survives).
    log_first: u64,
    /// How far the installation got, for the state an error reports.
    stage: &'a Stages,
}

/// Reads the old log once more, applying the rule: counts what is dropped, hashes the survivors
/// into `out.digest_expected`, and hands each survivor to `keep`. The log must read as it did
/// in the survey (`records` records, clean).
fn copy_pass(
    storage: &dyn Storage,
    dir: &Path,
    rule: &Rule<'_>,
    records: u64,
    out: &mut CompactReport,
    observe: &mut dyn FnMut(Pass, crate::report::Location),
    keep: &mut dyn FnMut(&RecordView<'_>) -> Result<()>,
) -> Result<()> {
    let mut hasher = Sha256::new();
    let mut failure = None;
    let rescan = recovery::scan_log_as(
        storage,
        dir,
        &mut |r| {
            observe(Pass::Copy, r.location);
            match rule.verdict(r) {
                Fate::Keep => {
                    hash_record(&mut hasher, r);
                    out.after.records += 1;
                    out.after.first_seq.get_or_insert(r.seq);
                    out.after.last_seq = Some(r.seq);
                    if let Err(e) = keep(r) {
                        failure = Some(e);
                        return ControlFlow::Break(());
                    }
                }
                Fate::Before => out.dropped_before += 1,
                Fate::Superseded => out.dropped_superseded += 1,
                Fate::Deleted => out.dropped_deleted += 1,
            }
            ControlFlow::Continue(())
        },
        true,
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    if rescan.records != records || rescan.verdict() != Verdict::Clean {
        return Err(Error::new(ErrorKind::Corrupt {
            summary: "the log changed during compaction".into(),
        }));
    }
    out.digest_expected = hex(&hasher.finalize());
    Ok(())
}

/// The verifying scan: refuses damage, and for `--keys` records each key's latest record.
fn survey(
    storage: &dyn Storage,
    dir: &Path,
    plan: &Compaction,
    observe: &mut dyn FnMut(Pass, crate::report::Location),
) -> Result<(Report, Survey)> {
    let mut survey = Survey::default();
    let report = recovery::scan_log_as(
        storage,
        dir,
        &mut |r| {
            observe(Pass::Survey, r.location);
            survey.add(plan, r);
            ControlFlow::Continue(())
        },
        true,
    )?;
    match report.verdict() {
        Verdict::Clean => Ok((report, survey)),
        Verdict::TornTail => Err(Error::new(ErrorKind::TornTail {
            summary: report.first_damage_summary(),
        })),
        Verdict::Corrupt => Err(Error::new(ErrorKind::Corrupt {
            summary: report.first_damage_summary(),
        })),
    }
}

/// As Kafka refuses to delete records past its high watermark: a checkpoint no record has
/// reached yet is a mistake (a typo, or a caller ahead of the log), and honouring it would
/// empty the log.
fn check_checkpoint(plan: &Compaction, old_next: u64) -> Result<()> {
    match plan.before {
        Some(before) if before > old_next => Err(Error::new(ErrorKind::InvalidOptions(format!(
            "compacting before {before} is past the log's next sequence number, {old_next}: \
             no record has reached it, and every record would go; nothing was changed \
             (compacting before {old_next} drops every record)"
        )))),
        _ => Ok(()),
    }
}

/// The next sequence number of the old log: after its last record, but never before its last
/// segment's start (a compaction may have dropped the records just below it).
fn next_seq(storage: &dyn Storage, dir: &Path, report: &Report) -> Result<u64> {
    let number = report.segments.last().map_or(1, |s| s.segment);
    let opened = segment::open_with_header(storage, dir, number)?;
    let header = opened
        .header
        .map_err(|_| Error::not_a_log(&opened.path, "unreadable header"))?;
    Ok(report
        .last_seq
        .map_or(header.first_seq, |l| (l + 1).max(header.first_seq)))
}

/// Reads segments `numbers` of `dir` (just written by this process, which holds the writer lock
/// or owns the directory: no other writer is active) and returns their report and the digest of
/// their records (below).
fn read_back(
    storage: &dyn Storage,
    dir: &Path,
    numbers: std::ops::RangeInclusive<u64>,
) -> Result<(Report, String)> {
    let listing = Listing {
        segments: numbers.collect(),
        ..Listing::default()
    };
    let mut hasher = Sha256::new();
    let report = recovery::scan_listing(
        storage,
        dir,
        &listing,
        &mut |r| {
            hash_record(&mut hasher, r);
            ControlFlow::Continue(())
        },
        false,
    )?;
    Ok((report, hex(&hasher.finalize())))
}

/// Reads back segments `numbers`, the installed log, into `out` (its digest, bytes and
/// segments); whether that proves the compaction: clean, and holding exactly the survivors.
fn proven(
    storage: &dyn Storage,
    dir: &Path,
    numbers: std::ops::RangeInclusive<u64>,
    out: &mut CompactReport,
) -> Result<bool> {
    let (back, digest) = read_back(storage, dir, numbers)?;
    out.digest_installed = digest;
    out.after.bytes = back.bytes;
    out.after.segments = back.segments.len() as u64;
    Ok(back.verdict() == Verdict::Clean && out.digest_installed == out.digest_expected)
}

fn read_back_differently(out: &CompactReport, what: &str, then: &str) -> Error {
    Error::new(ErrorKind::Corrupt {
        summary: format!(
            "{what} read back differently ({} != {}){then}",
            out.digest_installed, out.digest_expected
        ),
    })
}

/// SHA-256 input for one record: its identity and content, not its location (FORMAT.md §6.6).
pub(crate) fn hash_record(hasher: &mut Sha256, r: &RecordView<'_>) {
    hasher.update(r.seq.to_le_bytes());
    hasher.update(r.timestamp_nanos.to_le_bytes());
    hasher.update([r.kind.to_byte(), u8::from(r.key.is_some())]);
    let key = r.key.unwrap_or_default();
    hasher.update((key.len() as u64).to_le_bytes());
    hasher.update(key);
    hasher.update((r.payload.len() as u64).to_le_bytes());
    hasher.update(r.payload);
}

fn totals(report: &Report) -> Totals {
    Totals {
        records: report.records,
        bytes: report.bytes,
        segments: report.segments.len() as u64,
        first_seq: report.first_seq,
        last_seq: report.last_seq,
    }
}

/// Removes every temporary (`N.wal.tmp` and the marker's): leftovers of an interrupted
/// compaction or rotation, or this compaction's own when it will not be installed. Under the
/// writer lock no one else is writing any.
fn abandon(storage: &dyn Storage, dir: &Path) {
    let Ok(listing) = segment::list(storage, dir) else {
        return;
    };
    let mut removed = false;
    for n in listing.temps {
        removed |= storage.remove(&dir.join(temp_name(n))).is_ok();
    }
    let marker_temp = dir.join(install::MARKER_TEMP);
    if storage.exists(&marker_temp) {
        removed |= storage.remove(&marker_temp).is_ok();
    }
    // Only a removal needs the directory synced; most compactions find no temporary at all.
    if removed {
        let _ = sync_dir(storage, dir);
    }
}
