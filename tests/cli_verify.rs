//! `walctl verify`: the verdict and its exit code on a clean log, a torn tail, a zero-filled
//! tail, mid-log corruption, a read-only copy, logs that are not there, and damage in more places
//! than a report lists one by one.

mod common;

use common::{Fixture, clean_offset, json};
use serde_json::json;

#[test]
fn clean_log_verifies_clean_and_exits_0() {
    let f = Fixture::clean(3);
    let run = f.run(&["verify"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "status          clean\nrecords         3\nsequence        1 .. 3\n\
         durable through 3\nsegments        1\nbytes           12408\ndamage          0\n"
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn clean_log_json_has_the_contract_fields() {
    let f = Fixture::clean(3);
    let run = f.run(&["verify", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let v = json(&run.stdout);
    assert_eq!(v["status"], "clean");
    assert_eq!(v["records"], 3);
    assert_eq!(v["first_seq"], 1);
    assert_eq!(v["last_seq"], 3);
    assert_eq!(v["bytes"], 12408);
    assert_eq!(v["durable_seq"], 3);
    assert_eq!(v["damage"], json!([]));
    assert_eq!(v["writer_active"], false);
    assert_eq!(v["segments"][0]["segment"], "00000000000000000001.wal");
}

#[test]
fn torn_tail_exits_1_and_names_the_damage() {
    let f = Fixture::torn(3, 5);
    let run = f.run(&["verify", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (1, ""), "{run:?}");
    let v = json(&run.stdout);
    assert_eq!(v["status"], "torn_tail");
    assert_eq!(v["records"], 3);
    let d = &v["damage"][0];
    assert_eq!(d["segment"], "00000000000000000001.wal");
    assert_eq!(d["offset"], clean_offset(4));
    assert_eq!(d["kind"], "truncated_record");
    assert_eq!(d["class"], "torn");
    assert_eq!(d["length"], 32 + 15 - 5);
    assert_eq!(d["last_good_seq"], 3);
    assert_eq!(d["records_after"], 0);
}

#[test]
fn torn_tail_text_shows_each_damage_and_the_next_step() {
    let f = Fixture::torn(3, 5);
    let run = f.run(&["verify"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        "status          torn_tail\nrecords         3\nsequence        1 .. 3\n\
         durable through 3\nsegments        1\nbytes           12450\ndamage          1\n\
         \ndamage 1 of 1 (torn):\n\
         \x20 segment       00000000000000000001.wal\n\
         \x20 offset        12408\n\
         \x20 kind          truncated_record\n\
         \x20 bytes         42\n\
         \x20 last good seq 3\n\
         \x20 records after 0\n\
         \x20 detail        a record cut short by the end of the file; 42 bytes up to the end of the file\n"
    );
    assert_eq!(
        run.stderr,
        "walctl: the log has a torn tail (bytes never acknowledged as durable); \
         `walctl repair --truncate-partial` cuts it and keeps the bytes in a side file\n"
    );
}

#[test]
fn zero_filled_tail_is_a_torn_tail() {
    let f = Fixture::clean(3);
    f.append_zeros(4096);
    let run = f.run(&["verify", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let v = json(&run.stdout);
    assert_eq!(v["status"], "torn_tail");
    assert_eq!(v["damage"][0]["kind"], "zero_fill");
    assert_eq!(v["damage"][0]["offset"], clean_offset(4));
    assert_eq!(v["damage"][0]["length"], 4096);
}

#[test]
fn mid_log_corruption_exits_3_and_counts_the_records_after_it() {
    let f = Fixture::clean(5);
    f.flip_byte(clean_offset(2) + common::HEADER);
    let run = f.run(&["verify", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (3, ""), "{run:?}");
    let v = json(&run.stdout);
    assert_eq!(v["status"], "corrupt");
    assert_eq!(v["records"], 4);
    let d = &v["damage"][0];
    assert_eq!(d["offset"], clean_offset(2));
    assert_eq!(d["kind"], "checksum");
    assert_eq!(d["class"], "corrupt");
    assert_eq!(d["last_good_seq"], 1);
    assert_eq!(d["records_after"], 3);
}

#[test]
fn mid_log_corruption_text_advises_against_truncation() {
    let f = Fixture::clean(5);
    f.flip_byte(clean_offset(2) + common::HEADER);
    let run = f.run(&["verify"]);
    assert_eq!(run.code, 3);
    assert!(
        run.stdout.starts_with("status          corrupt\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .starts_with("walctl: the log is corrupt; truncating would lose")
    );
    assert!(
        run.stderr
            .contains("3 valid records lie after the first damage"),
        "{}",
        run.stderr
    );
}

#[test]
#[cfg(unix)] // Unix modes
fn read_only_copy_of_a_log_verifies() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = Fixture::clean(2);
    let copy = f.tmp.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&f.dir).unwrap() {
        let entry = entry.unwrap();
        let target = copy.join(entry.file_name());
        std::fs::copy(entry.path(), &target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o555)).unwrap();
    let run = f.run_cmd(
        common::walctl()
            .arg("--dir")
            .arg(&copy)
            .args(["verify", "--json"]),
    );
    // Give the temp dir's cleanup its permissions back.
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(json(&run.stdout)["records"], 2);
    assert_eq!(json(&run.stdout)["status"], "clean");
}

#[test]
fn missing_directory_exits_2_with_a_clear_message() {
    let f = Fixture::empty();
    let run = f.run(&["verify"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert_eq!(
        run.stderr,
        "walctl: verifying the log in <DIR>: <DIR> is not a walctl log: the directory does not exist\n"
    );
}

#[test]
fn directory_without_segments_is_not_a_log() {
    let f = Fixture::empty();
    std::fs::create_dir(&f.dir).unwrap();
    let run = f.run(&["verify"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(run.stderr.contains("is not a walctl log"), "{}", run.stderr);
}

#[test]
fn text_notes_a_live_writer_its_record_in_progress_and_stray_files() {
    let f = Fixture::clean(3);
    std::fs::write(f.dir.join("1.wal"), "a segment renamed by hand").unwrap();
    let writer = walctl::Log::open(&f.dir, common::writer_options()).unwrap();
    let run = f.run(&["verify"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert!(
        run.stdout.ends_with(
            "note: a writer held the lock during the scan\n\
             note: ignored 1.wal: not a segment name\n"
        ),
        "{}",
        run.stdout
    );
    // What the writer has begun to write past its last record is its business, not damage.
    f.append_zeros(40);
    let run = f.run(&["verify"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    let note = format!(
        "note: a writer is active; its record in progress at offset {} of \
         00000000000000000001.wal (40 bytes) is not damage\n",
        clean_offset(4)
    );
    assert!(run.stdout.contains(&note), "{}", run.stdout);
    // A script reading the JSON report gets the same place.
    let run = f.run(&["verify", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        report["in_progress"],
        serde_json::json!({
            "segment": "00000000000000000001.wal",
            "offset": clean_offset(4),
            "length": 40,
        })
    );
    assert_eq!(report["writer_active"], true);
    drop(writer);
}

#[test]
fn on_a_terminal_a_progress_bar_counts_the_bytes_unless_no_color_is_set() {
    let f = Fixture::rotated(30);
    let Some(watched) = f.run_on_a_terminal(&["verify"], "") else {
        return;
    };
    assert_eq!(watched.code, 0, "{watched:?}");
    // The bar is drawn as the scan starts (at 0 bytes), moves as records pass, and is cleared.
    let draws: Vec<&str> = watched
        .stdout
        .split("walctl: scanning [")
        .skip(1)
        .filter_map(|d| d.split_once("] ").map(|(_, counts)| counts))
        .collect();
    assert!(
        draws.first().is_some_and(|d| d.starts_with("0 B/"))
            && draws.iter().any(|d| !d.starts_with("0 B/")),
        "{}",
        watched.stdout
    );
    let plain = f
        .run_on_a_terminal_with(&[("NO_COLOR", "1")], &["verify"], "")
        .unwrap();
    assert_eq!(plain.code, 0, "{plain:?}");
    assert!(!plain.stdout.contains("scanning"), "{}", plain.stdout);
}

#[test]
fn on_a_terminal_the_progress_scan_reaches_the_same_verdict_and_text() {
    // With a person watching, verify scans in order to drive its bar instead of verifying
    // segments in parallel: the two paths must agree on every line of the report.
    let f = Fixture::rotated(30);
    let last = f.segment(10);
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 9)
        .unwrap();
    let plain = f.run(&["verify"]);
    assert_eq!(plain.code, 3, "an acknowledged record cut short: {plain:?}");
    let Some(watched) = f.run_on_a_terminal(&["verify"], "") else {
        return;
    };
    assert_eq!(watched.code, plain.code, "{watched:?}");
    for line in plain.stdout.lines() {
        let line = line.replace("<DIR>", &f.dir.display().to_string());
        assert!(
            watched.stdout.contains(&line),
            "{line:?} in {}",
            watched.stdout
        );
    }
}

#[test]
fn a_log_damaged_in_hundreds_of_places_lists_the_first_and_condenses_the_rest() {
    // 350 damaged places in one segment: 256 are listed, the other 94 are one entry.
    let f = Fixture::riddled(700);
    let run = f.run(&["verify"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: Vec<String> = run.stdout.lines().map(words).collect();
    assert!(
        lines.contains(&"damage 350 places in 257 entries".to_string()),
        "{}",
        run.stdout
    );
    let last = lines
        .iter()
        .position(|l| l == "damage 257 of 257 (corrupt):")
        .unwrap();
    assert_eq!(lines[last + 3], "kind many_places");
    assert!(
        lines[last + 7]
            .starts_with("detail 94 damaged places (checksum) with 93 valid records among them"),
        "{}",
        lines[last + 7]
    );
    assert!(!lines.iter().any(|l| l.starts_with("damage 258 of")));
    let v = json(&f.run(&["verify", "--json"]).stdout);
    assert_eq!(v["damaged_places"], 350);
    let damage = v["damage"].as_array().unwrap();
    assert_eq!(damage.len(), 257);
    assert_eq!(
        (damage[0]["places"].as_u64(), damage[0]["kind"].as_str()),
        (Some(1), Some("checksum"))
    );
    assert_eq!(damage[256]["places"], 94);
    assert_eq!(damage[256]["records_within"], 93);
    assert_eq!(
        damage[256]["records_after"], 93,
        "the valid records after its first place"
    );
}
