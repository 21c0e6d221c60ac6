//! A file system that refuses directory fsyncs (EINVAL and kin, `DirSync::Unsupported`): new
//! segments, renames and side files are then less durable than FORMAT.md §6 needs, and every
//! operation that creates one says so (`durability_degraded`) instead of claiming full
//! durability.

use crate::util::{dir, options, payload};
use std::path::Path;
use walctl::Log;
use walctl::storage::MemStorage;

/// A file system that refuses directory fsyncs once `refuse` is set (EINVAL and kin, reported by
/// the storage as `DirSync::Unsupported`).
#[derive(Debug, Default)]
struct DirSyncRefused {
    refuse: std::sync::atomic::AtomicBool,
}

impl crate::util::Hooks for std::sync::Arc<DirSyncRefused> {
    fn dir_sync(&self, synced: walctl::storage::DirSync) -> walctl::storage::DirSync {
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            walctl::storage::DirSync::Unsupported
        } else {
            synced
        }
    }
}

#[test]
fn a_file_system_without_directory_fsync_is_reported_as_degraded_durability() {
    // New segments and renames are then less durable than the protocol needs; the writer must
    // say so (at open, or from the first rotation that met it) rather than claim full
    // durability. Its identity is reported alike: the log id every segment header carries.
    for refuse_at_open in [false, true] {
        let storage = MemStorage::new();
        let hooks = std::sync::Arc::new(DirSyncRefused::default());
        hooks
            .refuse
            .store(refuse_at_open, std::sync::atomic::Ordering::Relaxed);
        let opts = walctl::Options {
            storage: crate::util::Hooked::storage(&storage, std::sync::Arc::clone(&hooks)),
            ..options(&storage)
        };
        let log = Log::open(dir(), opts).unwrap();
        assert_eq!(log.open_report().durability_degraded, refuse_at_open);
        assert_eq!(log.durability_degraded(), refuse_at_open);
        hooks
            .refuse
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for i in 1..=40u64 {
            log.append(&payload(i, 1000)).unwrap();
        }
        assert!(log.durability_degraded(), "rotation met the refusal");
        assert_eq!(log.dir(), dir());
        for seg in crate::util::segments(&storage) {
            let header = storage.file_bytes(&seg).unwrap();
            assert_eq!(header[16..24], log.log_id().to_le_bytes(), "{seg:?}");
        }
        // What an embedder's `{:?}` shows of a writer: where it writes and which log it is.
        let shown = format!("{log:?}");
        assert!(shown.contains("\"/log\""), "{shown}");
        assert!(shown.contains(&log.log_id().to_string()), "{shown}");
    }
}

#[test]
fn compaction_and_salvage_report_a_file_system_without_directory_fsync() {
    // Both create segments and rename them into place as a rotation does, so their reports
    // must say what the writer's says when those renames are less durable; a dry run creates
    // nothing and never says so.
    use std::sync::atomic::Ordering::Relaxed;
    for (refuse, dry_run) in [(false, false), (true, false), (true, true)] {
        let case = format!("refused {refuse}, dry run {dry_run}");
        let storage = crate::util::built(60, 700);
        let hooks = std::sync::Arc::new(DirSyncRefused::default());
        hooks.refuse.store(refuse, Relaxed);
        let opts = walctl::Options {
            storage: crate::util::Hooked::storage(&storage, std::sync::Arc::clone(&hooks)),
            ..crate::util::plain(&storage)
        };
        let salvaged = walctl::salvage_observed(
            &dir(),
            Path::new("/salvaged"),
            &opts,
            dry_run,
            &mut |_, _| {},
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(salvaged.records, 60, "{case}");
        assert_eq!(salvaged.durability_degraded, refuse && !dry_run, "{case}");
        let plan = walctl::Compaction {
            dry_run,
            ..crate::util::before(30)
        };
        let compacted = walctl::compact(&dir(), &opts, &plan).unwrap();
        assert_eq!(compacted.after.first_seq, Some(30), "{case}");
        assert_eq!(compacted.durability_degraded, refuse && !dry_run, "{case}");
    }
}

/// A synced log of 20 records with 50 bytes of garbage after them (a torn tail), on storage
/// that refuses directory fsyncs when `refuse`.
fn torn_tail(refuse: bool) -> walctl::Options {
    let storage = crate::util::built(20, 100);
    let last = crate::util::segments(&storage).pop().unwrap();
    crate::util::edit(&storage, &last, |b| b.extend_from_slice(&[0xAB; 50]));
    let hooks = std::sync::Arc::new(DirSyncRefused::default());
    hooks
        .refuse
        .store(refuse, std::sync::atomic::Ordering::Relaxed);
    walctl::Options {
        storage: crate::util::Hooked::storage(&storage, hooks),
        ..crate::util::plain(&storage)
    }
}

#[test]
fn a_repair_and_a_writers_cut_report_a_file_system_without_directory_fsync() {
    // The cut is durable by the segment's own fdatasync; the side file that keeps the cut bytes
    // is a new name in the directory, which only a directory fsync makes durable.
    for (refuse, dry_run) in [(false, false), (true, false), (true, true)] {
        let case = format!("refused {refuse}, dry run {dry_run}");
        let opts = torn_tail(refuse);
        let (_, outcome) = walctl::truncate_partial(&dir(), &opts, dry_run).unwrap();
        let walctl::RepairOutcome::Cut(cut) = outcome else {
            panic!("{case}: a torn tail to cut, got {outcome:?}");
        };
        assert_eq!(cut.length, 50, "{case}");
        assert_eq!(cut.durability_degraded, refuse && !dry_run, "{case}");
    }
    // The writer's own cut at open after a crash says it through the open report.
    for refuse in [false, true] {
        let opts = torn_tail(refuse);
        let log = Log::open(dir(), opts).unwrap();
        let report = log.open_report();
        let cut = report.cut.as_ref().expect("the torn tail was cut");
        assert_eq!(cut.durability_degraded, refuse, "refused {refuse}");
        assert_eq!(report.durability_degraded, refuse, "refused {refuse}");
    }
}
