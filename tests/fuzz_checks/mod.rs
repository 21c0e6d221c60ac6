//! The checks behind the fuzz targets (issue 5, family 7), shared by two builds:
//!
//! * each cargo-fuzz target in `fuzz/fuzz_targets/` includes this directory with
//!   `#[path = "../../tests/fuzz_checks/mod.rs"] mod checks;` and hands every input to one of the
//!   `check_*` functions below;
//! * `tests/fuzz_corpus.rs` includes it as an ordinary module and replays every file of the
//!   committed corpora (`fuzz/corpus/<target>/`) through the same functions, so plain
//!   `cargo test` on stable runs them without libFuzzer.
//!
//! Every function takes the raw input bytes and panics on a finding. None of them allocates from a
//! length read out of the input beyond the input's own size.
#![allow(dead_code)]

pub mod oracle;
pub mod reference;
pub mod scenario;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use walctl::format::{
    self, Decoded, KEY_SIZE_LIMIT, KEY_SIZE_MAX_DEFAULT, RECORD_HEADER_SIZE, RECORD_SIZE_LIMIT,
    RECORD_SIZE_MAX_DEFAULT, SEGMENT_DATA_START,
};
use walctl::storage::{CrashMode, MemStorage, Storage};
use walctl::{Log, Options, Record, Report, Verdict};

/// Log identity used for every segment the checks build.
pub const LOG_ID: u64 = 0x0123_4567_89ab_cdef;

/// The binding `decode_record` is fuzzed with: log `LOG_ID`, segment 1.
pub const BIND: [u8; 16] = [
    0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, 1, 0, 0, 0, 0, 0, 0, 0,
];

/// Directory of the in-memory logs.
pub fn log_dir() -> PathBuf {
    PathBuf::from("/fuzz/log")
}

/// Target `decode_record`: raw bytes through `walctl::format::decode_record` with the fixed
/// binding [`BIND`] (under the hard and the default limits), then the same bytes as the records
/// of a whole segment scanned by `walctl::scan_log` and opened by `Log::open`.
///
/// Asserts: no panic; a decoded record lies within the input and re-encodes to exactly its
/// bytes; the default limits accept a subset of what the hard limits accept; the valid prefix
/// of the segment is no longer than the file; every delivered record re-encodes to the bytes at
/// its location; a log `Log::open` accepted scans clean afterwards.
pub fn check_decode_record(data: &[u8]) {
    check_one_record(data, &BIND);
    let input = reference::SegmentInput::parse(data);
    let mut body = input.body.clone();
    let mut fixed = body.clone();
    reference::fix_up(&mut fixed, &input.binding(), input.renumber_from());
    // The fixed-up body starts with a well-framed record more often than not: decode it alone.
    check_one_record(&fixed, &input.binding());
    if input.fix {
        body = fixed;
    }
    let file = input.segment_file(&body);
    let storage = storage_with(&input.path(), file.clone());
    let (report, records) = scan_records(&storage);
    check_scan_invariants(&report, &records, &file, input.log_id, input.segment);
    check_open_then_clean(&storage);
}

/// Decodes `bytes` as one record and checks what came out.
pub fn check_one_record(bytes: &[u8], bind: &[u8; 16]) {
    let hard = format::decode_record(bytes, bind, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT);
    let soft = format::decode_record(bytes, bind, RECORD_SIZE_MAX_DEFAULT, KEY_SIZE_MAX_DEFAULT);
    if let Decoded::Record(r) = soft {
        assert_eq!(
            hard, soft,
            "the default limits accepted what the hard limits refused"
        );
        let body = r.key.map_or(0, <[u8]>::len) + r.payload.len();
        assert!(body <= RECORD_SIZE_MAX_DEFAULT as usize);
    }
    let Decoded::Record(r) = hard else {
        return;
    };
    let length = r.length as usize;
    assert!(
        (RECORD_HEADER_SIZE..=bytes.len()).contains(&length),
        "record length {length} outside 32..={}",
        bytes.len()
    );
    assert_eq!(
        length,
        RECORD_HEADER_SIZE + r.key.map_or(0, <[u8]>::len) + r.payload.len()
    );
    assert!(r.meta.seq >= 1, "sequence 0 decoded");
    assert_eq!(r.crc, u32::from_le_bytes(bytes[..4].try_into().unwrap()));
    let mut again = Vec::new();
    format::encode_record(&mut again, bind, r.meta, r.key, r.payload);
    assert_eq!(
        again,
        bytes[..length],
        "a decoded record does not re-encode to its bytes"
    );
    let mut other = *bind;
    other[8] ^= 0x40;
    assert!(
        !matches!(
            format::decode_record(bytes, &other, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT),
            Decoded::Record(_)
        ),
        "a record decoded under a binding it was not written with"
    );
}

/// A `MemStorage` holding one file at `path` (its directory created).
pub fn storage_with(path: &Path, bytes: Vec<u8>) -> MemStorage {
    let storage = MemStorage::new();
    storage
        .create_dir_all(path.parent().expect("a file in a directory"))
        .expect("create the directory in memory");
    storage.set_file_bytes(path, bytes);
    storage
}

