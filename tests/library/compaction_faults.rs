//! One I/O error at each storage operation of a compaction, every other operation succeeding,
//! so that the error paths run for real (the crash sweeps fail every operation from the crash
//! on, so their cleanup never succeeds). Compaction must report the error, leave the old log or
//! the new one, and clean up after itself.

use crate::in_place::{keyed, seqs};
use crate::util::{built, dir, plain};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use walctl::CompactionState::{Committed, Unchanged};
use walctl::storage::{CrashMode, Fault, MemStorage, OpRecord, TraceOp};
use walctl::{Compaction, Log};

fn plan(before: Option<u64>, keys: bool, rewrite: bool) -> Compaction {
    Compaction {
        before,
        keys,
        dry_run: false,
        rewrite,
    }
}

/// Every file name in the log directory that is not a segment or a lock: temporaries and the
/// marker, which a compaction that has returned must not leave behind.
fn leftovers(storage: &MemStorage) -> Vec<String> {
    storage
        .files()
        .into_iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.ends_with(".wal") && n != "LOCK" && n != "READERS")
        .collect()
}

/// The three methods: a rewrite, a compaction in place with a head and a replacement, and one
/// with a replacement alone (superseded keys in one sealed segment).
fn cases() -> [(MemStorage, Compaction); 3] {
    [
        (built(120, 200), plan(Some(51), false, true)),
        (built(120, 200), plan(Some(51), false, false)),
        (keyed(&[20, 21]), plan(None, true, false)),
    ]
}

/// Fails operation `n` of the compaction (counted from its start) with `fault`; returns the
/// result and the operation that failed, if the compaction reached it.
fn compact_failing(
    storage: &MemStorage,
    plan: &Compaction,
    n: u64,
    fault: Fault,
) -> (walctl::Result<walctl::CompactReport>, Option<OpRecord>) {
    let start = storage.op_count();
    let hit: Arc<Mutex<Option<OpRecord>>> = Arc::default();
    let seen = Arc::clone(&hit);
    storage.set_faults(Some(Box::new(move |o| {
        // FsyncGate is a failure of fdatasync only.
        let applies = fault != Fault::FsyncGate || o.op == TraceOp::SyncData;
        (o.index == start + n && applies).then(|| {
            *seen.lock().unwrap() = Some(o.clone());
            fault
        })
    })));
    let result = walctl::compact(&dir(), &plain(storage), plan);
    storage.set_faults(None);
    let op = hit.lock().unwrap().take();
    (result, op)
}

#[test]
fn one_io_error_anywhere_in_a_compaction_leaves_the_old_log_or_the_new_and_nothing_else() {
    for (base, plan) in cases() {
        let old = seqs(&base);
        let (new, total) = {
            let s = base.crash(CrashMode::KeepAll);
            let start = s.op_count();
            let out = walctl::compact(&dir(), &plain(&s), &plan).unwrap();
            // The report's segment counts add up to the files there are.
            let files = crate::util::segments(&s).len() as u64;
            let after = out.before.segments - out.segments_removed + out.segments_added;
            assert_eq!((after, out.after.segments), (files, after), "{plan:?}");
            (seqs(&s), s.op_count() - start)
        };
        assert!(new.len() < old.len(), "{plan:?}");
        let mut fired = 0;
        let mut states = HashSet::new();
        for n in 0..total {
            for fault in [Fault::Errno(5), Fault::FsyncGate] {
                let s = base.crash(CrashMode::KeepAll);
                let (result, op) = compact_failing(&s, &plan, n, fault);
                let Some(op) = op else { continue };
                fired += 1;
                let what = format!(
                    "{plan:?}: {fault:?} at op {n}, {:?} {}",
                    op.op,
                    op.path.display()
                );
                let read = seqs(&s);
                assert!(
                    read == old || read == new,
                    "{what}: read {} records",
                    read.len()
                );
                match &result {
                    // Only the locks readers take, and the listing that looks for leftovers
                    // before anything is written, may fail without failing the compaction.
                    Ok(_) => {
                        assert_eq!(read, new, "{what}: success, yet the old log");
                        assert!(matches!(op.op, TraceOp::Lock | TraceOp::List), "{what}");
                    }
                    Err(e) => {
                        if op.op == TraceOp::SyncData || op.op == TraceOp::Write {
                            let path = op.path.to_string_lossy();
                            assert!(e.to_string().contains(&*path), "{what}: {e}");
                        }
                        // One fault, and the cleanup succeeds: the state is never undetermined.
                        let state = e.compaction_state();
                        let expected = if read == old { Unchanged } else { Committed };
                        assert_eq!(state, Some(expected), "{what}: {e}");
                        states.insert(expected);
                    }
                }
                assert_eq!(leftovers(&s), Vec::<String>::new(), "{what}");
                for mode in [CrashMode::DropUnsynced, CrashMode::Torn { seed: n }] {
                    let crashed = s.crash(mode);
                    let seen = seqs(&crashed);
                    // The cleanup made what it left durable: the state reported survives.
                    assert!(
                        seen == read,
                        "{what}, then {mode:?}: {} records",
                        seen.len()
                    );
                    drop(Log::open(dir(), plain(&crashed)).unwrap());
                    assert_eq!(
                        seqs(&crashed),
                        seen,
                        "{what}, then {mode:?}: open changed it"
                    );
                }
                // A retry, the fault gone, finishes the job.
                walctl::compact(&dir(), &plain(&s), &plan).unwrap();
                assert_eq!(seqs(&s), new, "{what}: the retry");
            }
        }
        assert!(fired > 50, "{plan:?}: {fired} faults fired");
        assert_eq!(states.len(), 2, "{plan:?}: only {states:?}");
    }
}

