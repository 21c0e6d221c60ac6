//! Open's resume path (FORMAT.md §6.3, format version 2): a writer's open reads only what
//! follows the durable end its watermark slot records, and falls back to scanning the whole
//! last segment whenever that tail is not a clean run of records.

use crate::util::{append_n, dir, payload, scan};
use std::sync::Arc;
use walctl::format::{SEGMENT_DATA_START, WATERMARK_SLOT_OFFSETS, WatermarkSlot};
use walctl::storage::{CrashMode, MemStorage};
use walctl::{Log, Options, Verdict};

const LOG_ID_AT: usize = 16;

/// The log id in a segment's header.
fn log_id_of(segment: &[u8]) -> u64 {
    u64::from_le_bytes(segment[LOG_ID_AT..LOG_ID_AT + 8].try_into().unwrap())
}

/// One large segment without preallocation, so file lengths are exact.
fn options(storage: &MemStorage) -> Options {
    Options {
        segment_size: 8 << 20,
        preallocate: 0,
        ..Options::with_storage(Arc::new(storage.clone()))
    }
}

fn segment_len(storage: &MemStorage) -> u64 {
    storage.file_bytes(&seg1()).unwrap().len() as u64
}

fn seg1() -> std::path::PathBuf {
    dir().join("00000000000000000001.wal")
}

/// Replaces segment 1's newest watermark slot with one saying `durable_seq` and
/// `durable_end` under a valid CRC, as only a crafted or buggy writer would; returns the
/// segment's length.
fn forge_slot(storage: &MemStorage, durable_seq: u64, durable_end: impl Fn(u64) -> u64) -> u64 {
    let mut bytes = storage.file_bytes(&seg1()).unwrap();
    let len = bytes.len() as u64;
    let log_id = log_id_of(&bytes);
    let slot = WatermarkSlot {
        durable_seq,
        generation: 99,
        durable_end: durable_end(len),
    }
    .encode(log_id, 1);
    let at = WATERMARK_SLOT_OFFSETS[1] as usize;
    bytes[at..at + 32].copy_from_slice(&slot);
    storage.set_file_bytes(&seg1(), bytes);
    len
}

/// A log in memory with `count` records of 200 bytes, synced; the writer still open.
fn synced(count: u64) -> (MemStorage, Log) {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    append_n(&log, count, 200);
    log.sync().unwrap();
    (storage, log)
}

#[test]
fn open_after_a_synced_close_reads_nothing_of_a_full_segment() {
    let (storage, log) = synced(5000);
    drop(log);
    let log = Log::open(dir(), options(&storage)).unwrap();
    assert_eq!(log.open_report().tail_scanned, 0);
    assert_eq!(log.next_seq(), 5001);
    assert!(segment_len(&storage) > 1 << 20);
}

#[test]
fn open_reads_only_the_unsynced_tail_and_keeps_it() {
    let (storage, log) = synced(3000);
    let synced_len = segment_len(&storage);
    append_n(&log, 7, 100);
    // A process crash: the page cache keeps the unsynced records.
    let crashed = storage.crash(CrashMode::KeepAll);
    drop(log);
    let log = Log::open(dir(), options(&crashed)).unwrap();
    assert_eq!(
        log.open_report().tail_scanned,
        segment_len(&crashed) - synced_len
    );
    assert_eq!(log.next_seq(), 3008);
    drop(log);
    // Open proved the tail durable (a new slot), so the next open reads nothing.
    let log = Log::open(dir(), options(&crashed)).unwrap();
    assert_eq!(log.open_report().tail_scanned, 0);
    let records = log.records().unwrap();
    assert_eq!(records.len(), 3007);
    assert_eq!(records[3006].payload, payload(3007, 100));
}

#[test]
fn a_torn_tail_after_the_durable_end_is_cut_by_the_whole_segment_scan() {
    let (storage, log) = synced(100);
    append_n(&log, 3, 200);
    let crashed = storage.crash(CrashMode::KeepAll);
    drop(log);
    let mut bytes = crashed.file_bytes(&seg1()).unwrap();
    bytes.truncate(bytes.len() - 50); // the last record cut short
    crashed.set_file_bytes(&seg1(), bytes.clone());
    let log = Log::open(dir(), options(&crashed)).unwrap();
    let report = log.open_report();
    assert_eq!(report.tail_scanned, bytes.len() as u64 - SEGMENT_DATA_START);
    let cut = report.cut.as_ref().expect("the torn record was cut");
    assert_eq!(cut.length, 232 - 50);
    assert_eq!(log.next_seq(), 103);
}

