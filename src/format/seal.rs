//! Records whose checksums are filled in later (FORMAT.md §6.1): a writer that hands a full
//! buffer to its helper thread for the write can hand it the checksums of short records too,
//! so they are encoded without them here and sealed in one pass over the buffer before it is
//! written. The bytes written are exactly those [`super::encode_record_seeded`] produces.

use super::record::{AlignedHeader, checksums, header_fields, push_record};
use super::*;

/// Appends one record to `out` with both checksum fields zero, for [`seal_records`] to fill
/// later, perhaps on another thread: a writer that hands its buffer to a helper thread for the
/// write can hand it the checksums too.
pub(crate) fn encode_unsealed(
    out: &mut Vec<u8>,
    meta: RecordMeta,
    key: Option<&[u8]>,
    payload: &[u8],
) {
    push_record(out, &header_fields(meta, key, payload), key, payload);
}

/// Fills both checksums of every record in `buf` that [`encode_unsealed`] wrote; the others,
/// written by [`encode_record_seeded`], keep theirs. `buf` holds whole records, all bound to
/// the segment whose binding state is `seed`.
///
/// # Panics
///
/// When `buf` does not end at a record boundary: the buffer is the writer's own, so that is a
/// bug, and writing it would put damage on disk.
pub(crate) fn seal_records(buf: &mut [u8], seed: u32) {
    let mut at = 0;
    while at < buf.len() {
        at = seal_one(buf, at, seed);
    }
}

/// Fills the checksums of the record at `at`; returns where the next one starts.
fn seal_one(buf: &mut [u8], at: usize, seed: u32) -> usize {
    const WHOLE: &str = "a writer's buffer holds whole records";
    let mut fields = AlignedHeader([0; RECORD_HEADER_SIZE]);
    fields
        .0
        .copy_from_slice(buf.get(at..at + RECORD_HEADER_SIZE).expect(WHOLE));
    let h = &fields.0;
    let end = at + RECORD_HEADER_SIZE + le_u32(h, 8) as usize + usize::from(le_u16(h, 12));
    let body = buf.get(at + RECORD_HEADER_SIZE..end).expect(WHOLE);
    // Checksums already there were filled at encoding; a record whose two checksums happen to
    // be zero is recomputed to the same bytes.
    if h[..8] == [0; 8] {
        let (body_crc, header_crc) = checksums(seed, &h[8..], body, &[]);
        buf[at..at + 4].copy_from_slice(&body_crc.to_le_bytes());
        buf[at + 4..at + 8].copy_from_slice(&header_crc.to_le_bytes());
    }
    debug_assert!(matches!(
        decode_record_seeded(&buf[at..end], seed, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT),
        Decoded::Record(_)
    ));
    end
}

#[cfg(test)]
mod tests {
    use super::super::record::tests::{BIND, meta};
    use super::*;

    #[test]
    fn records_sealed_later_are_the_bytes_sealed_at_once() {
        // What the writer does with a buffer handed to its helper thread: encode every record
        // without checksums, then fill them all in one pass.
        let seed = binding_seed(&BIND);
        let (mut now, mut later) = (Vec::new(), Vec::new());
        for (i, len) in (0..300).chain([4096, 65_536]).enumerate() {
            let payload: Vec<u8> = (0..len).map(|b| (b * 7 % 253) as u8).collect();
            let key = (i % 3 != 0).then(|| &payload[..len.min(i % 5)]);
            let meta = meta(i as u64 + 1);
            encode_record_seeded(&mut now, seed, meta, key, &payload);
            encode_unsealed(&mut later, meta, key, &payload);
        }
        encode_record_seeded(&mut now, seed, tombstone(999), Some(b"gone"), b"");
        encode_unsealed(&mut later, tombstone(999), Some(b"gone"), b"");
        assert_ne!(now, later, "unsealed records carry no checksums");
        seal_records(&mut later, seed);
        assert_eq!(now, later);
        seal_records(&mut later, seed);
        assert_eq!(now, later, "sealing twice changes nothing");
        seal_records(&mut [], seed);
    }

    fn tombstone(seq: u64) -> RecordMeta {
        RecordMeta {
            kind: RecordKind::Tombstone,
            ..meta(seq)
        }
    }

    #[test]
    #[should_panic(expected = "whole records")]
    fn sealing_a_buffer_that_ends_inside_a_record_panics_rather_than_write_damage() {
        let mut buf = Vec::new();
        encode_unsealed(&mut buf, meta(1), None, b"payload");
        buf.pop();
        seal_records(&mut buf, binding_seed(&BIND));
    }
}
