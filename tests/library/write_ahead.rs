//! Writing ahead (`src/log/ahead.rs`): with a write buffer, full buffers are written by a
//! helper thread, one at a time, in file order, and every sync, seal and read waits for them.

use crate::util::{dir, options, payload, scan};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use walctl::format::SEGMENT_DATA_START;
use walctl::storage::{CrashMode, Fault, MemStorage, OpRecord, TraceOp};
use walctl::{Entry, ErrorKind, Log, Options, Verdict};

/// The raw OS error an I/O failure carries (EIO), without the libc crate in the tests.
const EIO: i32 = 5;

/// A 4 KiB write buffer, no zeros written ahead (so every data write is a record write).
fn buffered(storage: &MemStorage, segment_size: u64) -> Options {
    Options {
        write_buffer: 4096,
        preallocate: 0,
        segment_size,
        ..options(storage)
    }
}

/// Records every record write (at or past `SEGMENT_DATA_START`) and fdatasync, with the
/// thread that made it, and lets `fail` decide faults.
type Seen = Arc<Mutex<Vec<(ThreadId, OpRecord)>>>;

fn observe(storage: &MemStorage, fail: fn(&OpRecord) -> Option<Fault>) -> Seen {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    storage.set_faults(Some(Box::new(move |op| {
        let data_write = op.op == TraceOp::Write && op.offset >= SEGMENT_DATA_START;
        if data_write || op.op == TraceOp::SyncData {
            sink.lock()
                .unwrap()
                .push((thread::current().id(), op.clone()));
        }
        fail(op)
    })));
    seen
}

#[test]
fn full_buffers_are_written_off_the_appending_thread_in_file_order_and_syncs_cover_them() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), buffered(&storage, 64 << 10)).unwrap();
    let seen = observe(&storage, |_| None);
    for i in 1..=2000u64 {
        assert_eq!(log.append(&payload(i, 100)).unwrap().seq, i);
        if i % 500 == 0 {
            log.sync().unwrap();
        }
    }
    storage.set_faults(None);
    let seen = seen.lock().unwrap().clone();
    let me = thread::current().id();
    assert!(
        seen.iter()
            .any(|(t, op)| *t != me && op.op == TraceOp::Write),
        "some full buffers were written by the helper"
    );
    // Each segment's records were written back to back, each write where the last ended:
    // one write at a time, in order, whichever thread made it.
    let mut ends = std::collections::HashMap::new();
    for (_, op) in seen.iter().filter(|(_, op)| op.op == TraceOp::Write) {
        let end = ends.entry(op.path.clone()).or_insert(SEGMENT_DATA_START);
        assert_eq!(
            op.offset,
            *end,
            "write {} of {}",
            op.index,
            op.path.display()
        );
        *end += op.len;
    }
    // Four segments were sealed on the way (64 KiB each); the syncs and seals all came after
    // the writes of what they covered: a power loss now keeps every record.
    drop(log);
    let crashed = storage.crash(CrashMode::DropUnsynced);
    let (report, records) = scan(&crashed, &dir());
    assert_eq!((report.verdict(), records.len()), (Verdict::Clean, 2000));
    assert!(
        report.segments.len() > 4,
        "{} segments",
        report.segments.len()
    );
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.payload, payload(i as u64 + 1, 100), "record {}", i + 1);
    }
}

#[test]
fn a_failed_write_on_the_helper_poisons_and_the_next_call_that_waits_reports_it() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), buffered(&storage, 1 << 20)).unwrap();
    for i in 1..=5 {
        log.append(&payload(i, 100)).unwrap();
    }
    log.sync().unwrap();
    let seen = observe(&storage, |op| {
        (op.op == TraceOp::Write).then_some(Fault::Errno(EIO))
    });
    // 132-byte records: the 31st after the sync fills the 4 KiB buffer, which goes to the
    // helper; the caller is not kept waiting for the write, so it cannot report it yet.
    for i in 6..=40 {
        assert_eq!(log.append(&payload(i, 100)).unwrap().seq, i);
    }
    assert_eq!(
        log.written_seq(),
        5,
        "the failing write was never seen to land"
    );
    let err = log.flush().unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Io { op: "write", .. }),
        "{err}"
    );
    assert!(log.is_poisoned());
    let me = thread::current().id();
    let failed = seen.lock().unwrap().clone();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_ne!(failed[0].0, me, "the failed write was the helper's");
    storage.set_faults(None);
    assert!(matches!(
        log.append(b"x").unwrap_err().kind(),
        ErrorKind::Poisoned { .. }
    ));
    assert!(matches!(
        log.sync().unwrap_err().kind(),
        ErrorKind::Poisoned { .. }
    ));
    assert_eq!(log.written_seq(), 5, "nothing after 5 reached the OS");
    drop(log);
    let log = Log::open(dir(), buffered(&storage, 1 << 20)).unwrap();
    assert_eq!(
        log.next_seq(),
        6,
        "the synced records stay; the lost buffer was never durable and its numbers are free"
    );
}

