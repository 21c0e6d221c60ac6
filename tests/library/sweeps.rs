//! Exhaustive sweeps over a small multi-segment log: truncation at every byte offset of its
//! end, and every single-bit flip.

use crate::util::{dir, payload, plain as options, scan, scan_only, segments};
use walctl::format::{SEGMENT_DATA_START, WATERMARK_SLOT_OFFSETS, WATERMARK_SLOT_SIZE};
use walctl::storage::{CrashMode, MemStorage};
use walctl::{Log, Verdict};

/// Two sealed segments and a last one whose records were never synced (a crash before sync).
fn unsynced_end() -> MemStorage {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    let mut seq = 1;
    while segments(&storage).len() < 3
        || storage.file_bytes(&segments(&storage)[2]).unwrap().len() < 14_000
    {
        log.append(&payload(seq, (seq * 53 % 400) as usize))
            .unwrap();
        seq += 1;
    }
    let crashed = storage.crash(CrashMode::KeepAll);
    drop(log);
    crashed
}

#[test]
fn truncating_the_log_at_every_byte_offset_is_never_corruption() {
    let storage = unsynced_end();
    let last = segments(&storage).pop().unwrap();
    let bytes = storage.file_bytes(&last).unwrap();
    let (_, records) = scan(&storage, &dir());
    let ends: Vec<u64> = records
        .iter()
        .filter(|r| r.location.segment == 3)
        .map(|r| r.location.offset + u64::from(r.location.length))
        .collect();
    for cut in SEGMENT_DATA_START as usize..=bytes.len() {
        storage.set_file_bytes(&last, bytes[..cut].to_vec());
        let (report, _) = scan(&storage, &dir());
        assert_ne!(
            report.verdict(),
            Verdict::Corrupt,
            "cut at {cut}: {:?}",
            report.damage
        );
        let boundary = ends
            .iter()
            .copied()
            .filter(|&e| e <= cut as u64)
            .max()
            .unwrap_or(SEGMENT_DATA_START);
        assert_eq!(report.segments[2].valid_len, boundary, "cut at {cut}");
        assert_eq!(
            report.verdict() == Verdict::Clean,
            boundary == cut as u64,
            "cut at {cut}"
        );
    }
}

#[test]
fn truncating_a_sealed_segment_is_corruption() {
    let storage = unsynced_end();
    let first = segments(&storage).remove(0);
    let bytes = storage.file_bytes(&first).unwrap();
    for cut in (0..bytes.len()).step_by(97) {
        storage.set_file_bytes(&first, bytes[..cut].to_vec());
        assert_eq!(
            scan(&storage, &dir()).0.verdict(),
            Verdict::Corrupt,
            "cut at {cut}"
        );
    }
}

fn in_slot(offset: usize) -> bool {
    WATERMARK_SLOT_OFFSETS
        .iter()
        .any(|&s| (s as usize..s as usize + WATERMARK_SLOT_SIZE).contains(&offset))
}

#[test]
fn every_single_bit_flip_is_detected_and_no_payload_is_altered() {
    let storage = crate::util::built(0, 0);
    let log = Log::open(dir(), options(&storage)).unwrap();
    for seq in 1..=20u64 {
        log.append(&payload(seq, 250)).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let segs = segments(&storage);
    assert_eq!(segs.len(), 2, "one sealed segment and the last");
    let (clean, originals) = scan(&storage, &dir());
    assert_eq!(clean.verdict(), Verdict::Clean);
    let mut flips = 0u64;
    for (index, path) in segs.iter().enumerate() {
        let bytes = storage.file_bytes(path).unwrap();
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            storage.set_file_bytes(path, bad);
            // Every 64th state is also checked against the parallel verifier.
            let (report, records) = if bit % 64 == 0 {
                scan(&storage, &dir())
            } else {
                scan_only(&storage, &dir())
            };
            for r in &records {
                assert_eq!(
                    r.payload,
                    originals[r.seq as usize - 1].payload,
                    "bit {bit}: altered payload"
                );
            }
            let last_slot = index == 1 && in_slot(bit / 8);
            if last_slot {
                // A torn slot write is a legal crash state in the last segment: the slot then
                // proves less, and nothing is lost.
                assert_eq!(records.len(), 20, "bit {bit}");
            } else {
                assert_ne!(
                    report.verdict(),
                    Verdict::Clean,
                    "segment {index} bit {bit} undetected"
                );
            }
            flips += 1;
        }
        storage.set_file_bytes(path, bytes);
    }
    assert!(flips > 200_000, "{flips} flips");
}
