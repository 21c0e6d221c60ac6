//! Salvage's copy pass: which records it keeps, the digest over them, and the runs of sequence
//! numbers lost, each handed to the caller the moment it is known.
//!
//! The account is streamed rather than collected because its length is the damaged log's to
//! choose: a log damaged in every other record loses one run per two records, and a list of
//! them took 184 MiB for a 189 MiB log. The copy pass therefore holds only what is bounded by
//! the survey's damage list (itself bounded, FORMAT.md §8) plus a fixed window for repeats;
//! the report keeps the first [`LOST_LISTED`] runs and the count.

use super::super::hash_record;
use super::LostRange;
use crate::report::{Damage, RecordView, Report};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;

/// How many runs of lost sequence numbers a [`super::SalvageReport`] lists; its `lost_ranges`
/// counts them all, and [`super::salvage_observed`] hands every one to its `lost` callback.
pub const LOST_LISTED: usize = 4096;

/// How many of the most recent runs a new run is compared with to drop repeats. One lost
/// record is often named twice, by its checksum and by the gap it leaves (or by a run of
/// missing segments, one entry each): always by places between the same two valid records,
/// whose runs are the same and come one after the other. Only a log holding stale copies of
/// older records could repeat a run further back than this, and then it is named again.
const REPEAT_WINDOW: usize = 64;

/// The copy pass: records into the digest, and where each damage's loss ends.
pub(super) struct Copy<'a> {
    pub(super) hasher: Sha256,
    pub(super) records: u64,
    pub(super) first: Option<u64>,
    pub(super) last: Option<u64>,
    damage: &'a [Damage],
    /// The survey's watermark: the last sequence number acknowledged as durable (0 if none).
    durable: u64,
    /// Damage positions `(segment, offset)` with their index, in log order.
    places: Vec<((u64, u64), usize)>,
    /// How many of `places` the pass has gone past.
    passed: usize,
    /// Where each condensed entry (`places > 1`) ends, by index in the survey's list.
    spans: Vec<Option<Span>>,
    /// The condensed entry the pass is inside, if any.
    inside: Option<Inside>,
    /// End `(segment, offset)` of the last record delivered.
    prev_end: Option<(u64, u64)>,
    pub(super) lost: Lost<'a>,
}

/// The extent of a condensed damage entry.
#[derive(Clone, Copy)]
struct Span {
    segment: u64,
    end: u64,
    compacted: bool,
}

/// A condensed entry the copy pass is inside: the loss before its first record is the entry's
/// own range (`lost_at`); each later jump in sequence numbers is a range of its own.
struct Inside {
    index: usize,
    span: Span,
    started: bool,
}

impl<'a> Copy<'a> {
    pub(super) fn new(survey: &'a Report, sink: &'a mut dyn FnMut(&LostRange)) -> Copy<'a> {
        // Segments are listed ascending: a search, not a walk per damage entry (thousands of
        // each on a large, densely damaged log).
        let segments = &survey.segments;
        let compacted = |n: u64| {
            (segments.binary_search_by_key(&n, |s| s.segment)).is_ok_and(|i| segments[i].compacted)
        };
        let mut places: Vec<_> = (survey.damage.iter().enumerate())
            .map(|(i, d)| ((d.segment, d.offset), i))
            .collect();
        places.sort_unstable();
        Copy {
            hasher: Sha256::new(),
            records: 0,
            first: None,
            last: None,
            damage: &survey.damage,
            durable: survey.durable_seq.unwrap_or(0),
            places,
            passed: 0,
            spans: (survey.damage.iter())
                .map(|d| {
                    (d.places > 1).then(|| Span {
                        segment: d.segment,
                        end: d.offset + d.length,
                        compacted: compacted(d.segment),
                    })
                })
                .collect(),
            inside: None,
            prev_end: None,
            lost: Lost::new(sink),
        }
    }

    /// Takes the next record of the pass; returns whether it is kept. A damaged log can hold a
    /// valid record out of order (a stale copy of an older one): the new log keeps each
    /// sequence number once, in order.
    pub(super) fn record(&mut self, r: &RecordView<'_>) -> bool {
        // Records come in log order: each damage passed since the last record is followed by
        // this one, which ends its loss. A sequence gap is found at the record after it, so it
        // starts where this record does and is followed by it.
        let at = (r.location.segment, r.location.offset);
        while let Some(&(place, i)) = self.places.get(self.passed)
            && place <= at
        {
            self.passed += 1;
            if let Some(range) = lost_at(i, &self.damage[i], Some(r.seq), self.durable) {
                self.lost.push(range);
            }
            self.inside = self.spans[i].map(|span| Inside {
                index: i,
                span,
                started: false,
            });
        }
        self.note_within(r, at);
        self.prev_end = Some((at.0, at.1 + u64::from(r.location.length)));
        if self.last.is_some_and(|l| r.seq <= l) {
            return false;
        }
        hash_record(&mut self.hasher, r);
        self.records += 1;
        self.first.get_or_insert(r.seq);
        self.last = Some(r.seq);
        true
    }

    /// Inside a condensed entry, a jump in sequence numbers after its first record is a loss at
    /// one of its places: bytes lay between the two records, or, outside compacted segments
    /// (where holes are legal), a gap with none between is a place of its own.
    fn note_within(&mut self, r: &RecordView<'_>, at: (u64, u64)) {
        let Some(inside) = &mut self.inside else {
            return;
        };
        if at.0 != inside.span.segment || at.1 > inside.span.end {
            self.inside = None;
            return;
        }
        if !std::mem::replace(&mut inside.started, true) {
            return;
        }
        let adjacent = self.prev_end == Some(at);
        if let Some(l) = self.last
            && r.seq > l + 1
            && !(adjacent && inside.span.compacted)
        {
            let range = LostRange {
                damage: inside.index,
                first: Some(l + 1),
                last: Some(r.seq - 1),
            };
            self.lost.push(range);
        }
    }

    /// The end of the pass: the loss after the last record, then every place no record
    /// followed, whose loss runs to the watermark or is of unknown length.
    pub(super) fn finish(&mut self) {
        if let Some(range) = self.trailing() {
            self.lost.push(range);
        }
        while let Some(&(_, i)) = self.places.get(self.passed) {
            self.passed += 1;
            if let Some(range) = lost_at(i, &self.damage[i], None, self.durable) {
                self.lost.push(range);
            }
        }
    }

    /// The loss after the last record, when the pass ended inside a condensed entry that has
    /// places after that record: up to the watermark, or of unknown length past it, as
    /// `lost_at` says of a place no record follows.
    fn trailing(&self) -> Option<LostRange> {
        let inside = self.inside.as_ref().filter(|i| i.started)?;
        let (segment, end) = self.prev_end?;
        if segment != inside.span.segment || end >= inside.span.end {
            return None;
        }
        let first = self.last.map_or(1, |l| l + 1);
        Some(LostRange {
            damage: inside.index,
            first: Some(first),
            last: (self.durable >= first).then_some(self.durable),
        })
    }
}

