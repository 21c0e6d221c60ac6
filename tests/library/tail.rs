//! `read_after`: a follower reads only what was appended after its cursor, waits at a record
//! still being written, and never delivers a record past damage or from a rewritten log.

use crate::util::{append_n, built, dir, options, plain, scan, segments};
use std::ops::ControlFlow;
use walctl::format::{SEGMENT_HEADER_SIZE, SegmentHeader};
use walctl::storage::{MemStorage, TraceOp};
use walctl::{After, Compaction, Cursor, Log, Options, Record};

/// Reads after `cursor`; returns the outcome and the records delivered.
fn follow(storage: &MemStorage, cursor: Option<Cursor>) -> (After, Vec<Record>) {
    let mut got = Vec::new();
    let after = walctl::read_after(storage, &dir(), cursor.as_ref(), &mut |r| {
        got.push(r.to_record());
        ControlFlow::Continue(())
    })
    .expect("read_after");
    if let After::Read { records, .. } = after {
        assert_eq!(
            records,
            got.len() as u64,
            "the count is of the records delivered"
        );
    }
    (after, got)
}

/// Reads from the start and stops at the record `seq`, which is delivered; returns the outcome
/// and the sequence numbers delivered.
fn read_up_to(storage: &MemStorage, seq: u64) -> (After, Vec<u64>) {
    let mut seen = Vec::new();
    let after = walctl::read_after(storage, &dir(), None, &mut |r| {
        seen.push(r.seq);
        if r.seq == seq {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .expect("read_after");
    (after, seen)
}

fn cursor_of(after: After) -> Option<Cursor> {
    match after {
        After::Read { cursor, .. } => cursor,
        other => panic!("expected records, got {other:?}"),
    }
}

fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

/// Flips the bits of `mask` in the byte at `at` of the file at `path`.
fn flip(storage: &MemStorage, path: &std::path::Path, at: u64, mask: u8) {
    let mut bytes = storage.file_bytes(path).unwrap();
    bytes[at as usize] ^= mask;
    storage.set_file_bytes(path, bytes);
}

#[test]
fn a_follower_reads_each_record_once_across_rotations() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    append_n(&log, 30, 500);
    let (after, first) = follow(&storage, None);
    assert_eq!(
        first,
        scan(&storage, &dir()).1,
        "the first read is the whole log"
    );
    let cursor = cursor_of(after);
    append_n(&log, 50, 500);
    assert!(segments(&storage).len() >= 4, "the appends rotated");
    let (after, next) = follow(&storage, cursor);
    assert_eq!(seqs(&next), (31..=80).collect::<Vec<_>>());
    assert_eq!(
        next,
        scan(&storage, &dir()).1[30..],
        "byte for byte as a scan reads them"
    );
    let cursor = cursor_of(after);
    let (again, none) = follow(&storage, cursor);
    assert!(none.is_empty());
    assert_eq!(again, After::Read { cursor, records: 0 });
}

#[test]
fn a_record_cut_short_is_waited_for_then_delivered() {
    let storage = built(10, 300);
    let last = segments(&storage).pop().unwrap();
    let whole = storage.file_bytes(&last).unwrap();
    storage.set_file_bytes(&last, whole[..whole.len() - 100].to_vec());
    let (after, got) = follow(&storage, None);
    assert_eq!(
        seqs(&got),
        (1..=9).collect::<Vec<_>>(),
        "waits at the record in progress"
    );
    let cursor = cursor_of(after);
    storage.set_file_bytes(&last, whole);
    let (_, rest) = follow(&storage, cursor);
    assert_eq!(seqs(&rest), vec![10]);
}

#[test]
fn valid_records_past_damage_in_the_last_segment_are_damage_not_a_wait() {
    let storage = built(10, 300);
    let last = segments(&storage).pop().unwrap();
    let (_, records) = scan(&storage, &dir());
    let victim = records.iter().rev().nth(3).unwrap().location;
    flip(&storage, &last, victim.offset + 40, 1);
    let (after, got) = follow(&storage, None);
    let delivered: Vec<_> = records
        .iter()
        .take_while(|r| r.location != victim)
        .cloned()
        .collect();
    assert_eq!(got, delivered);
    assert_eq!(
        after,
        After::Damaged {
            segment: victim.segment,
            offset: victim.offset
        }
    );
}

#[test]
fn damage_in_a_sealed_segment_is_reported_and_never_skipped() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), plain(&storage)).unwrap();
    append_n(&log, 60, 500);
    log.sync().unwrap();
    drop(log);
    let (_, records) = scan(&storage, &dir());
    let victim = records
        .iter()
        .find(|r| r.location.segment == 2)
        .unwrap()
        .location;
    let path = segments(&storage)[1].clone();
    flip(&storage, &path, victim.offset + 3, 0x10);
    let (after, got) = follow(&storage, None);
    assert!(
        got.iter().all(|r| r.location.segment == 1),
        "nothing past the damage"
    );
    assert_eq!(
        after,
        After::Damaged {
            segment: 2,
            offset: victim.offset
        }
    );
}