#[test]
fn written_seq_names_only_records_the_os_holds_with_or_without_a_buffer() {
    let storage = MemStorage::new();
    let unbuffered = Options {
        write_buffer: 0,
        ..buffered(&storage, 1 << 20)
    };
    let log = Log::open(dir(), unbuffered).unwrap();
    for i in 1..=3 {
        log.append(&payload(i, 100)).unwrap();
        assert_eq!(log.written_seq(), i, "unbuffered: every returned append");
    }
    drop(log);
    let log = Log::open(dir(), buffered(&storage, 64 << 10)).unwrap();
    assert_eq!(log.written_seq(), 3, "what the log held at open");
    // 132-byte records: 32 fill the 4 KiB buffer; one buffer may be in flight and one filling.
    let mut last_written = 3;
    for i in 4..=2000u64 {
        log.append(&payload(i, 100)).unwrap();
        let written = log.written_seq();
        assert!(written >= last_written, "{written} after {last_written}");
        assert!(
            written <= i && i - written <= 64,
            "record {i}: written {written}"
        );
        last_written = written;
        if i % 700 == 0 {
            // The promise: a crash of the process now keeps every record up to `written`.
            let crashed = storage.crash(CrashMode::KeepAll);
            let (_, records) = scan(&crashed, &dir());
            assert!(
                records.len() as u64 >= written,
                "{} < {written}",
                records.len()
            );
        }
    }
    assert!(last_written < 2000, "the last buffer is not written yet");
    assert!(
        last_written > 1900,
        "full buffers were written: {last_written}"
    );
    log.flush().unwrap();
    assert_eq!(log.written_seq(), 2000, "a flush writes everything");
    let (_, records) = scan(&storage.crash(CrashMode::KeepAll), &dir());
    assert_eq!(records.len(), 2000);
}

#[test]
fn short_and_long_records_mixed_in_full_buffers_all_reach_the_file_checksummed() {
    // Records under 512 bytes get their checksums when their buffer is written, perhaps by the
    // helper; longer ones as they are encoded. Buffers holding both, with keys and tombstones,
    // must read back exactly, across rotations.
    let storage = MemStorage::new();
    let log = Log::open(dir(), buffered(&storage, 64 << 10)).unwrap();
    let lens = [0, 1, 100, 447, 448, 479, 480, 481, 1000, 3000];
    let mut expected = Vec::new();
    for i in 1..=600u64 {
        let len = lens[i as usize % lens.len()];
        let key = format!("k{}", i % 7).into_bytes();
        let body = payload(i, len);
        let entry = match i % 5 {
            0 => Entry::tombstone(&key),
            1 | 2 => Entry::keyed(&key, &body),
            _ => Entry::data(&body),
        };
        assert_eq!(log.append_entry(&entry).unwrap().seq, i);
        expected.push((entry.key.map(<[u8]>::to_vec), entry.payload.to_vec()));
    }
    log.sync().unwrap();
    drop(log);
    let crashed = storage.crash(CrashMode::DropUnsynced);
    let (report, records) = scan(&crashed, &dir());
    assert_eq!((report.verdict(), records.len()), (Verdict::Clean, 600));
    assert!(report.segments.len() > 2, "the records rotated");
    for (r, (key, payload)) in records.iter().zip(&expected) {
        assert_eq!((&r.key, &r.payload), (key, payload), "record {}", r.seq);
    }
}
