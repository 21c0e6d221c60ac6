//! The on-disk format: constants, the segment header, the watermark slots and the record frame.
//!
//! This module is the code side of `docs/FORMAT.md`; every constant here names the section of the
//! spec that defines it, and the spec names these constants back. It is pure: it encodes into and
//! decodes from byte slices and never touches a file. Decoding never trusts a length before it
//! has been checked against the limits and against the bytes that are actually there.

mod record;
mod seal;
mod segment;

pub use record::*;
pub(crate) use seal::{encode_unsealed, seal_records};
pub use segment::*;

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

    #[test]
    fn first_nonzero_sees_words_that_cancel_each_other_out() {
        // The words of a block are folded together; a fold that lets two non-zero words cancel
        // (xor of equal words, a sum that wraps to zero) would call damage zeros.
        let pairs: [(u64, u64); 3] = [(u64::MAX, u64::MAX), (1, u64::MAX), (0x8000, 0x8000)];
        for (a, b) in pairs {
            for (i, j) in [(0, 1), (3, 7), (0, 7)] {
                let mut bytes = vec![0u8; 192];
                bytes[64 + 8 * i..64 + 8 * i + 8].copy_from_slice(&a.to_ne_bytes());
                bytes[64 + 8 * j..64 + 8 * j + 8].copy_from_slice(&b.to_ne_bytes());
                let expected = bytes.iter().position(|&x| x != 0);
                assert_eq!(
                    first_nonzero(&bytes),
                    expected,
                    "{a:#x} at {i}, {b:#x} at {j}"
                );
            }
        }
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
}
