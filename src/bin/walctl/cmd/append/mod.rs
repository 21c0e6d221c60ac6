//! `walctl append`: add records to the log, from arguments, stdin, lines, NUL-separated input or
//! JSON Lines (the export's own shape, so an export can be re-imported).
//!
//! Streams are appended in bounded batches while they are read, so a 10 GiB stdin costs the
//! same memory as a small one; `--sync` still makes one fsync for the whole invocation, at the
//! end. The records go through the library's write buffer, whose full buffers a helper thread
//! writes while the next batches are encoded (both cores on a bulk load). A sequence number is
//! printed once the OS holds its record (`Log::written_seq`), never while it sits in the buffer,
//! where a failed write could still lose it; a consumer of stdout learns of records in order.

mod failed;

use super::{LockWait, open_writer};
use crate::exit::{Exit, UsageError};
use crate::json;
use crate::output::Output;
use anyhow::{Context as _, Result};
use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, Read};
use std::ops::Range;
use std::path::Path;
use walctl::{Appended, Entry, Log, Options, RecordKind};

/// Flush a batch once it holds this many bytes of keys and payloads.
const BATCH_BYTES: usize = 1 << 20;
/// Flush a batch once it holds this many records.
const BATCH_RECORDS: usize = 4096;
/// The library's write buffer (`Options::write_buffer`): written ahead on a helper thread.
const WRITE_BUFFER: usize = 1 << 20;

const EXAMPLES: &str = "\
Examples:
  $ walctl append hello world
  1
  2
  $ printf 'a\\nb\\n' | walctl append --lines --sync
  3
  4
  $ walctl append --key user:7 '{\"name\":\"Ada\"}' --json
  {\"length\":52,\"offset\":12428,\"segment\":\"00000000000000000001.wal\",\"seq\":5}
  $ walctl append --expect-next-seq 6 --delete user:7
  6
  $ walctl --dir old export-jsonl | walctl --dir new append --jsonl --sync";

/// Append records (arguments, stdin, lines, NUL-separated, or JSON Lines).
///
/// Prints the sequence number assigned to each record. Each RECORD argument is one record. With no arguments, stdin is one record, or with --lines
/// one record per line, --null one per NUL-terminated chunk, --jsonl one per JSON object in the
/// shape `export-jsonl` writes (header and trailer lines are skipped). Appends wait for the
/// writer lock up to --wait seconds, so many appenders may run at once. Records are in the
/// operating system's hands when a number is printed; --sync makes them durable before exit.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Records to append, one per argument (without any, read stdin).
    #[arg(value_name = "RECORD", conflicts_with_all = ["lines", "null", "jsonl", "delete"])]
    records: Vec<OsString>,
    /// Read stdin as one record per line (the newline is not part of the record).
    #[arg(long, conflicts_with_all = ["null", "jsonl", "delete"])]
    lines: bool,
    /// Read stdin as NUL-terminated records (as written by `find -print0`).
    #[arg(long, conflicts_with_all = ["jsonl", "delete"])]
    null: bool,
    /// Read stdin as JSON Lines: {"key": .., "key_encoding": .., "payload": .., "payload_encoding": ..,
    /// "type": "data"|"tombstone", "timestamp_nanos": ..}; all fields but payload optional.
    #[arg(long, conflicts_with_all = ["key", "delete"])]
    jsonl: bool,
    /// Give every appended record the key K.
    #[arg(long, value_name = "K", conflicts_with = "delete")]
    key: Option<OsString>,
    /// Append a tombstone that deletes key K.
    #[arg(long, value_name = "K")]
    delete: Option<OsString>,
    /// Make the records durable (one fsync) before exiting.
    #[arg(long)]
    sync: bool,
    /// Append nothing unless the next sequence number is N, and exit 6 if it is not (safe
    /// retries).
    #[arg(long, value_name = "N")]
    expect_next_seq: Option<u64>,
    /// Start a new segment once the current one would exceed BYTES (default 64 MiB; 16 KiB to
    /// 1 GiB; a suffix K, M or G counts in binary units, as in 64M). Applies to this
    /// invocation's writes.
    #[arg(long, value_name = "BYTES", value_parser = super::parse_segment_size)]
    segment_size: Option<u64>,
    #[command(flatten)]
    wait: LockWait,
    /// Print one JSON object per record: seq, segment, offset, length.
    #[arg(long)]
    json: bool,
}

