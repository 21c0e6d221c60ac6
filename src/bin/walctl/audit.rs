//! `verify-export --against-log`: holds an export's record lines against the log they came from.
//!
//! A digest proves an export was not cut or edited since it was written, but whoever edits it
//! can write a new digest too. An auditor who can read the log checks the records themselves:
//! each record line must match, field for field, the log's record of the same sequence number,
//! and when the export selected only by position (`from`, `to`, `limit`, `tail`), no record of
//! the log inside the export's range may be missing from it.
//!
//! Both sides stream: the log is scanned on a second thread from the export's first sequence
//! number, its records handed over in batches of about 1 MiB (two at most waiting), and merged
//! with the export's lines as they are read. Neither is held in memory, whatever their size or
//! the size of their records.

use crate::json::{self, RecordLine, segment_file};
use anyhow::{Context as _, Result};
use serde_json::Value;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use walctl::storage::FsStorage;
use walctl::{Record, Report, Verdict};

/// Records travel from the log's scan to the merge in batches of at most this many bytes (or
/// one record, if larger) ...
const BATCH_BYTES: usize = 1 << 20;

/// ... and of at most this many records ...
const BATCH_RECORDS: usize = 256;

/// ... with at most this many batches waiting: memory stays a few MiB whatever the log holds.
const BATCHES_IN_FLIGHT: usize = 2;

/// What the scan thread hands over.
type Batches = Receiver<Vec<Record>>;

/// Problems of one kind listed by number; the rest are counted.
const LISTED_MAX: usize = 20;

/// The merge of an export with its log, fed one record line at a time in sequence order.
pub struct Audit {
    dir: PathBuf,
    /// Whether the export claims every record of its range (selected by position only).
    complete: bool,
    log: Option<(Batches, JoinHandle<Result<Report>>)>,
    /// The rest of the batch being merged.
    batch: std::vec::IntoIter<Record>,
    /// The next record of the log not yet matched with a line.
    pending: Option<Record>,
    first_exported: Option<u64>,
    matched: u64,
    /// Of the matched, how many now sit elsewhere in the log (compacted since the export).
    moved: u64,
    not_in_log: Runs,
    not_in_export: Runs,
    differ: Vec<String>,
    differ_total: u64,
}

/// What the audit concluded, once the export has been read.
pub struct Outcome {
    /// Problems to report; empty when the export agrees with the log.
    pub problems: Vec<String>,
    /// Record lines that match the log.
    pub matched: u64,
    /// Of those, how many now sit elsewhere in the log.
    pub moved: u64,
    /// The log's identity, as 16 hex digits.
    pub log_id: Option<String>,
    /// Damage was found in the part of the log that was read.
    pub log_damaged: bool,
    /// Whether records missing from the export were looked for (it selected by position only).
    pub complete: bool,
    /// Record lines with no record in the log.
    pub not_in_log: u64,
    /// Records of the log in the export's range that it lacks.
    pub not_in_export: u64,
    /// Record lines that differ from the log's record.
    pub differ: u64,
}

impl Audit {
    /// An audit against the log in `dir` of an export made with `filters` (its header's).
    pub fn new(dir: &Path, filters: &Value) -> Audit {
        let by_content = ["key", "since", "until"]
            .iter()
            .any(|f| !filters.get(f).is_none_or(Value::is_null));
        Audit {
            dir: dir.to_path_buf(),
            complete: !by_content,
            log: None,
            batch: Vec::new().into_iter(),
            pending: None,
            first_exported: None,
            matched: 0,
            moved: 0,
            not_in_log: Runs::default(),
            not_in_export: Runs::default(),
            differ: Vec::new(),
            differ_total: 0,
        }
    }

    /// Holds record line `line` (line number `number`, sequence number `seq`) against the log.
    /// Lines must come in increasing `seq`; the caller skips those that do not.
    pub fn record(&mut self, seq: u64, value: &Value, number: u64) {
        self.first_exported.get_or_insert(seq);
        if self.log.is_none() {
            self.log = Some(spawn_scan(&self.dir, seq));
        }
        loop {
            let Some(r) = self.pending.take().or_else(|| self.next_from_log()) else {
                self.not_in_log.add(seq);
                return;
            };
            if r.seq < seq {
                if self.complete && self.first_exported.is_some_and(|f| r.seq > f) {
                    self.not_in_export.add(r.seq);
                }
                continue;
            }
            if r.seq > seq {
                self.not_in_log.add(seq);
                self.pending = Some(r);
                return;
            }
            self.compare(&r, value, number);
            return;
        }
    }

