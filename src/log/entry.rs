//! What goes into and comes out of the writer: the [`Entry`] to append, the [`Appended`]
//! position it was given, and the [`OpenReport`] of what opening found and did.

use crate::format::RecordKind;
use crate::repair::TailCut;
use crate::report::Location;

/// One record to append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Data or tombstone.
    pub kind: RecordKind,
    /// Optional key (required for a tombstone).
    pub key: Option<&'a [u8]>,
    /// Payload (empty for a tombstone).
    pub payload: &'a [u8],
    /// Explicit timestamp in nanoseconds since the epoch; `None` takes the wall clock.
    pub timestamp_nanos: Option<u64>,
}

impl<'a> Entry<'a> {
    /// A keyless data record.
    #[must_use]
    pub fn data(payload: &'a [u8]) -> Entry<'a> {
        Entry {
            kind: RecordKind::Data,
            key: None,
            payload,
            timestamp_nanos: None,
        }
    }

    /// A keyed data record.
    #[must_use]
    pub fn keyed(key: &'a [u8], payload: &'a [u8]) -> Entry<'a> {
        Entry {
            kind: RecordKind::Data,
            key: Some(key),
            payload,
            timestamp_nanos: None,
        }
    }

    /// A tombstone deleting `key` from the key/value view.
    #[must_use]
    pub fn tombstone(key: &'a [u8]) -> Entry<'a> {
        Entry {
            kind: RecordKind::Tombstone,
            key: Some(key),
            payload: &[],
            timestamp_nanos: None,
        }
    }
}

/// What an append assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The record's sequence number.
    pub seq: u64,
    /// Where it was written.
    pub location: Location,
}

/// What opening the log found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The log did not exist and was created.
    pub created: bool,
    /// A torn tail left by a crashed writer was cut (and saved to a side file).
    pub cut: Option<TailCut>,
    /// Temporary files of an interrupted segment creation that were removed.
    pub removed_temps: Vec<String>,
    /// The file system cannot fsync directories: new segments and renames are less durable.
    pub durability_degraded: bool,
    /// An interrupted compaction that opening finished or rolled back.
    pub compaction: Option<&'static str>,
    /// Bytes of the last segment that opening read and checked: only what follows the durable
    /// end its watermark slot records, or the whole segment when there is none (format
    /// version 1, a crash before any sync) or the tail is damaged.
    pub tail_scanned: u64,
}
