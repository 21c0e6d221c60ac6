//! The structure-aware scenario: build a log through `walctl::Log` on `MemStorage` with a
//! sequence of appends, `append_and_sync`s, batches, tombstones, flushes, syncs, rotations,
//! reopens, compactions, and crashes in the middle (each optionally followed by
//! `truncate_partial`), with or without preallocation and an append buffer (optionally with
//! every storage operation from the N-th on failing with EIO), crash it at the end with a
//! `CrashMode` from the input, optionally damage bytes, then recover (scan, then `Log::open`).
//!
//! Oracle: no panic, ever; no record is delivered that was not appended, or altered; and when no
//! damage was injected, every record a successful sync (or reopen) acknowledged is present unless
//! a compaction removed it (what a compaction removes is learnt by running it first on a copy
//! without faults; one that failed removed all of that or none of it), the verdict is never
//! corrupt, and `Log::open` recovers the log with no hole a compaction did not make, which then
//! scans clean.

use super::log_dir;
use super::oracle::{plant, recover_crash_only, recover_damaged};
use arbitrary::{Arbitrary, Unstructured};
use std::collections::BTreeSet;
use std::sync::Arc;
use walctl::format::{RecordKind, SEGMENT_SIZE_MIN};
use walctl::storage::{CrashMode, Fault, MemStorage};
use walctl::{Entry, Log, Options};

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
    /// `Log::append_and_sync` of a record of `len % 1500` bytes.
    AppendAndSync {
        /// Payload length (mod 1500).
        len: u16,
    },
    /// Close the writer, compact (dropping records below `next - back % 8` when `back` is
    /// given; with `keys`, superseded and deleted keys), and open again.
    Compact {
        /// How far below the next sequence number `before` lies (mod 8).
        back: Option<u8>,
        /// `Compaction::keys`.
        keys: bool,
    },
    /// A crash now (the writer dies with it), `truncate_partial` if `repair`, then open again.
    Crash {
        /// What the crash keeps.
        crash: Crash,
        /// Repair the torn tail before opening.
        repair: bool,
    },
}

/// The crash mode.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Sequence numbers a successful compaction removed.
    pub gone: BTreeSet<u64>,
    /// Sequence numbers a failed compaction would have removed: all gone or none.
    pub maybe_gone: BTreeSet<u64>,
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
        faults: s.fail_at.is_some(),
        preallocate: s.preallocate.map_or(0, |n| (u64::from(n % 8) + 1) * 512),
        write_buffer: s.write_buffer.map_or(0, |n| usize::from(n % 8192)),
    };
    let (storage, mut log, outcome) = write(storage, &s.ops, knobs);
    if s.close_first {
        drop(log.take());
    }
    storage.set_faults(None);
    let crashed = storage.crash(crash_mode(s.crash));
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
    /// Whether a fault plan is installed while the writer runs.
    pub faults: bool,
    /// `Options::preallocate`.
    pub preallocate: u64,
    /// `Options::write_buffer`.
    pub write_buffer: usize,
}