#[test]
fn a_durable_end_that_does_not_fit_the_records_falls_back_and_loses_nothing() {
    for wrong in [-1i64, 1, -232, 232, 100_000] {
        let (storage, log) = synced(50);
        drop(log);
        let len = forge_slot(&storage, 50, |end| end.checked_add_signed(wrong).unwrap());
        let log = Log::open(dir(), options(&storage)).unwrap();
        let report = log.open_report();
        assert_eq!(
            report.tail_scanned,
            len - SEGMENT_DATA_START,
            "wrong by {wrong}: the whole segment was scanned"
        );
        assert!(report.cut.is_none(), "wrong by {wrong}: nothing cut");
        assert_eq!(log.next_seq(), 51, "wrong by {wrong}");
        drop(log);
        let (verdict, records) = scan(&storage, &dir());
        assert_eq!(
            (verdict.verdict(), records.len()),
            (Verdict::Clean, 50),
            "wrong by {wrong}"
        );
    }
}

#[test]
fn damage_before_the_durable_end_is_left_to_verify_and_never_cut() {
    let (storage, log) = synced(50);
    drop(log);
    let mut bytes = storage.file_bytes(&seg1()).unwrap();
    let inside = SEGMENT_DATA_START as usize + 10 * 232 + 40; // a payload byte of record 11
    bytes[inside] ^= 1;
    storage.set_file_bytes(&seg1(), bytes.clone());
    // Open does not read acknowledged records again: it appends after them.
    let log = Log::open(dir(), options(&storage)).unwrap();
    assert_eq!(log.open_report().tail_scanned, 0);
    assert!(log.open_report().cut.is_none());
    log.append(b"after").unwrap();
    drop(log);
    let (report, records) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Corrupt);
    assert_eq!(report.damage[0].offset, SEGMENT_DATA_START + 10 * 232);
    assert_eq!(records.len(), 50, "every other record is still delivered");
    let mut now = storage.file_bytes(&seg1()).unwrap();
    now.truncate(bytes.len());
    assert!(now == bytes, "nothing before the end was rewritten");
}

#[test]
fn a_slot_claiming_impossible_sequence_numbers_is_not_trusted() {
    // Found by fuzzing: a valid slot saying 2^64 - 1 was durable made open compute the next
    // sequence number as 2^64 - 1 + 1. A slot claiming more records than its bytes can hold is
    // as impossible. Both now send open to the whole-segment scan, which refuses the log as
    // corrupt (the watermark is above its last record) instead of panicking or trusting it.
    for claimed in [u64::MAX, u64::MAX - 1, 1_000_000] {
        let (storage, log) = synced(50);
        drop(log);
        forge_slot(&storage, claimed, |end| end);
        let err = Log::open(dir(), options(&storage)).expect_err("a watermark above the log");
        assert!(
            matches!(err.kind(), walctl::ErrorKind::Corrupt { .. }),
            "claimed {claimed}: {err}"
        );
    }
}

#[test]
fn an_unsynced_tail_longer_than_4_mib_is_scanned_with_the_whole_segment() {
    let (storage, log) = synced(10);
    for _ in 0..5 {
        log.append(&vec![7u8; 1 << 20]).unwrap(); // 5 MiB after the durable end
    }
    let crashed = storage.crash(CrashMode::KeepAll);
    drop(log);
    let log = Log::open(dir(), options(&crashed)).unwrap();
    assert_eq!(
        log.open_report().tail_scanned,
        segment_len(&crashed) - SEGMENT_DATA_START
    );
    assert_eq!(log.next_seq(), 16);
}

#[test]
fn slot_generations_keep_counting_across_reopens() {
    // Of the two slots the higher generation is the newer (FORMAT.md §2.2). A writer that
    // restarted its count at open would write generation 1 over the newest slot and leave the
    // older one to win: the proof of every later sync would be lost.
    let storage = MemStorage::new();
    for round in 1..=4u64 {
        let log = Log::open(dir(), options(&storage)).unwrap();
        for _ in 0..round {
            append_n(&log, 2, 200);
            log.sync().unwrap();
        }
        let last = log.next_seq() - 1;
        drop(log);
        let (report, _) = scan(&storage, &dir());
        assert_eq!(report.durable_seq, Some(last), "round {round}");
        let bytes = storage.file_bytes(&seg1()).unwrap();
        let log_id = log_id_of(&bytes);
        let generations: Vec<u64> = WATERMARK_SLOT_OFFSETS
            .iter()
            .filter_map(|&at| WatermarkSlot::decode(&bytes[at as usize..], log_id, 1))
            .map(|slot| slot.generation)
            .collect();
        let syncs: u64 = (1..=round).sum();
        assert_eq!(generations.iter().max(), Some(&syncs), "round {round}");
    }
}
