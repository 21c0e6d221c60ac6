//! A file read a window at a time, the last window read kept.
//!
//! The scans of the last segment ask for bytes at increasing offsets, often just past what they
//! asked before: the clean records, the record at a doubt, the search past damage, the zero
//! checks. Serving each from the window already held, and reading only when a request runs past
//! it, keeps the reads to about one per window however the requests interleave; a segment with
//! damage every few records would otherwise cost a window's read per damage.

use crate::format::{RECORD_HEADER_SIZE, RECORD_SIZE_LIMIT, SEGMENT_FILE_LIMIT};
use crate::storage::StorageFile;
use std::io;

/// The most one read asks for: a window, or the largest record.
const READ_LIMIT: u64 = RECORD_HEADER_SIZE as u64 + RECORD_SIZE_LIMIT as u64;

/// A file of `len` bytes and the window of it read last.
pub(crate) struct Held<'f> {
    file: &'f dyn StorageFile,
    len: u64,
    window: u64,
    /// Where `bytes` start in the file.
    start: u64,
    bytes: Vec<u8>,
}

impl<'f> Held<'f> {
    /// Reads `file` (`len` bytes long, by the caller's stat) `window` bytes at a time.
    ///
    /// # Errors
    ///
    /// `InvalidData` for a length longer than any segment can be.
    pub(crate) fn new(file: &'f dyn StorageFile, len: u64, window: u64) -> io::Result<Held<'f>> {
        assert!(window > 0, "a window holds something");
        if len > SEGMENT_FILE_LIMIT {
            let why = format!(
                "the file is {len} bytes, more than any segment holds ({SEGMENT_FILE_LIMIT})"
            );
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        Ok(Held {
            file,
            len,
            window,
            start: 0,
            bytes: Vec::new(),
        })
    }

    /// The file's length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The bytes from `offset` to the end of the window held: at least `need` of them, fewer
    /// only where the file ends first. When the window held does not have them, a new one is
    /// read from `offset`, of the window's size or `need`, whichever is larger.
    ///
    /// # Errors
    ///
    /// The storage's read error (the file may have shrunk since its length was taken), or a
    /// `need` larger than any record.
    pub(crate) fn at(&mut self, offset: u64, need: u64) -> io::Result<&[u8]> {
        assert!(offset <= self.len, "{offset} is past the end of the file");
        let need = need.min(self.len - offset);
        let end = self.start + self.bytes.len() as u64;
        if offset < self.start || offset + need > end {
            self.read(offset, need)?;
        }
        Ok(&self.bytes[(offset - self.start) as usize..])
    }

    fn read(&mut self, offset: u64, need: u64) -> io::Result<()> {
        if need > READ_LIMIT {
            let why = format!("refusing to read {need} bytes (limit {READ_LIMIT})");
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        let n = need.max(self.window).min(self.len - offset) as usize;
        // A record longer than the window needed a larger buffer: give it back afterwards.
        if self.bytes.capacity() > 2 * n {
            self.bytes = Vec::new();
        }
        self.bytes.resize(n, 0);
        self.start = offset;
        if let Err(e) = self.file.read_at(&mut self.bytes, offset) {
            self.bytes.clear();
            return Err(e);
        }
        Ok(())
    }

    /// Whether the file is all zero from `from` to `to`.
    ///
    /// # Errors
    ///
    /// The storage's read error.
    pub(crate) fn all_zero(&mut self, mut from: u64, to: u64) -> io::Result<bool> {
        while from < to {
            let bytes = self.at(from, 1)?;
            let n = bytes.len().min((to - from) as usize);
            if !crate::format::is_zero(&bytes[..n]) {
                return Ok(false);
            }
            from += n as u64;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::tests::{Reads, stored};
    use std::sync::atomic::Ordering::Relaxed;

    /// A file of `len` bytes, each its offset modulo 251, that counts its reads.
    fn counted(len: usize) -> Reads {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        Reads {
            file: stored(&bytes),
            count: 0.into(),
            longest: 0.into(),
        }
    }

    #[test]
    fn requests_inside_the_window_held_are_served_without_a_read() {
        let file = counted(1000);
        let mut held = Held::new(&file, 1000, 100).unwrap();
        let reads = |file: &Reads| file.count.load(Relaxed);
        assert_eq!(held.at(10, 32).unwrap()[..3], [10, 11, 12]);
        assert_eq!((reads(&file), held.at(10, 32).unwrap().len()), (1, 100));
        // From the window's first byte to its last: held.
        held.at(10, 100).unwrap();
        held.at(109, 1).unwrap();
        assert_eq!(reads(&file), 1);
        // One byte past it, or one before it: read again, from there.
        assert_eq!(held.at(100, 11).unwrap()[0], 100);
        assert_eq!(reads(&file), 2);
        assert_eq!(held.at(99, 1).unwrap()[0], 99);
        assert_eq!(reads(&file), 3);
        // Near the end of the file a request gets what there is, once.
        assert_eq!(held.at(990, 32).unwrap().len(), 10);
        assert_eq!(held.at(990, 32).unwrap().len(), 10);
        assert_eq!(held.at(1000, 32).unwrap().len(), 0);
        assert_eq!(reads(&file), 4);
    }

    #[test]
    fn a_request_longer_than_the_window_is_read_whole_and_its_buffer_given_back_after() {
        let file = counted(10_000);
        let mut held = Held::new(&file, 10_000, 64).unwrap();
        assert_eq!(held.at(0, 8000).unwrap().len(), 8000);
        assert_eq!(file.longest.load(Relaxed), 8000);
        assert_eq!(held.at(9000, 32).unwrap().len(), 64);
        assert!(held.bytes.capacity() <= 128, "{}", held.bytes.capacity());
    }

    #[test]
    fn a_request_past_any_record_is_refused_before_anything_is_allocated() {
        // The length is the caller's stat; nothing is read, so the file may be short.
        let file = counted(10);
        let mut held = Held::new(&file, SEGMENT_FILE_LIMIT, 64).unwrap();
        let refused = held.at(0, READ_LIMIT + 1).map(|_| ()).unwrap_err();
        assert!(
            refused.to_string().contains("refusing to read"),
            "{refused}"
        );
        assert_eq!((file.count.load(Relaxed), held.bytes.capacity()), (0, 0));
    }

    #[test]
    fn zeros_are_checked_through_the_window_held() {
        let mut bytes = vec![0u8; 1000];
        bytes[700] = 1;
        let file = Reads {
            file: stored(&bytes),
            count: 0.into(),
            longest: 0.into(),
        };
        let mut held = Held::new(&file, 1000, 256).unwrap();
        assert!(held.all_zero(0, 700).unwrap());
        assert!(!held.all_zero(0, 701).unwrap());
        assert!(held.all_zero(701, 1000).unwrap());
        assert!(held.all_zero(1000, 1000).unwrap());
        // Windows at 0, 256 and 512; again from 0 for the second check; then 768.
        assert_eq!(file.count.load(Relaxed), 7);
    }
}
