//! Durability-protocol check: the order of storage operations in recorded traces follows
//! FORMAT.md §6 and §7: no sync acknowledged before the fdatasync covering it, a new segment
//! synced and its directory synced before it holds records, open syncs before it trusts, and
//! repair in its documented order. Compaction's order is in `compaction_protocol.rs`.

use crate::util::{dir, options, payload};
use std::path::{Path, PathBuf};
use walctl::Log;
use walctl::format::{SEGMENT_DATA_START, WATERMARK_SLOT_OFFSETS, WATERMARK_SLOT_SIZE};
use walctl::storage::{CrashMode, MemStorage, OpRecord, Storage, TraceOp};

fn is_segment(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "wal")
}

fn is_slot(op: &OpRecord) -> bool {
    WATERMARK_SLOT_OFFSETS.contains(&op.offset) && op.len == WATERMARK_SLOT_SIZE as u64
}

/// Every data write to a segment before `ack` is followed by an fdatasync of it before `ack`.
fn assert_synced_before(trace: &[OpRecord], ack: usize) {
    for (i, op) in trace[..ack].iter().enumerate() {
        if op.op == TraceOp::Write && is_segment(&op.path) && !is_slot(op) {
            let synced = trace[i + 1..ack]
                .iter()
                .any(|s| s.op == TraceOp::SyncData && s.path == op.path);
            assert!(
                synced,
                "write #{} to {:?} acknowledged without an fdatasync",
                op.index, op.path
            );
        }
    }
}

fn index_of(trace: &[OpRecord], from: usize, f: impl Fn(&OpRecord) -> bool) -> Option<usize> {
    trace[from..].iter().position(f).map(|i| i + from)
}

#[test]
fn syncs_are_acknowledged_only_after_their_fdatasync() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    for i in 1..=60u64 {
        log.append(&payload(i, if i % 9 == 0 { 12_000 } else { 200 }))
            .unwrap();
        if i % 5 == 0 {
            log.sync().unwrap();
            assert_synced_before(&storage.trace(), storage.op_count() as usize);
        }
    }
}

#[test]
fn with_every_append_synced_each_append_call_returns_durable() {
    // `SyncPolicy::EveryAppend`: whichever call appends (one record, one and sync, a batch,
    // with a write buffer that would otherwise hold them), it returns only after the fdatasync
    // covering it, and a power loss right after keeps every record.
    let storage = MemStorage::new();
    let opts = walctl::Options {
        sync_policy: walctl::SyncPolicy::EveryAppend,
        write_buffer: 1 << 20,
        ..options(&storage)
    };
    let log = Log::open(dir(), opts).unwrap();
    let mut out = Vec::new();
    for i in 0..20u64 {
        let p = payload(i, if i % 7 == 0 { 9_000 } else { 300 });
        let last = match i % 3 {
            0 => log.append(&p).unwrap().seq,
            1 => log.append_and_sync(&walctl::Entry::data(&p)).unwrap().seq,
            _ => {
                out.clear();
                let batch = [walctl::Entry::data(&p), walctl::Entry::data(&p)];
                log.append_batch(&batch, None, &mut out).unwrap();
                out[1].seq
            }
        };
        assert_synced_before(&storage.trace(), storage.op_count() as usize);
        assert_eq!(log.durable_seq(), last);
        let (report, records) = crate::util::scan(&storage.crash(CrashMode::DropUnsynced), &dir());
        assert_eq!(report.records, last, "{i}");
        assert_eq!(records.last().map(|r| r.seq), Some(last));
    }
}

#[test]
fn new_segments_are_synced_and_named_durably_before_they_hold_records() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    for i in 1..=40u64 {
        log.append(&payload(i, 3000)).unwrap();
    }
    drop(log);
    let trace = storage.trace();
    let mut checked = 0;
    for (i, op) in trace.iter().enumerate() {
        if op.op != TraceOp::Rename || !op.target.as_deref().is_some_and(is_segment) {
            continue;
        }
        let temp = &op.path;
        let target = op.target.clone().unwrap();
        let wrote = trace[..i]
            .iter()
            .rposition(|o| o.op == TraceOp::Write && &o.path == temp)
            .unwrap();
        assert!(
            trace[wrote..i]
                .iter()
                .any(|o| o.op == TraceOp::SyncData && &o.path == temp)
        );
        let dir_sync = index_of(&trace, i, |o| o.op == TraceOp::SyncDir).expect("directory synced");
        let first_record = index_of(&trace, i, |o| {
            o.op == TraceOp::Write && o.path == target && !is_slot(o)
        });
        assert!(
            first_record.is_none_or(|w| dir_sync < w),
            "records went into {target:?} first"
        );
        // The segment before it was sealed: synced after its last write, before the rename.
        checked += 1;
    }
    assert!(checked >= 5, "{checked} segment creations checked");
}

