//! What `walctl append` says when it fails part way, most often on a disk that fills up during
//! a bulk load: exactly which records stay in the log, how to append the rest without
//! duplicating any, and, with `--sync`, whether the records that stay are durable.

use super::{Args, Split, WRITE_BUFFER};
use crate::cmd::open_writer;
use crate::output::Output;
use std::path::Path;
use walctl::{ErrorKind, Log};

/// An append that failed: what it was appending and how far it got.
pub struct Failed<'a> {
    pub args: &'a Args,
    pub split: Option<Split>,
    /// The log's next sequence number when this invocation took the writer lock.
    pub start: u64,
    /// The records that stay in the log: the first and last sequence numbers printed.
    pub kept: Option<(u64, u64)>,
}

impl Failed<'_> {
    /// Says, after the error, which records stay, whether they are durable (with `--sync`,
    /// after making them so) and how to append the rest.
    pub fn report(&self, out: &mut Output, err: &anyhow::Error, dir: &Path, log: Log) {
        if refused_before_appending(err) {
            return; // --expect-next-seq: the error says that nothing was appended, and why.
        }
        let count = match self.kept {
            Some((first, last)) => {
                out.after_error(format_args!(
                    "records {first} to {last} were appended before this error and remain in \
                     the log"
                ));
                last - first + 1
            }
            None => {
                out.after_error(format_args!(
                    "no record was appended; the log's next sequence number is still {}",
                    self.start
                ));
                0
            }
        };
        if self.args.sync {
            self.sync_kept(out, dir, log);
        }
        if let Some(hint) = self.resume_hint(count) {
            out.after_error(hint);
        }
    }

    /// How to append what this invocation did not, when its input has a rest: the retry
    /// starts after the `count` records kept, and `--expect-next-seq` makes it append nothing
    /// if anything else was appended meanwhile.
    fn resume_hint(&self, count: u64) -> Option<String> {
        let next = self.kept.map_or(self.start, |(_, last)| last + 1);
        let expect = format!("--expect-next-seq {next}");
        let from = count + 1;
        let whole = self.split.is_some() || !self.args.records.is_empty();
        let rest = match self.split {
            _ if count == 0 => {
                let what = if whole { "input" } else { "record" };
                return Some(format!(
                    "to append the {what} once the cause is fixed, run the command again with \
                     {expect}"
                ));
            }
            Some(Split::Lines) => format!(
                "feed stdin again from its line {from}: \
                 `tail -n +{from} FILE | walctl append --lines {expect}`"
            ),
            Some(Split::Null) => format!(
                "feed stdin again from its record {from} (the first {count} NUL-terminated \
                 records are in the log) with `walctl append --null {expect}`"
            ),
            Some(Split::Jsonl) => format!(
                "feed stdin again from its record {from} (the first {count} records are in the \
                 log; blank lines and export header and trailer lines do not count) with \
                 `walctl append --jsonl {expect}`"
            ),
            None if (count as usize) < self.args.records.len() => {
                format!("run `walctl append {expect}` with the arguments from argument {from} on")
            }
            None => return None,
        };
        Some(format!(
            "to append the rest once the cause is fixed, {rest}"
        ))
    }

    /// `--sync` after a failure: makes the records that stay durable, since the command could
    /// not, and says whether that worked. A writer poisoned by the failed write cannot sync;
    /// reopening the log does (it syncs every segment and the directory before trusting them).
    fn sync_kept(&self, out: &mut Output, dir: &Path, log: Log) {
        let Some((first, last)) = self.kept else {
            return;
        };
        let args = self.args;
        let log = if log.is_poisoned() {
            drop(log);
            match open_writer(out, dir, args.wait, false, args.segment_size, WRITE_BUFFER) {
                Ok(log) => log,
                Err(e) => return not_durable(out, first, last, &e),
            }
        } else {
            log
        };
        if let Err(e) = log.sync() {
            return not_durable(out, first, last, &e.into());
        }
        let end = log.next_seq() - 1;
        if end >= last {
            out.after_error(format_args!(
                "records {first} to {last} are durable (--sync ran for them after the error)"
            ));
        } else {
            out.after_error(format_args!(
                "the log now ends before record {last}, at seq {end}; run `walctl verify`"
            ));
        }
    }
}

fn not_durable(out: &mut Output, first: u64, last: u64, e: &anyhow::Error) {
    out.after_error(format_args!(
        "records {first} to {last} may not be durable: making them so failed too: {e:#}"
    ));
}

/// Whether the append was refused before anything was appended (`--expect-next-seq`).
fn refused_before_appending(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<walctl::Error>()
            .is_some_and(|e| matches!(e.kind(), ErrorKind::SequenceMismatch { .. }))
    })
}
