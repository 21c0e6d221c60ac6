//! Compaction in place (FORMAT.md §6.6.2): when the records a compaction drops fill whole
//! segments at the head of the log plus at most one other segment, the head segments are
//! removed and that one segment is rewritten under its own number; every other segment stays as
//! it is, byte for byte. A `--before` checkpoint always has this shape, so retention on a log of
//! tens of GiB writes one segment rather than the whole log, and needs one segment of free space
//! rather than a second copy.
//!
//! Why the head and one segment, and no more: the switch must be atomic for readers and crashes
//! alike. Removing the head is committed by one marker, which readers obey; replacing a segment
//! is committed by one rename. Two replacements would be two renames, and a crash between them
//! would leave a log that is neither the old one nor the new one, so such a compaction rewrites
//! the whole log instead (`install.rs`, version 1). So does one whose only losing segment is the
//! last: writers never append to a compacted segment, so replacing it would seal it and start
//! another, and repeated compactions would leave a trail of small segments a rewrite packs.

use super::new_log::NewLog;
use super::{
    CompactReport, Job, Pass, Stage, abandon, copy_pass, hash_record, install, proven,
    read_back_differently,
};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{self, SEGMENT_DATA_START, WatermarkSlot};
use crate::options::Options;
use crate::repair::{hex, sync_dir};
use crate::report::{Location, RecordView, SegmentReport};
use crate::scan;
use crate::segment::{self, Listing, temp_name};
use crate::storage::{OpenMode, Storage, read_vec};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Which segments a compaction in place removes and rewrites; all others are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Shape {
    /// The segments at the head that keep no record: removed.
    pub head: Option<(u64, u64)>,
    /// The one other segment that loses records: rewritten under its own number.
    pub replace: Option<u64>,
    /// Whether the last segment is sealed and an empty one started after it: needed when the
    /// head goes, because the last segment's header carries the log's first sequence number
    /// (FORMAT.md §8 row 8) and headers are immutable.
    pub rotate: bool,
}

impl Shape {
    /// The shape of a compaction, from each segment's records and survivors; `None` when more
    /// than one segment outside the head loses records (the log is then rewritten whole).
    pub(super) fn of(segments: &[SegmentReport], survivors: &BTreeMap<u64, u64>) -> Option<Shape> {
        let left = |s: &SegmentReport| survivors.get(&s.segment).copied().unwrap_or(0);
        let head_len = segments.iter().take_while(|s| left(s) == 0).count();
        let head = (head_len > 0).then(|| (segments[0].segment, segments[head_len - 1].segment));
        let mut losing = segments[head_len..]
            .iter()
            .filter(|s| left(s) < s.records)
            .map(|s| s.segment);
        let replace = losing.next();
        let last = segments.last()?.segment;
        // Replacing the last segment would mean sealing it and starting another after it:
        // repeated, that leaves a trail of small sealed segments, where a rewrite packs them.
        if losing.next().is_some() || replace == Some(last) {
            return None;
        }
        Some(Shape {
            head,
            replace,
            rotate: head.is_some(),
        })
    }

    /// Segments removed (the head), rewritten (the replaced one) and added (the new last).
    pub(super) fn files(&self, segments: &[SegmentReport]) -> (u64, u64, u64) {
        let head = self.head.map_or(0, |(a, h)| {
            segments
                .iter()
                .filter(|s| (a..=h).contains(&s.segment))
                .count() as u64
        });
        let replaced = u64::from(self.replace.is_some());
        (head, replaced, u64::from(self.rotate))
    }

    /// Bytes and segment files the log will have: the kept segments as they are, the
    /// replacement holding `replacement_bytes` of records, and the new last segment.
    pub(super) fn totals(&self, segments: &[SegmentReport], replacement_bytes: u64) -> (u64, u64) {
        let removed = |n: u64| self.head.is_some_and(|(a, h)| (a..=h).contains(&n));
        let (mut bytes, mut files) = (0, 0);
        for s in segments.iter().filter(|s| !removed(s.segment)) {
            files += 1;
            bytes += if Some(s.segment) == self.replace {
                SEGMENT_DATA_START + replacement_bytes
            } else {
                s.file_len
            };
        }
        if self.rotate {
            (bytes + SEGMENT_DATA_START, files + 1)
        } else {
            (bytes, files)
        }
    }
}

/// The survivors of the segment being replaced, as the copy pass hands them over: written to its
/// temporary (not for a dry run) and hashed, so the temporary can be read back and compared
/// before it is installed.
pub(super) struct Replacement<'a> {
    pub number: u64,
    /// The replacement header's `created_nanos`, which tells it from the segment it replaces.
    created_nanos: u64,
    writer: Option<NewLog<'a>>,
    hasher: Sha256,
    records: u64,
    /// Encoded bytes of the survivors.
    pub bytes: u64,
}

