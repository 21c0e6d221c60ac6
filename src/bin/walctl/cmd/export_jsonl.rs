//! `walctl export-jsonl`: records as JSON Lines, framed by a header and a digest trailer.
//!
//! The trailer's `sha256` is a running SHA-256 over the exact bytes of every record line,
//! newline included, in file order; header and trailer lines are not hashed. `verify-export`
//! recomputes it, so an auditor can tell a complete export from a truncated or edited one.
//! The schema is documented in docs/JSONL.md.

use crate::exit::Exit;
use crate::json::{self, EXPORT_SCHEMA, EXPORT_VERSION};
use crate::jsondoc::Doc;
use crate::named::Named;
use crate::output::Output;
use crate::progress::Progress;
use crate::select::{self, Emit, Filter};
use crate::text::{self, PayloadFormat};
use anyhow::{Context as _, Result};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use walctl::RecordView;
use walctl::storage::{FsStorage, Storage as _, entry_dir};

const EXAMPLES: &str = "\
Examples:
  $ walctl export-jsonl --output audit.jsonl
  walctl: exported 5 records to audit.jsonl (sha256 ff371ac310ece9ec2b85748e4a74cdbadf592c71ef8d236ce38174ee5187f03c)
  $ walctl verify-export audit.jsonl
  export holds: 5 records, sha256 ff371ac310ece9ec2b85748e4a74cdbadf592c71ef8d236ce38174ee5187f03c
  $ walctl export-jsonl --key user:7 | walctl --dir copy append --jsonl";

/// Export records as JSON Lines, with a header and a count-and-digest trailer.
///
/// The first line names the schema and its version; the last gives the record count and a
/// SHA-256 digest. Each record line has seq, timestamp (RFC 3339) and timestamp_nanos, type, key and
/// key_encoding, payload and payload_encoding ("utf8", or "base64" when not valid UTF-8),
/// segment, offset, length and crc. The trailer's sha256 covers the bytes of every record line,
/// newline included. See docs/JSONL.md. Takes the same filters as dump. On damage the valid
/// records are exported, the damage is reported on stderr and the exit code says what was found.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    filter: Filter,
    /// Write to FILE (created with mode 0600; refused if it exists) instead of stdout; `-` is
    /// stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace FILE if it exists (atomically, through a temporary file).
    #[arg(long, requires = "output")]
    force: bool,
}

/// Runs `walctl export-jsonl`.
///
/// # Errors
/// The log cannot be read; the output cannot be created or written.
pub fn run(dir: &Path, args: &Args, out: &mut Output) -> Result<Exit> {
    // `-o -` is stdout, as for most Unix tools; `./-` names a file called `-`.
    let Some(target) = args.output.as_ref().filter(|t| t.as_os_str() != "-") else {
        return export(dir, args, Progress::hidden(), out.stdout()).map(|(exit, _)| exit);
    };
    let progress = Progress::new(out, dir);
    let (file, staging) = create(target, args.force)?;
    let w = Named::new(&file, format!("the export to {}", target.display()));
    let result = export(dir, args, progress, BufWriter::new(w))
        .and_then(|done| finish(file, staging.as_deref(), target).map(|()| done));
    match result {
        Ok((exit, trailer)) => {
            out.note(format_args!(
                "exported {} records to {} (sha256 {})",
                trailer.records,
                target.display(),
                trailer.sha256
            ));
            Ok(exit)
        }
        Err(err) => {
            // A partial export must not pass for a complete one.
            let partial = staging.as_deref().unwrap_or(target);
            let removed = match (std::fs::remove_file(partial), &staging) {
                (Ok(()), None) => " (the partial export was removed)",
                (Ok(()), Some(_)) => " (the partial export was removed; the file is unchanged)",
                (Err(_), _) => "",
            };
            Err(err.context(format!(
                "exporting the log in {} to {}{removed}",
                dir.display(),
                target.display()
            )))
        }
    }
}

/// What the trailer says.
struct Trailer {
    records: u64,
    sha256: String,
}

