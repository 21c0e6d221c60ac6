//! `walctl::salvage`: every valid record of a damaged log, sequence numbers kept, into a new log;
//! the loss named exactly; the damaged log unchanged; and a crash at any storage operation of a
//! salvage leaves no log that looks complete and is not.

use crate::util::{Hooked, Hooks, built, data_files, dir, payload, plain, segments};
use std::path::PathBuf;
use walctl::storage::{CrashMode, Fault, MemStorage, Storage as _};
use walctl::{ErrorKind, Log, LostRange, Options, Verdict};

fn target() -> PathBuf {
    PathBuf::from("/salvaged")
}

/// 60 synced records of 700 bytes over several 16 KiB segments, with the record `seq` damaged.
fn damaged(seq: u64) -> MemStorage {
    let storage = built(60, 700);
    let log = Log::open(dir(), plain(&storage)).unwrap();
    let at = log.records().unwrap()[seq as usize - 1].location;
    drop(log);
    let path = dir().join(walctl::segment::segment_name(at.segment));
    let mut bytes = storage.file_bytes(&path).unwrap();
    bytes[at.offset as usize + 100] ^= 0x40;
    storage.set_file_bytes(&path, bytes);
    storage
}

fn salvage(storage: &MemStorage) -> walctl::Result<walctl::SalvageReport> {
    walctl::salvage(&dir(), &target(), &plain(storage))
}

fn opts_at(storage: &MemStorage, path: PathBuf) -> (Options, PathBuf) {
    (plain(storage), path)
}

#[test]
fn salvage_copies_every_valid_record_with_its_sequence_number_and_names_the_loss() {
    let storage = damaged(30);
    let source_files = |s: &MemStorage| -> Vec<_> {
        data_files(s)
            .into_iter()
            .filter(|(p, _)| p.starts_with(dir()))
            .collect()
    };
    let before = source_files(&storage);
    let report = salvage(&storage).unwrap();
    assert_eq!(report.source.verdict(), Verdict::Corrupt);
    assert_eq!(
        (report.records, report.first_seq, report.last_seq),
        (59, Some(1), Some(60))
    );
    assert_eq!(
        report.lost,
        [LostRange {
            damage: 1,
            first: Some(30),
            last: Some(30)
        }],
        "{:#?}",
        report.source.damage
    );
    assert_eq!(report.source.damage[1].kind, walctl::DamageKind::Checksum);
    assert_eq!(report.next_seq, 61);
    assert!(
        source_files(&storage) == before,
        "the damaged log is only read"
    );
    let (opts, path) = opts_at(&storage, target());
    let (verified, _) = crate::util::scan(&storage, &path);
    assert_eq!(verified.verdict(), Verdict::Clean);
    assert_eq!(verified.log_id, Some(report.log_id));
    assert_ne!(
        Some(report.log_id),
        report.source.log_id,
        "a new log, never mixed"
    );
    let log = Log::open(&path, opts).unwrap();
    let records = log.records().unwrap();
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=60).filter(|&s| s != 30).collect::<Vec<_>>());
    for r in &records {
        assert_eq!(r.payload, payload(r.seq, 700), "record {}", r.seq);
    }
    assert_eq!(
        log.append(b"after").unwrap().seq,
        61,
        "no number is handed out twice"
    );
}

#[test]
fn acknowledged_records_lost_at_the_end_are_counted_up_to_the_watermark() {
    let storage = built(60, 700);
    let last = segments(&storage).pop().unwrap();
    let bytes = storage.file_bytes(&last).unwrap();
    // Cut the last segment inside its synced records: its slot still says 60.
    storage.set_file_bytes(&last, bytes[..bytes.len() - 1500].to_vec());
    let report = salvage(&storage).unwrap();
    assert_eq!(report.source.verdict(), Verdict::Corrupt);
    let lost = report.lost.last().copied().unwrap();
    assert_eq!(lost.last, Some(60), "{:?}", report.lost);
    assert_eq!(lost.first, report.last_seq.map(|l| l + 1));
    assert_eq!(report.next_seq, 61);
}

#[test]
fn a_torn_tail_is_left_out_as_an_unknown_number_of_unacknowledged_records() {
    let storage = built(5, 100);
    let log = Log::open(dir(), plain(&storage)).unwrap();
    log.append(b"never synced").unwrap();
    drop(log);
    let seg = segments(&storage).pop().unwrap();
    let bytes = storage.file_bytes(&seg).unwrap();
    storage.set_file_bytes(&seg, bytes[..bytes.len() - 3].to_vec());
    let report = salvage(&storage).unwrap();
    assert_eq!(report.source.verdict(), Verdict::TornTail);
    assert_eq!(report.records, 5);
    assert_eq!(
        report.lost,
        [LostRange {
            damage: 0,
            first: Some(6),
            last: None
        }]
    );
    assert_eq!(report.next_seq, 6);
}

