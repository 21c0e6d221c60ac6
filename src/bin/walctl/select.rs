//! Choosing records: the filters `dump` and `export-jsonl` share, and the scan that applies them.
//!
//! The scan streams: each matching record is handed to the caller while the segment is mapped,
//! so memory does not grow with the log. `--tail N` is the exception by nature and keeps at most
//! N owned records in a ring buffer. Filters that can prove nothing later matches (`--to`,
//! `--limit`) stop the scan early, and `--from` starts it at the segment holding its sequence
//! number; the damage report then covers only what was read.

use crate::progress::Progress;
use anyhow::{Context as _, Result};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io;
use std::ops::ControlFlow;
use std::path::Path;
use walctl::storage::FsStorage;
use walctl::{Location, Record, RecordView, Report};

/// Record filters, shared by `dump` and `export-jsonl`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Filter {
    /// Only records with sequence number >= SEQ (the segments wholly below SEQ are not read, so
    /// damage in them is not looked for).
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// Only records with sequence number <= SEQ (reading stops there, so damage after it is not
    /// looked for: `walctl verify` checks the whole log).
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,
    /// Only records whose key is exactly K (UTF-8).
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
    /// Only records appended at or after TIME (RFC 3339, e.g. 2026-01-31T09:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<u64>,
    /// Only records appended at or before TIME (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<u64>,
    /// Stop after N matching records (damage after them is not looked for).
    #[arg(long, value_name = "N", conflicts_with = "tail")]
    pub limit: Option<u64>,
    /// Only the last N matching records (read back from the newest segment only as far as N
    /// need, so damage in older segments is not looked for).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

/// Parses an RFC 3339 time for clap.
fn parse_time(text: &str) -> Result<u64, String> {
    walctl::time::parse_rfc3339(text).ok_or_else(|| {
        format!("{text:?} is not an RFC 3339 time after 1970 (example: 2026-01-31T09:00:00Z)")
    })
}

impl Filter {
    /// Whether a record passes every filter except `--limit` and `--tail`.
    pub fn matches(&self, r: &RecordView<'_>) -> bool {
        self.from.is_none_or(|f| r.seq >= f)
            && self.to.is_none_or(|t| r.seq <= t)
            && self
                .key
                .as_ref()
                .is_none_or(|k| r.key == Some(k.as_bytes()))
            && self.since.is_none_or(|s| r.timestamp_nanos >= s)
            && self.until.is_none_or(|u| r.timestamp_nanos <= u)
    }

    /// The filters as JSON, for the export header.
    pub fn to_json(&self) -> Value {
        json!({
            "from": self.from,
            "to": self.to,
            "key": self.key,
            "since": self.since.map(walctl::time::rfc3339),
            "until": self.until.map(walctl::time::rfc3339),
            "limit": self.limit,
            "tail": self.tail,
        })
    }
}

