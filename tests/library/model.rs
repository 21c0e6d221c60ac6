//! Model-based state machine (proptest): random operations, including crashes, reopens,
//! repairs, compactions and injected I/O errors, against a model of what the log must hold.
//! `WALCTL_TEST_SCALE=long` raises the number of sequences from 5,000 to 200,000.

use crate::util::{dir, options, payload, scan};
use proptest::prelude::*;
use walctl::storage::{CrashMode, Fault, MemStorage};
use walctl::{Log, Verdict};

#[derive(Clone, Debug)]
enum Op {
    Append(u16),
    Sync,
    Reopen,
    Crash(u8, u64),
    Repair,
    Compact(u8),
    Fault(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop_oneof![Just(40u16), Just(300), Just(7000)].prop_map(Op::Append),
        3 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => (0u8..3, any::<u64>()).prop_map(|(m, s)| Op::Crash(m, s)),
        1 => Just(Op::Repair),
        1 => any::<u8>().prop_map(Op::Compact),
        1 => (0u8..4, 1u8..12).prop_map(|(k, n)| Op::Fault(k, n)),
    ]
}

/// What the log must hold: records (seq, payload length) in order, and the highest sequence
/// number a successful sync acknowledged.
#[derive(Default)]
struct Model {
    records: Vec<(u64, usize)>,
    acked: u64,
    next: u64,
}

struct Machine {
    storage: MemStorage,
    /// Bytes of write buffer (0: every append written through).
    buffer: usize,
    log: Option<Log>,
    model: Model,
}

impl Machine {
    fn options(&self) -> walctl::Options {
        walctl::Options {
            write_buffer: self.buffer,
            ..options(&self.storage)
        }
    }

    fn writer(&mut self) -> Option<&Log> {
        if self.log.is_none() {
            self.log = Some(Log::open(dir(), self.options()).ok()?);
        }
        self.log.as_ref()
    }

    /// Reopens and checks the log against the model, then adopts what is there: everything a
    /// reopen finds is durable (open syncs it).
    fn reconcile(&mut self, what: &str) {
        self.log = None;
        // Faults apply to the operations under test, not to the check.
        self.storage.set_faults(None);
        let has_segments = self
            .storage
            .files()
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "wal"));
        if has_segments {
            let (report, _) = scan(&self.storage, &dir());
            assert_ne!(
                report.verdict(),
                Verdict::Corrupt,
                "{what}: {:?}",
                report.damage
            );
        } else {
            assert_eq!(
                self.model.acked, 0,
                "{what}: acknowledged records vanished with the log"
            );
        }
        let log = Log::open(dir(), self.options()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let actual = crate::util::seqs_and_lengths(&log.records().unwrap(), what);
        assert!(
            self.model.records.starts_with(&actual),
            "{what}: not a prefix of what was appended"
        );
        let kept = actual
            .iter()
            .filter(|(s, _)| *s <= self.model.acked)
            .count();
        let owed = self
            .model
            .records
            .iter()
            .filter(|(s, _)| *s <= self.model.acked)
            .count();
        assert_eq!(kept, owed, "{what}: acknowledged records lost");
        self.model.next = log.next_seq();
        self.model.acked = self.model.next - 1;
        self.model.records = actual;
        self.log = Some(log);
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Append(len) => {
                let next = self.model.next;
                if let Some(log) = self.writer()
                    && let Ok(a) = log.append(&payload(next, len.into()))
                {
                    assert_eq!(a.seq, next, "sequence numbers are contiguous");
                    self.model.records.push((a.seq, len.into()));
                    self.model.next += 1;
                }
            }
            Op::Sync => {
                let next = self.model.next;
                if let Some(log) = self.writer()
                    && log.sync().is_ok()
                {
                    self.model.acked = next - 1;
                }
            }
            Op::Reopen => self.reconcile("reopen"),
            Op::Crash(mode, seed) => {
                let mode = [
                    CrashMode::KeepAll,
                    CrashMode::DropUnsynced,
                    CrashMode::Torn { seed },
                ][mode as usize];
                self.storage = self.storage.crash(mode);
                self.log = None;
                self.reconcile(&format!("after {mode:?}"));
            }
            Op::Repair => {
                self.log = None;
                let _ = walctl::truncate_partial(&dir(), &self.options(), false);
                self.reconcile("after repair");
            }
            Op::Compact(frac) => self.compact(frac),
            Op::Fault(kind, n) => self.arm(kind, n),
        }
    }

    fn compact(&mut self, frac: u8) {
        self.log = None;
        let before = self.model.next * u64::from(frac) / 255;
        let result = walctl::compact(&dir(), &self.options(), &crate::util::before(before));
        if result.is_ok() {
            self.model.records.retain(|(s, _)| *s >= before);
        } else {
            // Either the old or the new log; the reopen below shows which, and both must hold
            // every acknowledged survivor.
            self.storage.set_faults(None);
            let log = Log::open(dir(), self.options());
            if let Ok(log) = log {
                let first = log.records().unwrap().first().map(|r| r.seq);
                if first.is_some_and(|f| f >= before) || first.is_none() {
                    self.model.records.retain(|(s, _)| *s >= before);
                }
            }
        }
        self.reconcile("after compaction");
    }

    /// Arms a one-shot fault at the n-th next storage call of a kind.
    fn arm(&mut self, kind: u8, n: u8) {
        let start = self.storage.op_count();
        let kinds = [
            walctl::storage::TraceOp::Write,
            walctl::storage::TraceOp::SyncData,
            walctl::storage::TraceOp::SetLen,
            walctl::storage::TraceOp::Rename,
        ];
        let kind = kinds[kind as usize];
        let mut seen = 0u8;
        self.storage.set_faults(Some(Box::new(move |op| {
            if op.index < start || op.op != kind {
                return None;
            }
            seen = seen.saturating_add(1);
            (seen == n).then_some(if kind == walctl::storage::TraceOp::SyncData {
                Fault::FsyncGate
            } else {
                Fault::Errno(5)
            })
        })));
    }
}

fn cases() -> u32 {
    if std::env::var("WALCTL_TEST_SCALE").is_ok_and(|s| s == "long") {
        200_000
    } else {
        5_000
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]
    #[test]
    fn log_behaves_like_its_model_under_crashes_faults_repair_and_compaction(
        ops in proptest::collection::vec(op(), 1..40),
        buffer in prop_oneof![Just(0usize), Just(4096)],
    ) {
        let mut m = Machine { storage: MemStorage::new(), buffer, log: None, model: Model { next: 1, ..Model::default() } };
        for op in &ops {
            m.apply(op);
        }
        m.storage.set_faults(None);
        m.reconcile("at the end");
    }
}