#[test]
fn salvage_writes_only_into_a_directory_it_creates() {
    let storage = damaged(3);
    salvage(&storage).unwrap();
    let again = salvage(&storage).unwrap_err();
    assert!(
        matches!(again.kind(), ErrorKind::InvalidOptions(_)),
        "{again}"
    );
}

/// Another salvage creates the same target between the existence check and the creation: the
/// later one is refused as for any existing target (not with an I/O error), and writes nothing
/// into the other's directory.
#[test]
fn a_target_created_by_a_racing_salvage_is_refused_as_existing() {
    #[derive(Debug)]
    struct Racer;
    impl Hooks for Racer {
        fn before_create_dir(&self, inner: &MemStorage, made: &std::path::Path) {
            if made == target() {
                inner.create_dir_new(made).expect("the racer's directory");
            }
        }
    }
    let storage = damaged(3);
    let opts = Options {
        storage: Hooked::storage(&storage, Racer),
        ..plain(&storage)
    };
    let err = walctl::salvage(&dir(), &target(), &opts).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidOptions(_)), "{err}");
    assert!(err.to_string().contains("/salvaged exists"), "{err}");
    assert_eq!(storage.list(&target()).unwrap(), Vec::<String>::new());
}

#[test]
fn a_crash_at_any_point_of_a_salvage_leaves_no_log_that_looks_complete() {
    let source = damaged(30);
    let expected = salvage(&source.crash(CrashMode::KeepAll)).unwrap();
    let clean_run = source.crash(CrashMode::KeepAll);
    let start = clean_run.op_count();
    salvage(&clean_run).unwrap();
    let ops = clean_run.op_count() - start;
    let mut complete = 0;
    for n in 0..ops {
        let storage = source.crash(CrashMode::KeepAll);
        let from = storage.op_count() + n;
        storage.set_faults(Some(Box::new(move |op| {
            (op.index >= from).then_some(Fault::Errno(5))
        })));
        assert!(
            salvage(&storage).is_err(),
            "a fault at operation {n} went unseen"
        );
        storage.set_faults(None);
        for mode in [
            CrashMode::KeepAll,
            CrashMode::DropUnsynced,
            CrashMode::Torn { seed: n },
        ] {
            let crashed = storage.crash(mode);
            let what = format!("crash at salvage operation {n} of {ops}, {mode:?}");
            match walctl::verify_log(&crashed, &target()) {
                Err(e) => {
                    assert!(matches!(e.kind(), ErrorKind::NotALog { .. }), "{what}: {e}");
                    let existing_only = Options {
                        create: false,
                        ..plain(&crashed)
                    };
                    assert!(Log::open(target(), existing_only).is_err(), "{what}");
                }
                Ok(report) => {
                    assert_eq!(report.verdict(), Verdict::Clean, "{what}");
                    assert_eq!(report.records, expected.records, "{what}: incomplete");
                    complete += 1;
                }
            }
            let (source_after, _) = crate::util::scan_only(&crashed, &dir());
            assert_eq!(source_after, expected.source, "{what}: the source changed");
        }
    }
    assert!(ops > 20, "{ops} operations");
    // Only the marker's removal is left at the last fault points: some crashes keep it.
    assert!(
        complete <= 3,
        "{complete} complete logs before the salvage finished"
    );
}

#[test]
fn a_watermark_claiming_the_last_sequence_number_is_refused_before_anything_is_written() {
    use walctl::format::{SegmentHeader, WATERMARK_SLOT_OFFSETS, WatermarkSlot};
    let storage = built(3, 100);
    let seg = segments(&storage).pop().unwrap();
    let mut bytes = storage.file_bytes(&seg).unwrap();
    let header = SegmentHeader::decode(&bytes).unwrap();
    let slot = WatermarkSlot {
        durable_seq: u64::MAX - 1,
        generation: 1000,
        durable_end: 0,
    }
    .encode(header.log_id, header.segment);
    let at = WATERMARK_SLOT_OFFSETS[0] as usize;
    bytes[at..at + slot.len()].copy_from_slice(&slot);
    storage.set_file_bytes(&seg, bytes);
    let err = salvage(&storage).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt { .. }), "{err}");
    assert!(!storage.exists(&target()), "nothing written");
}

