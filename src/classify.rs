//! The decision table of FORMAT.md §8: [`LogScan`] takes each segment's scan, in order, and
//! classifies what it found as clean, torn or corrupt, with the evidence the format gives:
//! sealed segments were fully synced before their successor existed, valid records after
//! damage show it is not a tail, and the durable watermark shows what a sync acknowledged.
//! Scanning the files is `recovery`'s; judging them is this module's.

use crate::format::{self, HeaderFault, SEGMENT_DATA_START, SegmentHeader};
use crate::recovery::{HeaderResult, Scanned};
use crate::report::{
    DAMAGE_LISTED_PER_LOG, DAMAGE_LISTED_PER_SEGMENT, Damage, DamageClass, DamageKind, InProgress,
    Report, SegmentReport, TimeRange,
};
use crate::scan::{LocalDamage, SegmentScan};
use crate::segment::Listing;

pub(crate) struct LogScan {
    report: Report,
    /// Sequence number the next segment must start at, and whether exactly (false after a
    /// compacted segment, whose successor may start later).
    expect: Option<(u64, bool)>,
    prev_number: Option<u64>,
    log_first_seq: Option<u64>,
    /// Number and `first_seq` of the first segment whose header could be read.
    first_header: Option<(u64, u64)>,
    /// Last valid sequence number before the current segment.
    prev_last: Option<u64>,
    /// `first_seq` of the last segment whose header could be read.
    last_first_seq: Option<u64>,
    /// Index in `report.damage` of the first damage found among the last segment's records.
    tail: Option<usize>,
}

impl LogScan {
    pub(crate) fn new(
        listing: &Listing,
        headers: &[HeaderResult],
        log_id: Option<u64>,
        writer_active: bool,
    ) -> LogScan {
        LogScan {
            report: Report {
                log_id,
                writer_active,
                stray_files: listing.strays.clone(),
                ..Report::default()
            },
            expect: None,
            prev_number: None,
            log_first_seq: headers
                .last()
                .and_then(|h| h.as_ref().ok())
                .map(|h| h.log_first_seq),
            tail: None,
            first_header: None,
            prev_last: None,
            last_first_seq: None,
        }
    }

    /// The scan starts after segments skipped on purpose (`scan_log_from`): its oldest segment
    /// is not the log's head, so a later start than the log's first sequence number proves no
    /// missing head.
    pub(crate) fn skip_head_check(&mut self) {
        self.log_first_seq = None;
    }

    /// Merges one scanned segment into the report, in log order.
    pub(crate) fn merge(
        &mut self,
        number: u64,
        header: &HeaderResult,
        sealed: bool,
        scanned: Scanned,
    ) {
        self.check_missing(number);
        self.report.bytes += scanned.file_len;
        let mut seg = SegmentReport {
            segment: number,
            file_len: scanned.file_len,
            valid_len: 0,
            records: 0,
            first_seq: None,
            last_seq: None,
            durable_seq: None,
            sealed,
            compacted: false,
            times: None,
        };
        let (Some(header), Some((s, preamble))) = (
            self.check_header(number, header, scanned.file_len),
            scanned.found,
        ) else {
            self.report.segments.push(seg);
            self.expect = None;
            return;
        };
        seg.compacted = header.is_compacted();
        self.check_start(number, &header);
        let before = self.report.records;
        if let Some((offset, why, kind)) = preamble {
            let mut d = corrupt(kind, number, why, self.report.last_seq, before);
            d.offset = offset;
            d.length = if kind == DamageKind::BadSegmentHeader {
                1
            } else {
                format::WATERMARK_SLOT_SIZE as u64
            };
            self.push(d);
        }
        self.absorb(&mut seg, &header, &s, before);
        self.report.segments.push(seg);
    }

    fn check_missing(&mut self, number: u64) {
        if let Some(prev) = self.prev_number
            && number > prev + 1
        {
            self.push(corrupt(
                DamageKind::MissingSegment,
                prev + 1,
                format!("segments {} to {} are missing", prev + 1, number - 1),
                self.report.last_seq,
                self.report.records,
            ));
            self.expect = None;
        }
        self.prev_number = Some(number);
    }