#[test]
fn open_syncs_the_last_segment_and_directory_before_reading_it() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    log.append(b"unsynced").unwrap();
    let crashed = storage.crash(CrashMode::KeepAll);
    drop(log);
    let _ = Log::open(dir(), options(&crashed)).unwrap();
    let trace = crashed.trace();
    let last = PathBuf::from("/log/00000000000000000001.wal");
    let first_read = index_of(&trace, 0, |o| {
        o.op == TraceOp::Read && o.path == last && o.offset == 0 && o.len > 64
    })
    .expect("the segment was read");
    assert!(
        trace[..first_read]
            .iter()
            .any(|o| o.op == TraceOp::SyncData && o.path == last)
    );
    assert!(trace[..first_read].iter().any(|o| o.op == TraceOp::SyncDir));
}

/// Checks that `parent` was synced after `created` was created and before the first record
/// was written.
fn parent_synced_before_records(trace: &[OpRecord], created: &str, parent: &str) {
    let made = index_of(trace, 0, |o| {
        o.op == TraceOp::CreateDir && o.path == Path::new(created)
    })
    .unwrap_or_else(|| panic!("{created} was not created"));
    let synced = index_of(trace, made, |o| {
        o.op == TraceOp::SyncDir && o.path == Path::new(parent)
    })
    .unwrap_or_else(|| panic!("{parent} was not synced after {created} was created"));
    // (A handle keeps the name it was opened under, the segment's `.tmp` name.)
    let first_record = index_of(trace, 0, |o| {
        o.op == TraceOp::Write && o.offset >= SEGMENT_DATA_START
    })
    .expect("the record was written");
    assert!(
        synced < first_record,
        "{parent} synced after the first record"
    );
}

#[test]
fn creating_a_log_syncs_every_new_directory_into_its_parent_before_any_record() {
    // A new directory's entry lives in its parent: without that fsync a power loss could take
    // the whole log with it, synced records and all (FORMAT.md §6.2). Every ancestor the open
    // created needs it too.
    let storage = MemStorage::new();
    storage.create_dir_all(Path::new("/data")).unwrap();
    let log = Log::open("/data/a/b/log", options(&storage)).unwrap();
    log.append(b"first").unwrap();
    log.sync().unwrap();
    let trace = storage.trace();
    parent_synced_before_records(&trace, "/data/a/b/log", "/data/a/b");
    parent_synced_before_records(&trace, "/data/a/b/log", "/data/a");
    parent_synced_before_records(&trace, "/data/a/b/log", "/data");
    let synced: Vec<_> = trace.iter().filter(|o| o.op == TraceOp::SyncDir).collect();
    assert!(
        !synced.iter().any(|o| o.path == Path::new("/")),
        "/data existed, so its parent needs no sync"
    );
}

#[test]
fn creating_a_log_at_a_relative_name_syncs_the_current_directory() {
    // `--dir wal`: the parent of `wal` is the empty path, which names no directory; the entry
    // lives in `.`.
    let storage = MemStorage::new();
    let log = Log::open("wal", options(&storage)).unwrap();
    log.append(b"first").unwrap();
    parent_synced_before_records(&storage.trace(), "wal", ".");
}

#[test]
fn closing_hands_buffered_appends_to_the_os_and_syncs_nothing() {
    // FORMAT.md §6.1: a write buffer is handed to the OS on close. Close promises unsynced
    // appends nothing more, and the last sync's proof is already written, so it issues no
    // fdatasync (one would double the cost of every one-shot durable append), not even just
    // after a rotation, where the new segment's slots are still empty.
    let storage = MemStorage::new();
    let opts = walctl::Options {
        write_buffer: 1 << 20,
        ..options(&storage)
    };
    let log = Log::open(dir(), opts).unwrap();
    for seq in 1..=3 {
        log.append(&payload(seq, 3000)).unwrap();
    }
    log.sync().unwrap();
    let buffered = log.append(&payload(4, 3000)).unwrap();
    assert_eq!(buffered.location.segment, 4, "the append started a segment");
    let before = storage.op_count() as usize;
    drop(log);
    let at_close = storage.trace().split_off(before);
    assert!(
        at_close
            .iter()
            .any(|o| o.op == TraceOp::Write && o.offset == buffered.location.offset),
        "the buffered record was not written: {at_close:#?}"
    );
    assert!(
        !at_close.iter().any(|o| o.op == TraceOp::SyncData),
        "{at_close:#?}"
    );
    let (_, records) = crate::util::scan(&storage, &dir());
    assert_eq!(records.len(), 4);
}

#[test]
fn a_rotation_right_after_a_sync_seals_with_one_fdatasync_and_no_slot() {
    // The sync's slot already proves every record of the segment: sealing rewrites no proof
    // and needs no second fdatasync (FORMAT.md §6.2 step 1 writes the slot only for records
    // it does not cover yet).
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    log.append(&payload(1, 3000)).unwrap();
    log.sync().unwrap();
    let before = storage.op_count() as usize;
    let second = log.append(&payload(2, 3000)).unwrap();
    assert_eq!(second.location.segment, 2);
    let trace = storage.trace().split_off(before);
    // (A handle keeps the name it was opened under, the segment's `.tmp` name.)
    let first = |o: &&OpRecord| {
        o.path
            .to_string_lossy()
            .contains("00000000000000000001.wal")
    };
    let syncs = trace
        .iter()
        .filter(first)
        .filter(|o| o.op == TraceOp::SyncData)
        .count();
    assert_eq!(syncs, 1, "{trace:#?}");
    assert!(
        !trace.iter().filter(first).any(|o| o.op == TraceOp::Write),
        "{trace:#?}"
    );
}

