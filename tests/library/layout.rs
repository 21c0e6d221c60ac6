//! How a writer lays records out across segments (FORMAT.md §2, §6.2): records follow each
//! other from `SEGMENT_DATA_START` with no gap, a segment is sealed only when the next record
//! would not fit in `segment_size`, a record larger than a whole segment goes alone into one,
//! and the location each append reports is where a scan finds the record.

use crate::util::{dir, options, payload, scan};
use walctl::format::{SEGMENT_DATA_START, encoded_len};
use walctl::storage::MemStorage;
use walctl::{Appended, Compaction, Entry, Location, Log, Options, Verdict};

const SEGMENT_SIZE: u64 = 16 << 10;

/// Payload lengths that mix records of a few bytes, records that fill most of a segment's
/// 4 KiB of data space, and two larger than a whole segment.
fn lengths() -> Vec<usize> {
    let mut state = 0x2545_f491_u64;
    let mut out: Vec<usize> = (0..400)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            match state >> 61 {
                0 => 0,
                1..=5 => (state >> 20) as usize % 300,
                _ => (state >> 20) as usize % 3_000,
            }
        })
        .collect();
    out[0] = 9_000;
    out[57] = 9_000;
    out[58] = 9_000;
    out[200] = 5_000;
    out
}

/// Checks the layout rules over `appended` (in append order, from a new log) for records of
/// payload `lens`.
fn assert_packed(appended: &[Appended], lens: &[usize], segment_size: u64) {
    // Even a record larger than a segment goes into the new log's first, empty segment.
    assert_eq!(appended.first().map(|a| a.location.segment), Some(1));
    let at: Vec<Location> = appended.iter().map(|a| a.location).collect();
    assert_located(&at, lens, segment_size);
}

/// Checks the layout rules over records at `at`, in log order, of payload `lens`.
fn assert_located(at: &[Location], lens: &[usize], segment_size: u64) {
    assert_eq!(at.len(), lens.len());
    let mut end = SEGMENT_DATA_START;
    let mut in_segment = 0;
    for (i, (a, &len)) in at.iter().zip(lens).enumerate() {
        let size = encoded_len(0, len) as u64;
        assert_eq!(u64::from(a.length), size, "record {i}'s length");
        let a = *a;
        let segment = at[..i].last().map_or(a.segment, |p| p.segment);
        if a.segment != segment {
            assert_eq!(a.segment, segment + 1, "record {i} skipped a segment");
            assert!(
                end + size > segment_size,
                "record {i} ({size} bytes) started segment {} although it fit after byte {end}",
                a.segment
            );
            (end, in_segment) = (SEGMENT_DATA_START, 0);
        }
        assert_eq!(a.offset, end, "record {i} does not follow the one before");
        end += size;
        in_segment += 1;
        assert!(
            end <= segment_size || in_segment == 1,
            "record {i} ends at {end}, past the segment size, beside other records"
        );
    }
}

/// The log in `storage` is clean, and its records are exactly where the appends said.
fn assert_found_where_told(storage: &MemStorage, appended: &[Appended]) {
    let (report, records) = scan(storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
    let found: Vec<Location> = records.iter().map(|r| r.location).collect();
    let told: Vec<Location> = appended.iter().map(|a| a.location).collect();
    assert_eq!(found, told);
}

#[test]
fn a_segment_is_sealed_only_when_the_next_record_does_not_fit() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).expect("open");
    let lens = lengths();
    let appended: Vec<Appended> = lens
        .iter()
        .map(|&len| {
            let seq = log.next_seq();
            log.append(&payload(seq, len)).expect("append")
        })
        .collect();
    log.sync().expect("sync");
    assert_packed(&appended, &lens, SEGMENT_SIZE);
    let segments = appended.last().unwrap().location.segment;
    assert!(segments > 50, "the workload rotated only {segments} times");
    drop(log);
    assert_found_where_told(&storage, &appended);
}

#[test]
fn a_batch_packs_segments_like_single_appends() {
    let lens = lengths();
    let payloads: Vec<Vec<u8>> = lens.iter().map(|&len| vec![7; len]).collect();
    let entries: Vec<Entry<'_>> = payloads.iter().map(|p| Entry::data(p)).collect();
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).expect("open");
    let mut appended = Vec::new();
    for chunk in entries.chunks(37) {
        log.append_batch(chunk, None, &mut appended)
            .expect("append_batch");
    }
    assert_packed(&appended, &lens, SEGMENT_SIZE);
}

/// Payload length of a record that fills half of a segment's data space.
fn half_segment_payload() -> usize {
    (SEGMENT_SIZE - SEGMENT_DATA_START) as usize / 2 - encoded_len(0, 0)
}

#[test]
fn a_segment_may_end_exactly_at_the_segment_size() {
    // Two records that fill the 4 KiB after the preamble to the byte share one segment; a
    // third of one byte starts the next.
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).expect("open");
    let half = (SEGMENT_SIZE - SEGMENT_DATA_START) / 2;
    let len = half_segment_payload();
    let lens = [len, len, 1];
    let appended: Vec<Appended> = lens
        .iter()
        .map(|&len| log.append(&vec![1; len]).expect("append"))
        .collect();
    assert_packed(&appended, &lens, SEGMENT_SIZE);
    let ends: Vec<_> = appended
        .iter()
        .map(|a| {
            (
                a.location.segment,
                a.location.offset + u64::from(a.location.length),
            )
        })
        .collect();
    assert_eq!(
        ends,
        [
            (1, SEGMENT_DATA_START + half),
            (1, SEGMENT_SIZE),
            (2, SEGMENT_DATA_START + encoded_len(0, 1) as u64)
        ]
    );
}

#[test]
fn a_write_buffer_changes_no_location() {
    let lens = lengths();
    let storage = MemStorage::new();
    let log = Log::open(
        dir(),
        Options {
            write_buffer: 64 << 10,
            ..options(&storage)
        },
    )
    .expect("open");
    let appended: Vec<Appended> = lens
        .iter()
        .map(|&len| log.append(&vec![3; len]).expect("append"))
        .collect();
    log.sync().expect("sync");
    drop(log);
    assert_packed(&appended, &lens, SEGMENT_SIZE);
    assert_found_where_told(&storage, &appended);
}

/// Builds a log of records of payload `lens`, compacts away those below `before`, and returns
/// where the survivors are, checking that they are the right ones.
fn compacted(lens: &[usize], before: u64) -> Vec<Location> {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).expect("open");
    for &len in lens {
        let seq = log.next_seq();
        log.append(&payload(seq, len)).expect("append");
    }
    log.sync().expect("sync");
    drop(log);
    let plan = Compaction {
        before: Some(before),
        rewrite: true,
        ..Compaction::default()
    };
    walctl::compact(&dir(), &options(&storage), &plan).expect("compact");
    let (report, records) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
    assert_eq!(records.first().map(|r| r.seq), Some(before));
    records.iter().map(|r| r.location).collect()
}

#[test]
fn compaction_packs_the_new_segments_by_the_same_rule() {
    let lens = lengths();
    assert_located(&compacted(&lens, 120), &lens[119..], SEGMENT_SIZE);
}

#[test]
fn compaction_fills_a_segment_to_the_byte() {
    let lens = [10, half_segment_payload(), half_segment_payload(), 1];
    let at = compacted(&lens, 2);
    assert_located(&at, &lens[1..], SEGMENT_SIZE);
    assert_eq!(
        at[0].segment, at[1].segment,
        "two records that fit share a segment"
    );
    assert_eq!(at[1].offset + u64::from(at[1].length), SEGMENT_SIZE);
}
