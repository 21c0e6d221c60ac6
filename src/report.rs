//! What a scan finds: records as views, damage, and the verdict.
//!
//! These types are data, not errors (FORMAT.md §8): a scan of a damaged log succeeds and
//! describes the damage. The verdict follows the decision table in FORMAT.md §8.

use crate::format::RecordKind;

/// Where a record lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// Segment number.
    pub segment: u64,
    /// Byte offset of the record's header in the segment file.
    pub offset: u64,
    /// Encoded length: header, key and payload.
    pub length: u32,
}

/// A record read in place; key and payload borrow the segment's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Sequence number: 1 for the first record of a log, +1 per append.
    pub seq: u64,
    /// Wall-clock time of the append, nanoseconds since the Unix epoch.
    pub timestamp_nanos: u64,
    /// Data or tombstone.
    pub kind: RecordKind,
    /// The key, if any.
    pub key: Option<&'a [u8]>,
    /// The payload.
    pub payload: &'a [u8],
    /// Where the record lives.
    pub location: Location,
    /// The stored (masked) CRC32C of the record.
    pub crc: u32,
}

impl RecordView<'_> {
    /// An owned copy.
    #[must_use]
    pub fn to_record(&self) -> Record {
        Record {
            seq: self.seq,
            timestamp_nanos: self.timestamp_nanos,
            kind: self.kind,
            key: self.key.map(<[u8]>::to_vec),
            payload: self.payload.to_vec(),
            location: self.location,
            crc: self.crc,
        }
    }
}

/// An owned record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Sequence number.
    pub seq: u64,
    /// Wall-clock time of the append, nanoseconds since the Unix epoch.
    pub timestamp_nanos: u64,
    /// Data or tombstone.
    pub kind: RecordKind,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The payload.
    pub payload: Vec<u8>,
    /// Where the record lives.
    pub location: Location,
    /// The stored (masked) CRC32C of the record.
    pub crc: u32,
}

/// The three verdicts of FORMAT.md §8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Every byte accounted for.
    Clean,
    /// Only bytes that were never acknowledged as durable are damaged, all after the last valid
    /// record of the last segment: safe to cut.
    TornTail,
    /// Damage that cutting cannot fix without losing acknowledged data.
    Corrupt,
}

impl Verdict {
    /// `clean`, `torn_tail` or `corrupt`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::TornTail => "torn_tail",
            Verdict::Corrupt => "corrupt",
        }
    }
}

/// How one damage counts toward the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DamageClass {
    /// Unacknowledged bytes at the end of the log; safe to cut.
    Torn,
    /// Anything else.
    Corrupt,
}

/// What is wrong at a damaged place (FORMAT.md §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DamageKind {
    /// A record cut short by the end of the file.
    TruncatedRecord,
    /// Zero bytes where a record should start.
    ZeroFill,
    /// Bytes whose checksum fails: garbage, a torn write, or bit rot.
    Checksum,
    /// A record whose checksum holds but whose fields are invalid (for example a length over the
    /// format limit).
    Malformed,
    /// Valid records whose sequence numbers skip where they must be contiguous.
    SequenceGap,
    /// A valid record whose sequence number does not increase: reordered, duplicated or stale.
    SequenceRegression,
    /// A segment whose header is damaged or shorter than the segment preamble.
    BadSegmentHeader,
    /// A segment whose header names another log.
    ForeignSegment,
    /// A segment whose header number differs from its file name.
    MisnamedSegment,
    /// A segment number missing between two present ones.
    MissingSegment,
    /// The durable watermark says records were acknowledged that are not in the log.
    MissingAcknowledged,
    /// The oldest segments are missing: the log's recorded start is before its first record.
    MissingHead,
    /// A sealed segment's watermark slots are damaged or disagree with its records.
    BadWatermark,
    /// Many damaged places of one segment condensed into one entry, past the listing limits
    /// ([`DAMAGE_LISTED_PER_SEGMENT`], [`DAMAGE_LISTED_PER_LOG`]): [`Damage::places`] counts
    /// them, and the detail names their kinds.
    ManyPlaces,
}

/// Damaged places of one segment listed one by one; the segment's further places are condensed
/// into one [`DamageKind::ManyPlaces`] entry. A report's memory then stays bounded on a log
/// damaged every few records (a failing device, or a hostile hand), where one entry per place
/// once needed more memory than the log's own size.
pub const DAMAGE_LISTED_PER_SEGMENT: usize = 256;

/// Entries a report lists before the damage of each further segment is condensed into one
/// [`DamageKind::ManyPlaces`] entry (the damage of segment headers and missing segments, at most
/// a few per segment, is always listed).
pub const DAMAGE_LISTED_PER_LOG: usize = 4096;

