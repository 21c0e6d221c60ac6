//! Scanning the records of one segment held in memory.
//!
//! Pure: it works on a byte slice and never touches a file, so most recovery tests need no
//! storage at all. It finds the valid prefix, delivers valid records in order, and on damage
//! scans past it for more valid records so the operator learns what a cut would lose. Whether
//! damage is torn or corrupt is decided one level up (`recovery`), which sees the whole log.

use crate::format::{
    self, Decoded, Invalid, KEY_SIZE_LIMIT, RECORD_HEADER_SIZE, RECORD_SIZE_LIMIT,
    SEGMENT_DATA_START, SegmentHeader, WATERMARK_SLOT_OFFSETS, WATERMARK_SLOT_SIZE, WatermarkSlot,
};
use crate::report::{DamageKind, Location, RecordView, TimeRange};
use std::ops::ControlFlow;

mod damage;

pub(crate) use damage::LocalDamage;

/// A record visitor: return `ControlFlow::Break` to stop the scan.
pub type Visit<'v> = dyn FnMut(&RecordView<'_>) -> ControlFlow<()> + 'v;

/// What one segment's records look like.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    /// End of the last valid record before the first damage: where a cut would go.
    pub valid_len: u64,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The timestamps of the valid records.
    pub times: Option<TimeRange>,
    /// The highest sequence number the watermark slots prove durable.
    pub durable_seq: Option<u64>,
    /// The highest generation of a valid watermark slot (the writer continues from it).
    pub slot_generation: u64,
    /// At most `DAMAGE_LISTED_PER_SEGMENT + 1` entries: the last one condenses the rest
    /// (`damage.rs`).
    pub damage: Vec<LocalDamage>,
    /// The visitor asked to stop.
    pub stopped: bool,
    /// With [`Reach::Window`]: where the clean records of the window end and the next window
    /// starts.
    pub window_stop: Option<Resume>,
}

/// Reads the watermark slots of a segment (FORMAT.md §2.2): the newest valid one wins.
pub(crate) fn read_watermark(bytes: &[u8], header: &SegmentHeader) -> Option<WatermarkSlot> {
    WATERMARK_SLOT_OFFSETS
        .iter()
        .filter_map(|&at| {
            let at = at as usize;
            let slot = bytes.get(at..at + WATERMARK_SLOT_SIZE)?;
            WatermarkSlot::decode(slot, header.log_id, header.segment)
        })
        .max_by_key(|s| s.generation)
}

/// Damage found in a segment's preamble: offset, explanation, kind.
pub(crate) type PreambleDamage = (u64, String, DamageKind);

/// Checks the preamble of a segment (FORMAT.md §2): the padding must be zero, and in a sealed
/// segment both slots must be unwritten or valid and the newest must equal the last record.
///
/// In the last segment a damaged slot is a legal crash state (a slot write not yet synced can be
/// torn), so it is not damage there: the slot just proves nothing. `last_seq` is `None` when
/// the segment holds no record or its last record is not known (a scan stopped early); the
/// watermark is then not compared with it.
pub(crate) fn check_preamble(
    bytes: &[u8],
    header: &SegmentHeader,
    sealed: bool,
    last_seq: Option<u64>,
) -> Option<PreambleDamage> {
    let slots = WATERMARK_SLOT_OFFSETS.map(|o| o as usize);
    let padding = [
        (format::SEGMENT_HEADER_SIZE, slots[0]),
        (slots[0] + WATERMARK_SLOT_SIZE, slots[1]),
        (slots[1] + WATERMARK_SLOT_SIZE, SEGMENT_DATA_START as usize),
    ];
    for (start, end) in padding {
        if let Some(i) = format::first_nonzero(&bytes[start..end]) {
            let why = "non-zero bytes in the segment preamble's padding".to_string();
            return Some(((start + i) as u64, why, DamageKind::BadSegmentHeader));
        }
    }
    if !sealed {
        return None;
    }
    for &at in &slots {
        let raw = &bytes[at..at + WATERMARK_SLOT_SIZE];
        if !format::is_zero(raw)
            && WatermarkSlot::decode(raw, header.log_id, header.segment).is_none()
        {
            return Some((
                at as u64,
                "a watermark slot of a sealed segment is damaged".into(),
                DamageKind::BadWatermark,
            ));
        }
    }
    let newest = read_watermark(bytes, header).map(|w| w.durable_seq);
    match (newest, last_seq) {
        (Some(w), Some(l)) if w > l => Some((
            slots[0] as u64,
            format!(
                "the sealed segment's watermark says {w} was durable, but its last record is {l}"
            ),
            DamageKind::MissingAcknowledged,
        )),
        (Some(w), Some(l)) if w < l => Some((
            slots[0] as u64,
            format!("the sealed segment's watermark ({w}) stops short of its last record ({l})"),
            DamageKind::BadWatermark,
        )),
        (None, Some(l)) => Some((
            slots[0] as u64,
            format!("the sealed segment holds records up to {l} but no watermark"),
            DamageKind::BadWatermark,
        )),
        _ => None,
    }
}