#[test]
fn a_visitor_that_stops_resumes_after_the_record_it_stopped_at() {
    let storage = built(20, 100);
    let (after, seen) = read_up_to(&storage, 7);
    assert_eq!(seen, (1..=7).collect::<Vec<_>>());
    let cursor = cursor_of(after);
    assert_eq!(cursor.map(|c| c.seq), Some(7));
    let (_, rest) = follow(&storage, cursor);
    assert_eq!(seqs(&rest), (8..=20).collect::<Vec<_>>());
}

#[test]
fn a_compaction_that_rewrites_loses_the_cursor_and_a_read_from_the_start_finds_the_survivors() {
    let storage = built(40, 500);
    let cursor = cursor_of(follow(&storage, None).0);
    let plan = Compaction {
        before: Some(25),
        rewrite: true,
        ..Compaction::default()
    };
    walctl::compact(&dir(), &plain(&storage), &plan).unwrap();
    assert_eq!(follow(&storage, cursor).0, After::Lost);
    let (_, survivors) = follow(&storage, None);
    assert_eq!(seqs(&survivors), (25..=40).collect::<Vec<_>>());
}

/// In place, the segment the cursor stands in is kept as it is, so a follower goes on where it
/// was; a cursor in a removed segment is lost.
#[test]
fn a_compaction_in_place_keeps_a_cursor_in_a_kept_segment_and_loses_one_in_the_head() {
    let storage = built(40, 500);
    let (first, _) = follow(&storage, None);
    let at_end = cursor_of(first);
    let mut early = None;
    let report = walctl::scan_log(&storage, &dir(), &mut |r| {
        if r.seq == 2 {
            early = Some(r.location);
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let early = early.map(|location| Cursor {
        log_id: report.log_id.unwrap(),
        location,
        seq: 2,
    });
    let out = walctl::compact(&dir(), &plain(&storage), &crate::util::before(25)).unwrap();
    assert!(
        out.segments_removed > 0 && out.segments_rewritten == 1,
        "{out:?}"
    );
    assert_eq!(
        follow(&storage, at_end).0,
        After::Read {
            cursor: at_end,
            records: 0
        }
    );
    assert_eq!(follow(&storage, early).0, After::Lost);
    let (_, survivors) = follow(&storage, None);
    assert_eq!(seqs(&survivors), (25..=40).collect::<Vec<_>>());
}

#[test]
fn a_cut_tail_or_a_new_log_in_the_same_directory_loses_the_cursor() {
    let storage = built(10, 300);
    let cursor = cursor_of(follow(&storage, None).0).unwrap();
    let last = segments(&storage).pop().unwrap();
    let bytes = storage.file_bytes(&last).unwrap();
    // As a repair that cut the last record would leave it.
    storage.set_file_bytes(&last, bytes[..cursor.location.offset as usize].to_vec());
    assert_eq!(follow(&storage, Some(cursor)).0, After::Lost);
    // Another log with the same segment numbers.
    let other = built(10, 300);
    assert_eq!(follow(&other, Some(cursor)).0, After::Lost);
}

#[test]
fn a_torn_tail_past_the_last_sync_is_waited_at_and_the_writers_cut_lets_the_follower_go_on() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), plain(&storage)).unwrap();
    append_n(&log, 5, 300);
    log.sync().unwrap();
    append_n(&log, 3, 300); // 6..8, never synced
    drop(log);
    let (_, records) = scan(&storage, &dir());
    let torn = records[5].location;
    let last = segments(&storage).pop().unwrap();
    flip(&storage, &last, torn.offset + 40, 1); // record 6 damaged, 7 and 8 intact after it
    let (after, got) = follow(&storage, None);
    assert_eq!(
        seqs(&got),
        (1..=5).collect::<Vec<_>>(),
        "waits at the torn tail"
    );
    let cursor = cursor_of(after);
    // The writer's next open cuts the torn tail; appends continue at 6.
    let log = Log::open(dir(), plain(&storage)).unwrap();
    append_n(&log, 2, 300);
    let (_, rest) = follow(&storage, cursor);
    assert_eq!(seqs(&rest), vec![6, 7]);
}

