//! `walctl compact`: the front of the library's compaction, which drops records on purpose and
//! proves what it kept.
//!
//! The library holds the writer lock throughout, refuses a corrupt log (exit 3) and a torn tail
//! (exit 1: repair it first), and returns a report whose two digests (survivors as read from the
//! old log, and the installed new log read back) must be equal. This command prints that report
//! for people or as JSON.

use super::LockWait;
use crate::exit::Exit;
use crate::json;
use crate::output::Output;
use crate::text;
use anyhow::{Context as _, Result};
use clap::ArgGroup;
use comfy_table::{Table, presets};
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::Path;
use walctl::{CompactReport, Compaction, CompactionState, Totals};

const EXAMPLES: &str = "\
Examples:
  $ walctl compact --keys --dry-run
                      before after (planned)
  records             5      5
  ...
  result                     dry run: nothing was written
  $ walctl compact --before 4 --json | jq .proof_holds
  true";

/// Drop records before a checkpoint, or superseded by a later write of their key.
///
/// DELETES records on purpose: --before SEQ drops every record below SEQ; --keys keeps only the
/// latest record of each key and drops keys whose latest record is a tombstone (keyless records
/// are kept). Survivors keep their sequence numbers. When the dropped records fill whole
/// segments at the head of the log plus at most one other segment, not the last (always so for
/// --before alone, unless SEQ falls in the last segment), the head segments are removed and that
/// one is rewritten in place: the rest of the log is not touched. Otherwise the survivors are
/// written into new segments beside the old ones. Either
/// way the switch is crash-safe, and the report proves it with a SHA-256 digest over the
/// survivors, computed while reading the old log and again by reading the new log back. When the
/// rule drops nothing, nothing is written: the log is left as it is. A corrupt log is refused (exit 3), a
/// torn tail too (exit 1: run `walctl repair --truncate-partial` first).
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES, group(ArgGroup::new("rule").required(true).multiple(true)))]
pub struct Args {
    /// Drop every record with a sequence number below SEQ (at most the log's next sequence
    /// number: a checkpoint no record has reached is refused, exit 2).
    #[arg(long, value_name = "SEQ", group = "rule")]
    before: Option<u64>,
    /// Keep only the latest record of each key; drop keys whose latest record is a tombstone.
    #[arg(long, group = "rule")]
    keys: bool,
    /// Print the report without writing anything.
    #[arg(long)]
    dry_run: bool,
    /// Rewrite every surviving record into new segments, even when the drops fall in whole
    /// segments at the head and at most one other (which compacts in place, leaving the rest of
    /// the log as it is): needs as much free space as the survivors.
    #[arg(long)]
    rewrite: bool,
    #[command(flatten)]
    wait: LockWait,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `walctl compact`.
///
/// # Errors
/// Corruption (exit 3), a torn tail (exit 1), the lock (exit 4), I/O, a failed proof.
pub fn run(dir: &Path, args: &Args, out: &mut Output) -> Result<Exit> {
    let plan = Compaction {
        before: args.before,
        keys: args.keys,
        dry_run: args.dry_run,
        rewrite: args.rewrite,
    };
    // One bar over the old log's bytes per pass: the verifying survey, then the copy.
    let mut progress = crate::progress::Progress::labelled(out, dir, "checking");
    let mut pass = walctl::Pass::Survey;
    let report = walctl::compact_observed(dir, &args.wait.options(), &plan, &mut |p, location| {
        if p != pass {
            pass = p;
            progress.restart("compacting");
        }
        progress.update(location);
    });
    progress.finish();
    let report = report
        .map_err(|e| match (e.kind(), e.compaction_state()) {
            (walctl::ErrorKind::Io { .. }, _) | (_, Some(CompactionState::Committed)) => {
                anyhow::Error::new(Interrupted(e))
            }
            _ => anyhow::Error::new(e),
        })
        .with_context(|| format!("compacting the log in {}", dir.display()))?;
    if args.json {
        json::write_line(out.stdout(), &to_json(&report))?;
    } else {
        writeln!(out.stdout(), "{}", text::plain(table(&report)))?;
    }
    if report.durability_degraded {
        out.flush()?;
        super::warn_degraded(out);
    }
    if report.cleanup_deferred {
        out.flush()?;
        out.note(
            "readers still use the old segments; they are removed by the next open of the log",
        );
    }
    Ok(Exit::Success)
}

/// An error that stopped a compaction, with where it left the log, which the library knows
/// (FORMAT.md §6.6.3: it has already rolled back or finished the installation), and what the
/// operator may do next.
#[derive(Debug)]
struct Interrupted(walctl::Error);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.0.compaction_state() {
            Some(CompactionState::Unchanged) => {
                "the compaction was not committed, and the log still holds every record: fix \
                 the cause and run the compaction again"
            }
            Some(CompactionState::Committed) => {
                "the compaction was committed: the log holds only the survivors, or will once \
                 its next open finishes the installation (`walctl sync` does, once the cause \
                 is fixed)"
            }
            _ => {
                "the compaction failed making its commit durable: the next open of the log \
                 settles it, finishing the compaction or, if a crash lost the commit, rolling \
                 it back, never leaving a mix (`walctl sync` does, once the cause is fixed)"
            }
        };
        write!(f, "{}; {state}", self.0)
    }
}