#[test]
fn a_dry_run_reports_what_a_salvage_would_do_and_writes_nothing() {
    let storage = damaged(30);
    let mut passes = Vec::new();
    let planned = walctl::salvage_observed(
        &dir(),
        &target(),
        &plain(&storage),
        true,
        &mut |p, _| {
            if passes.last() != Some(&p) {
                passes.push(p);
            }
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(passes, [walctl::Pass::Survey, walctl::Pass::Copy]);
    assert!(!storage.exists(&target()), "a dry run wrote the target");
    let done = salvage(&storage).unwrap();
    assert_eq!(
        (
            planned.records,
            &planned.lost,
            planned.next_seq,
            &planned.digest
        ),
        (done.records, &done.lost, done.next_seq, &done.digest)
    );
}

#[test]
fn salvage_follows_its_protocol_order() {
    // FORMAT.md §6.7, step by step in the trace. The crash sweep above checks outcomes; this
    // checks the order, including the parent's fsync, which the in-memory crash model does not
    // make matter (directories survive its crashes).
    use walctl::storage::TraceOp::{Create, CreateDir, Remove, Rename, SyncData, SyncDir};
    let storage = damaged(30);
    let start = storage.op_count() as usize;
    salvage(&storage).unwrap();
    let trace = storage.trace().split_off(start);
    let marker = target().join(walctl::segment::SALVAGE_MARKER);
    let at = |f: &dyn Fn(&walctl::storage::OpRecord) -> bool| {
        trace.iter().position(f).expect("the step is in the trace")
    };
    let last = |f: &dyn Fn(&walctl::storage::OpRecord) -> bool| {
        trace.iter().rposition(f).expect("the step is in the trace")
    };
    let made = at(&|op| op.op == CreateDir && op.path == target());
    let parent_synced = at(&|op| op.op == SyncDir && op.path == std::path::Path::new("/"));
    let marker_made = at(&|op| op.op == Create && op.path == marker);
    let marker_synced = at(&|op| op.op == SyncData && op.path == marker);
    let target_synced = at(&|op| op.op == SyncDir && op.path == target());
    let first_segment =
        at(&|op| op.op == Create && op.path != marker && op.path.starts_with(target()));
    let last_temp_synced =
        last(&|op| op.op == SyncData && op.path.to_string_lossy().ends_with(".wal.tmp"));
    let first_rename = at(&|op| op.op == Rename);
    let last_rename = last(&|op| op.op == Rename);
    let removed = at(&|op| op.op == Remove && op.path == marker);
    let final_sync = last(&|op| op.op == SyncDir && op.path == target());
    assert!(
        made < parent_synced && parent_synced < marker_made,
        "{trace:#?}"
    );
    assert!(marker_made < marker_synced && marker_synced < target_synced);
    assert!(
        target_synced < first_segment,
        "no segment before the marker is durable"
    );
    assert!(
        last_temp_synced < first_rename,
        "every segment synced before any rename"
    );
    let synced_after_renames = trace[last_rename..removed]
        .iter()
        .any(|op| op.op == SyncDir && op.path == target());
    assert!(
        synced_after_renames,
        "the renames are durable before the marker goes"
    );
    assert!(removed < final_sync, "the marker's removal is made durable");
    let reads_only = |op: &&walctl::storage::OpRecord| {
        use walctl::storage::TraceOp::{List, Lock, Open, Read};
        !op.path.starts_with(dir()) || matches!(op.op, Read | Open | List | Lock)
    };
    assert!(
        trace.iter().all(|op| reads_only(&op)),
        "the damaged log is only read"
    );
}

#[test]
fn salvage_into_missing_ancestors_syncs_each_new_directory_into_its_parent() {
    // `salvage --to /rescue/2026/log` where neither `/rescue` nor `/rescue/2026` exists: every
    // directory the salvage creates is made durable in its parent before the marker is.
    use walctl::storage::TraceOp::{Create, SyncDir};
    let storage = damaged(30);
    let start = storage.op_count() as usize;
    let to = PathBuf::from("/rescue/2026/log");
    walctl::salvage(&dir(), &to, &plain(&storage)).unwrap();
    let trace = storage.trace().split_off(start);
    let marker = to.join(walctl::segment::SALVAGE_MARKER);
    let marker_made = trace
        .iter()
        .position(|op| op.op == Create && op.path == marker)
        .expect("the marker was created");
    for parent in ["/rescue/2026", "/rescue", "/"] {
        assert!(
            trace[..marker_made]
                .iter()
                .any(|op| op.op == SyncDir && op.path == std::path::Path::new(parent)),
            "{parent} was not synced before the marker was created"
        );
    }
    assert_eq!(
        Log::open(&to, plain(&storage)).unwrap().next_seq(),
        61,
        "the salvaged log opens"
    );
}

#[test]
fn a_sequence_gap_between_two_valid_records_loses_only_the_numbers_skipped() {
    // Records 1 to 4, then 6 to 8, all valid: 5 is gone. The gap is found at record 6, which
    // is copied, so the loss is 5 alone.
    let storage = crate::util::crafted(1, Some(8), &[1, 2, 3, 4, 6, 7, 8]);
    let report = salvage(&storage).unwrap();
    assert_eq!(
        report.source.damage[0].kind,
        walctl::DamageKind::SequenceGap
    );
    assert_eq!(report.records, 7);
    let lost: Vec<_> = report.lost.iter().map(|r| (r.first, r.last)).collect();
    assert_eq!(lost, [(Some(5), Some(5))]);
}
