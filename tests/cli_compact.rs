//! `walctl compact`: the report and its proof, dry runs that write nothing, and refusals of a
//! corrupt log (exit 3) and a torn tail (exit 1) with every file unchanged.

mod common;

use common::{Fixture, json};
use walctl::Entry;

/// Keys `a` (written twice) and `b` (deleted), plus one keyless record.
fn keyed() -> Fixture {
    let f = Fixture::empty();
    f.append(
        &[
            Entry::keyed(b"a", b"1"),
            Entry::keyed(b"a", b"2"),
            Entry::keyed(b"b", b"x"),
            Entry::tombstone(b"b"),
            Entry::data(b"plain"),
        ],
        true,
    );
    f
}

#[test]
fn keys_compaction_keeps_the_latest_value_and_proves_it() {
    let f = keyed();
    let run = f.run(&["compact", "--keys", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    let v = json(&run.stdout);
    assert_eq!(v["before"]["records"], 5);
    assert_eq!(v["after"]["records"], 2);
    assert_eq!(
        (
            v["dropped_superseded"].as_u64(),
            v["dropped_deleted"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(v["keys_kept"], 1);
    assert_eq!(v["unchanged"], false);
    assert_eq!(v["proof_holds"], true);
    assert_eq!(v["digest_expected"], v["digest_installed"]);
    assert_eq!(v["next_seq"], 6);
    assert_eq!(f.payloads(), [b"2".to_vec(), b"plain".to_vec()]);
    assert_eq!(f.run(&["verify"]).code, 0);
}

#[test]
fn before_compaction_drops_the_records_below_the_checkpoint() {
    let f = Fixture::clean(5);
    let run = f.run(&["compact", "--before", "4"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert!(
        run.stdout.contains("dropped by --before        3"),
        "{}",
        run.stdout
    );
    let sequence = run.stdout.lines().find(|l| l.starts_with("sequence"));
    assert_eq!(
        sequence.map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["sequence", "1", "..", "5", "4", "..", "5"]),
        "the ranges before and after: {}",
        run.stdout
    );
    let digest = |name: &str| {
        let line = run.stdout.lines().find(|l| l.starts_with(name));
        line.and_then(|l| l.split_whitespace().last()).map(str::len)
    };
    // Both digests are shown after a real compaction (a dry run reads nothing back).
    assert_eq!(
        (digest("survivors sha256"), digest("read back sha256")),
        (Some(64), Some(64)),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .trim_end()
            .ends_with("result                     compacted"),
        "{}",
        run.stdout
    );
    assert_eq!(f.payloads(), [b"record-4".to_vec(), b"record-5".to_vec()]);
}

/// `--before 40` on a log whose next sequence number is 6 is a typo for 4 (or a caller ahead
/// of the log): refused, exit 2, naming the next sequence number, and nothing changes.
/// `--before 6` empties the log on purpose.
#[test]
fn before_past_the_next_sequence_number_is_refused() {
    let f = Fixture::clean(5);
    let before = f.snapshot();
    let run = f.run(&["compact", "--before", "40"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{run:?}");
    assert!(
        run.stderr
            .contains("past the log's next sequence number, 6")
            && run.stderr.contains("nothing was changed"),
        "{}",
        run.stderr
    );
    assert_eq!(f.snapshot(), before);
    let run = f.run(&["compact", "--before", "6"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert!(f.payloads().is_empty());
    assert_eq!(f.run(&["append", "next"]).stdout, "6\n");
}

/// A rule that drops nothing leaves the log as it is, says so, and is not a failure: the log
/// holds exactly the survivors (`proof_holds`), though there is nothing to digest.
#[test]
fn a_rule_that_drops_nothing_leaves_the_log_as_it_is() {
    let f = Fixture::clean(3);
    let before = f.snapshot();
    let run = f.run(&["compact", "--keys"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    let last = run.stdout.lines().last().unwrap_or_default();
    assert_eq!(
        last.split_whitespace().collect::<Vec<_>>(),
        [
            "result", "nothing", "to", "drop:", "the", "log", "was", "left", "as", "it", "is"
        ]
    );
    assert!(!run.stdout.contains("sha256"), "{}", run.stdout);
    for (args, proof) in [
        (&["compact", "--before", "1", "--json"][..], true),
        (&["compact", "--keys", "--dry-run", "--json"], false),
    ] {
        let run = f.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        let v = json(&run.stdout);
        assert_eq!(v["unchanged"], true, "{args:?}");
        assert_eq!(v["proof_holds"], proof, "{args:?}");
        assert_eq!(v["after"], v["before"], "{args:?}");
        assert_eq!(v["digest_expected"], serde_json::Value::Null, "{args:?}");
        assert_eq!(v["digest_installed"], serde_json::Value::Null, "{args:?}");
    }
    assert_eq!(f.snapshot(), before);
    assert_eq!(f.run(&["append", "next"]).stdout, "4\n");
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let f = keyed();
    let before = f.snapshot();
    let run = f.run(&["compact", "--keys", "--dry-run", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let v = json(&run.stdout);
    assert_eq!(
        (v["dry_run"].as_bool(), v["after"]["records"].as_u64()),
        (Some(true), Some(2))
    );
    assert_eq!(v["digest_installed"], serde_json::Value::Null);
    assert_eq!(f.snapshot(), before);
}

#[test]
fn a_corrupt_log_is_refused_with_exit_3_and_left_unchanged() {
    let f = Fixture::clean(4);
    f.flip_byte(common::clean_offset(2) + common::HEADER);
    let before = f.snapshot();
    let run = f.run(&["compact", "--keys"]);
    assert_eq!((run.code, run.stdout.as_str()), (3, ""));
    assert!(
        run.stderr
            .starts_with("walctl: compacting the log in <DIR>: the log is corrupt"),
        "{}",
        run.stderr
    );
    assert_eq!(f.snapshot(), before);
}

#[test]
fn a_torn_tail_is_refused_with_exit_1_until_repaired() {
    let f = Fixture::torn(3, 4);
    let before = f.snapshot();
    let run = f.run(&["compact", "--before", "2"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
    assert!(run.stderr.contains("--truncate-partial"), "{}", run.stderr);
    assert_eq!(f.snapshot(), before);
}

#[test]
fn a_rule_is_required() {
    let f = Fixture::clean(1);
    let run = f.run(&["compact"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(
        run.stderr.contains("<--before <SEQ>|--keys>"),
        "{}",
        run.stderr
    );
}

/// An I/O error mid-compaction (here the marker's temporary name is taken by a directory, which
/// cannot be removed as a file) exits 2, names the file, and says what the log holds and what
/// to do; the log is left whole.
#[test]
fn an_io_error_names_the_file_and_says_the_log_is_whole_and_what_to_do() {
    let f = Fixture::clean(5);
    std::fs::create_dir(f.dir.join("COMPACTION.tmp")).unwrap();
    let run = f.run(&["compact", "--before", "4"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{run:?}");
    let stderr = run.stderr.trim_end();
    assert!(
        stderr.starts_with("walctl: compacting the log in "),
        "{stderr}"
    );
    assert!(stderr.contains("COMPACTION.tmp"), "{stderr}");
    assert!(
        stderr.ends_with("fix the cause and run the compaction again"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(f.payloads().len(), 5, "every record is still there");
    assert_eq!(f.run(&["verify"]).code, 0);
    std::fs::remove_dir(f.dir.join("COMPACTION.tmp")).unwrap();
    assert_eq!(f.run(&["compact", "--before", "4"]).code, 0);
    assert_eq!(f.payloads().len(), 2);
}