pub fn options(storage: &MemStorage, knobs: Knobs) -> Options {
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

/// Runs the operations until the first failure; returns the storage (a crash in the middle
/// replaces it), the writer (if still open) and what it acknowledged.
fn write(mut storage: MemStorage, ops: &[Op], knobs: Knobs) -> (MemStorage, Option<Log>, Outcome) {
    let mut out = Outcome::default();
    let mut log = Log::open(log_dir(), options(&storage, knobs)).ok();
    for op in ops.iter().take(MAX_OPS) {
        let Some(l) = log.as_ref() else { break };
        let next = out.appended.len() as u64 + 1;
        let ok = match op {
            Op::AppendAndSync { len } => {
                let e = expected(next, op, *len as usize % 1500);
                match l.append_and_sync(&entry(&e)) {
                    Ok(a) => {
                        assert_eq!(a.seq, next, "sequence assigned");
                        out.appended.push(e);
                        out.acked = out.appended.len();
                        true
                    }
                    Err(_) => {
                        // The sync, not the append, may have failed: the record can be in the
                        // log, unacknowledged.
                        out.appended.push(e);
                        false
                    }
                }
            }
            Op::Compact { back, keys } => {
                drop(log.take());
                let before = back.map(|b| next.saturating_sub(u64::from(b % 8)).max(1));
                log = compact(&storage, knobs, before, *keys, &mut out);
                log.is_some()
            }
            Op::Crash { crash, repair } => {
                // What the OS holds survives a crash of the process (`written_seq`'s promise).
                let written = l.written_seq();
                let crashed = storage.crash(crash_mode(*crash));
                drop(log.take());
                storage = crashed;
                log = reopen_after(&storage, knobs, *repair, &mut out);
                if *crash == Crash::KeepAll {
                    let kept = out.appended.len() as u64;
                    assert!(
                        kept >= written,
                        "a process crash lost written records: {kept} < {written}"
                    );
                }
                true
            }
            Op::Append { len, .. } => append(l, &mut out, expected(next, op, *len as usize % 1500)),
            Op::Tombstone { .. } => append(l, &mut out, expected(next, op, 0)),
            Op::Rotate => append(l, &mut out, expected(next, op, 4096)),
            Op::Batch { count, len } => batch(l, &mut out, op, *count, *len),
            Op::Sync => settled(l.sync().is_ok(), l, &mut out, true),
            Op::Flush => settled(l.flush().is_ok(), l, &mut out, false),
            Op::Reopen => {
                drop(log.take());
                log = Log::open(log_dir(), options(&storage, knobs)).ok();
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
    (storage, log, out)
}

/// After a sync (`acked`) or a flush: on success every appended record is written, and a
/// sync's are acknowledged durable.
fn settled(ok: bool, log: &Log, out: &mut Outcome, acked: bool) -> bool {
    if ok {
        let all = out.appended.len() as u64;
        assert_eq!(
            log.written_seq(),
            all,
            "a flush or sync writes every record"
        );
        if acked {
            out.acked = out.appended.len();
        }
    }
    ok
}

fn crash_mode(c: Crash) -> CrashMode {
    match c {
        Crash::KeepAll => CrashMode::KeepAll,
        Crash::DropUnsynced => CrashMode::DropUnsynced,
        Crash::Torn(seed) => CrashMode::Torn { seed },
    }
}

/// The sequence numbers of the records in the log on `storage`, read by a writer's open.
fn present(storage: &MemStorage, knobs: Knobs) -> Option<BTreeSet<u64>> {
    let log = Log::open(log_dir(), options(storage, knobs)).ok()?;
    Some(log.records().ok()?.iter().map(|r| r.seq).collect())
}

/// Compacts with the writer closed and opens it again. Under injected faults, what the
/// compaction removes is learnt first on a copy without faults, so a failure can be judged: the
/// log is then the old one or the new one, never a mix. Without faults the compaction must
/// succeed, and what it removed is read from the result.
fn compact(
    storage: &MemStorage,
    knobs: Knobs,
    before: Option<u64>,
    keys: bool,
    out: &mut Outcome,
) -> Option<Log> {
    let plan = walctl::Compaction {
        before,
        keys,
        dry_run: false,
        rewrite: false,
    };
    // Records earlier compactions removed are not there to remove again.
    let all: BTreeSet<u64> = (1..=out.appended.len() as u64)
        .filter(|s| !out.gone.contains(s))
        .collect();
    if !knobs.faults {
        walctl::compact(&log_dir(), &options(storage, knobs), &plan)
            .unwrap_or_else(|e| panic!("compaction with no fault injected: {e}"));
        let log = Log::open(log_dir(), options(storage, knobs))
            .unwrap_or_else(|e| panic!("open after a compaction: {e}"));
        let kept = log.records().expect("records after a compaction");
        out.gone
            .extend(&all - &kept.iter().map(|r| r.seq).collect());
        out.acked = out.appended.len();
        return Some(log);
    }
    let probe = storage.crash(CrashMode::KeepAll);
    let would_remove = walctl::compact(&log_dir(), &options(&probe, knobs), &plan)
        .ok()
        .and_then(|_| present(&probe, knobs))
        .map(|kept| &all - &kept);
    let done = walctl::compact(&log_dir(), &options(storage, knobs), &plan);
    // A failed compaction says where it left the log: the old one, the new one (once opened),
    // or either, for the next open to settle.
    match (done, would_remove) {
        (Ok(_), Some(removed)) => out.gone.extend(removed),
        (Err(e), removed) => {
            let removed = removed.unwrap_or_default();
            match e.compaction_state() {
                Some(walctl::CompactionState::Unchanged) => {}
                Some(walctl::CompactionState::Committed) => out.gone.extend(removed),
                _ => out.maybe_gone.extend(removed),
            }
            return None;
        }
        // The probe failed where the compaction did not: nothing to judge it by.
        (Ok(_), None) => return None,
    }
    let log = Log::open(log_dir(), options(storage, knobs)).ok()?;
    // Compaction synced what it wrote, and open syncs what it finds.
    out.acked = out.appended.len();
    Some(log)
}

/// After a crash in the middle: repair if asked, open (a crash alone never stops either), and
/// forget the records the crash took, which were never acknowledged.
fn reopen_after(
    storage: &MemStorage,
    knobs: Knobs,
    repair: bool,
    out: &mut Outcome,
) -> Option<Log> {
    if repair {
        let repaired = walctl::truncate_partial(&log_dir(), &options(storage, knobs), false);
        if let Err(e) = repaired {
            assert!(
                !matches!(e.kind(), walctl::ErrorKind::Corrupt { .. }),
                "repair after a crash alone: {e}"
            );
        }
    }
    let log = Log::open(log_dir(), options(storage, knobs))
        .unwrap_or_else(|e| panic!("open after a crash in the middle: {e}"));
    let kept = log.next_seq() - 1;
    assert!(
        kept >= out.acked as u64,
        "a crash in the middle lost acknowledged records: {kept} < {}",
        out.acked
    );
    out.appended.truncate(kept as usize);
    out.acked = out.appended.len();
    Some(log)
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
