//! Names of the files in a log directory, and listing them.
//!
//! A segment is named `<20 decimal digits>.wal` (FORMAT.md §1); nothing else in a log directory
//! ends in `.wal`. The other names walctl uses are fixed here too, so that every file the
//! library creates has a name it can recognise, clean up or refuse.

use crate::error::{Error, Result};
use crate::storage::Storage;
use std::io;
use std::path::{Path, PathBuf};

/// Digits in a segment number (FORMAT.md §1).
pub const SEGMENT_NAME_DIGITS: usize = 20;

/// Suffix of segment files (FORMAT.md §1).
pub const SEGMENT_SUFFIX: &str = ".wal";

/// Suffix of a segment being created, before its rename into place (FORMAT.md §6).
pub const TEMP_SUFFIX: &str = ".wal.tmp";

/// Name of the writer lock file (FORMAT.md §6).
pub const LOCK_NAME: &str = "LOCK";

/// Name of the repair journal (FORMAT.md §7).
pub const JOURNAL_NAME: &str = "repair.jsonl";

/// Present in a directory a salvage is still writing (FORMAT.md §6.7): while it exists the
/// directory is no log, whatever segments it holds, so an interrupted salvage is never read or
/// appended to as if it were complete.
pub const SALVAGE_MARKER: &str = "SALVAGE-INCOMPLETE";

/// File name of segment `number`.
#[must_use]
pub fn segment_name(number: u64) -> String {
    format!("{number:020}{SEGMENT_SUFFIX}")
}

/// Parses a segment file name; `None` for anything not exactly `<20 digits>.wal`.
#[must_use]
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// File name of the temporary file a segment is written to before it is installed.
#[must_use]
pub fn temp_name(number: u64) -> String {
    format!("{number:020}{TEMP_SUFFIX}")
}

/// Parses a temporary segment name.
#[must_use]
pub fn parse_temp_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(TEMP_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a log directory holds, by name.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// Segment numbers, ascending.
    pub segments: Vec<u64>,
    /// Temporary segment files left by an interrupted creation.
    pub temps: Vec<u64>,
    /// Names ending in `.wal` that are not segment names.
    pub strays: Vec<String>,
}

impl Listing {
    /// Path of segment `number` in `dir`.
    #[must_use]
    pub fn path(dir: &Path, number: u64) -> PathBuf {
        dir.join(segment_name(number))
    }
}

/// Lists a log directory.
///
/// # Errors
///
/// [`crate::ErrorKind::NotALog`] when the directory does not exist, I/O errors otherwise.
pub fn list(storage: &dyn Storage, dir: &Path) -> Result<Listing> {
    let names = match storage.list(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::not_a_log(dir, "the directory does not exist"));
        }
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    if names.iter().any(|n| n == SALVAGE_MARKER) {
        return Err(Error::not_a_log(
            dir,
            format!(
                "a salvage into it was interrupted ({SALVAGE_MARKER} is present): delete the \
                 directory and run walctl salvage again"
            ),
        ));
    }
    let mut listing = Listing::default();
    for name in names {
        if let Some(n) = parse_segment_name(&name) {
            listing.segments.push(n);
        } else if let Some(n) = parse_temp_name(&name) {
            listing.temps.push(n);
        } else if name.ends_with(SEGMENT_SUFFIX) {
            listing.strays.push(name);
        }
    }
    listing.segments.sort_unstable();
    listing.temps.sort_unstable();
    listing.strays.sort();
    Ok(listing)
}

/// An open segment file with its decoded header.
pub(crate) struct Opened {
    pub path: PathBuf,
    pub file: std::sync::Arc<dyn crate::storage::StorageFile>,
    pub header: std::result::Result<crate::format::SegmentHeader, crate::format::HeaderFault>,
}

/// Opens segment `number` of `dir` read-only and decodes its header (a short file is
/// `HeaderFault::Short`). I/O failures are errors; a bad header is the caller's to judge.
pub(crate) fn open_with_header(storage: &dyn Storage, dir: &Path, number: u64) -> Result<Opened> {
    use crate::format::{HeaderFault, SEGMENT_HEADER_SIZE, SegmentHeader};
    let path = Listing::path(dir, number);
    let file = storage
        .open(&path, crate::storage::OpenMode::Read)
        .map_err(|e| Error::io("open", &path, e))?;
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let mut buf = [0u8; SEGMENT_HEADER_SIZE];
    let header = if len < SEGMENT_HEADER_SIZE as u64 {
        Err(HeaderFault::Short)
    } else {
        file.read_at(&mut buf, 0)
            .map_err(|e| Error::io("read", &path, e))?;
        SegmentHeader::decode(&buf)
    };
    Ok(Opened { path, file, header })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_are_strict() {
        assert_eq!(segment_name(7), "00000000000000000007.wal");
        assert_eq!(parse_segment_name("00000000000000000007.wal"), Some(7));
        for bad in [
            "7.wal",
            "0000000000000000000x.wal",
            "00000000000000000007.WAL",
            "000000000000000000007.wal",
            " 0000000000000000007.wal",
            "00000000000000000007.wal.tmp",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
        assert_eq!(parse_temp_name(&temp_name(3)), Some(3));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        for bad in [
            "3.wal.tmp",
            "000000000000000000003.wal.tmp",
            "0000000000000000000x.wal.tmp",
            "00000000000000000003.wal",
        ] {
            assert_eq!(parse_temp_name(bad), None, "{bad}");
        }
    }

    /// Only a directory that is not there is "not a log"; one that cannot be listed is an I/O
    /// error, whose cause the operator must see.
    #[test]
    fn a_directory_that_cannot_be_listed_is_an_io_error_not_a_missing_log() {
        use crate::storage::{Fault, MemStorage, Storage, TraceOp};
        let storage = MemStorage::new();
        let dir = Path::new("/log");
        storage.create_dir_all(dir).unwrap();
        storage.set_faults(Some(Box::new(|op| {
            (op.op == TraceOp::List).then_some(Fault::Errno(5))
        })));
        let err = list(&storage, dir).unwrap_err();
        assert!(
            matches!(err.kind(), crate::ErrorKind::Io { op: "list", .. }),
            "{err}"
        );
        storage.set_faults(None);
        let missing = list(&storage, Path::new("/nothing")).unwrap_err();
        assert!(
            matches!(missing.kind(), crate::ErrorKind::NotALog { .. }),
            "{missing}"
        );
    }
}