/// How stdin is split into records.
#[derive(Clone, Copy)]
enum Split {
    Lines,
    Null,
    Jsonl,
}

/// Runs `walctl append`.
///
/// # Errors
/// Lock, I/O and size errors; a malformed input line.
pub fn run(dir: &Path, args: &Args, out: &mut Output) -> Result<Exit> {
    let key = args.key.as_deref().map(os_bytes);
    let split = if args.lines {
        Some(Split::Lines)
    } else if args.null {
        Some(Split::Null)
    } else if args.jsonl {
        Some(Split::Jsonl)
    } else {
        None
    };
    let reads_stdin = args.records.is_empty() && args.delete.is_none();
    if reads_stdin && out.stdin_is_terminal() {
        out.note("reading records from the terminal; end the input with Ctrl-D");
    }
    // A single stdin record is read before the lock is taken, so a slow producer does not hold
    // up other appenders; streams must be appended while they are read.
    let single = match (reads_stdin, split) {
        (true, None) => Some(read_single(&mut io::stdin().lock())?),
        _ => None,
    };
    let log = open_writer(out, dir, args.wait, true, args.segment_size, WRITE_BUFFER)?;
    let start = log.next_seq();
    let mut batch = Batch::new(&log, args.expect_next_seq, args.json);
    let result = fill(
        &mut batch,
        out,
        args,
        key.as_deref(),
        split,
        single.as_deref(),
    );
    let result = result.and_then(|()| batch.finish(out));
    if let Err(err) = result {
        batch.after_error(out);
        let failed = failed::Failed {
            args,
            split,
            start,
            kept: batch.range(),
        };
        drop(batch);
        failed.report(out, &err, dir, log);
        return Err(err);
    }
    if args.sync {
        log.sync().context("making the appended records durable")?;
    }
    Ok(Exit::Success)
}

/// Feeds every record of the invocation into `batch`.
fn fill(
    batch: &mut Batch<'_>,
    out: &mut Output,
    args: &Args,
    key: Option<&[u8]>,
    split: Option<Split>,
    single: Option<&[u8]>,
) -> Result<()> {
    if let Some(k) = &args.delete {
        return batch.push(out, RecordKind::Tombstone, Some(&os_bytes(k)), b"", None);
    }
    for record in &args.records {
        batch.push(out, RecordKind::Data, key, &os_bytes(record), None)?;
    }
    if let Some(payload) = single {
        batch.push(out, RecordKind::Data, key, payload, None)?;
    }
    if let Some(split) = split {
        read_stream(batch, out, &mut io::stdin().lock(), split, key)?;
    }
    Ok(())
}

/// Reads all of stdin as one record, refusing more than the record limit.
fn read_single(input: &mut impl Read) -> Result<Vec<u8>> {
    let max = u64::from(Options::default().record_size_max);
    let mut buf = Vec::new();
    input
        .take(max + 1)
        .read_to_end(&mut buf)
        .context("reading stdin")?;
    if buf.len() as u64 > max {
        return Err(UsageError(format!(
            "stdin holds more than the record limit of {max} bytes; \
             split it with --lines, --null or --jsonl"
        ))
        .into());
    }
    Ok(buf)
}

