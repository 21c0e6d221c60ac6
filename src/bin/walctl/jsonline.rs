//! Writing record lines fast: the hot path of `dump --json` and `export-jsonl`.
//!
//! Produces byte for byte the line that `json::record` serialised through `serde_json` would
//! (same keys, same alphabetical order, same escaping), but straight into a reused buffer:
//! no map, no intermediate strings, the date of the current second and the segment's file name
//! cached between records. The test at the bottom holds the two paths equal.

use crate::text::PayloadFormat;
use base64::Engine as _;
use walctl::RecordView;

/// Reusable state between record lines.
#[derive(Default)]
pub struct LineWriter {
    /// The line being built.
    pub line: Vec<u8>,
    second: Option<(u64, [u8; 20])>,
    segment: Option<(u64, String)>,
}

impl LineWriter {
    /// Builds the JSON line (with its newline) for `r` in `self.line`.
    pub fn record(&mut self, r: &RecordView<'_>, payload_format: PayloadFormat) -> &[u8] {
        self.line.clear();
        self.line.extend_from_slice(b"{\"crc\":");
        push_u64(&mut self.line, u64::from(r.crc));
        self.line.extend_from_slice(b",\"key\":");
        let key_encoding = match r.key {
            Some(k) => Some(push_bytes(&mut self.line, k, PayloadFormat::Text)),
            None => {
                self.line.extend_from_slice(b"null");
                None
            }
        };
        self.line.extend_from_slice(b",\"key_encoding\":");
        match key_encoding {
            Some(e) => push_str(&mut self.line, e),
            None => self.line.extend_from_slice(b"null"),
        }
        self.line
            .extend_from_slice(b",\"kind\":\"record\",\"length\":");
        push_u64(&mut self.line, u64::from(r.location.length));
        self.line.extend_from_slice(b",\"offset\":");
        push_u64(&mut self.line, r.location.offset);
        self.line.extend_from_slice(b",\"payload\":");
        let encoding = push_bytes(&mut self.line, r.payload, payload_format);
        self.line.extend_from_slice(b",\"payload_encoding\":");
        push_str(&mut self.line, encoding);
        self.line.extend_from_slice(b",\"segment\":\"");
        let segment = r.location.segment;
        if self.segment.as_ref().is_none_or(|(n, _)| *n != segment) {
            self.segment = Some((segment, walctl::segment::segment_name(segment)));
        }
        let name = &self.segment.as_ref().expect("cached above").1;
        self.line.extend_from_slice(name.as_bytes());
        self.line.extend_from_slice(b"\",\"seq\":");
        push_u64(&mut self.line, r.seq);
        self.line.extend_from_slice(b",\"timestamp\":\"");
        self.push_time(r.timestamp_nanos);
        self.line.extend_from_slice(b"\",\"timestamp_nanos\":");
        push_u64(&mut self.line, r.timestamp_nanos);
        self.line.extend_from_slice(b",\"type\":\"");
        self.line.extend_from_slice(r.kind.as_str().as_bytes());
        self.line.extend_from_slice(b"\"}\n");
        &self.line
    }

    /// RFC 3339 with nanoseconds, the date and time of day cached per second.
    fn push_time(&mut self, nanos: u64) {
        let second = nanos / 1_000_000_000;
        if self.second.is_none_or(|(s, _)| s != second) {
            let text = walctl::time::rfc3339(second * 1_000_000_000);
            let mut prefix = [0u8; 20];
            prefix.copy_from_slice(&text.as_bytes()[..20]);
            self.second = Some((second, prefix));
        }
        let (_, prefix) = self.second.expect("cached above");
        self.line.extend_from_slice(&prefix);
        let frac = nanos % 1_000_000_000;
        let mut digits = [b'0'; 9];
        let mut n = frac;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.line.extend_from_slice(&digits);
        self.line.push(b'Z');
    }
}

pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Writes bytes as a JSON string in the requested encoding; returns the encoding's name.
fn push_bytes(out: &mut Vec<u8>, bytes: &[u8], format: PayloadFormat) -> &'static str {
    match format {
        PayloadFormat::Text => match std::str::from_utf8(bytes) {
            Ok(text) => {
                push_escaped(out, text);
                "utf8"
            }
            Err(_) => push_base64(out, bytes),
        },
        PayloadFormat::Base64 => push_base64(out, bytes),
        PayloadFormat::Hex => {
            out.push(b'"');
            out.extend_from_slice(walctl::repair::hex(bytes).as_bytes());
            out.push(b'"');
            "hex"
        }
    }
}

fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) -> &'static str {
    out.push(b'"');
    let start = out.len();
    out.resize(
        start + base64::encoded_len(bytes.len(), true).unwrap_or(0),
        0,
    );
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .expect("sized by encoded_len");
    out.truncate(start + written);
    out.push(b'"');
    "base64"
}

/// JSON string escaping exactly as `serde_json` does it: `"` and `\` escaped, control characters
/// as `\n`, `\t`, ... or `\u00XX`, everything else (non-ASCII included) as is.
fn push_escaped(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none of them needs escaping (most text).
        if let Some(word) = bytes.get(i..i + 8)
            && !needs_escape(u64::from_le_bytes(word.try_into().expect("8 bytes")))
        {
            i += 8;
            continue;
        }
        let b = bytes[i];
        i += 1;
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        let i = i - 1;
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Whether any byte of `w` is a control character, `"` or `\\` (the SWAR tests of "Bit
/// Twiddling Hacks": a byte below n, or equal to n, sets its high bit in the result).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let eq = |c: u64| {
        let x = w ^ (ONES * c);
        x.wrapping_sub(ONES) & !x
    };
    (below_space | eq(u64::from(b'"')) | eq(u64::from(b'\\'))) & HIGH != 0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use walctl::{Location, RecordKind};

    /// A record view for tests of the binary's writers: a tombstone when it has a key and no
    /// payload, otherwise data.
    pub(crate) fn view<'a>(
        seq: u64,
        key: Option<&'a [u8]>,
        payload: &'a [u8],
        ts: u64,
    ) -> RecordView<'a> {
        RecordView {
            seq,
            timestamp_nanos: ts,
            kind: if payload.is_empty() && key.is_some() {
                RecordKind::Tombstone
            } else {
                RecordKind::Data
            },
            key,
            payload,
            location: Location {
                segment: seq % 3 + 1,
                offset: 12288 + seq * 7,
                length: 99,
            },
            crc: 0xdead_beef ^ seq as u32,
        }
    }

    #[test]
    fn push_u64_writes_every_digit_count_as_display_does() {
        let mut cases = vec![0, u64::MAX];
        for p in 0..20 {
            let ten = 10u64.pow(p);
            cases.extend([
                ten - 1,
                ten,
                ten + 1,
                ten.saturating_mul(7).saturating_add(3),
            ]);
        }
        let mut out = b"x".to_vec();
        let mut expected = "x".to_string();
        for n in cases {
            push_u64(&mut out, n);
            out.push(b',');
            expected.push_str(&format!("{n},"));
        }
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn fast_lines_equal_the_serde_lines_byte_for_byte() {
        let payloads: [&[u8]; 8] = [
            b"",
            b"plain text",
            b"quote \" backslash \\ newline \n tab \t cr \r bell \x07 nul \0 del \x7f",
            "unicode: żółć ✓ 🎉".as_bytes(),
            &[0xff, 0xfe, 0x00, 0x80],
            b"\x08\x0c\x1f",
            b"{\"json\":[1,2]}",
            &[b'a'; 3000],
        ];
        let mut w = LineWriter::default();
        let mut seq = 1;
        for (i, &p) in payloads.iter().enumerate() {
            for key in [None, Some(&b"k\"ey"[..]), Some(&[0xc3u8, 0x28][..])] {
                for format in [
                    PayloadFormat::Text,
                    PayloadFormat::Base64,
                    PayloadFormat::Hex,
                ] {
                    let ts = 1_767_225_600_000_000_000 + (i as u64) * 1_000_000_007 + seq;
                    let r = view(seq, key, p, ts);
                    let mut want = serde_json::to_vec(&crate::json::record(&r, format)).unwrap();
                    want.push(b'\n');
                    let got = w.record(&r, format).to_vec();
                    assert_eq!(
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(&want)
                    );
                    seq += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod swar_tests {
    use super::needs_escape;

    #[test]
    fn word_test_agrees_with_the_byte_test_on_every_byte_in_every_position() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut word = [b'a'; 8];
                word[pos] = b;
                let naive = b < 0x20 || b == b'"' || b == b'\\';
                assert_eq!(
                    needs_escape(u64::from_le_bytes(word)),
                    naive,
                    "byte {b:#x} at {pos}"
                );
            }
        }
    }
}
