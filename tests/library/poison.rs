//! Fail-stop after I/O errors: a failed fsync poisons the writer, a failed write is cut back.

use crate::util::{dir, options, payload, scan};
use walctl::storage::{CrashMode, Fault, MemStorage, TraceOp};
use walctl::{ErrorKind, Log, Verdict};

#[test]
fn failed_fsync_poisons_the_writer_and_reopen_recovers() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    log.append(b"one").unwrap();
    log.sync().unwrap();
    log.append(b"two").unwrap();
    storage.set_faults(Some(Box::new(|op| {
        (op.op == TraceOp::SyncData).then_some(Fault::FsyncGate)
    })));
    let err = log.sync().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{err}"
    );
    storage.set_faults(None);
    // The fsyncgate case: the next fsync would "succeed"; the writer must not believe it.
    for _ in 0..2 {
        assert!(matches!(
            log.sync().unwrap_err().kind(),
            ErrorKind::Poisoned { .. }
        ));
        assert!(matches!(
            log.append(b"three").unwrap_err().kind(),
            ErrorKind::Poisoned { .. }
        ));
    }
    assert!(log.is_poisoned());
    assert_eq!(log.records().unwrap().len(), 2, "reads still work");
    drop(log);
    let crashed = storage.crash(CrashMode::DropUnsynced);
    let reopened = Log::open(dir(), options(&crashed)).unwrap();
    let records = reopened.records().unwrap();
    assert_eq!(records[0].payload, b"one", "the synced record survived");
    assert!(records.len() <= 2);
    assert_eq!(
        reopened.append(b"after").unwrap().seq,
        records.len() as u64 + 1
    );
}

#[test]
fn failed_write_is_truncated_back_and_the_writer_goes_on() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    log.append(&payload(1, 100)).unwrap();
    storage.set_faults(Some(Box::new(|op| {
        (op.op == TraceOp::Write).then_some(Fault::ShortWrite(10))
    })));
    let err = log.append(&payload(2, 100)).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Io { op: "write", .. }),
        "{err}"
    );
    storage.set_faults(None);
    assert!(!log.is_poisoned(), "the partial write was cut back");
    assert_eq!(
        log.append(&payload(2, 100)).unwrap().seq,
        2,
        "no record after a partial one"
    );
    log.sync().unwrap();
    drop(log);
    let (report, records) = scan(&storage, &dir());
    assert_eq!((report.verdict(), records.len()), (Verdict::Clean, 2));
}

#[test]
fn failed_write_whose_truncation_also_fails_poisons() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    storage.set_faults(Some(Box::new(|op| match op.op {
        TraceOp::Write => Some(Fault::ShortWrite(5)),
        TraceOp::SetLen => Some(Fault::Errno(5)),
        _ => None,
    })));
    assert!(log.append(b"payload").is_err());
    storage.set_faults(None);
    assert!(matches!(
        log.append(b"again").unwrap_err().kind(),
        ErrorKind::Poisoned { .. }
    ));
}

#[test]
fn too_large_records_and_keys_are_refused_before_any_write() {
    let storage = MemStorage::new();
    let opts = walctl::Options {
        record_size_max: 1000,
        key_size_max: 8,
        ..options(&storage)
    };
    let log = Log::open(dir(), opts).unwrap();
    let before = storage.op_count();
    let err = log.append(&[0u8; 1001]).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::RecordTooLarge {
            size: 1001,
            size_max: 1000
        }
    ));
    let err = log
        .append_entry(&walctl::Entry::keyed(b"123456789", b""))
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::KeyTooLarge {
            size: 9,
            size_max: 8
        }
    ));
    assert_eq!(storage.op_count(), before, "nothing touched the storage");
    assert!(!log.is_poisoned());

    // The limits are inclusive: a key of exactly 8 bytes, and key plus payload of exactly 1000.
    let at_limit = log
        .append_entry(&walctl::Entry::keyed(b"12345678", &[1u8; 992]))
        .expect("a record at both limits");
    assert_eq!(at_limit.seq, 1);
    log.append(&[0u8; 1000])
        .expect("a payload at the record limit");
}

