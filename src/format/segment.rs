//! The segment preamble (FORMAT.md §2): the 64-byte header every segment starts with and the
//! two watermark slots after it that record what a successful fdatasync made durable.

use super::*;

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
    /// The header checksum does not match, or a field holds what no writer of a known version
    /// writes (version 0, another header size, a sequence number out of range): damage.
    Checksum,
    /// A newer format version than this code reads.
    Version(u16),
    /// Flag bits this version does not know.
    Flags(u32),
}

impl HeaderFault {
    /// The error for a header this walctl is too old to read, a newer version or an unknown
    /// flag (FORMAT.md §8 row 12); `None` for damage. Every reader maps faults through this, so
    /// none of them can take a newer segment for a damaged one.
    pub(crate) fn unsupported(self, path: &std::path::Path) -> Option<crate::Error> {
        let found = match self {
            HeaderFault::Version(v) => u32::from(v),
            HeaderFault::Flags(f) => f,
            HeaderFault::Short | HeaderFault::Magic | HeaderFault::Checksum => return None,
        };
        Some(crate::Error::new(crate::ErrorKind::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
        }))
    }
}

/// The operator's words for a rejected header, as damage details and messages print it.
impl std::fmt::Display for HeaderFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderFault::Short => write!(
                f,
                "the segment is shorter than its {SEGMENT_HEADER_SIZE}-byte header"
            ),
            HeaderFault::Magic => f.write_str(
                "the segment does not start with walctl's magic bytes: not a walctl segment, \
                 or mangled in transfer",
            ),
            HeaderFault::Checksum => f.write_str("the segment header fails its checksum"),
            HeaderFault::Version(v) => {
                write!(
                    f,
                    "the segment is of format version {v}, newer than this walctl reads"
                )
            }
            HeaderFault::Flags(bits) => {
                write!(
                    f,
                    "the segment header has flag bits {bits:#x} this walctl does not know"
                )
            }
        }
    }
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
        if version > FORMAT_VERSION {
            return Err(HeaderFault::Version(version));
        }
        // Not newer, so "upgrade walctl" would be the wrong advice: no version writes these.
        if version == 0 || le_u16(b, 10) as usize != SEGMENT_HEADER_SIZE {
            return Err(HeaderFault::Checksum);
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

    /// The slot write of generation `generation` into the segment with `header` (FORMAT.md
    /// §2.2): where it goes (generation `g` to slot `g mod 2`) and its bytes. `durable_end` is
    /// kept only where the segment's version records it (zero in version 1).
    #[must_use]
    pub(crate) fn placed(
        header: &SegmentHeader,
        generation: u64,
        durable_seq: u64,
        durable_end: u64,
    ) -> (u64, [u8; WATERMARK_SLOT_SIZE]) {
        let slot = WatermarkSlot {
            durable_seq,
            generation,
            durable_end: if header.version >= super::FORMAT_VERSION_DURABLE_END {
                durable_end
            } else {
                0
            },
        };
        (
            super::WATERMARK_SLOT_OFFSETS[(generation % 2) as usize],
            slot.encode(header.log_id, header.segment),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn header_fields_no_writer_produces_are_refused_even_with_a_valid_checksum() {
        let good = SegmentHeader {
            version: FORMAT_VERSION,
            flags: SEGMENT_FLAG_COMPACTED | SEGMENT_FLAG_PREALLOCATED,
            log_id: 9,
            segment: 3,
            first_seq: 100,
            log_first_seq: 1,
            created_nanos: 5,
        };
        // Rewrites bytes `at..` of the encoded header and seals it with a correct checksum.
        let forged = |at: usize, bytes: &[u8]| {
            let mut b = good.encode();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            let crc = crc_mask(crc32c::crc32c(&b[..60]));
            b[60..64].copy_from_slice(&crc.to_le_bytes());
            SegmentHeader::decode(&b)
        };
        assert_eq!(forged(0, &[]), Ok(good));
        for version in [1, FORMAT_VERSION] {
            assert!(
                forged(8, &version.to_le_bytes()).is_ok(),
                "version {version}"
            );
        }
        for version in [FORMAT_VERSION + 1, u16::MAX] {
            let got = forged(8, &version.to_le_bytes());
            assert_eq!(got, Err(HeaderFault::Version(version)));
        }
        assert_eq!(forged(8, &0u16.to_le_bytes()), Err(HeaderFault::Checksum));
        let size = forged(10, &65u16.to_le_bytes());
        assert_eq!(size, Err(HeaderFault::Checksum));
        // A newer version may have a header of another size: still newer, not damage.
        let newer = [(FORMAT_VERSION + 1).to_le_bytes(), 128u16.to_le_bytes()].concat();
        assert_eq!(
            forged(8, &newer),
            Err(HeaderFault::Version(FORMAT_VERSION + 1))
        );
        assert_eq!(forged(12, &4u32.to_le_bytes()), Err(HeaderFault::Flags(4)));
        for (at, seq) in [(32, 0), (32, u64::MAX), (40, 0), (40, u64::MAX)] {
            assert!(forged(at, &seq.to_le_bytes()).is_err(), "{seq} at {at}");
        }
        assert!(forged(40, &(u64::MAX - 1).to_le_bytes()).is_ok());
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
