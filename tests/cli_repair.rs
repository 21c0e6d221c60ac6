//! `walctl repair --truncate-partial`: a torn tail is cut (bytes saved, cut journaled), a
//! zero-filled tail too; mid-log corruption is refused with every file byte-identical; dry runs
//! and refusals change nothing; the plan counts the valid records a cut drops.

mod common;

use common::{Fixture, clean_offset, json};
use serde_json::json;

const SEGMENT: &str = "00000000000000000001.wal";

#[test]
fn torn_tail_is_cut_by_repair_and_the_log_verifies_clean() {
    let f = Fixture::torn(3, 5);
    let before = std::fs::read(f.segment(1)).unwrap();
    let offset = clean_offset(4);
    let run = f.run(&["repair", "--truncate-partial", "--yes"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    let side = format!("{SEGMENT}.cut-{offset:020}");
    let sha = walctl::repair::hex(&sha2_of(&before[offset as usize..]));
    assert_eq!(
        run.stdout,
        format!(
            "cut 42 bytes at offset {offset} of {SEGMENT}; the last surviving record is seq 3\n\
             the cut bytes are saved in <DIR>/{side} (sha256 {sha}); the cut is recorded in \
             <DIR>/repair.jsonl\n"
        )
    );
    assert_eq!(
        std::fs::read(f.dir.join(&side)).unwrap(),
        &before[offset as usize..]
    );
    assert_eq!(std::fs::metadata(f.segment(1)).unwrap().len(), offset);
    let journal = std::fs::read_to_string(f.dir.join("repair.jsonl")).unwrap();
    let entry = json(journal.lines().last().unwrap());
    assert_eq!(entry["offset"], offset);
    assert_eq!(entry["bytes_cut"], 42);
    assert_eq!(entry["sha256"], sha.as_str());
    let verify = f.run(&["verify", "--json"]);
    assert_eq!(verify.code, 0);
    assert_eq!(json(&verify.stdout)["records"], 3);
}

#[test]
fn torn_tail_cut_reports_json() {
    let f = Fixture::torn(2, 1);
    let run = f.run(&["repair", "--truncate-partial", "--yes", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    let v = json(&run.stdout);
    assert_eq!(v["status"], "cut");
    assert_eq!(v["segment"], SEGMENT);
    assert_eq!(v["offset"], clean_offset(3));
    assert_eq!(v["bytes_cut"], 46);
    assert_eq!(v["records_lost"], 0);
    assert_eq!(v["last_seq"], 2);
    assert_eq!(v["journal"], "repair.jsonl");
    assert_eq!(
        v["durability_degraded"], false,
        "this file system fsyncs directories"
    );
    assert_eq!(
        v["side_file"],
        format!("{SEGMENT}.cut-{:020}", clean_offset(3))
    );
}

#[test]
fn zero_filled_tail_is_cut() {
    let f = Fixture::clean(3);
    f.append_zeros(4096);
    let run = f.run(&["repair", "--truncate-partial", "--yes", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(json(&run.stdout)["bytes_cut"], 4096);
    assert_eq!(f.run(&["verify"]).code, 0);
    assert_eq!(f.payloads().len(), 3);
}

#[test]
fn dry_run_prints_the_plan_changes_nothing_and_exits_1() {
    let f = Fixture::torn(3, 5);
    let before = f.snapshot();
    let run = f.run(&["repair", "--truncate-partial", "--dry-run"]);
    assert_eq!((run.code, run.stderr.as_str()), (1, ""), "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "plan: cut the torn tail of {SEGMENT} at offset {}: 42 bytes, 0 records lost, \
             last surviving seq 3\ndry run: nothing was changed\n",
            clean_offset(4)
        )
    );
    assert_eq!(f.snapshot(), before);
}

#[test]
fn dry_run_json_is_the_plan() {
    let f = Fixture::torn(3, 5);
    let run = f.run(&["repair", "--truncate-partial", "--dry-run", "--json"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        json(&run.stdout),
        json!({
            "status": "planned", "dry_run": true, "segment": SEGMENT, "offset": clean_offset(4),
            "bytes_cut": 42, "records_lost": 0, "last_seq": 3,
            "sha256": null, "side_file": null, "journal": null, "durability_degraded": null,
        })
    );
}

#[test]
fn mid_log_corruption_is_refused_with_all_files_byte_identical() {
    let f = Fixture::clean(5);
    f.flip_byte(clean_offset(2) + common::HEADER);
    let before = f.snapshot();
    let run = f.run(&["repair", "--truncate-partial", "--yes"]);
    assert_eq!((run.code, run.stdout.as_str()), (3, ""), "{run:?}");
    assert!(run.stderr.starts_with("walctl: repairing the log in <DIR>: the log is corrupt and was left unchanged: checksum in segment 00000000000000000001.wal at offset 12328"), "{}", run.stderr);
    assert_eq!(f.snapshot(), before);
}

#[test]
fn corrupt_dry_run_is_refused_too() {
    let f = Fixture::clean(5);
    f.flip_byte(clean_offset(2) + common::HEADER);
    let before = f.snapshot();
    let run = f.run(&["repair", "--truncate-partial", "--dry-run", "--json"]);
    assert_eq!((run.code, run.stdout.as_str()), (3, ""));
    assert!(run.stderr.contains("the log is corrupt"), "{}", run.stderr);
    assert_eq!(f.snapshot(), before);
}

#[test]
fn clean_log_has_nothing_to_cut() {
    let f = Fixture::clean(2);
    let before = f.snapshot();
    let run = f.run(&["repair", "--truncate-partial", "--yes"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "the log is clean: nothing to cut\n", "")
    );
    assert_eq!(f.snapshot(), before);
}

#[test]
fn without_a_terminal_and_without_yes_it_refuses_with_exit_2() {
    let f = Fixture::torn(3, 5);
    let before = f.snapshot();
    let run = f.run_stdin(&["repair", "--truncate-partial"], "y\n");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stdout.starts_with("plan: cut the torn tail"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr,
        "walctl: not cutting without confirmation: stdin is not a terminal; pass --yes to cut \
         (or --dry-run to only see the plan)\n"
    );
    assert_eq!(f.snapshot(), before);
}

#[test]
fn the_truncate_partial_flag_is_required() {
    let f = Fixture::torn(3, 5);
    let run = f.run(&["repair", "--yes"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(run.stderr.contains("--truncate-partial"), "{}", run.stderr);
}

#[test]
fn a_held_lock_exits_4() {
    let f = Fixture::torn(3, 5);
    let _writer = walctl::Log::open(&f.dir, common::writer_options()).expect("open the writer");
    // Opening as the writer cut the tail itself; what matters is that repair waits and gives up.
    let run = f.run(&["repair", "--truncate-partial", "--yes", "--wait", "0.2"]);
    assert_eq!((run.code, run.stdout.as_str()), (4, ""), "{run:?}");
    assert!(
        run.stderr.contains("locked by another writer"),
        "{}",
        run.stderr
    );
}

fn sha2_of(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).to_vec()
}

#[test]
fn on_a_terminal_yes_at_the_prompt_cuts() {
    let f = Fixture::torn(2, 3);
    let Some(run) = f.run_on_a_terminal(&["repair", "--truncate-partial"], "y\n") else {
        return;
    };
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("[y/N]"), "{}", run.stdout);
    assert!(
        run.stdout.contains("the last surviving record is seq 2"),
        "{}",
        run.stdout
    );
    assert_eq!(f.run(&["verify"]).code, 0);
}

#[test]
fn on_a_terminal_no_at_the_prompt_changes_nothing() {
    let f = Fixture::torn(2, 3);
    let before = f.snapshot();
    let Some(run) = f.run_on_a_terminal(&["repair", "--truncate-partial"], "n\n") else {
        return;
    };
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stdout.contains("not confirmed; nothing was changed"),
        "{}",
        run.stdout
    );
    assert_eq!(f.snapshot(), before);
}

#[test]
fn the_plan_counts_every_valid_record_the_cut_drops_and_names_the_last_that_survives() {
    // Synced through 5; of the unsynced 6 to 10, power loss damaged 6 and 9. Everything from 6
    // on is cut, including the valid 7, 8 and 10.
    let f = Fixture::clean(5);
    let tail: Vec<String> = (6..=10).map(|i| format!("record-{}", i % 10)).collect();
    let entries: Vec<walctl::Entry<'_>> = tail
        .iter()
        .map(|p| walctl::Entry::data(p.as_bytes()))
        .collect();
    f.append(&entries, false);
    for seq in [6, 9] {
        f.flip_byte(clean_offset(seq) + 33);
    }
    let run = f.run(&["repair", "--truncate-partial", "--dry-run", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let v = json(&run.stdout);
    assert_eq!(v["offset"], clean_offset(6));
    assert_eq!(
        (v["records_lost"].as_u64(), v["last_seq"].as_u64()),
        (Some(3), Some(5)),
        "{v}"
    );
}

#[test]
fn the_cut_and_its_journal_name_the_last_record_before_it_not_one_it_removed() {
    let f = Fixture::clean(5);
    f.append(
        &[
            walctl::Entry::data(b"record-6"),
            walctl::Entry::data(b"record-7"),
        ],
        false,
    );
    f.flip_byte(clean_offset(6) + 33);
    let run = f.run(&["repair", "--truncate-partial", "--yes"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("the last surviving record is seq 5\n"),
        "{}",
        run.stdout
    );
    let journal = std::fs::read_to_string(f.dir.join("repair.jsonl")).unwrap();
    let entry = json(journal.lines().last().unwrap());
    assert_eq!(
        (entry["last_seq"].as_u64(), entry["records_lost"].as_u64()),
        (Some(5), Some(1))
    );
    assert_eq!(json(&f.run(&["verify", "--json"]).stdout)["last_seq"], 5);
}
