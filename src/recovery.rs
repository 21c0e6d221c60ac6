//! Scanning a whole log: listing its segments, reading each one (mapped when sealed, read a
//! window at a time when last), scanning them one after another for `scan_log` or on every core for
//! `verify_log`, and handing each segment's findings in order to the decision table
//! (`classify.rs`), which turns damage into *torn* or *corrupt*.

use crate::classify::LogScan;
use crate::compact::install;
use crate::error::{Error, Result};
use crate::format::{HeaderFault, SEGMENT_DATA_START, SegmentHeader};
use crate::report::Report;
use crate::scan::{self, SegmentScan, Visit};
use crate::segment::{self, LOCK_NAME, Listing};
use crate::storage::{LockKind, OpenMode, Storage, read_vec};
use crate::window::{self, WINDOW};
use std::collections::BTreeMap;
use std::io;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Scans every segment of the log in `dir`, delivering valid records to `visit` in order.
///
/// Takes no lock and changes nothing, so it works on a read-only copy and beside a live writer
/// (whose record in progress is reported in [`Report::in_progress`], not as damage).
///
/// # Errors
///
/// [`ErrorKind::NotALog`] when `dir` holds no segments, [`ErrorKind::UnsupportedVersion`] for a
/// newer format or unknown flags, I/O errors. Damage is never an error: it is in the report.
///
/// [`ErrorKind::NotALog`]: crate::ErrorKind::NotALog
/// [`ErrorKind::UnsupportedVersion`]: crate::ErrorKind::UnsupportedVersion
pub fn scan_log(storage: &dyn Storage, dir: &Path, visit: &mut Visit<'_>) -> Result<Report> {
    scan_log_as(storage, dir, visit, false)
}

/// [`scan_log`] from sequence number `from` on, for readers that start late in a long log
/// (`dump --from`): the segments before the last one whose header starts at or below `from`
/// hold only lower sequence numbers, so they are not read, and a scan near the end of a log of
/// thousands of segments reads its last few. Records below `from` in the first segment read
/// are still delivered (the caller filters). The report covers the segments read: damage in
/// the skipped ones is not looked for ([`verify_log`] checks everything).
///
/// # Errors
///
/// As [`scan_log`].
pub fn scan_log_from(
    storage: &dyn Storage,
    dir: &Path,
    from: u64,
    visit: &mut Visit<'_>,
) -> Result<Report> {
    scan_after(storage, dir, visit, false, |listing| {
        segments_below(storage, dir, listing, from)
    })
}

/// [`scan_log`] of the newest `segments` segments only (all of them when the log has fewer),
/// for readers that want the end of a long log (`dump --tail`): read the newest, and if that
/// is not enough, twice as many. [`Report::segments_skipped`] says how many were left unread,
/// and the report covers the segments read, as for [`scan_log_from`].
///
/// # Errors
///
/// As [`scan_log`].
pub fn scan_log_newest(
    storage: &dyn Storage,
    dir: &Path,
    segments: usize,
    visit: &mut Visit<'_>,
) -> Result<Report> {
    // At least one: the newest segment decides what a reader sees at the end.
    scan_after(storage, dir, visit, false, |listing| {
        Ok(listing.segments.len().saturating_sub(segments.max(1)))
    })
}

/// Lists the log and scans it after the number of oldest segments `skip` chooses.
fn scan_after(
    storage: &dyn Storage,
    dir: &Path,
    visit: &mut Visit<'_>,
    holding_lock: bool,
    skip: impl FnOnce(&Listing) -> Result<usize>,
) -> Result<Report> {
    // Probed before the readers' lock is taken: the probe may take milliseconds, and
    // compaction waits for that lock.
    let writer = !holding_lock && writer_active(storage, dir);
    // Held for the whole scan: compaction removes old segments only under the exclusive lock.
    let _readers = install::shared_readers(storage, dir);
    let mut listing = segment::list(storage, dir)?;
    install::choose(storage, dir, &mut listing)?;
    let skip = skip(&listing)?;
    listing.segments.drain(..skip);
    let mut report = scan_segments(storage, dir, &listing, visit, writer, skip > 0)?;
    report.segments_skipped = skip as u64;
    Ok(report)
}