/// Scans the records of a segment whose header has already been checked.
///
/// `bytes` is the whole file. Records are delivered to `visit` in file order.
pub(crate) fn scan_segment(
    bytes: &[u8],
    header: &SegmentHeader,
    visit: &mut Visit<'_>,
) -> SegmentScan {
    assert!(
        bytes.len() as u64 >= SEGMENT_DATA_START,
        "caller checks the preamble"
    );
    let from = Resume {
        offset: SEGMENT_DATA_START,
        last_seq: header.first_seq - 1,
    };
    let watermark = read_watermark(bytes, header);
    scan_records(
        &bytes[from.offset as usize..],
        from,
        header,
        watermark,
        Reach::EndOfFile,
        visit,
    )
}

/// Where a scan of a segment's records starts: a record boundary, and the sequence number of
/// the record before it (`first_seq - 1` at the start of the segment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resume {
    pub offset: u64,
    pub last_seq: u64,
}

/// How far the bytes handed to [`scan_records`] reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// To the end of the file: damage is judged with everything after it in view.
    EndOfFile,
    /// A window that stops short of the end (`window/`): the scan delivers clean records
    /// only and stops at the first doubt, which the next window (or the rest of the file) settles.
    Window,
}

/// Scans `data`, the bytes of the segment from `from.offset` to the end of the file (or of a
/// window, see [`Reach`]), as [`scan_segment`] scans a whole segment. Offsets in the result are
/// offsets in the file; the records before `from` are taken as they are, unread.
pub(crate) fn scan_records(
    data: &[u8],
    from: Resume,
    header: &SegmentHeader,
    watermark: Option<WatermarkSlot>,
    reach: Reach,
    visit: &mut Visit<'_>,
) -> SegmentScan {
    let seed = format::binding_seed(&format::binding(header.log_id, header.segment));
    let base = from.offset as usize;
    let mut scan = SegmentScan {
        valid_len: from.offset,
        durable_seq: watermark.map(|w| w.durable_seq),
        slot_generation: watermark.map_or(0, |w| w.generation),
        last_seq: (from.last_seq >= header.first_seq).then_some(from.last_seq),
        ..SegmentScan::default()
    };
    let mut last_good = from.last_seq;
    let mut pos = 0;
    let mut resynced = false;
    let window = reach == Reach::Window;
    while pos < data.len() {
        let at = (base + pos) as u64;
        let decoded =
            format::decode_record_seeded(&data[pos..], seed, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT);
        let gap = |seq: u64| seq != last_good + 1 && !header.is_compacted();
        if window
            && !matches!(&decoded, Decoded::Record(r) if r.meta.seq > last_good && !gap(r.meta.seq))
        {
            break;
        }
        match decoded {
            Decoded::Record(r) => {
                let end = pos + r.length as usize;
                let seq = r.meta.seq;
                if seq <= last_good {
                    let why = || format!("record with sequence {seq} follows sequence {last_good}");
                    let length = u64::from(r.length);
                    scan.damaged(DamageKind::SequenceRegression, at, length, why);
                } else {
                    if gap(seq) && !resynced {
                        let why = || format!("sequence jumps from {last_good} to {seq}");
                        scan.damaged(DamageKind::SequenceGap, at, 0, why);
                    }
                    resynced = false;
                    last_good = seq;
                    if scan.damage.is_empty() {
                        scan.valid_len = (base + end) as u64;
                    }
                    scan.records += 1;
                    scan.first_seq.get_or_insert(seq);
                    scan.last_seq = Some(seq);
                    scan.times = Some(TimeRange::then(scan.times, r.meta.timestamp_nanos));
                    let view = view_of(&r, header.segment, (base + pos) as u64);
                    if visit(&view).is_break() {
                        scan.stopped = true;
                        scan.window_stop = window.then_some(Resume {
                            offset: (base + end) as u64,
                            last_seq: seq,
                        });
                        return scan;
                    }
                }
                pos = end;
            }
            Decoded::Invalid(why) => {
                if header.is_preallocated() && format::is_zero(&data[pos..]) {
                    // Preallocated space: the normal end of data (FORMAT.md §2.1).
                    break;
                }
                let next = resync(data, pos + 1, seed, last_good);
                let end = next.unwrap_or(data.len());
                let zero = why == Invalid::Zeros && format::is_zero(&data[pos..end]);
                let length = (end - pos) as u64;
                let detail = || describe(why, length, next.is_some());
                scan.damaged(damage_kind(why, zero), at, length, detail);
                resynced = true;
                pos = end;
            }
        }
    }
    if window {
        scan.window_stop = Some(Resume {
            offset: (base + pos) as u64,
            last_seq: last_good,
        });
    }
    debug_assert!(scan.valid_len <= (base + data.len()) as u64);
    scan
}

