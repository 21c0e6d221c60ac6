//! Scanning the last segment of a log in bounded windows.
//!
//! Readers (verify, dump, export) hold no writer lock, so they may not map the last segment: a
//! writer's open can cut its torn tail while they read, and a mapping of a file that shrinks
//! faults (see `mmap.rs`). Reading the whole file instead would make their memory grow with the
//! segment size (up to 1 GiB). So the last segment is read a window at a time: each window's
//! clean records are delivered, and a window stops at the first byte that needs more context (a
//! record cut by the window's end, damage, a sequence break). What follows that doubt is judged
//! window by window too (`rest.rs`), so a reader's memory is bounded by the window, or by the
//! longest record, whether the segment is clean or damaged; the verdicts are exactly those of a
//! whole-file scan (`scan::scan_records`).

mod held;
mod rest;

pub(crate) use held::Held;
pub(crate) use rest::scan_rest;

use crate::format::{
    self, Decoded, KEY_SIZE_LIMIT, RECORD_HEADER_SIZE, RECORD_SIZE_LIMIT, SEGMENT_DATA_START,
    SegmentHeader,
};
use crate::report::TimeRange;
use crate::scan::{self, Reach, Resume, SegmentScan, Visit};
use crate::storage::StorageFile;
use std::io;

/// Bytes read per window: large enough that the per-read cost vanishes, small enough to bound
/// a reader's memory far below a segment.
pub(crate) const WINDOW: u64 = 8 << 20;

/// Scans the records of the segment in `file` (`len` bytes, whose preamble is `preamble`) as
/// `scan::scan_segment` scans the whole file, holding at most one window of it (or one record,
/// where a record is longer): the clean records through [`read_clean`], then, from the first
/// doubt, zeros to the end or whatever else follows through `rest::scan_rest`.
///
/// # Errors
///
/// The storage's read error; a file longer than any segment can be.
pub(crate) fn scan_windowed(
    file: &dyn StorageFile,
    len: u64,
    preamble: &[u8],
    header: &SegmentHeader,
    window: u64,
    visit: &mut Visit<'_>,
) -> io::Result<SegmentScan> {
    let watermark = scan::read_watermark(preamble, header);
    let from = Resume {
        offset: SEGMENT_DATA_START,
        last_seq: header.first_seq - 1,
    };
    let mut held = Held::new(file, len, window)?;
    let (mut total, doubt) = read_clean(&mut held, from, header, watermark, visit)?;
    let rest = len - doubt.offset;
    if total.stopped || rest == 0 {
        return Ok(total);
    }
    if held.all_zero(doubt.offset, len)? {
        // Zeros to the end (preallocation, or a tail a crash left zero-filled).
        merge(&mut total, scan::scan_zeros(rest, doubt, header, watermark));
    } else {
        let end = rest::scan_rest(&mut held, doubt, header, watermark, visit)?;
        merge(&mut total, end);
    }
    Ok(total)
}

/// Delivers the clean records of the segment read through `held` from `from` on, a window at a
/// time (a record longer than the window gets a window of its own length), and stops at the
/// first byte that is not the start of the next clean record: the end of the file, a record cut
/// short, damage, or a sequence break. Returns what was delivered and where it stopped;
/// `SegmentScan::stopped` when the visitor asked to.
///
/// # Errors
///
/// The storage's read error.
pub(crate) fn read_clean(
    held: &mut Held<'_>,
    mut from: Resume,
    header: &SegmentHeader,
    watermark: Option<format::WatermarkSlot>,
    visit: &mut Visit<'_>,
) -> io::Result<(SegmentScan, Resume)> {
    let len = held.len();
    assert!(
        len >= from.offset && from.offset >= SEGMENT_DATA_START,
        "the caller starts at a record boundary inside the file"
    );
    let seed = format::binding_seed(&format::binding(header.log_id, header.segment));
    let mut total = scan::scan_records(&[], from, header, watermark, Reach::Window, visit);
    let mut need = RECORD_HEADER_SIZE as u64;
    while from.offset < len {
        let bytes = held.at(from.offset, need)?;
        let part = scan::scan_records(bytes, from, header, watermark, Reach::Window, visit);
        let stop = part
            .window_stop
            .expect("a window scan says where it stopped");
        merge(&mut total, part);
        if total.stopped {
            return Ok((total, stop));
        }
        if stop.offset > from.offset {
            (from, need) = (stop, RECORD_HEADER_SIZE as u64);
            continue;
        }
        // Nothing clean at the start of what is held: a record that runs past it (its header
        // is intact, so its length is bounded by the format's limit) is read whole if the file
        // holds all of it; anything else is where the clean records end.
        match claimed_len(bytes, seed) {
            Some(l) if l > bytes.len() as u64 && l <= len - from.offset => need = l,
            _ => break,
        }
    }
    Ok((total, from))
}

