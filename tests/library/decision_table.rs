//! One test per row of the decision table in FORMAT.md §8; row 12, a newer version, is in
//! `versions.rs`.

use crate::util::{self, crafted, dir, edit, plain as options, scan, segments};
use std::sync::Arc;
use walctl::format::{SEGMENT_DATA_START, SEGMENT_HEADER_SIZE, SegmentHeader};
use walctl::storage::{LockKind, MemStorage, Storage};
use walctl::{DamageClass, DamageKind, ErrorKind, Log, Options, Verdict};

fn kinds(report: &walctl::Report) -> Vec<DamageKind> {
    report.damage.iter().map(|d| d.kind).collect()
}

/// A log whose last segment has unsynced records after synced ones (a crash before sync).
fn with_unsynced_tail() -> (MemStorage, u64) {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    util::append_n(&log, 5, 100);
    log.sync().unwrap();
    util::append_n(&log, 3, 100);
    let crashed = storage.crash(walctl::storage::CrashMode::KeepAll);
    drop(log);
    (crashed, 5)
}

pub(crate) fn last_segment(storage: &MemStorage) -> std::path::PathBuf {
    segments(storage).pop().unwrap()
}

#[test]
fn clean_log_is_clean() {
    let storage = util::built(300, 500);
    let (report, records) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
    assert!(segments(&storage).len() >= 3, "the log rotated");
    assert_eq!(
        (report.records, report.first_seq, report.last_seq),
        (300, Some(1), Some(300))
    );
    assert_eq!(report.durable_seq, Some(300));
    util::assert_prefix(&records, 500);
}

#[test]
fn truncated_last_record_is_a_torn_tail() {
    let (storage, synced) = with_unsynced_tail();
    let last = last_segment(&storage);
    edit(&storage, &last, |b| b.truncate(b.len() - 7));
    let (report, records) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::TornTail, "{:?}", report.damage);
    assert_eq!(kinds(&report), [DamageKind::TruncatedRecord]);
    assert_eq!(records.len(), 7);
    assert!(report.damage[0].last_good_seq.unwrap() >= synced);
}

#[test]
fn zero_filled_tail_is_a_torn_tail() {
    let (storage, _) = with_unsynced_tail();
    let last = last_segment(&storage);
    edit(&storage, &last, |b| {
        let n = b.len();
        b[n - 120..].fill(0);
    });
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::TornTail);
    assert_eq!(report.damage[0].class, DamageClass::Torn);
}

#[test]
fn zeros_in_place_of_whole_records_without_preallocation_are_a_torn_tail() {
    // Without `Options::preallocate` no segment carries PREALLOCATED (FORMAT.md §2.1), so
    // zeros where records were, ending at a record boundary, are still a torn tail: only a
    // preallocated segment may end in zeros.
    let (storage, _) = with_unsynced_tail();
    let last = last_segment(&storage);
    let bytes = storage.file_bytes(&last).unwrap();
    assert!(!SegmentHeader::decode(&bytes).unwrap().is_preallocated());
    let record = walctl::format::encoded_len(0, 100);
    edit(&storage, &last, |b| {
        let n = b.len();
        b[n - 2 * record..].fill(0);
    });
    let (report, records) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::TornTail);
    assert_eq!(records.len(), 6);
}

#[test]
fn garbage_tail_is_a_torn_tail() {
    let (storage, _) = with_unsynced_tail();
    let last = last_segment(&storage);
    edit(&storage, &last, |b| {
        b.extend((0..300u32).map(|i| (i * 97 % 251) as u8 | 0x80))
    });
    let (report, records) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::TornTail);
    assert_eq!(kinds(&report), [DamageKind::Checksum]);
    assert_eq!(records.len(), 8);
}

#[test]
fn unsynced_hole_followed_by_unsynced_records_is_a_torn_tail() {
    // Power loss may persist a later unsynced page and not an earlier one.
    let (storage, synced) = with_unsynced_tail();
    let last = last_segment(&storage);
    let (_, records) = scan(&storage, &dir());
    let hole = records[synced as usize].location;
    edit(&storage, &last, |b| {
        b[hole.offset as usize..][..hole.length as usize].fill(0)
    });
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::TornTail, "{:?}", report.damage);
    assert_eq!(
        report.damage[0].records_after, 2,
        "the plan shows what a cut loses"
    );
}

