//! A report stays bounded on a log damaged every few records: each segment lists its first
//! `DAMAGE_LISTED_PER_SEGMENT` places, the log its first `DAMAGE_LISTED_PER_LOG` entries, and
//! the rest of a segment's places become one `many_places` entry that still counts them, still
//! says what a cut would lose, and still decides the verdict; salvage still names every lost
//! sequence number.

use crate::util::{crafted_segment_flagged, dir, plain, scan};
use std::collections::BTreeSet;
use std::path::Path;
use walctl::storage::{MemStorage, Storage as _};
use walctl::{
    DAMAGE_LISTED_PER_LOG, DAMAGE_LISTED_PER_SEGMENT, DamageClass, DamageKind, LOST_LISTED, Report,
    Verdict,
};

/// Bytes of a crafted record: the header and a one-byte payload.
const RECORD: usize = 33;

/// A log of `segments` crafted segments of `per` one-byte records each, sequence numbers from
/// 1, with the payload of every record in `damaged` flipped (a checksum place each). Sealed
/// segments are synced to their last record, the last one to `watermark`.
fn log(segments: u64, per: u64, damaged: impl Fn(u64) -> bool, watermark: u64) -> MemStorage {
    let storage = MemStorage::new();
    for n in 1..=segments {
        let first = (n - 1) * per + 1;
        let seqs: Vec<u64> = (first..first + per).collect();
        let mark = if n == segments {
            watermark
        } else {
            first + per - 1
        };
        put_segment(&storage, (n, 1), 0, mark, &seqs, &damaged);
    }
    storage
}

/// Writes segment `n` of the log in `storage`, whose first sequence number is `log_first`:
/// records `seqs` (the first is the segment's first sequence number), those in `damaged` with a
/// flipped payload.
fn put_segment(
    storage: &MemStorage,
    (n, log_first): (u64, u64),
    flags: u32,
    watermark: u64,
    seqs: &[u64],
    damaged: impl Fn(u64) -> bool,
) {
    storage.create_dir_all(&dir()).unwrap();
    let starts = (seqs[0], log_first);
    let mut bytes = crafted_segment_flagged(n, starts, flags, Some(watermark), seqs);
    let data = bytes.len() - seqs.len() * RECORD;
    for (i, &seq) in seqs.iter().enumerate() {
        if damaged(seq) {
            bytes[data + i * RECORD + 32] ^= 1;
        }
    }
    let name = walctl::segment::segment_name(n);
    storage.set_file_bytes(&dir().join(name), bytes);
}

fn places_in(report: &Report, segment: u64) -> u64 {
    (report.damage.iter())
        .filter(|d| d.segment == segment)
        .map(|d| d.places)
        .sum()
}

#[test]
fn a_segment_damaged_in_every_other_record_lists_its_first_places_and_condenses_the_rest() {
    let storage = log(2, 1000, |seq| seq % 2 == 1, 2000);
    let (report, records) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Corrupt);
    assert_eq!(records.len(), 1000, "every valid record is still delivered");
    assert_eq!(report.damage.len(), 2 * (DAMAGE_LISTED_PER_SEGMENT + 1));
    assert_eq!(report.damaged_places(), 1000);
    let condensed = &report.damage[DAMAGE_LISTED_PER_SEGMENT];
    let rest = 500 - DAMAGE_LISTED_PER_SEGMENT as u64;
    let first_seq = 2 * DAMAGE_LISTED_PER_SEGMENT as u64 + 1;
    assert_eq!(condensed.kind, DamageKind::ManyPlaces);
    assert_eq!(
        (
            condensed.segment,
            condensed.places,
            condensed.records_within
        ),
        (1, rest, rest - 1)
    );
    assert_eq!(condensed.last_good_seq, Some(first_seq - 1));
    assert_eq!(condensed.records_after, 1000 - first_seq / 2);
    assert_eq!(condensed.length, rest * 2 * RECORD as u64 - RECORD as u64);
    assert!(
        condensed.detail.starts_with(&format!(
            "{rest} damaged places (checksum) with {} valid records among them",
            rest - 1
        )),
        "{}",
        condensed.detail
    );
    let listed = &report.damage[DAMAGE_LISTED_PER_SEGMENT - 1];
    assert_eq!((listed.kind, listed.places), (DamageKind::Checksum, 1));
}