    fn next_from_log(&mut self) -> Option<Record> {
        loop {
            if let Some(r) = self.batch.next() {
                return Some(r);
            }
            let (rx, _) = self.log.as_ref()?;
            self.batch = rx.recv().ok()?.into_iter();
        }
    }

    fn compare(&mut self, r: &Record, value: &Value, number: u64) {
        let line = json::parse_record_line(value).ok().flatten();
        let fields = differing_fields(r, line.as_ref());
        if !fields.is_empty() {
            self.differ_total += 1;
            if self.differ.len() < LISTED_MAX {
                self.differ.push(format!(
                    "line {number}: record {} differs from the log in {}",
                    r.seq,
                    fields.join(", ")
                ));
            }
            return;
        }
        self.matched += 1;
        let here = (
            Some(segment_file(r.location.segment)),
            Some(r.location.offset),
            Some(u64::from(r.location.length)),
            Some(u64::from(r.crc)),
        );
        let there = (
            value
                .get("segment")
                .and_then(Value::as_str)
                .map(str::to_owned),
            value.get("offset").and_then(Value::as_u64),
            value.get("length").and_then(Value::as_u64),
            value.get("crc").and_then(Value::as_u64),
        );
        if here != there {
            self.moved += 1;
        }
    }

    /// Ends the merge: stops the scan and reports.
    ///
    /// # Errors
    /// The log could not be read (missing, not a walctl log, I/O).
    pub fn finish(mut self, trailer_log_id: Option<&str>) -> Result<Outcome> {
        let report = match self.log.take() {
            Some((rx, scan)) => {
                // The scan stops at its next record once nobody receives them.
                drop(rx);
                scan.join()
                    .map_err(|_| anyhow::anyhow!("the log's scan panicked"))??
            }
            None => walctl::verify_log(&FsStorage::new(), &self.dir)
                .with_context(|| format!("reading the log in {}", self.dir.display()))?,
        };
        let log_id = report.log_id.map(|id| format!("{id:016x}"));
        let mut problems = Vec::new();
        if let (Some(theirs), Some(ours)) = (trailer_log_id, log_id.as_deref())
            && theirs != ours
        {
            problems.push(format!(
                "the export names log {theirs}, but the log in {} is {ours}",
                self.dir.display()
            ));
        }
        self.not_in_log.describe(
            "not in the log (compacted away since, or never in it)",
            &mut problems,
        );
        self.not_in_export
            .describe("in the log but missing from the export", &mut problems);
        problems.append(&mut self.differ);
        if self.differ_total > LISTED_MAX as u64 {
            problems.push(format!(
                "and {} more records that differ",
                self.differ_total - LISTED_MAX as u64
            ));
        }
        Ok(Outcome {
            problems,
            matched: self.matched,
            moved: self.moved,
            log_id,
            log_damaged: report.verdict() != Verdict::Clean,
            complete: self.complete,
            not_in_log: self.not_in_log.total,
            not_in_export: self.not_in_export.total,
            differ: self.differ_total,
        })
    }
}

