//! The contract every command shares: where the log is (`--dir`, `$WALCTL_DIR`, `./wal`),
//! usage errors exit 2, data on stdout and diagnostics on stderr, and hostile bytes never reach
//! the terminal raw.

mod common;

use common::{Fixture, json};

#[test]
fn dir_defaults_to_wal_in_the_working_directory() {
    let f = Fixture::empty();
    let run = f.run_cmd(
        common::walctl()
            .current_dir(f.tmp.path())
            .args(["append", "x"]),
    );
    assert_eq!((run.code, run.stdout.as_str()), (0, "1\n"));
    assert_eq!(run.stderr, "walctl: created a new log in <DIR>\n");
    assert_eq!(f.payloads(), [b"x".to_vec()]);
}

#[test]
fn walctl_dir_environment_variable_names_the_log() {
    let f = Fixture::clean(2);
    let run = f.run_cmd(
        common::walctl()
            .env("WALCTL_DIR", &f.dir)
            .args(["verify", "--json"]),
    );
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(json(&run.stdout)["records"], 2);
}

#[test]
fn dir_flag_beats_the_environment_and_may_follow_the_command() {
    let f = Fixture::clean(1);
    let elsewhere = f.tmp.path().join("elsewhere");
    let mut cmd = common::walctl();
    cmd.env("WALCTL_DIR", &elsewhere)
        .args(["verify", "--json", "--dir"])
        .arg(&f.dir);
    let run = f.run_cmd(&mut cmd);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!elsewhere.exists());
}

#[test]
fn a_missing_subcommand_is_a_usage_error() {
    let run = common::run(&mut common::walctl());
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(
        run.stderr.starts_with("Operate a walctl write-ahead log"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unknown_subcommand_or_flag_is_a_usage_error() {
    let run = common::run(common::walctl().arg("frobnicate"));
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(
        run.stderr
            .starts_with("error: unrecognized subcommand 'frobnicate'"),
        "{}",
        run.stderr
    );
    let flag = common::run(common::walctl().args(["verify", "--colour"]));
    assert_eq!(flag.code, 2);
}

#[test]
fn version_prints_the_crate_version() {
    let run = common::run(common::walctl().arg("--version"));
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, &*format!("walctl {}\n", env!("CARGO_PKG_VERSION")), "")
    );
}

/// Runs `walctl <args>` on the fixture's log, asserts exit 2 with nothing on stdout (the
/// command could not run), and returns stderr.
fn exits_2_saying_nothing_on_stdout(f: &Fixture, args: &[&str]) -> String {
    let run = f.run(args);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (2, ""),
        "{args:?}: {run:?}"
    );
    run.stderr
}

#[test]
fn a_file_where_the_log_should_be_is_not_a_log() {
    let f = Fixture::empty();
    std::fs::write(&f.dir, "not a directory").unwrap();
    for args in [
        &["verify"][..],
        &["dump"],
        &["stat"],
        &["export-jsonl"],
        &["sync"],
    ] {
        let stderr = exits_2_saying_nothing_on_stdout(&f, args);
        assert!(stderr.starts_with("walctl: "), "{args:?}: {stderr}");
    }
}

#[test]
fn rust_backtrace_adds_the_error_chain_after_the_message_and_zero_turns_it_off() {
    let f = Fixture::empty();
    std::fs::write(&f.dir, "not a directory").unwrap();
    let plain = exits_2_saying_nothing_on_stdout(&f, &["verify"]);
    assert_eq!(plain.lines().count(), 1, "{plain}");
    let with = |value: &str| {
        let run = f.run_cmd(f.walctl().env("RUST_BACKTRACE", value).arg("verify"));
        assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{run:?}");
        run.stderr
    };
    assert_eq!(with("0"), plain);
    let traced = with("1");
    assert!(
        traced.starts_with(&plain) && traced.len() > plain.len(),
        "the message, then the error's debug form: {traced}"
    );
}

#[test]
fn garbage_segments_never_panic_and_exit_per_the_contract() {
    let f = Fixture::empty();
    std::fs::create_dir(&f.dir).unwrap();
    std::fs::write(
        f.segment(1),
        b"\x89WAL\r\n\x1a\ngarbage that is far too short",
    )
    .unwrap();
    for args in [
        &["verify"][..],
        &["dump", "--json"],
        &["stat"],
        &["export-jsonl"],
    ] {
        let run = f.run(args);
        assert!(matches!(run.code, 2 | 3), "{args:?}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn a_log_from_a_newer_walctl_is_refused_by_every_command_and_left_unchanged() {
    // A newer walctl's segment (FORMAT.md §2.1, §10): a well-formed header of version 3. Every
    // command must say so and point at the upgrade, never call it damage or cut it.
    let f = Fixture::clean(3);
    let seg = f.segment(1);
    let mut header = std::fs::read(&seg).unwrap()[..64].to_vec();
    header[8..10].copy_from_slice(&(walctl::format::FORMAT_VERSION + 1).to_le_bytes());
    let crc = walctl::format::crc_mask(crc32c::crc32c(&header[..60]));
    header[60..64].copy_from_slice(&crc.to_le_bytes());
    Fixture::overwrite(&seg, 0, &header);
    let before = f.snapshot();
    for args in [
        &["verify"][..],
        &["dump"],
        &["stat"],
        &["export-jsonl"],
        &["append", "x"],
        &["sync"],
        &["repair", "--truncate-partial", "--yes"],
        &["compact", "--before", "2"],
        &["get", "k"],
        &["salvage", "--to", "salvaged"],
    ] {
        let stderr = exits_2_saying_nothing_on_stdout(&f, args);
        assert!(
            stderr.contains("<DIR>/00000000000000000001.wal needs format version")
                && stderr.trim_end().ends_with("upgrade walctl"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(f.snapshot(), before);
    assert!(!f.tmp.path().join("salvaged").exists());
}

/// Operators move a log to another disk and link its directory into place. Every command that
/// writes works through the link (each syncs the directory, which once refused a link with
/// "Not a directory"), and the files land in the directory the link leads to.
#[cfg(unix)]
#[test]
fn a_log_directory_reached_through_a_symlink_works_for_every_command() {
    let f = Fixture::empty();
    let real = f.tmp.path().join("disk2");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, &f.dir).unwrap();
    let export = f.tmp.path().join("export.jsonl");
    let export = export.to_str().unwrap();
    for (args, stdout) in [
        (&["append", "--sync", "--key", "k", "a", "b"][..], "1\n2\n"),
        (&["append", "c"], "3\n"),
        (&["sync"], ""),
        (
            &["repair", "--truncate-partial"],
            "the log is clean: nothing to cut\n",
        ),
        (&["compact", "--keys", "--json"], ""),
        (&["export-jsonl", "--output", export], ""),
        (&["verify"], ""),
    ] {
        let run = f.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        if !stdout.is_empty() {
            assert_eq!(run.stdout, stdout, "{args:?}");
        }
    }
    assert_eq!(f.payloads(), [b"b".to_vec(), b"c".to_vec()]);
    let segments = std::fs::read_dir(&real)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "wal")
        })
        .count();
    assert!(segments > 0, "no segment in the linked directory");
    assert!(std::fs::symlink_metadata(&f.dir).unwrap().is_symlink());
}
