//! The on-disk format: constants, the segment header, the watermark slots and the record frame.
//!
//! This module is the code side of `docs/FORMAT.md`; every constant here names the section of the
//! spec that defines it, and the spec names these constants back. It is pure: it encodes into and
//! decodes from byte slices and never touches a file. Decoding never trusts a length before it
//! has been checked against the limits and against the bytes that are actually there.

use crate::error::{Error, ErrorKind};

/// Segment magic (FORMAT.md §2.1): `\x89 W A L \r \n \x1a \n`.
///
/// The high-bit first byte catches 7-bit transfers, the CR LF pair catches line-ending
/// conversion in either direction, `\x1a` stops DOS `type`, and the final LF catches LF to CRLF
/// conversion; a truncated file cannot carry all eight bytes.
pub const SEGMENT_MAGIC: [u8; 8] = [0x89, b'W', b'A', b'L', b'\r', b'\n', 0x1a, b'\n'];

/// The format version this code writes (FORMAT.md §2.1, §10). Readers accept every version from
/// 1 up to this one.
pub const FORMAT_VERSION: u16 = 2;

/// The first version whose watermark slots record `durable_end` (FORMAT.md §2.2, §10).
pub const FORMAT_VERSION_DURABLE_END: u16 = 2;

/// Size of the immutable segment header in bytes (FORMAT.md §2.1).
pub const SEGMENT_HEADER_SIZE: usize = 64;

/// Offsets of the two durable-watermark slots (FORMAT.md §2.2). Each lives in its own 4 KiB
/// page, apart from the immutable header, so a torn rewrite of one slot cannot damage the header
/// or the other slot.
pub const WATERMARK_SLOT_OFFSETS: [u64; 2] = [4096, 8192];

/// Size of one watermark slot in bytes (FORMAT.md §2.2).
pub const WATERMARK_SLOT_SIZE: usize = 32;

/// Offset of the first record in every segment (FORMAT.md §2): three 4 KiB pages precede it.
pub const SEGMENT_DATA_START: u64 = 12288;

/// Size of the fixed record header in bytes (FORMAT.md §3).
pub const RECORD_HEADER_SIZE: usize = 32;

/// Hard ceiling of `key_len + payload_len` for any record (FORMAT.md §4). The configurable limit
/// ([`crate::Options::record_size_max`]) may never exceed it; it is far below what the `u32`
/// length field can hold so that offset arithmetic cannot overflow on 32-bit targets.
pub const RECORD_SIZE_LIMIT: u32 = 1 << 30;

/// Default record size limit: 16 MiB of key plus payload (FORMAT.md §4).
pub const RECORD_SIZE_MAX_DEFAULT: u32 = 16 << 20;

/// Hard ceiling of a key's length, fixed by its `u16` length field (FORMAT.md §4).
pub const KEY_SIZE_LIMIT: u16 = u16::MAX;

/// Default key size limit (FORMAT.md §4).
pub const KEY_SIZE_MAX_DEFAULT: u16 = 4096;

/// Hard ceiling of the configurable segment rotation size (FORMAT.md §4).
pub const SEGMENT_SIZE_LIMIT: u64 = 1 << 30;

/// Smallest allowed segment rotation size (FORMAT.md §4).
pub const SEGMENT_SIZE_MIN: u64 = 16 << 10;

/// Default segment rotation size: 64 MiB (FORMAT.md §4).
pub const SEGMENT_SIZE_DEFAULT: u64 = 64 << 20;

/// Largest segment file any reader accepts (FORMAT.md §4): a full segment plus one maximal record.
pub const SEGMENT_FILE_LIMIT: u64 =
    SEGMENT_SIZE_LIMIT + SEGMENT_DATA_START + RECORD_HEADER_SIZE as u64 + RECORD_SIZE_LIMIT as u64;

/// Segment flag: the segment was written by compaction, so sequence numbers inside it may have
/// gaps (FORMAT.md §2.1).
pub const SEGMENT_FLAG_COMPACTED: u32 = 1 << 0;

