//! A deliberately simple reference decoder of one segment, written from `docs/FORMAT.md` alone
//! (§2, §3, §4, §5 and rows 1, 2, 4, 5, 10 of §8): straight-line code, its own bitwise CRC32C,
//! no resynchronisation, nothing shared with walctl. It stops at the first offset where no
//! valid record starts; what it read up to there is the valid prefix.

use walctl::{DamageKind, Record, Report, Verdict};

/// Sections of the fuzz input: `[ctrl, first_seq, slot, segment, body...]`.
///
/// `ctrl` bits: 0 fix up the CRCs of the body's records; 1 `COMPACTED`; 2 `PREALLOCATED`;
/// 3 renumber the records `first_seq, first_seq + 1, ...` while fixing up; 4 write a watermark
/// slot; 5 `first_seq = 1 + byte 1`; 6 `first_seq = 2^64 - 2 - byte 1` (overrides 5);
/// 7 format version 2, whose slot records `durable_end`: where the record `durable_seq` ends in
/// the body when byte 2 is below 192, an arbitrary offset otherwise.
#[derive(Clone, Debug)]
pub struct SegmentInput {
    /// Recompute the CRCs of the records in `body` before use.
    pub fix: bool,
    /// Give the records consecutive sequence numbers while fixing up.
    pub renumber: bool,
    /// Segment header flags.
    pub flags: u32,
    /// The header's `first_seq` (and `log_first_seq`).
    pub first_seq: u64,
    /// `durable_seq` of the watermark slot written at 8192, if any.
    pub slot: Option<u64>,
    /// Format version 2 (the slot carries `durable_end`) rather than 1.
    pub version2: bool,
    /// Byte 2 of the input: picks the slot's `durable_end` in version 2.
    pub end_pick: u8,
    /// The segment number (file name and header).
    pub segment: u64,
    /// The log id.
    pub log_id: u64,
    /// The bytes after the preamble.
    pub body: Vec<u8>,
}

impl SegmentInput {
    /// Splits a fuzz input; short inputs read as zeros.
    pub fn parse(data: &[u8]) -> SegmentInput {
        let byte = |i: usize| data.get(i).copied().unwrap_or(0);
        let ctrl = byte(0);
        let first_seq = if ctrl & 64 != 0 {
            // The highest valid first_seq is 2^64 - 2 (FORMAT.md §2.1, §3).
            u64::MAX - 1 - u64::from(byte(1))
        } else if ctrl & 32 != 0 {
            1 + u64::from(byte(1))
        } else {
            1
        };
        SegmentInput {
            fix: ctrl & 1 != 0,
            renumber: ctrl & 8 != 0,
            flags: u32::from((ctrl >> 1) & 3),
            first_seq,
            slot: (ctrl & 16 != 0).then(|| (first_seq - 1).saturating_add(u64::from(byte(2) % 16))),
            version2: ctrl & 128 != 0,
            end_pick: byte(2),
            segment: 1 + u64::from(byte(3) % 8),
            log_id: super::LOG_ID,
            body: data.get(4..).unwrap_or_default().to_vec(),
        }
    }

    /// `log_id ‖ segment`, little-endian (FORMAT.md §5).
    pub fn binding(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.log_id.to_le_bytes());
        b[8..].copy_from_slice(&self.segment.to_le_bytes());
        b
    }

    /// Where fix-up starts renumbering, if it does.
    pub fn renumber_from(&self) -> Option<u64> {
        self.renumber.then_some(self.first_seq)
    }

    /// The segment's path in the in-memory log directory.
    pub fn path(&self) -> std::path::PathBuf {
        super::log_dir().join(format!("{:020}.wal", self.segment))
    }

    /// A whole segment file: header, zero padding, the optional slot, then `body`.
    pub fn segment_file(&self, body: &[u8]) -> Vec<u8> {
        let mut file = vec![0u8; 12288];
        let h = &mut file[..64];
        h[..8].copy_from_slice(&[0x89, b'W', b'A', b'L', b'\r', b'\n', 0x1a, b'\n']);
        let version: u16 = if self.version2 { 2 } else { 1 };
        h[8..10].copy_from_slice(&version.to_le_bytes());
        h[10..12].copy_from_slice(&64u16.to_le_bytes());
        h[12..16].copy_from_slice(&self.flags.to_le_bytes());
        h[16..24].copy_from_slice(&self.log_id.to_le_bytes());
        h[24..32].copy_from_slice(&self.segment.to_le_bytes());
        h[32..40].copy_from_slice(&self.first_seq.to_le_bytes());
        h[40..48].copy_from_slice(&self.first_seq.to_le_bytes());
        let crc = mask(crc32c(0, &h[..60]));
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        if let Some(durable) = self.slot {
            let s = &mut file[8192..8224];
            s[..8].copy_from_slice(&durable.to_le_bytes());
            s[8..16].copy_from_slice(&1u64.to_le_bytes());
            if self.version2 {
                s[16..24].copy_from_slice(&self.durable_end(body, durable).to_le_bytes());
            }
            let crc = mask(crc32c(crc32c(0, &self.binding()), &s[..28]));
            s[28..32].copy_from_slice(&crc.to_le_bytes());
        }
        file.extend_from_slice(body);
        file
    }
}