/// Appends the records of a split stream, batch by batch.
fn read_stream(
    batch: &mut Batch<'_>,
    out: &mut Output,
    input: &mut impl BufRead,
    split: Split,
    key: Option<&[u8]>,
) -> Result<()> {
    let record_max = u64::from(Options::default().record_size_max);
    // A JSON line carries the record escaped or base64-encoded: allow for the growth.
    let (delim, line_max) = match split {
        Split::Lines => (b'\n', record_max),
        Split::Null => (b'\0', record_max),
        Split::Jsonl => (b'\n', record_max * 6 + 64 * 1024),
    };
    if let Split::Lines | Split::Null = split {
        return read_delimited(batch, out, input, delim, line_max, key);
    }
    let mut line = Vec::new();
    for number in 1u64.. {
        line.clear();
        if !read_item(input, delim, &mut line, line_max).context("reading stdin")? {
            return Ok(());
        }
        if line.len() as u64 > line_max {
            return Err(UsageError(format!(
                "stdin record {number} is longer than the limit of {line_max} bytes"
            ))
            .into());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed =
            parse_jsonl(&line).map_err(|why| UsageError(format!("stdin line {number}: {why}")))?;
        if let Some(p) = parsed {
            batch.push(out, p.kind, p.key.as_deref(), &p.payload, p.timestamp_nanos)?;
        }
    }
    Ok(())
}

/// `--lines` and `--null`: each chunk of stdin becomes one `append_batch` of slices of the
/// read buffer (`split.rs`), with no copy or allocation per record.
fn read_delimited(
    batch: &mut Batch<'_>,
    out: &mut Output,
    input: &mut impl Read,
    delim: u8,
    limit: u64,
    key: Option<&[u8]>,
) -> Result<()> {
    use crate::split::{SplitError, split};
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let result = split(input, delim, limit, |records| {
        let entries: Vec<Entry<'_>> = records
            .iter()
            .map(|&payload| Entry {
                key,
                ..Entry::data(payload)
            })
            .collect();
        batch.write(out, &entries)
    });
    match result {
        Ok(()) => Ok(()),
        Err(SplitError::Read(e)) => Err(anyhow::Error::new(e).context("reading stdin")),
        Err(SplitError::TooLong { number, limit }) => Err(UsageError(format!(
            "stdin record {number} is longer than the limit of {limit} bytes"
        ))
        .into()),
        Err(SplitError::Deliver(e)) => Err(e),
    }
}

/// Reads up to and without `delim` into `buf`, at most `max + 1` bytes (so an endless line is
/// noticed without being held). Returns false at the end of the input.
fn read_item(input: &mut impl BufRead, delim: u8, buf: &mut Vec<u8>, max: u64) -> io::Result<bool> {
    let n = input.by_ref().take(max + 1).read_until(delim, buf)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&delim) {
        buf.pop();
    }
    Ok(true)
}

/// Parses one `--jsonl` line; `None` for an export's header or trailer line.
fn parse_jsonl(line: &[u8]) -> Result<Option<json::RecordLine>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    json::parse_record_line(&value)
}

/// The raw bytes of an argument (on Unix any bytes; elsewhere its Unicode text).
fn os_bytes(s: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        std::os::unix::ffi::OsStrExt::as_bytes(s).to_vec()
    }
    #[cfg(not(unix))]
    {
        s.to_string_lossy().into_owned().into_bytes()
    }
}

/// Records waiting to be written with one `append_batch`.
struct Batch<'a> {
    log: &'a Log,
    /// Keys and payloads of the pending records, back to back.
    bytes: Vec<u8>,
    items: Vec<Item>,
    /// Checked by the first write only: later batches follow it under the same lock.
    expect_next_seq: Option<u64>,
    json: bool,
    /// Appended records whose numbers are not printed yet: those above `Log::written_seq`.
    appended: Vec<Appended>,
    /// The first and last record printed (or, once stdout is closed, that would have been).
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    /// Stdout was closed by its reader; sequence numbers are no longer printed.
    stdout_closed: bool,
}

struct Item {
    kind: RecordKind,
    key: Option<Range<usize>>,
    payload: Range<usize>,
    timestamp_nanos: Option<u64>,
}