impl DamageKind {
    /// Snake-case name used in reports and JSON.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DamageKind::TruncatedRecord => "truncated_record",
            DamageKind::ZeroFill => "zero_fill",
            DamageKind::Checksum => "checksum",
            DamageKind::Malformed => "malformed",
            DamageKind::SequenceGap => "sequence_gap",
            DamageKind::SequenceRegression => "sequence_regression",
            DamageKind::BadSegmentHeader => "bad_segment_header",
            DamageKind::ForeignSegment => "foreign_segment",
            DamageKind::MisnamedSegment => "misnamed_segment",
            DamageKind::MissingSegment => "missing_segment",
            DamageKind::MissingAcknowledged => "missing_acknowledged",
            DamageKind::MissingHead => "missing_head",
            DamageKind::BadWatermark => "bad_watermark",
            DamageKind::ManyPlaces => "many_places",
        }
    }

    /// Every kind a single place can have (not [`DamageKind::ManyPlaces`]), in a fixed order.
    pub(crate) const PLACES: [DamageKind; 13] = [
        DamageKind::TruncatedRecord,
        DamageKind::ZeroFill,
        DamageKind::Checksum,
        DamageKind::Malformed,
        DamageKind::SequenceGap,
        DamageKind::SequenceRegression,
        DamageKind::BadSegmentHeader,
        DamageKind::ForeignSegment,
        DamageKind::MisnamedSegment,
        DamageKind::MissingSegment,
        DamageKind::MissingAcknowledged,
        DamageKind::MissingHead,
        DamageKind::BadWatermark,
    ];

    /// This kind as one bit of a set of kinds (`u16`): its index in [`DamageKind::PLACES`];
    /// none for [`DamageKind::ManyPlaces`], which stands for places of the other kinds.
    pub(crate) fn bit(self) -> u16 {
        let i = Self::PLACES.iter().position(|&k| k == self);
        debug_assert!(i.is_some(), "a condensed entry is never condensed again");
        i.map_or(0, |i| 1 << i)
    }
}

/// One damaged place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// What is wrong.
    pub kind: DamageKind,
    /// Torn (safe to cut) or corrupt.
    pub class: DamageClass,
    /// Segment number (for a missing segment, the missing number).
    pub segment: u64,
    /// Byte offset in the segment file where the damage starts.
    pub offset: u64,
    /// Bytes affected.
    pub length: u64,
    /// Sequence number of the last valid record before the damage, if any.
    pub last_good_seq: Option<u64>,
    /// Valid records found after the damage, in the whole log: what cutting here would lose.
    pub records_after: u64,
    /// Damaged places this entry stands for: 1, or more for [`DamageKind::ManyPlaces`].
    pub places: u64,
    /// Valid records between the first and the last of those places (0 for one place); they
    /// are delivered and counted in `records_after`.
    pub records_within: u64,
    /// A sentence for people.
    pub detail: String,
}

/// Per-segment findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentReport {
    /// Segment number.
    pub segment: u64,
    /// File length in bytes.
    pub file_len: u64,
    /// End of the valid prefix: where a cut would go.
    pub valid_len: u64,
    /// Valid records.
    pub records: u64,
    /// First valid sequence number.
    pub first_seq: Option<u64>,
    /// Last valid sequence number.
    pub last_seq: Option<u64>,
    /// Highest sequence number the segment's watermark slots prove durable.
    pub durable_seq: Option<u64>,
    /// Whether a later segment exists (so this one is never written again).
    pub sealed: bool,
    /// Whether it was written by compaction.
    pub compacted: bool,
    /// The timestamps of its valid records; `None` if it holds none.
    pub times: Option<TimeRange>,
}

/// The writers' timestamps of a run of valid records, in nanoseconds since the Unix epoch as
/// each record carries them: the first and last in log order, and the extremes, which differ
/// from those when a writer's clock stepped back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    /// The first record's.
    pub first: u64,
    /// The last record's.
    pub last: u64,
    /// The earliest.
    pub min: u64,
    /// The latest.
    pub max: u64,
}

impl TimeRange {
    /// `range` extended by a record stamped `t` that follows it.
    #[must_use]
    pub(crate) fn then(range: Option<TimeRange>, t: u64) -> TimeRange {
        let at = TimeRange {
            first: t,
            last: t,
            min: t,
            max: t,
        };
        TimeRange::join(range, Some(at)).unwrap_or(at)
    }

