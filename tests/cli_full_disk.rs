//! Every writing command of the real binary on a disk with no room left: the process runs under
//! a file-size limit (`ulimit -f`, with `SIGXFSZ` ignored), so a write past it fails part way
//! with `EFBIG`, as a full disk fails with `ENOSPC` and a quota with `EDQUOT`. Each command must
//! name the file and the offset, say what stays and what to do next, leave nothing half-written
//! behind, and never lose or alter a record that was already in the log.
//!
//! Linux only: the limit comes from bash's `ulimit`, whose unit there is 1 KiB.
#![cfg(target_os = "linux")]

mod common;

use assert_cmd::Command;
use common::{Fixture, Run, json};
use std::fs;
use std::path::Path;

const NO_ROOM: &str = "walctl: the file system has no room for this write (the disk is full, or \
                       a quota or file-size limit was reached): free space or raise the limit \
                       before running the command again\n";

/// `walctl --dir <log> <args>` with every file it writes limited to `kib` KiB.
fn limited(f: &Fixture, kib: u64, args: &[&str]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -f {kib} && trap '' XFSZ && exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_walctl"))
        .arg("--dir")
        .arg(&f.dir)
        .args(args)
        .env_remove("WALCTL_DIR")
        .env_remove("RUST_BACKTRACE")
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(60));
    cmd
}

/// Input lines of 200 bytes: a 1 MiB chunk of stdin is one write of about 1.2 MB of records,
/// so a limit of a few MiB lets a few writes through before one fails part way.
fn lines(n: u64) -> String {
    (1..=n).map(|i| format!("{i:0>199}\n")).collect()
}

/// The names in `dir` with each file's bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("list the log")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).expect("read"))
        })
        .collect();
    files.sort();
    files
}

/// The number in "... at offset N: File too large" of the first matching line.
fn failed_offset(stderr: &str, file: &str) -> u64 {
    let prefix = format!("write failed on {file} at offset ");
    let at = stderr.find(&prefix).unwrap_or_else(|| panic!("{stderr}")) + prefix.len();
    let digits: String = stderr[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("an offset")
}

/// How many numbers `run` printed, checking they are 1, 2, 3... in order.
fn printed(run: &Run) -> u64 {
    let mut n = 0;
    for line in run.stdout.lines() {
        n += 1;
        assert_eq!(line, n.to_string(), "stdout line {n}");
    }
    n
}

#[test]
fn a_stream_that_fills_the_disk_keeps_every_printed_record_and_says_how_to_resume() {
    let f = Fixture::empty();
    let input = lines(20_000);
    let run = f.run_cmd(limited(&f, 4096, &["append", "--lines"]).write_stdin(input.clone()));
    assert_eq!(run.code, 2, "{}", run.stderr);
    let kept = printed(&run);
    assert!(
        (1..20_000).contains(&kept),
        "{kept} printed: {}",
        run.stderr
    );
    let seg = "<DIR>/00000000000000000001.wal";
    let offset = failed_offset(&run.stderr, seg);
    let next = kept + 1;
    // The write fails on the helper thread; the appender meets it at its next append or at
    // the final flush, whichever comes first.
    let stderr = run.stderr.replace(
        "walctl: writing the buffered records: ",
        "walctl: appending: ",
    );
    assert_eq!(
        stderr,
        format!(
            "walctl: created a new log in <DIR>\n\
             walctl: appending: write failed on {seg} at offset {offset}: File too large (os \
             error 27)\n{NO_ROOM}\
             walctl: records 1 to {kept} were appended before this error and remain in the log\n\
             walctl: to append the rest once the cause is fixed, feed stdin again from its line \
             {next}: `tail -n +{next} FILE | walctl append --lines --expect-next-seq {next}`\n"
        )
    );
    // The failed write was cut off where it began, right after the last printed record.
    assert_eq!(fs::metadata(f.segment(1)).unwrap().len(), offset);
    let want: Vec<&[u8]> = input.lines().map(str::as_bytes).collect();
    assert_eq!(f.payloads(), want[..kept as usize]);
    assert_eq!(f.run(&["verify"]).code, 0);

    // The resume the note spells out appends exactly the rest, once.
    let rest: String = input
        .lines()
        .skip(kept as usize)
        .map(|l| l.to_owned() + "\n")
        .collect();
    let resume = ["append", "--lines", "--expect-next-seq", &next.to_string()];
    let run = f.run_stdin(&resume, rest.clone());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().next(), Some(next.to_string().as_str()));
    assert_eq!(f.payloads(), want);
    let again = f.run_stdin(&resume, rest);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (6, ""),
        "{}",
        again.stderr
    );
    assert_eq!(f.payloads().len(), 20_000);
}

#[test]
fn with_sync_the_records_kept_before_the_disk_filled_are_made_durable() {
    let f = Fixture::empty();
    let run =
        f.run_cmd(limited(&f, 4096, &["append", "--lines", "--sync"]).write_stdin(lines(20_000)));
    assert_eq!(run.code, 2, "{}", run.stderr);
    let kept = printed(&run);
    assert!(kept > 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "{NO_ROOM}walctl: records 1 to {kept} were appended before this error and remain in \
             the log\nwalctl: records 1 to {kept} are durable (--sync ran for them after the \
             error)\nwalctl: to append the rest once the cause is fixed"
        )),
        "{}",
        run.stderr
    );
    // Durable by the log's own account: its watermark vouches for every kept record.
    let verify = f.run(&["verify", "--json"]);
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert_eq!(json(&verify.stdout)["durable_seq"], kept);
}

