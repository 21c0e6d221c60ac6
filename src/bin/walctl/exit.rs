//! The exit-code contract, in one place: every command ends in an [`Exit`].
//!
//! The codes are part of walctl's interface (README "Exit codes", `walctl --help`): scripts
//! branch on them, so each mapping has a unit test below and changing one is a breaking change.

use std::io;
use walctl::{ErrorKind, Verdict};

/// How a walctl process ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what was asked; for readers, the log is clean.
    Success,
    /// 1: the only damage is a torn tail, which `repair --truncate-partial` can cut.
    TornTail,
    /// 2: the command line was wrong (clap uses 2 as well).
    Usage,
    /// 2: the command could not run: I/O error, not a walctl log, permission.
    Failure,
    /// 3: corruption that truncation cannot fix without losing acknowledged data.
    Corrupt,
    /// 4: another writer holds the log's lock (after the wait ran out).
    Locked,
    /// 5: `get` found no live value for the key (outside the damage codes on purpose).
    NotFound,
    /// 6: `append --expect-next-seq` found another next sequence number and appended nothing.
    /// Its own code, so a script retrying an append can tell "already there, or someone else
    /// appended" from a failure.
    SeqMismatch,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::TornTail => 1,
            Exit::Usage | Exit::Failure => 2,
            Exit::Corrupt => 3,
            Exit::Locked => 4,
            Exit::NotFound => 5,
            Exit::SeqMismatch => 6,
        }
    }

    /// The exit for a scan's verdict.
    pub fn from_verdict(verdict: Verdict) -> Exit {
        match verdict {
            Verdict::Clean => Exit::Success,
            Verdict::TornTail => Exit::TornTail,
            Verdict::Corrupt => Exit::Corrupt,
        }
    }

    /// The exit for an error that ended a command, by the first library error in its chain.
    pub fn from_error(err: &anyhow::Error) -> Exit {
        for cause in err.chain() {
            if cause.downcast_ref::<UsageError>().is_some() {
                return Exit::Usage;
            }
            if let Some(e) = cause.downcast_ref::<walctl::Error>() {
                return match e.kind() {
                    ErrorKind::Locked { .. } => Exit::Locked,
                    ErrorKind::Corrupt { .. } => Exit::Corrupt,
                    ErrorKind::TornTail { .. } => Exit::TornTail,
                    ErrorKind::SequenceMismatch { .. } => Exit::SeqMismatch,
                    _ => Exit::Failure,
                };
            }
        }
        Exit::Failure
    }
}

/// A mistake on the command line that clap cannot see (for example a bad `--jsonl` line); exits 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Whether the error is a closed stdout (`walctl dump | head`), which ends quietly with 0.
///
/// serde_json hides the io::Error it wraps from `source()`, so its own kind is checked too.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(io::ErrorKind::BrokenPipe))
    })
}

