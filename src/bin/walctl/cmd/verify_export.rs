//! `walctl verify-export FILE`: recompute an export's record count and digest and compare them
//! with its trailer.
//!
//! The digest is SHA-256 over the exact bytes of every record line, newline included (see
//! `export_jsonl.rs` and docs/JSONL.md). The file is streamed line by line, so its size does not
//! matter. Exit 0 when everything holds, 3 when anything does not (a missing trailer means the
//! export was cut short), 2 when FILE is not a walctl export at all. With `--against-log`, the
//! records themselves are also held against the log at `--dir` (`audit.rs`).

use crate::audit::{self, Audit};
use crate::exit::Exit;
use crate::json::{self, EXPORT_SCHEMA, EXPORT_VERSION};
use crate::output::Output;
use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};

/// Longest line accepted: the largest record, base64- or escape-expanded, with room to spare.
const LINE_MAX: u64 = 128 << 20;

const EXAMPLES: &str = "\
Examples:
  $ walctl verify-export audit.jsonl
  export holds: 5 records, sha256 ff371ac310ece9ec2b85748e4a74cdbadf592c71ef8d236ce38174ee5187f03c
  $ walctl export-jsonl | walctl verify-export - --json | jq -r .status
  ok
  $ walctl verify-export --against-log audit.jsonl
  export holds: 5 records, sha256 ff371ac310ece9ec2b85748e4a74cdbadf592c71ef8d236ce38174ee5187f03c
  the log in /srv/app/wal agrees: 5 records match it, none missing in their range";

/// Check an export's record count and SHA-256 digest against its trailer.
///
/// Exit 0 when they hold, 3 when they do not (or the trailer is missing: the export was cut
/// short), 2 when FILE is not a walctl export. With --against-log, every record is also held
/// against the log at --dir, and exit 3 says they disagree.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// The export to check ("-" for stdin).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print one JSON object: status, records, expected_records, sha256, expected_sha256,
    /// problems, and `log` with --against-log.
    #[arg(long)]
    json: bool,
    /// Also hold every record line against the log at --dir: the record of the same sequence
    /// number must have the same type, key, payload and timestamp, and (unless the export
    /// selected by key or time) no record of the log in the export's range may be missing.
    /// A digest proves the file unchanged since it was written; this proves it true to the log.
    #[arg(long)]
    against_log: bool,
}

/// What reading the export found.
#[derive(Default)]
struct Check {
    records: u64,
    sha256: String,
    trailer: Option<Value>,
    problems: Vec<String>,
    /// What `--against-log` found.
    audit: Option<audit::Outcome>,
}

/// Runs `walctl verify-export`.
///
/// # Errors
/// FILE cannot be read or is not a walctl export.
pub fn run(dir: &Path, args: &Args, out: &mut Output) -> Result<Exit> {
    let input: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        Box::new(file)
    };
    let against = args.against_log.then_some(dir);
    let check = check(&mut BufReader::with_capacity(1 << 16, input), against)
        .with_context(|| format!("checking {}", args.file.display()))?;
    print(out, args, dir, &check)?;
    Ok(if check.holds() {
        Exit::Success
    } else {
        Exit::Corrupt
    })
}

impl Check {
    /// Whether the file holds and, when asked, agrees with the log.
    fn holds(&self) -> bool {
        self.problems.is_empty() && self.audit.as_ref().is_none_or(|a| a.problems.is_empty())
    }
}

/// Reads the whole export, and holds it against the log in `against`; fails only when it is
/// not an export or it or the log cannot be read.
fn check(input: &mut impl BufRead, against: Option<&Path>) -> Result<Check> {
    let mut line = Vec::new();
    if !read_line(input, &mut line)? {
        bail!("the file is empty, not a walctl export");
    }
    let header = check_header(&line)?;
    let mut audit = against.map(|dir| Audit::new(dir, &header["filters"]));
    let mut c = Check::default();
    let mut hasher = Sha256::new();
    let mut last_seq: Option<u64> = None;
    let mut number = 1u64;
    while read_line(input, &mut line)? {
        number += 1;
        if c.trailer.is_some() {
            if !line.iter().all(u8::is_ascii_whitespace) {
                c.problems
                    .push(format!("line {number}: data after the trailer"));
            }
            continue;
        }
        let Ok(value) = serde_json::from_slice::<Value>(&line) else {
            c.problems.push(format!(
                "line {number}: not valid JSON (cut short or edited?)"
            ));
            continue;
        };
        match value.get("kind").and_then(Value::as_str) {
            Some("record") => {
                if line.last() != Some(&b'\n') {
                    c.problems
                        .push(format!("line {number}: the last record has no newline"));
                }
                hasher.update(&line);
                c.records += 1;
                let seq = value.get("seq").and_then(Value::as_u64);
                if seq.is_none() || seq <= last_seq {
                    c.problems
                        .push(format!("line {number}: seq missing or not increasing"));
                } else if let (Some(a), Some(seq)) = (audit.as_mut(), seq) {
                    a.record(seq, &value, number);
                }
                last_seq = seq.or(last_seq);
            }
            Some("trailer") => c.trailer = Some(value),
            _ => c
                .problems
                .push(format!("line {number}: neither a record nor the trailer")),
        }
    }
    c.sha256 = walctl::repair::hex(&hasher.finalize());
    compare(&mut c);
    if let Some(a) = audit {
        let trailer_log_id = c.trailer.as_ref().and_then(|t| t["log_id"].as_str());
        c.audit = Some(a.finish(trailer_log_id)?);
    }
    Ok(c)
}

