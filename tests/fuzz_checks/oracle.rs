//! The scenario's oracle after the final crash: planting damage in the crashed log, and what
//! recovery must deliver with and without it (see `scenario`'s module doc for the promises).

use super::scenario::{Damage, Knobs, Outcome, options};
use super::{log_dir, scan_records};
use std::collections::BTreeSet;
use std::path::PathBuf;
use walctl::storage::MemStorage;
use walctl::{Log, Record, Verdict};

/// Damage one file of the crashed log.
pub fn plant(storage: &MemStorage, d: Damage) {
    let files = storage.files();
    let file = match d {
        Damage::Flip { file, .. } | Damage::Truncate { file, .. } | Damage::Zero { file, .. } => {
            file
        }
    };
    let Some(path) = files.get(usize::from(file) % files.len().max(1)) else {
        return;
    };
    let mut b = storage.file_bytes(path).unwrap_or_default();
    match d {
        Damage::Flip { offset, mask, .. } if !b.is_empty() => {
            let at = offset as usize % b.len();
            b[at] ^= mask.max(1);
        }
        Damage::Truncate { len, .. } => b.truncate(len as usize % (b.len() + 1)),
        Damage::Zero { offset, len, .. } if !b.is_empty() => {
            let at = offset as usize % b.len();
            let end = (at + usize::from(len % 4096)).min(b.len());
            b[at..end].fill(0);
        }
        _ => {}
    }
    storage.set_file_bytes(path, b);
}

fn has_segments(storage: &MemStorage) -> bool {
    storage
        .files()
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "wal"))
}

/// Every delivered record is one that was appended, unaltered, in increasing order.
fn assert_genuine(records: &[Record], out: &Outcome, what: &str) {
    let mut last = 0;
    for r in records {
        assert!(r.seq > last, "{what}: sequence numbers out of order");
        last = r.seq;
        let Some(e) = out.appended.get(r.seq as usize - 1) else {
            panic!(
                "{what}: phantom record {} (only {} appended)",
                r.seq,
                out.appended.len()
            );
        };
        let got = (r.kind, r.key.as_ref(), &r.payload, r.timestamp_nanos);
        let want = (e.kind, e.key.as_ref(), &e.payload, e.timestamp_nanos);
        assert!(got == want, "{what}: record {} altered", r.seq);
    }
}

pub fn recover_crash_only(storage: &MemStorage, out: &Outcome, knobs: Knobs) {
    if !has_segments(storage) {
        assert_eq!(out.acked, 0, "acknowledged records vanished with the log");
        let log = Log::open(log_dir(), options(storage, knobs)).expect("open an empty log");
        assert_eq!(log.records().expect("records").len(), 0);
        return;
    }
    let (report, records) = scan_records(storage);
    assert_ne!(
        report.verdict(),
        Verdict::Corrupt,
        "a crash alone read as corruption: {:?}",
        report.damage
    );
    assert_genuine(&records, out, "scan after the crash");
    assert_acknowledged(&records, out, "scan after the crash");
    let log = Log::open(log_dir(), options(storage, knobs))
        .unwrap_or_else(|e| panic!("open after a crash alone failed: {e}"));
    let records = log
        .records()
        .unwrap_or_else(|e| panic!("recovered log has damage: {e}"));
    assert_genuine(&records, out, "records after open");
    assert_acknowledged(&records, out, "records after open");
    let seqs: BTreeSet<u64> = records.iter().map(|r| r.seq).collect();
    // Once opened, a compaction that succeeded or reported its commit has taken effect.
    let back: Vec<_> = out.gone.intersection(&seqs).take(5).collect();
    assert!(
        back.is_empty(),
        "records after open: compacted away, yet there: {back:?}"
    );
    let last = records.last().map_or(0, |r| r.seq);
    for seq in 1..=last {
        assert!(
            seqs.contains(&seq) || out.gone.contains(&seq) || out.maybe_gone.contains(&seq),
            "recovered log has a hole at {seq} that no compaction made"
        );
    }
    drop(log);
    let (after, _) = scan_records(storage);
    assert_eq!(after.verdict(), Verdict::Clean, "{:?}", after.damage);
}