/// Every operation from the n-th on fails, so the cleanup after the error fails too: the
/// state the error reports is what the next open makes of the log, after a power loss or
/// not; only the state where the commit's own fsync failed leaves it to that open.
#[test]
fn the_state_a_failed_compaction_reports_holds_when_its_cleanup_fails_too() {
    for (base, plan) in cases() {
        let old = seqs(&base);
        let new = {
            let s = base.crash(CrashMode::KeepAll);
            walctl::compact(&dir(), &plain(&s), &plan).unwrap();
            seqs(&s)
        };
        let mut states = HashSet::new();
        // Every operation failing, or only directory fsyncs (reads work, so the cleanup can
        // tell what it faces but make nothing durable).
        for only in [None, Some(TraceOp::SyncDir)] {
            for n in 0.. {
                let s = base.crash(CrashMode::KeepAll);
                let start = s.op_count();
                s.set_faults(Some(Box::new(move |o: &OpRecord| {
                    let failing = o.index >= start + n && only.is_none_or(|k| o.op == k);
                    failing.then_some(Fault::Errno(5))
                })));
                let result = walctl::compact(&dir(), &plain(&s), &plan);
                s.set_faults(None);
                let Err(e) = result else { break };
                let state = e.compaction_state().expect("every error says");
                states.insert(state);
                let what = format!("{plan:?}: {only:?} from op {n} failing: {state:?} ({e})");
                let read = seqs(&s);
                assert!(read == old || read == new, "{what}: a mix");
                // What the next open makes of it, with and without a power loss first.
                for mode in [CrashMode::KeepAll, CrashMode::DropUnsynced] {
                    let after = s.crash(mode);
                    drop(Log::open(dir(), plain(&after)).unwrap());
                    let opened = seqs(&after);
                    let held = match state {
                        Unchanged => read == old && opened == old,
                        Committed => opened == new,
                        _ => opened == old || opened == new,
                    };
                    assert!(held, "{what}, then {mode:?} and an open: {}", opened.len());
                }
            }
        }
        assert_eq!(states.len(), 3, "{plan:?}: only {states:?}");
    }
}

/// Leftovers of an interrupted compaction are removed by the next one, durably: even one that
/// finds nothing to drop, and then a power loss, leaves none behind.
#[test]
fn leftovers_a_compaction_removes_stay_removed_after_a_power_loss() {
    let storage = built(40, 200);
    for name in ["00000000000000000009.wal.tmp", "COMPACTION.tmp"] {
        storage.set_file_bytes(&dir().join(name), vec![1; 100]);
    }
    let out = walctl::compact(&dir(), &plain(&storage), &plan(Some(1), false, false)).unwrap();
    assert!(out.unchanged);
    assert_eq!(leftovers(&storage), Vec::<String>::new());
    let crashed = storage.crash(CrashMode::DropUnsynced);
    assert_eq!(leftovers(&crashed), Vec::<String>::new());
    assert_eq!(seqs(&crashed), (1..=40).collect::<Vec<_>>());
}

/// A dry run changes nothing, even when it fails: a temporary it did not write stays.
#[test]
fn a_dry_run_that_fails_leaves_leftovers_alone() {
    let storage = built(120, 200);
    storage.set_file_bytes(&dir().join("00000000000000000099.wal.tmp"), vec![1; 100]);
    let dry = Compaction {
        dry_run: true,
        ..plan(Some(51), false, false)
    };
    // Reads fail from the copy pass on, past the survey.
    let mut observe = |pass, _| {
        if pass == walctl::Pass::Copy {
            let fail_reads = |o: &OpRecord| (o.op == TraceOp::Read).then_some(Fault::Errno(5));
            storage.set_faults(Some(Box::new(fail_reads)));
        }
    };
    let failed = walctl::compact_observed(&dir(), &plain(&storage), &dry, &mut observe);
    storage.set_faults(None);
    assert!(failed.is_err());
    assert_eq!(leftovers(&storage), ["00000000000000000099.wal.tmp"]);
}
