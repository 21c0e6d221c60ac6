//! Splitting a stream into records at a delimiter byte (`append --lines`, `--null`), a chunk at
//! a time: the records of a chunk are handed on together as slices of one reusable buffer, so
//! nothing is copied per record and a batch is one library call. The buffer holds at least one
//! whole record, so it grows past its 1 MiB start only for a longer record, and never past the
//! record limit.

use std::io::{self, Read};

/// Bytes read per chunk.
const CHUNK: usize = 1 << 20;

/// Why splitting stopped.
#[derive(Debug)]
pub enum SplitError<E> {
    /// Reading the input failed.
    Read(io::Error),
    /// Record `number` (counting from 1) is longer than the limit.
    TooLong { number: u64, limit: usize },
    /// The consumer of a chunk failed.
    Deliver(E),
}

/// Reads `input` to its end and calls `deliver` with the records of each chunk, in order, the
/// delimiter removed. A last record without a delimiter counts; an empty input has none.
pub fn split<E>(
    input: &mut impl Read,
    delim: u8,
    limit: usize,
    mut deliver: impl FnMut(&[&[u8]]) -> Result<(), E>,
) -> Result<(), SplitError<E>> {
    let mut buf = vec![0u8; CHUNK.min(limit.saturating_add(1)).max(1)];
    let mut filled = 0;
    let mut number = 0u64;
    let mut ranges = Vec::new();
    loop {
        let n = read_some(input, &mut buf[filled..]).map_err(SplitError::Read)?;
        filled += n;
        let eof = n == 0;
        ranges.clear();
        let mut start = 0;
        for end in memchr::memchr_iter(delim, &buf[..filled]) {
            ranges.push(start..end);
            start = end + 1;
        }
        if eof && start < filled {
            ranges.push(start..filled);
            start = filled;
        }
        for r in &ranges {
            number += 1;
            if r.len() > limit {
                return Err(SplitError::TooLong { number, limit });
            }
        }
        if !ranges.is_empty() {
            let records: Vec<&[u8]> = ranges.iter().map(|r| &buf[r.clone()]).collect();
            deliver(&records).map_err(SplitError::Deliver)?;
        }
        if eof {
            return Ok(());
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() {
            // One record fills the buffer: it must be longer than a chunk.
            if filled > limit {
                return Err(SplitError::TooLong {
                    number: number + 1,
                    limit,
                });
            }
            buf.resize(buf.len().saturating_mul(2).min(limit.saturating_add(1)), 0);
        }
    }
}

/// One `read` call, retried on EINTR.
fn read_some(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, SplitError<()>> {
        let mut out = Vec::new();
        split(&mut &input[..], b'\n', limit, |rs| {
            out.extend(rs.iter().map(|r| r.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn lines_with_and_without_a_final_newline_and_empty_lines() {
        assert_eq!(collect(b"", 10).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(
            collect(b"a\n\nbc", 10).unwrap(),
            vec![b"a".to_vec(), vec![], b"bc".to_vec()]
        );
        assert_eq!(collect(b"a\n", 10).unwrap(), vec![b"a".to_vec()]);
        assert_eq!(collect(b"\n", 10).unwrap(), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn records_longer_than_a_chunk_grow_the_buffer_up_to_the_limit_and_no_further() {
        let long = vec![b'x'; 3 * CHUNK + 5];
        let mut input = long.clone();
        input.extend_from_slice(b"\nshort\n");
        let got = collect(&input, 4 * CHUNK).unwrap();
        assert!(got.len() == 2 && got[0] == long && got[1] == b"short");
        match collect(&input, 2 * CHUNK) {
            Err(SplitError::TooLong { number: 1, .. }) => {}
            other => panic!("{:?}", other.map(|v| v.len())),
        }
        match collect(b"ok\ntoo long\n", 4) {
            Err(SplitError::TooLong {
                number: 2,
                limit: 4,
            }) => {}
            other => panic!("{:?}", other.map(|v| v.len())),
        }
    }

    #[test]
    fn a_record_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() {
        // A limit below a chunk (the buffer is the limit plus one byte), and one the doubling
        // buffer meets exactly (the buffer is full of the record before its delimiter is read).
        for limit in [4, 2 * CHUNK] {
            for tail in [&b"\n"[..], b""] {
                let mut input = vec![b'x'; limit];
                input.extend_from_slice(tail);
                let got = collect(&input, limit).unwrap();
                assert!(got.len() == 1 && got[0].len() == limit, "limit {limit}");
                input.insert(0, b'x');
                match collect(&input, limit) {
                    Err(SplitError::TooLong { number: 1, .. }) => {}
                    other => panic!("limit {limit}: {:?}", other.map(|v| v.len())),
                }
            }
        }
    }

    #[test]
    fn an_interrupted_read_is_retried_and_any_other_error_ends_the_split() {
        // A signal (SIGWINCH, SIGCHLD of a pipeline) interrupts `read` with EINTR: not an error.
        struct Failing(Vec<io::Result<&'static [u8]>>);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Ok(0);
                }
                let bytes = self.0.remove(0)?;
                buf[..bytes.len()].copy_from_slice(bytes);
                Ok(bytes.len())
            }
        }
        let kind = |k| Err(io::Error::from(k));
        let mut out = Vec::new();
        let mut input = Failing(vec![
            Ok(b"a\n"),
            kind(io::ErrorKind::Interrupted),
            Ok(b"b\n"),
        ]);
        split(&mut input, b'\n', 10, |rs| {
            out.extend(rs.iter().map(|r| r.to_vec()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(out, vec![b"a".to_vec(), b"b".to_vec()]);
        let mut input = Failing(vec![
            Ok(b"a\n"),
            kind(io::ErrorKind::BrokenPipe),
            Ok(b"b\n"),
        ]);
        match split(&mut input, b'\n', 10, |_| Ok::<(), ()>(())) {
            Err(SplitError::Read(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reader_returning_one_byte_at_a_time_splits_the_same() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((&b, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = b;
                self.0 = rest;
                Ok(1)
            }
        }
        let mut out = Vec::new();
        split(&mut Trickle(b"ab\ncd\n\ne"), b'\n', 10, |rs| {
            out.extend(rs.iter().map(|r| r.to_vec()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            out,
            vec![b"ab".to_vec(), b"cd".to_vec(), vec![], b"e".to_vec()]
        );
    }
}
