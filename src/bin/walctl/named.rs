//! Write errors that say where: output that fails part way (a full disk under `walctl dump >
//! file` or `export-jsonl --output`) names its destination and how many bytes had been
//! written, which the operating system's "No space left on device" alone does not.

use std::fmt;
use std::io::{self, Write};

/// A writer whose errors name `label` and the byte offset the failed write started at.
pub struct Named<W> {
    inner: W,
    label: String,
    written: u64,
}

impl<W: Write> Named<W> {
    /// Wraps `inner`, whose errors will read "writing {label} failed at byte N".
    pub fn new(inner: W, label: impl Into<String>) -> Named<W> {
        Named {
            inner,
            label: label.into(),
            written: 0,
        }
    }

    /// The error to return for `e`, keeping its kind so that callers still tell a broken pipe
    /// (a reader that went away: quiet) or a full disk from the rest.
    fn wrap(&self, e: io::Error) -> io::Error {
        match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::Interrupted => e,
            kind => io::Error::new(
                kind,
                WriteFailed {
                    label: self.label.clone(),
                    offset: self.written,
                    source: e,
                },
            ),
        }
    }
}

impl<W: Write> Write for Named<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.write(buf) {
            Ok(n) => {
                self.written += n as u64;
                Ok(n)
            }
            Err(e) => Err(self.wrap(e)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.wrap(e))
    }
}

/// A failed write to a named destination; its source is the operating system's error.
#[derive(Debug)]
struct WriteFailed {
    label: String,
    offset: u64,
    source: io::Error,
}

impl fmt::Display for WriteFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "writing {} failed at byte {}", self.label, self.offset)
    }
}

impl std::error::Error for WriteFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `room` bytes, then fails every write with `errno`.
    struct Full {
        room: usize,
        errno: i32,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(self.errno));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_that_meets_a_full_disk_names_the_destination_and_the_byte_it_reached() {
        for (errno, kind) in [
            (28, io::ErrorKind::StorageFull),
            (27, io::ErrorKind::FileTooLarge),
            (122, io::ErrorKind::QuotaExceeded),
        ] {
            let mut w = Named::new(Full { room: 10, errno }, "stdout");
            w.write_all(b"0123456").unwrap();
            let e = w.write_all(b"789abcdef").unwrap_err();
            assert_eq!(e.kind(), kind);
            assert_eq!(e.to_string(), "writing stdout failed at byte 10");
            let err = anyhow::Error::new(e);
            let os = err
                .chain()
                .nth(1)
                .and_then(|c| c.downcast_ref::<io::Error>());
            assert_eq!(os.and_then(io::Error::raw_os_error), Some(errno));
            assert!(crate::exit::is_out_of_space(&err), "{err:#}");
        }
    }

    #[test]
    fn a_broken_pipe_stays_a_bare_broken_pipe_and_is_not_a_full_disk() {
        let mut w = Named::new(Full { room: 0, errno: 32 }, "stdout");
        let e = w.write_all(b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        let err = anyhow::Error::new(e);
        assert!(crate::exit::is_broken_pipe(&err));
        assert!(!crate::exit::is_out_of_space(&err));
        let eio = anyhow::Error::new(io::Error::from_raw_os_error(5));
        assert!(!crate::exit::is_out_of_space(&eio));
    }
}
