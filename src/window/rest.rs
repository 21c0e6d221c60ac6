//! Scanning the last segment past the end of its clean records, a window at a time.
//!
//! Where the clean records end, `read_clean` stops at a doubt: a torn tail, damage, or a
//! sequence break. Telling a torn tail from damage needs everything after it (is the damage
//! followed by valid records?), which a reader used to get by reading the rest of the file at
//! once: on a damaged segment of 1 GiB, 1 GiB of memory, exactly when an operator is looking.
//! Here the rest is judged as `scan::scan_records` judges it with the whole rest in view, but
//! the file is read a window at a time, plus one record at a time where a record is longer
//! than the window. The window tests hold every verdict to a whole-file scan's.

use super::{Held, claimed_len, merge, read_clean};
use crate::format::{
    self, Decoded, Invalid, KEY_SIZE_LIMIT, RECORD_HEADER_SIZE, RECORD_SIZE_LIMIT, SegmentHeader,
    WatermarkSlot,
};
use crate::scan::{self, Reach, Resume, SegmentScan, Visit};
use std::io;

/// What a scan finds from `from` (a record boundary where the clean records stopped) to the end
/// of the file read through `held`: the same as `scan::scan_records` over those bytes held
/// whole, holding a window at a time, or one record where a record is longer.
///
/// # Errors
///
/// The storage's read error.
pub(crate) fn scan_rest(
    held: &mut Held<'_>,
    from: Resume,
    header: &SegmentHeader,
    watermark: Option<WatermarkSlot>,
    visit: &mut Visit<'_>,
) -> io::Result<SegmentScan> {
    let len = held.len();
    let seed = format::binding_seed(&format::binding(header.log_id, header.segment));
    let mut total = scan::scan_records(&[], from, header, watermark, Reach::EndOfFile, visit);
    let mut at = from;
    while at.offset < len {
        let bytes = record_at(held, at.offset, seed)?;
        let (whole, resumed) = match decode(&bytes, seed) {
            // A sequence break, which the clean run stops at: judged by the whole-file scan
            // itself, over just this record.
            Decoded::Record(_) => (bytes, at),
            Decoded::Invalid(why) => match past_damage(held, at, why, header, seed, &mut total)? {
                Some(found) => found,
                None => break,
            },
        };
        let part = scan::scan_records(&whole, resumed, header, watermark, Reach::EndOfFile, visit);
        // The record's own sequence number if it was taken, else the last good one still.
        let last_seq = part.last_seq.unwrap_or(at.last_seq);
        merge(&mut total, part);
        if total.stopped {
            return Ok(total);
        }
        let next = Resume {
            offset: resumed.offset + whole.len() as u64,
            last_seq,
        };
        let (part, stop) = read_clean(held, next, header, watermark, visit)?;
        merge(&mut total, part);
        if total.stopped {
            return Ok(total);
        }
        at = stop;
    }
    Ok(total)
}

/// Where `why` says the bytes at `at` are not a record: records the damage there, up to the
/// next valid record newer than `at.last_seq`, and returns that record with the place to
/// scan it from. `None` when nothing valid follows, or when the rest of a preallocated
/// segment is zeros (the normal end of its data, FORMAT.md §2.1, and no damage).
fn past_damage(
    held: &mut Held<'_>,
    at: Resume,
    why: Invalid,
    header: &SegmentHeader,
    seed: u32,
    total: &mut SegmentScan,
) -> io::Result<Option<(Vec<u8>, Resume)>> {
    let len = held.len();
    if header.is_preallocated() && held.all_zero(at.offset, len)? {
        return Ok(None);
    }
    let found = resync(held, at.offset + 1, seed, at.last_seq)?;
    let end = found.as_ref().map_or(len, |(q, _, _)| *q);
    let zero = why == Invalid::Zeros && held.all_zero(at.offset, end)?;
    let detail = || scan::describe(why, end - at.offset, found.is_some());
    total.damaged(
        scan::damage_kind(why, zero),
        at.offset,
        end - at.offset,
        detail,
    );
    // The record found after damage follows it without a gap report, as in a whole-file scan:
    // standing just before its sequence number says so.
    Ok(found.map(|(offset, seq, record)| {
        let last_seq = seq - 1;
        (record, Resume { offset, last_seq })
    }))
}

/// The bytes at `offset` that decide what starts there, as a whole-file decode sees them: the
/// whole record when its header is intact and the file holds all of it, else the header (or
/// what is left of the file, if less).
fn record_at(held: &mut Held<'_>, offset: u64, seed: u32) -> io::Result<Vec<u8>> {
    let left = held.len() - offset;
    let head = held.at(offset, RECORD_HEADER_SIZE as u64)?;
    // The whole record when the header says how long it is and the file holds it: its body
    // decides (a checksum, a sequence number); else its header, which decides alone.
    let take = match claimed_len(head, seed) {
        Some(total) if total <= left => total,
        _ => left.min(RECORD_HEADER_SIZE as u64),
    };
    Ok(held.at(offset, take)?[..take as usize].to_vec())
}

/// The first offset at or after `from` where a valid record newer than `last_good` starts, with
/// that record's sequence number and bytes: `scan::resync` over the file, through the window
/// held.
fn resync(
    held: &mut Held<'_>,
    mut from: u64,
    seed: u32,
    last_good: u64,
) -> io::Result<Option<(u64, u64, Vec<u8>)>> {
    let header = RECORD_HEADER_SIZE as u64;
    let len = held.len();
    while from + header <= len {
        let bytes = held.at(from, header)?;
        // Offsets whose header the bytes held hold whole, and whose header is intact: a valid
        // record, or one that runs past the bytes held, which is then read whole and judged
        // (its body, its sequence number) as the whole-file search judges it.
        let last = bytes.len() - RECORD_HEADER_SIZE;
        let candidate = (0..=last).find(|&i| {
            scan::may_start_record(&bytes[i..])
                && matches!(
                    decode(&bytes[i..], seed),
                    Decoded::Record(_) | Decoded::Invalid(Invalid::Truncated)
                )
        });
        let Some(i) = candidate else {
            from += last as u64 + 1;
            continue;
        };
        let at = from + i as u64;
        let record = record_at(held, at, seed)?;
        if let Decoded::Record(r) = decode(&record, seed)
            && r.meta.seq > last_good
        {
            return Ok(Some((at, r.meta.seq, record)));
        }
        from = at + 1;
    }
    Ok(None)
}

/// Decodes the record at the start of `bytes` with the reader's limits.
fn decode(bytes: &[u8], seed: u32) -> Decoded<'_> {
    format::decode_record_seeded(bytes, seed, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT)
}
