//! `walctl salvage --to DIR`: the front of the library's salvage, the way out for a log whose
//! acknowledged records are damaged, which `repair` refuses to cut.
//!
//! Every valid record, with its sequence number, goes to a new log in DIR (which must not exist);
//! the damaged log is only read. The report names each run of lost sequence numbers with the
//! damage that took it, says which of them had been acknowledged as durable, and proves the copy
//! with a digest computed while reading the damaged log and again reading the new one back.

use crate::exit::Exit;
use crate::json::{self, segment_file};
use crate::jsondoc::Doc;
use crate::output::Output;
use anyhow::{Context as _, Result};
use serde_json::json;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use walctl::{ErrorKind, LostRange, SalvageReport};

const EXAMPLES: &str = "\
Examples:
  $ walctl verify
  status          corrupt
  ...
  $ walctl salvage --to /srv/app/wal.salvaged
  salvaged 2999 records (1 .. 3000) into /srv/app/wal.salvaged, a new log (id 5f6ccc2204e1b579)
  lost: 1074 (acknowledged): checksum in 00000000000000000010.wal at offset 12972
  next sequence number: 3001
  sha256 of the salvaged records: 9c1f... (the same read back from the new log)
  the damaged log in /srv/app/wal was only read
  $ walctl --dir /srv/app/wal.salvaged verify | head -1
  status          clean
  $ walctl salvage --to /srv/app/wal.salvaged --dry-run --json | jq -c '.lost[] | [.first, .last]'
  [1074,1074]";

/// Copy every valid record of a damaged log, sequence numbers kept, into a new log in DIR.
///
/// For a log whose acknowledged records are damaged (verify exit 3), which repair refuses to
/// cut: the damaged log is only read, DIR must not exist, and the report lists each run of lost
/// sequence numbers with the damage that took it. The new log continues past every number the
/// old one used. Exit 0 when nothing was lost, 1 when only a torn tail (never acknowledged) was
/// left out, 3 when acknowledged records were lost; 2 when nothing could be salvaged.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// The directory for the new log (it must not exist).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Print what would be salvaged and lost; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `walctl salvage`.
///
/// # Errors
/// The log cannot be read, DIR exists, or the new log cannot be written.
pub fn run(dir: &Path, args: &Args, out: &mut Output) -> Result<Exit> {
    let target = std::path::absolute(&args.to)
        .with_context(|| format!("resolving {}", args.to.display()))?;
    let options = walctl::Options::default();
    let existed = std::fs::symlink_metadata(&target).is_ok();
    // One bar over the damaged log's bytes per pass: the survey, then the copy.
    let mut progress = crate::progress::Progress::labelled(out, dir, "checking");
    let mut pass = walctl::Pass::Survey;
    let salvaged = walctl::salvage_observed(dir, &target, &options, args.dry_run, &mut |p, at| {
        if p != pass {
            pass = p;
            progress.restart(if args.dry_run {
                "counting"
            } else {
                "salvaging"
            });
        }
        progress.update(at);
    });
    progress.finish();
    let report = match salvaged {
        Ok(report) => report,
        // A salvage that failed copied nothing usable: exit 2, not the damage codes, which
        // here say what a finished salvage lost.
        Err(e) if !matches!(e.kind(), ErrorKind::Locked { .. }) => {
            let leftover = if !existed && std::fs::symlink_metadata(&target).is_ok() {
                format!(
                    " (what was written to {} is marked incomplete and refused by every \
                     command: delete it before salvaging again)",
                    target.display()
                )
            } else {
                String::new()
            };
            anyhow::bail!(
                "salvaging the log in {} into {}: {e}{leftover}",
                dir.display(),
                target.display()
            )
        }
        Err(e) => {
            return Err(e).with_context(|| format!("salvaging the log in {}", dir.display()));
        }
    };
    if args.json {
        to_json(dir, &target, args.dry_run, &report).write_line(out.stdout())?;
    } else {
        print(out, dir, &target, args.dry_run, &report)?;
    }
    if report.durability_degraded {
        out.flush()?;
        super::warn_degraded(out);
    }
    Ok(Exit::from_verdict(report.source.verdict()))
}

fn print(
    out: &mut Output,
    dir: &Path,
    target: &Path,
    dry_run: bool,
    r: &SalvageReport,
) -> Result<()> {
    let range = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) => format!(" ({a} .. {b})"),
        _ => String::new(),
    };
    let w = out.stdout();
    if dry_run {
        writeln!(
            w,
            "would salvage {} records{range} into {}",
            r.records,
            target.display()
        )?;
    } else {
        writeln!(
            w,
            "salvaged {} records{range} into {}, a new log (id {:016x})",
            r.records,
            target.display(),
            r.log_id
        )?;
    }
    for lost in &r.lost {
        writeln!(w, "lost: {}", describe(r, lost))?;
    }
    writeln!(w, "next sequence number: {}", r.next_seq)?;
    if dry_run {
        writeln!(w, "sha256 of the records to salvage: {}", r.digest)?;
        writeln!(w, "dry run: nothing was written")?;
    } else {
        writeln!(
            w,
            "sha256 of the salvaged records: {} (the same read back from the new log)",
            r.digest
        )?;
        writeln!(w, "the damaged log in {} was only read", dir.display())?;
    }
    Ok(())
}

/// `1074 (acknowledged): checksum in ... at offset ...`
fn describe(r: &SalvageReport, lost: &LostRange) -> String {
    let seqs = match (lost.first, lost.last) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        (None, Some(b)) => format!("everything before {}", b + 1),
        (Some(a), None) => format!("from {a} on, an unknown number never acknowledged"),
        (None, None) => "an unknown number never acknowledged".into(),
    };
    let acked = match (acknowledged_through(r, lost), lost.last) {
        (Some(d), Some(b)) if b <= d => " (acknowledged)".to_string(),
        (Some(d), _) => format!(" (acknowledged through {d})"),
        (None, _) => String::new(),
    };
    let d = &r.source.damage[lost.damage];
    format!(
        "{seqs}{acked}: {} in {} at offset {}",
        d.kind.as_str(),
        segment_file(d.segment),
        d.offset
    )
}

fn to_json<'a>(dir: &Path, target: &Path, dry_run: bool, r: &'a SalvageReport) -> Doc<'a> {
    let lost = |l: &LostRange| {
        json!({
            "first": l.first,
            "last": l.last,
            "acknowledged": acknowledged_through(r, l).is_some(),
            "damage": json::damage(&r.source.damage[l.damage]),
        })
    };
    let fields = json!({
        "dry_run": dry_run,
        "source": dir.display().to_string(),
        "target": target.display().to_string(),
        "source_status": r.source.verdict().as_str(),
        "records": r.records,
        "first_seq": r.first_seq,
        "last_seq": r.last_seq,
        "next_seq": r.next_seq,
        "log_id": (!dry_run).then(|| format!("{:016x}", r.log_id)),
        "sha256": r.digest,
    });
    Doc::new(fields)
        .each("lost", move || r.lost.iter().map(lost))
        .each("damage", || r.source.damage.iter().map(json::damage))
}

/// The last sequence number of `lost` the damaged log's watermark proves synced, if any was.
/// A range with no known end lies past everything acknowledged.
fn acknowledged_through(r: &SalvageReport, lost: &LostRange) -> Option<u64> {
    let durable = r.source.durable_seq?;
    let last = lost.last?;
    (lost.first.unwrap_or(1) <= durable).then_some(last.min(durable))
}