#[test]
fn a_tombstone_without_a_key_or_with_a_payload_is_refused_not_a_panic() {
    // `Entry`'s fields are public, so a caller can build what the format forbids (FORMAT.md
    // §3); the encoder asserts the shape, so the check before it must refuse first. In a batch,
    // one such entry refuses the whole batch.
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    let keyless = walctl::Entry {
        key: None,
        ..walctl::Entry::tombstone(b"k")
    };
    let with_payload = walctl::Entry {
        payload: b"p",
        ..walctl::Entry::tombstone(b"k")
    };
    let before = storage.op_count();
    for bad in [keyless, with_payload] {
        let err = log.append_entry(&bad).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::InvalidOptions(why) if why.contains("tombstone")),
            "{bad:?}: {err}"
        );
        let mut out = Vec::new();
        let batch = [walctl::Entry::data(b"ok"), bad];
        assert!(log.append_batch(&batch, None, &mut out).is_err());
        assert!(out.is_empty(), "{bad:?}");
    }
    assert_eq!(storage.op_count(), before, "nothing touched the storage");
    assert_eq!(log.next_seq(), 1);
    assert_eq!(
        log.append_entry(&walctl::Entry::tombstone(b"k"))
            .unwrap()
            .seq,
        1
    );
}

#[test]
fn expect_next_seq_mismatch_appends_nothing() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    log.append(b"a").unwrap();
    let mut out = Vec::new();
    let err = log
        .append_batch(&[walctl::Entry::data(b"b")], Some(1), &mut out)
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::SequenceMismatch {
            expected: 1,
            actual: 2
        }
    ));
    assert!(out.is_empty());
    log.append_batch(&[walctl::Entry::data(b"b")], Some(2), &mut out)
        .unwrap();
    assert_eq!(out[0].seq, 2);
}

#[test]
fn buffered_appends_reach_the_os_on_sync_and_a_failed_buffer_write_poisons() {
    let storage = MemStorage::new();
    let opts = walctl::Options {
        write_buffer: 1 << 20,
        segment_size: 1 << 20,
        ..options(&storage)
    };
    let log = Log::open(dir(), opts.clone()).unwrap();
    for i in 1..=100u64 {
        assert_eq!(log.append(&payload(i, 50)).unwrap().seq, i);
    }
    assert_eq!(scan(&storage, &dir()).1.len(), 0, "still in the buffer");
    log.sync().unwrap();
    assert_eq!(scan(&storage, &dir()).1.len(), 100);
    log.append(&payload(101, 50)).unwrap();
    assert_eq!(
        log.get(b"none").unwrap(),
        None,
        "reads through the handle flush first"
    );
    assert_eq!(scan(&storage, &dir()).1.len(), 101);
    log.append(&payload(102, 50)).unwrap();
    storage.set_faults(Some(Box::new(|op| {
        (op.op == TraceOp::Write).then_some(Fault::Errno(28))
    })));
    assert!(log.sync().is_err());
    storage.set_faults(None);
    assert!(matches!(
        log.append(b"x").unwrap_err().kind(),
        ErrorKind::Poisoned { .. }
    ));
    drop(log);
    let log = Log::open(dir(), opts).unwrap();
    assert_eq!(
        log.next_seq(),
        102,
        "the lost record 102 was never durable or visible; its number is free"
    );
}

#[test]
fn a_batch_failing_in_a_later_segment_reports_only_what_it_appended_after_what_out_held() {
    // `append_batch` adds to `out`: what the caller kept there stays, the records of segments
    // sealed during the call are reported, and those of the failed write are not.
    let storage = MemStorage::new();
    let log = Log::open(dir(), crate::util::plain(&storage)).unwrap();
    let mut out = Vec::new();
    log.append_batch(&[walctl::Entry::data(b"kept")], None, &mut out)
        .unwrap();
    let earlier = out.clone();
    storage.set_faults(Some(Box::new(|op| {
        let second = op
            .path
            .to_string_lossy()
            .contains("00000000000000000002.wal");
        (op.op == TraceOp::Write && second && op.offset >= walctl::format::SEGMENT_DATA_START)
            .then_some(Fault::Errno(5))
    })));
    let big = payload(0, 1000);
    let batch = vec![walctl::Entry::data(&big); 40];
    assert!(log.append_batch(&batch, None, &mut out).is_err());
    storage.set_faults(None);
    assert_eq!(out[..1], earlier[..]);
    let reported: Vec<u64> = out[1..].iter().map(|a| a.seq).collect();
    assert!(
        !reported.is_empty(),
        "segment 1 was sealed with records of the batch"
    );
    assert_eq!(reported, (2..2 + reported.len() as u64).collect::<Vec<_>>());
    assert!(out.iter().all(|a| a.location.segment == 1));
    let (_, records) = scan(&storage, &dir());
    assert_eq!(
        records.len(),
        out.len(),
        "what is reported is what the log holds"
    );
    assert_eq!(log.next_seq(), out.len() as u64 + 1);
}
