//! One module per subcommand, and what several of them share: opening the log as its writer.
//!
//! Every `run` returns the [`Exit`] it ends with, or an error that `main` prints and maps.

pub mod append;
pub mod compact;
pub mod dump;
pub mod export_jsonl;
pub mod generate;
pub mod get;
pub mod repair;
pub mod salvage;
pub mod stat;
pub mod sync;
pub mod verify;
pub mod verify_export;

use crate::cli::{Cli, Command};
use crate::exit::Exit;
use crate::output::Output;
use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use walctl::{ErrorKind, Log, OpenReport, Options};

/// Runs the command named on the command line.
///
/// # Errors
/// Whatever the command could not do.
pub fn run(cli: &Cli, out: &mut Output) -> Result<Exit> {
    // The library wants full paths; a relative --dir means relative to the working directory.
    let dir = std::path::absolute(&cli.dir)
        .with_context(|| format!("resolving the log directory {}", cli.dir.display()))?;
    match &cli.command {
        Command::Append(args) => append::run(&dir, args, out),
        Command::Sync(args) => sync::run(&dir, args, out),
        Command::Verify(args) => verify::run(&dir, args, out),
        Command::Dump(args) => dump::run(&dir, args, out),
        Command::Repair(args) => repair::run(&dir, args, out),
        Command::Compact(args) => compact::run(&dir, args, out),
        Command::Salvage(args) => salvage::run(&dir, args, out),
        Command::ExportJsonl(args) => export_jsonl::run(&dir, args, out),
        Command::VerifyExport(args) => verify_export::run(&dir, args, out),
        Command::Stat(args) => stat::run(&dir, args, out),
        Command::Get(args) => get::run(&dir, args, out),
        Command::Generate(args) => generate::run(args, out),
    }
}

/// The `--wait SECONDS` flag of commands that take the writer lock.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct LockWait {
    /// Wait up to SECONDS for another writer to release the log (exit 4 after that).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds)]
    pub wait: f64,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

/// Parses `--segment-size`: a number of bytes, optionally with a binary suffix (`K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB`, any case), inside the library's limits. Refusing here names the flag;
/// the library's own check would name its `Options` field instead.
fn parse_segment_size(text: &str) -> Result<u64, String> {
    use walctl::format::{SEGMENT_SIZE_LIMIT, SEGMENT_SIZE_MIN};
    const _: () = assert!(
        SEGMENT_SIZE_MIN.is_multiple_of(1 << 10) && SEGMENT_SIZE_LIMIT.is_multiple_of(1 << 30)
    );
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let shift = match text[digits.len()..].to_ascii_lowercase().as_str() {
        "" => Some(0),
        "k" | "kib" => Some(10),
        "m" | "mib" => Some(20),
        "g" | "gib" => Some(30),
        _ => None,
    };
    let bytes = shift.and_then(|shift| {
        let n: u64 = digits.parse().ok()?;
        n.checked_mul(1 << shift)
    });
    match bytes {
        Some(b) if (SEGMENT_SIZE_MIN..=SEGMENT_SIZE_LIMIT).contains(&b) => Ok(b),
        // Both limits are whole KiB and GiB; the text is derived so it cannot drift from them.
        _ => Err(format!(
            "{text:?} is not a size between {}KiB ({SEGMENT_SIZE_MIN} bytes) and {}GiB \
             ({SEGMENT_SIZE_LIMIT} bytes); give bytes, or a number with K, M or G (binary units)",
            SEGMENT_SIZE_MIN >> 10,
            SEGMENT_SIZE_LIMIT >> 30,
        )),
    }
}

impl LockWait {
    /// Library options with this lock wait.
    pub fn options(self) -> Options {
        Options {
            lock_wait: Some(Duration::from_secs_f64(self.wait)),
            ..Options::default()
        }
    }
}

