//! The fields of a scan's report beyond its verdict: where each damage is and how long, the
//! record before it, what cutting there would lose, a live writer's unfinished record, the
//! durable watermark and the byte count. `verify`, `stat` and repair's plan print them; the
//! mutation run of TESTING.md (family 10) found that no test pinned them down.

use crate::util::{self, crafted, crafted_segment, dir, edit, plain as options, scan, segments};
use walctl::format::{SEGMENT_DATA_START, WATERMARK_SLOT_OFFSETS, WATERMARK_SLOT_SIZE};
use walctl::storage::{CrashMode, LockKind, MemStorage, Storage};
use walctl::{DamageClass, DamageKind, InProgress, Log, Report, Verdict};

/// A log of several sealed segments (500-byte records, 16 KiB segments) whose last segment
/// ends in `unsynced` records no sync covered, after a process crash. `synced` records come
/// first; 0 means no sync at all (rotation still syncs every sealed segment).
pub(crate) fn rotated(synced: u64, unsynced: u64) -> MemStorage {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    util::append_n(&log, synced, 500);
    if synced > 0 {
        log.sync().unwrap();
    }
    util::append_n(&log, unsynced, 500);
    let crashed = storage.crash(CrashMode::KeepAll);
    drop(log);
    assert!(segments(&crashed).len() >= 3, "the log rotated");
    crashed
}

/// [`rotated`] with its last record cut short by 7 bytes: the segment and its new length.
pub(crate) fn torn_tail() -> (MemStorage, std::path::PathBuf, u64) {
    let storage = rotated(60, 3);
    let last = segments(&storage).pop().unwrap();
    edit(&storage, &last, |b| b.truncate(b.len() - 7));
    let len = storage.file_bytes(&last).unwrap().len() as u64;
    (storage, last, len)
}

fn kinds_and_classes(report: &Report) -> Vec<(DamageKind, DamageClass)> {
    report.damage.iter().map(|d| (d.kind, d.class)).collect()
}

#[test]
fn bytes_is_the_sum_of_the_segment_files() {
    let storage = rotated(60, 3);
    let (report, _) = scan(&storage, &dir());
    let total: u64 = segments(&storage)
        .iter()
        .map(|p| storage.file_bytes(p).unwrap().len() as u64)
        .sum();
    assert_eq!(report.bytes, total);
}

#[test]
fn a_missing_segment_is_reported_at_the_first_missing_number_after_the_last_good_record() {
    let storage = rotated(100, 0);
    let (before, records) = scan(&storage, &dir());
    let segs = segments(&storage);
    storage.delete_file(&segs[1]);
    storage.delete_file(&segs[2]);
    let (report, _) = scan(&storage, &dir());
    let d = &report.damage[0];
    assert_eq!((d.kind, d.segment), (DamageKind::MissingSegment, 2));
    assert_eq!(d.last_good_seq, before.segments[0].last_seq);
    let after = records.iter().filter(|r| r.location.segment > 3).count();
    assert_eq!(d.records_after, after as u64);
    assert!(d.detail.contains("segments 2 to 3"), "{}", d.detail);
}

#[test]
fn a_missing_head_and_a_torn_tail_are_each_classified() {
    // The missing head is reported first, in front of damage found earlier: the index of the
    // tail's first damage must move with it, or the wrong damage would be called torn.
    let (storage, _, _) = torn_tail();
    storage.delete_file(&segments(&storage)[0]);
    let (report, _) = scan(&storage, &dir());
    assert_eq!(
        kinds_and_classes(&report),
        [
            (DamageKind::MissingHead, DamageClass::Corrupt),
            (DamageKind::TruncatedRecord, DamageClass::Torn)
        ]
    );
}

#[test]
fn damage_to_the_first_record_names_the_record_before_the_log_as_the_last_good_one() {
    // A log starts after 1 once compaction has dropped its head.
    for first in [1, 50] {
        let storage = crafted(first, None, &[first, first + 1, first + 2]);
        let seg = segments(&storage).pop().unwrap();
        edit(&storage, &seg, |b| b[SEGMENT_DATA_START as usize + 32] ^= 1);
        let (report, _) = scan(&storage, &dir());
        let d = &report.damage[0];
        assert_eq!((d.segment, d.offset), (1, SEGMENT_DATA_START), "{first}");
        assert_eq!(d.last_good_seq, (first > 1).then(|| first - 1), "{first}");
    }
}

