//! `walctl stat`: what the log holds, in one screen: segments, records, bytes, sequence and time
//! ranges, and how much of it is proven durable; with `--segments`, the same per segment, so an
//! operator sees which files hold records no watermark vouches for, and where damage lies.
//!
//! It reads every record (timestamps are only in records), on every core as `verify` does unless
//! a progress bar is drawn, takes no lock and changes nothing. Damage is summarised on stderr
//! and sets the exit code, as for every reader.

use crate::exit::Exit;
use crate::json::{self, segment_file};
use crate::jsondoc::Doc;
use crate::output::Output;
use crate::progress::Progress;
use crate::text;
use anyhow::{Context as _, Result};
use comfy_table::{Table, presets};
use serde_json::json;
use std::io::Write as _;
use std::path::Path;
use walctl::{Report, SegmentReport};

const EXAMPLES: &str = "\
Examples:
  $ walctl stat
  log                /srv/app/wal
  log id             5f6ccc2204e1b579
  status             clean
  segments           1 (00000000000000000001.wal)
  records            5
  bytes              12480
  sequence           1 .. 5
  time               2026-11-21T20:47:37.342193914Z .. 2026-11-21T20:47:37.366265440Z
  durable through    5
  not proven durable 0
  writer active      no
  $ walctl stat --segments | tail -2
  segment                  records sequence valid bytes file bytes durable through damage state
  00000000000000000001.wal 5       1 .. 5   12453       1060864    5               0      active
  $ walctl stat --json | jq .durable_seq
  5";

/// Summarise the log: segments, records, bytes, ranges and durability.
///
/// Shows the segment files, records and bytes, the sequence and time ranges, and how many
/// records the durable watermark proves synced. Reads every record; takes no lock.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Also list every segment: records, sequence range, valid and file bytes, what its
    /// watermark proves durable, damage found in it, and whether it is sealed (the JSON output
    /// always has this, as `segments`).
    #[arg(long)]
    segments: bool,
}

/// Runs `walctl stat`.
///
/// # Errors
/// The log cannot be read.
pub fn run(dir: &Path, args: &Args, out: &mut Output) -> Result<Exit> {
    let mut progress = Progress::new(out, dir);
    let report =
        (progress.verify(dir)).with_context(|| format!("reading the log in {}", dir.display()))?;
    progress.finish();
    if args.json {
        to_json(dir, &report).write_line(out.stdout())?;
    } else {
        writeln!(out.stdout(), "{}", text::plain(table(dir, &report)))?;
        if args.segments {
            writeln!(out.stdout(), "\n{}", text::plain(segment_table(&report)))?;
        }
    }
    // Diagnostics follow the summary on a terminal that shows both streams.
    out.flush()?;
    for d in &report.damage {
        out.note(text::damage_line(d));
    }
    if let Some(advice) = text::advice(&report) {
        out.note(advice);
    }
    Ok(Exit::from_verdict(report.verdict()))
}

fn time(t: Option<u64>) -> Option<String> {
    t.map(walctl::time::rfc3339)
}

fn to_json<'a>(dir: &Path, r: &'a Report) -> Doc<'a> {
    let t = r.times;
    let mut doc = json::report(r);
    doc.merge(json!({
        "dir": dir.display().to_string(),
        "segment_count": r.segments.len(),
        "first_timestamp": time(t.map(|t| t.first)),
        "last_timestamp": time(t.map(|t| t.last)),
        "min_timestamp": time(t.map(|t| t.min)),
        "max_timestamp": time(t.map(|t| t.max)),
        "first_segment": r.segments.first().map(|s| segment_file(s.segment)),
        "last_segment": r.segments.last().map(|s| segment_file(s.segment)),
    }));
    doc
}