/// A follower polls a torn tail until the writer's next open cuts it. No acknowledged record
/// lies past the damage, so a poll needs no second look at the bytes after it: it reads what
/// follows its cursor once, not three times.
#[test]
fn a_follower_waiting_at_a_torn_tail_reads_the_rest_of_the_segment_once_per_poll() {
    let storage = MemStorage::new();
    let opts = Options {
        segment_size: 64 << 20,
        ..plain(&storage)
    };
    let log = Log::open(dir(), opts).unwrap();
    append_n(&log, 5, 300);
    log.sync().unwrap();
    append_n(&log, 4000, 300); // 6..4005, never synced
    drop(log);
    let (_, records) = scan(&storage, &dir());
    let last = segments(&storage).pop().unwrap();
    flip(&storage, &last, records[5].location.offset + 40, 1);
    let (after, _) = follow(&storage, None);
    let cursor = cursor_of(after);
    let rest = storage.file_bytes(&last).unwrap().len() as u64 - records[5].location.offset;
    assert!(rest > 1 << 20, "{rest} bytes after the cursor");
    let before = storage.op_count() as usize;
    let (after, got) = follow(&storage, cursor);
    assert_eq!((after, got.len()), (After::Read { cursor, records: 0 }, 0));
    let read: u64 = storage.trace()[before..]
        .iter()
        .filter(|op| op.op == TraceOp::Read && op.path == last)
        .map(|op| op.len)
        .sum();
    assert!(
        read < rest + (64 << 10),
        "a poll read {read} bytes of a segment with {rest} after the cursor"
    );
}

#[test]
fn a_segment_of_another_log_after_the_cursor_is_damage_not_a_lost_cursor() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), plain(&storage)).unwrap();
    append_n(&log, 60, 500);
    drop(log);
    let paths = segments(&storage);
    let mut bytes = storage.file_bytes(&paths[1]).unwrap();
    let mut header = SegmentHeader::decode(&bytes).unwrap();
    header.log_id ^= 1;
    bytes[..SEGMENT_HEADER_SIZE].copy_from_slice(&header.encode());
    storage.set_file_bytes(&paths[1], bytes);
    let (after, got) = follow(&storage, None);
    assert!(got.iter().all(|r| r.location.segment == 1));
    assert_eq!(
        after,
        After::Damaged {
            segment: 2,
            offset: 0
        }
    );
}

