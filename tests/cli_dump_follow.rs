//! `walctl dump` as a running process: `--follow` printing records as they are appended, through
//! preallocated space, torn tails, compactions and a log that goes away, and a reader that closes
//! the pipe early.

mod common;

use common::{Fixture, HEADER, clean_offset, json_lines};
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use walctl::Entry;

/// Runs `walctl dump` with `args` on the log in `dir`; returns the child and its stdout. The
/// child is killed after 30 s, so a follower that misses a record fails its test instead of
/// hanging it.
fn spawn_dump(dir: &Path, args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_walctl"))
        .arg("--dir")
        .arg(dir)
        .arg("dump")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn walctl");
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(30));
        let _ = Command::new("kill").arg(&pid).status();
    });
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// Waits for the child; returns its exit code and everything it wrote on stderr.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let mut stderr = String::new();
    let mut pipe = child.stderr.take().unwrap();
    pipe.read_to_string(&mut stderr).unwrap();
    (child.wait().unwrap().code(), stderr)
}

/// Reads the rest of a follower's output, checks that it ended by itself (exit 0, nothing on
/// stderr), and returns `field` of each record line it printed.
fn ends_cleanly_after(
    child: Child,
    mut stdout: BufReader<ChildStdout>,
    field: &str,
) -> Vec<serde_json::Value> {
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let values = json_lines(&rest).iter().map(|v| v[field].clone()).collect();
    let (code, stderr) = finish(child);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    values
}

/// Reads the next JSON line and checks it is record `want`.
fn expect_seq(stdout: &mut BufReader<ChildStdout>, want: u64) {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(
        common::json(&line)["seq"],
        want,
        "record {want} was printed"
    );
}

#[test]
fn broken_pipe_on_dump_into_head_exits_0_quietly() {
    let f = Fixture::empty();
    let payloads: Vec<String> = (0..20_000).map(|i| format!("record number {i}")).collect();
    let entries: Vec<Entry<'_>> = payloads.iter().map(|p| Entry::data(p.as_bytes())).collect();
    f.append(&entries, true);
    let (child, mut stdout) = spawn_dump(&f.dir, &["--json"]);
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with('{'));
    drop(stdout); // What `head -1` does after its line.
    let (code, stderr) = finish(child);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
}

#[test]
fn follow_prints_records_as_they_are_appended() {
    let f = Fixture::clean(2);
    let (child, mut stdout) = spawn_dump(&f.dir, &["--json", "--follow", "--limit", "4"]);
    for want in 1..=2 {
        expect_seq(&mut stdout, want);
    }
    f.append(&[Entry::data(b"live-3"), Entry::data(b"live-4")], false);
    assert_eq!(
        ends_cleanly_after(child, stdout, "payload"),
        ["live-3", "live-4"]
    );
}

#[test]
fn follow_stops_with_exit_3_at_acknowledged_damage_that_valid_records_follow() {
    use walctl::format::{self, RecordKind, RecordMeta, SegmentHeader, WatermarkSlot};
    let f = Fixture::clean(2);
    let (child, mut stdout) = spawn_dump(&f.dir, &["--json", "--follow"]);
    for want in 1..=2 {
        expect_seq(&mut stdout, want);
    }
    // Garbage where record 3 belongs, a well-formed record 4 after it, and a watermark slot
    // saying 4 was synced: not a record in progress nor a torn tail but damage to acknowledged
    // records, which the follower must not skip. (Before the slot lands it is a torn tail,
    // which the follower waits at.)
    let path = f.segment(1);
    let bytes = std::fs::read(&path).unwrap();
    let header = SegmentHeader::decode(&bytes).unwrap();
    let end = clean_offset(3);
    let mut tail = vec![0xab; 40];
    let meta = RecordMeta {
        seq: 4,
        timestamp_nanos: 0,
        kind: RecordKind::Data,
    };
    let bind = format::binding(header.log_id, 1);
    format::encode_record(&mut tail, &bind, meta, None, b"after-damage");
    Fixture::overwrite(&path, end, &tail);
    let slot = WatermarkSlot {
        durable_seq: 4,
        generation: 1000,
        durable_end: 0,
    };
    let at = format::WATERMARK_SLOT_OFFSETS[0];
    Fixture::overwrite(&path, at, &slot.encode(header.log_id, 1));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!((code, rest.as_str()), (Some(3), ""));
    assert!(
        stderr.contains(&format!(
            "damage in 00000000000000000001.wal at offset {end}"
        )) && stderr.contains("walctl verify"),
        "{stderr}"
    );
}

