//! `walctl salvage --to DIR`: every valid record of a damaged log, with its sequence number, into
//! a new log; each run of lost numbers named with its damage; the damaged log only read; exit 0
//! when nothing was lost, 1 for a left-out torn tail, 3 for lost acknowledged records, 2 when
//! nothing could be salvaged.

mod common;

use common::{Fixture, json, records};

fn salvage(f: &Fixture, json_flag: bool) -> common::Run {
    let mut args = vec!["salvage", "--to", "salvaged"];
    if json_flag {
        args.push("--json");
    }
    f.run(&args)
}

/// Replaces the new log's random id with `<ID>`.
fn without_id(text: &str) -> String {
    let re_start = text.find("(id ").map(|i| i + 4);
    match re_start {
        Some(i) => format!("{}<ID>{}", &text[..i], &text[i + 16..]),
        None => text.to_string(),
    }
}

#[test]
fn a_corrupt_log_is_salvaged_around_its_damage_and_left_as_it_was() {
    let f = Fixture::clean(5);
    f.flip_byte(common::clean_offset(3) + 20);
    let before = f.snapshot();
    let run = salvage(&f, false);
    assert_eq!((run.code, run.stderr.as_str()), (3, ""));
    let lines: Vec<String> = run.stdout.lines().map(without_id).collect();
    assert_eq!(
        lines[..3],
        [
            "salvaged 4 records (1 .. 5) into <TMP>/salvaged, a new log (id <ID>)".to_string(),
            format!(
                "lost: 3 (acknowledged): checksum in 00000000000000000001.wal at offset {}",
                common::clean_offset(3)
            ),
            "next sequence number: 6".to_string(),
        ]
    );
    assert!(
        lines[3].starts_with("sha256 of the salvaged records: "),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], "the damaged log in <DIR> was only read");
    assert_eq!(f.snapshot(), before, "the damaged log is only read");
    let new_log = f.tmp.path().join("salvaged");
    let seqs: Vec<u64> = records(&new_log).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 4, 5]);
    let verify = f.run_cmd(common::walctl().arg("--dir").arg(&new_log).arg("verify"));
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