/// How many leading segments hold only sequence numbers below `from`: all before the newest
/// segment whose header (valid, of the log the newest readable header names) starts at or below
/// it. Read from the newest back, so a start near the end costs a few header reads.
fn segments_below(
    storage: &dyn Storage,
    dir: &Path,
    listing: &Listing,
    from: u64,
) -> Result<usize> {
    let mut log_id = None;
    for (i, &number) in listing.segments.iter().enumerate().rev() {
        let Ok(header) = segment::open_with_header(storage, dir, number)?.header else {
            continue;
        };
        let id = *log_id.get_or_insert(header.log_id);
        if header.log_id == id && header.first_seq <= from {
            return Ok(i);
        }
    }
    Ok(0)
}

/// [`scan_log`] for a caller that holds the writer lock itself (repair, compaction): then an
/// incomplete tail is no writer's record in progress, and the lock is not probed.
pub(crate) fn scan_log_as(
    storage: &dyn Storage,
    dir: &Path,
    visit: &mut Visit<'_>,
    holding_lock: bool,
) -> Result<Report> {
    scan_after(storage, dir, visit, holding_lock, |_| Ok(0))
}

/// Scans exactly the segments of `listing`; `writer_active` says whether another process's
/// writer holds the log (its record in progress is then not damage).
pub(crate) fn scan_listing(
    storage: &dyn Storage,
    dir: &Path,
    listing: &Listing,
    visit: &mut Visit<'_>,
    writer_active: bool,
) -> Result<Report> {
    scan_segments(storage, dir, listing, visit, writer_active, false)
}

/// [`scan_listing`]; with `head_skipped`, the listing starts after segments left unread on
/// purpose, so the oldest segment read is not expected to start the log.
fn scan_segments(
    storage: &dyn Storage,
    dir: &Path,
    listing: &Listing,
    visit: &mut Visit<'_>,
    writer_active: bool,
    head_skipped: bool,
) -> Result<Report> {
    let Some(&last) = listing.segments.last() else {
        return Err(Error::not_a_log(
            dir,
            "it holds no segment files (NNNNNNNNNNNNNNNNNNNN.wal)",
        ));
    };
    let headers = read_headers(storage, dir, listing)?;
    let log_id = headers
        .iter()
        .rev()
        .find_map(|h| h.as_ref().ok().map(|h| h.log_id));
    let mut state = LogScan::new(listing, &headers, log_id, writer_active);
    if head_skipped {
        state.skip_head_check();
    }
    for (&number, header) in listing.segments.iter().zip(&headers) {
        let sealed = number != last;
        let scanned = scan_one(storage, dir, number, header, sealed, log_id, visit)?;
        let stopped = scanned.found.as_ref().is_some_and(|(s, _)| s.stopped);
        state.merge(number, header, sealed, scanned);
        if stopped {
            return Ok(state.finish(false));
        }
    }
    Ok(state.finish(true))
}

/// The segments a reader reads: the directory's listing, with the side of an interrupted
/// compaction chosen (`install.rs`), and the number of the last one.
///
/// # Errors
///
/// [`ErrorKind::NotALog`](crate::ErrorKind::NotALog) when there is no segment; the listing's
/// errors.
pub(crate) fn live_segments(storage: &dyn Storage, dir: &Path) -> Result<(Listing, u64)> {
    let mut listing = segment::list(storage, dir)?;
    install::choose(storage, dir, &mut listing)?;
    let Some(&last) = listing.segments.last() else {
        return Err(Error::not_a_log(
            dir,
            "it holds no segment files (NNNNNNNNNNNNNNNNNNNN.wal)",
        ));
    };
    Ok((listing, last))
}

pub(crate) type HeaderResult = std::result::Result<SegmentHeader, HeaderFault>;

/// One segment's findings, before they are merged in log order.
pub(crate) struct Scanned {
    pub(crate) file_len: u64,
    /// The scan and any preamble damage; `None` when the header is unusable or foreign.
    pub(crate) found: Option<(SegmentScan, Option<scan::PreambleDamage>)>,
}