/// Segment flag: the space after the last record is zero-filled ahead of time, so zeros there
/// are the normal end of data, not a torn tail (FORMAT.md §2.1).
pub const SEGMENT_FLAG_PREALLOCATED: u32 = 1 << 1;

/// Every flag bit this version understands; a header with any other bit set is refused.
pub const SEGMENT_FLAGS_KNOWN: u32 = SEGMENT_FLAG_COMPACTED | SEGMENT_FLAG_PREALLOCATED;

/// Record flag: the record carries a key (FORMAT.md §3), so an empty key differs from no key.
pub const RECORD_FLAG_HAS_KEY: u8 = 1 << 0;

/// The sequence numbers a record or segment header may carry (FORMAT.md §3): 0 is never a
/// sequence number and `u64::MAX` is reserved, so "the next one" never overflows.
pub const SEQ_RANGE: std::ops::RangeInclusive<u64> = 1..=u64::MAX - 1;

/// LevelDB's CRC mask constant (FORMAT.md §5).
pub const CRC_MASK_DELTA: u32 = 0xa282_ead8;

const _: () = assert!(SEGMENT_HEADER_SIZE == 8 + 2 + 2 + 4 + 8 + 8 + 8 + 8 + 8 + 4 + 4);
const _: () = assert!(WATERMARK_SLOT_SIZE == 8 + 8 + 8 + 4 + 4);
const _: () = assert!(RECORD_HEADER_SIZE == 4 + 4 + 4 + 2 + 1 + 1 + 8 + 8);
const _: () = assert!(WATERMARK_SLOT_OFFSETS[0] >= SEGMENT_HEADER_SIZE as u64);
const _: () = assert!(WATERMARK_SLOT_OFFSETS[1] + WATERMARK_SLOT_SIZE as u64 <= SEGMENT_DATA_START);
const _: () = assert!(RECORD_SIZE_MAX_DEFAULT <= RECORD_SIZE_LIMIT);
const _: () = assert!(SEGMENT_SIZE_MIN > SEGMENT_DATA_START);
const _: () = assert!(SEGMENT_SIZE_DEFAULT <= SEGMENT_SIZE_LIMIT);

/// Masks a CRC so that a CRC stored inside the data it covers, or over all-zero input, is not a
/// fixed point (FORMAT.md §5).
#[must_use]
pub fn crc_mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA)
}

/// Inverse of [`crc_mask`].
#[must_use]
pub fn crc_unmask(masked: u32) -> u32 {
    masked.wrapping_sub(CRC_MASK_DELTA).rotate_left(15)
}

/// The 16 bytes that bind a record or slot to one segment of one log (FORMAT.md §5): they are
/// fed to the CRC first, so a record copied into another segment or log fails its check.
#[must_use]
pub fn binding(log_id: u64, segment: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&log_id.to_le_bytes());
    out[8..].copy_from_slice(&segment.to_le_bytes());
    out
}

/// What a record means to the key/value view (FORMAT.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// An ordinary record: a payload, with or without a key.
    Data,
    /// Deletes its key from the key/value view; always keyed, never carries a payload.
    Tombstone,
}

impl RecordKind {
    /// The on-disk type byte.
    #[must_use]
    pub fn to_byte(self) -> u8 {
        match self {
            RecordKind::Data => 1,
            RecordKind::Tombstone => 2,
        }
    }

    /// Parses the on-disk type byte; 0 and unknown values are not record kinds.
    #[must_use]
    pub fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Data),
            2 => Some(RecordKind::Tombstone),
            _ => None,
        }
    }

    /// Lower-case name used in reports and exports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Data => "data",
            RecordKind::Tombstone => "tombstone",
        }
    }
}

/// The immutable header at the start of every segment (FORMAT.md §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version the segment was written with.
    pub version: u16,
    /// `SEGMENT_FLAG_*` bits.
    pub flags: u32,
    /// Random identity shared by every segment of one log.
    pub log_id: u64,
    /// The segment's number; equals the number in its file name.
    pub segment: u64,
    /// Sequence number of the segment's first record (a lower bound in compacted segments).
    pub first_seq: u64,
    /// First sequence number of the whole log when this segment was written.
    pub log_first_seq: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_nanos: u64,
}