#[test]
fn damage_in_the_preamble_is_located_to_the_byte_or_the_slot() {
    let storage = rotated(100, 0);
    let first = segments(&storage).remove(0);
    edit(&storage, &first, |b| b[200] = 0x5a);
    let (report, _) = scan(&storage, &dir());
    let d = &report.damage[0];
    assert_eq!(
        (d.kind, d.segment, d.offset, d.length),
        (DamageKind::BadSegmentHeader, 1, 200, 1)
    );

    let storage = rotated(100, 0);
    let first = segments(&storage).remove(0);
    let slot = WATERMARK_SLOT_OFFSETS[0];
    edit(&storage, &first, |b| b[slot as usize + 3] ^= 0x40);
    let (report, _) = scan(&storage, &dir());
    let d = &report.damage[0];
    assert_eq!(
        (d.kind, d.segment, d.offset, d.length),
        (
            DamageKind::BadWatermark,
            1,
            slot,
            WATERMARK_SLOT_SIZE as u64
        )
    );
}

#[test]
fn a_segment_cut_inside_its_preamble_is_a_bad_header_over_the_whole_file() {
    let storage = rotated(100, 0);
    let first = segments(&storage).remove(0);
    edit(&storage, &first, |b| b.truncate(5000));
    let (report, _) = scan(&storage, &dir());
    let d = &report.damage[0];
    assert_eq!(
        (d.kind, d.segment, d.offset, d.length),
        (DamageKind::BadSegmentHeader, 1, 0, 5000)
    );
    assert_eq!(report.verdict(), Verdict::Corrupt);
}

/// What an operator reads about a segment whose preamble is unusable: cut inside its header,
/// cut after it (the header is read, the slots are not there), not a walctl segment, damaged.
#[test]
fn a_bad_preamble_is_described_in_words() {
    use walctl::format::SEGMENT_HEADER_SIZE;
    let header = SEGMENT_HEADER_SIZE;
    type Case<'a> = (&'a str, &'a dyn Fn(&mut Vec<u8>), &'a str);
    let cases: [Case; 5] = [
        (
            "cut inside the header",
            &|b| b.truncate(header - 1),
            "shorter than its 64-byte header",
        ),
        (
            "cut right after the header",
            &|b| b.truncate(header),
            "shorter than its preamble",
        ),
        (
            "cut inside the slots",
            &|b| b.truncate(5000),
            "shorter than its preamble",
        ),
        (
            "another magic",
            &|b| b[0] ^= 0xff,
            "does not start with walctl's magic bytes",
        ),
        (
            "a header field flipped",
            &|b| b[30] ^= 1,
            "the segment header fails its checksum",
        ),
    ];
    for (case, damage, detail) in cases {
        let storage = rotated(100, 0);
        edit(&storage, &segments(&storage)[0], damage);
        let (report, _) = scan(&storage, &dir());
        let d = &report.damage[0];
        assert_eq!(
            (d.kind, d.segment),
            (DamageKind::BadSegmentHeader, 1),
            "{case}"
        );
        assert!(d.detail.contains(detail), "{case}: {}", d.detail);
        assert!(
            !d.detail.contains('('),
            "{case}: no Rust names: {}",
            d.detail
        );
    }
}

/// A corrupt log that also ends in a torn tail: the refusal names the corruption, which is
/// what stops the repair, not the tail it would otherwise cut.
#[test]
fn a_refusal_names_the_corruption_before_a_torn_tail() {
    let (storage, _, _) = torn_tail();
    let first = segments(&storage).remove(0);
    edit(&storage, &first, |b| {
        b[SEGMENT_DATA_START as usize + 100] ^= 1
    });
    let (report, _) = scan(&storage, &dir());
    assert_eq!(
        kinds_and_classes(&report),
        [
            (DamageKind::Checksum, DamageClass::Corrupt),
            (DamageKind::TruncatedRecord, DamageClass::Torn)
        ]
    );
    let summary = report.first_damage_summary();
    assert!(
        summary.starts_with("checksum in segment 00000000000000000001.wal"),
        "{summary}"
    );
    let refused = walctl::truncate_partial(&dir(), &options(&storage), true).unwrap_err();
    assert!(refused.to_string().contains(&summary), "{refused}");
}