/// What [`scan_records`] finds in `len` zero bytes from `from` to the end of the file, without
/// holding them: the normal end of a preallocated segment, otherwise zero-fill damage.
pub(crate) fn scan_zeros(
    len: u64,
    from: Resume,
    header: &SegmentHeader,
    watermark: Option<WatermarkSlot>,
) -> SegmentScan {
    let mut scan = scan_records(&[], from, header, watermark, Reach::EndOfFile, &mut |_| {
        ControlFlow::Continue(())
    });
    if len > 0 && !header.is_preallocated() {
        let detail = || describe(Invalid::Zeros, len, false);
        scan.damaged(DamageKind::ZeroFill, from.offset, len, detail);
    }
    scan
}

fn view_of<'a>(r: &format::RecordRef<'a>, segment: u64, offset: u64) -> RecordView<'a> {
    RecordView {
        seq: r.meta.seq,
        timestamp_nanos: r.meta.timestamp_nanos,
        kind: r.meta.kind,
        key: r.key,
        payload: r.payload,
        location: Location {
            segment,
            offset,
            length: r.length,
        },
        crc: r.crc,
    }
}

/// Finds the next offset at or after `from` holding a valid record newer than `last_good`
/// (`window::rest` does the same over a file).
fn resync(bytes: &[u8], from: usize, seed: u32, last_good: u64) -> Option<usize> {
    let last_start = bytes.len().checked_sub(RECORD_HEADER_SIZE)?;
    (from..=last_start).find(|&q| {
        may_start_record(&bytes[q..])
            && matches!(
            format::decode_record_seeded(&bytes[q..], seed, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT),
            Decoded::Record(r) if r.meta.seq > last_good
            )
    })
}

/// Whether a record header may start at the start of `bytes` (at least a header long), judged
/// by its type and flag bytes alone: resynchronisation skips zero and garbage regions at memory
/// speed, and only candidates pay for a checksum.
pub(crate) fn may_start_record(bytes: &[u8]) -> bool {
    (1..=2).contains(&bytes[14]) && bytes[15] <= 1
}

/// The kind of damage a region that is not a record makes, given why its first bytes are not
/// one and whether the whole region (to the next valid record or the end) is zero.
pub(crate) fn damage_kind(why: Invalid, region_is_zero: bool) -> DamageKind {
    match why {
        Invalid::Truncated => DamageKind::TruncatedRecord,
        Invalid::Zeros if region_is_zero => DamageKind::ZeroFill,
        Invalid::Zeros | Invalid::HeaderChecksum | Invalid::BodyChecksum => DamageKind::Checksum,
        Invalid::Malformed => DamageKind::Malformed,
    }
}

