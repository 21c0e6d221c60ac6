//! One writer at a time; and the readers' lock, which compaction takes exclusively to remove
//! old segments and every scan holds shared (FORMAT.md §6.6).

use std::time::{Duration, Instant};
use walctl::{ErrorKind, Log, Options};

#[test]
fn second_writer_is_refused_with_the_lock_named() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Log::open(tmp.path(), Options::default()).unwrap();
    // A second open has its own open file description, so flock excludes it as it would
    // another process.
    let err = Log::open(tmp.path(), Options::default()).unwrap_err();
    match err.kind() {
        ErrorKind::Locked { path } => assert_eq!(path, &tmp.path().join("LOCK")),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("LOCK"), "{err}");
    drop(first);
    Log::open(tmp.path(), Options::default()).expect("released when the first writer closed");
}

#[test]
fn second_writer_waits_for_the_lock_within_its_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Log::open(tmp.path(), Options::default()).unwrap();
    let path = tmp.path().to_path_buf();
    let waiter = std::thread::spawn(move || {
        let opts = Options {
            lock_wait: Some(Duration::from_secs(30)),
            ..Options::default()
        };
        Log::open(&path, opts).map(|l| l.append(b"second").unwrap().seq)
    });
    std::thread::sleep(Duration::from_millis(100));
    first.append(b"first").unwrap();
    drop(first);
    assert_eq!(waiter.join().unwrap().unwrap(), 2);
    let start = Instant::now();
    let _holder = Log::open(tmp.path(), Options::default()).unwrap();
    let opts = Options {
        lock_wait: Some(Duration::from_millis(50)),
        ..Options::default()
    };
    assert!(matches!(
        Log::open(tmp.path(), opts).unwrap_err().kind(),
        ErrorKind::Locked { .. }
    ));
    assert!(
        start.elapsed() >= Duration::from_millis(50),
        "it waited before giving up"
    );
}

#[test]
fn readers_need_no_lock_and_see_a_live_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default()).unwrap();
    log.append(b"visible before sync").unwrap();
    let report = walctl::verify(tmp.path()).unwrap();
    assert!(report.writer_active);
    assert_eq!(
        (report.records, report.verdict()),
        (1, walctl::Verdict::Clean)
    );
}

/// The writer lock as an `flock` behaves: lent to a forked child until it execs, so it can
/// look held for a moment after its writer let go. Counted, so the tests see every look.
mod lent {
    use crate::util::{Hooked, Hooks, dir, plain};
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;
    use walctl::repair::LENT_LOCK_GRACE;
    use walctl::storage::{LockKind, MemStorage};
    use walctl::{ErrorKind, Log, Options};

    /// Refuses the first `refusals` exclusive locks on `LOCK` (`u64::MAX`: all of them).
    #[derive(Debug)]
    struct Lent {
        lends: bool,
        refusals: u64,
        looks: AtomicU64,
    }

    impl Hooks for Arc<Lent> {
        fn refuse_lock(&self, path: &Path, kind: LockKind) -> bool {
            if kind != LockKind::Exclusive || path != dir().join("LOCK") {
                return false;
            }
            self.looks.fetch_add(1, Ordering::SeqCst) < self.refusals
        }
        fn lends_locks(&self) -> bool {
            self.lends
        }
    }

    /// Opens a writer with no `lock_wait`; returns the result and how often `LOCK` was tried.
    fn open(lends: bool, refusals: u64) -> (walctl::Result<Log>, u64) {
        let hooks = Arc::new(Lent {
            lends,
            refusals,
            looks: AtomicU64::new(0),
        });
        let inner = MemStorage::new();
        let opts = Options {
            storage: Hooked::storage(&inner, Arc::clone(&hooks)),
            lock_wait: None,
            ..plain(&inner)
        };
        let result = Log::open(dir(), opts);
        (result, hooks.looks.load(Ordering::SeqCst))
    }

    #[test]
    fn a_lock_lent_to_a_child_for_a_moment_does_not_refuse_the_reopen() {
        let (result, looks) = open(true, 1);
        let log = result.expect("the second look finds the lock free");
        assert_eq!(log.append(b"after the grace").unwrap().seq, 1);
        assert_eq!(looks, 2);
    }

