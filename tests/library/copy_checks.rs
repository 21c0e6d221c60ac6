//! The safety checks of the two commands that copy a log, compaction and salvage, each driven
//! into firing: the source changing while it is copied, the new log reading back other than
//! what was copied (bad bytes, or valid records with other contents), and a reader holding the
//! old segments past the wait. Compaction must keep the old log or install a whole new one;
//! salvage must never leave a target that reads as a complete log. Coverage (TESTING.md)
//! showed no test reached these branches.

use crate::util::{Hooked, Hooks, built, data_files, dir, options, scan, segments};
use std::path::{Path, PathBuf};
use walctl::format::{self, RECORD_HEADER_SIZE, SEGMENT_DATA_START, crc_mask};
use walctl::storage::MemStorage;
use walctl::{Compaction, ErrorKind, Log, Options, Pass, Verdict};

/// Drops the records below `seq`, rewriting the whole log: these checks guard the copy.
fn drop_before(seq: u64) -> Compaction {
    Compaction {
        before: Some(seq),
        keys: false,
        dry_run: false,
        rewrite: true,
    }
}

/// Sequence numbers of a clean scan of the log.
fn seqs(storage: &MemStorage) -> Vec<u64> {
    let (report, records) = scan(storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
    records.iter().map(|r| r.seq).collect()
}

pub(crate) fn corrupt_summary(err: &walctl::Error) -> &str {
    match err.kind() {
        ErrorKind::Corrupt { summary } => summary,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_log_damaged_while_it_is_copied_keeps_the_old_log_and_leaves_nothing_new() {
    // The survey found the log clean; then, mid-copy, bytes not yet read go bad: a record of
    // the last segment (one record fewer), or a sealed segment's watermark slot (every record
    // still there, but the log is no longer clean).
    for (index, at) in [(usize::MAX, SEGMENT_DATA_START as usize + 40), (1, 4096)] {
        let storage = built(120, 200);
        let before: Vec<_> = data_files(&storage).into_iter().map(|(p, _)| p).collect();
        let segs = segments(&storage);
        let victim = &segs[index.min(segs.len() - 1)];
        let mut damaged = false;
        let mut observe = |pass, _| {
            if pass == Pass::Copy && !damaged {
                damaged = true;
                crate::util::edit(&storage, victim, |b| b[at] ^= 1);
            }
        };
        let err =
            walctl::compact_observed(&dir(), &options(&storage), &drop_before(51), &mut observe)
                .unwrap_err();
        assert!(damaged);
        assert_eq!(
            corrupt_summary(&err),
            "the log changed during compaction",
            "{at}"
        );
        let after: Vec<_> = data_files(&storage).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            after, before,
            "{at}: no new segment, temporary or marker is left"
        );
    }
}

/// A disk that rots bytes between a copy's commit and its read-back: after the rename to a
/// name ending in `trigger`, `rot` rewrites the file `victim` picks.
#[derive(Debug)]
struct Rotting {
    trigger: &'static str,
    victim: fn(&MemStorage, &Path) -> PathBuf,
    rot: Rot,
}

/// Compaction's commit is the rename to `COMPACTION` (FORMAT.md §6.6 step 2); its first new
/// segment is still named `N.wal.tmp` then.
fn compaction_rotting(rot: Rot) -> Rotting {
    Rotting {
        trigger: "COMPACTION",
        victim: |inner, _| {
            let mut temps: Vec<_> = inner
                .files()
                .into_iter()
                .filter(|p| p.to_string_lossy().ends_with(".wal.tmp"))
                .collect();
            temps.sort();
            temps.swap_remove(0)
        },
        rot,
    }
}

impl Hooks for Rotting {
    fn after_rename(&self, inner: &MemStorage, to: &Path) {
        if to.ends_with(self.trigger) {
            crate::util::edit(inner, &(self.victim)(inner, to), |b| (self.rot)(b));
        }
    }
}

/// Flips a payload bit of the segment's first record: the read-back finds damage.
fn flip_a_bit(b: &mut [u8]) {
    b[SEGMENT_DATA_START as usize + RECORD_HEADER_SIZE] ^= 1;
}

/// Damages the segment's first watermark slot: every record reads back the same, but the log
/// is no longer clean.
fn rot_the_slot(b: &mut [u8]) {
    b[4096] ^= 1;
}

/// Changes the first record's first payload byte and seals it with correct checksums: the
/// read-back finds a clean log whose digest differs.
fn forge_a_record(b: &mut [u8]) {
    let at = SEGMENT_DATA_START as usize;
    let le = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let bind = format::binding(le(16), le(24));
    let len = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
    b[at + RECORD_HEADER_SIZE] ^= 1;
    let header = crc32c::crc32c_append(crc32c::crc32c(&bind), &b[at + 8..at + 32]);
    let body = crc32c::crc32c_append(header, &b[at + 32..at + 32 + len]);
    b[at..at + 4].copy_from_slice(&crc_mask(body).to_le_bytes());
}

/// A change to a new segment's bytes, as a rotting disk makes it.
pub type Rot = fn(&mut [u8]);

/// Each way the new log may read back: only the verdict differs, only the digest, or both.
pub const ROTS: [(Rot, &str); 3] = [
    (flip_a_bit, "bad bytes"),
    (forge_a_record, "a valid record with other contents"),
    (rot_the_slot, "a damaged slot"),
];

#[test]
fn a_new_log_that_reads_back_differently_is_undone_and_the_old_log_kept() {
    for (rot, what) in ROTS {
        let storage = built(120, 200);
        let before = data_files(&storage);
        let rotting = Options {
            storage: Hooked::storage(&storage, compaction_rotting(rot)),
            ..options(&storage)
        };
        let err = walctl::compact(&dir(), &rotting, &drop_before(51)).unwrap_err();
        let summary = corrupt_summary(&err);
        assert!(
            summary.starts_with("the compacted log read back differently")
                && summary.ends_with("the old log was kept"),
            "{what}: {summary}"
        );
        assert_eq!(
            data_files(&storage),
            before,
            "{what}: the old log and nothing else"
        );
        assert_eq!(seqs(&storage), (1..=120).collect::<Vec<_>>(), "{what}");
    }
}

#[test]
fn a_reader_holding_on_defers_the_cleanup_to_the_next_open() {
    // Compaction removes the old segments only under the readers' lock held exclusively. A
    // reader that keeps its shared hold past `lock_wait` must leave them in place, the new log
    // installed all the same, and the next open must finish the job (FORMAT.md §6.5, §6.6).
    let storage = crate::util::built(120, 200);
    let old = crate::util::segments(&storage);
    let reader = walctl::storage::Storage::try_lock(
        &storage,
        &dir().join("READERS"),
        walctl::storage::LockKind::Shared,
    )
    .unwrap();
    let opts = Options {
        lock_wait: Some(std::time::Duration::from_millis(20)),
        ..options(&storage)
    };
    let plan = Compaction {
        before: Some(51),
        keys: false,
        dry_run: false,
        rewrite: false,
    };
    let report = walctl::compact(&dir(), &opts, &plan).unwrap();
    assert!(report.cleanup_deferred);
    let marker = dir().join("COMPACTION");
    assert!(storage.file_bytes(&marker).is_some(), "the marker stays");
    assert!(
        old.iter().all(|p| storage.file_bytes(p).is_some()),
        "no old segment was removed under the reader"
    );
    // Meanwhile readers see one log, not a mix: the old one, whole (FORMAT.md §6.6).
    let seqs = |s: &MemStorage| -> Vec<u64> {
        let (report, records) = scan(s, &dir());
        assert_eq!(report.verdict(), Verdict::Clean);
        records.iter().map(|r| r.seq).collect()
    };
    assert_eq!(seqs(&storage), (1..=120).collect::<Vec<_>>());
    drop(reader);
    drop(Log::open(dir(), opts).unwrap());
    assert_eq!(seqs(&storage), (51..=120).collect::<Vec<_>>());
    assert!(storage.file_bytes(&marker).is_none(), "open finished it");
    assert!(old.iter().all(|p| storage.file_bytes(p).is_none()));
}

/// The salvage target of these tests.
fn target() -> PathBuf {
    PathBuf::from("/salvaged")
}

/// Whether `target` is refused as a log: an unfinished salvage must never pass for one.
fn assert_marked_incomplete(storage: &MemStorage, what: &str) {
    let marker = target().join(walctl::segment::SALVAGE_MARKER);
    assert!(storage.file_bytes(&marker).is_some(), "{what}: marker");
    let err = Log::open(target(), options(storage)).unwrap_err();
    assert!(err.to_string().contains("salvage"), "{what}: {err}");
}

/// A record of the last segment goes bad: one record fewer, and new damage.
fn damage_a_record(storage: &MemStorage) {
    let last = segments(storage).pop().unwrap();
    crate::util::edit(storage, &last, |b| b[SEGMENT_DATA_START as usize + 40] ^= 1);
}

/// A sealed segment's slot goes bad: every record still there, but new damage.
fn damage_a_slot(storage: &MemStorage) {
    let sealed = segments(storage).swap_remove(1);
    crate::util::edit(storage, &sealed, |b| b[4096] ^= 1);
}

/// A writer starts and appends: one record more, no damage.
fn a_writer_appends(storage: &MemStorage) {
    let log = Log::open(dir(), options(storage)).unwrap();
    log.append(b"appended during the salvage").unwrap();
    log.sync().unwrap();
}

#[test]
fn a_log_changed_while_it_is_salvaged_leaves_a_target_marked_incomplete() {
    for (change, what) in [
        (damage_a_record as fn(&MemStorage), "a damaged record"),
        (damage_a_slot, "a damaged slot"),
        (a_writer_appends, "an append"),
    ] {
        let storage = built(120, 200);
        let mut changed = false;
        let mut observe = |pass, _| {
            if pass == Pass::Copy && !changed {
                changed = true;
                change(&storage);
            }
        };
        let err = walctl::salvage_observed(
            &dir(),
            &target(),
            &options(&storage),
            false,
            &mut observe,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(changed);
        let summary = corrupt_summary(&err);
        assert!(
            summary.contains("changed while it was salvaged"),
            "{what}: {summary}"
        );
        assert_marked_incomplete(&storage, what);
    }
}

#[test]
fn a_salvaged_log_that_reads_back_differently_stays_marked_incomplete() {
    for (rot, what) in ROTS {
        let storage = built(120, 200);
        let rotting = Options {
            storage: Hooked::storage(
                &storage,
                Rotting {
                    trigger: "00000000000000000001.wal",
                    victim: |_, to| to.to_path_buf(),
                    rot,
                },
            ),
            ..options(&storage)
        };
        let err = walctl::salvage(&dir(), &target(), &rotting).unwrap_err();
        let summary = corrupt_summary(&err);
        assert!(
            summary.contains("read back differently")
                && summary.contains("stays marked incomplete"),
            "{what}: {summary}"
        );
        assert_marked_incomplete(&storage, what);
        assert_eq!(
            seqs(&storage),
            (1..=120).collect::<Vec<_>>(),
            "{what}: the source"
        );
    }
}