#[test]
fn invalid_bytes_followed_by_acknowledged_records_are_corruption() {
    let storage = util::built(10, 100);
    let last = last_segment(&storage);
    let (_, records) = scan(&storage, &dir());
    let victim = records[4].location;
    edit(&storage, &last, |b| b[victim.offset as usize + 40] ^= 1);
    let (report, delivered) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Corrupt);
    let d = &report.damage[0];
    assert_eq!(
        (d.kind, d.offset, d.last_good_seq, d.records_after),
        (DamageKind::Checksum, victim.offset, Some(4), 5)
    );
    assert_eq!(
        delivered.len(),
        9,
        "valid records past the damage are still delivered"
    );
}

#[test]
fn damage_to_the_last_acknowledged_record_is_corruption() {
    let storage = util::built(10, 100);
    let last = last_segment(&storage);
    edit(&storage, &last, |b| b.truncate(b.len() - 3));
    let (report, _) = scan(&storage, &dir());
    assert_eq!(
        report.verdict(),
        Verdict::Corrupt,
        "the watermark proves record 10 was synced"
    );
    let err = Log::open(dir(), options(&storage)).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt { .. }), "{err}");
}

#[test]
fn a_torn_slot_write_leaves_the_previous_slots_proof() {
    // Slots alternate between two places, so a crash that tears the newest leaves the one
    // before it: records acknowledged by the earlier sync stay proven, and their damage is
    // corruption, not a torn tail (FORMAT.md §2.2).
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    util::append_n(&log, 5, 100);
    log.sync().unwrap();
    util::append_n(&log, 5, 100);
    log.sync().unwrap();
    drop(log);
    let (_, records) = scan(&storage, &dir());
    let last = last_segment(&storage);
    let bytes = storage.file_bytes(&last).unwrap();
    let header = SegmentHeader::decode(&bytes).unwrap();
    let newest = walctl::format::WATERMARK_SLOT_OFFSETS
        .into_iter()
        .map(|at| at as usize)
        .max_by_key(|&at| {
            walctl::format::WatermarkSlot::decode(&bytes[at..], header.log_id, header.segment)
                .map(|slot| slot.generation)
        })
        .unwrap();
    edit(&storage, &last, |b| {
        b[newest..newest + 32].fill(0xA5);
        let third = records[2].location;
        b[(third.offset + 40) as usize] ^= 1;
    });
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.durable_seq, Some(5), "the earlier slot's proof");
    assert_eq!(report.verdict(), Verdict::Corrupt, "{:?}", report.damage);
}

#[test]
fn acknowledged_records_missing_at_a_clean_boundary_is_corruption() {
    let storage = util::built(10, 100);
    let last = last_segment(&storage);
    let (_, records) = scan(&storage, &dir());
    edit(&storage, &last, |b| {
        b.truncate(records[7].location.offset as usize)
    });
    let (report, _) = scan(&storage, &dir());
    assert_eq!(kinds(&report), [DamageKind::MissingAcknowledged]);
    assert_eq!(report.verdict(), Verdict::Corrupt);
}

#[test]
fn damage_in_a_sealed_segment_is_corruption() {
    let storage = util::built(300, 500);
    let first = segments(&storage).remove(0);
    edit(&storage, &first, |b| b.truncate(b.len() - 1));
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Corrupt);
    assert_eq!(report.damage[0].segment, 1);
}

#[test]
fn missing_middle_segment_is_corruption() {
    let storage = util::built(300, 500);
    let middle = segments(&storage).remove(1);
    storage.delete_file(&middle);
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Corrupt);
    assert!(kinds(&report).contains(&DamageKind::MissingSegment));
}

#[test]
fn missing_oldest_segment_is_corruption() {
    let storage = util::built(300, 500);
    storage.delete_file(&segments(&storage)[0]);
    let (report, _) = scan(&storage, &dir());
    assert_eq!(kinds(&report), [DamageKind::MissingHead]);
}

#[test]
fn sequence_gap_across_segments_is_corruption() {
    let storage = util::built(300, 500);
    let third = segments(&storage).remove(2);
    edit(&storage, &third, |b| {
        let mut h = SegmentHeader::decode(b).unwrap();
        h.first_seq += 3;
        b[..SEGMENT_HEADER_SIZE].copy_from_slice(&h.encode());
    });
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Corrupt);
    assert!(
        kinds(&report).contains(&DamageKind::SequenceGap),
        "{:?}",
        kinds(&report)
    );
}