impl<'a> Replacement<'a> {
    /// Starts the temporary for segment `number` (only counts, for a dry run).
    pub(super) fn start(
        storage: &'a dyn Storage,
        dir: &'a Path,
        options: &Options,
        number: u64,
        log_first_seq: u64,
        dry_run: bool,
    ) -> Result<Replacement<'a>> {
        let (writer, created_nanos) = if dry_run {
            (None, 0)
        } else {
            let opened = segment::open_with_header(storage, dir, number)?;
            let header = opened
                .header
                .map_err(|_| Error::not_a_log(&opened.path, "unreadable header"))?;
            let (log, created) = NewLog::in_place(storage, dir, options, &header, log_first_seq)?;
            (Some(log), created)
        };
        Ok(Replacement {
            number,
            created_nanos,
            writer,
            hasher: Sha256::new(),
            records: 0,
            bytes: 0,
        })
    }

    /// Takes one survivor of the log; only those of the replaced segment are kept.
    pub(super) fn push(&mut self, r: &RecordView<'_>) -> Result<()> {
        if r.location.segment != self.number {
            return Ok(());
        }
        hash_record(&mut self.hasher, r);
        self.records += 1;
        self.bytes += format::encoded_len(r.key.map_or(0, <[u8]>::len), r.payload.len()) as u64;
        match self.writer.as_mut() {
            Some(w) => w.push(r),
            None => Ok(()),
        }
    }

    /// Seals the temporary, reads it back, and checks that it holds exactly the survivors.
    fn finish(self, storage: &dyn Storage, dir: &Path) -> Result<()> {
        let Some(writer) = self.writer else {
            return Ok(());
        };
        writer.finish_in_place()?;
        let path = dir.join(temp_name(self.number));
        let (records, digest) = read_temp(storage, &path)?;
        let expected = hex(&self.hasher.finalize());
        if records != self.records || digest != expected {
            return Err(Error::new(ErrorKind::Corrupt {
                summary: format!(
                    "{} read back differently ({records} records, {digest}; expected {}, \
                     {expected}); the old log was kept",
                    path.display(),
                    self.records
                ),
            }));
        }
        sync_dir(storage, dir)?;
        Ok(())
    }
}

/// Reads a freshly written replacement: it must decode cleanly, sealed, with no damage.
fn read_temp(storage: &dyn Storage, path: &Path) -> Result<(u64, String)> {
    let file = storage
        .open(path, OpenMode::Read)
        .map_err(|e| Error::io("open", path, e))?;
    let bytes = file.contents().map_err(|e| Error::io("read", path, e))?;
    let bad = |why: &str| {
        Error::new(ErrorKind::Corrupt {
            summary: format!(
                "{} read back damaged: {why}; the old log was kept",
                path.display()
            ),
        })
    };
    if (bytes.len() as u64) < SEGMENT_DATA_START {
        return Err(bad("shorter than a preamble"));
    }
    let header = format::SegmentHeader::decode(&bytes).map_err(|_| bad("bad header"))?;
    let mut hasher = Sha256::new();
    let s = scan::scan_segment(&bytes, &header, &mut |r| {
        hash_record(&mut hasher, r);
        std::ops::ControlFlow::Continue(())
    });
    if !s.damage.is_empty() || scan::check_preamble(&bytes, &header, true, s.last_seq).is_some() {
        return Err(bad("its records or preamble do not check"));
    }
    Ok((s.records, hex(&hasher.finalize())))
}

/// Installs a compaction in place whose replacement (if any) the copy pass has written: seals
/// the last segment and starts the next if the shape says so, then commits and removes the head.
/// Returns whether the removal was deferred because readers held on, or `None`, having changed
/// nothing, when a replacement is due and readers hold the log past the wait.
fn install(
    job: Job<'_>,
    shape: Shape,
    replacement: Option<Replacement<'_>>,
    last: &SegmentReport,
    next_seq: u64,
) -> Result<Option<bool>> {
    let Job {
        storage,
        dir,
        options,
        log_first: log_first_seq,
        stage,
        ..
    } = job;
    let wait = install::readers_wait(options);
    let replace = replacement.as_ref().map(|r| (r.number, r.created_nanos));
    if let Some(r) = replacement {
        r.finish(storage, dir)?;
    }
    // Renaming the replacement changes a segment a running scan may be about to open, so no
    // scan may run from here to the end; taken before anything changes, so that readers who
    // hold on cost nothing but the wait.
    let readers = match shape.replace {
        Some(_) => match install::exclusive_readers(storage, dir, wait)? {
            Some(lock) => Some(lock),
            None => return Ok(None),
        },
        None => None,
    };
    if shape.rotate {
        rotate(storage, dir, options, last, next_seq, log_first_seq)?;
    }
    let marker = shape.head.map(|(a, h)| install::InPlace {
        remove_first: a,
        remove_last: h,
        replace,
    });
    // The commit is the replacement's rename, or the marker when nothing is replaced.
    if let Some(m) = marker {
        let commits = shape.replace.is_none().then_some(stage);
        install::write_marker(storage, dir, install::Marker::InPlace(m), commits)?;
    }
    if let Some(k) = shape.replace {
        let (temp, path) = (dir.join(temp_name(k)), Listing::path(dir, k));
        storage
            .rename(&temp, &path)
            .map_err(|e| Error::io("rename", &path, e))?;
        stage.set(Stage::Committing);
        sync_dir(storage, dir)?;
        stage.set(Stage::Committed);
    }
    crate::kill_point("compact_committed");
    let Some(m) = marker else {
        return Ok(Some(false));
    };
    if readers.is_some() {
        crate::kill_point("compact_installed");
        install::remove_segments(storage, dir, m.remove_first..=m.remove_last)?;
        return Ok(Some(false));
    }
    let done = install::finish(storage, dir, m.remove_first..=m.remove_last, wait)?;
    Ok(Some(!done))
}

