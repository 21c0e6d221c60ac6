//! Shared helpers for the CLI tests: fixture logs built through the library, small helpers that
//! damage them the way crashes and bit rot do, and a runner for the real `walctl` binary that
//! captures exit code, stdout and stderr.
//!
//! Fixtures use fixed timestamps so that text output can be compared exactly.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use walctl::{Entry, Log, Options};

/// 2026-01-31T09:00:00Z, the timestamp of a fixture's first record; each next one is 1 s later.
pub const T0: u64 = 1_769_850_000_000_000_000;

/// Where records start in every segment (FORMAT.md §2).
pub const DATA_START: u64 = walctl::format::SEGMENT_DATA_START;

/// Bytes of a record header (FORMAT.md §3).
pub const HEADER: u64 = walctl::format::RECORD_HEADER_SIZE as u64;

/// A temporary directory holding a log at `<tmp>/wal` (which may not exist yet).
pub struct Fixture {
    pub tmp: TempDir,
    pub dir: PathBuf,
}

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Fixture {
    /// No log yet.
    pub fn empty() -> Fixture {
        let tmp = tempfile::tempdir().expect("create a temp dir");
        let dir = tmp.path().join("wal");
        Fixture { tmp, dir }
    }

    /// A clean log of records `record-1` .. `record-n`, all synced.
    pub fn clean(n: u64) -> Fixture {
        let f = Fixture::empty();
        let payloads: Vec<String> = (1..=n).map(|i| format!("record-{i}")).collect();
        let entries: Vec<Entry<'_>> = payloads.iter().map(|p| Entry::data(p.as_bytes())).collect();
        f.append(&entries, true);
        f
    }

    /// A clean log of `n` synced records of 1,000 bytes (`record-<i>` padded with dots) in
    /// segments of the smallest size, so that it spans several segments, three records each.
    pub fn rotated(n: u64) -> Fixture {
        let f = Fixture::empty();
        let payloads: Vec<String> = (1..=n).map(|i| format!("record-{i:.<1000}")).collect();
        let entries: Vec<Entry<'_>> = payloads.iter().map(|p| Entry::data(p.as_bytes())).collect();
        let options = Options {
            segment_size: walctl::format::SEGMENT_SIZE_MIN,
            ..writer_options()
        };
        f.append_with(&entries, true, options);
        f
    }

    /// Appends `entries` through the library, with fixture timestamps, optionally synced.
    pub fn append(&self, entries: &[Entry<'_>], sync: bool) {
        self.append_with(entries, sync, writer_options());
    }

    /// [`Fixture::append`] with the writer's options given.
    pub fn append_with(&self, entries: &[Entry<'_>], sync: bool, options: Options) {
        let log = Log::open(&self.dir, options).expect("open the fixture log");
        let first = log.next_seq();
        let timed: Vec<Entry<'_>> = entries
            .iter()
            .zip(first..)
            .map(|(e, seq)| Entry {
                timestamp_nanos: Some(T0 + (seq - 1) * 1_000_000_000),
                ..*e
            })
            .collect();
        let mut out = Vec::new();
        log.append_batch(&timed, None, &mut out)
            .expect("append to the fixture log");
        if sync {
            log.sync().expect("sync the fixture log");
        }
    }

    /// Path of segment `n`.
    pub fn segment(&self, n: u64) -> PathBuf {
        self.dir.join(walctl::segment::segment_name(n))
    }

    /// Removes the last `n` bytes of segment 1, as a crash in the middle of a write does.
    pub fn truncate_by(&self, n: u64) {
        let path = self.segment(1);
        let len = fs::metadata(&path).expect("stat segment").len();
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open segment");
        file.set_len(len - n).expect("truncate segment");
    }

    /// Writes `bytes` at `offset` of the file at `path`, in place (any platform).
    pub fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
        use std::io::{Seek as _, SeekFrom};
        let mut file = OpenOptions::new().write(true).open(path).expect("open");
        file.seek(SeekFrom::Start(offset)).expect("seek");
        file.write_all(bytes).expect("write");
    }

    /// Inverts the byte at `offset` of segment 1, as bit rot does.
    pub fn flip_byte(&self, offset: u64) {
        let path = self.segment(1);
        let mut bytes = fs::read(&path).expect("read segment");
        bytes[offset as usize] ^= 0xff;
        fs::write(&path, bytes).expect("write segment");
    }

    /// Appends `n` zero bytes to segment 1, as a file system that extended the file before a
    /// crash does.
    pub fn append_zeros(&self, n: usize) {
        let mut file = OpenOptions::new()
            .append(true)
            .open(self.segment(1))
            .expect("open");
        file.write_all(&vec![0; n]).expect("append zeros");
    }

    /// Two text records, then keyed, binary, empty-payload and tombstone ones, all synced.
    pub fn mixed() -> Fixture {
        let f = Fixture::clean(2);
        f.append(
            &[
                Entry::keyed(b"user:7", b"{\"name\":\"Ada\"}"),
                Entry::data(b"\x00\xff binary \x1b"),
                Entry::keyed(b"\xfekey", b""),
                Entry::tombstone(b"user:7"),
            ],
            true,
        );
        f
    }

    /// A synced log of `n` records of 20 bytes, with every other one from the second damaged:
    /// more damaged places than a report lists one by one once `n / 2` passes
    /// `walctl::DAMAGE_LISTED_PER_SEGMENT`.
    pub fn riddled(n: u64) -> Fixture {
        let f = Fixture::empty();
        let payloads: Vec<String> = (1..=n).map(|i| format!("riddled-{i:012}")).collect();
        let entries: Vec<Entry<'_>> = payloads.iter().map(|p| Entry::data(p.as_bytes())).collect();
        f.append(&entries, true);
        let path = f.segment(1);
        let mut bytes = fs::read(&path).expect("read segment");
        for seq in (2..=n).step_by(2) {
            bytes[(DATA_START + (seq - 1) * (HEADER + 20) + HEADER) as usize] ^= 0xff;
        }
        fs::write(&path, bytes).expect("write segment");
        f
    }

    /// A clean log of `synced` synced records plus one unsynced record cut short by `cut` bytes:
    /// the torn tail a writer killed mid-write leaves.
    pub fn torn(synced: u64, cut: u64) -> Fixture {
        let f = Fixture::clean(synced);
        f.append(&[Entry::data(b"unsynced-record")], false);
        f.truncate_by(cut);
        f
    }

    /// Every file in the log directory with its length and SHA-256, to prove that nothing
    /// changed (digests, so a failure prints something readable). The empty advisory lock
    /// files (`LOCK`, `READERS`) are left out: taking a lock creates them and changes no data.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        use sha2::Digest as _;
        fs::read_dir(&self.dir)
            .expect("list log dir")
            .filter(|e| {
                let name = e.as_ref().expect("dir entry").file_name();
                !matches!(name.to_str(), Some("LOCK" | "READERS"))
            })
            .map(|e| {
                let e = e.expect("dir entry");
                let bytes = fs::read(e.path()).expect("read file");
                let digest = walctl::repair::hex(&sha2::Sha256::digest(&bytes));
                (
                    e.file_name().to_string_lossy().into_owned(),
                    format!("{} {digest}", bytes.len()),
                )
            })
            .collect()
    }

    /// The binary, run in the fixture's temp dir with `--dir <log>`.
    pub fn walctl(&self) -> Command {
        let mut cmd = walctl();
        cmd.current_dir(self.tmp.path()).arg("--dir").arg(&self.dir);
        cmd
    }

    /// Runs `walctl --dir <log> <args>`, with the log's path in the output replaced by `<DIR>`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_cmd(self.walctl().args(args))
    }

    /// Runs `walctl --dir <log> <args>` on a pseudo-terminal through util-linux `script`, so
    /// that stdin and stderr are terminals (prompts and progress bars on), with `input` typed.
    /// Stdout and stderr arrive merged in `stdout`, with the terminal's `\r` removed. `None`
    /// when `script` is not installed.
    pub fn run_on_a_terminal(&self, args: &[&str], input: &str) -> Option<Run> {
        self.run_on_a_terminal_with(&[], args, input)
    }

    /// [`Fixture::run_on_a_terminal`] with the environment variables `env` set. The variables
    /// [`walctl`] clears are cleared here too, and so is `NO_COLOR`, which hides progress bars.
    pub fn run_on_a_terminal_with(
        &self,
        env: &[(&str, &str)],
        args: &[&str],
        input: &str,
    ) -> Option<Run> {
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        let inner = format!(
            "'{}' --dir '{}' {}",
            env!("CARGO_BIN_EXE_walctl"),
            self.dir.display(),
            quoted.join(" ")
        );
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &inner, "/dev/null"])
            .env_remove("WALCTL_DIR")
            .env_remove("RUST_BACKTRACE")
            .env_remove("NO_COLOR")
            .envs(env.iter().copied())
            .write_stdin(input.to_string());
        let mut run = self.run_cmd(&mut cmd);
        if run.code == -1 || run.stderr.contains("No such file") {
            eprintln!("util-linux `script` is not installed: skipped");
            return None;
        }
        run.stdout.retain(|c| c != '\r');
        Some(run)
    }

    /// Like [`Fixture::run`], with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: impl Into<Vec<u8>>) -> Run {
        self.run_cmd(self.walctl().args(args).write_stdin(input))
    }

    /// Runs a prepared command, replacing this fixture's paths in its output.
    pub fn run_cmd(&self, cmd: &mut Command) -> Run {
        let run = run(cmd);
        let dir = self.dir.display().to_string();
        let tmp = self.tmp.path().display().to_string();
        let clean = |s: String| s.replace(&dir, "<DIR>").replace(&tmp, "<TMP>");
        Run {
            code: run.code,
            stdout: clean(run.stdout),
            stderr: clean(run.stderr),
        }
    }

    /// Payloads of the log's records, read through the library.
    pub fn payloads(&self) -> Vec<Vec<u8>> {
        records(&self.dir).into_iter().map(|r| r.payload).collect()
    }
}