impl SegmentInput {
    /// The `durable_end` a version 2 slot claims: usually the true end of the record `durable`
    /// in `body` (walking the length fields), so that open's resume path is taken; otherwise,
    /// or when no such record is framed, an arbitrary offset, so that a wrong end is tried too.
    fn durable_end(&self, body: &[u8], durable: u64) -> u64 {
        let arbitrary = 12288 + u64::from(self.end_pick) * 7;
        if self.end_pick >= 192 {
            return arbitrary;
        }
        if durable == self.first_seq - 1 {
            return 12288;
        }
        let mut pos = 0usize;
        while let Some(end) = framed_end(body, pos) {
            if le64(body, pos + 16) == durable {
                return 12288 + end as u64;
            }
            pos = end;
        }
        arbitrary
    }
}

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), continuing from a finished `crc`:
/// `crc32c(crc32c(0, a), b) == crc32c(0, a ‖ b)`.
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// `((c >> 15) | (c << 17)) + 0xA282EAD8` (FORMAT.md §5), written as the spec writes it.
#[allow(clippy::manual_rotate)]
pub fn mask(c: u32) -> u32 {
    ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Rewrites the CRCs of the records framed in `body` (walking by their length fields) so that
/// the fuzzer reaches the checks behind them; with `renumber`, also their sequence numbers.
/// Stops at the first record whose body runs past the end (its header CRC is still fixed).
pub fn fix_up(body: &mut [u8], bind: &[u8; 16], renumber: Option<u64>) {
    let mut pos = 0usize;
    let mut index = 0u64;
    while body.len() - pos >= 32 {
        if let Some(first) = renumber {
            body[pos + 16..pos + 24].copy_from_slice(&first.wrapping_add(index).to_le_bytes());
        }
        let c1 = crc32c(crc32c(0, bind), &body[pos + 8..pos + 32]);
        body[pos + 4..pos + 8].copy_from_slice(&mask(c1).to_le_bytes());
        let Some(end) = framed_end(body, pos) else {
            return;
        };
        let c2 = crc32c(c1, &body[pos + 32..end]);
        body[pos..pos + 4].copy_from_slice(&mask(c2).to_le_bytes());
        pos = end;
        index += 1;
    }
}

/// Where the record framed at `pos` of `body` ends, by its length fields alone, when its
/// header and body both fit.
fn framed_end(body: &[u8], pos: usize) -> Option<usize> {
    let rest = body.len().checked_sub(pos).filter(|&r| r >= 32)?;
    let total = 32 + u64::from(le32(body, pos + 8)) + u64::from(le16(body, pos + 12));
    (total <= rest as u64).then(|| pos + total as usize)
}

/// One record as the reference decoder reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefRecord {
    /// Offset in the file.
    pub offset: u64,
    /// Header plus key plus payload.
    pub length: u64,
    /// The stored record CRC (masked).
    pub crc: u32,
    /// Sequence number.
    pub seq: u64,
    /// Timestamp.
    pub timestamp_nanos: u64,
    /// 1 data, 2 tombstone.
    pub kind: u8,
    /// The key when `HAS_KEY` is set.
    pub key: Option<Vec<u8>>,
    /// The payload.
    pub payload: Vec<u8>,
}

/// What the reference decoder found.
#[derive(Clone, Debug)]
pub struct RefScan {
    /// The records of the valid prefix.
    pub records: Vec<RefRecord>,
    /// End of the valid prefix.
    pub valid_end: u64,
    /// Whether it stopped before the end of the file (damage).
    pub damaged: bool,
    /// Sequence number of the last record of the prefix, or `first_seq - 1`.
    pub last: u64,
    /// The watermark read from the slots (0 if none is valid).
    pub watermark: u64,
    /// The verdict by FORMAT.md §8 for a log of this one segment.
    pub verdict: Verdict,
}

/// Decodes the segment `file` written from `input`'s header fields.
pub fn scan(file: &[u8], input: &SegmentInput) -> RefScan {
    let bind = input.binding();
    let compacted = input.flags & 1 != 0;
    let preallocated = input.flags & 2 != 0;
    let mut records = Vec::new();
    let mut last = input.first_seq - 1;
    let mut pos = 12288usize;
    let damaged = loop {
        if pos == file.len() || (preallocated && file[pos..].iter().all(|&b| b == 0)) {
            break false;
        }
        match one_record(&file[pos..], &bind, last, compacted) {
            Some(mut r) => {
                r.offset = pos as u64;
                last = r.seq;
                pos += r.length as usize;
                records.push(r);
            }
            None => break true,
        }
    };
    let watermark = watermark(file, &bind);
    let verdict = if watermark > last {
        Verdict::Corrupt
    } else if damaged {
        Verdict::TornTail
    } else {
        Verdict::Clean
    };
    RefScan {
        records,
        valid_end: pos as u64,
        damaged,
        last,
        watermark,
        verdict,
    }
}