#[test]
fn past_the_logs_listing_limit_each_further_segment_is_one_entry_and_every_place_is_counted() {
    let (segments, per) = (20, 600);
    let storage = log(segments, per, |seq| seq % 2 == 1, segments * per);
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Corrupt);
    let full = DAMAGE_LISTED_PER_SEGMENT + 1;
    let whole_segments = DAMAGE_LISTED_PER_LOG / full;
    assert!(
        whole_segments + 1 < segments as usize,
        "the test reaches the limit"
    );
    // Listed in full until the limit, then the segment that reaches it is cut short, then one
    // entry per segment.
    let expected = DAMAGE_LISTED_PER_LOG + 1 + (segments as usize - whole_segments - 1);
    assert_eq!(report.damage.len(), expected);
    for n in 1..=segments {
        assert_eq!(places_in(&report, n), per / 2, "segment {n}");
    }
    let last = report.damage.last().unwrap();
    assert_eq!(
        (last.kind, last.segment, last.offset),
        (
            DamageKind::ManyPlaces,
            segments,
            report.segments[0].valid_len
        )
    );
    assert_eq!(last.records_after, per / 2);
}

#[test]
fn a_torn_tail_of_many_places_is_torn_throughout_and_cut_whole() {
    // Synced through 20; after it, power loss left every other record of the unsynced tail
    // damaged: nothing acknowledged is lost, however many places there are.
    let storage = log(1, 1000, |seq| seq > 20 && seq % 2 == 1, 20);
    let (report, _) = scan(&storage, &dir());
    assert_eq!(
        report.verdict(),
        Verdict::TornTail,
        "{}",
        report.first_damage_summary()
    );
    assert!(report.damage.iter().all(|d| d.class == DamageClass::Torn));
    assert_eq!(report.damage.last().unwrap().kind, DamageKind::ManyPlaces);
    assert_eq!(report.damaged_places(), 490);
    let options = plain(&storage);
    walctl::truncate_partial(&dir(), &options, false).unwrap();
    let (after, records) = scan(&storage, &dir());
    assert_eq!(after.verdict(), Verdict::Clean);
    assert_eq!(records.len(), 20);
}

/// Salvages the log into `/salvaged`; returns the sequence numbers copied and those named lost,
/// every run as handed to the `lost` callback, of which the report lists the first.
fn salvaged(storage: &MemStorage) -> (Vec<u64>, BTreeSet<u64>) {
    let mut ranges = Vec::new();
    let report = walctl::salvage_observed(
        &dir(),
        Path::new("/salvaged"),
        &plain(storage),
        false,
        &mut |_, _| {},
        &mut |r| ranges.push(*r),
    )
    .unwrap();
    assert_eq!(report.lost_ranges, ranges.len() as u64);
    let listed = ranges.len().min(LOST_LISTED);
    assert!(
        report.lost == ranges[..listed],
        "the report lists the first runs handed over"
    );
    let (_, records) = scan(storage, Path::new("/salvaged"));
    let mut lost = BTreeSet::new();
    for range in &ranges {
        let (Some(first), Some(last)) = (range.first, range.last) else {
            panic!("{range:?}: every damaged record lies between valid ones");
        };
        assert!(first <= last, "{range:?} names no number");
        assert!(
            (first..=last).all(|s| lost.insert(s)),
            "{range:?} named twice"
        );
    }
    (records.iter().map(|r| r.seq).collect(), lost)
}

/// Fails naming where the copied sequence numbers first differ from the expected ones.
fn assert_copied(copied: &[u64], expected: &[u64]) {
    let at = copied.iter().zip(expected).position(|(a, b)| a != b);
    assert!(
        copied == expected,
        "{} copied, {} expected; first difference at index {at:?}",
        copied.len(),
        expected.len()
    );
}

/// Fails naming the first few numbers one set has and the other lacks (not all of them: the
/// sets hold hundreds).
fn assert_same_numbers(lost: &BTreeSet<u64>, expected: &BTreeSet<u64>) {
    let missing: Vec<_> = expected.difference(lost).take(10).collect();
    let extra: Vec<_> = lost.difference(expected).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not named lost: {missing:?}; named lost but copied or never there: {extra:?}"
    );
}

