//! The compaction marker (FORMAT.md §6.6) as readers and writers read it, and the estimate a
//! dry run gives of the log a compaction would leave. The fifth mutation run (TESTING.md,
//! family 10) found both free to change.

use crate::util::{built, dir, plain, scan};
use walctl::storage::{Fault, MemStorage, TraceOp};
use walctl::{Compaction, ErrorKind, Log};

const MARKER: &str = "COMPACTION";

/// `scan_log` and a writer's open of the log in `storage`, as errors (`Ok` where one worked).
fn readers_and_writers(storage: &MemStorage) -> [Result<(), walctl::Error>; 2] {
    let scanned = walctl::scan_log(
        storage,
        &dir(),
        &mut |_| std::ops::ControlFlow::Continue(()),
    );
    let opened = Log::open(dir(), plain(storage));
    [scanned.map(drop), opened.map(drop)]
}

#[test]
fn a_marker_whose_segment_ranges_do_not_follow_each_other_is_refused() {
    // The old log's range ends before the new one's starts, and neither range is empty:
    // anything else is no marker this program wrote, and acting on it could remove segments.
    for (old_first, old_last, new_first, new_last) in
        [(3, 2, 5, 6), (1, 2, 2, 3), (1, 2, 4, 3), (1, 3, 2, 4)]
    {
        let storage = built(40, 500);
        let marker = format!(
            r#"{{"version":1,"old_first":{old_first},"old_last":{old_last},"new_first":{new_first},"new_last":{new_last}}}"#
        );
        storage.set_file_bytes(&dir().join(MARKER), marker.clone().into_bytes());
        let files = crate::util::data_files(&storage);
        for result in readers_and_writers(&storage) {
            let err = result.expect_err(&marker);
            assert!(
                matches!(err.kind(), ErrorKind::NotALog { .. }),
                "{marker}: {err}"
            );
            assert!(err.to_string().contains("compaction marker"), "{err}");
        }
        assert!(
            crate::util::data_files(&storage) == files,
            "{marker}: a file changed"
        );
    }
}

#[test]
fn a_marker_that_cannot_be_opened_is_an_error_not_an_absent_marker() {
    // Taking it for absent would show readers the old and the new segments as one log.
    let storage = built(40, 500);
    storage.set_file_bytes(&dir().join(MARKER), b"{}".to_vec());
    storage.set_faults(Some(Box::new(|op| {
        (op.op == TraceOp::Open && op.path.ends_with(MARKER)).then_some(Fault::Errno(5))
    })));
    for result in readers_and_writers(&storage) {
        let err = result.expect_err("the marker's open failed");
        assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err}");
        assert!(err.to_string().contains(MARKER), "{err}");
    }
}

#[test]
fn a_dry_runs_estimate_is_what_the_compaction_then_leaves_for_records_of_one_size() {
    // 128-byte records pack a 16 KiB segment's 4 KiB of data space exactly, so the estimate
    // from the old log's average record size is exact.
    for before in [2, 30, 33, 65, 200] {
        let storage = built(200, 96);
        let plan = Compaction {
            before: Some(before),
            keys: false,
            dry_run: true,
            rewrite: false,
        };
        let estimate = walctl::compact(&dir(), &plain(&storage), &plan).unwrap();
        let plan = Compaction {
            dry_run: false,
            ..plan
        };
        let done = walctl::compact(&dir(), &plain(&storage), &plan).unwrap();
        let (report, _) = scan(&storage, &dir());
        let after = (report.bytes, report.segments.len() as u64);
        assert_eq!(
            (estimate.after.bytes, estimate.after.segments),
            after,
            "before {before}"
        );
        assert_eq!(
            (done.after.bytes, done.after.segments),
            after,
            "before {before}"
        );
    }
}