/// Appends into preallocated space leave the file's length unchanged; the follower must still
/// see them (it once watched the length and missed every record after the first such append).
#[test]
fn follow_sees_appends_into_preallocated_space() {
    let f = Fixture::empty();
    let append = |payload: &str| {
        // Default options: the log's segment is preallocated, so the first append writes 1 MiB
        // of zeros ahead and the next ones land inside them.
        // With a lock wait: a child another test thread forks while this log is open holds
        // its lock until it execs.
        let options = walctl::Options {
            lock_wait: Some(std::time::Duration::from_secs(10)),
            ..walctl::Options::default()
        };
        let log = walctl::Log::open(&f.dir, options).unwrap();
        log.append(payload.as_bytes()).unwrap();
    };
    append("first");
    let (mut child, mut stdout) = spawn_dump(&f.dir, &["--json", "--follow", "--limit", "4"]);
    expect_seq(&mut stdout, 1);
    for i in 2..=4 {
        append(&format!("live-{i}"));
        expect_seq(&mut stdout, i);
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn follow_across_a_compaction_prints_each_matching_record_once_and_stops_at_to() {
    // The compaction rewrites the log under the follower (its cursor is lost): it must start
    // over from the oldest segment without printing a record twice, keep applying --key, and
    // end by itself once --to is passed, since nothing appended later can be at or below it.
    let f = Fixture::empty();
    let entries = [
        Entry::keyed(b"k", b"v1"),
        Entry::keyed(b"other", b"o2"),
        Entry::keyed(b"k", b"v3"),
    ];
    f.append(&entries, true);
    let (child, mut stdout) =
        spawn_dump(&f.dir, &["--json", "--follow", "--key", "k", "--to", "6"]);
    expect_seq(&mut stdout, 1);
    expect_seq(&mut stdout, 3);
    let compact = f.run(&["compact", "--before", "2"]);
    assert_eq!(compact.code, 0, "{compact:?}");
    let later = [
        Entry::keyed(b"other", b"o4"),
        Entry::keyed(b"k", b"v5"),
        Entry::keyed(b"k", b"v6"),
        Entry::keyed(b"k", b"v7"),
    ];
    f.append(&later, true);
    assert_eq!(ends_cleanly_after(child, stdout, "seq"), [5, 6]);
}

/// A compaction may remove a segment between the follower's listing and its read, so a few
/// failed polls in a row are ridden out: a log directory moved away for a moment and back,
/// again and again, does not end the follower.
#[test]
fn follow_rides_out_a_log_missing_for_a_moment() {
    let f = Fixture::clean(1);
    let (child, mut stdout) = spawn_dump(&f.dir, &["--json", "--follow", "--limit", "2"]);
    expect_seq(&mut stdout, 1);
    let away = f.dir.with_extension("away");
    for _ in 0..5 {
        // Away for less than one poll: at most one failed poll each time, never three in a row.
        std::fs::rename(&f.dir, &away).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::fs::rename(&away, &f.dir).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    f.append(&[Entry::data(b"back")], false);
    expect_seq(&mut stdout, 2);
    let (code, stderr) = finish(child);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
}

/// ... but a log that is gone for good ends it with an error that names it, not a wait forever.
#[test]
fn follow_ends_with_an_error_when_the_log_is_gone_for_good() {
    let f = Fixture::clean(1);
    let (child, mut stdout) = spawn_dump(&f.dir, &["--json", "--follow"]);
    expect_seq(&mut stdout, 1);
    std::fs::remove_dir_all(&f.dir).unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!((code, rest.as_str()), (Some(2), ""), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "walctl: following the log in {}: ",
            f.dir.display()
        )),
        "{stderr}"
    );
}

/// A follower with nothing to print sleeps between polls instead of spinning on a core. Counted
/// in read calls, not time: a poll costs a few, and there are at most five polls a second however
/// loaded the machine is (a spinning follower made thousands a second even on a busy core).
#[cfg(target_os = "linux")]
#[test]
fn an_idle_follower_sleeps_between_polls() {
    if !Path::new("/proc/self/io").exists() {
        eprintln!("no I/O accounting in /proc (CONFIG_TASK_IO_ACCOUNTING): skipped");
        return;
    }
    let f = Fixture::clean(1);
    let (mut child, mut stdout) = spawn_dump(&f.dir, &["--json", "--follow"]);
    expect_seq(&mut stdout, 1);
    let io = format!("/proc/{}/io", child.id());
    let reads = || -> u64 {
        let text = std::fs::read_to_string(&io).unwrap();
        let line = text.lines().find(|l| l.starts_with("syscr:")).unwrap();
        line["syscr:".len()..].trim().parse().unwrap()
    };
    let before = reads();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let made = reads() - before;
    child.kill().unwrap();
    child.wait().unwrap();
    // About 8 polls of about 3 reads each; 100 leaves room for a costlier poll.
    assert!(
        made < 100,
        "an idle follower made {made} read calls in 1.5 s"
    );
}

/// `--follow --limit N` when the log already holds N matching records: they are printed and
/// the command ends, instead of waiting for a record it would not print.
#[test]
fn follow_with_its_limit_met_by_the_log_ends_at_once() {
    let f = Fixture::clean(2);
    let (child, stdout) = spawn_dump(&f.dir, &["--json", "--follow", "--limit", "2"]);
    assert_eq!(ends_cleanly_after(child, stdout, "seq"), [1, 2]);
}

/// A torn tail, to a follower, is a record still being written: not reported. The next writer
/// cuts it and appends, and the follower prints what it appended.
#[test]
fn follow_waits_at_a_torn_tail_without_reporting_it() {
    let f = Fixture::torn(2, 3);
    let (child, mut stdout) = spawn_dump(&f.dir, &["--json", "--follow", "--limit", "3"]);
    expect_seq(&mut stdout, 1);
    expect_seq(&mut stdout, 2);
    f.append(&[Entry::data(b"after-the-cut")], false);
    assert_eq!(
        ends_cleanly_after(child, stdout, "payload"),
        ["after-the-cut"]
    );
}

/// Corruption the first read finds is reported, and following goes on after it; when following
/// then ends by itself (here at once, `--to` being met), the exit code still says corrupt, as
/// `dump` without `--follow` does. It once ended 0, telling a script the log was clean.
#[test]
fn follow_that_ends_at_to_after_reporting_corruption_exits_3() {
    let f = Fixture::clean(4);
    f.flip_byte(clean_offset(2) + HEADER + 3);
    let (child, stdout) = spawn_dump(&f.dir, &["--json", "--follow", "--to", "4"]);
    let mut printed = String::new();
    BufReader::new(stdout).read_to_string(&mut printed).unwrap();
    let seqs: Vec<u64> = json_lines(&printed)
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    let (code, stderr) = finish(child);
    assert_eq!((code, seqs), (Some(3), vec![1, 3, 4]));
    let at = clean_offset(2);
    assert!(
        stderr.contains(&format!(
            "corrupt damage in 00000000000000000001.wal at offset {at}"
        )),
        "{stderr}"
    );
    let plain = f.run(&["dump", "--json", "--to", "4"]);
    assert_eq!(plain.code, 3, "{plain:?}");
}