#[test]
fn salvage_names_every_sequence_number_lost_inside_a_condensed_entry() {
    // Every other record damaged, then every third (valid records that follow each other lose
    // nothing between them), and the last two records too: acknowledged, so their loss runs to
    // the watermark.
    for every in [2, 3] {
        let damaged = |seq: u64| seq % every == 1 && seq != 1 || seq >= 1999;
        let storage = log(2, 1000, damaged, 2000);
        let (copied, lost) = salvaged(&storage);
        assert_copied(
            &copied,
            &(1..=2000).filter(|&s| !damaged(s)).collect::<Vec<_>>(),
        );
        let expected: BTreeSet<u64> = (1..=2000).filter(|&s| damaged(s)).collect();
        assert_same_numbers(&lost, &expected);
    }
}

#[test]
fn salvage_lists_its_first_lost_runs_and_hands_every_one_over_in_log_order() {
    // 3 × 3000 records, every other one damaged: 4499 runs of one record, past the list.
    let damaged = |seq: u64| seq.is_multiple_of(2);
    let storage = log(3, 3000, damaged, 9000);
    let (copied, lost) = salvaged(&storage);
    assert_eq!(copied.len(), 4500);
    assert_same_numbers(&lost, &(2..=9000).step_by(2).collect());
    let report = walctl::salvage(&dir(), Path::new("/again"), &plain(&storage)).unwrap();
    assert_eq!(report.lost_ranges, 4500);
    assert_eq!(report.lost.len(), LOST_LISTED);
    let firsts: Vec<u64> = report.lost.iter().map(|r| r.first.unwrap()).collect();
    assert_eq!(
        firsts,
        (2..).step_by(2).take(LOST_LISTED).collect::<Vec<_>>()
    );
}

#[test]
fn in_a_compacted_segment_only_damage_loses_numbers_not_the_holes_compaction_left() {
    // Compaction kept every third sequence number; of those, two in five are damaged, so some
    // valid records follow each other directly across a hole, and some have damage between.
    // The next segment, not compacted, starts past a hole too (legal after a compacted one).
    let seqs: Vec<u64> = (1..=900).map(|i| 3 * i).collect();
    let damaged = |seq: u64| seq < 2700 && matches!((seq / 3) % 5, 2 | 4);
    let storage = MemStorage::new();
    let compacted = walctl::format::SEGMENT_FLAG_COMPACTED;
    put_segment(&storage, (1, 3), compacted, 2700, &seqs, damaged);
    let next: Vec<u64> = (5000..5010).collect();
    put_segment(&storage, (2, 3), 0, 5009, &next, |_| false);
    let (copied, lost) = salvaged(&storage);
    let valid: Vec<u64> = seqs
        .iter()
        .chain(&next)
        .copied()
        .filter(|&s| !damaged(s))
        .collect();
    assert_copied(&copied, &valid);
    // Between two valid records with damage between them, every number is lost; between two
    // that follow each other, none is.
    let mut expected = BTreeSet::new();
    for pair in valid.windows(2) {
        if seqs.iter().any(|&s| s > pair[0] && s < pair[1]) {
            expected.extend(pair[0] + 1..pair[1]);
        }
    }
    assert_same_numbers(&lost, &expected);
}

#[test]
fn salvage_of_a_condensed_torn_tail_leaves_the_count_past_the_last_record_unknown() {
    // Synced through 20; the unsynced tail lost every other record and its last two. What lay
    // after record 998 was never acknowledged, so how many records it held is unknown.
    let storage = log(1, 1000, |seq| seq > 20 && seq % 2 == 1 || seq == 1000, 20);
    let report = walctl::salvage(&dir(), Path::new("/salvaged"), &plain(&storage)).unwrap();
    assert_eq!(report.source.verdict(), Verdict::TornTail);
    let (last, known) = report.lost.split_last().unwrap();
    assert_eq!((last.first, last.last), (Some(999), None));
    let named: Vec<u64> = known.iter().map(|r| r.first.unwrap()).collect();
    assert!(known.iter().all(|r| r.first == r.last), "one record each");
    assert_eq!(named, (21..998).step_by(2).collect::<Vec<_>>());
}
