//! A log written by a newer walctl (FORMAT.md §8 row 12, §10): every entry point refuses it with
//! `UnsupportedVersion`, naming the segment and what it found, and changes nothing. Reading it
//! as damage instead would let repair cut, or salvage drop, records this walctl cannot read.
//! Coverage (TESTING.md) showed no test reached these refusals.

use crate::util::{built, data_files, dir, edit, plain, segments};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use walctl::format::{FORMAT_VERSION, SEGMENT_FLAGS_KNOWN, crc_mask};
use walctl::storage::MemStorage;
use walctl::{Compaction, DamageKind, Error, ErrorKind, Log, Result, Verdict};

/// Changes a segment's header with `change` and seals it again with a correct checksum, so only
/// the field checks behind the checksum can refuse it.
fn reseal_header(storage: &MemStorage, path: &Path, change: impl FnOnce(&mut [u8])) {
    edit(storage, path, |b| {
        change(&mut b[..60]);
        let crc = crc_mask(crc32c::crc32c(&b[..60]));
        b[60..64].copy_from_slice(&crc.to_le_bytes());
    });
}

/// Rewrites a segment's header as a newer walctl would: `version` at byte 8 and `flags` at 12,
/// well-formed but not one this walctl knows.
fn from_the_future(storage: &MemStorage, path: &Path, version: u16, flags: u32) {
    reseal_header(storage, path, |h| {
        h[8..10].copy_from_slice(&version.to_le_bytes());
        h[12..16].copy_from_slice(&flags.to_le_bytes());
    });
}

/// A log of several segments whose segment at `index` is from the future.
fn newer(index: usize, version: u16, flags: u32) -> (MemStorage, PathBuf) {
    let storage = built(60, 700);
    let segs = segments(&storage);
    assert!(segs.len() >= 3, "the log rotated");
    let path = segs[index.min(segs.len() - 1)].clone();
    from_the_future(&storage, &path, version, flags);
    (storage, path)
}

/// Asserts `result` is the refusal naming `path` and `found`, with the advice to upgrade.
fn refused<T: std::fmt::Debug>(what: &str, result: Result<T>, path: &Path, found: u32) {
    let err: Error = result.expect_err(what);
    match err.kind() {
        ErrorKind::UnsupportedVersion { path: p, found: f } => {
            assert_eq!((p.as_path(), *f), (path, found), "{what}");
        }
        other => panic!("{what}: {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("upgrade walctl"),
        "{what}: {text}"
    );
}

/// Runs every entry point that reads the whole log and asserts each refuses, and that not one
/// byte of the log changed.
fn every_reader_refuses(storage: &MemStorage, path: &Path, found: u32) {
    let before = data_files(storage);
    let opts = plain(storage);
    let mut ignore = |_: &walctl::RecordView<'_>| ControlFlow::Continue(());
    refused(
        "scan_log",
        walctl::scan_log(storage, &dir(), &mut ignore),
        path,
        found,
    );
    refused(
        "verify_log",
        walctl::verify_log(storage, &dir()),
        path,
        found,
    );
    let from = walctl::scan_log_from(storage, &dir(), 1, &mut ignore);
    refused("scan_log_from", from, path, found);
    let tail = walctl::read_after(storage, &dir(), None, &mut ignore);
    refused("read_after", tail, path, found);
    for dry_run in [true, false] {
        let repair = walctl::repair::truncate_partial(&dir(), &opts, dry_run);
        refused("repair", repair, path, found);
    }
    let plan = Compaction {
        before: Some(10),
        keys: false,
        dry_run: false,
        rewrite: false,
    };
    refused(
        "compact",
        walctl::compact(&dir(), &opts, &plan),
        path,
        found,
    );
    let target = PathBuf::from("/salvaged");
    refused(
        "salvage",
        walctl::salvage(&dir(), &target, &opts),
        path,
        found,
    );
    assert_eq!(data_files(storage), before, "a refusal changed the log");
}

#[test]
fn a_newer_last_segment_is_refused_by_open_and_by_every_reader() {
    let version = FORMAT_VERSION + 1;
    let (storage, path) = newer(usize::MAX, version, 0);
    refused(
        "open",
        Log::open(dir(), plain(&storage)),
        &path,
        u32::from(version),
    );
    every_reader_refuses(&storage, &path, u32::from(version));
}

#[test]
fn a_newer_middle_segment_is_refused_by_every_reader() {
    let version = u16::MAX;
    let (storage, path) = newer(1, version, 0);
    every_reader_refuses(&storage, &path, u32::from(version));
}

#[test]
fn an_unknown_flag_is_refused_like_a_newer_version() {
    let flags = SEGMENT_FLAGS_KNOWN + 1;
    assert_eq!(flags & SEGMENT_FLAGS_KNOWN, 0, "a bit no version defines");
    let (storage, path) = newer(usize::MAX, FORMAT_VERSION, flags);
    refused("open", Log::open(dir(), plain(&storage)), &path, flags);
    every_reader_refuses(&storage, &path, flags);
    let (storage, path) = newer(0, FORMAT_VERSION, flags | 1);
    every_reader_refuses(&storage, &path, flags | 1);
}

#[test]
fn a_header_no_version_writes_is_damage_not_a_newer_version() {
    // Version 0, or the current version with another header size, checksum intact: no walctl
    // wrote it, so "upgrade walctl" would mislead; it is a damaged header (FORMAT.md §2.1).
    for (version, size) in [(0, 64u16), (FORMAT_VERSION, 65)] {
        let (storage, path) = newer(1, version, 0);
        reseal_header(&storage, &path, |h| {
            h[10..12].copy_from_slice(&size.to_le_bytes())
        });
        let (report, _) = crate::util::scan(&storage, &dir());
        assert_eq!(report.verdict(), Verdict::Corrupt, "{version} {size}");
        let kinds: Vec<_> = report.damage.iter().map(|d| (d.kind, d.segment)).collect();
        assert_eq!(
            kinds,
            [(DamageKind::BadSegmentHeader, 2)],
            "{version} {size}"
        );
    }
}

#[test]
fn get_refuses_a_segment_rewritten_by_a_newer_walctl_after_it_built_its_index() {
    // The index was built from the old bytes; reading a value back must refuse the newer
    // segment as the scans do, not report it as a damaged one.
    let storage = MemStorage::new();
    let log = Log::open(dir(), plain(&storage)).unwrap();
    log.append_entry(&walctl::Entry::keyed(b"k", b"v")).unwrap();
    log.sync().unwrap();
    assert!(log.get(b"k").unwrap().is_some(), "the index is built");
    let path = segments(&storage).pop().unwrap();
    let version = FORMAT_VERSION + 1;
    from_the_future(&storage, &path, version, 0);
    refused("get", log.get(b"k"), &path, u32::from(version));
}
