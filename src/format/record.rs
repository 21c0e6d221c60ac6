//! The record frame (FORMAT.md §3, §5): encoding a record with its 32-byte header, and decoding
//! one in place from untrusted bytes, checking every length against the limits and the bytes
//! actually there before it is used.

use super::*;
use crate::error::{Error, ErrorKind};

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
    let start = out.len();
    let mut header = header_fields(meta, key, payload);
    let (body_crc, header_crc) = checksums(seed, &header.0[8..], key.unwrap_or_default(), payload);
    header.0[0..4].copy_from_slice(&body_crc.to_le_bytes());
    header.0[4..8].copy_from_slice(&header_crc.to_le_bytes());
    push_record(out, &header, key, payload);
    debug_assert!(matches!(
        decode_record_seeded(&out[start..], seed, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT),
        Decoded::Record(r) if r.meta == meta && r.payload == payload && r.key == key
    ));
}

/// The header of a record, checksums still zero, after asserting the format's limits: the
/// caller has checked them, so a violation here is a bug in the writer, not bad input.
pub(super) fn header_fields(meta: RecordMeta, key: Option<&[u8]>, payload: &[u8]) -> AlignedHeader {
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
    // Built in an 8-byte-aligned local: the checksum of its 24 field bytes then runs on whole
    // words, where the output buffer would give it a misaligned start and tail.
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
    header
}

/// The masked record and header checksums (FORMAT.md §3) of a record whose header bytes 8..32
/// are `fields` and whose body is `key ‖ payload`.
pub(super) fn checksums(seed: u32, fields: &[u8], key: &[u8], payload: &[u8]) -> (u32, u32) {
    let header_state = crc32c::crc32c_append(seed, fields);
    let mut body_state = header_state;
    for part in [key, payload] {
        if !part.is_empty() {
            body_state = crc32c::crc32c_append(body_state, part);
        }
    }
    (crc_mask(body_state), crc_mask(header_state))
}

pub(super) fn push_record(
    out: &mut Vec<u8>,
    header: &AlignedHeader,
    key: Option<&[u8]>,
    payload: &[u8],
) {
    let key_bytes = key.unwrap_or_default();
    out.reserve(RECORD_HEADER_SIZE + key_bytes.len() + payload.len());
    out.extend_from_slice(&header.0);
    out.extend_from_slice(key_bytes);
    out.extend_from_slice(payload);
}

/// A record header on an 8-byte boundary (see `encode_record_seeded`).
#[repr(align(8))]
pub(super) struct AlignedHeader(pub(super) [u8; RECORD_HEADER_SIZE]);

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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::format) const BIND: [u8; 16] = [7; 16];

    pub(in crate::format) fn meta(seq: u64) -> RecordMeta {
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

    /// A record with any field values, both checksums correct: what only a buggy or hostile
    /// writer produces, so only the field checks can refuse it.
    fn forged(kind: u8, flags: u8, seq: u64, key_len: u16, body: &[u8]) -> Vec<u8> {
        let mut h = [0u8; RECORD_HEADER_SIZE];
        let payload_len = body.len() - usize::from(key_len);
        h[8..12].copy_from_slice(&(payload_len as u32).to_le_bytes());
        h[12..14].copy_from_slice(&key_len.to_le_bytes());
        h[14] = kind;
        h[15] = flags;
        h[16..24].copy_from_slice(&seq.to_le_bytes());
        let header_state = crc32c::crc32c_append(binding_seed(&BIND), &h[8..32]);
        let body_state = crc32c::crc32c_append(header_state, body);
        h[0..4].copy_from_slice(&crc_mask(body_state).to_le_bytes());
        h[4..8].copy_from_slice(&crc_mask(header_state).to_le_bytes());
        [&h[..], body].concat()
    }

    #[test]
    fn fields_no_writer_produces_are_malformed_even_with_valid_checksums() {
        let data = RecordKind::Data.to_byte();
        let tomb = RecordKind::Tombstone.to_byte();
        let key = RECORD_FLAG_HAS_KEY;
        // (kind, flags, seq, key_len, body length, whether it is a record), with limits of a
        // 4-byte key and a 10-byte body.
        let cases = [
            (data, key, 1, 4, 10, true),
            (data, key, 1, 5, 10, false),
            (data, key, 1, 4, 11, false),
            (data, 0, 1, 0, 10, true),
            (data, 0, 1, 0, 11, false),
            (data, 0, 1, 3, 10, false),
            (data, key | 0x02, 1, 1, 1, false),
            (0x7f, 0, 1, 0, 1, false),
            (tomb, key, 1, 2, 2, true),
            (tomb, 0, 1, 0, 0, false),
            (tomb, key, 1, 2, 3, false),
            (data, 0, 0, 0, 1, false),
            (data, 0, u64::MAX, 0, 1, false),
            (data, 0, u64::MAX - 1, 0, 1, true),
        ];
        for (kind, flags, seq, key_len, body_len, valid) in cases {
            let body = vec![b'b'; body_len];
            let bytes = forged(kind, flags, seq, key_len, &body);
            let got = decode_record(&bytes, &BIND, 10, 4);
            let case = (kind, flags, seq, key_len, body_len);
            if valid {
                assert!(matches!(got, Decoded::Record(_)), "{case:?}: {got:?}");
            } else {
                assert_eq!(got, Decoded::Invalid(Invalid::Malformed), "{case:?}");
            }
        }
    }

    #[test]
    fn limits_outside_the_formats_ceilings_are_refused() {
        let ok = (
            RECORD_SIZE_MAX_DEFAULT,
            KEY_SIZE_MAX_DEFAULT,
            SEGMENT_SIZE_DEFAULT,
        );
        assert!(check_limits(ok.0, ok.1, ok.2).is_ok());
        assert!(check_limits(RECORD_SIZE_LIMIT, 1, SEGMENT_SIZE_MIN).is_ok());
        assert!(check_limits(1, KEY_SIZE_LIMIT, SEGMENT_SIZE_LIMIT).is_ok());
        for (record, key, segment) in [
            (0, ok.1, ok.2),
            (RECORD_SIZE_LIMIT + 1, ok.1, ok.2),
            (ok.0, 0, ok.2),
            (ok.0, ok.1, SEGMENT_SIZE_MIN - 1),
            (ok.0, ok.1, SEGMENT_SIZE_LIMIT + 1),
        ] {
            let err = check_limits(record, key, segment).unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::InvalidOptions(_)),
                "{record} {key} {segment}: {err}"
            );
        }
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
}
