//! `walctl get KEY`: the live value of a key in the log's key/value view (last write wins; a
//! later tombstone deletes the key; keyless records are not part of the view).
//!
//! It scans the log once for the key's latest record (`KeyIndex::build_for`: only that key is
//! kept, so memory does not grow with the log or its keys), then reads and checks the record. A missing key exits 5,
//! a code the damage contract does not use, so scripts can tell "absent" from "damaged".

use crate::exit::Exit;
use crate::output::Output;
use crate::text::{self, PayloadFormat};
use anyhow::{Context as _, Result};
use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;
use walctl::storage::FsStorage;
use walctl::{KeyIndex, Verdict};

const EXAMPLES: &str = "\
Examples:
  $ walctl append --key user:1 '{\"name\":\"ada\"}'
  1
  $ walctl get user:1
  {\"name\":\"ada\"}
  $ walctl append --delete user:1
  2
  $ walctl get user:1; echo $?
  walctl: no live value for key user:1 (deleted or never written)
  5";

/// Print the live value of KEY (last write wins; tombstones delete).
///
/// Prints the payload of the latest data record with this key, unless a later tombstone deleted
/// the key. Exit 0 when found, 5 when the key has no live value, 3 when the log is corrupt (the
/// value found, if any, is still printed). Takes no lock.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// The key (bytes as given).
    key: OsString,
    /// Print one JSON object: key, seq, timestamp, payload and its encoding, segment, offset.
    #[arg(long)]
    json: bool,
}

/// Runs `walctl get`.
///
/// # Errors
/// The log cannot be read (missing, not a log, I/O).
pub fn run(dir: &Path, args: &Args, out: &mut Output) -> Result<Exit> {
    let key = args.key.as_encoded_bytes();
    let storage = FsStorage::new();
    let (index, report) = KeyIndex::build_for(&storage, dir, key)
        .with_context(|| format!("reading the log in {}", dir.display()))?;
    let record = index.read(&storage, dir, key).with_context(|| {
        format!(
            "reading the value of {} in {}",
            text::escape(key),
            dir.display()
        )
    })?;
    let damaged = report.verdict() == Verdict::Corrupt;
    if damaged {
        out.note(format_args!(
            "the log is corrupt ({}); the value shown may be stale: run `walctl verify`",
            report.first_damage_summary()
        ));
    }
    let Some(r) = record else {
        out.note(format_args!(
            "no live value for key {} (deleted or never written)",
            text::escape(key)
        ));
        return Ok(if damaged {
            Exit::Corrupt
        } else {
            Exit::NotFound
        });
    };
    let w = out.stdout();
    if args.json {
        let mut lines = crate::jsonline::LineWriter::default();
        w.write_all(lines.record(&crate::select::view(&r), PayloadFormat::Text))?;
    } else if out_is_terminal() {
        writeln!(w, "{}", text::escape(&r.payload))?;
    } else {
        // Piped: the value's bytes exactly, so `walctl get k > file` restores them.
        w.write_all(&r.payload)?;
    }
    Ok(if damaged {
        Exit::Corrupt
    } else {
        Exit::Success
    })
}

fn out_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}