impl std::error::Error for Interrupted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn totals(t: &Totals) -> Value {
    json!({
        "records": t.records,
        "bytes": t.bytes,
        "segments": t.segments,
        "first_seq": t.first_seq,
        "last_seq": t.last_seq,
    })
}

fn to_json(r: &CompactReport) -> Value {
    json!({
        "dry_run": r.dry_run,
        "before": totals(&r.before),
        "after": totals(&r.after),
        "keys_kept": r.keys_kept,
        "dropped_before": r.dropped_before,
        "dropped_superseded": r.dropped_superseded,
        "dropped_deleted": r.dropped_deleted,
        "unchanged": r.unchanged,
        "digest_expected": (!r.unchanged).then_some(&r.digest_expected),
        "digest_installed": (!r.dry_run && !r.unchanged).then_some(&r.digest_installed),
        // The log holds exactly the survivors: read back equal, or never touched.
        "proof_holds": !r.dry_run && (r.unchanged || r.digest_expected == r.digest_installed),
        "next_seq": r.next_seq,
        "cleanup_deferred": r.cleanup_deferred,
        "segments_kept": kept(r),
        "segments_rewritten": r.segments_rewritten,
        "segments_removed": r.segments_removed,
        "segments_added": r.segments_added,
    })
}

/// Old segments left as they were.
fn kept(r: &CompactReport) -> u64 {
    r.before.segments - r.segments_removed - r.segments_rewritten
}

fn table(r: &CompactReport) -> Table {
    let range = |t: &Totals| match (t.first_seq, t.last_seq) {
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        _ => "-".to_string(),
    };
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    let title = match (r.dry_run, r.unchanged) {
        (true, false) => "dry run: nothing was written",
        (true, true) => "dry run: nothing to drop",
        (false, true) => "nothing to drop: the log was left as it is",
        (false, false) => "compacted",
    };
    table.set_header([
        "",
        "before",
        if r.dry_run {
            "after (planned)"
        } else {
            "after"
        },
    ]);
    table.add_row([
        "records",
        &r.before.records.to_string(),
        &r.after.records.to_string(),
    ]);
    table.add_row([
        "bytes",
        &r.before.bytes.to_string(),
        &r.after.bytes.to_string(),
    ]);
    table.add_row([
        "segments",
        &r.before.segments.to_string(),
        &r.after.segments.to_string(),
    ]);
    table.add_row(["sequence", &range(&r.before), &range(&r.after)]);
    table.add_row(["keys kept", "", &r.keys_kept.to_string()]);
    table.add_row(["dropped by --before", "", &r.dropped_before.to_string()]);
    table.add_row(["dropped superseded", "", &r.dropped_superseded.to_string()]);
    table.add_row(["dropped deleted", "", &r.dropped_deleted.to_string()]);
    table.add_row(["next seq", "", &r.next_seq.to_string()]);
    table.add_row(["segments kept", "", &kept(r).to_string()]);
    table.add_row(["segments rewritten", "", &r.segments_rewritten.to_string()]);
    table.add_row(["segments removed", "", &r.segments_removed.to_string()]);
    table.add_row(["segments added", "", &r.segments_added.to_string()]);
    if !r.unchanged {
        table.add_row(["survivors sha256", "", &r.digest_expected]);
    }
    if !r.dry_run && !r.unchanged {
        table.add_row(["read back sha256", "", &r.digest_installed]);
    }
    table.add_row(["result", "", title]);
    table
}
