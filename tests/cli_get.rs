//! `walctl get KEY`: the live value of a key (last write wins, tombstones delete), exit 5 for a
//! key with no live value, exit 3 with a warning on a corrupt log.

mod common;

use common::{Fixture, json};
use walctl::Entry;

fn keyed() -> Fixture {
    let f = Fixture::empty();
    f.append(
        &[
            Entry::keyed(b"user:1", b"ada"),
            Entry::keyed(b"user:2", b"bob"),
            Entry::data(b"keyless event"),
            Entry::keyed(b"user:1", b"ada lovelace"),
            Entry::tombstone(b"user:2"),
        ],
        true,
    );
    f
}

#[test]
fn get_prints_the_latest_value_of_a_key() {
    let f = keyed();
    let run = f.run(&["get", "user:1"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "ada lovelace", "")
    );
}

/// On a terminal the value is shown for reading: control characters escaped, and a newline so
/// the prompt does not follow it on the same line. (Piped, it is the bytes exactly, above.)
#[test]
fn get_on_a_terminal_shows_the_value_escaped_on_its_own_line() {
    let f = Fixture::empty();
    f.append(&[Entry::keyed(b"k", b"two\nlines\x1b[31m")], true);
    let Some(run) = f.run_on_a_terminal(&["get", "k"], "") else {
        return;
    };
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "two\\nlines\\u{1b}[31m\n")
    );
}

#[test]
fn get_of_a_deleted_or_unknown_key_exits_5() {
    let f = keyed();
    for key in ["user:2", "nobody"] {
        let run = f.run(&["get", key]);
        assert_eq!((run.code, run.stdout.as_str()), (5, ""), "{key}");
        assert_eq!(
            run.stderr,
            format!("walctl: no live value for key {key} (deleted or never written)\n")
        );
    }
}

#[test]
fn get_json_names_the_record() {
    let f = keyed();
    let run = f.run(&["get", "--json", "user:1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = json(&run.stdout);
    assert_eq!(
        (v["key"].as_str(), v["payload"].as_str(), v["seq"].as_u64()),
        (Some("user:1"), Some("ada lovelace"), Some(4))
    );
    assert_eq!(
        (v["type"].as_str(), v["segment"].as_str()),
        (Some("data"), Some("00000000000000000001.wal"))
    );
}

#[test]
fn get_on_a_corrupt_log_warns_and_exits_3() {
    let f = keyed();
    // Damage the header of the second record (user:2's first value, after the 41 bytes of
    // record 1): the view is suspect from there on.
    f.flip_byte(12_288 + 41 + 10);
    let run = f.run(&["get", "user:1"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("the log is corrupt"), "{}", run.stderr);
}

#[test]
fn get_on_a_missing_log_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-log");
    let run = common::run(
        common::walctl()
            .arg("--dir")
            .arg(&missing)
            .args(["get", "k"]),
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no-such-log"), "{}", run.stderr);
}
