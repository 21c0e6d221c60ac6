//! The structure-aware scenario: build a log through `walctl::Log` on `MemStorage` with a
//! sequence of appends, batches, tombstones, flushes, syncs, rotations and reopens, with or
//! without preallocation and an append buffer (optionally with every
//! storage operation from the N-th on failing with EIO), crash it with a `CrashMode` from the
//! input, optionally damage bytes, then recover (scan, then `Log::open`).
//!
//! Oracle: no panic, ever; no record is delivered that was not appended, or altered; and when no
//! damage was injected, every record a successful sync (or reopen) acknowledged is present, the
//! verdict is never corrupt, and `Log::open` recovers a contiguous prefix that then scans clean.

use super::{log_dir, scan_records};
use arbitrary::{Arbitrary, Unstructured};
use std::sync::Arc;
use walctl::format::{RecordKind, SEGMENT_SIZE_MIN};
use walctl::storage::{CrashMode, Fault, MemStorage};
use walctl::{Entry, Log, Options, Record, Verdict};

/// Most operations one scenario runs (longer inputs are cut).
pub const MAX_OPS: usize = 48;

/// The input, as `arbitrary` derives it from the fuzzer's bytes.
#[derive(Arbitrary, Debug)]
pub struct Scenario {
    /// Zeros written ahead of the data: none, or `(n % 8 + 1) * 512` bytes per chunk.
    pub preallocate: Option<u8>,
    /// The writer's append buffer: none, or `n % 8192` bytes.
    pub write_buffer: Option<u16>,
    /// What the writer does.
    pub ops: Vec<Op>,
    /// Every storage operation from this index on fails with EIO (persistently).
    pub fail_at: Option<u16>,
    /// Whether the writer is dropped (closed cleanly) before the crash.
    pub close_first: bool,
    /// What the crash keeps.
    pub crash: Crash,
    /// Damage planted after the crash; empty means a crash alone.
    pub damage: Vec<Damage>,
}

/// One writer operation.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// A data record of `len % 1500` bytes, keyed `k<key>` if given.
    Append {
        /// Payload length (mod 1500).
        len: u16,
        /// Key byte.
        key: Option<u8>,
    },
    /// A tombstone for key `k<key>`.
    Tombstone {
        /// Key byte.
        key: u8,
    },
    /// `count % 6` records of `len % 900` bytes in one `append_batch`.
    Batch {
        /// Number of records (mod 6).
        count: u8,
        /// Payload length (mod 900).
        len: u16,
    },
    /// `Log::sync`.
    Sync,
    /// A record too large to share the current segment: the writer rotates first.
    Rotate,
    /// Drop the writer and open the log again.
    Reopen,
    /// `Log::flush`: buffered appends reach the OS (not durable).
    Flush,
}

/// The crash mode.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Crash {
    /// Process crash: everything written survives.
    KeepAll,
    /// Power loss: nothing unsynced survives.
    DropUnsynced,
    /// Power loss: each unsynced write kept, dropped or torn, from this seed.
    Torn(u64),
}

/// Damage planted in one file of the crashed log (files in name order, index mod count).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Damage {
    /// XOR a byte (the mask is forced non-zero).
    Flip {
        /// File index.
        file: u8,
        /// Byte offset (mod length).
        offset: u32,
        /// XOR mask.
        mask: u8,
    },
    /// Cut the file to `len % (length + 1)` bytes.
    Truncate {
        /// File index.
        file: u8,
        /// New length (mod length + 1).
        len: u32,
    },
    /// Zero `len % 4096` bytes from `offset`.
    Zero {
        /// File index.
        file: u8,
        /// Byte offset (mod length).
        offset: u32,
        /// How many bytes (mod 4096).
        len: u16,
    },
}

/// What the writer did: every record an append returned Ok for, by sequence number - 1.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The records, in order.
    pub appended: Vec<Expected>,
    /// How many of them a successful sync or reopen acknowledged.
    pub acked: usize,
}

/// A record as appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Data or tombstone.
    pub kind: RecordKind,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Timestamp given explicitly.
    pub timestamp_nanos: u64,
}

/// Runs the scenario decoded from `data`.
pub fn check(data: &[u8]) {
    let Ok(scenario) = Scenario::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    run(&scenario);
}

/// Runs one scenario and checks the oracle.
pub fn run(s: &Scenario) {
    let storage = MemStorage::new();
    if let Some(n) = s.fail_at {
        let n = u64::from(n);
        storage.set_faults(Some(Box::new(move |op| {
            (op.index >= n).then_some(Fault::Errno(5))
        })));
    }
    let knobs = Knobs {
        preallocate: s.preallocate.map_or(0, |n| (u64::from(n % 8) + 1) * 512),
        write_buffer: s.write_buffer.map_or(0, |n| usize::from(n % 8192)),
    };
    let (mut log, outcome) = write(&storage, &s.ops, knobs);
    if s.close_first {
        drop(log.take());
    }
    storage.set_faults(None);
    let mode = match s.crash {
        Crash::KeepAll => CrashMode::KeepAll,
        Crash::DropUnsynced => CrashMode::DropUnsynced,
        Crash::Torn(seed) => CrashMode::Torn { seed },
    };
    let crashed = storage.crash(mode);
    // A writer still open at the crash dies with it: what it does now touches only `storage`.
    drop(log);
    if s.damage.is_empty() {
        recover_crash_only(&crashed, &outcome, knobs);
    } else {
        for d in &s.damage {
            plant(&crashed, *d);
        }
        recover_damaged(&crashed, &outcome, knobs);
    }
}

