//! The fields of repair's plan and result (`truncate_partial`): exactly the bytes after the
//! valid prefix, the side file that keeps them under a free name with their digest, and the
//! errors of the lock, the journal and the side file itself, each leaving the log uncut (and a
//! side file that could not be written removed); what
//! a cut keeps and drops, as repair and the writer's open report it.

use crate::report_fields::{rotated, torn_tail};
use crate::util::{dir, edit, plain as options, segments};

#[test]
fn repairs_dry_run_plans_to_cut_exactly_the_bytes_after_the_valid_prefix() {
    let (storage, last, len) = torn_tail();
    let (report, outcome) = walctl::truncate_partial(&dir(), &options(&storage), true).unwrap();
    let seg = report.segments.last().unwrap();
    let walctl::RepairOutcome::Cut(plan) = outcome else {
        panic!("a torn tail was not planned for: {outcome:?}");
    };
    assert_eq!(
        (plan.segment, plan.offset, plan.length, plan.last_seq),
        (
            seg.segment,
            seg.valid_len,
            len - seg.valid_len,
            report.last_seq
        )
    );
    assert_eq!(
        storage.file_bytes(&last).unwrap().len() as u64,
        len,
        "a dry run"
    );
}

/// A rotated log whose last segment ends in a torn record and then garbage: 1.5 MiB to save,
/// more than the 1 MiB repair copies at a time. Returns the storage and that segment.
fn long_torn_tail() -> (walctl::storage::MemStorage, std::path::PathBuf) {
    let storage = rotated(60, 3);
    let last = segments(&storage).pop().unwrap();
    edit(&storage, &last, |b| {
        b.truncate(b.len() - 7);
        b.extend((0..3u32 << 19).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    });
    (storage, last)
}

#[test]
fn repair_saves_the_cut_bytes_under_a_free_name_with_their_digest() {
    use sha2::Digest;
    let (storage, last) = long_torn_tail();
    let before = storage.file_bytes(&last).unwrap();
    let opts = options(&storage);
    let (_, planned) = walctl::truncate_partial(&dir(), &opts, true).unwrap();
    let walctl::RepairOutcome::Cut(plan) = planned else {
        panic!("no cut planned: {planned:?}");
    };
    assert!(plan.length > 1 << 20, "{plan:?}");
    // An earlier cut at the same offset keeps its name; this one takes the next free one.
    let seg_name = last.file_name().unwrap().to_str().unwrap();
    let taken = format!("{seg_name}.cut-{:020}", plan.offset);
    storage.set_file_bytes(&dir().join(&taken), b"an earlier cut".to_vec());
    let (_, done) = walctl::truncate_partial(&dir(), &opts, false).unwrap();
    let walctl::RepairOutcome::Cut(cut) = done else {
        panic!("nothing was cut: {done:?}");
    };
    assert_eq!(cut.side_file, format!("{taken}-1"));
    let saved = storage
        .file_bytes(&dir().join(format!("{taken}-1")))
        .unwrap();
    assert_eq!(saved, before[plan.offset as usize..]);
    let digest: String = sha2::Sha256::digest(&saved)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(cut.sha256, digest);
    assert_eq!(
        storage.file_bytes(&dir().join(&taken)).unwrap(),
        b"an earlier cut"
    );
}

#[test]
fn repair_reports_the_locks_the_journals_and_the_side_files_own_errors() {
    use walctl::storage::{Fault, OpRecord, TraceOp};
    // EIO taking the lock, opening the journal or creating the side file: the repair refuses
    // with that error, not with what a retry or a fallback would meet next (another writer, a
    // name that exists, too many names), and cuts nothing.
    let cases = [
        (TraceOp::Lock, "LOCK"),
        (TraceOp::Open, "repair.jsonl"),
        (TraceOp::Create, ".cut-"),
    ];
    for (op, name) in cases {
        let (storage, last, _) = torn_tail();
        let before = storage.file_bytes(&last).unwrap();
        storage.set_faults(Some(Box::new(move |o: &OpRecord| {
            (o.op == op && o.path.to_string_lossy().contains(name)).then_some(Fault::Errno(5))
        })));
        let err = walctl::truncate_partial(&dir(), &options(&storage), false).unwrap_err();
        storage.set_faults(None);
        let walctl::ErrorKind::Io { source, .. } = err.kind() else {
            panic!("{name}: {err}");
        };
        assert_eq!(source.raw_os_error(), Some(5), "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
        assert_eq!(
            storage.file_bytes(&last).unwrap(),
            before,
            "{name}: nothing cut"
        );
    }
}

#[test]
fn a_side_file_the_disk_has_no_room_for_is_removed_and_the_retry_cuts_once_there_is() {
    use walctl::storage::{Fault, OpRecord, TraceOp};
    // A full disk when the side file is created or while the tail is copied (the first or the
    // second MiB), or a failed fdatasync of the copy: nothing is cut, so the partial copy and a
    // journal this repair created are removed. Left behind, every retry on a full disk would take another side file's space.
    let (storage, last) = long_torn_tail();
    let before = storage.file_bytes(&last).unwrap();
    let files_before = storage.files();
    let cases = [
        (TraceOp::Create, 0, 28),
        (TraceOp::Write, 0, 28),
        (TraceOp::Write, 1 << 20, 28),
        (TraceOp::SyncData, 0, 5),
    ];
    for (op, at, errno) in cases {
        storage.set_faults(Some(Box::new(move |o: &OpRecord| {
            let side = o.path.to_string_lossy().contains(".cut-");
            (side && o.op == op && o.offset == at).then_some(Fault::Errno(errno))
        })));
        let err = walctl::truncate_partial(&dir(), &options(&storage), false).unwrap_err();
        storage.set_faults(None);
        let case = format!("{op:?} at {at}: {err}");
        let walctl::ErrorKind::Io { source, path, .. } = err.kind() else {
            panic!("{case}");
        };
        assert_eq!(source.raw_os_error(), Some(errno), "{case}");
        assert!(path.to_string_lossy().contains(".cut-"), "{case}");
        if op == TraceOp::Write {
            assert_eq!(err.offset(), Some(at), "{case}");
            assert!(
                err.to_string().contains(&format!("at offset {at}")),
                "{case}"
            );
        }
        assert_eq!(storage.file_bytes(&last).unwrap(), before, "{case}: cut");
        assert_eq!(storage.files(), files_before, "{case}: files left");
    }
    let (_, done) = walctl::truncate_partial(&dir(), &options(&storage), false).unwrap();
    let walctl::RepairOutcome::Cut(cut) = done else {
        panic!("nothing was cut: {done:?}");
    };
    let seg_name = last.file_name().unwrap().to_str().unwrap();
    assert_eq!(cut.side_file, format!("{seg_name}.cut-{:020}", cut.offset));
}

#[test]
fn repair_refuses_when_every_side_file_name_is_taken_and_cuts_nothing() {
    // A thousand earlier cuts at the same offset: the search for a free name is bounded, and
    // running out of names must refuse the cut, never overwrite an earlier side file.
    let (storage, last, _) = torn_tail();
    let before = storage.file_bytes(&last).unwrap();
    let (_, planned) = walctl::truncate_partial(&dir(), &options(&storage), true).unwrap();
    let walctl::RepairOutcome::Cut(plan) = planned else {
        panic!("no cut planned: {planned:?}");
    };
    let seg_name = last.file_name().unwrap().to_str().unwrap();
    let base = format!("{seg_name}.cut-{:020}", plan.offset);
    for attempt in 0..1000 {
        let name = if attempt == 0 {
            base.clone()
        } else {
            format!("{base}-{attempt}")
        };
        storage.set_file_bytes(&dir().join(name), vec![attempt as u8]);
    }
    let err = walctl::truncate_partial(&dir(), &options(&storage), false).unwrap_err();
    assert!(err.to_string().contains("too many side files"), "{err}");
    assert_eq!(storage.file_bytes(&last).unwrap(), before, "nothing cut");
    let kept = storage.file_bytes(&dir().join(format!("{base}-999")));
    assert_eq!(
        kept,
        Some(vec![(999 % 256) as u8]),
        "no side file overwritten"
    );
}

#[test]
fn repair_and_the_writers_open_name_the_last_record_before_the_cut_and_count_those_after() {
    // Synced through 5; 6 to 8 were not, and the crash damaged 6, leaving 7 and 8 valid after
    // it. The cut starts at 6: 5 survives, and the two valid records past the damage go.
    let storage = walctl::storage::MemStorage::new();
    let log = walctl::Log::open(dir(), options(&storage)).unwrap();
    crate::util::append_n(&log, 5, 100);
    log.sync().unwrap();
    crate::util::append_n(&log, 3, 100);
    let storage = storage.crash(walctl::storage::CrashMode::KeepAll);
    drop(log);
    let (_, records) = crate::util::scan(&storage, &dir());
    let sixth = records[5].location;
    let path = segments(&storage).pop().unwrap();
    assert_eq!(
        path,
        dir().join(walctl::segment::segment_name(sixth.segment))
    );
    edit(&storage, &path, |b| b[sixth.offset as usize + 40] ^= 1);
    let (_, outcome) = walctl::truncate_partial(&dir(), &options(&storage), true).unwrap();
    let walctl::RepairOutcome::Cut(plan) = outcome else {
        panic!("a torn tail was not planned for: {outcome:?}");
    };
    assert_eq!(
        (plan.offset, plan.last_seq, plan.records_lost),
        (sixth.offset, Some(5), 2)
    );
    let log = walctl::Log::open(dir(), options(&storage)).unwrap();
    let cut = log
        .open_report()
        .cut
        .clone()
        .expect("the open cut the tail");
    assert_eq!(
        (cut.offset, cut.last_seq, cut.records_lost),
        (sixth.offset, Some(5), 2)
    );
    assert_eq!(log.next_seq(), 6);
}
