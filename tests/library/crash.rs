//! Crash simulation through `MemStorage`: stop a workload at every storage operation, build the
//! states a power loss or process crash could leave, and check the oracle on each: the log is a
//! prefix of what was appended, holds every record a successful sync acknowledged, has no
//! altered or phantom record, and a crash alone never reads as corruption.

use crate::util::{dir, options, payload, scan};
use walctl::Log;
use walctl::storage::{CrashMode, Fault, MemStorage, Storage};

/// A deterministic workload: appends of mixed sizes (some large enough to rotate), syncs, and
/// one reopen. Returns how many records a successful sync acknowledged, and how many appends
/// returned Ok, before the first failure.
fn workload(storage: &MemStorage, seed: u64) -> (u64, u64) {
    let mut acked = 0;
    let mut appended = 0;
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let Ok(mut log) = Log::open(dir(), options(storage)) else {
        return (0, 0);
    };
    for step in 0..40u64 {
        let len = if next() % 5 == 0 {
            20_000
        } else {
            (next() % 300) as usize
        };
        match log.append(&payload(appended + 1, len)) {
            Ok(a) => {
                assert_eq!(a.seq, appended + 1);
                appended += 1;
            }
            Err(_) => return (acked, appended),
        }
        if next() % 3 == 0 {
            match log.sync() {
                Ok(()) => acked = appended,
                Err(_) => return (acked, appended),
            }
        }
        if step == 25 {
            drop(log);
            match Log::open(dir(), options(storage)) {
                Ok(l) => log = l,
                Err(_) => return (acked, appended),
            }
            // Reopen fsyncs before it trusts, so everything appended is durable now.
            acked = appended;
        }
    }
    (acked, appended)
}

/// Lengths of the workload's payloads, replayed from the same seed, keyed by sequence number.
fn expected_lengths(seed: u64) -> Vec<usize> {
    let storage = MemStorage::new();
    workload(&storage, seed);
    let (_, records) = scan(&storage, &dir());
    records.iter().map(|r| r.payload.len()).collect()
}

fn check_oracle(storage: &MemStorage, acked: u64, appended: u64, lengths: &[usize], what: &str) {
    let Some((_log, records)) =
        crate::util::reopen_after_crash(storage, options(storage), acked, what)
    else {
        // No segment survived: a writer starts the log afresh, empty.
        let log = Log::open(dir(), options(storage)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(log.records().unwrap().len(), 0);
        return;
    };
    assert!(
        records.len() as u64 >= acked,
        "{what}: {} records < {acked} acknowledged",
        records.len()
    );
    assert!(
        records.len() as u64 <= appended.max(acked),
        "{what}: phantom records"
    );
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1, "{what}: sequence");
        assert_eq!(
            r.payload,
            payload(r.seq, lengths[i]),
            "{what}: payload of {} altered",
            r.seq
        );
    }
}

#[test]
fn crash_at_every_storage_operation_keeps_every_synced_record() {
    for seed in [1u64, 2, 3] {
        let lengths = expected_lengths(seed);
        let total = {
            let s = MemStorage::new();
            workload(&s, seed);
            s.op_count()
        };
        let mut states = 0;
        for stop in 0..=total {
            let storage = MemStorage::new();
            storage.set_faults(Some(Box::new(move |op| {
                (op.index >= stop).then_some(Fault::Errno(5))
            })));
            let (acked, appended) = workload(&storage, seed);
            storage.set_faults(None);
            let modes = [
                CrashMode::KeepAll,
                CrashMode::DropUnsynced,
                CrashMode::Torn { seed: stop },
            ];
            for mode in modes.into_iter().chain((0..4).map(|s| CrashMode::Torn {
                seed: stop * 31 + s,
            })) {
                let crashed = storage.crash(mode);
                let what = format!("seed {seed}, stop at op {stop}, {mode:?}");
                check_oracle(&crashed, acked, appended, &lengths, &what);
                states += 1;
            }
        }
        println!("seed {seed}: {total} storage operations, {states} crash states recovered");
        assert!(states > 500, "explored {states} crash states");
    }
}

#[test]
fn crash_during_recovery_then_recovery_again_keeps_every_synced_record() {
    let seed = 7;
    let lengths = expected_lengths(seed);
    let storage = MemStorage::new();
    let (acked, appended) = workload(&storage, seed);
    // Leave a torn tail for recovery to cut.
    let torn = storage.crash(CrashMode::Torn { seed: 99 });
    let recovery_ops = {
        let probe = torn.crash(CrashMode::KeepAll);
        drop(Log::open(dir(), options(&probe)));
        probe.op_count()
    };
    for stop in 0..recovery_ops {
        let state = torn.crash(CrashMode::KeepAll);
        state.set_faults(Some(Box::new(move |op| {
            (op.index >= stop).then_some(Fault::Errno(5))
        })));
        let _ = Log::open(dir(), options(&state));
        state.set_faults(None);
        for mode in [CrashMode::DropUnsynced, CrashMode::Torn { seed: stop }] {
            let again = state.crash(mode);
            check_oracle(
                &again,
                acked,
                appended,
                &lengths,
                &format!("recovery crashed at op {stop}, {mode:?}"),
            );
        }
    }
}

#[test]
fn power_loss_after_sync_keeps_all_synced_records_on_every_seed() {
    for seed in 0..300u64 {
        let storage = MemStorage::new();
        let log = Log::open(dir(), options(&storage)).unwrap();
        for i in 1..=30u64 {
            log.append(&payload(i, (i * 37 % 700) as usize)).unwrap();
            if i == 20 {
                log.sync().unwrap();
            }
        }
        let crashed = storage.crash(CrashMode::Torn { seed });
        drop(log);
        let lengths: Vec<usize> = (1..=30u64).map(|i| (i * 37 % 700) as usize).collect();
        check_oracle(&crashed, 20, 30, &lengths, &format!("torn seed {seed}"));
    }
}

#[test]
fn lost_directory_entry_of_an_unsynced_segment_never_loses_synced_records() {
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    for i in 1..=10u64 {
        log.append(&payload(i, 20_000)).unwrap();
    }
    log.sync().unwrap();
    let _ = storage.sync_dir(&dir());
    drop(log);
    let crashed = storage.crash(CrashMode::DropUnsynced);
    let lengths = vec![20_000; 10];
    check_oracle(&crashed, 10, 10, &lengths, "after rotation");
}