/// Writes header, records and trailer to `w`; returns the exit for the log's verdict.
fn export(dir: &Path, args: &Args, progress: Progress, w: impl Write) -> Result<(Exit, Trailer)> {
    let now = walctl::time::now_nanos();
    let header = json!({
        "kind": "header",
        "schema": EXPORT_SCHEMA,
        "version": EXPORT_VERSION,
        "source": dir.display().to_string(),
        "created": walctl::time::rfc3339(now),
        "created_nanos": now,
        "filters": args.filter.to_json(),
        "digest": "sha256 over the bytes of every record line, newline included",
    });
    // The header waits for the first record (or the trailer), so a log that cannot be read at
    // all produces no output rather than a header without a trailer.
    let mut header_line = serde_json::to_vec(&header).map_err(io::Error::other)?;
    header_line.push(b'\n');
    // SHA-256 runs on another core: record lines go out in 1 MiB chunks, each written here
    // and then hashed there, in order, while the next chunk is being built.
    let (mut sink, selection, hasher) = std::thread::scope(|scope| {
        let (chunks, hash_rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
        let hashing = scope.spawn(move || {
            let mut hasher = Sha256::new();
            for mut chunk in hash_rx {
                hasher.update(&chunk);
                chunk.clear();
                let _ = recycle.send(chunk);
            }
            hasher
        });
        let mut sink = Sink {
            w,
            chunks: Some(chunks),
            recycled,
            chunk: Vec::with_capacity(CHUNK),
            lines: crate::jsonline::LineWriter::default(),
            records: 0,
            header: Some(header_line),
        };
        let selection = select::scan(progress, dir, &args.filter, &mut sink)
            .and_then(|s| sink.send_chunk().map(|()| s).map_err(Into::into));
        sink.chunks = None;
        let hasher = hashing.join().expect("the hashing thread does not panic");
        (sink, selection, hasher)
    });
    let selection = selection?;
    let report = &selection.report;
    let sha256 = walctl::repair::hex(&hasher.finalize());
    let trailer = Doc::new(json!({
        "kind": "trailer",
        "schema": EXPORT_SCHEMA,
        "version": EXPORT_VERSION,
        "records": sink.records,
        "sha256": sha256,
        "log_id": json::log_id(report),
        "status": report.verdict().as_str(),
    }))
    .each("damage", || report.damage.iter().map(json::damage));
    sink.write_header()?;
    trailer.write_line(&mut sink.w)?;
    sink.w.flush()?;
    for d in &report.damage {
        crate::output::note(text::damage_line(d));
    }
    if let Some(advice) = text::advice(report) {
        crate::output::note(advice);
    }
    Ok((
        Exit::from_verdict(report.verdict()),
        Trailer {
            records: sink.records,
            sha256,
        },
    ))
}

/// Bytes of record lines gathered before a chunk is written and handed to the hasher.
const CHUNK: usize = 1 << 20;

/// Writes record lines and has exactly the bytes written hashed.
struct Sink<W: Write> {
    w: W,
    /// To the hashing thread; `None` once the last chunk is sent.
    chunks: Option<mpsc::SyncSender<Vec<u8>>>,
    /// Hashed chunks coming back for reuse.
    recycled: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    lines: crate::jsonline::LineWriter,
    records: u64,
    /// The header line, until it is written.
    header: Option<Vec<u8>>,
}

impl<W: Write> Sink<W> {
    /// Writes the gathered lines, then hands them to the hasher.
    fn send_chunk(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        self.write_header()?;
        self.w.write_all(&self.chunk)?;
        let next = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.chunk, next);
        let sender = self
            .chunks
            .as_ref()
            .expect("chunks are sent before the end");
        sender
            .send(full)
            .map_err(|_| io::Error::other("the hashing thread stopped"))
    }

    fn write_header(&mut self) -> io::Result<()> {
        match self.header.take() {
            Some(line) => self.w.write_all(&line),
            None => Ok(()),
        }
    }
}

impl<W: Write> Emit for Sink<W> {
    fn record(&mut self, r: &RecordView<'_>) -> io::Result<()> {
        self.chunk
            .extend_from_slice(self.lines.record(r, PayloadFormat::Text));
        if self.chunk.len() >= CHUNK {
            self.send_chunk()?;
        }
        self.records += 1;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_chunk()?;
        self.w.flush()
    }
}

/// Opens the output: the target itself, created exclusively; or with `--force` a temporary file
/// beside it (returned second) that replaces the target once complete.
fn create(target: &Path, force: bool) -> Result<(File, Option<PathBuf>)> {
    if !force {
        let file = create_new(target).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} already exists; pass --force to replace it",
                target.display()
            ),
            _ => anyhow::Error::new(e).context(format!("creating {}", target.display())),
        })?;
        return Ok((file, None));
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = target.with_file_name(format!(".{name}.walctl-{}.tmp", std::process::id()));
    let file = create_new(&staging).with_context(|| format!("creating {}", staging.display()))?;
    Ok((file, Some(staging)))
}

/// Creates `path` exclusively (never through a symlink) with mode 0600.
fn create_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Makes the export durable, and with `--force` moves it over the target; then fsyncs the
/// directory, which holds the new file's name (or the rename): without that, a power loss
/// after "exported" could leave no export, or the old one.
fn finish(file: File, staging: Option<&Path>, target: &Path) -> Result<()> {
    let shown = staging.unwrap_or(target);
    file.sync_all()
        .with_context(|| format!("fsync of {}", shown.display()))?;
    drop(file);
    if let Some(staging) = staging {
        std::fs::rename(staging, target)
            .with_context(|| format!("replacing {} with the new export", target.display()))?;
    }
    // A file system that cannot fsync a directory (DirSync::Unsupported) gets what it offers.
    if let Some(dir) = entry_dir(target) {
        FsStorage::new()
            .sync_dir(dir)
            .with_context(|| format!("fsync of directory {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonline::tests::view;

    /// The export's memory stays one chunk plus one line however long the log, and the bytes
    /// hashed are exactly the bytes written after the header.
    #[test]
    fn a_sink_holds_less_than_a_chunk_between_records_and_hashes_what_it_writes() {
        let (chunks, hashed) = mpsc::sync_channel(16);
        let (_recycle, recycled) = mpsc::channel();
        let mut sink = Sink {
            w: Vec::new(),
            chunks: Some(chunks),
            recycled,
            chunk: Vec::new(),
            lines: crate::jsonline::LineWriter::default(),
            records: 0,
            header: Some(b"header\n".to_vec()),
        };
        let big = vec![b'a'; 2 * CHUNK];
        let payloads: [&[u8]; 5] = [b"x", &big, b"y", &big[..CHUNK - 10], b"z"];
        for (seq, payload) in (1..).zip(payloads) {
            let ts = 1_767_225_600_000_000_000;
            sink.record(&view(seq, None, payload, ts)).unwrap();
            assert!(sink.chunk.len() < CHUNK, "after record {seq}");
        }
        sink.send_chunk().unwrap();
        sink.chunks = None;
        let sent: Vec<u8> = hashed.iter().flatten().collect();
        assert_eq!(sink.records, 5);
        assert_eq!(sink.w[..7], *b"header\n");
        assert_eq!(sink.w[7..], sent[..]);
    }
}