#[test]
fn a_clean_log_is_copied_whole_and_exits_0() {
    let f = Fixture::rotated(30);
    let run = salvage(&f, true);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let v = json(&run.stdout);
    assert_eq!(
        (v["records"].as_u64(), v["next_seq"].as_u64()),
        (Some(30), Some(31))
    );
    assert_eq!(v["source_status"], "clean");
    assert_eq!(v["lost"], serde_json::json!([]));
    assert_eq!(v["target"], "<TMP>/salvaged");
    let copied = records(&f.tmp.path().join("salvaged"));
    assert_eq!(
        copied,
        records(&f.dir)
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.location = copied[(r.seq - 1) as usize].location;
                r.crc = copied[(r.seq - 1) as usize].crc;
                r
            })
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_target_under_missing_directories_is_created_with_them() {
    let f = Fixture::clean(5);
    let run = f.run(&["salvage", "--to", "rescue/2026/log"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{}", run.stdout);
    let new_log = f.tmp.path().join("rescue/2026/log");
    let seqs: Vec<u64> = records(&new_log).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

#[test]
fn a_torn_tail_is_left_out_with_exit_1() {
    let f = Fixture::torn(3, 4);
    let run = salvage(&f, true);
    assert_eq!((run.code, run.stderr.as_str()), (1, ""));
    let v = json(&run.stdout);
    assert_eq!(v["records"], 3);
    assert_eq!(v["lost"][0]["first"], 4);
    assert_eq!(v["lost"][0]["last"], serde_json::Value::Null);
    assert_eq!(v["lost"][0]["acknowledged"], false);
    assert_eq!(v["lost"][0]["damage"]["class"], "torn");
    let text = salvage(&Fixture::torn(3, 4), false);
    assert!(
        text.stdout
            .contains("lost: from 4 on, an unknown number never acknowledged: "),
        "{}",
        text.stdout
    );
}

#[test]
fn an_existing_target_is_refused_with_exit_2() {
    let f = Fixture::clean(2);
    std::fs::create_dir(f.tmp.path().join("salvaged")).unwrap();
    let run = salvage(&f, false);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert_eq!(
        run.stderr,
        "walctl: salvaging the log in <DIR> into <TMP>/salvaged: invalid options: \
         <TMP>/salvaged exists: salvage writes a new log into a directory it creates, never \
         into an existing one\n"
    );
}

#[test]
fn an_interrupted_salvage_is_refused_by_every_command() {
    let f = Fixture::clean(2);
    assert_eq!(salvage(&f, false).code, 0);
    let new_log = f.tmp.path().join("salvaged");
    std::fs::write(new_log.join("SALVAGE-INCOMPLETE"), "").unwrap();
    for args in [&["verify"][..], &["dump"], &["append", "x"], &["stat"]] {
        let run = f.run_cmd(common::walctl().arg("--dir").arg(&new_log).args(args));
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert!(
            run.stderr
                .contains("a salvage into it was interrupted (SALVAGE-INCOMPLETE is present)"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn a_dry_run_tells_the_cost_and_writes_nothing() {
    let f = Fixture::clean(5);
    f.flip_byte(common::clean_offset(3) + 20);
    let run = f.run(&["salvage", "--to", "salvaged", "--dry-run"]);
    assert_eq!((run.code, run.stderr.as_str()), (3, ""));
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "would salvage 4 records (1 .. 5) into <TMP>/salvaged"
    );
    assert!(
        lines[1].starts_with("lost: 3 (acknowledged): checksum"),
        "{}",
        lines[1]
    );
    assert_eq!(lines.last(), Some(&"dry run: nothing was written"));
    assert!(!f.tmp.path().join("salvaged").exists());
    let v = json(
        &f.run(&["salvage", "--to", "salvaged", "--dry-run", "--json"])
            .stdout,
    );
    assert_eq!(
        (v["dry_run"].as_bool(), v["records"].as_u64()),
        (Some(true), Some(4))
    );
    assert_eq!(v["log_id"], serde_json::Value::Null);
}

#[test]
fn a_loss_straddling_the_watermark_says_how_far_it_was_acknowledged() {
    let f = Fixture::clean(5);
    f.append(
        &[walctl::Entry::data(b"u6"), walctl::Entry::data(b"u7")],
        false,
    );
    // Zero the end of record 5 (synced) and the start of record 6 (not): record 7 stays valid.
    let from = common::clean_offset(5) + 10;
    common::Fixture::overwrite(&f.segment(1), from, &[0; 50]);
    let run = salvage(&f, false);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let lost: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("lost: "))
        .collect();
    assert_eq!(lost.len(), 1, "{}", run.stdout);
    assert!(
        lost[0].starts_with("lost: 5 .. 6 (acknowledged through 5): "),
        "{}",
        lost[0]
    );
    let seqs: Vec<u64> = records(&f.tmp.path().join("salvaged"))
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 7]);
}

#[test]
fn a_log_with_a_live_writer_is_not_salvaged() {
    let f = Fixture::clean(3);
    let writer = walctl::Log::open(&f.dir, common::writer_options()).unwrap();
    let run = salvage(&f, false);
    drop(writer);
    assert_eq!((run.code, run.stdout.as_str()), (4, ""), "{}", run.stderr);
    assert!(run.stderr.contains("locked"), "{}", run.stderr);
    assert!(!f.tmp.path().join("salvaged").exists());
}

#[test]
fn every_lost_run_is_reported_past_the_librarys_list_in_text_and_json() {
    // 8,392 records, every other one damaged: 4,196 runs of one record, 100 past the 4,096 the
    // library's report lists; the rest come from salvage's spool file, in order.
    let f = Fixture::riddled(8_392);
    let run = salvage(&f, false);
    assert_eq!((run.code, run.stderr.as_str()), (3, ""));
    let lost: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("lost: "))
        .collect();
    assert_eq!(lost.len(), 4_196);
    for (line, seq) in lost.iter().zip((2..).step_by(2)) {
        let want = format!("{seq} (acknowledged): ");
        assert!(line.starts_with(&want), "{line}: expected {want}");
    }
    assert!(
        lost[4_195].contains("many_places in 00000000000000000001.wal"),
        "{}",
        lost[4_195]
    );
    let v = json(&f.run(&["salvage", "--to", "again", "--json"]).stdout);
    assert_eq!(v["lost_ranges"].as_u64(), Some(4_196));
    let ranges = v["lost"].as_array().expect("a lost list");
    let firsts: Vec<u64> = ranges.iter().filter_map(|r| r["first"].as_u64()).collect();
    assert_eq!(firsts, (2..=8_392).step_by(2).collect::<Vec<_>>());
    assert!(
        ranges
            .iter()
            .all(|r| r["first"] == r["last"] && r["damage"].is_object())
    );
}