/// Why a segment header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderFault {
    /// Fewer than [`SEGMENT_HEADER_SIZE`] bytes.
    Short,
    /// The magic bytes differ: not a walctl segment, or mangled in transfer.
    Magic,
    /// The header checksum does not match.
    Checksum,
    /// A newer format version than this code reads.
    Version(u16),
    /// Flag bits this version does not know.
    Flags(u32),
}

impl SegmentHeader {
    /// Encodes the header into its 64 bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_SIZE] {
        assert!(
            self.flags & !SEGMENT_FLAGS_KNOWN == 0,
            "unknown segment flags {:#x}",
            self.flags
        );
        assert!(
            self.first_seq >= 1 && self.log_first_seq >= 1,
            "sequence numbers start at 1"
        );
        let mut b = [0u8; SEGMENT_HEADER_SIZE];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&(SEGMENT_HEADER_SIZE as u16).to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.log_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.segment.to_le_bytes());
        b[32..40].copy_from_slice(&self.first_seq.to_le_bytes());
        b[40..48].copy_from_slice(&self.log_first_seq.to_le_bytes());
        b[48..56].copy_from_slice(&self.created_nanos.to_le_bytes());
        // Bytes 56..60 are reserved and stay zero.
        let crc = crc_mask(crc32c::crc32c(&b[..60]));
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header from the first bytes of a segment.
    ///
    /// # Errors
    ///
    /// Returns the [`HeaderFault`] that made the bytes unacceptable.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderFault> {
        if bytes.len() < SEGMENT_HEADER_SIZE {
            return Err(HeaderFault::Short);
        }
        let b = &bytes[..SEGMENT_HEADER_SIZE];
        if b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderFault::Magic);
        }
        if crc_mask(crc32c::crc32c(&b[..60])) != le_u32(b, 60) {
            return Err(HeaderFault::Checksum);
        }
        let version = le_u16(b, 8);
        if version == 0 || version > FORMAT_VERSION || le_u16(b, 10) as usize != SEGMENT_HEADER_SIZE
        {
            return Err(HeaderFault::Version(version));
        }
        let flags = le_u32(b, 12);
        if flags & !SEGMENT_FLAGS_KNOWN != 0 {
            return Err(HeaderFault::Flags(flags));
        }
        let header = SegmentHeader {
            version,
            flags,
            log_id: le_u64(b, 16),
            segment: le_u64(b, 24),
            first_seq: le_u64(b, 32),
            log_first_seq: le_u64(b, 40),
            created_nanos: le_u64(b, 48),
        };
        if !SEQ_RANGE.contains(&header.first_seq) || !SEQ_RANGE.contains(&header.log_first_seq) {
            return Err(HeaderFault::Checksum);
        }
        Ok(header)
    }

    /// Whether sequence numbers inside this segment may have gaps.
    #[must_use]
    pub fn is_compacted(&self) -> bool {
        self.flags & SEGMENT_FLAG_COMPACTED != 0
    }

    /// Whether zeros after the last record are the normal end of data.
    #[must_use]
    pub fn is_preallocated(&self) -> bool {
        self.flags & SEGMENT_FLAG_PREALLOCATED != 0
    }
}

/// One durable-watermark slot (FORMAT.md §2.2): written only after an fdatasync that covered
/// every record up to `durable_seq` returned success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatermarkSlot {
    /// Highest sequence number known to be on stable storage.
    pub durable_seq: u64,
    /// Write counter; of two valid slots the higher generation is the newer.
    pub generation: u64,
    /// Version 2: the offset just past the segment's record `durable_seq` (12288 when the
    /// segment holds none of the durable records), so a writer's open resumes there instead of
    /// scanning the segment. Version 1: zero (the bytes were reserved); never trusted then.
    pub durable_end: u64,
}