fn table(dir: &Path, r: &Report) -> Table {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    let seq = |s: Option<u64>| opt(s.map(|s| s.to_string()));
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.add_row(["log", &text::escape(dir.display().to_string().as_bytes())]);
    table.add_row(["log id", &opt(json::log_id(r).as_str().map(str::to_string))]);
    table.add_row(["status", r.verdict().as_str()]);
    let segments = match (r.segments.first(), r.segments.last()) {
        (Some(a), Some(b)) if a.segment != b.segment => {
            format!(
                "{} ({} .. {})",
                r.segments.len(),
                segment_file(a.segment),
                segment_file(b.segment)
            )
        }
        (Some(a), _) => format!("1 ({})", segment_file(a.segment)),
        _ => "0".to_string(),
    };
    table.add_row(["segments", &segments]);
    table.add_row(["records", &r.records.to_string()]);
    table.add_row(["bytes", &r.bytes.to_string()]);
    table.add_row([
        "sequence",
        &format!("{} .. {}", seq(r.first_seq), seq(r.last_seq)),
    ]);
    table.add_row([
        "time",
        &format!(
            "{} .. {}",
            opt(time(r.times.map(|t| t.first))),
            opt(time(r.times.map(|t| t.last)))
        ),
    ]);
    table.add_row(["durable through", &seq(r.durable_seq)]);
    let unsynced = unproven(r.first_seq, r.last_seq, r.durable_seq);
    table.add_row(["not proven durable", &unsynced.to_string()]);
    table.add_row(["writer active", if r.writer_active { "yes" } else { "no" }]);
    table
}

/// One row per segment, for `--segments`.
fn segment_table(r: &Report) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header([
        "segment",
        "records",
        "sequence",
        "valid bytes",
        "file bytes",
        "durable through",
        "damage",
        "state",
    ]);
    // Damaged places per segment, summed in one pass: a log of thousands of segments can have
    // an entry for each.
    let mut damage = std::collections::HashMap::<u64, u64>::new();
    for d in &r.damage {
        *damage.entry(d.segment).or_default() += d.places;
    }
    for s in &r.segments {
        let range = match (s.first_seq, s.last_seq) {
            (Some(a), Some(b)) => format!("{a} .. {b}"),
            _ => "-".to_string(),
        };
        let damage = damage.get(&s.segment).copied().unwrap_or(0);
        table.add_row([
            segment_file(s.segment),
            s.records.to_string(),
            range,
            s.valid_len.to_string(),
            s.file_len.to_string(),
            s.durable_seq
                .map_or_else(|| "-".to_string(), |d| d.to_string()),
            damage.to_string(),
            segment_state(s),
        ]);
    }
    table
}

/// `sealed` or `active`, whether compaction wrote it, and how many of its records no
/// watermark proves durable.
fn segment_state(s: &SegmentReport) -> String {
    let mut state = if s.sealed { "sealed" } else { "active" }.to_string();
    if s.compacted {
        state.push_str(", compacted");
    }
    let unproven = unproven(s.first_seq, s.last_seq, s.durable_seq);
    if unproven > 0 {
        state.push_str(&format!(", {unproven} not proven durable"));
    }
    state
}

/// Records from `first` to `last` that no watermark (`durable`) proves synced: for the whole
/// log and for one segment alike.
fn unproven(first: Option<u64>, last: Option<u64>, durable: Option<u64>) -> u64 {
    match (first, last) {
        (Some(first), Some(last)) => last.saturating_sub(durable.unwrap_or(0).max(first - 1)),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::unproven;

    #[test]
    fn unproven_counts_the_records_past_the_watermark_or_all_without_one() {
        assert_eq!(unproven(Some(1), Some(2), None), 2);
        assert_eq!(unproven(Some(5), Some(9), None), 5);
        // A watermark below the segment's records (it was set in an earlier segment).
        assert_eq!(unproven(Some(5), Some(9), Some(3)), 5);
        assert_eq!(unproven(Some(5), Some(9), Some(7)), 2);
        assert_eq!(unproven(Some(5), Some(9), Some(9)), 0);
        assert_eq!(unproven(None, None, Some(3)), 0);
    }
}
