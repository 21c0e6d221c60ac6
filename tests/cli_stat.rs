//! `walctl stat`: segments, records, bytes, sequence and time ranges and the durable watermark,
//! as a table and as JSON; damage sets the exit code as for every reader.

mod common;

use common::{Fixture, json};
use walctl::Entry;

#[test]
fn stat_json_summarises_a_clean_log() {
    let f = Fixture::clean(3);
    f.append(&[Entry::data(b"unsynced")], false);
    let run = f.run(&["stat", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let v = json(&run.stdout);
    assert_eq!(v["status"], "clean");
    assert_eq!(v["records"], 4);
    assert_eq!(v["segment_count"], 1);
    assert_eq!(
        (v["first_seq"].as_u64(), v["last_seq"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(v["durable_seq"], 3);
    assert_eq!(v["first_timestamp"], "2026-01-31T09:00:00.000000000Z");
    assert_eq!(v["last_timestamp"], "2026-01-31T09:00:03.000000000Z");
    assert_eq!(v["first_segment"], "00000000000000000001.wal");
    assert_eq!(v["dir"], "<DIR>");
    let segment = &v["segments"][0];
    assert_eq!(segment["first_timestamp"], v["first_timestamp"]);
    assert_eq!(segment["last_timestamp"], v["last_timestamp"]);
}

#[test]
fn stat_table_is_for_people() {
    let f = Fixture::clean(2);
    let run = f.run(&["stat"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let log_id = json(&f.run(&["stat", "--json"]).stdout)["log_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        run.stdout,
        format!(
            "log                <DIR>\n\
             log id             {log_id}\n\
             status             clean\n\
             segments           1 (00000000000000000001.wal)\n\
             records            2\n\
             bytes              12368\n\
             sequence           1 .. 2\n\
             time               2026-01-31T09:00:00.000000000Z .. 2026-01-31T09:00:01.000000000Z\n\
             durable through    2\n\
             not proven durable 0\n\
             writer active      no\n"
        )
    );
}

#[test]
fn stat_of_a_torn_log_exits_1_and_says_why() {
    let f = Fixture::torn(2, 4);
    let run = f.run(&["stat", "--json"]);
    assert_eq!(run.code, 1);
    assert_eq!(json(&run.stdout)["status"], "torn_tail");
    assert!(
        run.stderr.starts_with("walctl: torn damage in"),
        "{}",
        run.stderr
    );
}

#[test]
fn stat_of_a_missing_log_exits_2() {
    let f = Fixture::empty();
    let run = f.run(&["stat"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(
        run.stderr
            .contains("is not a walctl log: the directory does not exist")
    );
}

#[test]
fn stat_segments_lists_each_segment_with_what_its_watermark_proves() {
    let f = Fixture::rotated(40);
    f.append(
        &[Entry::data(b"unsynced-1"), Entry::data(b"unsynced-2")],
        false,
    );
    let run = f.run(&["stat", "--segments"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let report = json(&f.run(&["stat", "--json"]).stdout);
    let segments = report["segments"].as_array().unwrap();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    // The summary counts them and names the first and the last.
    let summary = format!(
        "segments           {} ({} .. {})",
        segments.len(),
        segments[0]["segment"].as_str().unwrap(),
        segments[segments.len() - 1]["segment"].as_str().unwrap()
    );
    assert!(run.stdout.contains(&summary), "{summary} in {}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("segment "))
        .expect("a header row");
    assert_eq!(
        lines[at].split_whitespace().collect::<Vec<_>>(),
        [
            "segment", "records", "sequence", "valid", "bytes", "file", "bytes", "durable",
            "through", "damage", "state"
        ]
    );
    let rows = &lines[at + 1..];
    assert_eq!(rows.len(), segments.len());
    for (row, s) in rows.iter().zip(segments) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        let seq = |k: &str| s[k].as_u64().map_or("-".to_string(), |v| v.to_string());
        assert_eq!(cells[0], s["segment"]);
        assert_eq!(cells[1], s["records"].to_string());
        assert_eq!(
            cells[2..5],
            [seq("first_seq"), "..".into(), seq("last_seq")]
        );
        assert_eq!(cells[5], s["valid_len"].to_string());
        assert_eq!(cells[6], s["bytes"].to_string());
        assert_eq!(cells[7], seq("durable_seq"));
        assert_eq!(cells[8], "0");
    }
    // Each segment's time range follows the one before, and together they span the log's.
    let stamp = |s: &serde_json::Value, k: &str| s[k].as_str().unwrap().to_string();
    assert_eq!(
        stamp(&segments[0], "first_timestamp"),
        stamp(&report, "first_timestamp")
    );
    let last = &segments[segments.len() - 1];
    assert_eq!(
        stamp(last, "last_timestamp"),
        stamp(&report, "last_timestamp")
    );
    for pair in segments.windows(2) {
        // RFC 3339 in UTC with nanoseconds: text order is time order.
        assert!(stamp(&pair[0], "last_timestamp") < stamp(&pair[1], "first_timestamp"));
        assert!(stamp(&pair[0], "first_timestamp") <= stamp(&pair[0], "last_timestamp"));
    }
    let (sealed, active) = rows.split_at(rows.len() - 1);
    assert!(sealed.iter().all(|r| r.ends_with(" sealed")), "{sealed:?}");
    assert!(
        active[0].ends_with(" active, 2 not proven durable"),
        "{}",
        active[0]
    );
}

#[test]
fn stat_segments_counts_damage_where_it_lies() {
    let f = Fixture::torn(2, 4);
    let run = f.run(&["stat", "--segments"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let row = run.stdout.lines().last().unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[0], "00000000000000000001.wal");
    assert_eq!((cells[1], cells[7], cells[8]), ("2", "2", "1"), "{row}");
    assert!(row.ends_with(" active"), "{row}");
}