impl WatermarkSlot {
    /// Encodes the slot, bound to its segment.
    #[must_use]
    pub fn encode(&self, log_id: u64, segment: u64) -> [u8; WATERMARK_SLOT_SIZE] {
        let mut b = [0u8; WATERMARK_SLOT_SIZE];
        b[0..8].copy_from_slice(&self.durable_seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..24].copy_from_slice(&self.durable_end.to_le_bytes());
        // Bytes 24..28 are reserved and stay zero.
        let crc = slot_crc(log_id, segment, &b[..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a slot; `None` when it was never written or does not check out. A missing slot is
    /// missing evidence, never damage: recovery then proves less, it does not lose data.
    #[must_use]
    pub fn decode(bytes: &[u8], log_id: u64, segment: u64) -> Option<WatermarkSlot> {
        let b = bytes.get(..WATERMARK_SLOT_SIZE)?;
        if slot_crc(log_id, segment, &b[..28]) != le_u32(b, 28) {
            return None;
        }
        Some(WatermarkSlot {
            durable_seq: le_u64(b, 0),
            generation: le_u64(b, 8),
            durable_end: le_u64(b, 16),
        })
    }
}

fn slot_crc(log_id: u64, segment: u64, body: &[u8]) -> u32 {
    let seed = crc32c::crc32c(&binding(log_id, segment));
    crc_mask(crc32c::crc32c_append(seed, body))
}

/// The fields of a record other than its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// Sequence number.
    pub seq: u64,
    /// Wall-clock time of the append, nanoseconds since the Unix epoch.
    pub timestamp_nanos: u64,
    /// Data or tombstone.
    pub kind: RecordKind,
}

/// A record decoded in place: key and payload borrow the segment's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Sequence number, time and kind.
    pub meta: RecordMeta,
    /// The key, if the record has one.
    pub key: Option<&'a [u8]>,
    /// The payload (empty for tombstones).
    pub payload: &'a [u8],
    /// The stored, masked record checksum.
    pub crc: u32,
    /// Total encoded length: header, key and payload.
    pub length: u32,
}

/// Number of bytes a record with this key and payload occupies on disk.
#[must_use]
pub fn encoded_len(key_len: usize, payload_len: usize) -> usize {
    RECORD_HEADER_SIZE + key_len + payload_len
}

/// Appends one encoded record to `out` (FORMAT.md §3).
///
/// The caller has checked the limits; this function asserts them because a violation here is a
/// bug in the writer, not bad input.
pub fn encode_record(
    out: &mut Vec<u8>,
    bind: &[u8; 16],
    meta: RecordMeta,
    key: Option<&[u8]>,
    payload: &[u8],
) {
    encode_record_seeded(out, binding_seed(bind), meta, key, payload);
}

/// [`encode_record`] with the binding's CRC state precomputed by [`binding_seed`], as writers
/// do once per segment: for short records the checksum calls, not the bytes, are the cost.
pub fn encode_record_seeded(
    out: &mut Vec<u8>,
    seed: u32,
    meta: RecordMeta,
    key: Option<&[u8]>,
    payload: &[u8],
) {
    let key_bytes = key.unwrap_or_default();
    assert!(
        key_bytes.len() <= usize::from(KEY_SIZE_LIMIT),
        "key exceeds the format limit"
    );
    assert!(
        key_bytes.len() + payload.len() <= RECORD_SIZE_LIMIT as usize,
        "record too large"
    );
    assert!(
        SEQ_RANGE.contains(&meta.seq),
        "sequence number {} out of range",
        meta.seq
    );
    if meta.kind == RecordKind::Tombstone {
        assert!(
            key.is_some() && payload.is_empty(),
            "a tombstone has a key and no payload"
        );
    }
    // Built in an 8-byte-aligned local first: the checksum of its 24 field bytes then runs on
    // whole words, where `out` would give it a misaligned start and tail.
    let mut header = AlignedHeader([0; RECORD_HEADER_SIZE]);
    let h = &mut header.0;
    h[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[12..14].copy_from_slice(&(key_bytes.len() as u16).to_le_bytes());
    h[14] = meta.kind.to_byte();
    h[15] = if key.is_some() {
        RECORD_FLAG_HAS_KEY
    } else {
        0
    };
    h[16..24].copy_from_slice(&meta.seq.to_le_bytes());
    h[24..32].copy_from_slice(&meta.timestamp_nanos.to_le_bytes());
    let header_state = crc32c::crc32c_append(seed, &h[8..32]);
    let mut body_state = header_state;
    if !key_bytes.is_empty() {
        body_state = crc32c::crc32c_append(body_state, key_bytes);
    }
    body_state = crc32c::crc32c_append(body_state, payload);
    h[0..4].copy_from_slice(&crc_mask(body_state).to_le_bytes());
    h[4..8].copy_from_slice(&crc_mask(header_state).to_le_bytes());
    let start = out.len();
    out.reserve(RECORD_HEADER_SIZE + key_bytes.len() + payload.len());
    out.extend_from_slice(h);
    out.extend_from_slice(key_bytes);
    out.extend_from_slice(payload);
    debug_assert!(matches!(
        decode_record_seeded(&out[start..], seed, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT),
        Decoded::Record(r) if r.meta == meta && r.payload == payload && r.key == key
    ));
}

/// A record header on an 8-byte boundary (see `encode_record_seeded`).
#[repr(align(8))]
struct AlignedHeader([u8; RECORD_HEADER_SIZE]);

/// Why the bytes at some offset are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// The bytes end before the record does: a header or body cut short.
    Truncated,
    /// The header is all zeros: never-written or zero-filled space.
    Zeros,
    /// The header checksum fails: garbage, or damage to the header.
    HeaderChecksum,
    /// The header checks out but its lengths exceed the limits or its fields are malformed.
    Malformed,
    /// The header checks out but the record checksum over the body fails.
    BodyChecksum,
}

/// Result of decoding at one offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A complete, checksummed record.
    Record(RecordRef<'a>),
    /// Not a record, and why.
    Invalid(Invalid),
}

/// Decodes the record at the start of `bytes`, bound to the segment described by `bind`.
///
/// Lengths are checked against `record_size_max`, `key_size_max` and `bytes.len()` before any
/// slice is taken; nothing is allocated.
#[must_use]
pub fn decode_record<'a>(
    bytes: &'a [u8],
    bind: &[u8; 16],
    record_size_max: u32,
    key_size_max: u16,
) -> Decoded<'a> {
    decode_record_seeded(bytes, binding_seed(bind), record_size_max, key_size_max)
}