#[test]
fn swapped_segments_are_corruption() {
    let storage = util::built(300, 500);
    let segs = segments(&storage);
    let (a, b) = (
        storage.file_bytes(&segs[0]).unwrap(),
        storage.file_bytes(&segs[1]).unwrap(),
    );
    storage.set_file_bytes(&segs[0], b);
    storage.set_file_bytes(&segs[1], a);
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Corrupt);
    assert!(kinds(&report).contains(&DamageKind::MisnamedSegment));
}

/// A writer's open refuses `storage` as corrupt, naming `path`, and changes no byte of it.
fn writer_refuses(storage: &MemStorage, path: &std::path::Path) {
    let before: Vec<_> = segments(storage)
        .iter()
        .map(|p| storage.file_bytes(p))
        .collect();
    let err = Log::open(dir(), options(storage)).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    let after: Vec<_> = segments(storage)
        .iter()
        .map(|p| storage.file_bytes(p))
        .collect();
    assert_eq!(before, after, "the refused log was changed");
}

#[test]
fn a_writer_refuses_a_last_segment_whose_header_names_another() {
    // The last segment holds a copy of the one before it (header segment 1 in file 2): a
    // writer appending to it would write records bound to the wrong segment.
    let storage = util::built(300, 500);
    let segs = segments(&storage);
    let last = segs.last().unwrap();
    let before_last = storage.file_bytes(&segs[segs.len() - 2]).unwrap();
    storage.set_file_bytes(last, before_last);
    writer_refuses(&storage, last);
    let (report, _) = scan(&storage, &dir());
    assert!(kinds(&report).contains(&DamageKind::MisnamedSegment));
}

#[test]
fn a_writer_refuses_a_last_segment_cut_inside_its_preamble() {
    // A segment is renamed into place only with its whole preamble durable (FORMAT.md §6.2),
    // so a shorter one is damage, even when the header in its first bytes is intact.
    let storage = util::built(10, 100);
    let last = last_segment(&storage);
    edit(&storage, &last, |b| {
        b.truncate(SEGMENT_DATA_START as usize - 1)
    });
    writer_refuses(&storage, &last);
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Corrupt);
}

#[test]
fn segment_from_another_log_is_corruption() {
    let ours = util::built(300, 500);
    let theirs = util::built(300, 500);
    let path = segments(&ours).remove(1);
    ours.set_file_bytes(&path, theirs.file_bytes(&path).unwrap());
    let (report, records) = scan(&ours, &dir());
    assert!(kinds(&report).contains(&DamageKind::ForeignSegment));
    assert!(
        records.iter().all(|r| r.location.segment != 2),
        "no foreign record delivered"
    );
}

#[test]
fn damaged_segment_header_is_corruption() {
    let storage = util::built(10, 100);
    let last = last_segment(&storage);
    edit(&storage, &last, |b| b[20] ^= 0x10);
    let (report, _) = scan(&storage, &dir());
    assert_eq!(kinds(&report), [DamageKind::BadSegmentHeader]);
    assert!(Log::open(dir(), options(&storage)).is_err());
}

#[test]
fn partial_record_of_a_live_writer_is_in_progress_not_damage() {
    let (storage, _) = with_unsynced_tail();
    let last = last_segment(&storage);
    edit(&storage, &last, |b| b.truncate(b.len() - 7));
    let _writer = storage
        .try_lock(&dir().join("LOCK"), LockKind::Exclusive)
        .unwrap();
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean);
    assert!(report.writer_active);
    assert!(report.in_progress.is_some());
}

#[test]
fn writer_reopen_cuts_a_torn_tail_and_keeps_the_bytes() {
    let (storage, _) = with_unsynced_tail();
    let last = last_segment(&storage);
    edit(&storage, &last, |b| b.extend([0xee; 50]));
    let log = Log::open(dir(), options(&storage)).unwrap();
    let cut = log.open_report().cut.clone().expect("the tail was cut");
    assert_eq!((cut.length, cut.last_seq), (50, Some(8)));
    assert_eq!(
        storage.file_bytes(&dir().join(&cut.side_file)).unwrap(),
        vec![0xee; 50]
    );
    let journal =
        String::from_utf8(storage.file_bytes(&dir().join("repair.jsonl")).unwrap()).unwrap();
    assert!(journal.contains(&cut.sha256) && journal.ends_with('\n'));
    assert_eq!(log.append(b"next").unwrap().seq, 9);
    drop(log);
    assert_eq!(scan(&storage, &dir()).0.verdict(), Verdict::Clean);
}

