//! Compaction and the key/value view: a model-based property test, a crash at every storage
//! operation of a compaction, readers beside repeated compactions, refusal on damage. `get` and
//! its key index are in `kv.rs`.

use crate::util::{dir, key, options, scan};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use walctl::storage::{CrashMode, MemStorage};
use walctl::{Compaction, Entry, ErrorKind, Log, Options, RecordKind, Verdict};

#[derive(Clone, Debug)]
enum Op {
    Put(Option<u8>, u8),
    Delete(u8),
    Compact { before: Option<u8>, keys: bool },
}

/// (seq, key, kind, payload) as the model keeps them.
type ModelRecord = (u64, Option<Vec<u8>>, RecordKind, Vec<u8>);

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (proptest::option::of(0u8..6), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..6).prop_map(Op::Delete),
        1 => (proptest::option::of(any::<u8>()), any::<bool>()).prop_map(|(before, keys)| Op::Compact { before, keys }),
    ]
}

fn model_compact(model: &mut Vec<ModelRecord>, before: Option<u64>, keys: bool) {
    let latest: BTreeMap<Vec<u8>, (u64, RecordKind)> = model
        .iter()
        .filter_map(|(s, k, kind, _)| Some((k.clone()?, (*s, *kind))))
        .collect();
    model.retain(|(seq, k, _, _)| {
        if before.is_some_and(|b| *seq < b) {
            return false;
        }
        match (keys, k) {
            (true, Some(k)) => latest[k] == (*seq, RecordKind::Data),
            _ => true,
        }
    });
}

fn model_view(model: &[ModelRecord]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut view = BTreeMap::new();
    for (_, k, kind, payload) in model {
        let Some(k) = k else { continue };
        match kind {
            RecordKind::Data => view.insert(k.clone(), payload.clone()),
            RecordKind::Tombstone => view.remove(k),
        };
    }
    view
}

fn check(storage: &MemStorage, model: &[ModelRecord]) {
    let (report, records) = scan(storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
    let got: Vec<ModelRecord> = records
        .into_iter()
        .map(|r| (r.seq, r.key, r.kind, r.payload))
        .collect();
    assert_eq!(got, model);
    let log = Log::open(dir(), options(storage)).unwrap();
    for (k, v) in model_view(model) {
        assert_eq!(log.get(&k).unwrap().map(|r| r.payload), Some(v));
    }
    for k in 0..6 {
        if !model_view(model).contains_key(&key(k)) {
            assert_eq!(log.get(&key(k)).unwrap(), None);
        }
    }
}

fn run(ops: &[Op]) {
    let storage = MemStorage::new();
    let mut model: Vec<ModelRecord> = Vec::new();
    let mut log = Some(Log::open(dir(), options(&storage)).unwrap());
    let mut next = 1u64;
    for op in ops {
        match op {
            Op::Put(k, v) => {
                let w = log.get_or_insert_with(|| Log::open(dir(), options(&storage)).unwrap());
                let payload = vec![*v; (*v as usize % 50) + 1];
                let k = k.map(key);
                let entry = match &k {
                    Some(k) => Entry::keyed(k, &payload),
                    None => Entry::data(&payload),
                };
                assert_eq!(w.append_entry(&entry).unwrap().seq, next);
                model.push((next, k, RecordKind::Data, payload));
                next += 1;
            }
            Op::Delete(k) => {
                let w = log.get_or_insert_with(|| Log::open(dir(), options(&storage)).unwrap());
                assert_eq!(
                    w.append_entry(&Entry::tombstone(&key(*k))).unwrap().seq,
                    next
                );
                model.push((next, Some(key(*k)), RecordKind::Tombstone, Vec::new()));
                next += 1;
            }
            Op::Compact { before, keys } => {
                log = None;
                let before = before.map(|b| u64::from(b) % (next + 1));
                let report = walctl::compact(
                    &dir(),
                    &options(&storage),
                    &Compaction {
                        before,
                        keys: *keys,
                        dry_run: false,
                        rewrite: false,
                    },
                )
                .unwrap();
                assert_eq!(report.digest_expected, report.digest_installed);
                assert_eq!(report.next_seq, next);
                model_compact(&mut model, before, *keys);
                assert_eq!(report.after.records, model.len() as u64);
                check(&storage, &model);
            }
        }
    }
    drop(log);
    check(&storage, &model);
    let w = Log::open(dir(), options(&storage)).unwrap();
    assert_eq!(
        w.next_seq(),
        next,
        "compaction never reuses a sequence number"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn compaction_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops);
    }
}

