//! The golden logs: `tests/golden/log/` in the current format version and `tests/golden/log-v1/`
//! in version 1. Their bytes are pinned, and both decode to the records of the worked example in
//! FORMAT.md §9, so a change to the encoder fails here and older logs stay readable. Set
//! `WALCTL_BLESS=1` to rewrite the current one after a deliberate format change (which also
//! needs a version bump); the older versions' files are never rewritten.

use std::ops::ControlFlow;
use std::path::PathBuf;
use walctl::format::{
    self, FORMAT_VERSION, RecordKind, RecordMeta, SEGMENT_DATA_START, SegmentHeader,
    WATERMARK_SLOT_OFFSETS, WatermarkSlot,
};
use walctl::storage::FsStorage;

const LOG_ID: u64 = 0x0123_4567_89ab_cdef;
const T0: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

/// The golden segment of format `version`.
fn golden_path(version: u16) -> PathBuf {
    let dir = if version == FORMAT_VERSION {
        "log".to_string()
    } else {
        format!("log-v{version}")
    };
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(dir)
        .join("00000000000000000001.wal")
}

/// Where the golden log's third and last record ends.
const GOLDEN_END: u64 = 12415;

/// The golden segment in format `version`, built from the format functions alone.
fn golden_bytes(version: u16) -> Vec<u8> {
    let header = SegmentHeader {
        version,
        flags: 0,
        log_id: LOG_ID,
        segment: 1,
        first_seq: 1,
        log_first_seq: 1,
        created_nanos: T0,
    };
    let mut bytes = header.encode().to_vec();
    bytes.resize(SEGMENT_DATA_START as usize, 0);
    let slot = WatermarkSlot {
        durable_seq: 3,
        generation: 1,
        // Version 1 reserved these bytes (zero).
        durable_end: if version >= 2 { GOLDEN_END } else { 0 },
    }
    .encode(LOG_ID, 1);
    let at = WATERMARK_SLOT_OFFSETS[1] as usize;
    bytes[at..at + slot.len()].copy_from_slice(&slot);
    let bind = format::binding(LOG_ID, 1);
    let meta = |seq, kind| RecordMeta {
        seq,
        timestamp_nanos: T0 + seq,
        kind,
    };
    format::encode_record(&mut bytes, &bind, meta(1, RecordKind::Data), None, b"hello");
    format::encode_record(
        &mut bytes,
        &bind,
        meta(2, RecordKind::Data),
        Some(b"user:1"),
        b"{\"name\":\"ada\"}",
    );
    format::encode_record(
        &mut bytes,
        &bind,
        meta(3, RecordKind::Tombstone),
        Some(b"user:1"),
        b"",
    );
    assert_eq!(bytes.len() as u64, GOLDEN_END);
    bytes
}