/// Reads one line including its newline, refusing lines longer than [`LINE_MAX`].
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> Result<bool> {
    line.clear();
    let n = input.by_ref().take(LINE_MAX + 1).read_until(b'\n', line)?;
    if n as u64 > LINE_MAX {
        bail!("a line is longer than {LINE_MAX} bytes: not a walctl export");
    }
    Ok(n > 0)
}

fn check_header(line: &[u8]) -> Result<Value> {
    let header: Value = serde_json::from_slice(line)
        .map_err(|_| anyhow::anyhow!("the first line is not JSON: not a walctl export"))?;
    let schema = header.get("schema").and_then(Value::as_str);
    if header.get("kind").and_then(Value::as_str) != Some("header") || schema != Some(EXPORT_SCHEMA)
    {
        bail!(
            "the first line is not a walctl export header ({{\"kind\":\"header\",\"schema\":\"{EXPORT_SCHEMA}\",...}})"
        );
    }
    match header.get("version").and_then(Value::as_u64) {
        Some(EXPORT_VERSION) => Ok(header),
        other => bail!(
            "export schema version {} is not supported (this walctl reads version {EXPORT_VERSION})",
            other.map_or_else(|| "missing".to_string(), |v| v.to_string())
        ),
    }
}

/// Compares what was counted with what the trailer claims.
fn compare(c: &mut Check) {
    let Some(trailer) = &c.trailer else {
        c.problems
            .push("no trailer line: the export is incomplete (cut short?)".into());
        return;
    };
    let expected_records = trailer.get("records").and_then(Value::as_u64);
    if expected_records != Some(c.records) {
        c.problems.push(format!(
            "the trailer says {} records, the file holds {}",
            expected_records.map_or_else(|| "no number of".to_string(), |n| n.to_string()),
            c.records
        ));
    }
    let expected_sha = trailer.get("sha256").and_then(Value::as_str);
    if expected_sha != Some(c.sha256.as_str()) {
        c.problems.push(format!(
            "the digest does not match: the trailer says {}, the records hash to {}",
            expected_sha.unwrap_or("nothing"),
            c.sha256
        ));
    }
}

fn print(out: &mut Output, args: &Args, dir: &Path, c: &Check) -> Result<()> {
    let trailer = c.trailer.as_ref();
    let field = |name: &str| {
        trailer
            .and_then(|t| t.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    if args.json {
        let value = json!({
            "status": if c.holds() { "ok" } else { "mismatch" },
            "records": c.records,
            "expected_records": field("records"),
            "sha256": c.sha256,
            "expected_sha256": field("sha256"),
            "source_status": field("status"),
            "problems": c.problems,
            "log": c.audit.as_ref().map(|a| audit_json(dir, a)),
        });
        json::write_line(out.stdout(), &value)?;
        return Ok(());
    }
    if c.problems.is_empty() {
        writeln!(
            out.stdout(),
            "export holds: {} records, sha256 {}",
            c.records,
            c.sha256
        )?;
    } else {
        writeln!(out.stdout(), "export does NOT hold:")?;
        for p in &c.problems {
            writeln!(out.stdout(), "  {p}")?;
        }
    }
    if let Some(a) = &c.audit {
        print_audit(out, dir, a)?;
    }
    if let Some(status) = field("status").as_str().filter(|s| *s != "clean") {
        out.note(format_args!(
            "the source log was {status} when exported (see the trailer)"
        ));
    }
    Ok(())
}

fn print_audit(out: &mut Output, dir: &Path, a: &audit::Outcome) -> Result<()> {
    let dir = dir.display();
    if a.problems.is_empty() {
        let range = if a.complete {
            ", none missing in their range"
        } else {
            " (the export selected by key or time, so the log's other records were not looked for)"
        };
        writeln!(
            out.stdout(),
            "the log in {dir} agrees: {} records match it{range}",
            a.matched
        )?;
    } else {
        writeln!(
            out.stdout(),
            "the export does NOT agree with the log in {dir}:"
        )?;
        for p in &a.problems {
            writeln!(out.stdout(), "  {p}")?;
        }
    }
    if a.moved > 0 {
        out.note(format_args!(
            "{} matching records have moved since the export (the log was compacted)",
            a.moved
        ));
    }
    if a.log_damaged {
        out.note(format_args!(
            "the log in {dir} has damage in the part read; run `walctl verify`"
        ));
    }
    Ok(())
}

fn audit_json(dir: &Path, a: &audit::Outcome) -> Value {
    json!({
        "dir": dir.display().to_string(),
        "status": if a.problems.is_empty() { "agrees" } else { "differs" },
        "log_id": a.log_id,
        "matched": a.matched,
        "moved": a.moved,
        "differ": a.differ,
        "not_in_log": a.not_in_log,
        "not_in_export": a.not_in_export,
        "completeness_checked": a.complete,
        "log_damaged": a.log_damaged,
        "problems": a.problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line of `LINE_MAX` bytes, its newline included, is read whole; one byte more is refused
    /// rather than read in part (which would misread the rest of it as the next line).
    #[test]
    fn lines_up_to_the_limit_are_read_whole_and_longer_ones_refused() {
        let max = usize::try_from(LINE_MAX).unwrap();
        for (len, accepted) in [(max, true), (max + 1, false)] {
            let mut text = vec![b'x'; len - 1];
            text.extend_from_slice(b"\nnext\n");
            let mut input = std::io::Cursor::new(text);
            let mut line = Vec::new();
            let read = read_line(&mut input, &mut line);
            assert_eq!(read.is_ok(), accepted, "{len}");
            if accepted {
                assert_eq!(line.len(), len);
                assert!(read_line(&mut input, &mut line).unwrap());
                assert_eq!(line, b"next\n");
            }
        }
    }
}