/// A log with rotation, overwritten and deleted keys and keyless events.
fn sample() -> MemStorage {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    for i in 0..120u32 {
        let k = format!("k{}", i % 7).into_bytes();
        let v = vec![i as u8; 300];
        match i % 5 {
            0 => log.append(&v).map(drop).unwrap(),
            4 => log.append_entry(&Entry::tombstone(&k)).map(drop).unwrap(),
            _ => log.append_entry(&Entry::keyed(&k, &v)).map(drop).unwrap(),
        }
    }
    log.sync().unwrap();
    drop(log);
    storage
}

fn records_of(storage: &MemStorage) -> Vec<(u64, Vec<u8>)> {
    let (report, records) = scan(storage, &dir());
    assert_eq!(report.verdict(), Verdict::Clean, "{:?}", report.damage);
    records.into_iter().map(|r| (r.seq, r.payload)).collect()
}

/// A checkpoint past the next sequence number (121 here) is refused before anything is
/// written, with or without `keys` and as a dry run; the next sequence number itself is not.
#[test]
fn compacting_before_a_sequence_number_no_record_reached_is_refused() {
    let storage = sample();
    let old = records_of(&storage);
    let trace = storage.op_count();
    for (keys, dry_run) in [(false, false), (true, false), (false, true)] {
        let plan = Compaction {
            before: Some(122),
            keys,
            dry_run,
            rewrite: false,
        };
        let err = walctl::compact(&dir(), &options(&storage), &plan).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::InvalidOptions(why) if why.contains("121")),
            "{err}"
        );
    }
    assert_eq!(records_of(&storage), old);
    let writes = storage.trace()[trace as usize..]
        .iter()
        .filter(|op| op.op == walctl::storage::TraceOp::Write)
        .count();
    assert_eq!(writes, 0, "a refused compaction wrote");
    let plan = crate::util::before(121);
    walctl::compact(&dir(), &options(&storage), &plan).unwrap();
    assert!(records_of(&storage).is_empty());
}

#[test]
fn crash_at_every_storage_operation_of_a_compaction_leaves_old_or_new() {
    let base = sample();
    let old = records_of(&base);
    let plan = Compaction {
        before: Some(30),
        keys: true,
        dry_run: false,
        rewrite: false,
    };
    let new = {
        let s = base.crash(CrashMode::KeepAll);
        walctl::compact(&dir(), &options(&s), &plan).unwrap();
        records_of(&s)
    };
    assert!(new.len() < old.len());
    let compact = |s: &MemStorage| _ = walctl::compact(&dir(), &options(s), &plan);
    crate::util::crash_at_every_operation(&base, compact, |stop, mode, after| {
        let log =
            Log::open(dir(), options(after)).unwrap_or_else(|e| panic!("op {stop} {mode:?}: {e}"));
        drop(log);
        let got = records_of(after);
        assert!(
            got == old || got == new,
            "op {stop} {mode:?}: a mix of {} records",
            got.len()
        );
    });
}

#[test]
fn corrupt_log_is_refused_and_every_file_stays_byte_identical() {
    let storage = sample();
    let first = crate::util::segments(&storage).remove(0);
    let mut bytes = storage.file_bytes(&first).unwrap();
    bytes[13_000] ^= 0x40;
    storage.set_file_bytes(&first, bytes);
    let before = crate::util::data_files(&storage);
    let err = walctl::compact(
        &dir(),
        &options(&storage),
        &Compaction {
            keys: true,
            ..Compaction::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt { .. }), "{err}");
    assert!(
        before == crate::util::data_files(&storage),
        "refusal changed a file"
    );
}

