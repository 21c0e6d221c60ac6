//! `walctl salvage --to DIR`: the front of the library's salvage, the way out for a log whose
//! acknowledged records are damaged, which `repair` refuses to cut.
//!
//! Every valid record, with its sequence number, goes to a new log in DIR (which must not exist);
//! the damaged log is only read. The report names each run of lost sequence numbers with the
//! damage that took it, says which of them had been acknowledged as durable, and proves the copy
//! with a digest computed while reading the damaged log and again reading the new one back.

use crate::exit::Exit;
use crate::json::{self, segment_file};
use crate::jsondoc::Doc;
use crate::output::Output;
use anyhow::{Context as _, Result};
use serde_json::json;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use walctl::{ErrorKind, LOST_LISTED, LostRange, SalvageReport};

const EXAMPLES: &str = "\
Examples:
  $ walctl verify
  status          corrupt
  ...
  $ walctl salvage --to /srv/app/wal.salvaged
  salvaged 2999 records (1 .. 3000) into /srv/app/wal.salvaged, a new log (id 5f6ccc2204e1b579)
  lost: 1074 (acknowledged): checksum in 00000000000000000010.wal at offset 12972
  next sequence number: 3001
  sha256 of the salvaged records: 9c1f... (the same read back from the new log)
  the damaged log in /srv/app/wal was only read
  $ walctl --dir /srv/app/wal.salvaged verify | head -1
  status          clean
  $ walctl salvage --to /srv/app/wal.salvaged --dry-run --json | jq -c '.lost[] | [.first, .last]'
  [1074,1074]";

/// Copy every valid record of a damaged log, sequence numbers kept, into a new log in DIR.
///
/// For a log whose acknowledged records are damaged (verify exit 3), which repair refuses to
/// cut: the damaged log is only read, DIR must not exist, and the report lists each run of lost
/// sequence numbers with the damage that took it. The new log continues past every number the
/// old one used. Exit 0 when nothing was lost, 1 when only a torn tail (never acknowledged) was
/// left out, 3 when acknowledged records were lost; 2 when nothing could be salvaged.
#[derive(clap::Args, Debug)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// The directory for the new log (it must not exist).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Print what would be salvaged and lost; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `walctl salvage`.
///
/// # Errors
/// The log cannot be read, DIR exists, or the new log cannot be written.
pub fn run(dir: &Path, args: &Args, out: &mut Output) -> Result<Exit> {
    let target = std::path::absolute(&args.to)
        .with_context(|| format!("resolving {}", args.to.display()))?;
    let options = walctl::Options::default();
    let existed = std::fs::symlink_metadata(&target).is_ok();
    // One bar over the damaged log's bytes per pass: the survey, then the copy.
    let mut progress = crate::progress::Progress::labelled(out, dir, "checking");
    let mut pass = walctl::Pass::Survey;
    let mut spool = Spool::default();
    let mut observe = |p, at| {
        if p != pass {
            pass = p;
            progress.restart(if args.dry_run {
                "counting"
            } else {
                "salvaging"
            });
        }
        progress.update(at);
    };
    let salvaged = walctl::salvage_observed(
        dir,
        &target,
        &options,
        args.dry_run,
        &mut observe,
        &mut |lost| spool.push(lost),
    );
    progress.finish();
    let report = match salvaged {
        Ok(report) => report,
        // A salvage that failed copied nothing usable: exit 2, not the damage codes, which
        // here say what a finished salvage lost.
        Err(e) if !matches!(e.kind(), ErrorKind::Locked { .. }) => {
            let leftover = if !existed && std::fs::symlink_metadata(&target).is_ok() {
                format!(
                    " (what was written to {} is marked incomplete and refused by every \
                     command: delete it before salvaging again)",
                    target.display()
                )
            } else {
                String::new()
            };
            anyhow::bail!(
                "salvaging the log in {} into {}: {e}{leftover}",
                dir.display(),
                target.display()
            )
        }
        Err(e) => {
            return Err(e).with_context(|| format!("salvaging the log in {}", dir.display()));
        }
    };
    let more = spool.finish(report.lost_ranges)?;
    if args.json {
        to_json(dir, &target, args.dry_run, &report, more.as_ref()).write_line(out.stdout())?;
    } else {
        print(out, dir, &target, args.dry_run, &report, more.as_ref())?;
    }
    if report.durability_degraded {
        out.flush()?;
        super::warn_degraded(out);
    }
    Ok(Exit::from_verdict(report.source.verdict()))
}