#[test]
fn a_damaged_or_cut_preamble_after_the_cursor_is_damage_at_its_start() {
    // A segment is named only once its preamble is written and synced, so a header failing
    // its checksum, or a file ending inside the preamble, is damage, never a wait.
    // A header naming another segment number is damage too: the file is misnamed or a copy.
    let damages: [fn(&mut Vec<u8>); 3] = [
        |b| b[20] ^= 1,
        |b| b.truncate(5000),
        |b| {
            let mut header = SegmentHeader::decode(b).unwrap();
            header.segment += 5;
            b[..SEGMENT_HEADER_SIZE].copy_from_slice(&header.encode());
        },
    ];
    for damage in damages {
        let storage = MemStorage::new();
        let log = Log::open(dir(), plain(&storage)).unwrap();
        append_n(&log, 60, 500);
        drop(log);
        crate::util::edit(&storage, &segments(&storage)[1], damage);
        let (after, got) = follow(&storage, None);
        assert!(got.iter().all(|r| r.location.segment == 1));
        let at_start = After::Damaged {
            segment: 2,
            offset: 0,
        };
        assert_eq!(after, at_start);
    }
}

#[test]
fn bytes_after_a_sealed_segments_last_record_are_damage_unless_preallocated_zeros() {
    type OptionsOf = fn(&MemStorage) -> walctl::Options;
    let cases: [(OptionsOf, &[u8], bool); 4] = [
        (plain, &[0; 100], false),
        (options, &[0; 100], true),
        (options, &[0x5a], false),
        (plain, &[0x5a], false),
    ];
    for (opts, extra, settled) in cases {
        let storage = MemStorage::new();
        let log = Log::open(dir(), opts(&storage)).unwrap();
        append_n(&log, 60, 500);
        drop(log);
        let (_, records) = scan(&storage, &dir());
        let end = records
            .iter()
            .filter(|r| r.location.segment == 2)
            .map(|r| r.location.offset + u64::from(r.location.length))
            .max()
            .unwrap();
        crate::util::edit(&storage, &segments(&storage)[1], |b| {
            b.truncate(end as usize);
            b.extend_from_slice(extra);
        });
        let (after, got) = follow(&storage, None);
        let what = format!("{} bytes, settled: {settled}", extra.len());
        if settled {
            assert_eq!(got, records, "{what}");
        } else {
            assert_eq!(
                after,
                After::Damaged {
                    segment: 2,
                    offset: end
                },
                "{what}"
            );
        }
    }
}

#[test]
fn a_log_of_one_empty_segment_is_read_as_no_records() {
    let storage = MemStorage::new();
    let _log = Log::open(dir(), plain(&storage)).unwrap();
    let only = segments(&storage).pop().unwrap();
    let len = storage.file_bytes(&only).unwrap().len() as u64;
    assert_eq!(len, walctl::format::SEGMENT_DATA_START, "just its preamble");
    let (after, got) = follow(&storage, None);
    assert_eq!(
        after,
        After::Read {
            cursor: None,
            records: 0
        }
    );
    assert!(got.is_empty());
}

#[test]
fn a_cursor_on_a_segments_first_record_resumes_after_it() {
    let storage = built(60, 500);
    let (_, records) = scan(&storage, &dir());
    let first_of_2 = records.iter().find(|r| r.location.segment == 2).unwrap();
    assert_eq!(
        first_of_2.location.offset,
        walctl::format::SEGMENT_DATA_START
    );
    let (_, rest) = follow(&storage, cursor_of(read_up_to(&storage, first_of_2.seq).0));
    assert_eq!(rest, records[first_of_2.seq as usize..]);
}

#[test]
fn a_follower_at_the_end_of_the_file_waits_there_and_then_reads_what_follows() {
    // Without preallocation the last record ends the file: its cursor is still valid.
    let storage = MemStorage::new();
    let log = Log::open(dir(), plain(&storage)).unwrap();
    append_n(&log, 3, 100);
    let cursor = cursor_of(follow(&storage, None).0).unwrap();
    let last = segments(&storage).pop().unwrap();
    let end = cursor.location.offset + u64::from(cursor.location.length);
    assert_eq!(storage.file_bytes(&last).unwrap().len() as u64, end);
    let (after, got) = follow(&storage, Some(cursor));
    assert_eq!(
        (after, got.len()),
        (
            After::Read {
                cursor: Some(cursor),
                records: 0
            },
            0
        )
    );
    append_n(&log, 2, 100);
    assert_eq!(seqs(&follow(&storage, Some(cursor)).1), vec![4, 5]);
}
