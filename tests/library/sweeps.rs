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
    println!("bit flips: {flips}");
    assert!(flips > 200_000, "{flips} flips");
}

/// Burst lengths in bits, at every byte offset.
const BURSTS: [usize; 7] = [2, 3, 5, 8, 13, 21, 32];

#[test]
fn bursts_and_sector_damage_are_detected_and_refused_by_repair() {
    let storage = crate::util::built(20, 250);
    let segs = segments(&storage);
    let (_, originals) = crate::util::scan_only(&storage, &dir());
    let mut cases = 0u64;
    for (index, path) in segs.iter().enumerate() {
        let bytes = storage.file_bytes(path).unwrap();
        let mut damaged = |bad: Vec<u8>, what: &str| {
            storage.set_file_bytes(path, bad);
            let (report, records) = crate::util::scan_only(&storage, &dir());
            for r in &records {
                assert_eq!(
                    r.payload,
                    originals[r.seq as usize - 1].payload,
                    "{what}: altered payload"
                );
            }
            cases += 1;
            report
        };
        for at in 0..bytes.len() {
            for bits in BURSTS {
                let mut bad = bytes.clone();
                for b in 0..bits {
                    let bit = at * 8 + b;
                    if bit / 8 < bad.len() {
                        bad[bit / 8] ^= 1 << (bit % 8);
                    }
                }
                let report = damaged(bad, &format!("segment {index} burst {bits} at {at}"));
                let in_last_slot = index == 1
                    && in_slot(at)
                    && in_slot(((at * 8 + bits - 1) / 8).min(bytes.len() - 1));
                assert!(
                    in_last_slot || report.verdict() != Verdict::Clean,
                    "segment {index}: burst of {bits} at {at} undetected"
                );
            }
        }
        for sector in 0..bytes.len().div_ceil(512) {
            let range = sector * 512..((sector + 1) * 512).min(bytes.len());
            let mut zeroed = bytes.clone();
            zeroed[range.clone()].fill(0);
            let mut duplicated = bytes.clone();
            if sector > 0 {
                let prev = bytes[range.start - 512..range.end - 512].to_vec();
                duplicated[range.clone()].copy_from_slice(&prev);
            }
            for (kind, bad) in [("zeroed", zeroed), ("duplicated", duplicated)] {
                // In the last segment a slot wiped to zeros reads as never written: it proves
                // less (FORMAT.md §8), and no record is lost or altered, as checked above.
                let changed = bad != bytes;
                let all_zero_already = bytes[range.clone()].iter().all(|&b| b == 0);
                let report = damaged(bad, &format!("segment {index} {kind} sector {sector}"));
                if changed
                    && !all_zero_already
                    && !(index == 1
                        && [8, 16].contains(&sector)
                        && report.verdict() == Verdict::Clean)
                {
                    assert_ne!(
                        report.verdict(),
                        Verdict::Clean,
                        "segment {index}: {kind} sector {sector}"
                    );
                }
                if report.verdict() == Verdict::Corrupt {
                    let opts = options(&storage);
                    assert!(
                        walctl::truncate_partial(&dir(), &opts, true).is_err(),
                        "repair must refuse"
                    );
                }
            }
        }
        storage.set_file_bytes(path, bytes);
    }
    println!("corruption sweep: {cases} damaged logs scanned");
    assert!(cases > 200_000, "{cases}");
}

#[test]
fn duplicated_segment_content_is_detected() {
    let storage = crate::util::built(60, 250);
    let segs = segments(&storage);
    assert!(segs.len() >= 3);
    storage.set_file_bytes(&segs[1], storage.file_bytes(&segs[0]).unwrap());
    assert_eq!(scan(&storage, &dir()).0.verdict(), Verdict::Corrupt);
}