/// The length a record's header at the start of `bytes` claims, when the header is intact and
/// within the format's limits and claims a body (`seed` is the segment's binding state).
/// Judged from the header alone, so it is the same whether `bytes` hold the body or not.
fn claimed_len(bytes: &[u8], seed: u32) -> Option<u64> {
    let head = bytes.get(..RECORD_HEADER_SIZE)?;
    match format::decode_record_seeded(head, seed, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT) {
        Decoded::Invalid(format::Invalid::Truncated) => {
            let payload = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
            let key = u16::from_le_bytes(head[12..14].try_into().expect("2 bytes"));
            Some(RECORD_HEADER_SIZE as u64 + u64::from(payload) + u64::from(key))
        }
        _ => None,
    }
}

/// Folds the scan of the next part of the file into the total. A part's counts start at zero;
/// where a cut would go stays where the first damage put it.
fn merge(total: &mut SegmentScan, part: SegmentScan) {
    let before = total.records;
    if total.damage.is_empty() {
        total.valid_len = part.valid_len;
    }
    total.records += part.records;
    total.first_seq = total.first_seq.or(part.first_seq);
    total.last_seq = part.last_seq;
    total.times = TimeRange::join(total.times, part.times);
    total.durable_seq = part.durable_seq;
    total.slot_generation = part.slot_generation;
    total.stopped = part.stopped;
    for mut d in part.damage {
        d.records_before += before;
        total.add(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{
        FORMAT_VERSION, RecordKind, RecordMeta, SEGMENT_FILE_LIMIT, SEGMENT_FLAG_COMPACTED,
        SEGMENT_FLAG_PREALLOCATED,
    };
    use crate::storage::{MemStorage, OpenMode, Storage};
    use proptest::prelude::*;
    use std::ops::ControlFlow;
    use std::path::Path;

    fn header(flags: u32) -> SegmentHeader {
        SegmentHeader {
            version: FORMAT_VERSION,
            flags,
            log_id: 9,
            segment: 1,
            first_seq: 1,
            log_first_seq: 1,
            created_nanos: 0,
        }
    }

    /// A segment of records with the given sequence numbers and payload lengths.
    fn segment(h: &SegmentHeader, records: &[(u64, usize)]) -> Vec<u8> {
        let mut bytes = h.encode().to_vec();
        bytes.resize(SEGMENT_DATA_START as usize, 0);
        let bind = format::binding(h.log_id, h.segment);
        for &(seq, len) in records {
            let meta = RecordMeta {
                seq,
                timestamp_nanos: seq,
                kind: RecordKind::Data,
            };
            let payload: Vec<u8> = (0..len).map(|i| (i as u64 ^ seq) as u8).collect();
            format::encode_record(&mut bytes, &bind, meta, None, &payload);
        }
        bytes
    }

    /// What a scan reports and delivers, without the window bookkeeping.
    type Seen = (SegmentScan, Vec<(u64, u64)>);

    /// `bytes` as a file to read, at `/w/seg` of a fresh in-memory storage.
    pub(super) fn stored(bytes: &[u8]) -> std::sync::Arc<dyn StorageFile> {
        let storage = MemStorage::new();
        let path = Path::new("/w/seg");
        storage.create_dir_all(Path::new("/w")).unwrap();
        storage.set_file_bytes(path, bytes.to_vec());
        storage.open(path, OpenMode::Read).unwrap()
    }

    /// Where the records of a segment whose first sequence number is 1 start.
    const START: Resume = Resume {
        offset: SEGMENT_DATA_START,
        last_seq: 0,
    };

    fn whole(bytes: &[u8], h: &SegmentHeader, stop_after: usize) -> Seen {
        let mut seen = Vec::new();
        let s = scan::scan_segment(bytes, h, &mut |r| {
            seen.push((r.seq, r.location.offset));
            if seen.len() >= stop_after {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        (s, seen)
    }

    fn windowed(bytes: &[u8], h: &SegmentHeader, window: u64, stop_after: usize) -> Seen {
        let file = stored(bytes);
        let pre = &bytes[..SEGMENT_DATA_START as usize];
        let mut seen = Vec::new();
        let len = bytes.len() as u64;
        let mut s = scan_windowed(&*file, len, pre, h, window, &mut |r| {
            seen.push((r.seq, r.location.offset));
            if seen.len() >= stop_after {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        s.window_stop = None;
        (s, seen)
    }

    fn assert_same(bytes: &[u8], h: &SegmentHeader, stop_after: usize) {
        let expected = whole(bytes, h, stop_after);
        for window in [1, 31, 32, 33, 64, 100, 257, 1000, 4096, WINDOW] {
            let got = windowed(bytes, h, window, stop_after);
            assert_eq!(got, expected, "window {window}, stop after {stop_after}");
        }
    }

    #[test]
    fn a_clean_segment_scans_the_same_through_every_window_size() {
        let h = header(0);
        let bytes = segment(&h, &[(1, 0), (2, 10), (3, 500), (4, 3000), (5, 7)]);
        assert_same(&bytes, &h, usize::MAX);
        assert_same(&bytes, &h, 3);
    }

    #[test]
    fn damage_gaps_regressions_and_zero_tails_are_judged_as_a_whole_file_scan_judges_them() {
        let h = header(0);
        let clean = segment(&h, &[(1, 40), (2, 40), (3, 40), (4, 40)]);
        let data = SEGMENT_DATA_START as usize;
        let mut flipped = clean.clone();
        flipped[data + 72 + 40] ^= 1;
        assert_same(&flipped, &h, usize::MAX);
        let mut torn = clean.clone();
        torn.truncate(clean.len() - 5);
        assert_same(&torn, &h, usize::MAX);
        assert_same(&segment(&h, &[(1, 40), (2, 40), (5, 40)]), &h, usize::MAX);
        assert_same(&segment(&h, &[(1, 40), (2, 40), (2, 40)]), &h, usize::MAX);
        // Past damage, the search skips a valid record no newer than the last good one (a
        // copy of record 2 here) and goes on to record 4.
        let mut stale = segment(&h, &[(1, 40), (2, 40), (3, 40), (2, 40), (4, 40)]);
        stale[data + 2 * 72 + 50] ^= 1;
        assert_same(&stale, &h, usize::MAX);
        let (s, seen) = windowed(&stale, &h, 64, usize::MAX);
        assert_eq!((s.records, s.damage.len(), seen.len()), (3, 1, 3));
        let mut zeros = clean.clone();
        zeros.resize(clean.len() + 5000, 0);
        assert_same(&zeros, &h, usize::MAX);
        let pre = header(SEGMENT_FLAG_PREALLOCATED);
        let mut prealloc = segment(&pre, &[(1, 40), (2, 40)]);
        prealloc.resize(prealloc.len() + 5000, 0);
        assert_same(&prealloc, &pre, usize::MAX);
        let compacted = header(SEGMENT_FLAG_COMPACTED);
        assert_same(
            &segment(&compacted, &[(1, 40), (7, 40), (9, 40)]),
            &compacted,
            usize::MAX,
        );
    }

    #[test]
    fn a_record_longer_than_the_window_is_read_in_one_window_of_its_own() {
        let h = header(0);
        let bytes = segment(&h, &[(1, 10), (2, 100_000), (3, 10)]);
        let (s, seen) = windowed(&bytes, &h, 4096, usize::MAX);
        assert_eq!((s.records, s.damage.len()), (3, 0));
        assert_eq!(seen.len(), 3);
        assert_eq!(s.valid_len, bytes.len() as u64);
    }

    #[test]
    fn a_read_its_visitor_stops_says_where_the_next_read_continues() {
        // Records 2 and 4 are longer than the smaller windows, which must grow to hold them;
        // record 4's key counts towards its length.
        let h = header(0);
        let mut bytes = segment(&h, &[(1, 10), (2, 100), (3, 10)]);
        let meta = RecordMeta {
            seq: 4,
            timestamp_nanos: 4,
            kind: RecordKind::Data,
        };
        let bind = format::binding(h.log_id, h.segment);
        format::encode_record(&mut bytes, &bind, meta, Some(&[7; 50]), b"short");
        let file = stored(&bytes);
        let len = bytes.len() as u64;
        // From a whole header up: a window too short for one gives the rest to the caller.
        for window in [32, 64, WINDOW] {
            let mut seen = Vec::new();
            let mut visit = |r: &crate::report::RecordView<'_>| {
                seen.push(r.seq);
                ControlFlow::Break(())
            };
            let mut at = START;
            let mut held = Held::new(&*file, len, window).unwrap();
            for _ in 0..4 {
                let (s, stop) = read_clean(&mut held, at, &h, None, &mut visit).unwrap();
                assert!(s.stopped, "window {window}");
                assert_eq!(stop.last_seq, at.last_seq + 1, "window {window}");
                at = stop;
            }
            assert_eq!(seen, [1, 2, 3, 4], "window {window}");
            assert_eq!(at.offset, len, "window {window}: past the last record");
        }
    }

    #[test]
    fn a_record_longer_than_the_window_after_damage_is_found_and_read_whole() {
        // Record 2's body is damaged; record 3, the last in the file, is longer than most
        // windows, so the search past the damage finds its header in one window and must
        // read the rest of it (to the very end of the file) to judge it.
        let h = header(0);
        let mut bytes = segment(&h, &[(1, 10), (2, 10), (3, 5000)]);
        bytes[SEGMENT_DATA_START as usize + 42 + 35] ^= 0xff;
        assert_same(&bytes, &h, usize::MAX);
        let (s, seen) = windowed(&bytes, &h, 1000, usize::MAX);
        assert_eq!((s.records, s.damage.len()), (2, 1));
        assert_eq!(seen.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3]);
    }

    /// A file that counts the reads made of it and remembers the longest.
    #[derive(Debug)]
    pub(super) struct Reads {
        pub(super) file: std::sync::Arc<dyn StorageFile>,
        pub(super) count: std::sync::atomic::AtomicU64,
        pub(super) longest: std::sync::atomic::AtomicU64,
    }

    impl StorageFile for Reads {
        fn len(&self) -> io::Result<u64> {
            self.file.len()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            use std::sync::atomic::Ordering::Relaxed;
            self.count.fetch_add(1, Relaxed);
            self.longest.fetch_max(buf.len() as u64, Relaxed);
            self.file.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            self.file.write_at(buf, offset)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.file.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.file.sync_data()
        }
        fn contents(&self) -> io::Result<crate::storage::Contents> {
            unreachable!("a reader of the last segment never takes it whole")
        }
    }

    /// 400 records of 1 KiB, damage in every tenth from the sixth on, and garbage at the end:
    /// the scan through windows of `window` bytes, with the number of reads and the longest.
    fn damaged_often(window: u64) -> (SegmentScan, u64, u64, Vec<u8>, SegmentHeader) {
        let h = header(0);
        let records: Vec<(u64, usize)> = (1..=400).map(|s| (s, 1000)).collect();
        let mut bytes = segment(&h, &records);
        let data = SEGMENT_DATA_START as usize;
        for record in (5..400).step_by(10) {
            bytes[data + record * 1032 + 40 + record % 7] ^= 0x55;
        }
        bytes.extend_from_slice(&[0xee; 100]);
        let file = Reads {
            file: stored(&bytes),
            count: 0.into(),
            longest: 0.into(),
        };
        let pre = &bytes[..data];
        let mut visit = |_: &crate::report::RecordView<'_>| ControlFlow::Continue(());
        let s = scan_windowed(&file, bytes.len() as u64, pre, &h, window, &mut visit).unwrap();
        let (count, longest) = (file.count.into_inner(), file.longest.into_inner());
        (s, count, longest, bytes, h)
    }

    #[test]
    fn past_damage_no_read_is_longer_than_a_window_or_a_record() {
        // A reader used to read everything from the first damage to the end of the file at once.
        let window = 4096;
        let (s, _, longest, bytes, h) = damaged_often(window);
        assert_eq!((s.records, s.damage.len()), (360, 41));
        assert!(longest < window + 32, "a read of {longest} bytes");
        assert_same(&bytes, &h, usize::MAX);
    }

    #[test]
    fn damage_every_few_records_costs_no_read_of_its_own() {
        // Each damage is judged from the window already held: the reads are about one per
        // window (a window's last record, cut by its end, starts the next), not one or two per
        // damage, which made a segment damaged every few records cost a window's read for each.
        let window = 64 << 10;
        let (s, reads, _, bytes, _) = damaged_often(window);
        assert_eq!((s.records, s.damage.len()), (360, 41));
        let windows = (bytes.len() as u64).div_ceil(window);
        assert!(
            reads <= 2 * windows + 2,
            "{reads} reads for {windows} windows"
        );
    }

    #[test]
    fn places_past_the_listing_limit_condense_as_a_whole_file_scan_condenses_them() {
        let h = header(0);
        let records: Vec<(u64, usize)> = (1..=700).map(|s| (s, 20)).collect();
        let mut bytes = segment(&h, &records);
        for record in (1..700).step_by(2) {
            bytes[SEGMENT_DATA_START as usize + record * 52 + 40] ^= 0x10;
        }
        let (s, _) = whole(&bytes, &h, usize::MAX);
        assert_eq!(s.damage.len(), crate::report::DAMAGE_LISTED_PER_SEGMENT + 1);
        assert_same(&bytes, &h, usize::MAX);
    }

    #[test]
    fn a_length_past_any_segments_is_refused_and_the_limit_itself_is_not() {
        // The length is the caller's stat; the file itself may be short (it may have shrunk).
        let h = header(0);
        let file = stored(&segment(&h, &[(1, 10)]));
        let mut visit = |_: &crate::report::RecordView<'_>| ControlFlow::Continue(());
        for (len, refused) in [(SEGMENT_FILE_LIMIT, false), (SEGMENT_FILE_LIMIT + 1, true)] {
            let result = Held::new(&*file, len, WINDOW)
                .and_then(|mut held| read_clean(&mut held, START, &h, None, &mut visit));
            let said = result.map(|_| ()).map_err(|e| e.to_string());
            let more_than_any = said
                .as_ref()
                .is_err_and(|e| e.contains("more than any segment holds"));
            assert_eq!(more_than_any, refused, "{len}: {said:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn any_segment_with_any_damage_scans_the_same_windowed(
            lens in proptest::collection::vec(0usize..300, 0..12),
            skip in 0usize..14,
            edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..3),
            cut in any::<u16>(),
            tail_zeros in 0usize..600,
            flags in 0u32..4,
        ) {
            let h = header(flags & (SEGMENT_FLAG_COMPACTED | SEGMENT_FLAG_PREALLOCATED));
            let records: Vec<(u64, usize)> = lens
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u64 + 1 + u64::from(i >= skip), l))
                .collect();
            let mut bytes = segment(&h, &records);
            let data = SEGMENT_DATA_START as usize;
            let body = bytes.len() - data;
            for (at, x) in edits {
                if body > 0 {
                    bytes[data + usize::from(at) % body] ^= x;
                }
            }
            if body > 0 && cut % 3 == 0 {
                bytes.truncate(data + usize::from(cut) % body);
            }
            bytes.resize(bytes.len() + tail_zeros, 0);
            assert_same(&bytes, &h, usize::MAX);
            assert_same(&bytes, &h, 1 + lens.len() / 2);
        }
    }
}