/// The CRC32C state after the binding: computed once per segment by scans.
#[must_use]
pub fn binding_seed(bind: &[u8; 16]) -> u32 {
    crc32c::crc32c(bind)
}

/// Offset of the first non-zero byte of `bytes`, if any.
///
/// Zero checks run over whole preambles and preallocated tails (up to a segment), so they go a
/// word at a time: a byte-wise loop is several times slower and, under the fuzzer's comparison
/// tracing, was half of every run.
#[must_use]
pub fn first_nonzero(bytes: &[u8]) -> Option<usize> {
    // OR each 64-byte block together and test once per block; the byte-wise search runs only
    // inside the first block that is not all zero.
    let mut at = 0;
    for block in bytes.chunks_exact(64) {
        let folded = block.chunks_exact(8).fold(0, |acc, w| {
            acc | u64::from_ne_bytes(w.try_into().expect("chunks of 8"))
        });
        if folded != 0 {
            break;
        }
        at += 64;
    }
    bytes[at..].iter().position(|&b| b != 0).map(|i| at + i)
}

/// Whether every byte of `bytes` is zero (see [`first_nonzero`]).
#[must_use]
pub fn is_zero(bytes: &[u8]) -> bool {
    first_nonzero(bytes).is_none()
}

/// [`decode_record`] with the binding's CRC state precomputed by [`binding_seed`].
#[must_use]
pub fn decode_record_seeded(
    bytes: &[u8],
    seed: u32,
    record_size_max: u32,
    key_size_max: u16,
) -> Decoded<'_> {
    let Some(h) = bytes.get(..RECORD_HEADER_SIZE) else {
        return Decoded::Invalid(if is_zero(bytes) {
            Invalid::Zeros
        } else {
            Invalid::Truncated
        });
    };
    let header_state = crc32c::crc32c_append(seed, &h[8..32]);
    if crc_mask(header_state) != le_u32(h, 4) {
        // Only now is it worth telling zeros from garbage: a valid header is never all zero.
        if is_zero(h) {
            return Decoded::Invalid(Invalid::Zeros);
        }
        return Decoded::Invalid(Invalid::HeaderChecksum);
    }
    let payload_len = le_u32(h, 8);
    let key_len = le_u16(h, 12);
    let kind = RecordKind::from_byte(h[14]);
    let flags = h[15];
    let has_key = flags & RECORD_FLAG_HAS_KEY != 0;
    let body_len = u64::from(payload_len) + u64::from(key_len);
    let malformed = kind.is_none()
        || flags & !RECORD_FLAG_HAS_KEY != 0
        || (!has_key && key_len != 0)
        || key_len > key_size_max
        || body_len > u64::from(record_size_max)
        || (kind == Some(RecordKind::Tombstone) && (!has_key || payload_len != 0));
    if malformed {
        return Decoded::Invalid(Invalid::Malformed);
    }
    let total = RECORD_HEADER_SIZE as u64 + body_len;
    if total > bytes.len() as u64 {
        return Decoded::Invalid(Invalid::Truncated);
    }
    let total = total as usize;
    let key_end = RECORD_HEADER_SIZE + usize::from(key_len);
    let body_state = crc32c::crc32c_append(header_state, &bytes[RECORD_HEADER_SIZE..total]);
    let crc = le_u32(h, 0);
    if crc_mask(body_state) != crc {
        return Decoded::Invalid(Invalid::BodyChecksum);
    }
    let seq = le_u64(h, 16);
    if !SEQ_RANGE.contains(&seq) {
        return Decoded::Invalid(Invalid::Malformed);
    }
    Decoded::Record(RecordRef {
        meta: RecordMeta {
            seq,
            timestamp_nanos: le_u64(h, 24),
            kind: kind.expect("checked above"),
        },
        key: has_key.then(|| &bytes[RECORD_HEADER_SIZE..key_end]),
        payload: &bytes[key_end..total],
        crc,
        length: total as u32,
    })
}