impl<'a> Batch<'a> {
    fn new(log: &'a Log, expect_next_seq: Option<u64>, json: bool) -> Batch<'a> {
        Batch {
            log,
            bytes: Vec::new(),
            items: Vec::new(),
            expect_next_seq,
            json,
            appended: Vec::new(),
            first_seq: None,
            last_seq: None,
            stdout_closed: false,
        }
    }

    fn push(
        &mut self,
        out: &mut Output,
        kind: RecordKind,
        key: Option<&[u8]>,
        payload: &[u8],
        timestamp_nanos: Option<u64>,
    ) -> Result<()> {
        let key = key.map(|k| self.stash(k));
        let payload = self.stash(payload);
        self.items.push(Item {
            kind,
            key,
            payload,
            timestamp_nanos,
        });
        if self.bytes.len() >= BATCH_BYTES || self.items.len() >= BATCH_RECORDS {
            self.flush(out)?;
        }
        Ok(())
    }

    fn stash(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    /// Writes the pending records (or, when nothing was written yet, checks `expect_next_seq`
    /// even for an empty input) and prints their sequence numbers.
    fn flush(&mut self, out: &mut Output) -> Result<()> {
        if self.items.is_empty() && self.expect_next_seq.is_none() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.bytes);
        let entries: Vec<Entry<'_>> = self
            .items
            .iter()
            .map(|i| Entry {
                kind: i.kind,
                key: i.key.clone().map(|r| &bytes[r]),
                payload: &bytes[i.payload.clone()],
                timestamp_nanos: i.timestamp_nanos,
            })
            .collect();
        self.items.clear();
        let result = self.write(out, &entries);
        drop(entries);
        self.bytes = bytes;
        self.bytes.clear();
        result
    }

    /// Appends `entries` with one `append_batch` (the first also checks `expect_next_seq`) and
    /// prints the sequence numbers of the records the OS now holds.
    fn write(&mut self, out: &mut Output, entries: &[Entry<'_>]) -> Result<()> {
        let result =
            self.log
                .append_batch(entries, self.expect_next_seq.take(), &mut self.appended);
        self.print(out, self.log.written_seq())?;
        result.context("appending")?;
        Ok(())
    }

    /// Writes the last batch and the write buffer, and prints the remaining numbers.
    fn finish(&mut self, out: &mut Output) -> Result<()> {
        self.flush(out)?;
        self.log.flush().context("writing the buffered records")?;
        self.print(out, u64::MAX)
    }

    /// After an error: hands what is still buffered to the OS if the writer can (a bad input
    /// line, say, leaves it healthy), so that the numbers printed and the range reported are
    /// exactly the records that stay in the log.
    fn after_error(&mut self, out: &mut Output) {
        if !self.log.is_poisoned()
            && let Err(e) = self.log.flush()
        {
            out.note(format_args!("writing the buffered records failed too: {e}"));
        }
        let _ = self.print(out, self.log.written_seq());
    }

    /// Prints the sequence numbers of the appended records up to `through` and forgets them.
    /// A reader that went away (`walctl append ... | head -1`) stops the printing, not the
    /// appending: the records are the point, and `--sync` must still run.
    fn print(&mut self, out: &mut Output, through: u64) -> Result<()> {
        let n = self.appended.partition_point(|a| a.seq <= through);
        let Some(last) = n.checked_sub(1).map(|i| self.appended[i].seq) else {
            return Ok(());
        };
        self.first_seq.get_or_insert(self.appended[0].seq);
        self.last_seq = Some(last);
        let result = if self.stdout_closed {
            Ok(())
        } else {
            write_appended(out, &self.appended[..n], self.json)
        };
        self.appended.drain(..n);
        match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.stdout_closed = true;
                Ok(())
            }
            result => Ok(result?),
        }
    }

    fn range(&self) -> Option<(u64, u64)> {
        Some((self.first_seq?, self.last_seq?))
    }
}

/// Prints one line per appended record and flushes, so whoever reads stdout learns of each
/// batch as soon as it is written.
fn write_appended(out: &mut Output, appended: &[Appended], as_json: bool) -> io::Result<()> {
    if as_json {
        for a in appended {
            json::write_line(out.stdout(), &json::appended(a))?;
        }
    } else {
        // Into one buffer, counted up rather than formatted: with `--lines` this is one line
        // per input line (`seqlines.rs`).
        let mut text = Vec::with_capacity(appended.len() * 8);
        let mut lines = crate::seqlines::SeqLines::default();
        for a in appended {
            lines.push(&mut text, a.seq);
        }
        std::io::Write::write_all(out.stdout(), &text)?;
    }
    out.flush()
}
