//! Crash states of every sequence of up to three operations (CrashMonkey's bounded B3 idea):
//! the alphabet is append small, append large, sync, rotate, reopen, repair, compact. Each
//! sequence runs after a synced prefix; the storage "dies" at every operation in turn (all
//! later calls fail); then the states a crash could leave are built (page cache kept, unsynced
//! data dropped, unsynced writes torn four ways) and recovered. The oracle: the log holds every
//! acknowledged record, nothing that was never appended, in order, never reads as corrupt; an
//! interrupted compaction leaves the old log or the new one.
//!
//! `WALCTL_TEST_SCALE=long` adds the sequences of four operations.

use crate::util::{dir, options, payload};
use walctl::Log;
use walctl::storage::{CrashMode, Fault, MemStorage};

#[derive(Clone, Copy, Debug)]
enum Op {
    Small,
    Large,
    Sync,
    Rotate,
    Reopen,
    Repair,
    Compact,
}

const ALPHABET: [Op; 7] = [
    Op::Small,
    Op::Large,
    Op::Sync,
    Op::Rotate,
    Op::Reopen,
    Op::Repair,
    Op::Compact,
];

/// What the workload knows: the records in order (seq, payload length), the acknowledged
/// sequence number, and the cut of a compaction that may or may not have happened.
#[derive(Clone, Default)]
struct Expect {
    records: Vec<(u64, usize)>,
    acked: u64,
    next: u64,
    maybe_compacted: Option<u64>,
}

fn run(storage: &MemStorage, ops: &[Op]) -> Expect {
    let mut e = Expect {
        next: 1,
        ..Expect::default()
    };
    let Ok(first) = Log::open(dir(), options(storage)) else {
        return e;
    };
    let mut log = Some(first);
    for op in ops {
        let ok = match op {
            Op::Small | Op::Large | Op::Rotate => {
                let len = match op {
                    Op::Small => 60,
                    Op::Large => 3000,
                    _ => 12_000,
                };
                log.as_ref()
                    .expect("open")
                    .append(&payload(e.next, len))
                    .map(|_| {
                        e.records.push((e.next, len));
                        e.next += 1;
                    })
            }
            Op::Sync => log
                .as_ref()
                .expect("open")
                .sync()
                .map(|()| e.acked = e.next - 1),
            Op::Reopen | Op::Repair | Op::Compact => {
                log = None;
                let opts = options(storage);
                let result = match op {
                    Op::Repair => walctl::truncate_partial(&dir(), &opts, false).map(drop),
                    Op::Compact => {
                        let before = e.next / 2;
                        e.maybe_compacted = Some(before);
                        let r = walctl::compact(&dir(), &opts, &crate::util::before(before));
                        if r.is_ok() {
                            e.records.retain(|(s, _)| *s >= before);
                            e.maybe_compacted = None;
                        }
                        r.map(drop)
                    }
                    _ => Ok(()),
                };
                match Log::open(dir(), options(storage)) {
                    Ok(l) => {
                        log = Some(l);
                        e.acked = e.next - 1; // open syncs what it finds
                        result
                    }
                    Err(err) => Err(err),
                }
            }
        };
        if ok.is_err() {
            return e;
        }
    }
    e
}

fn check(storage: &MemStorage, e: &Expect, what: &str) {
    let Some((_log, records)) =
        crate::util::reopen_after_crash(storage, options(storage), e.acked, what)
    else {
        return;
    };
    let got = crate::util::seqs_and_lengths(&records, what);
    let old = e.records.clone();
    let new: Vec<(u64, usize)> = match e.maybe_compacted {
        Some(b) => old.iter().copied().filter(|(s, _)| *s >= b).collect(),
        None => old.clone(),
    };
    let fits = |model: &[(u64, usize)]| {
        model.starts_with(&got) && model.iter().filter(|(s, _)| *s <= e.acked).count() <= got.len()
    };
    assert!(
        fits(&old) || fits(&new),
        "{what}: {} records do not fit what was appended and acknowledged",
        got.len()
    );
}

fn sequences(max_len: usize) -> Vec<Vec<Op>> {
    let mut all: Vec<Vec<Op>> = vec![vec![]];
    let mut out = Vec::new();
    for _ in 0..max_len {
        all = all
            .iter()
            .flat_map(|s| {
                ALPHABET
                    .iter()
                    .map(move |&op| [s.clone(), vec![op]].concat())
            })
            .collect();
        out.extend(all.iter().cloned());
    }
    out
}

#[test]
fn every_crash_state_of_every_short_sequence_recovers_the_acknowledged_log() {
    let max_len = if std::env::var("WALCTL_TEST_SCALE").is_ok_and(|s| s == "long") {
        4
    } else {
        3
    };
    let prefix = [Op::Small, Op::Large, Op::Sync, Op::Small];
    let (mut seqs, mut states) = (0u64, 0u64);
    for tail in sequences(max_len) {
        let ops = [&prefix[..], &tail[..]].concat();
        let total = {
            let s = MemStorage::new();
            run(&s, &ops);
            s.op_count()
        };
        // The prefix is not crashed into: its states are the same for every sequence.
        let start = {
            let s = MemStorage::new();
            run(&s, &prefix);
            s.op_count()
        };
        for stop in start..=total {
            let storage = MemStorage::new();
            storage.set_faults(Some(Box::new(move |op| {
                (op.index >= stop).then_some(Fault::Errno(5))
            })));
            let e = run(&storage, &ops);
            storage.set_faults(None);
            let modes = [CrashMode::KeepAll, CrashMode::DropUnsynced]
                .into_iter()
                .chain((0..4).map(|k| CrashMode::Torn { seed: stop * 4 + k }));
            for mode in modes {
                check(
                    &storage.crash(mode),
                    &e,
                    &format!("{tail:?} stop {stop} {mode:?}"),
                );
                states += 1;
            }
        }
        seqs += 1;
    }
    println!("{seqs} sequences, {states} crash states recovered");
    assert!(
        seqs >= 399 && states > 20_000,
        "{seqs} sequences, {states} states"
    );
}