/// Checks configured limits against the format's hard ceilings.
///
/// # Errors
///
/// [`ErrorKind::InvalidOptions`] naming the offending setting.
pub fn check_limits(
    record_size_max: u32,
    key_size_max: u16,
    segment_size: u64,
) -> Result<(), Error> {
    if record_size_max == 0 || record_size_max > RECORD_SIZE_LIMIT {
        return Err(Error::new(ErrorKind::InvalidOptions(format!(
            "record_size_max must be between 1 and {RECORD_SIZE_LIMIT} bytes, got {record_size_max}"
        ))));
    }
    if key_size_max == 0 {
        return Err(Error::new(ErrorKind::InvalidOptions(
            "key_size_max must be at least 1".into(),
        )));
    }
    if !(SEGMENT_SIZE_MIN..=SEGMENT_SIZE_LIMIT).contains(&segment_size) {
        return Err(Error::new(ErrorKind::InvalidOptions(format!(
            "segment_size must be between {SEGMENT_SIZE_MIN} and {SEGMENT_SIZE_LIMIT} bytes, got {segment_size}"
        ))));
    }
    Ok(())
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8-byte slice"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIND: [u8; 16] = [7; 16];

    #[test]
    fn first_nonzero_finds_a_single_byte_at_every_offset_and_length() {
        for len in 0..150 {
            assert_eq!(
                first_nonzero(&vec![0u8; len]),
                None,
                "all zero, {len} bytes"
            );
            for at in 0..len {
                let mut bytes = vec![0u8; len];
                bytes[at] = 0x80;
                bytes[len - 1] |= 1;
                assert_eq!(first_nonzero(&bytes), Some(at), "{len} bytes, set at {at}");
                assert!(!is_zero(&bytes));
            }
        }
    }

    fn meta(seq: u64) -> RecordMeta {
        RecordMeta {
            seq,
            timestamp_nanos: 1_700_000_000_000_000_000,
            kind: RecordKind::Data,
        }
    }

    fn decode(bytes: &[u8]) -> Decoded<'_> {
        decode_record(bytes, &BIND, RECORD_SIZE_MAX_DEFAULT, KEY_SIZE_MAX_DEFAULT)
    }

    #[test]
    fn crc32c_check_values_match_the_spec() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc_mask(0), 0xa282_ead8);
        for crc in [0, 1, 0xdead_beef, u32::MAX] {
            assert_eq!(crc_unmask(crc_mask(crc)), crc);
        }
    }

    #[test]
    fn record_round_trips_at_every_small_length() {
        for len in (0..=4097).chain([65_535, 65_536]) {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut out = Vec::new();
            encode_record(&mut out, &BIND, meta(9), Some(b"k"), &payload);
            assert_eq!(out.len(), encoded_len(1, len));
            match decode(&out) {
                Decoded::Record(r) => {
                    assert_eq!(
                        (r.payload, r.key, r.meta),
                        (&payload[..], Some(&b"k"[..]), meta(9))
                    );
                }
                other => panic!("length {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn zeroed_header_is_not_a_record() {
        assert_eq!(decode(&[0u8; 64]), Decoded::Invalid(Invalid::Zeros));
        assert_eq!(decode(&[0u8; 5]), Decoded::Invalid(Invalid::Zeros));
        assert_eq!(decode(&[]), Decoded::Invalid(Invalid::Zeros));
    }

    #[test]
    fn record_bound_to_another_segment_fails() {
        let mut out = Vec::new();
        encode_record(&mut out, &BIND, meta(1), None, b"x");
        let other = binding(1, 2);
        assert_eq!(
            decode_record(&out, &other, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT),
            Decoded::Invalid(Invalid::HeaderChecksum)
        );
    }

    #[test]
    fn record_over_the_limit_is_malformed_even_with_a_valid_header() {
        let mut out = Vec::new();
        encode_record(&mut out, &BIND, meta(1), None, &[1u8; 100]);
        let d = decode_record(&out, &BIND, 99, KEY_SIZE_MAX_DEFAULT);
        assert_eq!(d, Decoded::Invalid(Invalid::Malformed));
    }

    #[test]
    fn hostile_length_claiming_past_the_end_is_truncated() {
        let mut out = Vec::new();
        encode_record(&mut out, &BIND, meta(1), None, &[1u8; 100]);
        assert_eq!(
            decode(&out[..out.len() - 1]),
            Decoded::Invalid(Invalid::Truncated)
        );
        assert_eq!(decode(&out[..20]), Decoded::Invalid(Invalid::Truncated));
    }

    #[test]
    fn every_bit_flip_in_a_record_is_detected() {
        let mut out = Vec::new();
        encode_record(&mut out, &BIND, meta(3), Some(b"key"), b"payload bytes");
        for bit in 0..out.len() * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(decode(&bad), Decoded::Invalid(_)),
                "bit {bit} undetected"
            );
        }
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SegmentHeader {
            version: FORMAT_VERSION,
            flags: SEGMENT_FLAG_COMPACTED,
            log_id: 0x0123_4567_89ab_cdef,
            segment: 42,
            first_seq: 1000,
            log_first_seq: 1,
            created_nanos: 5,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        assert_eq!(SegmentHeader::decode(&b[..63]), Err(HeaderFault::Short));
        let mut crlf = b;
        crlf[4] = b'\n';
        assert_eq!(SegmentHeader::decode(&crlf), Err(HeaderFault::Magic));
        let mut flipped = b;
        flipped[30] ^= 4;
        assert_eq!(SegmentHeader::decode(&flipped), Err(HeaderFault::Checksum));
    }

    #[test]
    fn watermark_slot_never_validates_when_zero_or_foreign() {
        assert_eq!(WatermarkSlot::decode(&[0u8; 32], 1, 1), None);
        let s = WatermarkSlot {
            durable_seq: 77,
            generation: 3,
            durable_end: 20_000,
        };
        let b = s.encode(1, 1);
        assert_eq!(WatermarkSlot::decode(&b, 1, 1), Some(s));
        assert_eq!(WatermarkSlot::decode(&b, 1, 2), None);
    }
}
