//! The independent Python reader (`tools/walctl_decode.py`, written from docs/FORMAT.md alone)
//! must agree with walctl record for record and on the verdict, for clean, torn, corrupt and
//! compacted logs. A disagreement means the spec or the code is wrong.

use base64::Engine;
use std::path::{Path, PathBuf};
use std::process::Command;
use walctl::{Compaction, Entry, Log, Options};

fn python(args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/walctl_decode.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "decoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn agree(dir: &Path) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut ours = Vec::new();
    let report = walctl::scan_log(&walctl::storage::FsStorage::new(), dir, &mut |r| {
        ours.push(serde_json::json!({
            "seq": r.seq, "timestamp_nanos": r.timestamp_nanos, "type": r.kind.as_str(),
            "key": r.key.map(b64), "payload": b64(r.payload), "segment": r.location.segment,
            "offset": r.location.offset, "length": r.location.length, "crc": r.crc,
        }));
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let theirs: Vec<serde_json::Value> = python(&[dir.to_str().unwrap()])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(theirs.len(), ours.len(), "record count");
    for (t, o) in theirs.iter().zip(&ours) {
        assert_eq!(t, o);
    }
    let verdict = python(&["--verdict", dir.to_str().unwrap()])
        .trim()
        .to_string();
    assert_eq!(
        verdict,
        report.verdict().as_str(),
        "verdict of {}",
        dir.display()
    );
    verdict
}

fn build(dir: &Path, count: u32, close: bool) -> Log {
    build_with(dir, count, close, 0)
}

fn build_with(dir: &Path, count: u32, close: bool, preallocate: u64) -> Log {
    let opts = Options {
        segment_size: 16 << 10,
        preallocate,
        // A lock just released can look held while another test's child sits between fork
        // and exec (TESTING.md, family 8): reopening at once must wait that out.
        lock_wait: Some(std::time::Duration::from_secs(10)),
        ..Options::default()
    };
    let log = Log::open(dir, opts).unwrap();
    for i in 0..count {
        let key = format!("k{}", i % 5);
        let payload = vec![(i % 251) as u8; (i as usize * 37) % 900];
        match i % 7 {
            3 => log.append_entry(&Entry::tombstone(key.as_bytes())).unwrap(),
            0 | 5 => log.append(&payload).unwrap(),
            _ => log
                .append_entry(&Entry::keyed(key.as_bytes(), &payload))
                .unwrap(),
        };
    }
    if close {
        log.sync().unwrap();
    }
    log
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn reference_decoder_agrees_on_the_golden_logs_of_every_version() {
    for name in ["log", "log-v1"] {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        assert_eq!(agree(&dir), "clean", "{name}");
    }
}

#[test]
fn reference_decoder_agrees_on_clean_torn_and_corrupt_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    drop(build(&dir, 200, true));
    assert_eq!(agree(&dir), "clean");

    // A crashed writer: records after the last sync, cut short, then zeros. Closing without a
    // sync leaves those records unacknowledged, as a crash would.
    drop(build(&dir, 30, false));
    let last = last_segment(&dir);
    let len = std::fs::metadata(&last).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len - 5).unwrap();
    assert_eq!(agree(&dir), "torn_tail");
    f.set_len(len + 4000).unwrap();
    assert_eq!(agree(&dir), "torn_tail");

    let preallocated = tmp.path().join("preallocated");
    drop(build_with(&preallocated, 150, true, 1 << 20));
    drop(build_with(&preallocated, 7, false, 1 << 20));
    assert_eq!(agree(&preallocated), "clean");

    let corrupt = tmp.path().join("corrupt");
    drop(build(&corrupt, 200, true));
    let first = corrupt.join("00000000000000000001.wal");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[12_400] ^= 0x08;
    std::fs::write(&first, bytes).unwrap();
    assert_eq!(agree(&corrupt), "corrupt");
}

#[test]
fn reference_decoder_agrees_on_compacted_and_gapped_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    drop(build(&dir, 300, true));
    let opts = Options {
        segment_size: 16 << 10,
        ..Options::default()
    };
    walctl::compact(
        &dir,
        &opts,
        &Compaction {
            before: Some(40),
            keys: true,
            dry_run: false,
            rewrite: false,
        },
    )
    .unwrap();
    drop(build(&dir, 50, true));
    assert_eq!(agree(&dir), "clean");
    std::fs::remove_file(dir.join("00000000000000000025.wal")).ok();
    let missing = std::fs::read_dir(&dir).unwrap().count();
    assert!(missing > 0);
    let second = {
        let mut segs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        segs.sort();
        segs[1].clone()
    };
    std::fs::remove_file(second).unwrap();
    assert_eq!(agree(&dir), "corrupt");
}

#[test]
fn reference_decoder_agrees_on_a_salvaged_log_and_refuses_an_interrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    drop(build(&dir, 200, true));
    // Damage a record in the middle of the first segment: a corrupt log to salvage.
    let first = dir.join("00000000000000000001.wal");
    let mut bytes = std::fs::read(&first).unwrap();
    let at = walctl::format::SEGMENT_DATA_START as usize + 2000;
    bytes[at] ^= 0x10;
    std::fs::write(&first, bytes).unwrap();
    assert_eq!(agree(&dir), "corrupt");
    let salvaged = tmp.path().join("salvaged");
    let report = walctl::salvage(&dir, &salvaged, &Options::default()).unwrap();
    assert!(!report.lost.is_empty(), "the damage took a record");
    assert_eq!(agree(&salvaged), "clean");
    std::fs::write(salvaged.join("SALVAGE-INCOMPLETE"), "").unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/walctl_decode.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&salvaged)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the reference decoder read an interrupted salvage"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("an interrupted salvage"));
}
