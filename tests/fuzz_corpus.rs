//! Replays the committed fuzz corpora (issue 5, family 7) without libFuzzer, on stable.
//!
//! Every file under `fuzz/corpus/<target>/` (and `fuzz/regressions/<target>/`, where findings
//! are kept once fixed) goes through the same checking function the cargo-fuzz target calls,
//! from `tests/fuzz_checks/`. A corpus that went missing fails the test rather than passing it
//! vacuously. To grow the corpora, run `fuzz/run.sh` (see docs/TESTING.md).

mod fuzz_checks;

use fuzz_checks::reference::{self, SegmentInput};
use std::path::{Path, PathBuf};

fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("read the corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    let corpus = files("corpus", target);
    assert!(
        corpus.len() >= 10,
        "fuzz/corpus/{target} holds {} inputs; the committed corpus is missing",
        corpus.len()
    );
    for path in corpus.iter().chain(&files("regressions", target)) {
        let data = std::fs::read(path).expect("read a corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{} fails; reproduce with `cargo fuzz run {target} --sanitizer none {}`",
            path.display(),
            path.display()
        );
    }
}

#[test]
fn decode_record_corpus_replays_clean() {
    replay("decode_record", fuzz_checks::check_decode_record);
}

#[test]
fn scenario_corpus_replays_clean() {
    replay("scenario", fuzz_checks::check_scenario);
}

#[test]
fn differential_corpus_replays_clean() {
    replay("differential", fuzz_checks::check_differential);
}

#[test]
fn reference_crc_matches_the_spec_check_value() {
    assert_eq!(reference::crc32c(0, b"123456789"), 0xe306_9283);
    assert_eq!(
        reference::crc32c(reference::crc32c(0, b"1234"), b"56789"),
        0xe306_9283
    );
    assert_eq!(reference::mask(0), 0xa282_ead8);
}

/// The reference decoder reads the golden segment (FORMAT.md §9) exactly as walctl does.
#[test]
fn reference_decoder_agrees_on_the_golden_segments() {
    for name in ["log", "log-v1"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        agree_on_golden(&dir.join("00000000000000000001.wal"));
    }
}

fn agree_on_golden(path: &Path) {
    let file = std::fs::read(path).expect("golden segment");
    let input = SegmentInput {
        fix: false,
        renumber: false,
        flags: 0,
        first_seq: 1,
        slot: None,
        version2: false,
        end_pick: 0,
        segment: 1,
        log_id: 0x0123_4567_89ab_cdef,
        body: Vec::new(),
    };
    let theirs = reference::scan(&file, &input);
    assert_eq!(theirs.records.len(), 3);
    assert_eq!((theirs.valid_end, theirs.watermark), (12_415, 3));
    let storage = fuzz_checks::storage_with(&input.path(), file.clone());
    let (report, records) = fuzz_checks::scan_records(&storage);
    fuzz_checks::check_scan_invariants(&report, &records, &file, input.log_id, 1);
    reference::compare(&theirs, &report, &records, &input);
}

/// Hand-made inputs that reach each branch, so the checks themselves are exercised even before
/// a corpus exists: every record kind, a torn tail, a gap, a watermark above the tail.
#[test]
fn hand_made_inputs_pass_every_check() {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    let record = |seq: u64, kind: u8, key: Option<&[u8]>, payload: &[u8]| {
        let mut r = vec![0u8; 32];
        r[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        r[12..14].copy_from_slice(&(key.map_or(0, <[u8]>::len) as u16).to_le_bytes());
        r[14] = kind;
        r[15] = u8::from(key.is_some());
        r[16..24].copy_from_slice(&seq.to_le_bytes());
        r.extend_from_slice(key.unwrap_or_default());
        r.extend_from_slice(payload);
        r
    };
    for ctrl in [0u8, 1, 3, 5, 9, 17, 25, 33, 41, 57, 65, 73] {
        let mut data = vec![ctrl, 4, 3, 0];
        data.extend(record(1, 1, None, b"hello"));
        data.extend(record(2, 1, Some(b"user:1"), b"{}"));
        data.extend(record(3, 2, Some(b"user:1"), b""));
        data.extend(record(5, 1, Some(b""), b"gap"));
        data.extend([0u8; 40]);
        inputs.push(data.clone());
        data.truncate(data.len() - 50);
        inputs.push(data);
    }
    for data in &inputs {
        fuzz_checks::check_decode_record(data);
        fuzz_checks::check_differential(data);
        fuzz_checks::check_scenario(data);
    }
}