    fn check_header(
        &mut self,
        number: u64,
        header: &std::result::Result<SegmentHeader, HeaderFault>,
        file_len: u64,
    ) -> Option<SegmentHeader> {
        let (last, records) = (self.report.last_seq, self.report.records);
        let header = match header {
            Ok(h) if file_len >= SEGMENT_DATA_START => *h,
            Ok(_) | Err(_) => {
                let why = match header {
                    Ok(_) => "the segment is shorter than its preamble".to_string(),
                    Err(f) => f.to_string(),
                };
                let mut d = corrupt(DamageKind::BadSegmentHeader, number, why, last, records);
                d.length = file_len;
                self.push(d);
                return None;
            }
        };
        if Some(header.log_id) != self.report.log_id {
            let why = format!("the header names log {:016x}, not this log", header.log_id);
            let mut d = corrupt(DamageKind::ForeignSegment, number, why, last, records);
            d.length = file_len;
            self.push(d);
            return None;
        }
        if header.segment != number {
            let why = format!("the header says segment {}", header.segment);
            self.push(corrupt(
                DamageKind::MisnamedSegment,
                number,
                why,
                last,
                records,
            ));
        }
        Some(header)
    }

    fn check_start(&mut self, number: u64, header: &SegmentHeader) {
        let Some((want, exact)) = self.expect else {
            return;
        };
        let (last, records) = (self.report.last_seq, self.report.records);
        if header.first_seq < want {
            let why = format!(
                "the segment starts at sequence {}, before {want}",
                header.first_seq
            );
            self.push(corrupt(
                DamageKind::SequenceRegression,
                number,
                why,
                last,
                records,
            ));
        } else if exact && header.first_seq > want {
            let why = format!(
                "the segment starts at sequence {}, expected {want}",
                header.first_seq
            );
            self.push(corrupt(DamageKind::SequenceGap, number, why, last, records));
        }
    }

    fn absorb(
        &mut self,
        seg: &mut SegmentReport,
        header: &SegmentHeader,
        s: &SegmentScan,
        before: u64,
    ) {
        seg.valid_len = s.valid_len;
        seg.records = s.records;
        seg.first_seq = s.first_seq;
        seg.last_seq = s.last_seq;
        seg.times = s.times;
        seg.durable_seq = if seg.sealed {
            s.last_seq.or(Some(header.first_seq - 1))
        } else {
            s.durable_seq
        };
        let r = &mut self.report;
        r.records += s.records;
        r.times = TimeRange::join(r.times, s.times);
        if r.first_seq.is_none() {
            r.first_seq = s.first_seq;
        }
        if s.last_seq.is_some() {
            r.last_seq = s.last_seq;
        }
        let prev_last = self
            .prev_last
            .or((header.first_seq > 1).then(|| header.first_seq - 1));
        if !s.damage.is_empty() && !seg.sealed {
            self.tail = Some(self.report.damage.len());
        }
        // Past the log's listing limit, the rest of the segment's places become one entry.
        let room = DAMAGE_LISTED_PER_LOG.saturating_sub(self.report.damage.len());
        let (listed, rest) = s.damage.split_at(room.min(s.damage.len()));
        let condensed = rest.split_first().map(|(first, more)| {
            let mut all = first.clone();
            more.iter().for_each(|d| all.absorb(d));
            all
        });
        for d in listed.iter().chain(&condensed) {
            let mut damage = local(seg.segment, d, before);
            damage.last_good_seq = damage.last_good_seq.or(prev_last);
            self.push(damage);
        }
        let next = s.last_seq.map_or(header.first_seq, |l| l + 1);
        self.expect = Some((next, !header.is_compacted()));
        self.prev_last = self.report.last_seq;
        self.first_header
            .get_or_insert((seg.segment, header.first_seq));
        self.last_first_seq = Some(header.first_seq);
    }

    fn push(&mut self, d: Damage) {
        self.report.damage.push(d);
    }

    /// Applies the decision table to the trailing damage and fills in `records_after`.
    pub(crate) fn finish(mut self, complete: bool) -> Report {
        let total = self.report.records;
        for d in &mut self.report.damage {
            // `records_after` held the count of records before the damage until now.
            d.records_after = total - d.records_after;
        }
        if complete {
            self.check_head();
            self.classify_tail();
        }
        self.report
    }

    fn check_head(&mut self) {
        let (Some(first_seg), Some(log_first), Some((number, first_present))) = (
            self.report.segments.first(),
            self.log_first_seq,
            self.first_header,
        ) else {
            return;
        };
        // An oldest segment whose header cannot be read is damage of its own; where it started
        // is unknown, so nothing before it can be called missing.
        if number != first_seg.segment {
            return;
        }
        if first_present > log_first {
            let why = format!(
                "the log starts at sequence {log_first} but its oldest segment starts at {first_present}"
            );
            let mut d = corrupt(DamageKind::MissingHead, first_seg.segment, why, None, 0);
            d.records_after = self.report.records;
            self.report.damage.insert(0, d);
            if let Some(t) = self.tail.as_mut() {
                *t += 1;
            }
        }
    }

