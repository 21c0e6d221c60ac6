//! Reading only what was appended after a known record, for followers (`walctl dump --follow`).
//!
//! A scan costs the whole log, or at least its newest segment (up to 1 GiB); a follower polling
//! a busy log should pay only for the new bytes. [`read_after`] starts at a [`Cursor`] left by
//! an earlier read, checks that the record it names is still there (a compaction, a repair or a
//! new log in the same directory would have moved it), and delivers the clean records after it,
//! a bounded window at a time. It stops at the first byte it cannot vouch for: in the last
//! segment that is where a writer is still writing (or a torn tail), which the next call picks
//! up; in a sealed segment it is damage, reported as [`After::Damaged`] and never skipped, since
//! any record past it would arrive with a hole before it. Damage is not classified here: that
//! needs the whole log, which is `verify`'s job.

use crate::compact::install;
use crate::error::{Error, Result};
use crate::format::{
    self, Decoded, KEY_SIZE_LIMIT, RECORD_SIZE_LIMIT, SEGMENT_DATA_START, SegmentHeader,
};
use crate::recovery;
use crate::report::{Location, RecordView};
use crate::scan::{self, Resume, Visit};
use crate::segment::Listing;
use crate::storage::{OpenMode, Storage, StorageFile, read_vec};
use crate::window::{self, Held, WINDOW};
use std::ops::ControlFlow;
use std::path::Path;

/// The place just after one record of one log, where [`read_after`] continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The log's identity ([`crate::Report::log_id`]).
    pub log_id: u64,
    /// Where the record is.
    pub location: Location,
    /// Its sequence number.
    pub seq: u64,
}

impl Cursor {
    /// The cursor just past `record`, a record of the log `log_id`.
    #[must_use]
    pub fn after(log_id: u64, record: &RecordView<'_>) -> Cursor {
        Cursor {
            log_id,
            location: record.location,
            seq: record.seq,
        }
    }

    fn end(&self) -> Resume {
        Resume {
            offset: self.location.offset + u64::from(self.location.length),
            last_seq: self.seq,
        }
    }
}

/// What [`read_after`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Every clean record after the cursor was delivered, or the visitor asked to stop.
    /// `cursor` is past the last record delivered (the one passed in when there was none).
    Read {
        /// Where the next call continues.
        cursor: Option<Cursor>,
        /// Records delivered by this call.
        records: u64,
    },
    /// The cursor's record is no longer where it was: the log was compacted, repaired or
    /// replaced since. Read again from the start (cursor `None`) and skip what was seen.
    Lost,
    /// Damage no later record may be delivered past: bytes in a sealed segment that are not
    /// the next record, a segment of another log, or, in the last segment, damage among
    /// acknowledged records with valid records after it. `walctl verify` tells what it is.
    Damaged {
        /// The segment number.
        segment: u64,
        /// The file offset where the next record should have started.
        offset: u64,
    },
}