/// Options for the tests' own writers. They wait for the lock because a child process that
/// another test thread is spawning can hold an inherited copy of our lock's file descriptor
/// for a moment between its fork and its exec.
pub fn writer_options() -> Options {
    Options {
        // The damage helpers edit the bytes at the end of the last segment, so the fixtures
        // are written without preallocated zeros there.
        preallocate: 0,
        lock_wait: Some(std::time::Duration::from_secs(10)),
        ..Options::default()
    }
}

/// Every valid record of the log in `dir`, read through the library's scanner.
pub fn records(dir: &Path) -> Vec<walctl::Record> {
    let mut out = Vec::new();
    walctl::scan_log(&walctl::storage::FsStorage::new(), dir, &mut |r| {
        out.push(r.to_record());
        std::ops::ControlFlow::Continue(())
    })
    .expect("scan the log");
    out
}

/// The binary with a predictable environment: no inherited log dir, fixed help width, no
/// colour, no backtraces.
pub fn walctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_walctl"));
    cmd.env_remove("WALCTL_DIR")
        .env_remove("RUST_BACKTRACE")
        .env("COLUMNS", "100")
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(60));
    cmd
}

/// Runs a command and captures its outcome.
pub fn run(cmd: &mut Command) -> Run {
    let output = cmd.output().expect("run walctl");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Parses stdout as one JSON value.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Parses stdout as JSON Lines.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(json).collect()
}

/// Offset of record `seq` in a fixture made by [`Fixture::clean`] (payloads `record-<i>`, no
/// keys; true for seq < 10, where every payload is 8 bytes).
pub fn clean_offset(seq: u64) -> u64 {
    DATA_START + (seq - 1) * (HEADER + 8)
}
