//! `walctl verify-export --against-log`: an export is held record by record against the log it
//! came from, so an edit that came with a freshly computed digest is still caught, as are
//! records dropped from the export, records compacted away from the log since, and an export
//! of another log.

mod common;

use common::{Fixture, json};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// Exports the fixture's log to `<tmp>/audit.jsonl` with `filters`.
fn export(f: &Fixture, filters: &[&str]) -> PathBuf {
    let target = f.tmp.path().join("audit.jsonl");
    let mut args = vec!["export-jsonl", "-o", target.to_str().unwrap(), "--force"];
    args.extend(filters);
    let run = f.run(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    target
}

fn against(f: &Fixture, file: &Path, json_flag: bool) -> common::Run {
    let mut args = vec!["verify-export", "--against-log", file.to_str().unwrap()];
    if json_flag {
        args.push("--json");
    }
    f.run(&args)
}

/// Rewrites the export's record lines with `edit` and writes a trailer that matches them: what
/// someone who edits an export can always do.
fn forge(file: &Path, edit: impl Fn(Vec<String>) -> Vec<String>) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut trailer = json(&lines.pop().unwrap());
    let records = edit(lines.split_off(1));
    let mut hasher = Sha256::new();
    for r in &records {
        hasher.update(format!("{r}\n"));
    }
    trailer["records"] = records.len().into();
    trailer["sha256"] = hex(&hasher.finalize()).into();
    lines.extend(records);
    lines.push(trailer.to_string());
    std::fs::write(file, lines.join("\n") + "\n").unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn an_export_true_to_its_log_agrees_across_segments() {
    let f = Fixture::rotated(40);
    let target = export(&f, &[]);
    let run = against(&f, &target, false);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("export holds: 40 records"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        "the log in <DIR> agrees: 40 records match it, none missing in their range"
    );
}

#[test]
fn an_edit_with_a_fresh_digest_holds_alone_but_not_against_the_log() {
    let f = Fixture::clean(3);
    let target = export(&f, &[]);
    forge(&target, |lines| {
        lines
            .into_iter()
            .map(|l| l.replace("record-2", "record-X"))
            .collect()
    });
    let alone = f.run(&["verify-export", target.to_str().unwrap()]);
    assert_eq!(alone.code, 0, "the forged digest holds: {}", alone.stdout);
    let run = against(&f, &target, false);
    assert_eq!((run.code, run.stderr.as_str()), (3, ""));
    assert!(
        run.stdout.ends_with(
            "the export does NOT agree with the log in <DIR>:\n  \
             line 3: record 2 differs from the log in payload\n"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn a_record_dropped_with_a_fresh_trailer_is_missing_from_the_export() {
    let f = Fixture::clean(5);
    let target = export(&f, &["--from", "2"]);
    forge(&target, |mut lines| {
        lines.remove(1); // record 3
        lines
    });
    let run = against(&f, &target, true);
    assert_eq!((run.code, run.stderr.as_str()), (3, ""));
    let v = json(&run.stdout);
    assert_eq!(v["status"], "mismatch");
    assert_eq!(
        v["problems"],
        serde_json::json!([]),
        "the file itself holds"
    );
    let log = &v["log"];
    assert_eq!(log["status"], "differs");
    assert_eq!(
        (log["matched"].as_u64(), log["not_in_export"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(log["completeness_checked"], true);
    assert_eq!(
        log["problems"],
        serde_json::json!(["1 record in the log but missing from the export: 3"])
    );
}

#[test]
fn an_export_selected_by_time_is_checked_record_by_record_only() {
    let f = Fixture::clean(4);
    let target = export(&f, &["--until", "2026-01-31T09:00:01Z"]);
    let run = against(&f, &target, false);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert!(
        run.stdout.ends_with(
            "the log in <DIR> agrees: 2 records match it (the export selected by key or time, so \
             the log's other records were not looked for)\n"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn records_compacted_away_since_the_export_are_named_as_one_range() {
    let f = Fixture::clean(5);
    let target = export(&f, &[]);
    assert_eq!(f.run(&["compact", "--before", "3"]).code, 0);
    let run = against(&f, &target, false);
    assert_eq!(run.code, 3);
    assert!(
        run.stdout.ends_with(
            "  2 records not in the log (compacted away since, or never in it): 1..=2\n"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr,
        "walctl: 3 matching records have moved since the export (the log was compacted)\n"
    );
}

#[test]
fn an_export_of_another_log_names_both_logs() {
    let other = Fixture::clean(3);
    let target = export(&other, &[]);
    let f = Fixture::clean(3);
    let run = against(&f, &target, true);
    assert_eq!(run.code, 3);
    let v = json(&run.stdout);
    let theirs = json(&other.run(&["stat", "--json"]).stdout)["log_id"].clone();
    let ours = json(&f.run(&["stat", "--json"]).stdout)["log_id"].clone();
    assert_eq!(v["log"]["log_id"], ours);
    let first = v["log"]["problems"][0].as_str().unwrap();
    assert_eq!(
        first,
        format!(
            "the export names log {}, but the log in <DIR> is {}",
            theirs.as_str().unwrap(),
            ours.as_str().unwrap()
        )
    );
}

#[test]
fn a_long_log_is_merged_across_batches() {
    // More records than one batch of the log's scan holds (256): the merge must carry on
    // across batch boundaries, and still find one record dropped from the third batch.
    let f = Fixture::clean(700);
    let target = export(&f, &[]);
    let run = against(&f, &target, false);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert!(
        run.stdout.contains("agrees: 700 records match it"),
        "{}",
        run.stdout
    );
    forge(&target, |mut lines| {
        lines.remove(599); // record 600
        lines
    });
    let run = against(&f, &target, true);
    assert_eq!(run.code, 3);
    assert_eq!(
        json(&run.stdout)["log"]["problems"],
        serde_json::json!(["1 record in the log but missing from the export: 600"])
    );
}

#[test]
fn differing_lines_past_twenty_are_counted_but_not_listed() {
    // Twenty differing lines are listed one by one; from the twenty-first on, only counted.
    for (changed, more) in [(20, None), (21, Some("and 1 more records that differ"))] {
        let f = Fixture::clean(30);
        let target = export(&f, &[]);
        forge(&target, |lines| {
            lines
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    if i < changed {
                        l.replace("\"payload\":\"record-", "\"payload\":\"edited-")
                    } else {
                        l
                    }
                })
                .collect()
        });
        let run = against(&f, &target, true);
        assert_eq!(run.code, 3, "{run:?}");
        let log = &json(&run.stdout)["log"];
        assert_eq!(log["differ"], changed, "{changed}");
        assert_eq!(log["matched"], 30 - changed, "{changed}");
        let problems: Vec<&str> = log["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let listed: Vec<&str> = problems[..20].to_vec();
        for (i, p) in listed.iter().enumerate() {
            let want = format!(
                "line {}: record {} differs from the log in payload",
                i + 2,
                i + 1
            );
            assert_eq!(*p, want, "{changed}");
        }
        assert_eq!(problems.get(20).copied(), more, "{changed}: {problems:?}");
        assert_eq!(
            problems.len(),
            20 + usize::from(more.is_some()),
            "{changed}"
        );
    }
}