#[test]
fn golden_segment_bytes_are_pinned() {
    let bytes = golden_bytes(FORMAT_VERSION);
    if std::env::var_os("WALCTL_BLESS").is_some() {
        std::fs::create_dir_all(golden_path(FORMAT_VERSION).parent().unwrap()).unwrap();
        std::fs::write(golden_path(FORMAT_VERSION), &bytes).unwrap();
    }
    for version in 1..=FORMAT_VERSION {
        let bytes = golden_bytes(version);
        let committed = std::fs::read(golden_path(version)).expect("the golden file is committed");
        assert_eq!(committed.len(), bytes.len());
        assert!(
            committed == bytes,
            "version {version}: the encoder changed the format: bump FORMAT_VERSION, keep old logs readable"
        );
        assert_eq!(&committed[8..10], &version.to_le_bytes());
        let records = &committed[SEGMENT_DATA_START as usize..];
        // The first record, byte for byte as in FORMAT.md §9 (the same in every version).
        assert_eq!(&records[8..16], &[5, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(&records[16..24], &1u64.to_le_bytes());
        assert_eq!(&records[32..37], b"hello");
    }
    // What version 2 added: the slot records where the durable records end.
    let v2 = golden_bytes(2);
    let slot = &v2[WATERMARK_SLOT_OFFSETS[1] as usize..][..32];
    assert_eq!(&slot[16..24], &GOLDEN_END.to_le_bytes());
}

#[test]
fn golden_logs_of_every_version_decode_to_the_worked_example() {
    for version in 1..=FORMAT_VERSION {
        let dir = golden_path(version).parent().unwrap().to_path_buf();
        check_worked_example(&dir);
    }
}

#[test]
fn a_writer_continues_a_version_1_log_in_version_1_and_starts_new_segments_in_the_current() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(golden_path(1), dir.join("00000000000000000001.wal")).unwrap();
    let opts = walctl::Options {
        segment_size: 16 << 10,
        ..walctl::Options::default()
    };
    {
        let log = walctl::Log::open(&dir, opts.clone()).unwrap();
        // Version 1 slots record no end: open scanned the whole segment.
        assert_eq!(
            log.open_report().tail_scanned,
            GOLDEN_END - SEGMENT_DATA_START
        );
        assert_eq!(log.append(b"four").unwrap().seq, 4);
        log.sync().unwrap();
        for _ in 0..10 {
            log.append(&[7u8; 1000]).unwrap(); // rotates into segment 2
        }
        log.sync().unwrap();
    }
    let first = std::fs::read(dir.join("00000000000000000001.wal")).unwrap();
    assert_eq!(
        &first[8..10],
        &1u16.to_le_bytes(),
        "segment 1 stays version 1"
    );
    for at in WATERMARK_SLOT_OFFSETS {
        let slot = &first[at as usize..][..32];
        assert!(
            slot[16..28].iter().all(|&b| b == 0),
            "reserved in version 1"
        );
    }
    let second = std::fs::read(dir.join("00000000000000000002.wal")).unwrap();
    assert_eq!(&second[8..10], &FORMAT_VERSION.to_le_bytes());
    let report = walctl::verify(&dir).unwrap();
    assert_eq!(
        report.verdict(),
        walctl::Verdict::Clean,
        "{:?}",
        report.damage
    );
    assert_eq!(report.durable_seq, Some(14));
    let log = walctl::Log::open(&dir, opts).unwrap();
    assert_eq!(log.next_seq(), 15);
}

fn check_worked_example(dir: &std::path::Path) {
    let mut seen = Vec::new();
    let report = walctl::scan_log(&FsStorage::new(), dir, &mut |r| {
        seen.push((
            r.seq,
            r.kind,
            r.key.map(<[u8]>::to_vec),
            r.payload.to_vec(),
            r.location.offset,
        ));
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        report.verdict(),
        walctl::Verdict::Clean,
        "{:?}",
        report.damage
    );
    assert_eq!((report.log_id, report.durable_seq), (Some(LOG_ID), Some(3)));
    assert_eq!(
        seen,
        vec![
            (1, RecordKind::Data, None, b"hello".to_vec(), 12288),
            (
                2,
                RecordKind::Data,
                Some(b"user:1".to_vec()),
                b"{\"name\":\"ada\"}".to_vec(),
                12325
            ),
            (
                3,
                RecordKind::Tombstone,
                Some(b"user:1".to_vec()),
                Vec::new(),
                12377
            ),
        ]
    );
}

/// The value of one cell of FORMAT.md's limits table: terms such as `16 KiB` or `32 B` joined
/// by `+`.
fn table_value(cell: &str) -> u64 {
    cell.split('+')
        .map(|term| {
            let mut words = term.split_whitespace();
            let n: u64 = words.next().expect("a number").parse().expect("a number");
            let unit = match words.next() {
                None | Some("B") => 1,
                Some("KiB") => 1 << 10,
                Some("MiB") => 1 << 20,
                Some("GiB") => 1 << 30,
                Some(other) => panic!("unknown unit {other} in {cell:?}"),
            };
            n * unit
        })
        .sum()
}

#[test]
fn the_limits_in_format_md_are_the_limits_the_code_enforces() {
    let spec =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/FORMAT.md"))
            .unwrap();
    let code: &[(&str, u64)] = &[
        (
            "RECORD_SIZE_MAX_DEFAULT",
            u64::from(format::RECORD_SIZE_MAX_DEFAULT),
        ),
        ("RECORD_SIZE_LIMIT", u64::from(format::RECORD_SIZE_LIMIT)),
        (
            "KEY_SIZE_MAX_DEFAULT",
            u64::from(format::KEY_SIZE_MAX_DEFAULT),
        ),
        ("KEY_SIZE_LIMIT", u64::from(format::KEY_SIZE_LIMIT)),
        ("SEGMENT_SIZE_DEFAULT", format::SEGMENT_SIZE_DEFAULT),
        ("SEGMENT_SIZE_MIN", format::SEGMENT_SIZE_MIN),
        ("SEGMENT_SIZE_LIMIT", format::SEGMENT_SIZE_LIMIT),
        ("SEGMENT_FILE_LIMIT", format::SEGMENT_FILE_LIMIT),
    ];
    let section = spec
        .split("## 4. Limits")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("FORMAT.md has its limits section");
    let mut checked = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let names = cells[1].split(',').map(|n| n.trim().trim_matches('`'));
        for (name, value) in names.zip(cells[2].split(',')) {
            let (_, ours) = code
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("FORMAT.md names {name}, which the test does not know"));
            assert_eq!(table_value(value), *ours, "{name}: FORMAT.md says {value}");
            checked.push(name.to_string());
        }
    }
    assert_eq!(checked.len(), code.len(), "rows checked: {checked:?}");
}