/// Every acknowledged record is present unless a compaction removed it; a failed compaction
/// removed all of what it would have removed, or none of it.
fn assert_acknowledged(records: &[Record], out: &Outcome, what: &str) {
    let seqs: BTreeSet<u64> = records.iter().map(|r| r.seq).collect();
    for seq in 1..=out.acked as u64 {
        if !out.gone.contains(&seq) && !out.maybe_gone.contains(&seq) {
            assert!(
                seqs.contains(&seq),
                "{what}: acknowledged record {seq} missing"
            );
        }
    }
    // Only acknowledged ones: a crash may take unsynced records whatever compaction did.
    let maybe: Vec<bool> = out
        .maybe_gone
        .iter()
        .filter(|&&s| s <= out.acked as u64)
        .map(|s| seqs.contains(s))
        .collect();
    assert!(
        maybe.iter().all(|&p| p) || maybe.iter().all(|&p| !p),
        "{what}: a failed compaction left a mix of the old and new log"
    );
}

pub fn recover_damaged(storage: &MemStorage, out: &Outcome, knobs: Knobs) {
    let mut records = Vec::new();
    let scanned = walctl::scan_log(storage, &log_dir(), &mut |r| {
        records.push(r.to_record());
        std::ops::ControlFlow::Continue(())
    });
    if scanned.is_ok() {
        assert_genuine(&records, out, "scan of a damaged log");
        check_salvage(storage, &records, knobs);
    }
    if let Ok(log) = Log::open(log_dir(), options(storage, knobs))
        && let Ok(records) = log.records()
    {
        assert_genuine(&records, out, "records of a damaged log after open");
    }
}

/// Salvage of the damaged log (which it must not change, before `Log::open` may cut a torn tail)
/// copies exactly the records the scan delivered, in order and unaltered, into a log that scans
/// clean and whose lost ranges hold none of them.
fn check_salvage(storage: &MemStorage, scanned: &[Record], knobs: Knobs) {
    let target = PathBuf::from("/fuzz/salvaged");
    let report = walctl::salvage(&log_dir(), &target, &options(storage, knobs))
        .unwrap_or_else(|e| panic!("salvage of a log that scans failed: {e}"));
    let mut expected: Vec<&Record> = Vec::new();
    for r in scanned {
        if expected.last().is_none_or(|l| r.seq > l.seq) {
            expected.push(r);
        }
    }
    let mut copied = Vec::new();
    let back = walctl::scan_log(storage, &target, &mut |r| {
        copied.push(r.to_record());
        std::ops::ControlFlow::Continue(())
    })
    .unwrap_or_else(|e| panic!("the salvaged log cannot be read: {e}"));
    assert_eq!(
        back.verdict(),
        Verdict::Clean,
        "salvaged log: {:?}",
        back.damage
    );
    assert_eq!(copied.len(), expected.len(), "salvaged record count");
    for (c, e) in copied.iter().zip(&expected) {
        let got = (c.seq, c.kind, &c.key, &c.payload, c.timestamp_nanos);
        let want = (e.seq, e.kind, &e.key, &e.payload, e.timestamp_nanos);
        assert!(got == want, "salvaged record {} differs", e.seq);
    }
    assert_eq!(report.records, copied.len() as u64);
    assert!(report.next_seq > copied.last().map_or(0, |r| r.seq));
    for l in &report.lost {
        let (from, to) = (l.first.unwrap_or(1), l.last.unwrap_or(u64::MAX));
        assert!(
            !copied.iter().any(|r| (from..=to).contains(&r.seq)),
            "a lost range {l:?} holds a salvaged record"
        );
    }
}
