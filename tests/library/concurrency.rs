//! Many threads appending and syncing through one handle.

use crate::util::{dir, options, scan};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use walctl::storage::{MemStorage, TraceOp};
use walctl::{Entry, Log, Verdict};

#[test]
fn many_threads_append_and_sync_every_record_once_contiguous() {
    // The default poll, none (waiters park at once), and one too long for the clock to add.
    for poll in [None, Some(Duration::ZERO), Some(Duration::MAX)] {
        many_threads_with_poll(poll);
    }
}

fn many_threads_with_poll(poll: Option<Duration>) {
    let storage = MemStorage::new();
    let mut opts = options(&storage);
    if let Some(poll) = poll {
        opts.sync_poll = poll;
    }
    let log = Arc::new(Log::open(dir(), opts).unwrap());
    let threads = 8;
    let per_thread = 300u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for i in 0..per_thread {
                    let payload = format!("t{t}-{i}");
                    let a = if i % 3 == 0 {
                        log.append_and_sync(&Entry::data(payload.as_bytes()))
                            .unwrap()
                    } else {
                        log.append(payload.as_bytes()).unwrap()
                    };
                    assert!(log.durable_seq() <= log.next_seq());
                    seqs.push((a.seq, payload));
                }
                log.sync().unwrap();
                seqs
            })
        })
        .collect();
    let mut expected = Vec::new();
    for h in handles {
        expected.extend(h.join().unwrap());
    }
    drop(log);
    let (report, records) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean);
    assert_eq!(records.len() as u64, threads * per_thread);
    expected.sort();
    let seen: HashSet<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seen.len(), records.len(), "every record once");
    for (r, (seq, payload)) in records.iter().zip(&expected) {
        assert_eq!((r.seq, &r.payload), (*seq, &payload.as_bytes().to_vec()));
    }
}

#[test]
fn concurrent_syncs_coalesce_into_fewer_fdatasyncs() {
    // A slow disk: every fdatasync takes 2 ms, so callers queue behind the leader's sync.
    let storage = MemStorage::new();
    storage.set_faults(Some(Box::new(|op| {
        if op.op == TraceOp::SyncData {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        None
    })));
    let log = Arc::new(Log::open(dir(), options(&storage)).unwrap());
    let before = storage.op_count() as usize;
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for _ in 0..20 {
                    log.append_and_sync(&Entry::data(b"x")).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(log.durable_seq(), 320);
    let trace = storage.trace();
    let syncs = trace[before..]
        .iter()
        .filter(|op| op.op == TraceOp::SyncData)
        .count();
    assert!(
        syncs < 160,
        "{syncs} fdatasyncs for 320 synced appends: no group commit"
    );
    drop(log);
    let (report, records) = scan(&storage, &dir());
    assert_eq!((report.verdict(), records.len()), (Verdict::Clean, 320));
}

#[test]
fn a_failed_group_sync_fails_every_waiter_and_loses_no_acknowledged_record() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use walctl::storage::{CrashMode, Fault};
    // Fail the n-th fdatasync while 16 writers queue behind it (each sync takes 1 ms). Every
    // writer must return (a lost wake-up would hang here), none may be acknowledged after
    // the failure, and every acknowledged record must survive a power loss.
    for fail_at in [1u64, 2, 5, 9] {
        let storage = MemStorage::new();
        let log = Arc::new(Log::open(dir(), options(&storage)).unwrap());
        let syncs = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&syncs);
        storage.set_faults(Some(Box::new(move |op| {
            if op.op != TraceOp::SyncData {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            (counter.fetch_add(1, Ordering::SeqCst) + 1 == fail_at).then_some(Fault::Errno(5))
        })));
        let handles: Vec<_> = (0..16)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0..10 {
                        let payload = format!("t{t}-{i}");
                        match log.append_and_sync(&Entry::data(payload.as_bytes())) {
                            Ok(a) => acked.push((a.seq, payload)),
                            Err(_) => break,
                        }
                    }
                    acked
                })
            })
            .collect();
        let mut acked = Vec::new();
        for h in handles {
            acked.extend(h.join().unwrap());
        }
        assert!(log.is_poisoned(), "fail_at={fail_at}");
        assert!(log.append_and_sync(&Entry::data(b"late")).is_err());
        drop(log);
        storage.set_faults(None);
        let crashed = storage.crash(CrashMode::DropUnsynced);
        let (report, records) = scan(&crashed, &dir());
        assert_ne!(report.verdict(), Verdict::Corrupt, "fail_at={fail_at}");
        for (seq, payload) in &acked {
            let found = records.iter().find(|r| r.seq == *seq);
            assert_eq!(
                found.map(|r| r.payload.as_slice()),
                Some(payload.as_bytes()),
                "fail_at={fail_at}: acknowledged record {seq} lost"
            );
        }
    }
}

#[test]
fn callers_that_arrive_during_a_slow_sync_wait_for_it_and_then_lead_their_own() {
    use std::sync::mpsc;
    use walctl::storage::CrashMode;
    // Each fdatasync takes 50 ms and announces its start. B arrives during A's sync and C
    // during B's: each must wait (B with no round measured yet, so it polls first; C after a
    // round far longer than the poll, so it parks at once), be woken as the next leader, and
    // return only once its own record is durable. At every poll setting.
    for poll in [Duration::ZERO, Duration::from_micros(250), Duration::MAX] {
        let storage = MemStorage::new();
        let log = Arc::new(
            Log::open(
                dir(),
                walctl::Options {
                    sync_poll: poll,
                    ..options(&storage)
                },
            )
            .unwrap(),
        );
        let before = storage.op_count() as usize;
        let (started, syncing) = mpsc::channel();
        storage.set_faults(Some(Box::new(move |op| {
            if op.op == TraceOp::SyncData {
                let _ = started.send(());
                std::thread::sleep(Duration::from_millis(50));
            }
            None
        })));
        let caller = |name: &'static str| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || log.append_and_sync(&Entry::data(name.as_bytes())))
        };
        let a = caller("a");
        syncing.recv().unwrap();
        let b = caller("b");
        syncing.recv().unwrap();
        let c = caller("c");
        let seqs: Vec<u64> = [a, b, c].map(|h| h.join().unwrap().unwrap().seq).to_vec();
        assert_eq!(seqs, [1, 2, 3], "{poll:?}");
        let syncs = storage.trace()[before..]
            .iter()
            .filter(|op| op.op == TraceOp::SyncData)
            .count();
        assert_eq!(syncs, 3, "one round per caller, {poll:?}");
        drop(log);
        storage.set_faults(None);
        let (_, records) = scan(&storage.crash(CrashMode::DropUnsynced), &dir());
        let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
        assert_eq!(payloads, [b"a", b"b", b"c"], "{poll:?}");
    }
}