#[test]
fn torn_tail_is_refused_until_repaired() {
    let storage = sample();
    let last = crate::util::segments(&storage).pop().unwrap();
    let mut bytes = storage.file_bytes(&last).unwrap();
    bytes.extend([0x33u8; 10]);
    storage.set_file_bytes(&last, bytes);
    let err = walctl::compact(&dir(), &options(&storage), &Compaction::default()).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::TornTail { .. }), "{err}");
}

#[test]
fn dry_run_reports_without_writing() {
    let storage = sample();
    // Not even a leftover temporary is cleaned up: a dry run changes nothing.
    storage.set_file_bytes(&dir().join("00000000000000000099.wal.tmp"), vec![1, 2, 3]);
    let files = crate::util::data_files(&storage);
    let report = walctl::compact(
        &dir(),
        &options(&storage),
        &Compaction {
            before: Some(50),
            keys: true,
            dry_run: true,
            rewrite: false,
        },
    )
    .unwrap();
    assert!(
        crate::util::data_files(&storage) == files,
        "a dry run wrote"
    );
    assert!(report.dry_run && report.digest_installed.is_empty());
    assert_eq!(report.before.records, 120);
    assert_eq!(report.dropped_before, 49);
    assert_eq!(
        report.after.records
            + report.dropped_before
            + report.dropped_superseded
            + report.dropped_deleted,
        120
    );
}

#[test]
fn readers_beside_repeated_compactions_never_see_a_mix_or_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().to_path_buf();
    let opts = Options {
        segment_size: 16 << 10,
        ..Options::default()
    };
    let payload = |seq: u64| vec![(seq % 251) as u8; 200];
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let log = Log::open(&path, opts.clone()).unwrap();
        for _ in 0..200 {
            let seq = log.next_seq();
            log.append(&payload(seq)).unwrap();
        }
    }
    let reader = {
        let (path, stop) = (path.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut scans = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || scans < 5 {
                let mut last = 0;
                let report =
                    walctl::scan_log(&walctl::storage::FsStorage::new(), &path, &mut |r| {
                        assert!(r.seq > last, "order");
                        assert_eq!(r.payload, payload(r.seq), "payload");
                        last = r.seq;
                        std::ops::ControlFlow::Continue(())
                    })
                    .unwrap();
                assert!(
                    report.damage.is_empty(),
                    "damage during compaction: {:?}",
                    report.damage
                );
                scans += 1;
            }
            scans
        })
    };
    for round in 0..20u64 {
        walctl::compact(
            &path,
            &opts,
            &Compaction {
                before: Some(round * 10 + 1),
                keys: false,
                dry_run: false,
                rewrite: false,
            },
        )
        .unwrap();
        let log = Log::open(&path, opts.clone()).unwrap();
        for _ in 0..10 {
            let seq = log.next_seq();
            log.append(&payload(seq)).unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() >= 5);
}

#[test]
fn keys_kept_counts_the_live_keys_the_compacted_log_holds() {
    // One record per live key survives a `keys` compaction: its latest put, unless it is
    // older than `before`. A key whose latest record is a tombstone is gone.
    for before in [None, Some(60), Some(118)] {
        let storage = sample();
        let plan = Compaction {
            keys: true,
            before,
            ..Compaction::default()
        };
        let out = walctl::compact(&dir(), &options(&storage), &plan).unwrap();
        let (_, records) = scan(&storage, &dir());
        let keyed = records
            .iter()
            .filter(|r| r.key.is_some() && r.kind == RecordKind::Data)
            .count() as u64;
        assert!(keyed > 0, "{before:?}: the sample keeps some keys");
        assert_eq!(out.keys_kept, keyed, "{before:?}");
    }
}

