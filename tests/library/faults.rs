//! I/O-error sweep (SQLite's countdown, redb's fault backend): fail the N-th call of each kind
//! of storage operation, with each error, transiently and persistently, for every N until no
//! fault fires. The error must surface, nothing may panic, no sync may be acknowledged after a
//! failed one (the writer is poisoned), and a reopen after a power loss must recover every
//! record of the last successful sync.

use crate::util::{dir, options, payload};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use walctl::storage::{CrashMode, Fault, MemStorage, TraceOp};
use walctl::{Compaction, ErrorKind, Log};

/// Runs a workload of appends (some rotating, some `append_and_sync`), syncs, a reopen, a repair and a compaction.
/// Returns (records acknowledged by a successful sync, appends that returned Ok).
fn workload(storage: &MemStorage) -> (u64, u64) {
    let (mut acked, mut appended) = (0u64, 0u64);
    let Ok(log) = Log::open(dir(), options(storage)) else {
        return (0, 0);
    };
    let mut failed_sync = false;
    for i in 1..=24u64 {
        let len = if i % 6 == 0 { 9000 } else { 150 };
        if i % 5 == 0 {
            // A deferred write: the sync's leader writes it (group commit).
            match log.append_and_sync(&walctl::Entry::data(&payload(appended + 1, len))) {
                Ok(a) => {
                    assert!(
                        !failed_sync,
                        "an append_and_sync succeeded after a failed sync"
                    );
                    assert_eq!(a.seq, appended + 1, "no record after a partial one");
                    appended += 1;
                    acked = appended;
                }
                Err(e) => {
                    assert!(!matches!(e.kind(), ErrorKind::Corrupt { .. }), "{e}");
                    // The record may be on disk without its sync having succeeded.
                    appended += 1;
                    failed_sync = true;
                }
            }
            continue;
        }
        match log.append(&payload(appended + 1, len)) {
            Ok(a) => {
                assert!(!failed_sync, "an append succeeded after a failed sync");
                assert_eq!(a.seq, appended + 1, "no record after a partial one");
                appended += 1;
            }
            Err(e) => assert!(!matches!(e.kind(), ErrorKind::Corrupt { .. }), "{e}"),
        }
        if i % 4 == 0 {
            match log.sync() {
                Ok(()) => {
                    assert!(!failed_sync, "a sync was acknowledged after a failed one");
                    acked = appended;
                }
                Err(_) => failed_sync = true,
            }
        }
    }
    drop(log);
    let opts = options(storage);
    let _ = walctl::truncate_partial(&dir(), &opts, false);
    let _ = walctl::compact(
        &dir(),
        &opts,
        &Compaction {
            before: None,
            keys: true,
            dry_run: false,
            rewrite: false,
        },
    );
    if let Ok(log) = Log::open(dir(), options(storage)) {
        acked = log.next_seq() - 1; // open syncs what it finds
    }
    (acked, appended)
}

fn faults() -> Vec<(TraceOp, Fault)> {
    let mut out = Vec::new();
    for op in [
        TraceOp::Write,
        TraceOp::SyncData,
        TraceOp::SetLen,
        TraceOp::SyncDir,
        TraceOp::Rename,
        TraceOp::Create,
        TraceOp::Open,
        TraceOp::Remove,
        TraceOp::Read,
        TraceOp::List,
        TraceOp::Lock,
    ] {
        for errno in [libc_eio(), 28 /* ENOSPC */, 4 /* EINTR */] {
            out.push((op, Fault::Errno(errno)));
        }
    }
    out.push((TraceOp::Write, Fault::ShortWrite(7)));
    out.push((TraceOp::SyncData, Fault::FsyncGate));
    out
}

fn libc_eio() -> i32 {
    5
}

#[test]
fn every_fault_at_every_call_surfaces_and_loses_no_synced_record() {
    let mut runs = 0u64;
    let injected = Arc::new(AtomicU64::new(0));
    for (kind, fault) in faults() {
        for persistent in [false, true] {
            for n in 1.. {
                let storage = MemStorage::new();
                let seen = Arc::new(AtomicU64::new(0));
                let fired = Arc::new(AtomicU64::new(0));
                let (s, f) = (Arc::clone(&seen), Arc::clone(&fired));
                storage.set_faults(Some(Box::new(move |op| {
                    if op.op != kind {
                        return None;
                    }
                    let i = s.fetch_add(1, Ordering::SeqCst) + 1;
                    (i == n || (persistent && i > n)).then(|| {
                        f.fetch_add(1, Ordering::SeqCst);
                        fault
                    })
                })));
                let (acked, appended) = workload(&storage);
                storage.set_faults(None);
                runs += 1;
                for mode in [CrashMode::DropUnsynced, CrashMode::KeepAll] {
                    check(
                        &storage.crash(mode),
                        acked,
                        appended,
                        &format!("{kind:?} {fault:?} n={n} persistent={persistent} {mode:?}"),
                    );
                }
                let count = fired.load(Ordering::SeqCst);
                injected.fetch_add(count, Ordering::SeqCst);
                if count == 0 {
                    break;
                }
            }
        }
    }
    println!(
        "fault sweep: {runs} runs, {fired} faults injected",
        fired = injected.load(Ordering::SeqCst)
    );
    assert!(runs > 1000, "{runs} fault runs");
}

fn check(storage: &MemStorage, acked: u64, appended: u64, what: &str) {
    let Some((_log, records)) =
        crate::util::reopen_after_crash(storage, options(storage), acked, what)
    else {
        return;
    };
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{what}: order");
    assert!(
        records.iter().all(|r| r.seq <= appended.max(acked)),
        "{what}: phantom record"
    );
    // Compaction may drop superseded records, so count what must survive by sequence number:
    // every acknowledged keyless record (the workload's records are all keyless).
    let kept = records.iter().filter(|r| r.seq <= acked).count() as u64;
    assert_eq!(
        kept, acked,
        "{what}: {kept} of {acked} acknowledged records survived"
    );
}
