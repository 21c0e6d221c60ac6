//! `scan_log_from` and `scan_log_newest`: a reader that starts at a sequence number, or wants
//! only the newest segments, reads only those, and reports damage in what it read, never in
//! what it skipped.

use crate::util::{self, dir, segments};
use std::ops::ControlFlow;
use walctl::storage::{MemStorage, Storage};
use walctl::{DamageKind, Report, Verdict};

fn scan_from(storage: &MemStorage, from: u64) -> (Report, Vec<u64>) {
    let mut seqs = Vec::new();
    let report = walctl::scan_log_from(storage, &dir(), from, &mut |r| {
        seqs.push(r.seq);
        ControlFlow::Continue(())
    })
    .expect("scan");
    (report, seqs)
}

/// [`scan_from`] of a log that must read clean from `from`.
fn scan_clean_from(storage: &MemStorage, from: u64) -> (Report, Vec<u64>) {
    let (report, seqs) = scan_from(storage, from);
    assert_eq!(
        report.verdict(),
        Verdict::Clean,
        "from {from}: {:?}",
        report.damage
    );
    (report, seqs)
}

/// The first sequence number of each segment that holds records, read by a whole scan.
fn segment_firsts(storage: &MemStorage) -> Vec<u64> {
    let (report, _) = util::scan(storage, &dir());
    report.segments.iter().filter_map(|s| s.first_seq).collect()
}

#[test]
fn a_scan_from_a_sequence_number_starts_at_the_segment_holding_it() {
    let storage = util::built(300, 500);
    let firsts = segment_firsts(&storage);
    assert!(firsts.len() >= 3, "the log rotated");
    for from in [
        0,
        1,
        2,
        firsts[1] - 1,
        firsts[1],
        firsts[1] + 1,
        299,
        300,
        301,
        u64::MAX,
    ] {
        let (report, seqs) = scan_clean_from(&storage, from);
        // The segment holding `from` (or the last one, past the end) is the first read.
        let start = firsts.iter().rposition(|&f| f <= from).unwrap_or(0);
        assert_eq!(seqs.first(), Some(&firsts[start]), "from {from}");
        assert_eq!(
            seqs,
            (firsts[start]..=300).collect::<Vec<_>>(),
            "from {from}"
        );
        assert_eq!(report.segments.len(), firsts.len() - start, "from {from}");
    }
}

#[test]
fn damage_is_reported_where_the_scan_reads_and_not_where_it_skips() {
    let storage = util::built(300, 500);
    let firsts = segment_firsts(&storage);
    let second = &segments(&storage)[1];
    let mut bytes = storage.file_bytes(second).unwrap();
    bytes[walctl::format::SEGMENT_DATA_START as usize + 40] ^= 0x55;
    storage.set_file_bytes(second, bytes);
    // From the second segment on, the damage is read and reported as a whole scan reports it.
    let (whole, _) = util::scan(&storage, &dir());
    let (report, _) = scan_from(&storage, firsts[1]);
    assert_eq!(report.verdict(), Verdict::Corrupt);
    assert_eq!(report.damage.len(), whole.damage.len());
    assert_eq!(report.damage[0].kind, DamageKind::Checksum);
    // From the third segment on, it lies in a skipped segment.
    let (report, seqs) = scan_from(&storage, firsts[2]);
    assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
    assert_eq!(seqs.first(), Some(&firsts[2]));
}

/// Starting past the first segment is no evidence that the log lost its head, and a compacted
/// log (whose first segment starts above 1) scans clean from anywhere.
#[test]
fn a_skipped_head_is_not_a_missing_head() {
    let storage = util::built(300, 500);
    let plan = walctl::Compaction {
        before: Some(100),
        ..walctl::Compaction::default()
    };
    walctl::compact(&dir(), &util::options(&storage), &plan).unwrap();
    let firsts = segment_firsts(&storage);
    for from in [1, 100, firsts[1], 300] {
        let (_, seqs) = scan_clean_from(&storage, from);
        assert_eq!(seqs.last(), Some(&300));
    }
    // A missing oldest segment is still found by a scan that starts there.
    let oldest = &segments(&storage)[0];
    storage.remove(oldest).unwrap();
    let (report, _) = scan_from(&storage, 1);
    assert_eq!(report.verdict(), Verdict::Corrupt, "{:?}", report.damage);
}

#[test]
fn a_scan_of_the_newest_segments_reads_those_and_counts_the_rest_as_skipped() {
    let storage = util::built(300, 500);
    let firsts = segment_firsts(&storage);
    let count = firsts.len();
    for want in [0, 1, 2, count - 1, count, count + 1, usize::MAX] {
        let mut seqs = Vec::new();
        let report = walctl::scan_log_newest(&storage, &dir(), want, &mut |r| {
            seqs.push(r.seq);
            ControlFlow::Continue(())
        })
        .unwrap();
        let read = want.clamp(1, count);
        assert_eq!(
            report.verdict(),
            Verdict::Clean,
            "{want}: {:?}",
            report.damage
        );
        assert_eq!(report.segments.len(), read, "{want}");
        assert_eq!(report.segments_skipped, (count - read) as u64, "{want}");
        assert_eq!(
            seqs,
            (firsts[count - read]..=300).collect::<Vec<_>>(),
            "{want}"
        );
    }
    let (whole, _) = util::scan(&storage, &dir());
    assert_eq!(whole.segments_skipped, 0);
}