/// Opens the log in `dir` as its writer and tells the operator what opening found and did.
/// With a `write_buffer` ([`Options::write_buffer`]), appends are only buffered: the caller
/// learns from `Log::written_seq` which records the OS holds.
///
/// # Errors
/// The library's error, with a hint for the lock.
pub fn open_writer(
    out: &Output,
    dir: &Path,
    wait: LockWait,
    create: bool,
    segment_size: Option<u64>,
    write_buffer: usize,
) -> Result<Log> {
    let defaults = wait.options();
    let options = Options {
        create,
        segment_size: segment_size.unwrap_or(defaults.segment_size),
        write_buffer,
        ..defaults
    };
    let log = Log::open(dir, options).map_err(|e| {
        let hint = match e.kind() {
            ErrorKind::Locked { .. } => Some(format!(
                "gave up after waiting {}s for the writer lock (raise --wait)",
                wait.wait
            )),
            // Which log, and that it was being opened: the file named may be a temporary one.
            ErrorKind::Io { .. } => {
                Some(format!("opening the log in {} for writing", dir.display()))
            }
            _ => None,
        };
        match hint {
            Some(h) => anyhow::Error::new(e).context(h),
            None => anyhow::Error::new(e),
        }
    })?;
    describe_open(out, dir, log.open_report());
    Ok(log)
}

/// Reports on stderr what opening the log found: a new log, a cut torn tail, cleaned temporaries.
fn describe_open(out: &Output, dir: &Path, report: &OpenReport) {
    if report.created {
        out.note(format_args!("created a new log in {}", dir.display()));
    }
    if let Some(cut) = &report.cut {
        out.note(format_args!(
            "recovered from an interrupted writer: cut a torn tail of {} bytes at offset {} of {} \
             (saved in {}, sha256 {}); the last surviving record is seq {}",
            cut.length,
            cut.offset,
            crate::json::segment_file(cut.segment),
            side_path(dir, &cut.side_file).display(),
            cut.sha256,
            cut.last_seq
                .map_or_else(|| "none".to_string(), |s| s.to_string()),
        ));
    }
    for name in &report.removed_temps {
        out.note(format_args!(
            "removed {name}, left by an interrupted segment creation"
        ));
    }
    if let Some(what) = report.compaction {
        out.note(format_args!(
            "{what} (the log is whole: see FORMAT.md §6.6)"
        ));
    }
    if report.durability_degraded {
        warn_degraded(out);
    }
}

/// The warning for a file system that refused a directory fsync (`durability_degraded` in the
/// library's reports).
pub fn warn_degraded(out: &Output) {
    out.note("warning: this file system cannot fsync directories; new segments are less durable");
}

/// Full path of a side file named in a cut.
pub fn side_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[cfg(test)]
mod tests {
    use super::{parse_seconds, parse_segment_size};

    #[test]
    fn a_lock_wait_is_a_finite_number_of_seconds_up_to_a_day() {
        for ok in ["0", "0.25", "10", "86400"] {
            assert!(parse_seconds(ok).is_ok(), "{ok}");
        }
        // A negative, infinite or NaN wait would panic in `Duration::from_secs_f64`.
        for bad in ["-1", "86400.5", "inf", "NaN", "-0.1", "ten", ""] {
            let err = parse_seconds(bad).unwrap_err();
            assert!(err.contains("between 0 and 86400"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_segment_size_is_bytes_or_binary_units_within_the_librarys_limits() {
        let cases = [
            ("16384", 16 << 10),
            ("16k", 16 << 10),
            ("16KiB", 16 << 10),
            ("64M", 64 << 20),
            ("64mib", 64 << 20),
            ("1G", 1 << 30),
            ("1073741824", 1 << 30),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_segment_size(text), Ok(bytes), "{text}");
        }
        let bad = [
            "16383",
            "15K",
            "1025M",
            "2G",
            "1T",
            "64MB",
            "M",
            "",
            "-1",
            "1.5G",
            "64 M",
            "18446744073709551615G",
            "99999999999999999999",
        ];
        for text in bad {
            let err = parse_segment_size(text).unwrap_err();
            assert!(
                err.contains("between 16KiB (16384 bytes) and 1GiB"),
                "{text}: {err}"
            );
        }
    }
}