fn print(
    out: &mut Output,
    dir: &Path,
    target: &Path,
    dry_run: bool,
    r: &SalvageReport,
    more: Option<&Spooled>,
) -> Result<()> {
    let range = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) => format!(" ({a} .. {b})"),
        _ => String::new(),
    };
    let w = out.stdout();
    if dry_run {
        writeln!(
            w,
            "would salvage {} records{range} into {}",
            r.records,
            target.display()
        )?;
    } else {
        writeln!(
            w,
            "salvaged {} records{range} into {}, a new log (id {:016x})",
            r.records,
            target.display(),
            r.log_id
        )?;
    }
    for lost in &r.lost {
        writeln!(w, "lost: {}", describe(r, lost))?;
    }
    for lost in Spooled::read(more, r.source.damage.len()) {
        let lost = lost.context("reading back the lost ranges kept in a temporary file")?;
        writeln!(w, "lost: {}", describe(r, &lost))?;
    }
    writeln!(w, "next sequence number: {}", r.next_seq)?;
    if dry_run {
        writeln!(w, "sha256 of the records to salvage: {}", r.digest)?;
        writeln!(w, "dry run: nothing was written")?;
    } else {
        writeln!(
            w,
            "sha256 of the salvaged records: {} (the same read back from the new log)",
            r.digest
        )?;
        writeln!(w, "the damaged log in {} was only read", dir.display())?;
    }
    Ok(())
}

/// `1074 (acknowledged): checksum in ... at offset ...`
fn describe(r: &SalvageReport, lost: &LostRange) -> String {
    let seqs = match (lost.first, lost.last) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        (None, Some(b)) => format!("everything before {}", b + 1),
        (Some(a), None) => format!("from {a} on, an unknown number never acknowledged"),
        (None, None) => "an unknown number never acknowledged".into(),
    };
    let acked = match (acknowledged_through(r, lost), lost.last) {
        (Some(d), Some(b)) if b <= d => " (acknowledged)".to_string(),
        (Some(d), _) => format!(" (acknowledged through {d})"),
        (None, _) => String::new(),
    };
    let d = &r.source.damage[lost.damage];
    format!(
        "{seqs}{acked}: {} in {} at offset {}",
        d.kind.as_str(),
        segment_file(d.segment),
        d.offset
    )
}

fn to_json<'a>(
    dir: &Path,
    target: &Path,
    dry_run: bool,
    r: &'a SalvageReport,
    more: Option<&'a Spooled>,
) -> Doc<'a> {
    let lost = |l: &LostRange| {
        json!({
            "first": l.first,
            "last": l.last,
            "acknowledged": acknowledged_through(r, l).is_some(),
            "damage": json::damage(&r.source.damage[l.damage]),
        })
    };
    let fields = json!({
        "dry_run": dry_run,
        "source": dir.display().to_string(),
        "target": target.display().to_string(),
        "source_status": r.source.verdict().as_str(),
        "records": r.records,
        "first_seq": r.first_seq,
        "last_seq": r.last_seq,
        "next_seq": r.next_seq,
        "log_id": (!dry_run).then(|| format!("{:016x}", r.log_id)),
        "sha256": r.digest,
        "lost_ranges": r.lost_ranges,
    });
    Doc::new(fields)
        .try_each("lost", move || {
            let listed = r.lost.iter().map(move |l| Ok(lost(l)));
            let spooled = Spooled::read(more, r.source.damage.len());
            listed.chain(spooled.map(move |l| l.map(|l| lost(&l))))
        })
        .each("damage", || r.source.damage.iter().map(json::damage))
}

/// The last sequence number of `lost` the damaged log's watermark proves synced, if any was.
/// A range with no known end lies past everything acknowledged.
fn acknowledged_through(r: &SalvageReport, lost: &LostRange) -> Option<u64> {
    let durable = r.source.durable_seq?;
    let last = lost.last?;
    (lost.first.unwrap_or(1) <= durable).then_some(last.min(durable))
}

/// The runs of lost sequence numbers past the report's list (the first [`LOST_LISTED`]), kept
/// in an unnamed temporary file at 25 bytes each, so that a log damaged in every other record
/// is salvaged in bounded memory and still reported run by run. Most salvages never create it.
#[derive(Default)]
struct Spool {
    /// Runs the library has handed over.
    received: u64,
    file: Option<BufWriter<File>>,
    failed: Option<io::Error>,
}

/// The spool once salvage is done: the file and how many runs it holds.
struct Spooled {
    file: File,
    count: u64,
}

/// One spooled run: its damage index, which ends are known, and the ends.
const SPOOLED: usize = 25;

impl Spool {
    fn push(&mut self, lost: &LostRange) {
        self.received += 1;
        if self.received <= LOST_LISTED as u64 || self.failed.is_some() {
            return;
        }
        if let Err(e) = self.write(lost) {
            self.failed = Some(e);
        }
    }

