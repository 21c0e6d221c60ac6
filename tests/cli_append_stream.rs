//! `walctl append` of long streams: records go through a write buffer written ahead on a
//! helper thread, and a sequence number is printed only once the OS holds its record, so what
//! stdout and the error note say is exactly what stays in the log, however an input ends.

mod common;

use common::Fixture;

const CREATED: &str = "walctl: created a new log in <DIR>\n";

/// Stdout holds the numbers 1 to `n`, one per line, in order (checked without printing
/// thousands of numbers on failure).
fn assert_in_order(stdout: &str, n: u64) {
    let mut count = 0;
    for (i, line) in stdout.lines().enumerate() {
        assert_eq!(line, (i + 1).to_string(), "line {}", i + 1);
        count += 1;
    }
    assert_eq!(count, n, "lines printed");
}

#[test]
fn a_long_stream_is_appended_in_batches_with_every_line_kept() {
    let f = Fixture::empty();
    let input: String = (1..=20_000).map(|i| format!("line-{i}\n")).collect();
    let run = f.run_stdin(&["append", "--lines", "--sync"], input);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_in_order(&run.stdout, 20_000);
    let payloads = f.payloads();
    assert_eq!(payloads.len(), 20_000);
    assert_eq!(payloads[19_999], b"line-20000");
}

/// A batch is written once it holds 4,096 records; a bad line after that fails the command,
/// and the operator is told which records are already in the log.
#[test]
fn an_error_after_a_written_batch_names_the_records_that_remain() {
    let f = Fixture::empty();
    let mut input = "{\"payload\":\"ok\"}\n".repeat(4097);
    input.push_str("{\"payload\":12}\n");
    let run = f.run_stdin(&["append", "--jsonl"], input);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_in_order(&run.stdout, 4096);
    assert_eq!(
        run.stderr,
        format!(
            "{CREATED}walctl: stdin line 4098: \"payload\" must be a string or null\n\
             walctl: records 1 to 4096 were appended before this error and remain in the log\n\
             walctl: to append the rest once the cause is fixed, feed stdin again from its \
             record 4097 (the first 4096 records are in the log; blank lines and export header \
             and trailer lines do not count) with `walctl append --jsonl --expect-next-seq 4097`\n"
        )
    );
    assert_eq!(f.payloads().len(), 4096);
}

/// With `--sync`, the records a bad line leaves in the log are made durable before the
/// command fails: the writer is healthy, so it syncs them itself.
#[test]
fn with_sync_the_records_before_a_bad_line_are_made_durable() {
    let f = Fixture::empty();
    let mut input = "{\"payload\":\"ok\"}\n".repeat(4097);
    input.push_str("not json\n");
    let run = f.run_stdin(&["append", "--jsonl", "--sync"], input);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_in_order(&run.stdout, 4096);
    assert!(
        run.stderr.contains(
            "walctl: records 1 to 4096 were appended before this error and remain in the log\n\
             walctl: records 1 to 4096 are durable (--sync ran for them after the error)\n"
        ),
        "{}",
        run.stderr
    );
    let verify = f.run(&["verify", "--json"]);
    assert_eq!(common::json(&verify.stdout)["durable_seq"], 4096);
}

/// Several megabytes: the write buffer fills again and again and goes to the helper thread,
/// and a bad line at the end still leaves stdout, the note and the log in agreement (the batch
/// of 4,096 records that held the bad line is not appended, as for a short input).
#[test]
fn a_bad_line_after_many_full_write_buffers_names_exactly_the_records_in_the_log() {
    let f = Fixture::empty();
    let payload = "p".repeat(90);
    let mut input = format!("{{\"payload\":\"{payload}\"}}\n").repeat(60_000);
    input.push_str("not json\n");
    let run = f.run_stdin(&["append", "--jsonl"], input);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let kept = 60_000 / 4096 * 4096;
    assert_in_order(&run.stdout, kept);
    assert!(
        run.stderr
            .starts_with(&format!("{CREATED}walctl: stdin line 60001: not JSON"))
            && run.stderr.contains(&format!(
                "\nwalctl: records 1 to {kept} were appended before this error and remain in \
                 the log\n"
            )),
        "{}",
        run.stderr
    );
    let payloads = f.payloads();
    assert_eq!(payloads.len() as u64, kept);
    assert!(payloads.iter().all(|p| p == payload.as_bytes()));
}

/// The numbers of a stream larger than the write buffer come out once each, in order, with
/// `--json` locations that point at the records.
#[test]
fn json_locations_of_a_stream_through_the_write_buffer_point_at_their_records() {
    let f = Fixture::empty();
    let input: String = (1..=30_000).map(|i| format!("{i:0>100}\n")).collect();
    let run = f.run_stdin(&["append", "--lines", "--json"], input);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = common::json_lines(&run.stdout);
    assert_eq!(lines.len(), 30_000);
    let records = common::records(&f.dir);
    for (i, (line, record)) in lines.iter().zip(&records).enumerate() {
        assert_eq!(line["seq"], i as u64 + 1);
        assert_eq!(line["seq"], record.seq);
        assert_eq!(line["offset"], record.location.offset, "record {}", i + 1);
        assert_eq!(line["length"], record.location.length);
    }
}

/// The help text's promise, watched while stdin is still open: every number on stdout names a
/// record already in the segment files, though later records wait in the write buffer.
/// Printing a batch's numbers as soon as `append_batch` returned would show some of those.
#[test]
fn every_number_printed_mid_stream_names_a_record_already_in_the_files() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    let f = Fixture::empty();
    let mut child = Command::new(env!("CARGO_BIN_EXE_walctl"))
        .env_remove("RUST_BACKTRACE")
        .arg("--dir")
        .arg(&f.dir)
        .args(["append", "--jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(0u64));
    let stdout = child.stdout.take().unwrap();
    let sink = Arc::clone(&printed);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            *sink.lock().unwrap() = line.unwrap().parse().unwrap();
        }
    });
    // Five batches of 4,096 records of 132 bytes (528 KiB each): every second batch fills the
    // 1 MiB buffer and goes to the helper, and the fifth stays in the buffer until stdin ends.
    let line = format!("{{\"payload\":\"{}\"}}\n", "p".repeat(100));
    let input = line.repeat(5 * 4096);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    let last = once_printing_stops(&printed);
    let in_files = common::records(&f.dir).len() as u64;
    assert!(
        last > 0,
        "full buffers were written and their numbers printed"
    );
    assert!(
        last <= in_files,
        "printed {last}, the files hold {in_files}"
    );
    assert!(in_files < 5 * 4096, "the fifth batch waits in the buffer");
    drop(stdin);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    assert_eq!(*printed.lock().unwrap(), 5 * 4096);
}

/// The last number printed, once it has not changed for a second (at most 30 s).
fn once_printing_stops(printed: &std::sync::Mutex<u64>) -> u64 {
    let (mut last, mut still) = (0, 0);
    for _ in 0..300 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = *printed.lock().unwrap();
        still = if now == last && now > 0 { still + 1 } else { 0 };
        last = now;
        if still >= 10 {
            break;
        }
    }
    last
}