#[test]
fn a_live_writers_unfinished_record_is_located_exactly() {
    let (storage, _, len) = torn_tail();
    let _writer = storage
        .try_lock(&dir().join("LOCK"), LockKind::Exclusive)
        .unwrap();
    let (report, _) = scan(&storage, &dir());
    let seg = report.segments.last().unwrap();
    assert_eq!(
        report.in_progress,
        Some(InProgress {
            segment: seg.segment,
            offset: seg.valid_len,
            length: len - seg.valid_len,
        })
    );
    assert!(len - seg.valid_len > 7, "a whole record minus 7 bytes");
}

#[test]
fn the_durable_watermark_is_the_last_sealed_record_until_the_last_segment_is_synced() {
    let storage = rotated(0, 100);
    let (report, _) = scan(&storage, &dir());
    let [.., sealed, last] = report.segments.as_slice() else {
        panic!("the log rotated");
    };
    assert!(sealed.sealed && !last.sealed);
    assert_eq!(sealed.durable_seq, sealed.last_seq);
    assert!(
        last.durable_seq < sealed.last_seq,
        "no sync reached the last segment: {:?}",
        last.durable_seq
    );
    assert_eq!(report.durable_seq, sealed.last_seq);
}

#[test]
fn a_log_no_sync_ever_reached_has_no_durable_watermark() {
    let storage = crafted(1, None, &[1, 2, 3]);
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean);
    assert_eq!(report.durable_seq, None);
    assert_eq!(report.segments[0].durable_seq, None);
}

#[test]
fn an_empty_sealed_segment_proves_durable_everything_before_its_first_number() {
    let storage = MemStorage::new();
    storage.create_dir_all(&dir()).unwrap();
    storage.set_file_bytes(
        &dir().join("00000000000000000001.wal"),
        crafted_segment(1, 10, None, &[]),
    );
    storage.set_file_bytes(
        &dir().join("00000000000000000002.wal"),
        crafted_segment(2, 10, None, &[10, 11]),
    );
    let (report, records) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
    assert_eq!(records.len(), 2);
    assert_eq!(report.segments[0].durable_seq, Some(9));
}

#[test]
fn a_sealed_segments_watermark_must_name_its_last_record() {
    // Sealing writes the last record's number into the slot (FORMAT.md §2.2): a sealed slot
    // that says less, more or nothing is damage, and which one tells the operator whether
    // acknowledged records are gone (more) or only the proof is wrong (less, none).
    let cases = [
        (Some(3), None),
        (Some(2), Some(DamageKind::BadWatermark)),
        (Some(4), Some(DamageKind::MissingAcknowledged)),
        (None, Some(DamageKind::BadWatermark)),
    ];
    for (watermark, expected) in cases {
        let storage = MemStorage::new();
        storage.create_dir_all(&dir()).unwrap();
        storage.set_file_bytes(
            &dir().join("00000000000000000001.wal"),
            crafted_segment(1, 1, watermark, &[1, 2, 3]),
        );
        storage.set_file_bytes(
            &dir().join("00000000000000000002.wal"),
            util::crafted_later_segment(2, (4, 1), None, &[4]),
        );
        let (report, records) = scan(&storage, &dir());
        assert_eq!(records.len(), 4, "{watermark:?}: every record is delivered");
        let found: Vec<_> = report
            .damage
            .iter()
            .map(|d| (d.kind, d.segment, d.offset))
            .collect();
        let want: Vec<_> = expected
            .map(|kind| (kind, 1, WATERMARK_SLOT_OFFSETS[0]))
            .into_iter()
            .collect();
        assert_eq!(found, want, "{watermark:?}");
    }
}

