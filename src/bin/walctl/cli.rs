//! The command line as clap definitions: global options and the list of subcommands.
//!
//! Each subcommand's own flags live beside its code in `cmd/<name>.rs`; this file only wires
//! them together and holds the text every `--help` shares (the exit-code contract).

use crate::cmd;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The exit-code contract, shown at the end of `walctl --help` (and in README.md).
const EXIT_CODES: &str = "\
Exit codes (the same for every command):
  0  success; for verify, dump, stat and export-jsonl: the log is clean
  1  only a torn tail was found (repairable with `walctl repair --truncate-partial`)
  2  usage error, or the command could not run (I/O error, not a walctl log, permission)
  3  corruption that truncation cannot fix without losing acknowledged data
  4  the log is locked by another writer (after the --wait time ran out)
  5  get: the key has no live value
  6  append --expect-next-seq: the next sequence number differs; nothing was appended

Data goes to stdout, diagnostics to stderr. A closed stdout (`walctl dump | head`) exits 0.";

/// Operate a walctl write-ahead log: append, sync, verify, dump, repair, export.
///
/// A log is a directory of segment files holding CRC-checked, numbered records. walctl tells a
/// torn tail left by a crash (safe to cut) from corruption (never cut), and every command ends
/// with an exit code that says which it found.
#[derive(Parser, Debug)]
#[command(name = "walctl", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    /// The log directory [default: $WALCTL_DIR, else ./wal].
    #[arg(
        long,
        global = true,
        env = "WALCTL_DIR",
        default_value = "wal",
        hide_default_value = true,
        hide_env = true,
        value_name = "DIR"
    )]
    pub dir: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, in the order `--help` lists them.
#[derive(Subcommand, Debug)]
pub enum Command {
    // Each subcommand's help text is the doc comment of its `Args`, beside its code.
    Append(cmd::append::Args),
    Sync(cmd::sync::Args),
    Verify(cmd::verify::Args),
    Dump(cmd::dump::Args),
    Repair(cmd::repair::Args),
    Compact(cmd::compact::Args),
    Salvage(cmd::salvage::Args),
    #[command(name = "export-jsonl")]
    ExportJsonl(cmd::export_jsonl::Args),
    #[command(name = "verify-export")]
    VerifyExport(cmd::verify_export::Args),
    Stat(cmd::stat::Args),
    Get(cmd::get::Args),
    #[command(hide = true)]
    Generate(cmd::generate::Args),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}
