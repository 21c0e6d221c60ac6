//! `walctl append`: records from arguments, stdin, lines, NUL-separated input and JSON Lines;
//! keys and tombstones; `--expect-next-seq`; `--sync`; the lock; recovery of a torn tail left by
//! a killed appender; and sixteen appenders at once.

mod common;

use common::{Fixture, json, json_lines, records};
use walctl::RecordKind;

const CREATED: &str = "walctl: created a new log in <DIR>\n";

#[test]
fn each_argument_is_one_record_and_its_seq_is_printed() {
    let f = Fixture::empty();
    let run = f.run(&["append", "hello", "world"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "1\n2\n", CREATED)
    );
    assert_eq!(f.payloads(), [b"hello".to_vec(), b"world".to_vec()]);
    let again = f.run(&["append", "again"]);
    assert_eq!(
        (again.code, again.stdout.as_str(), again.stderr.as_str()),
        (0, "3\n", "")
    );
}

#[test]
fn stdin_without_a_mode_is_one_record() {
    let f = Fixture::empty();
    let run = f.run_stdin(&["append"], "two\nlines\n");
    assert_eq!((run.code, run.stdout.as_str()), (0, "1\n"));
    assert_eq!(f.payloads(), [b"two\nlines\n".to_vec()]);
}

#[test]
fn lines_mode_appends_one_record_per_line() {
    let f = Fixture::empty();
    let run = f.run_stdin(&["append", "--lines"], "a\nb\n\nlast-without-newline");
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "1\n2\n3\n4\n", CREATED)
    );
    let expected: [&[u8]; 4] = [b"a", b"b", b"", b"last-without-newline"];
    assert_eq!(f.payloads(), expected.map(<[u8]>::to_vec));
}

#[test]
fn null_mode_splits_on_nul_bytes() {
    let f = Fixture::empty();
    let run = f.run_stdin(&["append", "--null"], b"one\0two\nwith newline\0".to_vec());
    assert_eq!((run.code, run.stdout.as_str()), (0, "1\n2\n"));
    assert_eq!(
        f.payloads(),
        [b"one".to_vec(), b"two\nwith newline".to_vec()]
    );
}

#[test]
fn key_and_delete_write_keyed_records_and_tombstones() {
    let f = Fixture::empty();
    assert_eq!(f.run(&["append", "--key", "user:7", "Ada"]).code, 0);
    let run = f.run(&["append", "--delete", "user:7"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "2\n", "")
    );
    let all = records(&f.dir);
    assert_eq!(
        (all[0].kind, all[0].key.as_deref()),
        (RecordKind::Data, Some(&b"user:7"[..]))
    );
    assert_eq!(all[0].payload, b"Ada");
    assert_eq!(
        (all[1].kind, all[1].key.as_deref()),
        (RecordKind::Tombstone, Some(&b"user:7"[..]))
    );
}

#[test]
fn json_prints_seq_segment_offset_and_length() {
    let f = Fixture::empty();
    let run = f.run(&["append", "--json", "abc", "de"]);
    assert_eq!(run.code, 0);
    let segment = "00000000000000000001.wal";
    assert_eq!(
        json_lines(&run.stdout),
        [
            serde_json::json!({"seq": 1, "segment": segment, "offset": 12288, "length": 35}),
            serde_json::json!({"seq": 2, "segment": segment, "offset": 12323, "length": 34}),
        ]
    );
}

#[test]
fn expect_next_seq_refuses_a_mismatch_and_appends_nothing() {
    let f = Fixture::clean(2);
    let run = f.run(&["append", "--expect-next-seq", "2", "retry"]);
    assert_eq!((run.code, run.stdout.as_str()), (6, ""));
    assert_eq!(
        run.stderr,
        "walctl: appending: expected the next sequence number to be 2, but it is 3; nothing was appended\n"
    );
    assert_eq!(f.payloads().len(), 2);
    let ok = f.run(&["append", "--expect-next-seq", "3", "retry"]);
    assert_eq!(
        (ok.code, ok.stdout.as_str(), ok.stderr.as_str()),
        (0, "3\n", "")
    );
}

#[test]
fn expect_next_seq_guards_a_lines_stream_too() {
    let f = Fixture::clean(2);
    let run = f.run_stdin(&["append", "--lines", "--expect-next-seq", "2"], "a\nb\n");
    assert_eq!((run.code, run.stdout.as_str()), (6, ""));
    assert_eq!(
        run.stderr,
        "walctl: appending: expected the next sequence number to be 2, but it is 3; nothing was appended\n"
    );
    assert_eq!(f.payloads().len(), 2);
    let ok = f.run_stdin(&["append", "--lines", "--expect-next-seq", "3"], "a\nb\n");
    assert_eq!(
        (ok.code, ok.stdout.as_str(), ok.stderr.as_str()),
        (0, "3\n4\n", "")
    );
}

#[test]
fn sync_makes_the_records_durable() {
    let f = Fixture::empty();
    let run = f.run_stdin(&["append", "--lines", "--sync"], "a\nb\nc\n");
    assert_eq!(run.code, 0);
    let verify = f.run(&["verify", "--json"]);
    assert_eq!(json(&verify.stdout)["durable_seq"], 3);
}

