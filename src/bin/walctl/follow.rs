//! `dump --follow`: keep printing records as a writer appends them.
//!
//! Polls the library's `read_after`, which reads only what follows the last record seen, a
//! bounded window at a time, so each poll costs the new bytes, not the newest segment (up to
//! 1 GiB) as a rescan would. A record still being written is waited for. When the log is
//! rewritten under the follower (a compaction, a repair that cut the record it stood on),
//! reading starts over from the oldest segment and skips what was already seen. Damage in the
//! way ends the command with exit 3: no record past it can be printed in order.

use crate::exit::Exit;
use crate::output;
use crate::select::{Emit, Filter};
use anyhow::{Context as _, Result};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;
use walctl::storage::FsStorage;
use walctl::{After, Cursor};

/// How often the log is checked for new records when the last poll found none.
const POLL: Duration = Duration::from_millis(200);

/// Read errors tolerated in a row: a compaction may remove a segment between listing and
/// reading it, which the next poll no longer sees.
const TRANSIENT_FAILURES_MAX: u32 = 3;

/// Where following starts: after the initial scan.
pub struct Start {
    /// Highest sequence number already seen.
    pub last_seen: Option<u64>,
    /// Records already printed (for `--limit`).
    pub emitted: u64,
    /// Just past the last record the initial scan saw; `None` reads from the start.
    pub cursor: Option<Cursor>,
}

/// Prints records after `start.last_seen` as they appear, until `--limit` or `--to` is reached
/// (or forever).
///
/// # Errors
/// The log disappears or cannot be read; stdout closed.
pub fn follow(dir: &Path, filter: &Filter, start: Start, emit: &mut dyn Emit) -> Result<Exit> {
    let Start {
        mut last_seen,
        mut emitted,
        mut cursor,
    } = start;
    let storage = FsStorage::new();
    let mut failures = 0;
    loop {
        emit.flush()?;
        if filter.to.is_some_and(|t| last_seen.is_some_and(|s| s >= t)) {
            // Nothing appended from now on can be at or below --to.
            return Ok(Exit::Success);
        }
        let mut failure = None;
        let mut done = false;
        let read = walctl::read_after(&storage, dir, cursor.as_ref(), &mut |r| {
            if last_seen.is_some_and(|s| r.seq <= s) {
                return ControlFlow::Continue(());
            }
            last_seen = Some(r.seq);
            if !filter.matches(r) {
                return ControlFlow::Continue(());
            }
            if let Err(e) = emit.record(r) {
                failure = Some(e);
                return ControlFlow::Break(());
            }
            emitted += 1;
            done = filter.limit.is_some_and(|l| emitted >= l);
            if done {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Some(e) = failure {
            return Err(e.into());
        }
        if done {
            emit.flush()?;
            return Ok(Exit::Success);
        }
        match read {
            Ok(After::Read {
                cursor: at,
                records,
            }) => {
                failures = 0;
                cursor = at;
                if records == 0 {
                    std::thread::sleep(POLL);
                }
            }
            // Rewritten under us: from the oldest segment again, skipping what was seen.
            Ok(After::Lost) => {
                if cursor.take().is_none() {
                    std::thread::sleep(POLL); // never expected, but never a busy loop
                }
            }
            Ok(After::Damaged { segment, offset }) => {
                emit.flush()?;
                output::note(format_args!(
                    "damage in {} at offset {offset} of the log in {}; no record after it \
                     can be printed in order. Run `walctl verify` to see what it is.",
                    crate::json::segment_file(segment),
                    dir.display()
                ));
                return Ok(Exit::Corrupt);
            }
            Err(_) if failures < TRANSIENT_FAILURES_MAX => {
                failures += 1;
                cursor = None;
                std::thread::sleep(POLL);
            }
            Err(e) => {
                return Err(e).with_context(|| format!("following the log in {}", dir.display()));
            }
        }
    }
}
