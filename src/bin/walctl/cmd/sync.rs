//! `walctl sync`: make everything appended so far durable.
//!
//! Opening the log as its writer already fsyncs the last segment and the directory before the
//! library trusts them; the explicit `sync` afterwards records the durable watermark. Any fsync
//! failure surfaces as the library's I/O error, which names the operation and the path.

use super::{LockWait, open_writer};
use crate::exit::Exit;
use crate::json;
use crate::output::Output;
use anyhow::{Context as _, Result};
use serde_json::json;
use std::io::Write as _;
use std::path::Path;

const EXAMPLES: &str = "\
Examples:
  $ walctl sync
  walctl: durable through seq 5 (segments and directory synced)
  $ walctl sync --json
  {\"dir\":\"/srv/app/wal\",\"durable_seq\":5}";

/// Make every record appended so far durable (segments and directory).
///
/// Takes the writer lock (waiting up to --wait seconds), fsyncs, and reports the highest
/// sequence number now durable. An fsync failure is reported with its path and exit 2.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    wait: LockWait,
    /// Print {"dir", "durable_seq"} on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `walctl sync`.
///
/// # Errors
/// Lock and fsync failures; a missing log.
pub fn run(dir: &Path, args: &Args, out: &mut Output) -> Result<Exit> {
    let log = open_writer(out, dir, args.wait, false, None, 0)?;
    log.sync().context("syncing the log")?;
    let durable = log.durable_seq();
    drop(log);
    if args.json {
        let value = json!({
            "dir": dir.display().to_string(),
            "durable_seq": (durable > 0).then_some(durable),
        });
        json::write_line(out.stdout(), &value)?;
    } else if durable == 0 {
        out.note("the log holds no records; segments and directory synced");
    } else {
        out.note(format_args!(
            "durable through seq {durable} (segments and directory synced)"
        ));
    }
    out.stdout().flush()?;
    Ok(Exit::Success)
}