#[test]
fn every_segment_is_flagged_preallocated_exactly_when_the_writer_preallocates() {
    use walctl::format::SegmentHeader;
    for (preallocate, flagged) in [(0, false), (4096, true)] {
        let storage = MemStorage::new();
        let opts = walctl::Options {
            preallocate,
            ..options(&storage)
        };
        let log = Log::open(dir(), opts).unwrap();
        for seq in 1..=6 {
            log.append(&payload(seq, 3000)).unwrap();
        }
        drop(log);
        let segments = crate::util::segments(&storage);
        assert_eq!(segments.len(), 6);
        for path in segments {
            let header = SegmentHeader::decode(&storage.file_bytes(&path).unwrap()).unwrap();
            assert_eq!(header.is_preallocated(), flagged, "{path:?}");
        }
    }
}

#[test]
fn repair_saves_syncs_truncates_syncs_in_that_order() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    log.append(b"one").unwrap();
    log.sync().unwrap();
    let crashed = storage.crash(CrashMode::KeepAll);
    drop(log);
    let seg = PathBuf::from("/log/00000000000000000001.wal");
    let mut bytes = crashed.file_bytes(&seg).unwrap();
    bytes.extend([7u8; 40]);
    crashed.set_file_bytes(&seg, bytes);
    let start = crashed.op_count() as usize;
    walctl::truncate_partial(&dir(), &options(&crashed), false).unwrap();
    let t = &crashed.trace()[start..];
    let side_write = index_of(t, 0, |o| {
        o.op == TraceOp::Write && o.path.to_string_lossy().contains(".cut-")
    })
    .unwrap();
    let side_sync = index_of(t, side_write, |o| {
        o.op == TraceOp::SyncData && o.path == t[side_write].path
    })
    .unwrap();
    let dir_sync = index_of(t, side_sync, |o| o.op == TraceOp::SyncDir).unwrap();
    let truncate = index_of(t, dir_sync, |o| o.op == TraceOp::SetLen && o.path == seg).unwrap();
    let seg_sync = index_of(t, truncate, |o| o.op == TraceOp::SyncData && o.path == seg).unwrap();
    index_of(t, seg_sync, |o| o.op == TraceOp::SyncDir).expect("directory synced after the cut");
    assert!(
        t[..truncate].iter().all(|o| o.op != TraceOp::SetLen),
        "nothing cut before the save"
    );
}

fn preallocating(storage: &MemStorage, chunk: u64, write_buffer: usize) -> walctl::Options {
    walctl::Options {
        segment_size: 4 << 20,
        preallocate: chunk,
        write_buffer,
        ..options(storage)
    }
}

fn segment_len(storage: &MemStorage) -> u64 {
    let seg = storage.files().into_iter().find(|p| is_segment(p)).unwrap();
    storage.file_bytes(&seg).unwrap().len() as u64
}

#[test]
fn small_appends_keep_a_chunk_of_zeros_ahead_of_the_data() {
    // The zeros go out 1 MiB at a time, so a 2.5 MiB chunk takes two whole rounds and a half
    // one; the second chunk of it stops at the 4 MiB segment size.
    for chunk in [64 << 10, 5 << 19] {
        let storage = MemStorage::new();
        let log = Log::open(dir(), preallocating(&storage, chunk, 0)).unwrap();
        log.append(&payload(1, 100)).unwrap();
        assert_eq!(segment_len(&storage), SEGMENT_DATA_START + chunk);
        // Records of 132 bytes past the first chunk: the zeros move a chunk further.
        for seq in 2..=chunk / 132 + 10 {
            log.append(&payload(seq, 100)).unwrap();
        }
        let end = (SEGMENT_DATA_START + 2 * chunk).min(4 << 20);
        assert_eq!(segment_len(&storage), end, "{chunk}");
    }
}

#[test]
fn a_large_buffered_flush_writes_each_byte_of_the_segment_once() {
    // Zeros written where the data lands next, before any sync, would buy nothing and double
    // the page-cache writes of a bulk load.
    let storage = MemStorage::new();
    let log = Log::open(dir(), preallocating(&storage, 64 << 10, 256 << 10)).unwrap();
    for seq in 1..=2000 {
        log.append(&payload(seq, 1000)).unwrap();
    }
    log.flush().unwrap();
    let mut writes: Vec<(u64, u64)> = storage
        .trace()
        .iter()
        // Writes are traced under the name the handle was opened by, the temporary one.
        .filter(|op| op.op == TraceOp::Write && op.offset >= SEGMENT_DATA_START)
        .map(|op| (op.offset, op.offset + op.len))
        .collect();
    writes.sort_unstable();
    for pair in writes.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "bytes {:?} were written twice",
            pair[1].0..pair[0].1
        );
    }
    assert!(
        writes.len() >= 8,
        "the buffer flushed {} times",
        writes.len()
    );
}
