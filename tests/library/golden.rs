//! The golden log under `tests/golden/log/`: its bytes are pinned, and it decodes to the records
//! of the worked example in FORMAT.md §9. Set `WALCTL_BLESS=1` to rewrite it after a deliberate
//! format change (which also needs a version bump).

use std::ops::ControlFlow;
use std::path::PathBuf;
use walctl::format::{
    self, FORMAT_VERSION, RecordKind, RecordMeta, SEGMENT_DATA_START, SegmentHeader,
    WATERMARK_SLOT_OFFSETS, WatermarkSlot,
};
use walctl::storage::FsStorage;

const LOG_ID: u64 = 0x0123_4567_89ab_cdef;
const T0: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/log/00000000000000000001.wal")
}

/// The golden segment, built from the format functions alone.
fn golden_bytes() -> Vec<u8> {
    let header = SegmentHeader {
        version: FORMAT_VERSION,
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
    bytes
}

#[test]
fn golden_segment_bytes_are_pinned() {
    let bytes = golden_bytes();
    if std::env::var_os("WALCTL_BLESS").is_some() {
        std::fs::create_dir_all(golden_path().parent().unwrap()).unwrap();
        std::fs::write(golden_path(), &bytes).unwrap();
    }
    let committed = std::fs::read(golden_path()).expect("the golden file is committed");
    assert_eq!(committed.len(), bytes.len());
    assert!(
        committed == bytes,
        "the encoder changed the format: bump FORMAT_VERSION, keep old logs readable"
    );
    let records = &committed[SEGMENT_DATA_START as usize..];
    // The first record, byte for byte as in FORMAT.md §9.
    assert_eq!(&records[8..16], &[5, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(&records[16..24], &1u64.to_le_bytes());
    assert_eq!(&records[32..37], b"hello");
}

#[test]
fn golden_log_decodes_to_the_worked_example() {
    let dir = golden_path().parent().unwrap().to_path_buf();
    let mut seen = Vec::new();
    let report = walctl::scan_log(&FsStorage::new(), &dir, &mut |r| {
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
