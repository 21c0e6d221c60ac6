//! `walctl sync`: makes appended records durable, reports what is durable, refuses a missing
//! log, and gives up on a held lock with exit 4.

mod common;

use common::{Fixture, json};
use walctl::Entry;

#[test]
fn sync_makes_unsynced_appends_durable() {
    let f = Fixture::clean(2);
    f.append(&[Entry::data(b"not yet durable")], false);
    assert_eq!(json(&f.run(&["verify", "--json"]).stdout)["durable_seq"], 2);
    let run = f.run(&["sync"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (
            0,
            "",
            "walctl: durable through seq 3 (segments and directory synced)\n"
        )
    );
    assert_eq!(json(&f.run(&["verify", "--json"]).stdout)["durable_seq"], 3);
}

#[test]
fn sync_json_prints_the_durable_seq() {
    let f = Fixture::clean(4);
    let run = f.run(&["sync", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let v = json(&run.stdout);
    assert_eq!(v["durable_seq"], 4);
    assert_eq!(v["dir"], "<DIR>");
}

#[test]
fn sync_of_an_empty_log_says_there_is_nothing() {
    let f = Fixture::empty();
    walctl::Log::open(&f.dir, common::writer_options()).expect("create an empty log");
    let run = f.run(&["sync"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (
            0,
            "",
            "walctl: the log holds no records; segments and directory synced\n"
        )
    );
}

#[test]
fn sync_of_a_missing_log_exits_2_and_creates_nothing() {
    let f = Fixture::empty();
    let run = f.run(&["sync"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(
        run.stderr.starts_with("walctl: <DIR> is not a walctl log"),
        "{}",
        run.stderr
    );
    assert!(!f.dir.join("00000000000000000001.wal").exists());
}

#[test]
fn sync_gives_up_on_a_held_lock_with_exit_4() {
    let f = Fixture::clean(1);
    let _writer = walctl::Log::open(&f.dir, common::writer_options()).expect("hold the lock");
    let run = f.run(&["sync", "--wait", "0"]);
    assert_eq!((run.code, run.stdout.as_str()), (4, ""));
    assert!(
        run.stderr.starts_with("walctl: gave up after waiting 0s"),
        "{}",
        run.stderr
    );
}
