//! `walctl verify`: read every segment and record, and give the verdict as text or JSON.
//!
//! Takes no lock and writes nothing, so it runs beside a live writer and on a read-only copy.
//! The exit code is the verdict: 0 clean, 1 torn tail, 3 corrupt.

use crate::exit::Exit;
use crate::json;
use crate::output::Output;
use crate::progress::Progress;
use crate::text;
use anyhow::{Context as _, Result};
use comfy_table::{Table, presets};
use std::io::Write as _;
use std::path::Path;
use walctl::Report;

const EXAMPLES: &str = "\
Examples:
  $ walctl verify
  status          clean
  records         5
  sequence        1 .. 5
  durable through 5
  segments        1
  bytes           12480
  damage          0
  $ walctl verify --json | jq -r .status
  clean";

/// Check every segment and record (exit 0 clean, 1 torn tail, 3 corrupt).
///
/// For each damaged place it shows the segment file, the offset, the kind, the bytes affected,
/// the last good sequence number before it and how many valid records lie after it (what a cut
/// there would lose). It takes no lock and changes nothing, so it works beside a running writer
/// (whose record in progress is noted, not counted as damage) and on a read-only copy.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Print one JSON object: status, records, first_seq, last_seq, bytes, durable_seq, damage...
    #[arg(long)]
    json: bool,
}

/// Runs `walctl verify`.
///
/// # Errors
/// The log cannot be read (missing, not a log, I/O).
pub fn run(dir: &Path, args: &Args, out: &mut Output) -> Result<Exit> {
    let mut progress = Progress::new(out, dir);
    let report = (progress.verify(dir))
        .with_context(|| format!("verifying the log in {}", dir.display()))?;
    progress.finish();
    if args.json {
        json::report(&report).write_line(out.stdout())?;
    } else {
        print_text(out, &report)?;
    }
    Ok(Exit::from_verdict(report.verdict()))
}

fn print_text(out: &mut Output, report: &Report) -> Result<()> {
    let w = out.stdout();
    writeln!(w, "{}", text::plain(summary_table(report)))?;
    if !report.damage.is_empty() {
        text::write_damage_blocks(w, &report.damage)?;
    }
    if let Some(p) = &report.in_progress {
        writeln!(
            w,
            "note: a writer is active; its record in progress at offset {} of {} ({} bytes) is not damage",
            p.offset,
            json::segment_file(p.segment),
            p.length
        )?;
    } else if report.writer_active {
        writeln!(w, "note: a writer held the lock during the scan")?;
    }
    for name in &report.stray_files {
        writeln!(
            w,
            "note: ignored {}: not a segment name",
            text::escape(name.as_bytes())
        )?;
    }
    if let Some(advice) = text::advice(report) {
        // The advice belongs after the report on a terminal that shows both streams.
        out.flush()?;
        out.note(advice);
    }
    Ok(())
}

/// The key facts of a report as a two-column table.
pub fn summary_table(report: &Report) -> Table {
    let seq = |s: Option<u64>| s.map_or_else(|| "-".to_string(), |s| s.to_string());
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.add_row(["status", report.verdict().as_str()]);
    table.add_row(["records", &report.records.to_string()]);
    table.add_row([
        "sequence",
        &format!("{} .. {}", seq(report.first_seq), seq(report.last_seq)),
    ]);
    table.add_row(["durable through", &seq(report.durable_seq)]);
    table.add_row(["segments", &report.segments.len().to_string()]);
    table.add_row(["bytes", &report.bytes.to_string()]);
    let places = report.damaged_places();
    let damage = if places == report.damage.len() as u64 {
        places.to_string()
    } else {
        format!("{places} places in {} entries", report.damage.len())
    };
    table.add_row(["damage", &damage]);
    table
}
