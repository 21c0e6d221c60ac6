//! `walctl dump`: the table, JSON Lines, every filter, payload formats, escaping of control
//! characters, and damage on stderr with the contract's exit code. The dump as a running
//! process (`--follow`, a closed pipe) is in `cli_dump_follow.rs`.

mod common;

use common::{Fixture, clean_offset, json_lines};
use walctl::Entry;

#[test]
fn clean_log_dumps_as_a_table() {
    let f = Fixture::clean(2);
    let run = f.run(&["dump"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(
        run.stdout,
        "seq   time                     seg offset  length type     key                 payload\n\
         ────────────────────────────────────────────────────────────────────────────────────────\n\
         1     2026-01-31T09:00:00.000Z 1   12288   40     data                         record-1\n\
         2     2026-01-31T09:00:01.000Z 1   12328   40     data                         record-2\n"
    );
}

#[test]
fn json_lines_carry_every_field() {
    let f = Fixture::clean(1);
    f.append(&[Entry::keyed(b"user:7", b"\xff\x00")], true);
    let run = f.run(&["dump", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let lines = json_lines(&run.stdout);
    assert_eq!(lines.len(), 2);
    let crc = lines[1]["crc"].clone();
    assert!(crc.is_u64());
    assert_eq!(
        lines[1],
        serde_json::json!({
            "kind": "record", "seq": 2, "timestamp": "2026-01-31T09:00:01.000000000Z",
            "timestamp_nanos": common::T0 + 1_000_000_000, "type": "data",
            "key": "user:7", "key_encoding": "utf8", "payload": "/wA=", "payload_encoding": "base64",
            "segment": "00000000000000000001.wal", "offset": clean_offset(2), "length": 40,
            "crc": crc,
        })
    );
}

fn seqs(run: &common::Run) -> Vec<u64> {
    json_lines(&run.stdout)
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn from_to_limit_and_tail_select_by_position() {
    let f = Fixture::clean(9);
    assert_eq!(
        seqs(&f.run(&["dump", "--json", "--from", "3", "--to", "5"])),
        [3, 4, 5]
    );
    assert_eq!(
        seqs(&f.run(&["dump", "--json", "--from", "4", "--limit", "2"])),
        [4, 5]
    );
    assert_eq!(seqs(&f.run(&["dump", "--json", "--tail", "3"])), [7, 8, 9]);
    assert_eq!(
        seqs(&f.run(&["dump", "--json", "--to", "6", "--tail", "2"])),
        [5, 6]
    );
    assert_eq!(
        seqs(&f.run(&["dump", "--json", "--tail", "0"])),
        Vec::<u64>::new()
    );
}

/// `--to` and `--limit` stop the scan inside a sealed segment. What follows is unread, not
/// missing: a stop there once read as acknowledged records gone (exit 3, "corrupt").
#[test]
fn stopping_early_inside_a_sealed_segment_reports_nothing() {
    let f = Fixture::rotated(12);
    assert!(f.segment(3).exists(), "the fixture spans several segments");
    for args in [
        &["--to", "2"][..],
        &["--limit", "1"],
        &["--from", "4", "--limit", "1"],
    ] {
        let mut argv = vec!["dump", "--json"];
        argv.extend(args);
        let run = f.run(&argv);
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{args:?}");
        let want = match args {
            ["--to", _] => vec![1, 2],
            ["--limit", _] => vec![1],
            _ => vec![4],
        };
        assert_eq!(seqs(&run), want, "{args:?}");
    }
    let out = f.tmp.path().join("part.jsonl");
    let run = f.run(&["export-jsonl", "--limit", "1", "-o", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("corrupt"), "{}", run.stderr);
}

/// Every combination of the position filters, on a log of four segments, prints what a model
/// of the filters selects (`--from`/`--to` inclusive, then the first or last N), and exits 0
/// with nothing on stderr.
#[test]
fn position_filters_agree_with_a_model_across_segments() {
    let f = Fixture::rotated(12);
    let bounds = [None, Some(0), Some(1), Some(3), Some(4), Some(12), Some(13)];
    let counts = [
        None,
        Some(("--limit", 0)),
        Some(("--limit", 1)),
        Some(("--limit", 4)),
    ];
    let counts = counts.into_iter().chain([
        Some(("--tail", 0)),
        Some(("--tail", 1)),
        Some(("--tail", 5)),
    ]);
    let mut cases = 0;
    for count in counts {
        for from in bounds {
            for to in bounds {
                let mut argv = vec!["dump".to_string(), "--json".to_string()];
                let mut want: Vec<u64> = (1..=12)
                    .filter(|s| from.is_none_or(|f| *s >= f) && to.is_none_or(|t| *s <= t))
                    .collect();
                for (flag, v) in [("--from", from), ("--to", to)] {
                    if let Some(v) = v {
                        argv.extend([flag.to_string(), v.to_string()]);
                    }
                }
                if let Some((flag, n)) = count {
                    argv.extend([flag.to_string(), n.to_string()]);
                    want = if flag == "--limit" {
                        want.into_iter().take(n).collect()
                    } else {
                        want.split_off(want.len().saturating_sub(n))
                    };
                }
                let args: Vec<&str> = argv.iter().map(String::as_str).collect();
                let run = f.run(&args);
                assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{argv:?}");
                assert_eq!(seqs(&run), want, "{argv:?}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 7 * 7 * 7);
}

/// Twelve records in four segments of three, the first record's payload flipped: corruption
/// in the oldest segment, with valid records after it.
fn rotated_with_record_1_damaged() -> Fixture {
    let f = Fixture::rotated(12);
    let first = f.segment(1);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[(common::DATA_START + common::HEADER) as usize] ^= 0x20;
    std::fs::write(&first, bytes).unwrap();
    f
}

/// `--from` starts at the segment holding its sequence number: damage in an older segment is
/// not read, so not reported (verify still finds it); damage in a segment read is.
#[test]
fn from_skips_older_segments_and_their_damage() {
    let f = rotated_with_record_1_damaged();
    assert_eq!(f.run(&["verify"]).code, 3);
    let run = f.run(&["dump", "--json", "--from", "7"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(seqs(&run), (7..=12).collect::<Vec<_>>());
    let run = f.run(&["dump", "--json", "--from", "2"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("00000000000000000001.wal"),
        "{}",
        run.stderr
    );
    assert_eq!(seqs(&run), (2..=12).collect::<Vec<_>>());
}

/// `--tail` reads the newest segment, then twice as many, until it has N matching records:
/// damage in an older segment it never needed is not reported, damage in what it needs is, and
/// a record that only the oldest segment holds is still found.
#[test]
fn tail_reads_back_from_the_newest_segment_only_as_far_as_it_needs() {
    let f = rotated_with_record_1_damaged();
    let run = f.run(&["dump", "--json", "--tail", "2"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(seqs(&run), [11, 12]);
    let run = f.run(&["dump", "--json", "--tail", "11"]);
    assert_eq!(run.code, 3, "the damage is in what eleven records need");
    assert_eq!(seqs(&run), (2..=12).collect::<Vec<_>>());
    let run = f.run(&["dump", "--json", "--tail", "1", "--to", "2"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(seqs(&run), [2]);
    // Undamaged: the first record, found by time, lies in the oldest of four segments.
    let g = Fixture::rotated(12);
    let run = g.run(&[
        "dump",
        "--json",
        "--tail",
        "1",
        "--until",
        "2026-01-31T09:00:00Z",
    ]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(seqs(&run), [1]);
}

#[test]
fn key_since_and_until_select_by_content_and_time() {
    let f = Fixture::clean(3);
    f.append(
        &[
            Entry::keyed(b"k", b"v1"),
            Entry::data(b"x"),
            Entry::keyed(b"k", b"v2"),
        ],
        true,
    );
    assert_eq!(seqs(&f.run(&["dump", "--json", "--key", "k"])), [4, 6]);
    let since = [
        "dump",
        "--json",
        "--since",
        "2026-01-31T09:00:02Z",
        "--until",
        "2026-01-31T10:00:04+01:00",
    ];
    assert_eq!(seqs(&f.run(&since)), [3, 4, 5]);
}

#[test]
fn a_bad_time_is_a_usage_error() {
    let f = Fixture::clean(1);
    // A day past the end of its month is refused, not read as a day of the next month.
    for bad in ["yesterday", "2026-02-30T00:00:00Z"] {
        let run = f.run(&["dump", "--since", bad]);
        assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{bad}");
        assert!(
            run.stderr
                .contains(&format!("{bad:?} is not an RFC 3339 time")),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn payload_formats_hex_and_base64() {
    let f = Fixture::empty();
    f.append(&[Entry::data(b"\x01\x02hi")], true);
    let hex = json_lines(&f.run(&["dump", "--json", "--payload", "hex"]).stdout);
    assert_eq!(
        (
            hex[0]["payload"].as_str(),
            hex[0]["payload_encoding"].as_str()
        ),
        (Some("01026869"), Some("hex"))
    );
    let b64 = json_lines(&f.run(&["dump", "--json", "--payload", "base64"]).stdout);
    assert_eq!(b64[0]["payload"], "AQJoaQ==");
    let table = f.run(&["dump", "--payload", "hex"]);
    assert!(
        table.stdout.lines().nth(2).unwrap().ends_with(" 01026869"),
        "{}",
        table.stdout
    );
}

#[test]
fn control_characters_are_escaped_in_the_table() {
    let f = Fixture::empty();
    f.append(
        &[Entry::keyed(b"k\x1b]0;", b"\x1b[2J\r\nbell\x07\xff")],
        true,
    );
    let run = f.run(&["dump"]);
    assert_eq!(run.code, 0);
    let row = run.stdout.lines().nth(2).unwrap();
    assert!(
        row.ends_with(" k\\u{1b}]0;          \\u{1b}[2J\\r\\nbell\\u{7}\\xff"),
        "{row:?}"
    );
    assert!(!run.stdout.contains('\x1b'));
}

#[test]
fn damage_prints_valid_records_reports_on_stderr_and_exits_3() {
    let f = Fixture::clean(4);
    f.flip_byte(clean_offset(2) + common::HEADER);
    let run = f.run(&["dump", "--json"]);
    assert_eq!(run.code, 3);
    assert_eq!(seqs(&run), [1, 3, 4]);
    let mut lines = run.stderr.lines();
    let first = lines.next().unwrap();
    let expected = format!(
        "walctl: corrupt damage in 00000000000000000001.wal at offset {} (40 bytes, checksum): \
         last good seq 1, 2 valid records after it: ",
        clean_offset(2)
    );
    assert!(first.starts_with(&expected), "{first:?}");
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("walctl: the log is corrupt")
    );
    assert_eq!(lines.next(), None);
}

#[test]
fn torn_tail_prints_every_record_and_exits_1() {
    let f = Fixture::torn(2, 3);
    let run = f.run(&["dump", "--json"]);
    assert_eq!(run.code, 1);
    assert_eq!(seqs(&run), [1, 2]);
    assert!(
        run.stderr
            .starts_with("walctl: torn damage in 00000000000000000001.wal"),
        "{}",
        run.stderr
    );
}
