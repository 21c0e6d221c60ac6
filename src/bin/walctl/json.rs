//! The JSON wire format: every object walctl prints for computers, in one module.
//!
//! This is an API (docs/JSONL.md): fields are added, never renamed or retyped, and a change to
//! the meaning of one bumps [`EXPORT_VERSION`]. Records printed by `dump --json` and written by
//! `export-jsonl` share one shape, and `append --jsonl` reads that shape back. Segments are
//! named by file name everywhere, so a value can be pasted into `ls` or `xxd`.

use crate::jsondoc::Doc;
#[cfg(test)]
use crate::text::PayloadFormat;
use base64::Engine as _;
use serde_json::{Value, json};
use std::io::{self, Write};
#[cfg(test)]
use walctl::RecordView;
use walctl::{Appended, Damage, InProgress, RecordKind, Report, SegmentReport};

/// The `schema` value of an export's header and trailer lines.
pub const EXPORT_SCHEMA: &str = "walctl.export";

/// The export schema's version.
pub const EXPORT_VERSION: u64 = 1;

/// The file name of segment `number`.
pub fn segment_file(number: u64) -> String {
    walctl::segment::segment_name(number)
}

/// Writes `value` as one line. Serialising into memory first keeps every write error an
/// `io::Error`, which `main` can recognise as a broken pipe.
///
/// # Errors
/// The write error.
pub fn write_line(out: &mut impl Write, value: &Value) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)
}

#[cfg(test)]
/// Bytes as a JSON string plus the name of its encoding. `Text` gives UTF-8 when the bytes are
/// valid UTF-8 and base64 otherwise, so every byte string survives the round trip.
pub fn encode_bytes(bytes: &[u8], format: PayloadFormat) -> (String, &'static str) {
    match format {
        PayloadFormat::Text => match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_string(), "utf8"),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(bytes),
                "base64",
            ),
        },
        PayloadFormat::Hex => (walctl::repair::hex(bytes), "hex"),
        PayloadFormat::Base64 => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            "base64",
        ),
    }
}

/// Decodes a string written by [`encode_bytes`].
///
/// # Errors
/// A sentence naming the unknown encoding or the invalid text.
pub fn decode_bytes(text: &str, encoding: &str) -> Result<Vec<u8>, String> {
    match encoding {
        "utf8" => Ok(text.as_bytes().to_vec()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("invalid base64: {e}")),
        "hex" => decode_hex(text),
        other => Err(format!(
            "unknown encoding {other:?} (expected utf8, base64 or hex)"
        )),
    }
}

fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err("invalid hex: odd number of digits".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("invalid hex at character {i}"))
        })
        .collect()
}

/// A record line (`dump --json`, `export-jsonl`), built as a value: the reference that the fast
/// writer in `jsonline` is tested against.
#[cfg(test)]
pub fn record(r: &RecordView<'_>, payload_format: PayloadFormat) -> Value {
    let (key, key_encoding) = match r.key {
        Some(k) => {
            let (text, enc) = encode_bytes(k, PayloadFormat::Text);
            (Value::String(text), Value::String(enc.into()))
        }
        None => (Value::Null, Value::Null),
    };
    let (payload, payload_encoding) = encode_bytes(r.payload, payload_format);
    json!({
        "kind": "record",
        "seq": r.seq,
        "timestamp": walctl::time::rfc3339(r.timestamp_nanos),
        "timestamp_nanos": r.timestamp_nanos,
        "type": r.kind.as_str(),
        "key": key,
        "key_encoding": key_encoding,
        "payload": payload,
        "payload_encoding": payload_encoding,
        "segment": segment_file(r.location.segment),
        "offset": r.location.offset,
        "length": r.location.length,
        "crc": r.crc,
    })
}

/// What `append --json` prints per record.
pub fn appended(a: &Appended) -> Value {
    json!({
        "seq": a.seq,
        "segment": segment_file(a.location.segment),
        "offset": a.location.offset,
        "length": a.location.length,
    })
}

/// One damaged place.
pub fn damage(d: &Damage) -> Value {
    json!({
        "segment": segment_file(d.segment),
        "offset": d.offset,
        "kind": d.kind.as_str(),
        "length": d.length,
        "class": crate::text::class_name(d.class),
        "last_good_seq": d.last_good_seq,
        "records_after": d.records_after,
        "places": d.places,
        "records_within": d.records_within,
        "detail": d.detail,
    })
}

