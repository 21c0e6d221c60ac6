//! What a compaction keeps: the rule applied to each record, and what the survey learns that
//! lets the rule be known before any record is copied (the first survivor, which every new
//! segment header carries; how many survive, which tells a compaction with nothing to drop; and
//! how many survive in each segment, which tells whether it can compact in place).

use super::Compaction;
use crate::format::RecordKind;
use crate::report::RecordView;
use std::collections::{BTreeMap, HashMap};

/// The latest record of a key.
#[derive(Clone, Copy, Debug)]
pub(super) struct Latest {
    pub(super) seq: u64,
    pub(super) tombstone: bool,
    /// The segment holding it.
    segment: u64,
}

/// One segment's records as the survey counted them.
#[derive(Clone, Copy, Debug, Default)]
struct SegmentCount {
    /// Records at or after `--before` (all of them without it), and the keyless ones of those.
    kept: u64,
    keyless: u64,
}

/// What the survey learns: each key's latest record (`--keys` only), and the records at or
/// after `--before` (all of them without it).
#[derive(Debug, Default)]
pub(super) struct Survey {
    pub(super) keys: HashMap<Vec<u8>, Latest>,
    /// First sequence number of any record, and of a keyless one.
    first: Option<u64>,
    first_keyless: Option<u64>,
    /// How many records, and how many keyless ones.
    records: u64,
    keyless: u64,
    /// The same two counts per segment, for the segments that hold any record.
    per_segment: BTreeMap<u64, SegmentCount>,
}

impl Survey {
    /// Takes in one record of the old log, in order.
    pub(super) fn add(&mut self, plan: &Compaction, r: &RecordView<'_>) {
        let segment = r.location.segment;
        if plan.before.is_none_or(|b| r.seq >= b) {
            let count = self.per_segment.entry(segment).or_default();
            count.kept += 1;
            self.records += 1;
            self.first.get_or_insert(r.seq);
            if r.key.is_none() {
                count.keyless += 1;
                self.keyless += 1;
                self.first_keyless.get_or_insert(r.seq);
            }
        }
        if plan.keys
            && let Some(k) = r.key
        {
            let latest = Latest {
                seq: r.seq,
                tombstone: r.kind == RecordKind::Tombstone,
                segment,
            };
            match self.keys.get_mut(k) {
                Some(slot) => *slot = latest,
                None => {
                    self.keys.insert(k.to_vec(), latest);
                }
            }
        }
    }

    /// The latest records of the keys that survive: data, at or after `--before`.
    fn live_keys<'a>(&'a self, plan: &'a Compaction) -> impl Iterator<Item = u64> + 'a {
        self.keys
            .values()
            .filter(|k| !k.tombstone && plan.before.is_none_or(|b| k.seq >= b))
            .map(|k| k.seq)
    }

    /// How many keys the new log holds.
    pub(super) fn keys_kept(&self, plan: &Compaction) -> u64 {
        self.live_keys(plan).count() as u64
    }

    /// How many records survive: those at or after `--before`, and of those with a key, with
    /// `--keys`, one per live key.
    pub(super) fn survivors(&self, plan: &Compaction) -> u64 {
        if plan.keys {
            self.keyless + self.keys_kept(plan)
        } else {
            self.records
        }
    }

    /// How many records survive in each segment that keeps any.
    pub(super) fn survivors_by_segment(&self, plan: &Compaction) -> BTreeMap<u64, u64> {
        if !plan.keys {
            return self.per_segment.iter().map(|(&n, c)| (n, c.kept)).collect();
        }
        let mut out: BTreeMap<u64, u64> = self
            .per_segment
            .iter()
            .filter(|(_, c)| c.keyless > 0)
            .map(|(&n, c)| (n, c.keyless))
            .collect();
        for k in self.keys.values() {
            if !k.tombstone && plan.before.is_none_or(|b| k.seq >= b) {
                *out.entry(k.segment).or_default() += 1;
            }
        }
        out
    }

    /// The sequence number of the first record that will survive, known before any is written
    /// so every new header can carry it.
    pub(super) fn first_survivor(&self, plan: &Compaction) -> Option<u64> {
        if !plan.keys {
            return self.first;
        }
        match (self.live_keys(plan).min(), self.first_keyless) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

pub(super) enum Fate {
    Keep,
    Before,
    Superseded,
    Deleted,
}

pub(super) struct Rule<'a> {
    pub(super) plan: &'a Compaction,
    pub(super) keys: &'a HashMap<Vec<u8>, Latest>,
}

impl Rule<'_> {
    pub(super) fn verdict(&self, r: &RecordView<'_>) -> Fate {
        if self.plan.before.is_some_and(|b| r.seq < b) {
            return Fate::Before;
        }
        let (true, Some(key)) = (self.plan.keys, r.key) else {
            return Fate::Keep;
        };
        let latest = self.keys[key];
        if latest.tombstone {
            Fate::Deleted
        } else if latest.seq != r.seq {
            Fate::Superseded
        } else {
            Fate::Keep
        }
    }
}