/// A synced log of keyed records and tombstones (no plain data record), and its records.
fn keyed_log() -> (MemStorage, Vec<walctl::Record>) {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    for i in 0..6u8 {
        let key = [b'k', i];
        let entry = if i % 2 == 0 {
            walctl::Entry::keyed(&key, b"value of some length")
        } else {
            walctl::Entry::tombstone(&key)
        };
        log.append_entry(&entry).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let (_, records) = scan(&storage, &dir());
    (storage, records)
}

#[test]
fn damage_ends_where_the_next_keyed_record_or_tombstone_starts() {
    // The search for the next valid record after damage skips bytes whose kind and flags no
    // record can have; keys set a flag, so keyed records and tombstones must pass that filter.
    for hit in [1, 2] {
        let (storage, records) = keyed_log();
        let seg = segments(&storage).pop().unwrap();
        let damaged = records[hit].location;
        let last_byte = damaged.offset + u64::from(damaged.length) - 1;
        edit(&storage, &seg, |b| b[last_byte as usize] ^= 1);
        let (report, after) = scan(&storage, &dir());
        let d = &report.damage[0];
        assert_eq!(
            (d.kind, d.offset, d.length),
            (
                DamageKind::Checksum,
                damaged.offset,
                u64::from(damaged.length)
            ),
            "record {hit}"
        );
        assert_eq!(after.len(), records.len() - 1, "record {hit}");
        assert!(
            d.detail.contains(" bytes, followed by valid records"),
            "{}",
            d.detail
        );
    }
}

#[test]
fn a_zeroed_record_header_before_its_body_is_a_checksum_failure_not_zero_fill() {
    // Zero fill is a region of zeros only; zeros where a header should be, with the record's
    // bytes still after them, are damage of another kind, and the detail says how long.
    let storage = util::built(6, 100);
    let (_, records) = scan(&storage, &dir());
    let seg = segments(&storage).pop().unwrap();
    let third = records[2].location;
    let at = third.offset as usize;
    edit(&storage, &seg, |b| b[at..at + 32].fill(0));
    let (report, _) = scan(&storage, &dir());
    let d = &report.damage[0];
    assert_eq!(
        (d.kind, d.offset, d.length),
        (DamageKind::Checksum, third.offset, u64::from(third.length))
    );
    let scanned = format!(
        "zero bytes where a record should start; {} bytes, followed by valid records;",
        third.length
    );
    assert!(d.detail.starts_with(&scanned), "{}", d.detail);
}

/// Segment `number` of log 77 holding `records` (sequence number, timestamp), sealed as far as
/// its watermark says.
fn stamped_segment(number: u64, records: &[(u64, u64)]) -> Vec<u8> {
    use walctl::format::{self, RecordKind, RecordMeta};
    let seqs: Vec<u64> = records.iter().map(|r| r.0).collect();
    let last = seqs.last().copied();
    let mut bytes = util::crafted_segment(number, seqs[0], last, &[]);
    for &(seq, timestamp_nanos) in records {
        let meta = RecordMeta {
            seq,
            timestamp_nanos,
            kind: RecordKind::Data,
        };
        format::encode_record(&mut bytes, &format::binding(77, number), meta, None, b"x");
    }
    bytes
}

/// The report carries the records' time range, of the log and of each segment: the first and
/// last in log order, and the extremes when a writer's clock stepped back (`walctl stat`).
#[test]
fn the_time_range_follows_log_order_and_keeps_the_extremes_when_a_clock_steps_back() {
    let storage = MemStorage::new();
    storage.create_dir_all(&dir()).unwrap();
    let first = stamped_segment(1, &[(1, 500), (2, 300), (3, 900)]);
    let second = stamped_segment(2, &[(4, 200), (5, 700)]);
    for (n, bytes) in [(1, first), (2, second)] {
        storage.set_file_bytes(&dir().join(walctl::segment::segment_name(n)), bytes);
    }
    let (report, records) = scan(&storage, &dir());
    assert_eq!((report.verdict(), records.len()), (Verdict::Clean, 5));
    let range = |first, last, min, max| {
        Some(walctl::TimeRange {
            first,
            last,
            min,
            max,
        })
    };
    assert_eq!(report.times, range(500, 700, 200, 900));
    assert_eq!(report.segments[0].times, range(500, 900, 300, 900));
    assert_eq!(report.segments[1].times, range(200, 700, 200, 700));
    let empty = MemStorage::new();
    Log::open(dir(), options(&empty)).unwrap();
    assert_eq!(scan(&empty, &dir()).0.times, None, "no record, no range");
}