/// Delivers to `visit`, in order, the records of the log in `dir` after `cursor` (all of them
/// when `None`), and says where the next call should continue. Takes no lock and changes
/// nothing; safe beside a live writer.
///
/// # Errors
///
/// [`ErrorKind::NotALog`] when `dir` holds no segments, [`ErrorKind::UnsupportedVersion`] for a
/// newer format or unknown flags, I/O errors.
///
/// [`ErrorKind::NotALog`]: crate::ErrorKind::NotALog
/// [`ErrorKind::UnsupportedVersion`]: crate::ErrorKind::UnsupportedVersion
pub fn read_after(
    storage: &dyn Storage,
    dir: &Path,
    cursor: Option<&Cursor>,
    visit: &mut Visit<'_>,
) -> Result<After> {
    // Held while reading: compaction removes old segments only under the exclusive lock.
    let _readers = install::shared_readers(storage, dir);
    let (listing, last) = recovery::live_segments(storage, dir)?;
    let first = match cursor {
        None => 0,
        Some(c) => match listing.segments.binary_search(&c.location.segment) {
            Ok(i) => i,
            Err(_) => return Ok(After::Lost),
        },
    };
    let mut at = cursor.copied();
    let mut records = 0;
    for &number in &listing.segments[first..] {
        let path = Listing::path(dir, number);
        let file = storage
            .open(&path, OpenMode::Read)
            .map_err(|e| Error::io("open", &path, e))?;
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        let damaged = After::Damaged {
            segment: number,
            offset: 0,
        };
        let Some((header, durable)) = header_of(&*file, len, number, &path)? else {
            // A segment gets its name only once its preamble is written and synced.
            return Ok(damaged);
        };
        let from = match at {
            Some(c) if c.location.segment == number => {
                let here = c.log_id == header.log_id
                    && still_there(&*file, len, &header, &c)
                        .map_err(|e| Error::io("read", &path, e))?;
                if !here {
                    return Ok(After::Lost);
                }
                c.end()
            }
            // A segment of another log after ours.
            Some(c) if c.log_id != header.log_id => return Ok(damaged),
            Some(c) => Resume {
                offset: SEGMENT_DATA_START,
                last_seq: c.seq,
            },
            None => Resume {
                offset: SEGMENT_DATA_START,
                last_seq: header.first_seq - 1,
            },
        };
        let mut delivered = |r: &RecordView<'_>| {
            at = Some(Cursor::after(header.log_id, r));
            records += 1;
            visit(r)
        };
        let io = |e| Error::io("read", &path, e);
        let mut held = Held::new(&*file, len, WINDOW).map_err(io)?;
        let (scan, stop) =
            window::read_clean(&mut held, from, &header, None, &mut delivered).map_err(io)?;
        if scan.stopped {
            break;
        }
        let settled = if number == last {
            // Waited at: a record still being written, or a torn tail (damage past every
            // record a sync acknowledged, which the writer's next open cuts, FORMAT.md §8).
            // Damage that valid records follow, among acknowledged records, is reported. The
            // watermark is looked at first: a follower polling a torn tail would otherwise
            // read everything after it three more times on every poll.
            durable.is_none_or(|d| d <= stop.last_seq)
                || !damage_before_records(&*file, &header, stop, len).map_err(io)?
        } else {
            // A sealed segment ends at its last record, or in zeros when preallocated.
            stop.offset == len
                || (header.is_preallocated() && held.all_zero(stop.offset, len).map_err(io)?)
        };
        if !settled {
            return Ok(After::Damaged {
                segment: number,
                offset: stop.offset,
            });
        }
    }
    Ok(read(at, records))
}

fn read(cursor: Option<Cursor>, records: u64) -> After {
    After::Read { cursor, records }
}

/// The segment's header and the sequence number its watermark slot says was durable; `None`
/// when the header is short or damaged (an error for a newer version or unknown flags).
fn header_of(
    file: &dyn StorageFile,
    len: u64,
    number: u64,
    path: &Path,
) -> Result<Option<(SegmentHeader, Option<u64>)>> {
    if len < SEGMENT_DATA_START {
        return Ok(None);
    }
    let preamble = read_vec(file, 0, SEGMENT_DATA_START, SEGMENT_DATA_START)
        .map_err(|e| Error::io("read", path, e))?;
    match SegmentHeader::decode(&preamble) {
        Ok(h) if h.segment == number => {
            let durable = scan::read_watermark(&preamble, &h).map(|w| w.durable_seq);
            Ok(Some((h, durable)))
        }
        Ok(_) => Ok(None),
        Err(fault) => fault.unsupported(path).map_or(Ok(None), Err),
    }
}

/// Whether the cursor's record is still at its place, with its sequence number.
fn still_there(
    file: &dyn StorageFile,
    len: u64,
    header: &SegmentHeader,
    c: &Cursor,
) -> std::io::Result<bool> {
    let Location { offset, length, .. } = c.location;
    if offset < SEGMENT_DATA_START || offset + u64::from(length) > len {
        return Ok(false);
    }
    let bytes = read_vec(
        file,
        offset,
        u64::from(length),
        u64::from(RECORD_SIZE_LIMIT) + 32,
    )?;
    let bind = format::binding(header.log_id, header.segment);
    Ok(matches!(
        format::decode_record(&bytes, &bind, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT),
        Decoded::Record(r) if r.meta.seq == c.seq && r.length == length
    ))
}

/// Whether the bytes at `stop` in the last segment are damage: they are not a record, valid
/// records follow them, and they are still not a record when read again (a writer may have
/// finished the record in between, and a read racing it can see the next one already). Reads a
/// window at a time, and only as far as the first valid record after the damage. Zeros to the
/// end (preallocation, or a crash's zero-filled tail) are no record, and none follows them.
fn damage_before_records(
    file: &dyn StorageFile,
    header: &SegmentHeader,
    stop: Resume,
    len: u64,
) -> std::io::Result<bool> {
    for _ in 0..2 {
        // Read afresh each time: the second look is for what a writer may have changed.
        let mut held = Held::new(file, len, WINDOW)?;
        let found = window::scan_rest(&mut held, stop, header, None, &mut |_| {
            ControlFlow::Break(())
        })?;
        let damaged_here = found
            .damage
            .first()
            .is_some_and(|d| d.offset == stop.offset);
        if !damaged_here || found.records == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}