#[test]
fn jsonl_reads_the_export_shape_and_skips_header_and_trailer() {
    let f = Fixture::empty();
    let input = concat!(
        "{\"kind\":\"header\",\"schema\":\"walctl.export\",\"version\":1}\n",
        "{\"payload\":\"plain\"}\n",
        "{\"key\":\"k\",\"payload\":\"/wA=\",\"payload_encoding\":\"base64\",\"timestamp_nanos\":5}\n",
        "\n",
        "{\"type\":\"tombstone\",\"key\":\"aw==\",\"key_encoding\":\"base64\"}\n",
        "{\"kind\":\"trailer\",\"records\":3}\n",
    );
    let run = f.run_stdin(&["append", "--jsonl"], input);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "1\n2\n3\n", CREATED)
    );
    let all = records(&f.dir);
    assert_eq!(all[0].payload, b"plain");
    assert_eq!(
        (all[1].key.as_deref(), all[1].payload.as_slice()),
        (Some(&b"k"[..]), &b"\xff\x00"[..])
    );
    assert_eq!(all[1].timestamp_nanos, 5);
    assert_eq!(
        (all[2].kind, all[2].key.as_deref()),
        (RecordKind::Tombstone, Some(&b"k"[..]))
    );
}

#[test]
fn a_bad_jsonl_line_exits_2_and_appends_nothing_from_its_batch() {
    let f = Fixture::clean(1);
    let run = f.run_stdin(
        &["append", "--jsonl"],
        "{\"payload\":\"ok\"}\n{\"payload\":12}\n",
    );
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert_eq!(
        run.stderr,
        "walctl: stdin line 2: \"payload\" must be a string or null\n\
         walctl: no record was appended; the log's next sequence number is still 2\n\
         walctl: to append the input once the cause is fixed, run the command again with \
         --expect-next-seq 2\n"
    );
    assert_eq!(f.payloads().len(), 1);
}

/// A tombstone without a key, or with a payload, is named by its line, like any bad line.
#[test]
fn a_bad_jsonl_tombstone_names_its_line() {
    let f = Fixture::clean(1);
    for bad in [
        r#"{"type":"tombstone"}"#,
        r#"{"type":"tombstone","key":"k","payload":"x"}"#,
    ] {
        let input = format!("{{\"key\":\"k\",\"payload\":\"ok\"}}\n{bad}\n");
        let run = f.run_stdin(&["append", "--jsonl"], input);
        assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{bad}");
        assert!(
            run.stderr.starts_with(
                "walctl: stdin line 2: a tombstone needs a \"key\" and no \"payload\"\n"
            ),
            "{bad}: {}",
            run.stderr
        );
    }
    let run = f.run_stdin(
        &["append", "--jsonl"],
        r#"{"type":"tombstone","key":"k","payload":""}"#,
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "2\n"),
        "{}",
        run.stderr
    );
    assert_eq!(f.payloads().len(), 2);
}

#[test]
fn a_held_lock_exits_4_after_the_wait() {
    let f = Fixture::clean(1);
    let _writer = walctl::Log::open(&f.dir, common::writer_options()).expect("hold the lock");
    let run = f.run(&["append", "--wait", "0.2", "blocked"]);
    assert_eq!((run.code, run.stdout.as_str()), (4, ""));
    assert_eq!(
        run.stderr,
        "walctl: gave up after waiting 0.2s for the writer lock (raise --wait): the log is locked \
         by another writer (lock file <DIR>/LOCK); wait for it to finish or raise the lock wait\n"
    );
}

#[test]
fn the_next_append_recovers_a_torn_tail_and_says_so() {
    let f = Fixture::torn(3, 5);
    let offset = common::clean_offset(4);
    let run = f.run(&["append", "after-crash"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "4\n"),
        "{}",
        run.stderr
    );
    let side = format!("00000000000000000001.wal.cut-{offset:020}");
    assert!(
        run.stderr.starts_with(&format!(
            "walctl: recovered from an interrupted writer: cut a torn tail of 42 bytes at offset \
             {offset} of 00000000000000000001.wal (saved in <DIR>/{side}, sha256 "
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .ends_with("); the last surviving record is seq 3\n"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::metadata(f.dir.join(side)).unwrap().len(), 42);
    assert_eq!(f.payloads().last().unwrap(), b"after-crash");
}

#[test]
fn sixteen_parallel_appenders_all_succeed_and_get_seqs_1_to_16_once() {
    let f = Fixture::empty();
    let children: Vec<_> = (0..16)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
                .arg("--dir")
                .arg(&f.dir)
                .args(["append", "--sync", &format!("from-{i}")])
                .env_remove("WALCTL_DIR")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn walctl")
        })
        .collect();
    let mut seqs = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait for walctl");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{:?}: {stderr}", out.status);
        seqs.push(
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap(),
        );
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=16).collect::<Vec<u64>>());
    let mut payloads: Vec<String> = f
        .payloads()
        .into_iter()
        .map(|p| String::from_utf8(p).unwrap())
        .collect();
    payloads.sort();
    let mut expected: Vec<String> = (0..16).map(|i| format!("from-{i}")).collect();
    expected.sort();
    assert_eq!(payloads, expected);
    assert_eq!(f.run(&["verify"]).code, 0);
}