/// Reads and scans one segment. Pure apart from the reads, so segments can be scanned on
/// several threads and merged in order afterwards.
fn scan_one(
    storage: &dyn Storage,
    dir: &Path,
    number: u64,
    header: &HeaderResult,
    sealed: bool,
    log_id: Option<u64>,
    visit: &mut Visit<'_>,
) -> Result<Scanned> {
    let path = Listing::path(dir, number);
    let file = storage
        .open(&path, OpenMode::Read)
        .map_err(|e| Error::io("open", &path, e))?;
    let file_len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let header = match header {
        Ok(h) if file_len >= SEGMENT_DATA_START && Some(h.log_id) == log_id => h,
        _ => {
            return Ok(Scanned {
                file_len,
                found: None,
            });
        }
    };
    // Sealed segments are never truncated, so they may be mapped; the last one may be cut while
    // we read, so it is read, a bounded window at a time (`window/`).
    let found = if sealed {
        let bytes = file.contents().map_err(|e| Error::io("read", &path, e))?;
        let s = scan::scan_segment(&bytes, header, visit);
        let preamble = scan::check_preamble(&bytes, header, true, last_scanned(&s));
        (s, preamble)
    } else {
        let read = |e| Error::io("read", &path, e);
        let preamble = read_vec(&*file, 0, SEGMENT_DATA_START, SEGMENT_DATA_START).map_err(read)?;
        let s = window::scan_windowed(&*file, file_len, &preamble, header, WINDOW, visit)
            .map_err(read)?;
        let damage = scan::check_preamble(&preamble, header, false, last_scanned(&s));
        (s, damage)
    };
    Ok(Scanned {
        file_len,
        found: Some(found),
    })
}

/// The segment's last record, when the scan reached it. A scan the visitor stopped (`dump
/// --limit`, `--to`) saw only a prefix, which says nothing about where the records end: measured
/// against the watermark, it would read as acknowledged records gone missing.
fn last_scanned(s: &SegmentScan) -> Option<u64> {
    if s.stopped { None } else { s.last_seq }
}

/// Verifies the log in `dir` on every core: segments are scanned in parallel and their
/// findings merged in order, so the report equals [`scan_log`]'s. No record is delivered.
///
/// # Errors
///
/// As [`scan_log`].
pub fn verify_log(storage: &dyn Storage, dir: &Path) -> Result<Report> {
    let writer = writer_active(storage, dir); // before the readers' lock: see scan_log_as
    let _readers = install::shared_readers(storage, dir);
    let (listing, last) = live_segments(storage, dir)?;
    let headers = read_headers(storage, dir, &listing)?;
    let log_id = headers
        .iter()
        .rev()
        .find_map(|h| h.as_ref().ok().map(|h| h.log_id));
    let mut state = LogScan::new(&listing, &headers, log_id, writer);
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Result<Scanned>)>();
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..workers.min(listing.segments.len()) {
            let (tx, next, listing, headers) = (tx.clone(), &next, &listing, &headers);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&number) = listing.segments.get(i) else {
                        break;
                    };
                    let mut ignore = |_: &crate::report::RecordView<'_>| ControlFlow::Continue(());
                    let scanned = scan_one(
                        storage,
                        dir,
                        number,
                        &headers[i],
                        number != last,
                        log_id,
                        &mut ignore,
                    );
                    if tx.send((i, scanned)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Merge in log order; out-of-order findings wait here (they are small: no bytes).
        let mut waiting = BTreeMap::new();
        let mut merged = 0;
        for (i, scanned) in rx {
            waiting.insert(i, scanned);
            while let Some(scanned) = waiting.remove(&merged) {
                let number = listing.segments[merged];
                state.merge(number, &headers[merged], number != last, scanned?);
                merged += 1;
            }
        }
        Ok(())
    })?;
    Ok(state.finish(true))
}

fn read_headers(
    storage: &dyn Storage,
    dir: &Path,
    listing: &Listing,
) -> Result<Vec<std::result::Result<SegmentHeader, HeaderFault>>> {
    let mut out = Vec::with_capacity(listing.segments.len());
    for &number in &listing.segments {
        let segment::Opened { path, header, .. } = segment::open_with_header(storage, dir, number)?;
        if let Some(err) = header.err().and_then(|fault| fault.unsupported(&path)) {
            return Err(err);
        }
        out.push(header);
    }
    Ok(out)
}

/// Probes the writer lock without holding it: a live writer holds it exclusively.
///
/// On the real file system the lock is an `flock`, which a process lends to every child it
/// forks until the child execs: a test harness or a server embedding the log that starts
/// processes can make the lock look held for a moment after its writer let go (seen as verify
/// calling a torn tail "in progress" under load). A writer holds it for its whole session, so
/// there it must look held over a few milliseconds before the writer counts as live.
pub(crate) fn writer_active(storage: &dyn Storage, dir: &Path) -> bool {
    let path = dir.join(LOCK_NAME);
    if !storage.exists(&path) {
        return false;
    }
    let held = || matches!(storage.try_lock(&path, LockKind::Shared), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    held()
        && (!storage.locks_outlive_their_holder()
            || [2, 8, 32].iter().all(|&ms| {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                held()
            }))
}
