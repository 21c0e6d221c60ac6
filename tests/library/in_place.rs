//! Compaction in place (FORMAT.md §6.6.2): the head removed, at most one segment rewritten
//! under its own number, every other segment kept byte for byte; crash states and readers see
//! the old log or the new one; the shapes it does not cover rewrite the log as before.

use crate::util::{Hooked, Hooks, before, built, data_files, dir, plain, scan, segments};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use walctl::storage::{CrashMode, LockKind, MemStorage, OpenMode, Storage};
use walctl::{CompactReport, Compaction, Entry, Log, Options, Verdict};

fn keys() -> Compaction {
    Compaction {
        keys: true,
        ..Compaction::default()
    }
}

/// Sequence numbers of a clean scan.
pub(crate) fn seqs(storage: &MemStorage) -> Vec<u64> {
    let (report, records) = scan(storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
    records.iter().map(|r| r.seq).collect()
}

/// Each segment's sequence numbers, by segment number.
fn layout(storage: &MemStorage) -> BTreeMap<u64, Vec<u64>> {
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    walctl::scan_log(storage, &dir(), &mut |r| {
        out.entry(r.location.segment).or_default().push(r.seq);
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    out
}

/// A reader's hold on the log, and options that wait for it only briefly.
fn held_by_a_reader(storage: &MemStorage) -> (Box<dyn walctl::storage::StorageLock>, Options) {
    let reader = storage
        .try_lock(&dir().join("READERS"), LockKind::Shared)
        .unwrap();
    let opts = Options {
        lock_wait: Some(std::time::Duration::from_millis(20)),
        ..plain(storage)
    };
    (reader, opts)
}

/// Segment files removed, rewritten and added, as the report counts them.
fn counts(out: &CompactReport) -> (u64, u64, u64) {
    (
        out.segments_removed,
        out.segments_rewritten,
        out.segments_added,
    )
}

fn segment_path(n: u64) -> PathBuf {
    walctl::segment::Listing::path(&dir(), n)
}

fn compact(storage: &MemStorage, plan: &Compaction) -> CompactReport {
    walctl::compact(&dir(), &plain(storage), plan).unwrap()
}

#[test]
fn a_checkpoint_removes_the_head_rewrites_one_segment_and_keeps_the_rest_byte_for_byte() {
    let storage = built(120, 200);
    let old = layout(&storage);
    let files: BTreeMap<PathBuf, Vec<u8>> = data_files(&storage).into_iter().collect();
    let straddler = *old.iter().find(|(_, s)| s.contains(&51)).unwrap().0;
    assert!(
        old[&straddler][0] < 51,
        "the checkpoint falls inside a segment"
    );
    let last = *old.keys().last().unwrap();
    let out = compact(&storage, &before(51));
    let head = old.keys().filter(|&&n| n < straddler).count() as u64;
    assert_eq!(counts(&out), (head, 1, 1));
    assert_eq!(out.digest_expected, out.digest_installed);
    for (&n, old_seqs) in &old {
        let now = storage.file_bytes(&segment_path(n));
        if n < straddler {
            assert!(now.is_none(), "segment {n} of the head remains");
        } else if n == straddler {
            assert!(now.as_ref() != files.get(&segment_path(n)), "not rewritten");
        } else if n == last {
            // Sealed by the compaction: its records as they were, and a watermark slot.
            let (now, was) = (now.unwrap(), &files[&segment_path(n)]);
            assert!(
                now[12288..] == was[12288..],
                "the last segment's records changed"
            );
            assert_eq!(&layout(&storage)[&n], old_seqs);
        } else {
            assert!(
                now.as_ref() == files.get(&segment_path(n)),
                "segment {n} changed"
            );
        }
    }
    assert_eq!(layout(&storage)[&straddler][0], 51);
    assert!(storage.file_bytes(&segment_path(last + 1)).is_some());
    assert_eq!(seqs(&storage), (51..=120).collect::<Vec<_>>());
    assert!(storage.file_bytes(&dir().join("COMPACTION")).is_none());
    let log = Log::open(dir(), plain(&storage)).unwrap();
    assert_eq!(log.append(b"after").unwrap().seq, 121);
}

#[test]
fn a_checkpoint_on_a_segment_boundary_removes_the_head_and_rewrites_nothing() {
    let storage = built(120, 200);
    let old = layout(&storage);
    let (&third, third_seqs) = old.iter().nth(2).unwrap();
    let last = *old.keys().last().unwrap();
    let files = data_files(&storage);
    let out = compact(&storage, &before(third_seqs[0]));
    assert_eq!(counts(&out), (2, 0, 1));
    assert!(!out.cleanup_deferred, "no reader held the head");
    for (path, bytes) in files {
        let n = walctl::segment::parse_segment_name(&path.file_name().unwrap().to_string_lossy());
        // The last segment is sealed, a slot added; the others stay byte for byte.
        if n.is_some_and(|n| n >= third && n < last) {
            assert!(
                storage.file_bytes(&path) == Some(bytes),
                "{}",
                path.display()
            );
        }
    }
    assert_eq!(seqs(&storage), (third_seqs[0]..=120).collect::<Vec<_>>());
}

/// With no segment to replace, readers cannot make it rewrite: the marker commits, they are
/// shown the new log at once, and the head's removal waits for the next open.
#[test]
fn a_head_held_by_a_reader_is_removed_by_the_next_open() {
    let storage = built(120, 200);
    let (&third, third_seqs) = layout(&storage)
        .iter()
        .nth(2)
        .map(|(n, s)| (n, s.clone()))
        .unwrap();
    let (reader, opts) = held_by_a_reader(&storage);
    let out = walctl::compact(&dir(), &opts, &before(third_seqs[0])).unwrap();
    assert!(out.cleanup_deferred);
    assert!(
        storage.file_bytes(&segment_path(third - 1)).is_some(),
        "still there"
    );
    let new: Vec<u64> = (third_seqs[0]..=120).collect();
    assert_eq!(seqs(&storage), new);
    drop(reader);
    drop(Log::open(dir(), opts).unwrap());
    assert!(storage.file_bytes(&segment_path(third - 1)).is_none());
    assert!(storage.file_bytes(&dir().join("COMPACTION")).is_none());
    assert_eq!(seqs(&storage), new);
}

/// A log of 60 keyed records of 200 bytes in 16 KiB segments, where the keys of `dups` are
/// written again (by records 61 on), so `--keys` drops their first writes.
pub(crate) fn keyed(dups: &[u64]) -> MemStorage {
    let storage = MemStorage::new();
    let log = Log::open(dir(), plain(&storage)).unwrap();
    let payload = [7u8; 200];
    for seq in 1..=60u64 {
        log.append_entry(&Entry::keyed(format!("k{seq}").as_bytes(), &payload))
            .unwrap();
    }
    for seq in dups {
        log.append_entry(&Entry::keyed(format!("k{seq}").as_bytes(), b"again"))
            .unwrap();
    }
    log.sync().unwrap();
    drop(log);
    storage
}

#[test]
fn superseded_records_in_one_sealed_segment_are_dropped_by_one_rename() {
    let storage = keyed(&[20, 21]);
    let old = layout(&storage);
    let segment = *old.iter().find(|(_, s)| s.contains(&20)).unwrap().0;
    assert!(old[&segment].contains(&21));
    let start = storage.op_count() as usize;
    let out = compact(&storage, &keys());
    assert_eq!(counts(&out), (0, 1, 0));
    assert_eq!(out.dropped_superseded, 2);
    let t = &storage.trace()[start..];
    assert!(
        !t.iter().any(|o| o.path.ends_with("COMPACTION.tmp")),
        "no head, so no marker"
    );
    let now = layout(&storage);
    assert_eq!(now.len(), old.len(), "no segment added or removed");
    assert!(!now[&segment].contains(&20) && !now[&segment].contains(&21));
}

#[test]
fn drops_in_two_segments_past_the_head_or_in_the_last_rewrite_the_whole_log() {
    for (storage, plan) in [(keyed(&[5, 50]), keys()), (keyed(&[]), before(61))] {
        let old = segments(&storage);
        let out = compact(&storage, &plan);
        assert_eq!(out.segments_removed, old.len() as u64, "{plan:?}");
        assert!(old.iter().all(|p| storage.file_bytes(p).is_none()));
        assert_eq!(out.digest_expected, out.digest_installed);
    }
}

#[test]
fn readers_holding_on_past_the_wait_make_it_rewrite_instead() {
    let storage = built(120, 200);
    let old = segments(&storage);
    let (reader, opts) = held_by_a_reader(&storage);
    let out = walctl::compact(&dir(), &opts, &before(51)).unwrap();
    assert_eq!(out.segments_removed, old.len() as u64, "it rewrote");
    assert!(out.cleanup_deferred);
    assert!(
        old.iter().all(|p| storage.file_bytes(p).is_some()),
        "nothing was replaced under the reader"
    );
    assert_eq!(seqs(&storage), (1..=120).collect::<Vec<_>>());
    assert!(
        !storage
            .files()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".tmp")),
        "the abandoned replacement is removed"
    );
    drop(reader);
    drop(Log::open(dir(), opts).unwrap());
    assert_eq!(seqs(&storage), (51..=120).collect::<Vec<_>>());
}

/// Rots the replacement's temporary just before it is read back.
#[derive(Debug)]
struct RotTheReplacement(crate::copy_checks::Rot);

impl Hooks for RotTheReplacement {
    fn before_open(&self, inner: &MemStorage, path: &Path, mode: OpenMode) {
        if mode == OpenMode::Read && path.to_string_lossy().ends_with(".wal.tmp") {
            crate::util::edit(inner, path, |b| (self.0)(b));
        }
    }
}

/// Each way a replacement may read back wrong (bad bytes, a valid record with other contents,
/// a damaged slot) is caught before anything is installed.
#[test]
fn a_replacement_that_reads_back_wrong_is_removed_and_the_old_log_kept() {
    for (rot, what) in crate::copy_checks::ROTS {
        let storage = built(120, 200);
        let files = data_files(&storage);
        let opts = Options {
            storage: Hooked::storage(&storage, RotTheReplacement(rot)),
            ..plain(&storage)
        };
        let err = walctl::compact(&dir(), &opts, &before(51)).unwrap_err();
        let summary = crate::copy_checks::corrupt_summary(&err);
        assert!(summary.contains(".wal.tmp read back"), "{what}: {summary}");
        assert!(
            summary.ends_with("the old log was kept"),
            "{what}: {summary}"
        );
        assert!(
            data_files(&storage) == files,
            "{what}: the old log and nothing else"
        );
    }
}

#[test]
fn crash_at_every_storage_operation_of_a_compaction_in_place_shows_old_or_new() {
    let boundary = layout(&built(120, 200)).values().nth(2).unwrap()[0];
    // A head and a replacement; a head alone (the marker commits); a replacement alone (the
    // rename commits, no marker).
    for (base, plan) in [
        (built(120, 200), before(51)),
        (built(120, 200), before(boundary)),
        (keyed(&[20, 21]), keys()),
    ] {
        let old = seqs(&base);
        let new = {
            let s = base.crash(CrashMode::KeepAll);
            compact(&s, &plan);
            seqs(&s)
        };
        assert!(new.len() < old.len());
        let compact = |s: &MemStorage| _ = walctl::compact(&dir(), &plain(s), &plan);
        crate::util::crash_at_every_operation(&base, compact, |stop, mode, after| {
            // A reader first, before any writer resolves the marker.
            let read = seqs(after);
            assert!(
                read == old || read == new,
                "{plan:?} op {stop} {mode:?}: a reader saw {} records from {:?}: {:?}",
                read.len(),
                read.first(),
                after.files()
            );
            drop(Log::open(dir(), plain(after)).unwrap());
            let opened = seqs(after);
            assert_eq!(
                opened, read,
                "op {stop} {mode:?}: open changed the log's records"
            );
            assert!(after.file_bytes(&dir().join("COMPACTION")).is_none());
        });
    }
}

#[test]
fn retention_run_again_and_again_keeps_the_segment_count_bounded() {
    let storage = built(40, 200);
    let log_next = |s: &MemStorage| Log::open(dir(), plain(s)).unwrap().next_seq();
    for round in 0..30 {
        {
            let log = Log::open(dir(), plain(&storage)).unwrap();
            crate::util::append_n(&log, 17, 200);
            log.sync().unwrap();
        }
        let next = log_next(&storage);
        compact(&storage, &before(next - 40));
        assert_eq!(
            seqs(&storage),
            (next - 40..next).collect::<Vec<_>>(),
            "round {round}"
        );
        assert!(
            segments(&storage).len() <= 5,
            "round {round}: {:?}",
            segments(&storage)
        );
    }
}

/// After compactions, an empty compacted segment can start well past the last record before it
/// (here 6, after record 3): the watermark the sealed segments give (5) is then above the last
/// real record. A torn first record of the last segment is still a torn tail: g counts from
/// that segment's `first_seq` − 1 (FORMAT.md §8), not from record 3.
#[test]
fn a_torn_first_record_after_an_empty_compacted_segment_is_a_torn_tail() {
    use crate::util::crafted_later_segment;
    use walctl::format::{SEGMENT_FLAG_COMPACTED, SegmentHeader};
    let compacted = |mut bytes: Vec<u8>| {
        let mut h = SegmentHeader::decode(&bytes).unwrap();
        h.flags |= SEGMENT_FLAG_COMPACTED;
        bytes[..64].copy_from_slice(&h.encode());
        bytes
    };
    let storage = MemStorage::new();
    storage.create_dir_all(&dir()).unwrap();
    let mut last = crafted_later_segment(3, (7, 1), None, &[7]);
    last.truncate(last.len() - 3);
    for (n, bytes) in [
        (
            1,
            compacted(crafted_later_segment(1, (1, 1), Some(3), &[1, 2, 3])),
        ),
        (2, compacted(crafted_later_segment(2, (6, 1), None, &[]))),
        (3, last),
    ] {
        storage.set_file_bytes(&segment_path(n), bytes);
    }
    let (report, records) = scan(&storage, &dir());
    assert_eq!(report.verdict(), Verdict::TornTail, "{:?}", report.damage);
    assert_eq!(report.durable_seq, Some(5));
    assert_eq!(records.len(), 3);
}

/// A segment whose every record is superseded, after one that keeps records, is no part of the
/// head: it is replaced by an empty compacted segment (a preamble and nothing else), which the
/// log reads through and appends continue after.
#[test]
fn a_middle_segment_that_keeps_nothing_becomes_an_empty_compacted_segment() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), plain(&storage)).unwrap();
    for seq in 1..=150u64 {
        log.append_entry(&Entry::keyed(format!("k{seq}").as_bytes(), &[7u8; 200]))
            .unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let second = layout(&storage).into_iter().nth(1).unwrap();
    let log = Log::open(dir(), plain(&storage)).unwrap();
    for seq in &second.1 {
        log.append_entry(&Entry::keyed(format!("k{seq}").as_bytes(), b"again"))
            .unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let out = compact(&storage, &keys());
    assert_eq!(counts(&out), (0, 1, 0));
    let emptied = storage.file_bytes(&segment_path(second.0)).unwrap();
    assert_eq!(emptied.len() as u64, walctl::format::SEGMENT_DATA_START);
    let now = layout(&storage);
    assert!(!now.contains_key(&second.0), "{now:?}");
    assert_eq!(seqs(&storage).len() as u64, out.after.records);
    let log = Log::open(dir(), plain(&storage)).unwrap();
    assert_eq!(log.append(b"after").unwrap().seq, out.next_seq);
}

/// The empty segment a compaction in place starts is flagged `PREALLOCATED` exactly when the
/// options preallocate, as a writer's rotation would make it; and with no reader about, the
/// head is removed at once.
#[test]
fn the_segment_a_compaction_in_place_starts_is_made_as_a_writers_rotation_would() {
    use walctl::format::SegmentHeader;
    for preallocate in [0, 1 << 12] {
        let storage = built(120, 200);
        let opts = Options {
            preallocate,
            ..plain(&storage)
        };
        let out = walctl::compact(&dir(), &opts, &before(51)).unwrap();
        assert!(!out.cleanup_deferred);
        let last = segments(&storage).pop().unwrap();
        let header = SegmentHeader::decode(&storage.file_bytes(&last).unwrap()).unwrap();
        assert_eq!(header.is_preallocated(), preallocate > 0, "{preallocate}");
        assert_eq!(header.first_seq, out.next_seq);
        assert_eq!(header.log_first_seq, 51);
    }
}

/// The two watermark slots of a segment file, in file order (FORMAT.md §2.2).
fn slots(bytes: &[u8]) -> [Option<walctl::format::WatermarkSlot>; 2] {
    use walctl::format::{SegmentHeader, WATERMARK_SLOT_OFFSETS, WatermarkSlot};
    let h = SegmentHeader::decode(bytes).unwrap();
    WATERMARK_SLOT_OFFSETS
        .map(|at| WatermarkSlot::decode(&bytes[at as usize..], h.log_id, h.segment))
}

/// The rewritten segment is a new file: its one slot is generation 1, at 8192, and vouches for
/// its last record and where the records end, so a writer's open of it would resume there.
#[test]
fn the_segment_a_compaction_rewrites_is_sealed_with_a_first_generation_slot() {
    let storage = built(120, 200);
    let straddler = *layout(&storage)
        .iter()
        .find(|(_, s)| s.contains(&51))
        .unwrap()
        .0;
    compact(&storage, &before(51));
    let bytes = storage.file_bytes(&segment_path(straddler)).unwrap();
    let last_seq = *layout(&storage)[&straddler].last().unwrap();
    let slot = walctl::format::WatermarkSlot {
        durable_seq: last_seq,
        generation: 1,
        durable_end: bytes.len() as u64,
    };
    assert_eq!(slots(&bytes), [None, Some(slot)]);
}

/// Sealing the old last segment writes its slot as the next generation, into the other slot
/// position, so a torn write of it leaves the previous proof whole (FORMAT.md §2.2).
#[test]
fn sealing_the_last_segment_keeps_its_previous_slot_and_writes_the_next_generation() {
    let storage = built(120, 200);
    let last = segments(&storage).pop().unwrap();
    let was = slots(&storage.file_bytes(&last).unwrap());
    let newest = was.iter().flatten().max_by_key(|s| s.generation).copied();
    let newest = newest.expect("a synced segment has a slot");
    compact(&storage, &before(51));
    let now = slots(&storage.file_bytes(&last).unwrap());
    assert!(now.contains(&Some(newest)), "the previous slot is kept");
    let sealed = now.iter().flatten().max_by_key(|s| s.generation).unwrap();
    assert_eq!(sealed.generation, newest.generation + 1);
    assert_eq!(sealed.durable_seq, 120);
}
