//! `walctl repair --truncate-partial`: cut a torn tail, and refuse everything else.
//!
//! The library does the work under the writer lock: it rescans, acts only on a torn-tail
//! verdict, saves the cut bytes to a side file and journals the cut in `repair.jsonl`. This
//! command adds the operator's side: the plan first, a confirmation on a terminal (`--yes` for
//! scripts, and a refusal when nobody can be asked), and the result in words or JSON.

use super::LockWait;
use crate::exit::{Exit, UsageError};
use crate::json::{self, segment_file};
use crate::output::Output;
use anyhow::{Context as _, Result};
use serde_json::{Value, json};
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use walctl::{RepairOutcome, TailCut};

const EXAMPLES: &str = "\
Examples:
  $ walctl repair --truncate-partial --dry-run
  plan: cut the torn tail of 00000000000000000001.wal at offset 12387: 30 bytes, 0 records lost, last surviving seq 3
  dry run: nothing was changed
  $ walctl repair --truncate-partial --yes
  cut 30 bytes at offset 12387 of 00000000000000000001.wal; the last surviving record is seq 3
  the cut bytes are saved in /srv/app/wal/00000000000000000001.wal.cut-00000000000000012387 (sha256 ff4ee9ca1cdf0b91d3a15b0442745f19525c07bc9318ff92c3e5dd9913d5673a); the cut is recorded in /srv/app/wal/repair.jsonl";

/// Cut a torn tail left by a crash, and nothing else.
///
/// DESTROYS the bytes after the last valid record of the last segment, which a crashed writer
/// never acknowledged as durable; they are first saved to a side file in the log directory and
/// the cut is recorded in the repair journal (repair.jsonl). Any other damage is corruption: it
/// refuses, changes no byte and exits 3. Asks for confirmation on a terminal; --yes for scripts.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Cut a torn tail (the only repair walctl performs; required).
    #[arg(long, required = true)]
    truncate_partial: bool,
    /// Print the plan (segment, offset, bytes, records lost, last surviving seq); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    wait: LockWait,
    /// Print the plan or the result as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `walctl repair --truncate-partial`.
///
/// # Errors
/// Corruption (exit 3), the lock (exit 4), I/O, no confirmation.
pub fn run(dir: &Path, args: &Args, out: &mut Output) -> Result<Exit> {
    debug_assert!(args.truncate_partial, "clap requires the flag");
    let options = args.wait.options();
    if args.yes && !args.dry_run {
        return cut(dir, args, &options, out);
    }
    let (_, outcome) = walctl::truncate_partial(dir, &options, true)
        .with_context(|| format!("repairing the log in {}", dir.display()))?;
    let RepairOutcome::Cut(plan) = outcome else {
        print(out, dir, args, None, "clean")?;
        return Ok(Exit::Success);
    };
    print(out, dir, args, Some(&plan), "planned")?;
    if args.dry_run {
        // The torn tail is still there: the same exit as `verify` gives for it.
        return Ok(Exit::TornTail);
    }
    out.flush()?;
    confirm(out, &plan)?;
    cut(dir, args, &options, out)
}

/// Cuts for real; the library rescans under the lock, so it acts on the log as it is now.
fn cut(dir: &Path, args: &Args, options: &walctl::Options, out: &mut Output) -> Result<Exit> {
    let (_, outcome) = walctl::truncate_partial(dir, options, false)
        .with_context(|| format!("repairing the log in {}", dir.display()))?;
    match outcome {
        RepairOutcome::Cut(cut) => print(out, dir, args, Some(&cut), "cut")?,
        RepairOutcome::Clean => print(out, dir, args, None, "clean")?,
    }
    Ok(Exit::Success)
}

/// Asks on the terminal; without one, refuses (exit 2) rather than guess.
fn confirm(out: &Output, plan: &TailCut) -> Result<()> {
    if !out.stdin_is_terminal() {
        return Err(UsageError(
            "not cutting without confirmation: stdin is not a terminal; pass --yes to cut \
             (or --dry-run to only see the plan)"
                .into(),
        )
        .into());
    }
    out.stderr_raw(&format!(
        "walctl: cut {} bytes ({} unacknowledged records) from {}? The bytes are kept in a side \
         file. [y/N] ",
        plan.length,
        plan.records_lost,
        segment_file(plan.segment)
    ));
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        return Ok(());
    }
    Err(UsageError("not confirmed; nothing was changed".into()).into())
}

fn print(
    out: &mut Output,
    dir: &Path,
    args: &Args,
    cut: Option<&TailCut>,
    status: &str,
) -> Result<()> {
    let records_lost = cut.map_or(0, |c| c.records_lost);
    if cut.is_some_and(|c| c.durability_degraded) {
        out.note(
            "warning: this file system cannot fsync directories; the side file may not survive a \
             power loss: copy it elsewhere if you need the cut bytes",
        );
    }
    if args.json {
        let value = to_json(cut, status, records_lost, args.dry_run);
        json::write_line(out.stdout(), &value)?;
        return Ok(());
    }
    let w = out.stdout();
    let Some(cut) = cut else {
        writeln!(w, "the log is clean: nothing to cut")?;
        return Ok(());
    };
    let last = cut
        .last_seq
        .map_or_else(|| "none".to_string(), |s| s.to_string());
    if status == "planned" {
        writeln!(
            w,
            "plan: cut the torn tail of {} at offset {}: {} bytes, {records_lost} records lost, \
             last surviving seq {last}",
            segment_file(cut.segment),
            cut.offset,
            cut.length
        )?;
        if args.dry_run {
            writeln!(w, "dry run: nothing was changed")?;
        }
        return Ok(());
    }
    writeln!(
        w,
        "cut {} bytes at offset {} of {}; the last surviving record is seq {last}",
        cut.length,
        cut.offset,
        segment_file(cut.segment)
    )?;
    writeln!(
        w,
        "the cut bytes are saved in {} (sha256 {}); the cut is recorded in {}",
        super::side_path(dir, &cut.side_file).display(),
        cut.sha256,
        dir.join(walctl::segment::JOURNAL_NAME).display()
    )?;
    Ok(())
}

fn to_json(cut: Option<&TailCut>, status: &str, records_lost: u64, dry_run: bool) -> Value {
    let Some(cut) = cut else {
        return json!({ "status": status, "dry_run": dry_run });
    };
    let done = status == "cut";
    json!({
        "status": status,
        "dry_run": dry_run,
        "segment": segment_file(cut.segment),
        "offset": cut.offset,
        "bytes_cut": cut.length,
        "records_lost": records_lost,
        "last_seq": cut.last_seq,
        "sha256": done.then_some(&cut.sha256),
        "side_file": done.then_some(&cut.side_file),
        "journal": done.then_some(walctl::segment::JOURNAL_NAME),
        "durability_degraded": done.then_some(cut.durability_degraded),
    })
}
