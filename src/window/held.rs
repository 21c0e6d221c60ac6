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