/// Scans the log in `dir` from `from` on a thread, sending its records in batches until the
/// receiver goes.
fn spawn_scan(dir: &Path, from: u64) -> (Batches, JoinHandle<Result<Report>>) {
    let (tx, rx) = mpsc::sync_channel::<Vec<Record>>(BATCHES_IN_FLIGHT);
    let dir = dir.to_path_buf();
    let scan = std::thread::spawn(move || {
        let mut batcher = Batcher::default();
        let report = walctl::scan_log_from(&FsStorage::new(), &dir, from, &mut |r| {
            let Some(full) = batcher.push(r.to_record()) else {
                return ControlFlow::Continue(());
            };
            if tx.send(full).is_ok() {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
        .with_context(|| format!("reading the log in {}", dir.display()))?;
        if !batcher.batch.is_empty() {
            // The receiver may be gone already: then nobody needs these.
            let _ = tx.send(batcher.batch);
        }
        Ok(report)
    });
    (rx, scan)
}

/// Gathers records into batches of at most `BATCH_BYTES` of keys and payloads (or one record,
/// if larger) and at most `BATCH_RECORDS` records.
#[derive(Default)]
struct Batcher {
    batch: Vec<Record>,
    bytes: usize,
}

impl Batcher {
    /// Adds the next record; returns the batch once it is full.
    fn push(&mut self, r: Record) -> Option<Vec<Record>> {
        self.bytes += r.payload.len() + r.key.as_ref().map_or(0, Vec::len);
        self.batch.push(r);
        if self.bytes < BATCH_BYTES && self.batch.len() < BATCH_RECORDS {
            return None;
        }
        self.bytes = 0;
        Some(std::mem::take(&mut self.batch))
    }
}

/// The names of the fields in which a record line differs from the log's record.
fn differing_fields(r: &Record, line: Option<&RecordLine>) -> Vec<&'static str> {
    let Some(line) = line else {
        return vec!["its encoding (the line's fields cannot be read)"];
    };
    let mut fields = Vec::new();
    if line.kind != r.kind {
        fields.push("type");
    }
    if line.key != r.key {
        fields.push("key");
    }
    if line.payload != r.payload {
        fields.push("payload");
    }
    if line.timestamp_nanos != Some(r.timestamp_nanos) {
        fields.push("timestamp");
    }
    fields
}

/// Sequence numbers collected as runs (`3..=9`), for readable reports of long gaps.
#[derive(Default)]
struct Runs {
    runs: Vec<(u64, u64)>,
    total: u64,
}

impl Runs {
    fn add(&mut self, seq: u64) {
        self.total += 1;
        let listed = self.runs.len();
        match self.runs.last_mut() {
            Some((_, end)) if *end + 1 == seq => *end = seq,
            // One run past the listed ones, so `describe` knows there were more.
            _ if listed > LISTED_MAX => {}
            _ => self.runs.push((seq, seq)),
        }
    }

    fn describe(&self, what: &str, problems: &mut Vec<String>) {
        if self.total == 0 {
            return;
        }
        let shown: Vec<String> = self
            .runs
            .iter()
            .take(LISTED_MAX)
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}..={b}")
                }
            })
            .collect();
        let more = if self.runs.len() > LISTED_MAX {
            ", ..."
        } else {
            ""
        };
        let records = if self.total == 1 { "record" } else { "records" };
        problems.push(format!(
            "{} {records} {what}: {}{more}",
            self.total,
            shown.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: usize, payload: usize) -> Record {
        Record {
            seq: 1,
            timestamp_nanos: 0,
            kind: walctl::RecordKind::Data,
            key: (key > 0).then(|| vec![b'k'; key]),
            payload: vec![b'p'; payload],
            location: walctl::Location {
                segment: 1,
                offset: 0,
                length: 0,
            },
            crc: 0,
        }
    }

    /// Pushes records until a batch comes out; returns how many records it holds.
    fn first_batch(make: impl Fn() -> Record) -> usize {
        let mut batcher = Batcher::default();
        for _ in 0..10_000 {
            if let Some(batch) = batcher.push(make()) {
                assert!(batcher.batch.is_empty() && batcher.bytes == 0);
                return batch.len();
            }
        }
        panic!("no batch after 10,000 records");
    }

    /// The batches' bounds are what keeps the audit's memory to a few MiB whatever the records'
    /// sizes: small records by count, large ones by bytes (keys included), one over the byte
    /// bound alone.
    #[test]
    fn batches_are_bounded_by_records_and_by_bytes() {
        assert_eq!(first_batch(|| record(0, 100)), BATCH_RECORDS);
        assert_eq!(first_batch(|| record(0, BATCH_BYTES / 4)), 4);
        assert_eq!(first_batch(|| record(0, BATCH_BYTES / 4 + 1)), 4);
        assert_eq!(first_batch(|| record(0, BATCH_BYTES / 4 - 1)), 5);
        assert_eq!(first_batch(|| record(BATCH_BYTES / 2, 0)), 2);
        assert_eq!(first_batch(|| record(1, BATCH_BYTES)), 1);
    }

    #[test]
    fn runs_join_neighbours_and_stop_listing_after_the_limit() {
        let mut runs = Runs::default();
        for seq in [3, 4, 5, 9, 11, 12] {
            runs.add(seq);
        }
        let mut problems = Vec::new();
        runs.describe("gone", &mut problems);
        assert_eq!(problems, ["6 records gone: 3..=5, 9, 11..=12"]);
        let mut many = Runs::default();
        for seq in (0..100).map(|i| i * 2) {
            many.add(seq);
        }
        let mut problems = Vec::new();
        many.describe("gone", &mut problems);
        assert!(problems[0].starts_with("100 records gone: 0, 2, 4,"));
        assert!(problems[0].ends_with(", 38, ..."), "{}", problems[0]);
        // Past the listed ones only the count grows: an export missing every other record of
        // a huge log must not hold a run for each.
        assert_eq!(many.runs.len(), LISTED_MAX + 1);
    }

    #[test]
    fn exactly_twenty_runs_are_all_listed_without_an_ellipsis() {
        let mut runs = Runs::default();
        for seq in (0..LISTED_MAX as u64).map(|i| i * 2) {
            runs.add(seq);
        }
        let mut problems = Vec::new();
        runs.describe("gone", &mut problems);
        assert!(problems[0].ends_with(", 36, 38"), "{}", problems[0]);
    }
}
