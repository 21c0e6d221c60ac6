//! The progress bar of a whole-log scan: how far through the log's bytes the scan has come.
//!
//! Shown only to a person watching on a terminal (`Output::shows_progress`); everywhere else it
//! is hidden and costs nothing, not even the opens that size it.

use crate::output::Output;
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::path::Path;
use walctl::Location;
use walctl::storage::{FsStorage, Storage};

/// Progress of a scan in bytes, from the location of each record delivered.
pub struct Progress {
    bar: ProgressBar,
    /// Bytes of all segments before each segment, by segment number.
    base: HashMap<u64, u64>,
}

impl Progress {
    /// A bar for scanning the log in `dir`; hidden (and costless) unless a person watches.
    pub fn new(out: &Output, dir: &Path) -> Progress {
        Progress::labelled(out, dir, "scanning")
    }

    /// The same with another label on the bar.
    pub fn labelled(out: &Output, dir: &Path, label: &'static str) -> Progress {
        if !out.shows_progress() {
            // Sizing the bar opens every segment: thousands of opens nobody would see.
            return Progress::hidden();
        }
        let sizes = segment_sizes(dir);
        let (base, total) = starts(&sizes);
        let bar = if sizes.is_empty() {
            ProgressBar::hidden()
        } else {
            out.progress(total, label)
        };
        Progress { bar, base }
    }

    /// Whether a bar is shown (a person is watching on a terminal).
    pub fn visible(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Reads the whole log in `dir` for its report, as `verify` and `stat` do: on every core
    /// when no bar is shown, and in order, moving the bar, when one is.
    pub fn verify(&mut self, dir: &Path) -> walctl::Result<walctl::Report> {
        let storage = FsStorage::new();
        if !self.visible() {
            return walctl::verify_log(&storage, dir);
        }
        walctl::scan_log(&storage, dir, &mut |r| {
            self.update(r.location);
            std::ops::ControlFlow::Continue(())
        })
    }

    /// No bar at all (for `--follow`, whose output a person reads on the same terminal).
    pub fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
            base: HashMap::new(),
        }
    }

    /// Moves the bar to the end of the record at `location`.
    pub fn update(&mut self, location: Location) {
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_position(self.position(location));
    }

    /// Bytes of the log up to the end of the record at `location`: all of the segments before
    /// its own, and its own up to the record's end.
    fn position(&self, location: Location) -> u64 {
        let base = self.base.get(&location.segment).copied().unwrap_or(0);
        base + location.offset + u64::from(location.length)
    }

    /// Starts the bar over with a new label, for a second pass over the same bytes.
    pub fn restart(&mut self, label: &'static str) {
        self.bar.set_position(0);
        self.bar.set_message(label);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Where each segment starts in the bytes of the whole log, by segment number, and the total.
fn starts(sizes: &[(u64, u64)]) -> (HashMap<u64, u64>, u64) {
    let mut base = HashMap::with_capacity(sizes.len());
    let mut before = 0;
    for &(segment, len) in sizes {
        base.insert(segment, before);
        before += len;
    }
    (base, before)
}

/// `(segment number, file length)` of each segment; empty when the directory cannot be listed
/// (the scan itself then reports why).
fn segment_sizes(dir: &Path) -> Vec<(u64, u64)> {
    let storage = FsStorage::new();
    let Ok(listing) = walctl::segment::list(&storage, dir) else {
        return Vec::new();
    };
    listing
        .segments
        .iter()
        .map(|&n| {
            let len = storage
                .open(
                    &walctl::segment::Listing::path(dir, n),
                    walctl::storage::OpenMode::Read,
                )
                .and_then(|f| f.len())
                .unwrap_or(0);
            (n, len)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_the_segment_files_lengths_in_order_and_skip_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let name = |n: u64| walctl::segment::Listing::path(tmp.path(), n);
        std::fs::write(name(2), [0u8; 50]).unwrap();
        std::fs::write(name(1), [0u8; 100]).unwrap();
        std::fs::write(name(7), []).unwrap();
        std::fs::write(tmp.path().join("notes.txt"), [0u8; 9]).unwrap();
        assert_eq!(segment_sizes(tmp.path()), [(1, 100), (2, 50), (7, 0)]);
        assert_eq!(segment_sizes(&tmp.path().join("missing")), []);
    }

    #[test]
    fn a_record_is_placed_after_every_byte_of_the_segments_before_its_own() {
        let (base, total) = starts(&[(1, 100), (2, 50), (5, 70)]);
        assert_eq!(total, 220);
        let progress = Progress {
            bar: ProgressBar::hidden(),
            base,
        };
        let at = |segment, offset, length| Location {
            segment,
            offset,
            length,
        };
        assert_eq!(progress.position(at(1, 0, 100)), 100);
        assert_eq!(progress.position(at(2, 10, 5)), 115);
        assert_eq!(progress.position(at(5, 10, 20)), 180);
        // A segment the sizing did not see (made after it): its own bytes only.
        assert_eq!(progress.position(at(9, 10, 20)), 30);
    }
}
