//! The decision table (FORMAT.md §8) on preallocated segments, whose zeros written ahead of
//! the data are the end of the data, not damage, while a torn record before them is still a
//! torn tail and damage among acknowledged records is still corruption.

use crate::decision_table::last_segment;
use crate::util::{self, dir, edit, scan};
use walctl::storage::MemStorage;
use walctl::{Log, Verdict};

/// A preallocated log in memory whose last records were never synced.
fn preallocated_with_unsynced_tail() -> (MemStorage, std::path::PathBuf, Vec<walctl::Record>) {
    let storage = MemStorage::new();
    let log = Log::open(dir(), util::options(&storage)).unwrap();
    util::append_n(&log, 5, 100);
    log.sync().unwrap();
    util::append_n(&log, 3, 100);
    let crashed = storage.crash(walctl::storage::CrashMode::KeepAll);
    drop(log);
    let last = last_segment(&crashed);
    let records = scan(&crashed, &dir()).1;
    (crashed, last, records)
}

#[test]
fn preallocated_zeros_after_the_data_are_the_end_not_damage() {
    let (storage, last, records) = preallocated_with_unsynced_tail();
    let bytes = storage.file_bytes(&last).unwrap();
    let end = records.last().unwrap().location;
    assert!(
        bytes.len() as u64 > end.offset + u64::from(end.length) + 1000,
        "zeros written ahead"
    );
    assert_eq!(scan(&storage, &dir()).0.verdict(), Verdict::Clean);
    let log = Log::open(dir(), util::options(&storage)).unwrap();
    assert!(log.open_report().cut.is_none());
    assert_eq!(
        log.append(b"next").unwrap().location.offset,
        end.offset + u64::from(end.length)
    );
}

#[test]
fn preallocated_segment_with_a_torn_record_before_the_zeros_is_a_torn_tail() {
    let (storage, last, records) = preallocated_with_unsynced_tail();
    let victim = records[6].location;
    edit(&storage, &last, |b| {
        b[victim.offset as usize + 20..][..30].fill(0x5a)
    });
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::TornTail, "{:?}", report.damage);
    let log = Log::open(dir(), util::options(&storage)).unwrap();
    assert_eq!(
        log.open_report().cut.as_ref().unwrap().offset,
        victim.offset
    );
    assert_eq!(log.next_seq(), 7);
}

#[test]
fn preallocated_segment_damaged_below_the_watermark_is_corruption() {
    let (storage, last, records) = preallocated_with_unsynced_tail();
    let victim = records[2].location;
    edit(&storage, &last, |b| b[victim.offset as usize + 35] ^= 1);
    assert_eq!(scan(&storage, &dir()).0.verdict(), Verdict::Corrupt);
}
