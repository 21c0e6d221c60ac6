//! `walctl generate` (hidden): the man pages and shell completions, from the clap definitions.
//!
//! The generated files are committed under `man/` and `completions/`; `tests/cli_generate.rs`
//! regenerates them through this command and fails when the committed copies are stale.

use crate::cli::Cli;
use crate::exit::Exit;
use crate::output::Output;
use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::Shell;
use std::io::Write as _;

/// Generate the man page or shell completions on stdout (for packagers).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// The man page walctl.1, or with SUBCOMMAND the page walctl-SUBCOMMAND.1.
    Man {
        /// A subcommand whose page to print.
        subcommand: Option<String>,
    },
    /// The completion script for SHELL.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Runs `walctl generate`.
///
/// # Errors
/// An unknown subcommand; stdout closed.
pub fn run(args: &Args, out: &mut Output) -> Result<Exit> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut buf = Vec::new();
    match &args.what {
        What::Man { subcommand: None } => clap_mangen::Man::new(cmd).render(&mut buf)?,
        What::Man {
            subcommand: Some(name),
        } => {
            let sub = cmd
                .find_subcommand(name)
                .filter(|s| !s.is_hide_set())
                .with_context(|| format!("no subcommand named {name:?}"))?
                .clone();
            // clap names are `&'static str` without its "string" feature; this process prints
            // one page and exits, so leaking the two short names costs nothing.
            let page: &'static str = Box::leak(format!("walctl-{name}").into_boxed_str());
            let bin: &'static str = Box::leak(format!("walctl {name}").into_boxed_str());
            clap_mangen::Man::new(sub.name(page).bin_name(bin))
                .title(page)
                .render(&mut buf)?;
        }
        What::Completions { shell } => {
            clap_complete::generate(*shell, &mut cmd, "walctl", &mut buf)
        }
    }
    out.stdout().write_all(&buf)?;
    Ok(Exit::Success)
}
