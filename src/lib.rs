//! A write-ahead log of CRC32C-framed records in segment files, with recovery that tells a torn
//! tail from corruption.
//!
//! A log is one directory of segment files (`00000000000000000001.wal`, ...). Records carry a
//! sequence number (1, 2, 3, ...), a timestamp, an optional key, a payload, and a checksum that
//! binds them to their segment. The byte-for-byte format is in `docs/FORMAT.md`.
//!
//! # The four calls
//!
//! ```
//! use walctl::{Log, Options};
//! # let dir = std::env::temp_dir().join(format!("walctl-doc-{}", std::process::id()));
//! let log = Log::open(&dir, Options::default())?;          // open (or create)
//! let appended = log.append(b"hello")?;                     // append: the OS has the bytes
//! log.sync()?;                                              // sync: now durable
//! for record in log.records()? {                            // iterate
//!     println!("{} {:?}", record.seq, record.payload);
//! }
//! # assert_eq!(appended.seq, 1);
//! # drop(log); std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), walctl::Error>(())
//! ```
//!
//! # Guarantees
//!
//! * `append` returns after one write hands the record to the OS: a process crash cannot lose
//!   it; a power loss can, until a `sync` returns Ok. A failed write is truncated away.
//! * `sync` returns Ok only after an fdatasync covering every record appended before the call,
//!   and after the directory fsync of any segment those records live in. Concurrent syncs share
//!   one fdatasync (group commit).
//! * After a failed fsync the writer is poisoned: every later append and sync fails. Reopening
//!   recovers exactly what is durable. An fsync is never retried.
//! * Scanning ([`scan_log`]) never fails on damage: it reports it. The verdict is clean, torn
//!   tail (safe to cut: nothing acknowledged is lost) or corrupt, by the decision table in
//!   FORMAT.md §8, using durable-watermark slots that record what syncs acknowledged.
//! * One writer at a time (an exclusive lock on `LOCK`); readers take no lock.
//! * Readers hold each sealed segment mapped (read, when under 256 KiB) and the last one a
//!   bounded window at a time, so their memory does not grow with the log or the segment size.
//!   [`scan_log_from`] starts at the segment holding a given sequence number and
//!   [`scan_log_newest`] reads only the newest segments, so reading the end of a long log
//!   costs the end.
//!
//! # Following a live log
//!
//! [`read_after`] delivers only the records after a [`Cursor`] from an earlier read, so a
//! follower polling a busy log pays for the new bytes. It waits at a record still being
//! written, says [`After::Lost`] when the log was rewritten under it, and never delivers a
//! record past damage ([`After::Damaged`]).
//!
//! All file access goes through [`storage::Storage`]; [`storage::MemStorage`] simulates crashes
//! and I/O errors for tests.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod classify;
pub mod compact;
mod error;
pub mod format;
pub mod kv;
mod log;
mod mmap;
mod options;
mod recovery;
pub mod repair;
mod report;
pub mod scan;
pub mod segment;
pub mod storage;
mod tail;
pub mod time;
mod window;

pub use compact::{
    CompactReport, Compaction, CompactionState, LOST_LISTED, LostRange, Pass, SalvageReport,
    Totals, compact, compact_observed, salvage, salvage_observed,
};
pub use error::{Error, ErrorKind, Result};
pub use format::RecordKind;
pub use kv::{KeyEntry, KeyIndex};
pub use log::{Appended, Entry, Log, OpenReport};
pub use options::{Options, SyncPolicy};
pub use recovery::{scan_log, scan_log_from, scan_log_newest, verify_log};
pub use repair::{RepairOutcome, TailCut, truncate_partial};
pub use report::{
    DAMAGE_LISTED_PER_LOG, DAMAGE_LISTED_PER_SEGMENT, Damage, DamageClass, DamageKind, InProgress,
    Location, Record, RecordView, Report, SegmentReport, TimeRange, Verdict,
};
pub use tail::{After, Cursor, read_after};

/// Verifies the log in `dir` on the real file system, on every core, and returns its report.
///
/// # Errors
///
/// As [`scan_log`].
pub fn verify(dir: impl AsRef<std::path::Path>) -> Result<Report> {
    verify_log(&storage::FsStorage::new(), dir.as_ref())
}

/// A named point where crash tests kill the process (docs/TESTING.md, family 6).
///
/// Compiled to nothing unless the `kill-points` feature is on; then, when the environment
/// variable `WALCTL_KILL_AT` names this point, the process aborts on its `WALCTL_KILL_HIT`-th
/// pass here (default the first), as a crash would stop it, leaving the page cache to the OS.
#[inline]
pub(crate) fn kill_point(name: &str) {
    #[cfg(feature = "kill-points")]
    {
        static HITS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        if std::env::var("WALCTL_KILL_AT").is_ok_and(|at| at == name) {
            let hit = HITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let want = std::env::var("WALCTL_KILL_HIT")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            if hit == want {
                std::process::abort();
            }
        }
    }
    let _ = name;
}
