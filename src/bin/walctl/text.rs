//! Text for people: escaping untrusted bytes, payload previews, damage tables.
//!
//! Keys and payloads are whatever an appender wrote, so before they reach a terminal every
//! control character (C0, DEL, C1), every bidirectional-override character and every byte that
//! is not UTF-8 is shown as an escape. A backslash is doubled so the escaped text is unambiguous.

use crate::json::segment_file;
use base64::Engine as _;
use comfy_table::Table;
use std::fmt::Write as _;
use std::io;
use walctl::{Damage, DamageClass};

/// How payloads are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PayloadFormat {
    /// Text, with control characters and invalid UTF-8 escaped (in JSON: UTF-8, or base64 when
    /// the payload is not UTF-8).
    Text,
    /// Lower-case hexadecimal.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// `bytes` as text safe for a terminal.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let mut valid = chunk.valid();
        while !valid.is_empty() {
            // Runs of printable ASCII other than `\` stand for themselves: copied whole, since
            // they are most of most payloads (`dump` escapes one per record).
            let plain = valid
                .bytes()
                .position(|b| !is_plain(b))
                .unwrap_or(valid.len());
            out.push_str(&valid[..plain]);
            let mut rest = valid[plain..].chars();
            if let Some(c) = rest.next() {
                push_escaped(&mut out, c);
            }
            valid = rest.as_str();
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A printable ASCII byte that is not the escape character.
pub fn is_plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'\\'
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0' => out.push_str("\\0"),
        c if c.is_control() || is_bidi_control(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Characters that reorder text on a terminal and can disguise what is shown.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The payload rendered in `format`, cut to about `width` characters with a trailing `…`.
pub fn preview(payload: &[u8], format: PayloadFormat, width: usize) -> String {
    // Only the first bytes can be shown, so only they are encoded: a 16 MiB payload costs no more
    // than a short one.
    let head = &payload[..payload.len().min(width * 4)];
    let full = match format {
        PayloadFormat::Text => escape(head),
        PayloadFormat::Hex => walctl::repair::hex(head),
        PayloadFormat::Base64 => base64::engine::general_purpose::STANDARD.encode(head),
    };
    let truncated = head.len() < payload.len();
    cut(&full, width, truncated)
}

fn cut(text: &str, width: usize, truncated: bool) -> String {
    let mut chars = text.char_indices();
    match chars.nth(width) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None if truncated => format!("{text}…"),
        None => text.to_string(),
    }
}

/// A borderless table as text: no padding before the first column, and no trailing spaces
/// (which would show up in diffs and in copied text).
pub fn plain(mut table: Table) -> String {
    for column in table.column_iter_mut() {
        column.set_padding((0, 1));
    }
    trim_lines(&table.to_string())
}

/// Removes trailing spaces from every line.
pub fn trim_lines(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The damage for people: one two-column block per damaged place, readable and copyable on a
/// terminal of any width (a wide table would split file names across lines). Each block is
/// written as it is made: a log damaged in every other record has as many blocks as records.
///
/// # Errors
/// The write error.
pub fn write_damage_blocks(out: &mut impl io::Write, damage: &[Damage]) -> io::Result<()> {
    for (i, d) in damage.iter().enumerate() {
        writeln!(
            out,
            "\ndamage {} of {} ({}):",
            i + 1,
            damage.len(),
            class_name(d.class)
        )?;
        // Padded by hand, as `plain` pads a two-column table: building a comfy-table per block
        // took 7 of the 8.6 s `verify` spent on a log with a million damaged records.
        let rows = damage_rows(d);
        let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
        for (label, value) in rows {
            let line = format!("  {label:<width$} {value}");
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    Ok(())
}

/// The label and value of each line of a damage block.
fn damage_rows(d: &Damage) -> [(&'static str, String); 7] {
    let last_good = d
        .last_good_seq
        .map_or_else(|| "none".to_string(), |s| s.to_string());
    [
        ("segment", segment_file(d.segment)),
        ("offset", d.offset.to_string()),
        ("kind", d.kind.as_str().to_string()),
        ("bytes", d.length.to_string()),
        ("last good seq", last_good),
        ("records after", d.records_after.to_string()),
        ("detail", escape(d.detail.as_bytes())),
    ]
}

/// One line describing a damaged place, for stderr.
pub fn damage_line(d: &Damage) -> String {
    format!(
        "{} damage in {} at offset {} ({} bytes, {}): last good seq {}, {} valid records after it: {}",
        class_name(d.class),
        segment_file(d.segment),
        d.offset,
        d.length,
        d.kind.as_str(),
        d.last_good_seq
            .map_or_else(|| "none".to_string(), |s| s.to_string()),
        d.records_after,
        escape(d.detail.as_bytes()),
    )
}

/// `torn` or `corrupt`.
pub fn class_name(class: DamageClass) -> &'static str {
    match class {
        DamageClass::Torn => "torn",
        DamageClass::Corrupt => "corrupt",
    }
}

/// What to do about a report's damage, in one sentence for the operator.
pub fn advice(report: &walctl::Report) -> Option<String> {
    match report.verdict() {
        walctl::Verdict::Clean => None,
        walctl::Verdict::TornTail => Some(
            "the log has a torn tail (bytes never acknowledged as durable); \
             `walctl repair --truncate-partial` cuts it and keeps the bytes in a side file"
                .to_string(),
        ),
        walctl::Verdict::Corrupt => {
            let lost: u64 = report
                .damage
                .iter()
                .map(|d| d.records_after)
                .max()
                .unwrap_or(0);
            Some(format!(
                "the log is corrupt; truncating would lose acknowledged data ({lost} valid records \
                 lie after the first damage), so walctl will not repair it: restore the damaged \
                 segment from a backup, or copy every readable record, sequence numbers kept, \
                 into a new log with `walctl salvage --to DIR`"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_table::presets;
    use walctl::DamageKind;

    /// A block as a two-column comfy-table renders it through `plain`: what the hand-padded
    /// lines must equal.
    fn block_through_a_table(d: &Damage) -> String {
        let mut table = Table::new();
        table.load_preset(presets::NOTHING);
        for (label, value) in damage_rows(d) {
            table.add_row([label, value.as_str()]);
        }
        plain(table)
            .lines()
            .map(|line| format!("  {line}\n"))
            .collect()
    }

    #[test]
    fn damage_blocks_are_padded_as_a_two_column_table_would_pad_them() {
        let base = Damage {
            kind: DamageKind::Checksum,
            class: DamageClass::Corrupt,
            segment: 12,
            offset: 98_976,
            length: 1032,
            last_good_seq: Some(84),
            records_after: 59_915,
            places: 1,
            records_within: 0,
            detail: "a record whose checksum fails".into(),
        };
        let details = [
            "",
            "  leading and trailing  ",
            "caf\u{e9} \u{1f389} wide",
            "tab\there",
        ];
        let mut damage = vec![base.clone()];
        for (i, detail) in details.into_iter().enumerate() {
            damage.push(Damage {
                class: DamageClass::Torn,
                last_good_seq: (i % 2 == 0).then_some(u64::MAX),
                offset: u64::MAX,
                detail: detail.into(),
                ..base.clone()
            });
        }
        let mut out = Vec::new();
        write_damage_blocks(&mut out, &damage).unwrap();
        let expected: String = damage
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let class = class_name(d.class);
                let head = format!("\ndamage {} of {} ({class}):\n", i + 1, damage.len());
                head + &block_through_a_table(d)
            })
            .collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn escape_shows_control_characters_and_invalid_utf8() {
        assert_eq!(escape(b"plain text"), "plain text");
        assert_eq!(escape(b"a\nb\tc\\d"), "a\\nb\\tc\\\\d");
        assert_eq!(escape(b"\x1b[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(escape("\u{202e}evil".as_bytes()), "\\u{202e}evil");
        assert_eq!(escape("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }

    /// Plain runs are copied whole: every byte value, alone and between plain runs, escapes as
    /// it does character by character.
    #[test]
    fn escaping_in_runs_equals_escaping_each_character() {
        fn one_by_one(bytes: &[u8]) -> String {
            let mut out = String::new();
            for chunk in bytes.utf8_chunks() {
                chunk
                    .valid()
                    .chars()
                    .for_each(|c| push_escaped(&mut out, c));
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
        for b in 0..=255u8 {
            for input in [vec![b], vec![b'a', b, b'b', b'c'], vec![b, b, b'z', b]] {
                assert_eq!(escape(&input), one_by_one(&input), "{input:?}");
            }
        }
        let mixed = "ab\\c\u{202e}d\u{e9}\n\u{1F980}x\0".as_bytes();
        assert_eq!(escape(mixed), one_by_one(mixed));
    }

    #[test]
    fn preview_cuts_long_payloads() {
        assert_eq!(preview(b"hello", PayloadFormat::Text, 10), "hello");
        assert_eq!(preview(b"hello world", PayloadFormat::Text, 5), "hello…");
        assert_eq!(preview(b"\x00\x01", PayloadFormat::Hex, 10), "0001");
        assert_eq!(preview(b"hi", PayloadFormat::Base64, 10), "aGk=");
        let big = vec![b'x'; 1 << 20];
        assert_eq!(preview(&big, PayloadFormat::Text, 3), "xxx…");
    }

    #[test]
    fn a_preview_of_wide_characters_shows_the_width_and_marks_a_cut() {
        // Four bytes per character: the bytes encoded for the preview hold exactly `width`
        // characters, so only the payload's length tells that more follow.
        let party = "🎉".repeat(10);
        assert_eq!(preview(party.as_bytes(), PayloadFormat::Text, 10), party);
        let more = format!("{party}🎉");
        assert_eq!(
            preview(more.as_bytes(), PayloadFormat::Text, 10),
            format!("{party}…")
        );
    }
}
