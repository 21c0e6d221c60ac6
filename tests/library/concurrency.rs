//! Many threads appending and syncing through one handle.

use crate::util::{dir, options, scan};
use std::collections::HashSet;
use std::sync::Arc;
use walctl::storage::{MemStorage, TraceOp};
use walctl::{Entry, Log, Verdict};

#[test]
fn many_threads_append_and_sync_every_record_once_contiguous() {
    let storage = MemStorage::new();
    let log = Arc::new(Log::open(dir(), options(&storage)).unwrap());
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