/// A consumer of selected records.
pub trait Emit {
    /// Takes one record.
    ///
    /// # Errors
    /// The write error; it stops the scan.
    fn record(&mut self, r: &RecordView<'_>) -> io::Result<()>;

    /// Pushes out what is buffered (called before `--follow` waits).
    ///
    /// # Errors
    /// The write error.
    fn flush(&mut self) -> io::Result<()>;
}

/// What a selection scan found.
pub struct Selection {
    /// The scan's report (partial when the scan stopped early).
    pub report: Report,
    /// Records handed to the caller.
    pub emitted: u64,
    /// The highest sequence number seen, matching or not: where `--follow` continues.
    pub last_seen: Option<u64>,
    /// Just past the last record seen, for `walctl::read_after`.
    pub cursor: Option<walctl::Cursor>,
}

/// Scans the log in `dir`, handing each selected record to `emit` in order.
///
/// Where the log starts being read: `--from` at the segment holding it; `--tail` (without
/// `--from`) at the newest segment, then the newest 2, 4, ... until N records match or the whole
/// log was read; otherwise at the oldest segment.
///
/// # Errors
/// Scan errors (not a log, I/O) and the first error `emit` returned.
pub fn scan(
    mut progress: Progress,
    dir: &Path,
    filter: &Filter,
    emit: &mut dyn Emit,
) -> Result<Selection> {
    let storage = FsStorage::new();
    let mut pass = Pass::new(filter);
    let report = match (filter.from, filter.tail) {
        (Some(from), _) => walctl::scan_log_from(&storage, dir, from, &mut |r| {
            progress.update(r.location);
            pass.visit(r, emit)
        }),
        (None, Some(n)) => {
            let mut segments = 1usize;
            loop {
                pass = Pass::new(filter);
                let report =
                    walctl::scan_log_newest(&storage, dir, segments, &mut |r| pass.visit(r, emit));
                if report
                    .as_ref()
                    .map_or(true, |r| r.segments_skipped == 0 || pass.ring.len() >= n)
                {
                    break report;
                }
                segments = segments.saturating_mul(2);
            }
        }
        (None, None) => walctl::scan_log(&storage, dir, &mut |r| {
            progress.update(r.location);
            pass.visit(r, emit)
        }),
    }
    .with_context(|| format!("reading the log in {}", dir.display()))?;
    progress.finish();
    if let Some(e) = pass.failure {
        return Err(e.into());
    }
    for record in &pass.ring {
        emit.record(&view(record))?;
        pass.emitted += 1;
    }
    Ok(Selection {
        cursor: pass
            .last_record
            .zip(report.log_id)
            .map(|((location, seq), log_id)| walctl::Cursor {
                log_id,
                location,
                seq,
            }),
        report,
        emitted: pass.emitted,
        last_seen: pass.last_seen,
    })
}

/// One selecting pass over the log: what the record visitor keeps.
struct Pass<'f> {
    filter: &'f Filter,
    /// The last `--tail` matching records, owned (the segment is unmapped after its scan).
    ring: VecDeque<Record>,
    emitted: u64,
    last_seen: Option<u64>,
    last_record: Option<(Location, u64)>,
    failure: Option<io::Error>,
}

impl<'f> Pass<'f> {
    fn new(filter: &'f Filter) -> Pass<'f> {
        Pass {
            filter,
            ring: VecDeque::with_capacity(filter.tail.unwrap_or(0).min(4096)),
            emitted: 0,
            last_seen: None,
            last_record: None,
            failure: None,
        }
    }

    /// Takes one record: into the ring, to `emit`, or past; breaks once nothing later can match.
    fn visit(&mut self, r: &RecordView<'_>, emit: &mut dyn Emit) -> ControlFlow<()> {
        let filter = self.filter;
        self.last_seen = Some(r.seq);
        self.last_record = Some((r.location, r.seq));
        if filter.to.is_some_and(|t| r.seq > t) {
            return ControlFlow::Break(());
        }
        if !filter.matches(r) {
            return ControlFlow::Continue(());
        }
        if let Some(n) = filter.tail {
            if self.ring.len() == n {
                self.ring.pop_front();
            }
            if n > 0 {
                self.ring.push_back(r.to_record());
            }
            return ControlFlow::Continue(());
        }
        // Checked before as well as after: `--limit 0` prints nothing, as `--tail 0` does.
        if filter.limit.is_some_and(|l| self.emitted >= l) {
            return ControlFlow::Break(());
        }
        if let Err(e) = emit.record(r) {
            self.failure = Some(e);
            return ControlFlow::Break(());
        }
        self.emitted += 1;
        if filter.limit.is_some_and(|l| self.emitted >= l) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// A borrowed view of an owned record.
pub fn view(r: &Record) -> RecordView<'_> {
    RecordView {
        seq: r.seq,
        timestamp_nanos: r.timestamp_nanos,
        kind: r.kind,
        key: r.key.as_deref(),
        payload: &r.payload,
        location: r.location,
        crc: r.crc,
    }
}