    /// The records of `a` followed by those of `b`.
    #[must_use]
    pub(crate) fn join(a: Option<TimeRange>, b: Option<TimeRange>) -> Option<TimeRange> {
        match (a, b) {
            (Some(a), Some(b)) => Some(TimeRange {
                first: a.first,
                last: b.last,
                min: a.min.min(b.min),
                max: a.max.max(b.max),
            }),
            (a, b) => a.or(b),
        }
    }
}

/// A live writer's record in progress at the end of the log: not damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InProgress {
    /// Segment number.
    pub segment: u64,
    /// Offset where the incomplete bytes start.
    pub offset: u64,
    /// Incomplete bytes seen.
    pub length: u64,
}

/// The result of scanning a whole log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Valid records delivered, including any found after damage.
    pub records: u64,
    /// First valid sequence number.
    pub first_seq: Option<u64>,
    /// Last valid sequence number.
    pub last_seq: Option<u64>,
    /// Total bytes of all segment files.
    pub bytes: u64,
    /// Highest sequence number the log proves was acknowledged durable.
    pub durable_seq: Option<u64>,
    /// The log's identity, from the newest readable segment header.
    pub log_id: Option<u64>,
    /// Per-segment findings, ascending.
    pub segments: Vec<SegmentReport>,
    /// Every damage, in log order; past [`DAMAGE_LISTED_PER_SEGMENT`] places in a segment or
    /// [`DAMAGE_LISTED_PER_LOG`] entries, the rest of a segment's places are one entry.
    pub damage: Vec<Damage>,
    /// Another process held the writer lock during the scan.
    pub writer_active: bool,
    /// Incomplete bytes at the end while a writer was active (not damage).
    pub in_progress: Option<InProgress>,
    /// Names ending in `.wal` that are not segments (ignored, reported).
    pub stray_files: Vec<String>,
    /// The timestamps of the valid records delivered; `None` if there were none.
    pub times: Option<TimeRange>,
    /// Oldest segments left unread on purpose ([`crate::scan_log_from`],
    /// [`crate::scan_log_newest`]); 0 when the scan started at the log's first segment.
    pub segments_skipped: u64,
}

impl Report {
    /// The verdict of FORMAT.md §8: the worst class among the damage.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        if self.damage.iter().any(|d| d.class == DamageClass::Corrupt) {
            Verdict::Corrupt
        } else if self.damage.is_empty() {
            Verdict::Clean
        } else {
            Verdict::TornTail
        }
    }

    /// Damaged places, counting each place a condensed entry stands for.
    #[must_use]
    pub fn damaged_places(&self) -> u64 {
        self.damage.iter().map(|d| d.places).sum()
    }

    /// A one-line summary of the first damage, for messages.
    #[must_use]
    pub fn first_damage_summary(&self) -> String {
        let Some(d) = self
            .damage
            .iter()
            .find(|d| d.class == DamageClass::Corrupt)
            .or(self.damage.first())
        else {
            return "no damage".into();
        };
        format!(
            "{} in segment {} at offset {} ({} bytes): {}",
            d.kind.as_str(),
            crate::segment::segment_name(d.segment),
            d.offset,
            d.length,
            d.detail
        )
    }
}

#[cfg(test)]
mod tests {
    use super::DamageKind;

    #[test]
    fn every_kind_of_place_has_a_bit_of_its_own() {
        // A new kind must be sorted here (the match stops compiling), and if it is a kind of
        // place it must join `PLACES`, or a condensed entry could not name it.
        let is_place = |k: DamageKind| match k {
            DamageKind::ManyPlaces => false,
            DamageKind::TruncatedRecord
            | DamageKind::ZeroFill
            | DamageKind::Checksum
            | DamageKind::Malformed
            | DamageKind::SequenceGap
            | DamageKind::SequenceRegression
            | DamageKind::BadSegmentHeader
            | DamageKind::ForeignSegment
            | DamageKind::MisnamedSegment
            | DamageKind::MissingSegment
            | DamageKind::MissingAcknowledged
            | DamageKind::MissingHead
            | DamageKind::BadWatermark => true,
        };
        let places = DamageKind::PLACES.len();
        let mut all = DamageKind::PLACES.to_vec();
        all.push(DamageKind::ManyPlaces);
        assert_eq!(all.iter().filter(|&&k| is_place(k)).count(), places);
        assert_eq!(places, 13, "as many kinds of place as the match lists");
        let mut seen = 0u16;
        for k in DamageKind::PLACES {
            assert!(is_place(k), "{k:?}");
            assert_eq!(k.bit().count_ones(), 1, "{k:?}");
            assert_eq!(seen & k.bit(), 0, "{k:?} shares a bit");
            seen |= k.bit();
        }
        assert!(!is_place(DamageKind::ManyPlaces));
    }
}