    #[test]
    fn where_locks_are_never_lent_a_held_lock_refuses_at_once() {
        let (result, looks) = open(false, 1);
        assert!(matches!(
            result.unwrap_err().kind(),
            ErrorKind::Locked { .. }
        ));
        assert_eq!(looks, 1);
    }

    #[test]
    fn a_lock_held_past_the_grace_refuses_the_open() {
        let start = Instant::now();
        let (result, looks) = open(true, u64::MAX);
        let err = result.unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Locked { .. }), "{err}");
        assert!(
            start.elapsed() >= LENT_LOCK_GRACE,
            "it looked for the whole grace"
        );
        // Pauses of 1, 2, 4 ms and the rest of the grace: a handful of looks, not a spin.
        assert!((2..=6).contains(&looks), "{looks} looks");
    }
}

mod readers {
    use crate::util::{built, dir, plain, scan, segments};
    use std::ops::ControlFlow;
    use std::time::Duration;
    use walctl::storage::{LockKind, MemStorage, Storage};
    use walctl::{Options, Verdict};

    fn readers_lock() -> std::path::PathBuf {
        dir().join("READERS")
    }

    fn compact_before_51(storage: &MemStorage, wait: Duration) -> walctl::CompactReport {
        let opts = Options {
            lock_wait: Some(wait),
            ..plain(storage)
        };
        let plan = crate::util::before(51);
        walctl::compact(&dir(), &opts, &plan).unwrap()
    }

    #[test]
    fn a_compaction_beside_a_scan_leaves_the_segments_the_scan_still_reads() {
        let storage = built(120, 200);
        let mut seen = Vec::new();
        let mut deferred = None;
        let report = walctl::scan_log(&storage, &dir(), &mut |r| {
            if deferred.is_none() {
                deferred = Some(compact_before_51(&storage, Duration::from_millis(20)));
            }
            seen.push(r.seq);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert!(deferred.unwrap().cleanup_deferred, "the scan held the lock");
        assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
        assert_eq!(seen, (1..=120).collect::<Vec<_>>(), "the old log, whole");
    }

    #[test]
    fn a_compaction_waits_for_a_reader_that_lets_go_within_lock_wait() {
        let storage = built(120, 200);
        let old = segments(&storage);
        let reader = storage.try_lock(&readers_lock(), LockKind::Shared).unwrap();
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(reader);
        });
        let out = compact_before_51(&storage, Duration::from_secs(60));
        letting_go.join().unwrap();
        assert!(!out.cleanup_deferred, "it waited for the reader");
        // In place: the head is gone, the segment holding 51 was replaced, the rest kept.
        let gone = old
            .iter()
            .take_while(|p| storage.file_bytes(p).is_none())
            .count();
        assert!(gone > 0, "the head was removed");
        assert!(old[gone..].iter().all(|p| storage.file_bytes(p).is_some()));
        assert_eq!(
            (out.segments_removed, out.segments_rewritten),
            (gone as u64, 1)
        );
    }

    #[test]
    fn a_scan_waits_while_a_compaction_holds_the_readers_lock() {
        let storage = built(20, 200);
        let compaction = storage
            .try_lock(&readers_lock(), LockKind::Exclusive)
            .unwrap();
        let reading = {
            let storage = storage.clone();
            std::thread::spawn(move || scan(&storage, &dir()).1.len())
        };
        // A scan waits up to 10 s; one that did not wait is done long before this.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !reading.is_finished(),
            "the scan went on under the compaction"
        );
        drop(compaction);
        assert_eq!(reading.join().unwrap(), 20);
    }

    #[test]
    fn writers_and_compaction_create_the_readers_lock_file_where_it_is_missing() {
        // A log written before the readers' lock existed has none; a scan never creates it.
        let storage = MemStorage::new();
        drop(walctl::Log::open(dir(), plain(&storage)).unwrap());
        assert!(
            storage.file_bytes(&readers_lock()).is_some(),
            "open made it"
        );
        let storage = built(120, 200);
        storage.remove(&readers_lock()).unwrap();
        scan(&storage, &dir());
        assert!(
            storage.file_bytes(&readers_lock()).is_none(),
            "a scan changes nothing"
        );
        compact_before_51(&storage, Duration::from_millis(20));
        assert!(
            storage.file_bytes(&readers_lock()).is_some(),
            "compaction made it"
        );
    }
}