fn lost_at(index: usize, d: &Damage, next: Option<u64>, durable: u64) -> Option<LostRange> {
    let first = d.last_good_seq.map(|s| s + 1);
    let from = first.unwrap_or(1);
    let last = match next {
        Some(n) if n > from => Some(n - 1),
        Some(_) => return None,
        None if durable >= from => Some(durable),
        None => None,
    };
    Some(LostRange {
        damage: index,
        first,
        last,
    })
}

/// The account of lost runs: repeats dropped, each run handed to the caller's sink, the first
/// [`LOST_LISTED`] kept for the report.
pub(super) struct Lost<'a> {
    sink: &'a mut dyn FnMut(&LostRange),
    pub(super) listed: Vec<LostRange>,
    pub(super) count: u64,
    /// The last [`REPEAT_WINDOW`] runs handed over, by their ends.
    recent: VecDeque<(Option<u64>, Option<u64>)>,
}

impl<'a> Lost<'a> {
    fn new(sink: &'a mut dyn FnMut(&LostRange)) -> Lost<'a> {
        Lost {
            sink,
            listed: Vec::new(),
            count: 0,
            recent: VecDeque::with_capacity(REPEAT_WINDOW),
        }
    }

    fn push(&mut self, range: LostRange) {
        let key = (range.first, range.last);
        // Newest first: a repeat is almost always the run just handed over.
        if self.recent.iter().rev().any(|&k| k == key) {
            return;
        }
        if self.recent.len() == REPEAT_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(key);
        self.count += 1;
        if self.listed.len() < LOST_LISTED {
            self.listed.push(range);
        }
        (self.sink)(&range);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(first: u64, last: u64) -> LostRange {
        LostRange {
            damage: 0,
            first: Some(first),
            last: Some(last),
        }
    }

    #[test]
    fn the_account_lists_a_bounded_prefix_and_hands_every_run_to_the_sink() {
        let mut seen = Vec::new();
        let mut sink = |r: &LostRange| seen.push(r.first);
        let mut lost = Lost::new(&mut sink);
        let n = LOST_LISTED as u64 + 10;
        for i in 0..n {
            lost.push(range(2 * i + 1, 2 * i + 1));
        }
        assert_eq!(lost.count, n);
        assert_eq!(lost.listed.len(), LOST_LISTED);
        assert_eq!(lost.listed[LOST_LISTED - 1].first, Some(2 * 4095 + 1));
        drop(lost);
        assert_eq!(seen.len() as u64, n);
        assert_eq!(seen.last(), Some(&Some(2 * (n - 1) + 1)));
    }

    #[test]
    fn a_repeat_is_dropped_within_the_window_and_memory_stays_at_the_window() {
        let mut calls = 0u64;
        let mut sink = |_: &LostRange| calls += 1;
        let mut lost = Lost::new(&mut sink);
        let capacity = lost.recent.capacity();
        lost.push(range(6, 6));
        lost.push(range(6, 6));
        lost.push(range(6, 7));
        assert_eq!(lost.count, 2, "the repeat of 6..6 is dropped, 6..7 is not");
        for i in 0..3 * REPEAT_WINDOW as u64 {
            lost.push(range(100 + i, 100 + i));
        }
        assert_eq!(lost.recent.len(), REPEAT_WINDOW);
        assert_eq!(lost.recent.capacity(), capacity, "never grown");
        // Far enough back, a repeat is listed again: only stale copies could make one.
        lost.push(range(6, 6));
        assert_eq!(lost.count, 3 + 3 * REPEAT_WINDOW as u64);
        drop(lost);
        assert_eq!(calls, 3 + 3 * REPEAT_WINDOW as u64);
    }
}