    fn classify_tail(&mut self) {
        let Some(last) = self.report.segments.last() else {
            return;
        };
        let watermark = last
            .durable_seq
            .unwrap_or(0)
            .max(last_sealed_seq(&self.report));
        self.report.durable_seq = (watermark > 0).then_some(watermark);
        // As the writer's open does: an empty last segment accounts for everything before its
        // first sequence number.
        let floor = self.last_first_seq.map_or(0, |f| f - 1);
        let last_valid = last
            .last_seq
            .or(self.report.last_seq)
            .unwrap_or(0)
            .max(floor);
        let Some(i) = self.tail else {
            if watermark > last_valid {
                let why = format!(
                    "sequence numbers up to {watermark} were acknowledged durable, but the log ends at {last_valid}"
                );
                let mut d = corrupt(
                    DamageKind::MissingAcknowledged,
                    last.segment,
                    why,
                    Some(last_valid),
                    0,
                );
                d.offset = last.valid_len;
                self.report.damage.push(d);
            }
            return;
        };
        // The damage is in the last segment, whose header says every sequence number below its
        // first was accounted for by the sealed segments: g is at least the one before it
        // (FORMAT.md §8), even where compaction left no record just before.
        let last_good = self.report.damage[i].last_good_seq.unwrap_or(0).max(floor);
        if watermark > last_good {
            let d = &mut self.report.damage[i];
            d.detail = format!(
                "{}; sequence numbers up to {watermark} were acknowledged durable",
                d.detail
            );
            return;
        }
        // Everything from the first damage of the last segment on lies beyond the watermark: no
        // sync ever acknowledged it, whatever valid records power loss left among it (unsynced
        // pages can reach the disk out of order). Cutting there loses nothing acknowledged.
        if self.report.writer_active {
            let tail: Vec<Damage> = self.report.damage.drain(i..).collect();
            let first = &tail[0];
            let end = tail
                .iter()
                .map(|d| d.offset + d.length)
                .max()
                .unwrap_or(first.offset);
            self.report.in_progress = Some(InProgress {
                segment: first.segment,
                offset: first.offset,
                length: end - first.offset,
            });
            return;
        }
        for d in &mut self.report.damage[i..] {
            d.class = DamageClass::Torn;
        }
    }
}

fn last_sealed_seq(report: &Report) -> u64 {
    report
        .segments
        .iter()
        .rev()
        .find(|s| s.sealed)
        .and_then(|s| s.durable_seq)
        .unwrap_or(0)
}

/// A corrupt damage record; `records_after` temporarily holds the count of records before it.
fn corrupt(
    kind: DamageKind,
    segment: u64,
    detail: String,
    last_good_seq: Option<u64>,
    before: u64,
) -> Damage {
    Damage {
        kind,
        class: DamageClass::Corrupt,
        segment,
        offset: 0,
        length: 0,
        last_good_seq,
        records_after: before,
        places: 1,
        records_within: 0,
        detail,
    }
}

fn local(segment: u64, d: &LocalDamage, before: u64) -> Damage {
    let (kind, detail) = if d.places > 1 {
        (DamageKind::ManyPlaces, condensed_detail(d))
    } else {
        (d.kind, d.detail.clone())
    };
    Damage {
        kind,
        class: DamageClass::Corrupt,
        segment,
        offset: d.offset,
        length: d.length,
        last_good_seq: d.last_good_seq,
        records_after: before + d.records_before,
        places: d.places,
        records_within: d.records_within,
        detail,
    }
}

/// The sentence for an entry that stands for several places.
fn condensed_detail(d: &LocalDamage) -> String {
    let kinds: Vec<&str> = DamageKind::PLACES
        .iter()
        .filter(|k| d.kinds & k.bit() != 0)
        .map(|k| k.as_str())
        .collect();
    format!(
        "{} damaged places ({}) with {} valid records among them, condensed into one entry: a \
         report lists at most {DAMAGE_LISTED_PER_SEGMENT} places of a segment and \
         {DAMAGE_LISTED_PER_LOG} entries in all one by one",
        d.places,
        kinds.join(", "),
        d.records_within,
    )
}
