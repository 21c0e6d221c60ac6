//! Scanning the last segment past the end of its clean records, a window at a time.
//!
//! Where the clean records end, `read_clean` stops at a doubt: a torn tail, damage, or a
//! sequence break. Telling a torn tail from damage needs everything after it (is the damage
//! followed by valid records?), which a reader used to get by reading the rest of the file at
//! once: on a damaged segment of 1 GiB, 1 GiB of memory, exactly when an operator is looking.
//! Here the rest is judged as `scan::scan_records` judges it with the whole rest in view, but
//! the file is read a window at a time, plus one record at a time where a record is longer
//! than the window. The window tests hold every verdict to a whole-file scan's.

use super::{all_zero, claimed_len, merge, read_clean};
use crate::format::{
    self, Decoded, Invalid, KEY_SIZE_LIMIT, RECORD_HEADER_SIZE, RECORD_SIZE_LIMIT, SegmentHeader,
    WatermarkSlot,
};
use crate::scan::{self, Reach, Resume, SegmentScan, Visit};
use crate::storage::{StorageFile, read_vec};
use std::io;

/// The most bytes one read here asks for: a window, or a record of the largest size.
const READ_LIMIT: u64 = RECORD_HEADER_SIZE as u64 + RECORD_SIZE_LIMIT as u64;

/// What a scan finds from `from` (a record boundary where the clean records stopped) to `len`,
/// the end of the file: the same as `scan::scan_records` over those bytes held whole, reading
/// at most `window` bytes at a time, or one record where a record is longer.
///
/// # Errors
///
/// The storage's read error.
pub(crate) fn scan_rest(
    file: &dyn StorageFile,
    len: u64,
    from: Resume,
    header: &SegmentHeader,
    watermark: Option<WatermarkSlot>,
    window: u64,
    visit: &mut Visit<'_>,
) -> io::Result<SegmentScan> {
    let seed = format::binding_seed(&format::binding(header.log_id, header.segment));
    let mut total = scan::scan_records(&[], from, header, watermark, Reach::EndOfFile, visit);
    let mut at = from;
    while at.offset < len {
        let bytes = record_at(file, at.offset, len, seed)?;
        let (whole, resumed) = match decode(&bytes, seed) {
            // A sequence break, which the clean run stops at: judged by the whole-file scan
            // itself, over just this record.
            Decoded::Record(_) => (bytes, at),
            Decoded::Invalid(why) => {
                if header.is_preallocated() && all_zero(file, at.offset, len, window)? {
                    // Preallocated space: the normal end of the data (FORMAT.md §2.1).
                    break;
                }
                let found = resync(file, at.offset + 1, len, seed, at.last_seq, window)?;
                let end = found.as_ref().map_or(len, |(q, _, _)| *q);
                let zero = why == Invalid::Zeros && all_zero(file, at.offset, end, window)?;
                let detail = scan::describe(why, end - at.offset, found.is_some());
                total.damaged(
                    scan::damage_kind(why, zero),
                    at.offset,
                    end - at.offset,
                    detail,
                );
                let Some((q, seq, record)) = found else { break };
                // The record found after damage follows it without a gap report, as in a
                // whole-file scan: standing just before its sequence number says so.
                let last_seq = seq - 1;
                (
                    record,
                    Resume {
                        offset: q,
                        last_seq,
                    },
                )
            }
        };
        let part = scan::scan_records(&whole, resumed, header, watermark, Reach::EndOfFile, visit);
        let last_seq = part.last_seq.map_or(at.last_seq, |s| s.max(at.last_seq));
        merge(&mut total, part);
        if total.stopped {
            return Ok(total);
        }
        let next = Resume {
            offset: resumed.offset + whole.len() as u64,
            last_seq,
        };
        let (part, stop) = read_clean(file, len, next, header, watermark, window, visit)?;
        merge(&mut total, part);
        if total.stopped {
            return Ok(total);
        }
        at = stop;
    }
    Ok(total)
}

/// The bytes at `offset` that decide what starts there: the whole record when its header is
/// intact and the file holds all of it, else the header (or what is left of the file, if less).
fn record_at(file: &dyn StorageFile, offset: u64, len: u64, seed: u32) -> io::Result<Vec<u8>> {
    let head = read_vec(
        file,
        offset,
        (len - offset).min(RECORD_HEADER_SIZE as u64),
        READ_LIMIT,
    )?;
    match claimed_len(&head, seed) {
        Some(total) if total <= len - offset => read_vec(file, offset, total, READ_LIMIT),
        _ => Ok(head),
    }
}

/// The first offset at or after `from` where a valid record newer than `last_good` starts, with
/// that record's sequence number and bytes: `scan::resync` over the file, `window` candidate
/// offsets at a time.
fn resync(
    file: &dyn StorageFile,
    from: u64,
    len: u64,
    seed: u32,
    last_good: u64,
    window: u64,
) -> io::Result<Option<(u64, u64, Vec<u8>)>> {
    let header = RECORD_HEADER_SIZE as u64;
    let mut start = from;
    while start + header <= len {
        // The candidates `start..start + window`, and enough bytes after the last one for its
        // header to be whole.
        let end = (start + window + header - 1).min(len);
        let buf = read_vec(file, start, end - start, READ_LIMIT)?;
        let last = (buf.len() - RECORD_HEADER_SIZE).min(window as usize - 1);
        for i in (0..=last).filter(|&i| scan::may_start_record(&buf[i..])) {
            let at = start + i as u64;
            let record = match decode(&buf[i..], seed) {
                Decoded::Record(r) => buf[i..i + r.length as usize].to_vec(),
                // A header intact but its record past the window: read it whole to judge it.
                Decoded::Invalid(Invalid::Truncated) => match claimed_len(&buf[i..], seed) {
                    Some(total) if total <= len - at => read_vec(file, at, total, READ_LIMIT)?,
                    _ => continue,
                },
                Decoded::Invalid(_) => continue,
            };
            if let Decoded::Record(r) = decode(&record, seed)
                && r.meta.seq > last_good
            {
                return Ok(Some((at, r.meta.seq, record)));
            }
        }
        start += window;
    }
    Ok(None)
}

/// Decodes the record at the start of `bytes` with the reader's limits.
fn decode(bytes: &[u8], seed: u32) -> Decoded<'_> {
    format::decode_record_seeded(bytes, seed, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT)
}