/// Seals the last segment and creates the empty one after it, which carries the new log's first
/// sequence number and starts at the old log's next.
fn rotate(
    storage: &dyn Storage,
    dir: &Path,
    options: &Options,
    last: &SegmentReport,
    next_seq: u64,
    log_first_seq: u64,
) -> Result<()> {
    let log_id = seal(storage, dir, last)?;
    // As a writer's rotation would start it: appends continue in it.
    crate::log::create_empty_segment(
        storage,
        dir,
        log_id,
        last.segment + 1,
        (next_seq, log_first_seq),
        options.preallocate > 0,
    )
}

/// Seals the last segment as a rotation does (FORMAT.md §6.2): fdatasync, a watermark slot for
/// its last record, fdatasync again. The slot is written even when one already says as much:
/// that one may exist only in the page cache, if an fdatasync of an earlier writer failed after
/// it was written (the kernel then drops the dirty state, and later syncs succeed without it).
/// Returns the log's identity, from the segment's header.
fn seal(storage: &dyn Storage, dir: &Path, last: &SegmentReport) -> Result<u64> {
    let path = Listing::path(dir, last.segment);
    let file = storage
        .open(&path, OpenMode::ReadWrite)
        .map_err(|e| Error::io("open", &path, e))?;
    let sync = || {
        file.sync_data()
            .map_err(|e| Error::io("fdatasync", &path, e))
    };
    sync()?;
    let read = |e| Error::io("read", &path, e);
    let preamble = read_vec(&*file, 0, SEGMENT_DATA_START, SEGMENT_DATA_START).map_err(read)?;
    let header = format::SegmentHeader::decode(&preamble)
        .map_err(|_| Error::not_a_log(&path, "unreadable header"))?;
    let Some(last_seq) = last.last_seq else {
        return Ok(header.log_id);
    };
    let generation = scan::read_watermark(&preamble, &header).map_or(0, |w| w.generation) + 1;
    let (at, slot) = WatermarkSlot::placed(&header, generation, last_seq, last.valid_len);
    file.write_at(&slot, at)
        .map_err(|e| Error::io_at("write watermark", &path, at, e))?;
    sync()?;
    Ok(header.log_id)
}

/// How a compaction in place ended, when it did not fail.
pub(super) enum Outcome {
    Done,
    /// Nothing was changed: the replacement needs the readers' lock, which readers held on to.
    ReadersBusy,
}

/// Compacts in place: removes the head, rewrites at most one segment under its
/// own number, and keeps every other segment as it is.
pub(super) fn compact(
    job: Job<'_>,
    shape: Shape,
    out: &mut CompactReport,
    observe: &mut dyn FnMut(Pass, Location),
) -> Result<Outcome> {
    let Job {
        storage,
        dir,
        options,
        plan,
        report,
        rule,
        log_first,
        ..
    } = job;
    let last = report
        .segments
        .last()
        .expect("a log with records has a segment");
    let started = shape
        .replace
        .map(|k| Replacement::start(storage, dir, options, k, log_first, plan.dry_run));
    let mut replacement = started.transpose()?;
    let copied = copy_pass(storage, dir, rule, report.records, out, observe, &mut |r| {
        replacement.as_mut().map_or(Ok(()), |rep| rep.push(r))
    });
    let replaced_bytes = replacement.as_ref().map_or(0, |r| r.bytes);
    (
        out.segments_removed,
        out.segments_rewritten,
        out.segments_added,
    ) = shape.files(&report.segments);
    if plan.dry_run {
        (out.after.bytes, out.after.segments) = shape.totals(&report.segments, replaced_bytes);
        return copied.map(|()| Outcome::Done);
    }
    copied?;
    // On an error the caller settles: rolls back before the commit, finishes after it.
    match install(job, shape, replacement, last, out.next_seq)? {
        Some(deferred) => out.cleanup_deferred = deferred,
        None => {
            abandon(storage, dir);
            return Ok(Outcome::ReadersBusy);
        }
    }
    let first = shape
        .head
        .map_or(report.segments[0].segment, |(_, h)| h + 1);
    let last = last.segment + u64::from(shape.rotate);
    if !proven(storage, dir, first..=last, out)? {
        return Err(read_back_differently(out, "the log compacted in place", ""));
    }
    Ok(Outcome::Done)
}
