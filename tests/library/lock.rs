//! One writer at a time.

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