/// Scans the in-memory log; a segment with a valid header never makes the scan fail.
pub fn scan_records(storage: &dyn Storage) -> (Report, Vec<Record>) {
    let mut records = Vec::new();
    let report = walctl::scan_log(storage, &log_dir(), &mut |r| {
        records.push(r.to_record());
        ControlFlow::Continue(())
    })
    .unwrap_or_else(|e| panic!("scan of a segment with a valid header failed: {e}"));
    (report, records)
}

/// Invariants of any scan of a single segment holding `file`.
pub fn check_scan_invariants(
    report: &Report,
    records: &[Record],
    file: &[u8],
    log_id: u64,
    segment: u64,
) {
    assert_eq!(report.segments.len(), 1);
    let seg = &report.segments[0];
    assert_eq!(seg.file_len, file.len() as u64);
    assert!(
        seg.valid_len <= seg.file_len,
        "valid_len {} > file length {}",
        seg.valid_len,
        seg.file_len
    );
    assert!(seg.valid_len >= SEGMENT_DATA_START);
    assert_eq!(report.records, records.len() as u64);
    let bind = format::binding(log_id, segment);
    let mut last = 0;
    for r in records {
        assert!(r.seq > last, "sequence numbers delivered out of order");
        last = r.seq;
        let start = r.location.offset as usize;
        let end = start + r.location.length as usize;
        assert!(start >= SEGMENT_DATA_START as usize && end <= file.len());
        let meta = format::RecordMeta {
            seq: r.seq,
            timestamp_nanos: r.timestamp_nanos,
            kind: r.kind,
        };
        let mut again = Vec::new();
        format::encode_record(&mut again, &bind, meta, r.key.as_deref(), &r.payload);
        assert_eq!(
            again,
            file[start..end],
            "delivered record {} does not re-encode to the bytes at offset {start}",
            r.seq
        );
        assert_eq!(
            r.crc,
            u32::from_le_bytes(file[start..start + 4].try_into().unwrap())
        );
    }
    for d in &report.damage {
        assert!(d.offset + d.length <= file.len() as u64 || d.length == 0);
    }
}

/// `Log::open` never panics; when it accepts the log, a scan afterwards finds it clean and every
/// record of the valid prefix is still there.
fn check_open_then_clean(storage: &MemStorage) {
    let copy = storage.crash(CrashMode::KeepAll);
    let (before, before_records) = scan_records(&copy);
    let options = Options {
        create: false,
        ..Options::with_storage(std::sync::Arc::new(copy.clone()))
    };
    let file_len = before.segments[0].file_len;
    let Ok(log) = Log::open(log_dir(), options) else {
        return;
    };
    // Open reads only what follows the durable end a version 2 slot records (FORMAT.md §6.3).
    let resumed_at = file_len - log.open_report().tail_scanned;
    drop(log);
    let (after, records) = scan_records(&copy);
    if after.verdict() != Verdict::Clean {
        // Damage open did not read: it must all lie before where open resumed, and open must
        // have changed nothing about it.
        assert!(
            after.damage.iter().all(|d| d.offset < resumed_at),
            "Log::open accepted a log that then scans {:?} (resumed at {resumed_at}): {:?}",
            after.verdict(),
            after.damage
        );
        let shape = |r: &Report| -> Vec<_> {
            r.damage
                .iter()
                .map(|d| (d.segment, d.offset, d.length, d.kind))
                .collect()
        };
        assert_eq!(shape(&after), shape(&before), "open changed the damage");
        assert!(records == before_records, "open changed the records");
        return;
    }
    let valid_len = before.segments[0].valid_len;
    let prefix: Vec<&Record> = before_records
        .iter()
        .filter(|r| r.location.offset < valid_len)
        .collect();
    assert_eq!(records.len(), prefix.len(), "open lost or added records");
    for (a, b) in records.iter().zip(prefix) {
        assert_eq!(a, b, "open altered a record");
    }
}

/// Target `differential`: a valid preamble followed by the input's bytes, scanned by walctl and
/// by the straight-line reference decoder in [`reference`]; they must agree on the valid prefix,
/// on every record in it, field by field, and on the verdict.
pub fn check_differential(data: &[u8]) {
    let input = reference::SegmentInput::parse(data);
    let mut body = input.body.clone();
    if input.fix {
        reference::fix_up(&mut body, &input.binding(), input.renumber_from());
    }
    let file = input.segment_file(&body);
    let storage = storage_with(&input.path(), file.clone());
    let (report, records) = scan_records(&storage);
    check_scan_invariants(&report, &records, &file, input.log_id, input.segment);
    let theirs = reference::scan(&file, &input);
    reference::compare(&theirs, &report, &records, &input);
}

/// Target `scenario`: see [`scenario::check`].
pub fn check_scenario(data: &[u8]) {
    scenario::check(data);
}