    fn write(&mut self, lost: &LostRange) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(BufWriter::new(tempfile::tempfile()?)),
        };
        let mut bytes = [0u8; SPOOLED];
        bytes[..8].copy_from_slice(&(lost.damage as u64).to_le_bytes());
        bytes[8] = u8::from(lost.first.is_some()) | u8::from(lost.last.is_some()) << 1;
        bytes[9..17].copy_from_slice(&lost.first.unwrap_or(0).to_le_bytes());
        bytes[17..].copy_from_slice(&lost.last.unwrap_or(0).to_le_bytes());
        file.write_all(&bytes)
    }

    /// The spool, written out, if any run went to it; checked against the report's count.
    fn finish(self, lost_ranges: u64) -> Result<Option<Spooled>> {
        let context =
            || format!("keeping the lost ranges past the first {LOST_LISTED} in a temporary file");
        if let Some(e) = self.failed {
            return Err(e).with_context(context);
        }
        anyhow::ensure!(
            self.received == lost_ranges,
            "salvage reported {lost_ranges} lost ranges but handed over {} (a bug)",
            self.received
        );
        let Some(file) = self.file else {
            return Ok(None);
        };
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(context)?;
        let count = self.received - LOST_LISTED as u64;
        Ok(Some(Spooled { file, count }))
    }
}

impl Spooled {
    /// The spooled runs in order, read from the start of the file (each time anew); the first
    /// error, a short file or a damage index outside `damage` ends them.
    fn read(
        spooled: Option<&Spooled>,
        damage: usize,
    ) -> impl Iterator<Item = io::Result<LostRange>> {
        let mut reader = spooled.map(|s| {
            let mut file = s.file.try_clone()?;
            file.rewind()?;
            Ok::<_, io::Error>(BufReader::new(file))
        });
        let mut left = spooled.map_or(0, |s| s.count);
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let item = match reader.as_mut()? {
                Ok(r) => next(r, damage),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            if item.is_err() {
                left = 0;
            }
            Some(item)
        })
    }
}

fn next(r: &mut BufReader<File>, damage: usize) -> io::Result<LostRange> {
    let mut bytes = [0u8; SPOOLED];
    r.read_exact(&mut bytes)?;
    let u64_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let index = usize::try_from(u64_at(0)).unwrap_or(usize::MAX);
    if index >= damage {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the lost-range spool names damage entry {index} of {damage}"),
        ));
    }
    Ok(LostRange {
        damage: index,
        first: (bytes[8] & 1 != 0).then(|| u64_at(9)),
        last: (bytes[8] & 2 != 0).then(|| u64_at(17)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(i: u64) -> LostRange {
        LostRange {
            damage: (i % 3) as usize,
            first: (!i.is_multiple_of(5)).then_some(2 * i),
            last: (!i.is_multiple_of(7)).then_some(2 * i + 1),
        }
    }

    fn spooled(n: u64) -> Option<Spooled> {
        let mut spool = Spool::default();
        for i in 0..n {
            spool.push(&run(i));
        }
        spool.finish(n).unwrap()
    }

    #[test]
    fn runs_past_the_reports_list_are_spooled_and_read_back_in_order_twice() {
        assert!(
            spooled(LOST_LISTED as u64).is_none(),
            "no file until the list is full"
        );
        let n = LOST_LISTED as u64 + 100;
        let spool = spooled(n).expect("a spool");
        let want: Vec<_> = (LOST_LISTED as u64..n).map(run).collect();
        for _ in 0..2 {
            let got: Vec<_> = Spooled::read(Some(&spool), 3).map(Result::unwrap).collect();
            assert!(got == want, "{} runs read back", got.len());
        }
    }

    #[test]
    fn a_spool_that_reads_back_short_or_names_unknown_damage_is_an_error() {
        let spool = spooled(LOST_LISTED as u64 + 2).expect("a spool");
        let unknown: Vec<_> = Spooled::read(Some(&spool), 2).collect();
        assert_eq!(unknown.len(), 2, "the error ends the runs: {unknown:?}");
        assert!(unknown[0].is_ok(), "run 4096 names damage entry 1 of 2");
        let err = unknown[1].as_ref().unwrap_err();
        assert!(err.to_string().contains("damage entry 2 of 2"), "{err}");
        spool.file.set_len(SPOOLED as u64 + 3).unwrap();
        let short: Vec<_> = Spooled::read(Some(&spool), 3).collect();
        assert_eq!(short.len(), 2);
        let err = short[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_count_that_differs_from_the_reports_is_refused() {
        let mut spool = Spool::default();
        spool.push(&run(1));
        let err = spool.finish(2).err().expect("refused");
        assert!(
            err.to_string()
                .contains("reported 2 lost ranges but handed over 1")
        );
    }
}