/// Unique keys and keyless records, synced: no record is superseded or deleted.
fn nothing_superseded() -> MemStorage {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    for i in 0..40u32 {
        let v = vec![i as u8; 300];
        if i % 3 == 0 {
            log.append(&v).map(drop).unwrap();
        } else {
            let k = format!("k{i}").into_bytes();
            log.append_entry(&Entry::keyed(&k, &v)).map(drop).unwrap();
        }
    }
    log.sync().unwrap();
    drop(log);
    storage
}

/// A rule that drops nothing leaves the log as it is: no new segment, no copy, nothing written
/// (a rewrite would cost a copy of the whole log and as much free space again). The report
/// says so, and has no digests to show.
#[test]
fn a_compaction_with_nothing_to_drop_writes_nothing_and_says_so() {
    for (before, keys) in [
        (Some(1), false),
        (None, true),
        (Some(1), true),
        (Some(0), false),
    ] {
        for dry_run in [false, true] {
            let case = format!("before {before:?}, keys {keys}, dry run {dry_run}");
            let storage = nothing_superseded();
            let files = crate::util::data_files(&storage);
            let plan = Compaction {
                before,
                keys,
                dry_run,
                rewrite: false,
            };
            let out = walctl::compact(&dir(), &options(&storage), &plan).unwrap();
            assert!(crate::util::data_files(&storage) == files, "{case}: wrote");
            assert!(out.unchanged, "{case}");
            assert_eq!(out.after, out.before, "{case}");
            assert_eq!((out.before.records, out.next_seq), (40, 41), "{case}");
            let dropped = out.dropped_before + out.dropped_superseded + out.dropped_deleted;
            assert_eq!(dropped, 0, "{case}");
            assert_eq!(out.keys_kept, if keys { 26 } else { 0 }, "{case}");
            assert!(out.digest_expected.is_empty() && out.digest_installed.is_empty());
        }
    }
}

/// One record to drop is enough for a compaction to run: the shortcut is taken only when the
/// survivors are every record.
#[test]
fn a_compaction_that_drops_one_record_rewrites_the_log() {
    for plan in [
        crate::util::before(2),
        Compaction {
            keys: true,
            ..Compaction::default()
        },
    ] {
        let storage = nothing_superseded();
        if plan.keys {
            let log = Log::open(dir(), options(&storage)).unwrap();
            log.append_entry(&Entry::keyed(b"k1", b"again")).unwrap();
            log.sync().unwrap();
        }
        let out = walctl::compact(&dir(), &options(&storage), &plan).unwrap();
        assert!(!out.unchanged, "{plan:?}");
        let dropped = out.dropped_before + out.dropped_superseded + out.dropped_deleted;
        assert_eq!(dropped, 1, "{plan:?}");
        assert_eq!(out.digest_expected, out.digest_installed, "{plan:?}");
        assert_eq!(out.after.records, out.before.records - 1, "{plan:?}");
    }
}

/// A dry run's planned size is what the compaction then gives: it counts the survivors' bytes
/// rather than averaging the old files (whose preallocated zeros once made the plan for one
/// record of a fresh log about 200 KiB).
#[test]
fn a_dry_run_plans_the_size_the_compaction_gives() {
    for (before, keys) in [
        (Some(50), false),
        (None, true),
        (Some(100), true),
        (Some(121), false),
    ] {
        let plan = Compaction {
            before,
            keys,
            dry_run: true,
            rewrite: false,
        };
        let storage = sample();
        let planned = walctl::compact(&dir(), &options(&storage), &plan).unwrap();
        let real = Compaction {
            dry_run: false,
            ..plan
        };
        let done = walctl::compact(&dir(), &options(&storage), &real).unwrap();
        assert_eq!(planned.after, done.after, "{plan:?}");
        assert_eq!(planned.digest_expected, done.digest_installed, "{plan:?}");
    }
}