/// The writer's options the scenario varies.
#[derive(Clone, Copy, Debug)]
pub struct Knobs {
    /// `Options::preallocate`.
    pub preallocate: u64,
    /// `Options::write_buffer`.
    pub write_buffer: usize,
}

fn options(storage: &MemStorage, knobs: Knobs) -> Options {
    Options {
        segment_size: SEGMENT_SIZE_MIN,
        preallocate: knobs.preallocate,
        write_buffer: knobs.write_buffer,
        ..Options::with_storage(Arc::new(storage.clone()))
    }
}

/// The payload of record `seq`: a pattern that differs per sequence number and length.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as usize).wrapping_mul(131).wrapping_add(i * 7) as u8)
        .collect()
}

fn expected(seq: u64, op: &Op, len: usize) -> Expected {
    let (kind, key, payload) = match op {
        Op::Tombstone { key } => (RecordKind::Tombstone, Some(vec![b'k', *key]), Vec::new()),
        Op::Append { key, .. } => (
            RecordKind::Data,
            key.map(|k| vec![b'k', k]),
            payload(seq, len),
        ),
        _ => (RecordKind::Data, None, payload(seq, len)),
    };
    Expected {
        kind,
        key,
        payload,
        timestamp_nanos: seq * 1_000 + 7,
    }
}

fn entry(e: &Expected) -> Entry<'_> {
    Entry {
        kind: e.kind,
        key: e.key.as_deref(),
        payload: &e.payload,
        timestamp_nanos: Some(e.timestamp_nanos),
    }
}

/// Runs the operations until the first failure; returns the writer (if still open) and what
/// it acknowledged.
fn write(storage: &MemStorage, ops: &[Op], knobs: Knobs) -> (Option<Log>, Outcome) {
    let mut out = Outcome::default();
    let mut log = Log::open(log_dir(), options(storage, knobs)).ok();
    for op in ops.iter().take(MAX_OPS) {
        let Some(l) = log.as_ref() else { break };
        let next = out.appended.len() as u64 + 1;
        let ok = match op {
            Op::Append { len, .. } => append(l, &mut out, expected(next, op, *len as usize % 1500)),
            Op::Tombstone { .. } => append(l, &mut out, expected(next, op, 0)),
            Op::Rotate => append(l, &mut out, expected(next, op, 4096)),
            Op::Batch { count, len } => batch(l, &mut out, op, *count, *len),
            Op::Sync => {
                let ok = l.sync().is_ok();
                if ok {
                    out.acked = out.appended.len();
                }
                ok
            }
            Op::Flush => l.flush().is_ok(),
            Op::Reopen => {
                drop(log.take());
                log = Log::open(log_dir(), options(storage, knobs)).ok();
                if log.is_some() {
                    // Open fsyncs before it trusts: everything appended is durable now.
                    out.acked = out.appended.len();
                }
                log.is_some()
            }
        };
        if !ok {
            break;
        }
    }
    (log, out)
}

fn append(log: &Log, out: &mut Outcome, e: Expected) -> bool {
    match log.append_entry(&entry(&e)) {
        Ok(a) => {
            assert_eq!(a.seq, out.appended.len() as u64 + 1, "sequence assigned");
            out.appended.push(e);
            true
        }
        Err(_) => false,
    }
}

fn batch(log: &Log, out: &mut Outcome, op: &Op, count: u8, len: u16) -> bool {
    let first = out.appended.len() as u64 + 1;
    let wanted: Vec<Expected> = (0..u64::from(count % 6))
        .map(|i| expected(first + i, op, (usize::from(len) + i as usize * 97) % 900))
        .collect();
    let entries: Vec<Entry<'_>> = wanted.iter().map(entry).collect();
    let mut done = Vec::new();
    let result = log.append_batch(&entries, Some(first), &mut done);
    assert!(done.len() <= wanted.len());
    for (a, e) in done.iter().zip(wanted) {
        assert_eq!(a.seq, out.appended.len() as u64 + 1, "sequence assigned");
        out.appended.push(e);
    }
    result.is_ok()
}

/// Damage one file of the crashed log.
fn plant(storage: &MemStorage, d: Damage) {
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

fn recover_crash_only(storage: &MemStorage, out: &Outcome, knobs: Knobs) {
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
    for (i, r) in records.iter().take(out.acked).enumerate() {
        assert_eq!(r.seq, i as u64 + 1, "acknowledged record {} missing", i + 1);
    }
    assert!(records.len() >= out.acked, "acknowledged records lost");
    let log = Log::open(log_dir(), options(storage, knobs))
        .unwrap_or_else(|e| panic!("open after a crash alone failed: {e}"));
    let records = log
        .records()
        .unwrap_or_else(|e| panic!("recovered log has damage: {e}"));
    assert_genuine(&records, out, "records after open");
    assert!(records.len() >= out.acked, "open lost acknowledged records");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1, "recovered log is not contiguous");
    }
    drop(log);
    let (after, _) = scan_records(storage);
    assert_eq!(after.verdict(), Verdict::Clean, "{:?}", after.damage);
}

fn recover_damaged(storage: &MemStorage, out: &Outcome, knobs: Knobs) {
    let mut records = Vec::new();
    let scanned = walctl::scan_log(storage, &log_dir(), &mut |r| {
        records.push(r.to_record());
        std::ops::ControlFlow::Continue(())
    });
    if scanned.is_ok() {
        assert_genuine(&records, out, "scan of a damaged log");
    }
    if let Ok(log) = Log::open(log_dir(), options(storage, knobs))
        && let Ok(records) = log.records()
    {
        assert_genuine(&records, out, "records of a damaged log after open");
    }
}