fn segment(s: &SegmentReport) -> Value {
    json!({
        "segment": segment_file(s.segment),
        "bytes": s.file_len,
        "valid_len": s.valid_len,
        "records": s.records,
        "first_seq": s.first_seq,
        "last_seq": s.last_seq,
        "durable_seq": s.durable_seq,
        "sealed": s.sealed,
        "compacted": s.compacted,
        "first_timestamp": s.times.map(|t| walctl::time::rfc3339(t.first)),
        "last_timestamp": s.times.map(|t| walctl::time::rfc3339(t.last)),
    })
}

fn in_progress(p: &InProgress) -> Value {
    json!({ "segment": segment_file(p.segment), "offset": p.offset, "length": p.length })
}

/// The log id as 16 hex digits (a u64 does not survive JavaScript's numbers).
pub fn log_id(report: &Report) -> Value {
    report
        .log_id
        .map_or(Value::Null, |id| Value::String(format!("{id:016x}")))
}

/// One record read back from a JSON line (`append --jsonl`, `verify-export --against-log`).
#[derive(Debug, PartialEq, Eq)]
pub struct RecordLine {
    pub kind: RecordKind,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub timestamp_nanos: Option<u64>,
}

/// Reads a record line's `type`, key, payload and timestamp; `None` for an export's header or
/// trailer line. Every other field is ignored.
pub fn parse_record_line(value: &Value) -> Result<Option<RecordLine>, String> {
    let obj = value.as_object().ok_or("expected a JSON object")?;
    match obj.get("kind").and_then(|k| k.as_str()) {
        None | Some("record") => {}
        Some("header" | "trailer") => return Ok(None),
        Some(other) => return Err(format!("unknown \"kind\" {other:?}")),
    }
    let kind = match obj.get("type").and_then(|t| t.as_str()) {
        None | Some("data") => RecordKind::Data,
        Some("tombstone") => RecordKind::Tombstone,
        Some(other) => return Err(format!("unknown \"type\" {other:?} (data or tombstone)")),
    };
    let key = bytes_field(obj, "key")?;
    let payload = bytes_field(obj, "payload")?.unwrap_or_default();
    // The library refuses these too, but only the caller knows the line to name.
    if kind == RecordKind::Tombstone && (key.is_none() || !payload.is_empty()) {
        return Err("a tombstone needs a \"key\" and no \"payload\"".into());
    }
    let timestamp_nanos = match obj.get("timestamp_nanos") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or("\"timestamp_nanos\" must be a non-negative integer")?,
        ),
    };
    Ok(Some(RecordLine {
        kind,
        key,
        payload,
        timestamp_nanos,
    }))
}

/// Decodes field `name` by its `<name>_encoding` (default utf8).
fn bytes_field(
    obj: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<u8>>, String> {
    let text = match obj.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => return Err(format!("\"{name}\" must be a string or null")),
    };
    let encoding = match obj.get(&format!("{name}_encoding")) {
        None | Some(Value::Null) => "utf8",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(format!("\"{name}_encoding\" must be a string")),
    };
    decode_bytes(text, encoding)
        .map(Some)
        .map_err(|e| format!("\"{name}\": {e}"))
}

/// What `verify --json` prints: the whole report. Its segment and damage lists are made into
/// values one element at a time while the line is written (see [`Doc`]).
pub fn report(r: &Report) -> Doc<'_> {
    let fields = json!({
        "status": r.verdict().as_str(),
        "records": r.records,
        "first_seq": r.first_seq,
        "last_seq": r.last_seq,
        "bytes": r.bytes,
        "durable_seq": r.durable_seq,
        "log_id": log_id(r),
        "writer_active": r.writer_active,
        "in_progress": r.in_progress.as_ref().map(in_progress),
        "stray_files": r.stray_files,
        "damaged_places": r.damaged_places(),
    });
    Doc::new(fields)
        .each("segments", || r.segments.iter().map(segment))
        .each("damage", || r.damage.iter().map(damage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_through_every_encoding() {
        let samples: [&[u8]; 4] = [b"", b"hello", b"\xff\x00\x80", "caf\u{e9}".as_bytes()];
        for bytes in samples {
            for format in [
                PayloadFormat::Text,
                PayloadFormat::Hex,
                PayloadFormat::Base64,
            ] {
                let (text, enc) = encode_bytes(bytes, format);
                assert_eq!(decode_bytes(&text, enc).as_deref(), Ok(bytes), "{format:?}");
            }
        }
        assert_eq!(encode_bytes(b"\xff", PayloadFormat::Text).1, "base64");
    }

    #[test]
    fn bad_encodings_are_refused() {
        assert!(decode_bytes("abc", "hex").is_err());
        assert!(decode_bytes("zz", "hex").is_err());
        assert!(decode_bytes("!!", "base64").is_err());
        assert!(decode_bytes("x", "rot13").is_err());
    }
}