#[test]
fn repair_cuts_a_torn_tail_and_refuses_corruption_unchanged() {
    let (storage, _) = with_unsynced_tail();
    let opts = Options {
        storage: Arc::new(storage.clone()),
        ..Options::default()
    };
    let last = last_segment(&storage);
    edit(&storage, &last, |b| b.truncate(b.len() - 7));
    let (_, plan) = walctl::truncate_partial(&dir(), &opts, true).unwrap();
    let before = storage.file_bytes(&last).unwrap();
    let walctl::RepairOutcome::Cut(plan) = plan else {
        panic!("a dry run plans a cut")
    };
    assert_eq!(
        storage.file_bytes(&last).unwrap(),
        before,
        "a dry run changes nothing"
    );
    let (_, done) = walctl::truncate_partial(&dir(), &opts, false).unwrap();
    let walctl::RepairOutcome::Cut(done) = done else {
        panic!("cut")
    };
    assert_eq!((done.offset, done.length), (plan.offset, plan.length));
    assert_eq!(scan(&storage, &dir()).0.verdict(), Verdict::Clean);

    let corrupt = util::built(10, 100);
    let opts = Options {
        storage: Arc::new(corrupt.clone()),
        ..Options::default()
    };
    let last = last_segment(&corrupt);
    edit(&corrupt, &last, |b| b[13000] ^= 1);
    let files = util::data_files(&corrupt);
    let err = walctl::truncate_partial(&dir(), &opts, false).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt { .. }));
    assert!(
        files == util::data_files(&corrupt),
        "refusal leaves every file byte-identical"
    );
}

#[test]
fn r_fuzz_empty_segment_with_a_watermark_just_below_it_is_clean_for_scan_and_open_alike() {
    // Found by the decode_record fuzz target: scan said missing_acknowledged, open accepted.
    let storage = crafted(5, Some(4), &[]);
    let (report, _) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
    let log = Log::open(dir(), options(&storage)).unwrap();
    assert_eq!(log.next_seq(), 5);
    drop(log);
    let above = crafted(5, Some(5), &[]);
    assert_eq!(
        scan(&above, &dir()).0.verdict(),
        Verdict::Corrupt,
        "5 was acknowledged but is missing"
    );
    assert!(Log::open(dir(), options(&above)).is_err());
}

#[test]
fn r_fuzz_the_last_sequence_number_never_overflows() {
    // Found by the differential fuzz target: a record numbered u64::MAX made `last + 1` overflow.
    let top = crafted(u64::MAX - 1, None, &[u64::MAX - 1]);
    let (report, records) = scan(&top, &dir());
    assert_eq!((report.verdict(), records.len()), (Verdict::Clean, 1));
    let log = Log::open(dir(), options(&top)).unwrap();
    let err = log.append(b"one too many").unwrap_err();
    assert!(err.to_string().contains("every sequence number"), "{err}");
    drop(log);
    // u64::MAX itself is not a sequence number: such a header or record is damage, not a panic.
    let reserved = crafted(u64::MAX, None, &[]);
    assert_eq!(scan(&reserved, &dir()).0.verdict(), Verdict::Corrupt);
    assert!(Log::open(dir(), options(&reserved)).is_err());
}

/// A reader that stops early (`dump --limit`, `--to`) has seen a prefix of a sealed segment,
/// not its end: that is no reason to call the segment's watermark a claim of missing records.
#[test]
fn a_scan_stopped_inside_a_sealed_segment_finds_no_damage() {
    let storage = util::built(300, 500);
    assert!(segments(&storage).len() >= 3, "the log rotated");
    for stop_after in [1, 2, 150, 299] {
        let mut seen = 0;
        let report = walctl::scan_log(&storage, &dir(), &mut |_| {
            seen += 1;
            if seen == stop_after {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(seen, stop_after);
        assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
        assert!(report.damage.is_empty(), "stopped after {stop_after}");
    }
}
