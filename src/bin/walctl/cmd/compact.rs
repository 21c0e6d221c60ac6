//! `walctl compact`: the command line of compaction, waiting for the library's implementation.
//!
//! The flags follow the compaction issue (`--before SEQ`, `--keys`, `--dry-run`, `--json`) so
//! scripts and the help text are stable, but the library has no compaction yet: the command
//! says so and exits 2 ("could not run") without touching the log. When `walctl::compact`
//! lands, `run` calls it and prints its report.

use super::LockWait;
use crate::exit::Exit;
use crate::output::Output;
use anyhow::{Result, bail};
use clap::ArgGroup;
use std::path::Path;

const EXAMPLES: &str = "\
Examples:
  $ walctl compact --before 1000 --dry-run
  $ walctl compact --keys --json";

/// Drop records before a checkpoint or superseded by a later write of their key.
///
/// Not available yet: this walctl build has no compaction, and the command exits 2 without
/// changing anything.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES, group(ArgGroup::new("rule").required(true).multiple(true)))]
pub struct Args {
    /// Drop every record with a sequence number below SEQ.
    #[arg(long, value_name = "SEQ", group = "rule")]
    before: Option<u64>,
    /// Keep only the latest record of each key; drop keys whose latest record is a tombstone.
    #[arg(long, group = "rule")]
    keys: bool,
    /// Print the report without writing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    wait: LockWait,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `walctl compact`: refuses until the library provides compaction.
///
/// # Errors
/// Always, for now: compaction is not available.
pub fn run(dir: &Path, args: &Args, _out: &mut Output) -> Result<Exit> {
    let _ = (args.before, args.keys, args.dry_run, args.wait, args.json);
    bail!(
        "compaction is not available yet in this walctl build; nothing in {} was changed",
        dir.display()
    )
}
