//! The damage a segment scan lists, and how it stays bounded: the first
//! [`DAMAGE_LISTED_PER_SEGMENT`] places of a segment are listed one by one, and every later
//! place is condensed into one more entry. A segment damaged every few records (a failing
//! device, a hostile hand) once cost a report more memory than the segment's own bytes.

use super::SegmentScan;
use crate::report::{DAMAGE_LISTED_PER_SEGMENT, DamageKind};

/// Damage found inside one segment, before classification: one place, or several condensed
/// (`places > 1`) past [`DAMAGE_LISTED_PER_SEGMENT`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LocalDamage {
    pub kind: DamageKind,
    pub offset: u64,
    pub length: u64,
    pub last_good_seq: Option<u64>,
    /// Valid records delivered from this segment before the damage.
    pub records_before: u64,
    /// Empty once the entry stands for several places (`classify` then writes one).
    pub detail: String,
    pub places: u64,
    /// Valid records between the first and the last place.
    pub records_within: u64,
    /// The kinds of the places, as [`DamageKind::bit`]s.
    pub kinds: u16,
}

impl LocalDamage {
    /// Takes `next`, a later place (or condensed entry) of the same segment, into this entry.
    /// Associative, so a segment scanned a window at a time condenses as a whole-file scan
    /// does.
    pub(crate) fn absorb(&mut self, next: &LocalDamage) {
        debug_assert!(next.offset >= self.offset && next.records_before >= self.records_before);
        let end = (self.offset + self.length).max(next.offset + next.length);
        self.length = end - self.offset;
        self.records_within = next.records_before + next.records_within - self.records_before;
        self.places += next.places;
        self.kinds |= next.kinds;
        self.detail = String::new();
    }
}

impl SegmentScan {
    /// Records damage at file offset `offset`, after the records delivered so far. `detail` is
    /// only asked for a place that is listed on its own.
    pub(crate) fn damaged(
        &mut self,
        kind: DamageKind,
        offset: u64,
        length: u64,
        detail: impl FnOnce() -> String,
    ) {
        let mut place = LocalDamage {
            kind,
            offset,
            length,
            last_good_seq: self.last_seq,
            records_before: self.records,
            detail: String::new(),
            places: 1,
            records_within: 0,
            kinds: kind.bit(),
        };
        if !self.condensing() {
            place.detail = detail();
        }
        self.add(place);
    }

    /// Appends `d`, found after every entry so far, or condenses it into the last entry once
    /// the segment's listing is full.
    pub(crate) fn add(&mut self, d: LocalDamage) {
        if self.condensing() {
            let last = self
                .damage
                .last_mut()
                .expect("a full listing has a last entry");
            last.absorb(&d);
        } else {
            self.damage.push(d);
        }
    }

    fn condensing(&self) -> bool {
        self.damage.len() > DAMAGE_LISTED_PER_SEGMENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SEGMENT_DATA_START;
    use std::cell::Cell;
    use std::ops::ControlFlow;

    const LISTED: usize = DAMAGE_LISTED_PER_SEGMENT;

    /// Place `i` of a run: 40 bytes each, two valid records before each, kinds alternating.
    fn place(i: u64) -> LocalDamage {
        let kind = [DamageKind::Checksum, DamageKind::ZeroFill][i as usize % 2];
        LocalDamage {
            kind,
            offset: 12_288 + i * 100,
            length: 40,
            last_good_seq: Some(2 * i),
            records_before: 2 * i,
            detail: format!("place {i}"),
            places: 1,
            records_within: 0,
            kinds: kind.bit(),
        }
    }

    fn listed(places: impl IntoIterator<Item = LocalDamage>) -> SegmentScan {
        let mut scan = SegmentScan::default();
        places.into_iter().for_each(|d| scan.add(d));
        scan
    }

    #[test]
    fn places_past_the_limit_become_one_entry_that_spans_and_counts_them() {
        let n = LISTED as u64 + 100;
        let scan = listed((0..n).map(place));
        assert_eq!(scan.damage.len(), LISTED + 1);
        assert_eq!(
            scan.damage[..LISTED],
            (0..LISTED as u64).map(place).collect::<Vec<_>>()
        );
        let last = &scan.damage[LISTED];
        let first = place(LISTED as u64);
        let end = place(n - 1).offset + 40;
        assert_eq!(
            (
                last.offset,
                last.length,
                last.last_good_seq,
                last.records_before
            ),
            (
                first.offset,
                end - first.offset,
                first.last_good_seq,
                first.records_before
            )
        );
        assert_eq!((last.places, last.records_within), (100, 2 * 99));
        assert_eq!(
            last.kinds,
            DamageKind::Checksum.bit() | DamageKind::ZeroFill.bit()
        );
        assert!(
            last.detail.is_empty(),
            "classify writes a condensed entry's sentence"
        );
    }

    #[test]
    fn a_list_condensed_in_parts_equals_the_list_condensed_at_once() {
        // A segment read a window at a time condenses each window's places, then the windows':
        // the result must not depend on where the windows end.
        let n = 2 * LISTED as u64 + 3;
        let whole = listed((0..n).map(place));
        for cut in [
            0,
            1,
            100,
            LISTED - 1,
            LISTED,
            LISTED + 1,
            LISTED + 2,
            2 * LISTED,
        ] {
            for second in [cut, cut + 1, cut + LISTED + 1, n as usize] {
                let second = second.clamp(cut, n as usize);
                let parts = [0..cut, cut..second, second..n as usize];
                let mut total = SegmentScan::default();
                for range in parts {
                    let part = listed(range.map(|i| place(i as u64)));
                    part.damage.into_iter().for_each(|d| total.add(d));
                }
                assert_eq!(total.damage, whole.damage, "cuts at {cut} and {second}");
            }
        }
    }

    #[test]
    fn a_segment_damaged_in_every_other_record_lists_its_first_places_and_condenses_the_rest() {
        let seqs: Vec<u64> = (1..=1000).collect();
        let (mut bytes, ends) = super::super::tests::segment(&seqs);
        let starts: Vec<usize> = std::iter::once(SEGMENT_DATA_START)
            .chain(ends)
            .map(|o| o as usize)
            .collect();
        for seq in (2..=1000).step_by(2) {
            bytes[starts[seq - 1] + 32] ^= 1; // in the payload: a checksum place per record
        }
        let h = super::super::tests::header(false);
        let mut delivered = 0;
        let scan = super::super::scan_segment(&bytes, &h, &mut |_| {
            delivered += 1;
            ControlFlow::Continue(())
        });
        assert_eq!(
            (scan.records, delivered),
            (500, 500),
            "every valid record is delivered"
        );
        assert_eq!(scan.damage.len(), LISTED + 1);
        let last = &scan.damage[LISTED];
        assert_eq!(
            (last.places, last.records_within),
            (500 - LISTED as u64, 499 - LISTED as u64)
        );
        assert_eq!(last.offset, starts[2 * LISTED + 1] as u64);
        assert_eq!(last.offset + last.length, bytes.len() as u64);
        assert_eq!(scan.damage.iter().map(|d| d.places).sum::<u64>(), 500);
    }

    #[test]
    fn no_sentence_is_written_for_a_place_that_is_condensed() {
        let written = Cell::new(0);
        let mut scan = SegmentScan::default();
        for i in 0..LISTED as u64 + 50 {
            scan.damaged(DamageKind::Checksum, i * 40, 40, || {
                written.set(written.get() + 1);
                "a sentence".to_string()
            });
        }
        // The place that starts the condensed entry is written before the next one joins it.
        assert_eq!(written.get(), LISTED + 1);
    }
}