#[test]
fn records_and_a_mode_conflict() {
    let f = Fixture::empty();
    let run = f.run(&["append", "--lines", "x"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    assert!(!f.dir.exists(), "a usage error must not create the log");
}

#[test]
fn a_closed_stdout_stops_the_printing_not_the_appending_or_the_sync() {
    use std::io::{BufRead as _, Write as _};
    let f = Fixture::empty();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
        .arg("--dir")
        .arg(&f.dir)
        .args(["append", "--lines", "--sync"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn walctl");
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for i in 0..50_000 {
            writeln!(stdin, "line-{i}").unwrap();
        }
    });
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "1\n"); // The reader goes away here, as `head -1` does.
    feeder.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "walctl: created a new log in ".to_string() + &f.dir.display().to_string() + "\n"
    );
    let v = json(&f.run(&["verify", "--json"]).stdout);
    assert_eq!(
        (v["records"].as_u64(), v["durable_seq"].as_u64()),
        (Some(50_000), Some(50_000))
    );
}

#[test]
fn segment_size_rotates_this_invocations_writes_and_out_of_range_is_refused() {
    let f = Fixture::empty();
    let lines = format!("{}\n", "x".repeat(1000)).repeat(40);
    let run = f.run_stdin(&["append", "--lines", "--segment-size", "16K"], lines);
    assert_eq!((run.code, run.stdout.lines().count()), (0, 40), "{run:?}");
    let storage = walctl::storage::FsStorage::new();
    let segments = walctl::segment::list(&storage, &f.dir)
        .unwrap()
        .segments
        .len();
    assert!(segments >= 3, "40 kB in segments of 16 KiB: {segments}");
    let run = f.run(&["append", "--segment-size", "100", "x"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    // Refused by the flag's name, before the log is opened.
    assert!(
        run.stderr.contains("'--segment-size <BYTES>'")
            && run
                .stderr
                .contains("\"100\" is not a size between 16KiB (16384 bytes) and 1GiB"),
        "{}",
        run.stderr
    );
}

/// The largest record (16 MiB of payload by default) goes in through each way of feeding
/// stdin, including the JSON Lines an export writes for it: six times longer for control
/// characters (`\u0001`), a third longer for bytes that are not UTF-8 (base64). One byte more
/// is refused by name before anything is appended.
#[test]
fn a_record_of_the_limit_goes_in_through_every_mode_and_one_byte_more_is_refused() {
    let max = walctl::Options::default().record_size_max as usize;
    let f = Fixture::empty();
    let run = f.run_stdin(&["append"], vec![1u8; max]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "1\n"),
        "{}",
        run.stderr
    );
    let mut line = vec![0xffu8; max];
    line.push(b'\n');
    let run = f.run_stdin(&["append", "--lines"], line);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "2\n"),
        "{}",
        run.stderr
    );
    let export = f.run(&["export-jsonl"]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let copy = Fixture::empty();
    let run = copy.run_stdin(&["append", "--jsonl"], export.stdout);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "1\n2\n"),
        "{}",
        run.stderr
    );
    assert_eq!(copy.payloads(), f.payloads());

    let refusals = [
        (
            &["append"][..],
            "stdin holds more than the record limit of 16777216 bytes",
        ),
        (
            &["append", "--lines"],
            "stdin record 1 is longer than the limit of 16777216 bytes",
        ),
        (
            &["append", "--null"],
            "stdin record 1 is longer than the limit of 16777216 bytes",
        ),
    ];
    for (args, message) in refusals {
        let run = copy.run_stdin(args, vec![b'z'; max + 1]);
        assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{args:?}");
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
    assert_eq!(copy.payloads().len(), 2);
}

#[test]
fn lines_with_a_key_give_every_record_that_key() {
    let f = Fixture::empty();
    let run = f.run_stdin(&["append", "--lines", "--key", "sensor-7"], "a\nb\n");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "1\n2\n"),
        "{}",
        run.stderr
    );
    let keys: Vec<_> = common::records(&f.dir).into_iter().map(|r| r.key).collect();
    assert_eq!(
        keys,
        [Some(b"sensor-7".to_vec()), Some(b"sensor-7".to_vec())]
    );
}

/// Stdout that cannot be written (a full disk) is an error, unlike a reader that went away:
/// the caller asked for the sequence numbers and did not get them.
#[cfg(target_os = "linux")]
#[test]
fn a_full_stdout_is_an_error_and_the_records_written_are_named() {
    let f = Fixture::empty();
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
        .env_remove("RUST_BACKTRACE")
        .arg("--dir")
        .arg(&f.dir)
        .args(["append", "a", "b"])
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("records 1 to 2 were appended before this error")
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert_eq!(f.payloads(), [b"a".to_vec(), b"b".to_vec()]);
}
