//! Compaction by rewriting (FORMAT.md §6.6.1): every survivor is copied into new segments
//! numbered after the old ones, which one marker switches to, and the old segments are removed.
//! For the compactions that cannot work in place (`in_place.rs`): drops in more than one segment
//! past the head, or in the last segment, or when asked to. Needs free space for every survivor.

use super::new_log::{self, NewLog};
use super::{CompactReport, Job, Pass, Stage, copy_pass, install, proven, read_back_differently};
use crate::error::{Error, Result};

/// Compacts by rewriting every survivor into new segments after the old ones (`install.rs`,
/// version 1): for compactions that drop records from more than one segment past the head.
pub(super) fn rewrite(
    job: Job<'_>,
    out: &mut CompactReport,
    observe: &mut dyn FnMut(Pass, crate::report::Location),
) -> Result<()> {
    let (storage, dir, options, report) = (job.storage, job.dir, job.options, job.report);
    let old_last = report.segments.last().map_or(0, |s| s.segment);
    let log_id = report
        .log_id
        .ok_or_else(|| Error::not_a_log(dir, "no readable segment header"))?;
    let mut writer = (!job.plan.dry_run)
        .then(|| NewLog::new(storage, dir, options, log_id, old_last + 1, job.log_first));
    let mut planned = new_log::Layout::default();
    copy_pass(
        storage,
        dir,
        job.rule,
        report.records,
        out,
        observe,
        &mut |r| {
            match writer.as_mut() {
                Some(w) => w.push(r),
                // A dry run only plans where the record would go.
                None => {
                    planned.push(r, options.segment_size);
                    Ok(())
                }
            }
        },
    )?;
    out.segments_removed = report.segments.len() as u64;
    let Some(writer) = writer else {
        (out.after.bytes, out.after.segments) = planned.totals();
        out.segments_added = out.after.segments;
        return Ok(());
    };
    install_new(job, writer, out)
}

/// Finishes the new log, commits it, reads it back, and removes the old one.
fn install_new(job: Job<'_>, writer: NewLog<'_>, out: &mut CompactReport) -> Result<()> {
    let Job {
        storage,
        dir,
        options,
        report,
        stage,
        ..
    } = job;
    let old_first = report.segments.first().map_or(1, |s| s.segment);
    let old_last = report.segments.last().map_or(0, |s| s.segment);
    let new_last = writer.finish(out.next_seq)?;
    out.segments_added = new_last - old_last;
    let marker = install::Rewrite {
        old_first,
        old_last,
        new_first: old_last + 1,
        new_last,
    };
    install::commit(storage, dir, marker, stage)?;
    let proof = proven(storage, dir, marker.new_first..=marker.new_last, out);
    if !matches!(proof, Ok(true)) {
        // Keep the old log: undo the switch before anything old is removed.
        install::roll_back(storage, dir, marker)?;
        stage.set(Stage::Before);
        proof?;
        let kept = "; the old log was kept";
        return Err(read_back_differently(out, "the compacted log", kept));
    }
    let wait = install::readers_wait(options);
    out.cleanup_deferred =
        !install::finish(storage, dir, marker.old_first..=marker.old_last, wait)?;
    Ok(())
}