/// Whether `err` is the file system refusing to store more: no space left, a disk quota, or
/// the process's file-size limit.
pub fn is_out_of_space(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                io::ErrorKind::StorageFull
                    | io::ErrorKind::QuotaExceeded
                    | io::ErrorKind::FileTooLarge
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A real `Locked` error: the library has no public constructor for its errors.
    fn locked_error() -> walctl::Error {
        let dir = tempfile::tempdir().expect("temp dir");
        let _held = walctl::Log::open(dir.path(), walctl::Options::default()).expect("open");
        walctl::Log::open(dir.path(), walctl::Options::default()).expect_err("second writer")
    }

    /// A real `Corrupt` error: repair refuses a log whose first record is damaged.
    fn corrupt_error() -> walctl::Error {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = walctl::Log::open(dir.path(), walctl::Options::default()).expect("open");
        for payload in [b"one", b"two"] {
            log.append(payload).expect("append");
        }
        log.sync().expect("sync");
        drop(log);
        let path = dir.path().join(walctl::segment::segment_name(1));
        let mut bytes = std::fs::read(&path).expect("read");
        let first_payload =
            walctl::format::SEGMENT_DATA_START as usize + walctl::format::RECORD_HEADER_SIZE;
        bytes[first_payload] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
        walctl::truncate_partial(dir.path(), &walctl::Options::default(), true)
            .expect_err("corrupt")
    }

    #[test]
    fn clean_verdict_exits_0() {
        assert_eq!(Exit::from_verdict(Verdict::Clean).code(), 0);
        assert_eq!(Exit::Success.code(), 0);
    }

    /// A real `TornTail` error: compaction refuses a log whose last record was cut short.
    fn torn_tail_error() -> walctl::Error {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = walctl::Options {
            preallocate: 0,
            ..walctl::Options::default()
        };
        let log = walctl::Log::open(dir.path(), opts).expect("open");
        log.append(b"one").expect("append");
        log.sync().expect("sync");
        log.append(b"two, never synced").expect("append");
        drop(log);
        let path = dir.path().join(walctl::segment::segment_name(1));
        let len = std::fs::metadata(&path).expect("stat").len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open segment");
        file.set_len(len - 3).expect("truncate");
        let plan = walctl::Compaction {
            keys: true,
            ..walctl::Compaction::default()
        };
        walctl::compact(dir.path(), &walctl::Options::default(), &plan).expect_err("torn")
    }

    #[test]
    fn torn_tail_verdict_and_error_exit_1() {
        assert_eq!(Exit::from_verdict(Verdict::TornTail).code(), 1);
        let err = anyhow::Error::new(torn_tail_error()).context("compacting");
        assert_eq!(Exit::from_error(&err), Exit::TornTail);
        assert_eq!(Exit::TornTail.code(), 1);
    }

    #[test]
    fn missing_key_exits_5_outside_the_damage_codes() {
        assert_eq!(Exit::NotFound.code(), 5);
    }

    #[test]
    fn usage_error_exits_2() {
        let err = anyhow::Error::new(UsageError("bad".into())).context("parsing");
        assert_eq!(Exit::from_error(&err), Exit::Usage);
        assert_eq!(Exit::Usage.code(), 2);
    }

    #[test]
    fn io_and_not_a_log_errors_exit_2() {
        let err = anyhow::Error::new(io::Error::other("disk on fire"));
        assert_eq!(Exit::from_error(&err), Exit::Failure);
        let not_a_log = walctl::verify(Path::new("/nonexistent/walctl/dir")).expect_err("missing");
        assert!(matches!(not_a_log.kind(), ErrorKind::NotALog { .. }));
        assert_eq!(Exit::from_error(&anyhow::Error::new(not_a_log)).code(), 2);
        assert_eq!(Exit::Failure.code(), 2);
    }

    #[test]
    fn corrupt_verdict_and_error_exit_3() {
        assert_eq!(Exit::from_verdict(Verdict::Corrupt).code(), 3);
        let err = anyhow::Error::new(corrupt_error()).context("repairing");
        assert_eq!(Exit::from_error(&err), Exit::Corrupt);
        assert_eq!(Exit::Corrupt.code(), 3);
    }

    #[test]
    fn locked_error_exits_4_even_with_context() {
        let err = anyhow::Error::new(locked_error()).context("appending");
        assert_eq!(Exit::from_error(&err), Exit::Locked);
        assert_eq!(Exit::Locked.code(), 4);
    }

    #[test]
    fn sequence_mismatch_exits_6_even_with_context() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = walctl::Log::open(dir.path(), walctl::Options::default()).expect("open");
        let entry = walctl::Entry::data(b"retry");
        let mismatch = log
            .append_batch(&[entry], Some(7), &mut Vec::new())
            .expect_err("the next sequence number is 1");
        let err = anyhow::Error::new(mismatch).context("appending");
        assert_eq!(Exit::from_error(&err), Exit::SeqMismatch);
        assert_eq!(Exit::SeqMismatch.code(), 6);
    }

    #[test]
    fn broken_pipe_is_recognised_through_context_and_serde() {
        let pipe =
            anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&pipe));
        let json = serde_json::Error::io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&anyhow::Error::new(json)));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