/// The record at the start of `b`, if a valid one starts there and follows `last`.
fn one_record(b: &[u8], bind: &[u8; 16], last: u64, compacted: bool) -> Option<RefRecord> {
    if b.len() < 32 || b[..32].iter().all(|&x| x == 0) {
        return None;
    }
    let c1 = crc32c(crc32c(0, bind), &b[8..32]);
    if mask(c1) != le32(b, 4) {
        return None;
    }
    let payload_len = u64::from(le32(b, 8));
    let key_len = u64::from(le16(b, 12));
    let (kind, flags, seq) = (b[14], b[15], le64(b, 16));
    let has_key = flags & 1 == 1;
    let bad_fields = !(kind == 1 || kind == 2)
        || flags & !1 != 0
        || (!has_key && key_len != 0)
        || (kind == 2 && (!has_key || payload_len != 0))
        || key_len + payload_len > 1 << 30;
    if bad_fields || 32 + key_len + payload_len > b.len() as u64 {
        return None;
    }
    let end = (32 + key_len + payload_len) as usize;
    let key_end = 32 + key_len as usize;
    if mask(crc32c(c1, &b[32..end])) != le32(b, 0) {
        return None;
    }
    let in_order = if compacted {
        seq > last
    } else {
        last.checked_add(1) == Some(seq)
    };
    // Sequence numbers are 1 to 2^64 - 2 (FORMAT.md §3): 0 and 2^64 - 1 never are.
    if seq == 0 || seq == u64::MAX || !in_order {
        return None;
    }
    Some(RefRecord {
        offset: 0,
        length: end as u64,
        crc: le32(b, 0),
        seq,
        timestamp_nanos: le64(b, 24),
        kind,
        key: has_key.then(|| b[32..key_end].to_vec()),
        payload: b[key_end..end].to_vec(),
    })
}

/// The durable watermark of FORMAT.md §2.2: the valid slot with the highest generation.
fn watermark(file: &[u8], bind: &[u8; 16]) -> u64 {
    let mut best: Option<(u64, u64)> = None;
    for at in [4096usize, 8192] {
        let s = &file[at..at + 32];
        if s.iter().all(|&x| x == 0) || mask(crc32c(crc32c(0, bind), &s[..28])) != le32(s, 28) {
            continue;
        }
        let (durable, generation) = (le64(s, 0), le64(s, 8));
        if best.is_none_or(|(_, g)| generation > g) {
            best = Some((durable, generation));
        }
    }
    best.map_or(0, |(durable, _)| durable)
}

/// Asserts that walctl's scan agrees with the reference on the valid prefix, each of its
/// records field by field, where the first damage starts, and the verdict.
pub fn compare(theirs: &RefScan, report: &Report, records: &[Record], input: &SegmentInput) {
    let seg = &report.segments[0];
    assert_eq!(
        seg.valid_len, theirs.valid_end,
        "valid prefix: walctl {} vs reference {}",
        seg.valid_len, theirs.valid_end
    );
    let ours: Vec<&Record> = records
        .iter()
        .filter(|r| r.location.offset < seg.valid_len)
        .collect();
    assert_eq!(ours.len(), theirs.records.len(), "records in the prefix");
    for (o, t) in ours.iter().zip(&theirs.records) {
        assert_eq!(
            (o.location.offset, u64::from(o.location.length), o.crc),
            (t.offset, t.length, t.crc)
        );
        assert_eq!((o.seq, o.timestamp_nanos), (t.seq, t.timestamp_nanos));
        assert_eq!(o.kind.to_byte(), t.kind);
        assert_eq!(o.key, t.key);
        assert_eq!(o.payload, t.payload);
        assert_eq!(o.location.segment, input.segment);
    }
    let local: Vec<_> = report
        .damage
        .iter()
        .filter(|d| d.kind != DamageKind::MissingAcknowledged)
        .collect();
    assert_eq!(
        !local.is_empty(),
        theirs.damaged,
        "damage: {:?}",
        report.damage
    );
    if let Some(first) = local.first() {
        assert_eq!(first.offset, theirs.valid_end, "first damage offset");
    }
    assert_eq!(
        report.verdict(),
        theirs.verdict,
        "verdict (watermark {}, last {}): {:?}",
        theirs.watermark,
        theirs.last,
        report.damage
    );
}
