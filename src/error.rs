//! The library's one error type.
//!
//! An [`Error`] means an operation could not be carried out. Damage found while scanning a log is
//! not an error: it is data in a [`crate::Report`]. The only place damage turns into an error is
//! where an operation refuses to act on a damaged log (the writer on open, repair), and then the
//! error carries the report's verdict so the caller can show it.

use crate::compact::CompactionState;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// An error from the walctl library. Match on [`Error::kind`].
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    compaction: Option<CompactionState>,
    /// Where in the file an I/O operation failed, when it had one place (a write or a read).
    offset: Option<u64>,
}

/// What went wrong. New kinds may be added in minor releases.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An I/O operation failed. `op` names it (for example `"fdatasync"`), `path` the file.
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// An earlier write or fsync failed, so this writer no longer knows what is on disk. Every
    /// append and sync fails with this until the log is reopened, which re-syncs and rescans.
    Poisoned {
        /// The failure that poisoned the writer.
        cause: String,
    },
    /// Another process holds the writer lock (after waiting, if a wait was configured).
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The log is damaged in a way that truncation cannot fix without losing acknowledged data;
    /// the operation refused and changed nothing.
    Corrupt {
        /// A one-line summary of the first damage (segment, offset, kind).
        summary: String,
    },
    /// The log ends in a torn tail, and the operation needs a clean log; nothing was changed.
    /// `walctl repair --truncate-partial` (or opening the log for writing) cuts it.
    TornTail {
        /// A one-line summary of the tail.
        summary: String,
    },
    /// The directory holds no segments, or something that is not a walctl log.
    NotALog {
        /// The directory or file.
        path: PathBuf,
        /// What was expected and not found.
        reason: String,
    },
    /// A segment was written by a newer format version, or uses features this code lacks.
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// The version (or flag bits) found.
        found: u32,
    },
    /// A record's key plus payload exceeds the configured limit.
    RecordTooLarge {
        /// The record's size in bytes (key plus payload).
        size: u64,
        /// The configured limit.
        size_max: u64,
    },
    /// A key exceeds the configured key limit.
    KeyTooLarge {
        /// The key's length.
        size: u64,
        /// The configured limit.
        size_max: u64,
    },
    /// `append` was told which sequence number to expect, and the log is elsewhere.
    SequenceMismatch {
        /// What the caller expected.
        expected: u64,
        /// The next sequence number the log would assign.
        actual: u64,
    },
    /// The options are out of range.
    InvalidOptions(String),
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Error {
        Error {
            kind,
            compaction: None,
            offset: None,
        }
    }

    pub(crate) fn with_compaction_state(mut self, state: CompactionState) -> Error {
        self.compaction = Some(state);
        self
    }

    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Error {
        Error::new(ErrorKind::Io {
            op,
            path: path.to_path_buf(),
            source,
        })
    }

    /// An I/O error at `offset` of `path`: the operator learns how far a write got (a full
    /// disk stops one part way) or where a read failed.
    pub(crate) fn io_at(op: &'static str, path: &Path, offset: u64, source: io::Error) -> Error {
        Error {
            offset: Some(offset),
            ..Error::io(op, path, source)
        }
    }

    pub(crate) fn not_a_log(path: &Path, reason: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotALog {
            path: path.to_path_buf(),
            reason: reason.into(),
        })
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// For an error from [`crate::compact()`]: where the compaction left the log (every error
    /// from it says). `None` for errors from anything else.
    #[must_use]
    pub fn compaction_state(&self) -> Option<CompactionState> {
        self.compaction
    }

    /// For an I/O error of an operation at one place in a file (a write or a read): the byte
    /// offset it started at. `None` for the others.
    #[must_use]
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The file or directory involved, when there is one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        match &self.kind {
            ErrorKind::Io { path, .. }
            | ErrorKind::Locked { path }
            | ErrorKind::NotALog { path, .. }
            | ErrorKind::UnsupportedVersion { path, .. } => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Io { op, path, source } => {
                write!(f, "{op} failed on {}", path.display())?;
                if let Some(offset) = self.offset {
                    write!(f, " at offset {offset}")?;
                }
                write!(f, ": {source}")
            }
            ErrorKind::Poisoned { cause } => write!(
                f,
                "the writer is poisoned by an earlier failure ({cause}); \
                 reopen the log to recover what is durable"
            ),
            ErrorKind::Locked { path } => write!(
                f,
                "the log is locked by another writer (lock file {}); \
                 wait for it to finish or raise the lock wait",
                path.display()
            ),
            ErrorKind::Corrupt { summary } => write!(
                f,
                "the log is corrupt and was left unchanged: {summary}; \
                 run `walctl verify` for the full damage report"
            ),
            ErrorKind::TornTail { summary } => write!(
                f,
                "the log ends in a torn tail and was left unchanged: {summary}; \
                 run `walctl repair --truncate-partial` first"
            ),
            ErrorKind::NotALog { path, reason } => {
                write!(f, "{} is not a walctl log: {reason}", path.display())
            }
            ErrorKind::UnsupportedVersion { path, found } => write!(
                f,
                "{} needs format version or features {found:#x}, newer than this walctl reads; \
                 upgrade walctl",
                path.display()
            ),
            ErrorKind::RecordTooLarge { size, size_max } => write!(
                f,
                "record of {size} bytes exceeds the limit of {size_max} bytes (key plus payload)"
            ),
            ErrorKind::KeyTooLarge { size, size_max } => {
                write!(
                    f,
                    "key of {size} bytes exceeds the limit of {size_max} bytes"
                )
            }
            ErrorKind::SequenceMismatch { expected, actual } => write!(
                f,
                "expected the next sequence number to be {expected}, but it is {actual}; \
                 nothing was appended"
            ),
            ErrorKind::InvalidOptions(msg) => write!(f, "invalid options: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Shorthand for results of this library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_error_names_the_file_involved_and_an_io_error_keeps_its_cause() {
        let eio = Error::io(
            "fdatasync",
            Path::new("/log/1.wal"),
            io::Error::from_raw_os_error(5),
        );
        assert_eq!(eio.path(), Some(Path::new("/log/1.wal")));
        let cause = eio.source().expect("the operating system's error");
        let os = cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error);
        assert_eq!(os, Some(5));
        let without_cause = [
            (
                Error::new(ErrorKind::Locked {
                    path: "/log/LOCK".into(),
                }),
                Some("/log/LOCK"),
            ),
            (Error::not_a_log(Path::new("/x"), "no segments"), Some("/x")),
            (
                Error::new(ErrorKind::UnsupportedVersion {
                    path: "/log/2.wal".into(),
                    found: 9,
                }),
                Some("/log/2.wal"),
            ),
            (
                Error::new(ErrorKind::Corrupt {
                    summary: "s".into(),
                }),
                None,
            ),
            (Error::new(ErrorKind::InvalidOptions("o".into())), None),
        ];
        for (err, path) in without_cause {
            assert_eq!(err.path(), path.map(Path::new), "{err}");
            assert!(err.source().is_none(), "{err}");
            assert_eq!(err.offset(), None, "{err}");
        }
    }

    #[test]
    fn an_io_error_at_a_place_in_a_file_names_its_offset() {
        let efbig = || io::Error::from_raw_os_error(27);
        let at = Error::io_at("write", Path::new("/log/1.wal"), 6_196_567, efbig());
        assert_eq!(at.offset(), Some(6_196_567));
        assert!(
            at.to_string()
                .starts_with("write failed on /log/1.wal at offset 6196567: "),
            "{at}"
        );
        let nowhere = Error::io("fdatasync", Path::new("/log/1.wal"), efbig());
        assert_eq!(nowhere.offset(), None);
        assert!(!nowhere.to_string().contains("offset"), "{nowhere}");
    }
}
