//! `walctl verify-export FILE`: recompute an export's record count and digest and compare them
//! with its trailer.
//!
//! The digest is SHA-256 over the exact bytes of every record line, newline included (see
//! `export_jsonl.rs` and docs/JSONL.md). The file is streamed line by line, so its size does not
//! matter. Exit 0 when everything holds, 3 when anything does not (a missing trailer means the
//! export was cut short), 2 when FILE is not a walctl export at all.

use crate::exit::Exit;
use crate::json::{self, EXPORT_SCHEMA, EXPORT_VERSION};
use crate::output::Output;
use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::path::PathBuf;

/// Longest line accepted: the largest record, base64- or escape-expanded, with room to spare.
const LINE_MAX: u64 = 128 << 20;

const EXAMPLES: &str = "\
Examples:
  $ walctl verify-export audit.jsonl
  export holds: 5 records, sha256 ff371ac310ece9ec2b85748e4a74cdbadf592c71ef8d236ce38174ee5187f03c
  $ walctl export-jsonl | walctl verify-export - --json | jq -r .status
  ok";

/// Check an export's record count and SHA-256 digest against its trailer.
///
/// Exit 0 when they hold, 3 when they do not (or the trailer is missing: the export was cut
/// short), 2 when FILE is not a walctl export.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// The export to check ("-" for stdin).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print one JSON object: status, records, expected_records, sha256, expected_sha256,
    /// problems.
    #[arg(long)]
    json: bool,
}

/// What reading the export found.
#[derive(Default)]
struct Check {
    records: u64,
    sha256: String,
    trailer: Option<Value>,
    problems: Vec<String>,
}

/// Runs `walctl verify-export`.
///
/// # Errors
/// FILE cannot be read or is not a walctl export.
pub fn run(args: &Args, out: &mut Output) -> Result<Exit> {
    let input: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        Box::new(file)
    };
    let check = check(&mut BufReader::with_capacity(1 << 16, input))
        .with_context(|| format!("checking {}", args.file.display()))?;
    print(out, args, &check)?;
    Ok(if check.problems.is_empty() {
        Exit::Success
    } else {
        Exit::Corrupt
    })
}

/// Reads the whole export; fails only when it is not an export or cannot be read.
fn check(input: &mut impl BufRead) -> Result<Check> {
    let mut line = Vec::new();
    if !read_line(input, &mut line)? {
        bail!("the file is empty, not a walctl export");
    }
    check_header(&line)?;
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

fn check_header(line: &[u8]) -> Result<()> {
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
        Some(EXPORT_VERSION) => Ok(()),
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

fn print(out: &mut Output, args: &Args, c: &Check) -> Result<()> {
    let trailer = c.trailer.as_ref();
    let field = |name: &str| {
        trailer
            .and_then(|t| t.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    if args.json {
        let value = json!({
            "status": if c.problems.is_empty() { "ok" } else { "mismatch" },
            "records": c.records,
            "expected_records": field("records"),
            "sha256": c.sha256,
            "expected_sha256": field("sha256"),
            "source_status": field("status"),
            "problems": c.problems,
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
    if let Some(status) = field("status").as_str().filter(|s| *s != "clean") {
        out.note(format_args!(
            "the source log was {status} when exported (see the trailer)"
        ));
    }
    Ok(())
}