/// The damage report's detail for a region of `length` bytes that is not a record.
pub(crate) fn describe(why: Invalid, length: u64, followed: bool) -> String {
    let what = match why {
        Invalid::Truncated => "a record cut short by the end of the file",
        Invalid::Zeros => "zero bytes where a record should start",
        Invalid::HeaderChecksum => "a record header whose checksum fails",
        Invalid::BodyChecksum => "a record whose checksum fails",
        Invalid::Malformed => "a record header with invalid fields",
    };
    let after = if followed {
        ", followed by valid records"
    } else {
        " up to the end of the file"
    };
    format!("{what}; {length} bytes{after}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{FORMAT_VERSION, RecordKind, RecordMeta};

    pub(super) fn header(compacted: bool) -> SegmentHeader {
        SegmentHeader {
            version: FORMAT_VERSION,
            flags: u32::from(compacted),
            log_id: 9,
            segment: 1,
            first_seq: 1,
            log_first_seq: 1,
            created_nanos: 0,
        }
    }

    pub(super) fn segment(seqs: &[u64]) -> (Vec<u8>, Vec<u64>) {
        let h = header(false);
        let mut bytes = h.encode().to_vec();
        bytes.resize(SEGMENT_DATA_START as usize, 0);
        let bind = format::binding(9, 1);
        let mut ends = Vec::new();
        for &seq in seqs {
            let meta = RecordMeta {
                seq,
                timestamp_nanos: seq,
                kind: RecordKind::Data,
            };
            format::encode_record(&mut bytes, &bind, meta, None, format!("p{seq}").as_bytes());
            ends.push(bytes.len() as u64);
        }
        (bytes, ends)
    }

    fn run(bytes: &[u8]) -> SegmentScan {
        scan_segment(bytes, &header(false), &mut |_| ControlFlow::Continue(()))
    }

    #[test]
    fn clean_segment_has_no_damage() {
        let (bytes, ends) = segment(&[1, 2, 3]);
        let s = run(&bytes);
        assert_eq!((s.records, s.valid_len, s.damage.len()), (3, ends[2], 0));
    }

    #[test]
    fn truncation_at_every_offset_keeps_the_last_whole_record() {
        let (bytes, ends) = segment(&[1, 2, 3]);
        for cut in SEGMENT_DATA_START as usize..=bytes.len() {
            let s = run(&bytes[..cut]);
            let boundary = ends.iter().copied().filter(|&e| e <= cut as u64).max();
            assert_eq!(
                s.valid_len,
                boundary.unwrap_or(SEGMENT_DATA_START),
                "cut {cut}"
            );
            assert!(s.damage.len() <= 1, "cut {cut}");
            if let Some(d) = s.damage.first() {
                assert_eq!(d.offset + d.length, cut as u64);
                assert_eq!(d.kind, DamageKind::TruncatedRecord);
            }
        }
    }

    #[test]
    fn corrupt_middle_record_is_followed_by_valid_records() {
        let (mut bytes, ends) = segment(&[1, 2, 3, 4]);
        bytes[ends[1] as usize + 10] ^= 0xff;
        let s = run(&bytes);
        assert_eq!(s.records, 3);
        assert_eq!(s.valid_len, ends[1]);
        assert_eq!(s.damage.len(), 1);
        let d = &s.damage[0];
        assert_eq!(
            (d.kind, d.offset, d.length),
            (DamageKind::Checksum, ends[1], ends[2] - ends[1])
        );
        assert_eq!((d.last_good_seq, d.records_before), (Some(2), 2));
    }

    #[test]
    fn zero_tail_is_zero_fill_and_garbage_tail_is_checksum() {
        let (mut bytes, ends) = segment(&[1]);
        bytes.extend([0u8; 100]);
        assert_eq!(run(&bytes).damage[0].kind, DamageKind::ZeroFill);
        bytes.truncate(ends[0] as usize);
        bytes.extend((0..100u8).map(|i| i.wrapping_mul(37) | 1));
        assert_eq!(run(&bytes).damage[0].kind, DamageKind::Checksum);
    }

    #[test]
    fn duplicated_record_is_a_regression_and_skipped() {
        let (mut bytes, ends) = segment(&[1, 2]);
        let dup = bytes[ends[0] as usize..ends[1] as usize].to_vec();
        bytes.extend(dup);
        let s = run(&bytes);
        assert_eq!(s.records, 2);
        assert_eq!(s.damage[0].kind, DamageKind::SequenceRegression);
    }

    #[test]
    fn skipped_sequence_is_a_gap() {
        let (bytes, _) = segment(&[1, 2, 4]);
        let s = run(&bytes);
        assert_eq!(s.records, 3);
        assert_eq!(s.damage[0].kind, DamageKind::SequenceGap);
        let c = scan_segment(&bytes, &header(true), &mut |_| ControlFlow::Continue(()));
        assert!(c.damage.is_empty(), "compacted segments may have gaps");
    }
}