#[test]
fn arguments_that_do_not_fit_say_which_arguments_to_append_again() {
    let f = Fixture::clean(2);
    // The first segment has 16 KiB of room under this limit; each argument is a 10 KB record.
    let big = "x".repeat(10_000);
    let args = ["append", "a", big.as_str(), "b"];
    let run = f.run_cmd(&mut limited(&f, 16, &args));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.ends_with(&format!(
            "{NO_ROOM}walctl: no record was appended; the log's next sequence number is still \
             3\nwalctl: to append the input once the cause is fixed, run the command again with \
             --expect-next-seq 3\n"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(f.payloads(), [&b"record-1"[..], b"record-2"]);
}

#[test]
fn a_new_log_with_no_room_for_its_first_segment_names_it_and_can_be_created_later() {
    let f = Fixture::empty();
    let run = f.run_cmd(&mut limited(&f, 8, &["append", "hello"]));
    assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{}", run.stderr);
    assert_eq!(
        run.stderr,
        format!(
            "walctl: opening the log in <DIR> for writing: write failed on \
             <DIR>/00000000000000000001.wal.tmp: File too large (os error 27)\n{NO_ROOM}"
        )
    );
    let run = f.run(&["append", "hello"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "1\n"),
        "{}",
        run.stderr
    );
    assert_eq!(f.payloads(), [b"hello"]);
}

#[test]
fn a_repair_with_no_room_for_its_side_file_cuts_nothing_and_leaves_nothing() {
    let f = Fixture::clean(2);
    // An unsynced 3 MB record, torn by a crash: 2 MB of tail to save before cutting.
    let torn = "t".repeat(3_000_000);
    let log = walctl::Log::open(&f.dir, common::writer_options()).unwrap();
    log.append(torn.as_bytes()).unwrap();
    log.flush().unwrap();
    drop(log);
    let len = fs::metadata(f.segment(1)).unwrap().len();
    f.truncate_by(1_000_000);
    let before = snapshot(&f.dir);
    let run = f.run_cmd(&mut limited(
        &f,
        1024,
        &["repair", "--truncate-partial", "--yes"],
    ));
    assert_eq!(run.code, 2, "{}", run.stderr);
    let side = format!(
        "<DIR>/00000000000000000001.wal.cut-{:020}",
        common::clean_offset(3)
    );
    assert!(
        run.stderr.ends_with(&format!(
            "walctl: repairing the log in <DIR>: write failed on {side} at offset 1048576: File \
             too large (os error 27)\n{NO_ROOM}"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        snapshot(&f.dir),
        before,
        "a failed repair leaves the log as it was"
    );
    // With room, the same repair cuts the tail and saves every byte of it.
    let run = f.run(&["repair", "--truncate-partial", "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let saved = fs::read(side.replace("<DIR>", &f.dir.display().to_string())).unwrap();
    assert_eq!(
        saved.len() as u64,
        len - 1_000_000 - common::clean_offset(3)
    );
    assert_eq!(f.payloads(), [&b"record-1"[..], b"record-2"]);
}

#[test]
fn a_compaction_with_no_room_is_not_committed_and_says_the_log_is_whole() {
    let f = Fixture::rotated(12);
    let before = snapshot(&f.dir);
    let payloads = f.payloads();
    for args in [
        &["compact", "--before", "8"][..],
        &["compact", "--before", "8", "--rewrite"],
    ] {
        let run = f.run_cmd(&mut limited(&f, 8, args));
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(
                "File too large (os error 27); the compaction was not committed, and the log \
                 still holds every record: fix the cause and run the compaction again\n"
            ) && run.stderr.ends_with(NO_ROOM),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(snapshot(&f.dir), before, "{args:?}");
        assert_eq!(f.payloads(), payloads, "{args:?}");
    }
}

#[test]
fn an_export_that_fills_the_disk_is_removed_and_an_export_it_would_replace_is_kept() {
    let f = Fixture::rotated(3000);
    let out = f.tmp.path().join("export.jsonl");
    let target = out.to_str().unwrap();
    let run = f.run_cmd(&mut limited(
        &f,
        1024,
        &["export-jsonl", "--output", target],
    ));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.stderr,
        format!(
            "walctl: exporting the log in <DIR> to <TMP>/export.jsonl (the partial export was \
             removed): writing the export to <TMP>/export.jsonl failed at byte 1048576: File \
             too large (os error 27)\n{NO_ROOM}"
        )
    );
    assert!(!out.exists());
    fs::write(&out, "an earlier export\n").unwrap();
    let args = ["export-jsonl", "--force", "--output", target];
    let run = f.run_cmd(&mut limited(&f, 1024, &args));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("(the partial export was removed; the file is unchanged)"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read_to_string(&out).unwrap(), "an earlier export\n");
    let left: Vec<_> = fs::read_dir(f.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left.len(),
        2,
        "the log and the earlier export only: {left:?}"
    );
}

#[test]
fn output_redirected_to_a_full_disk_names_stdout_and_the_byte_it_reached() {
    let f = Fixture::rotated(3000);
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg("ulimit -f 64 && trap '' XFSZ && exec \"$0\" \"$@\" > \"$WALCTL_TEST_OUT\"")
        .arg(env!("CARGO_BIN_EXE_walctl"))
        .args(["--dir", f.dir.to_str().unwrap(), "dump"])
        .env("WALCTL_TEST_OUT", f.tmp.path().join("dump.txt"))
        .env_remove("RUST_BACKTRACE");
    let run = f.run_cmd(&mut cmd);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let written = fs::metadata(f.tmp.path().join("dump.txt")).unwrap().len();
    assert_eq!(written, 64 * 1024);
    assert!(
        run.stderr.starts_with("walctl: ")
            && run.stderr.contains(&format!(
                "writing stdout failed at byte {written}: File too large (os error 27)\n{NO_ROOM}"
            )),
        "{}",
        run.stderr
    );
}
