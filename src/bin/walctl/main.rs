//! `walctl`: the operator's tool for walctl write-ahead logs.
//!
//! This file only sets the exit policy: parse the command line, run the command, and turn its
//! outcome into the exit-code contract of `exit.rs`. Errors print as `walctl: <message>`; a
//! broken pipe on stdout ends quietly with 0; a panic (a bug) is reported and exits 2 rather
//! than with Rust's 101, which is outside the contract.

mod audit;
mod cli;
mod cmd;
mod exit;
mod follow;
mod json;
mod jsondoc;
mod jsonline;
mod named;
mod output;
mod progress;
mod select;
mod seqlines;
mod split;
mod text;

use clap::Parser as _;
use exit::Exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let mut err = std::io::stderr().lock();
        let _ = std::io::Write::write_fmt(
            &mut err,
            format_args!("walctl: internal error (a bug, please report it): {info}\n"),
        );
    }));
    let cli = cli::Cli::parse();
    let exit = match std::panic::catch_unwind(|| run(cli)) {
        Ok(exit) => exit,
        Err(_) => Exit::Failure,
    };
    ExitCode::from(exit.code())
}

fn run(cli: cli::Cli) -> Exit {
    let mut out = output::Output::new();
    let result = cmd::run(&cli, &mut out).and_then(|exit| {
        out.flush()?;
        Ok(exit)
    });
    match result {
        Ok(exit) => exit,
        Err(err) if exit::is_broken_pipe(&err) => Exit::Success,
        Err(err) => {
            out.note(message(&err));
            if exit::is_out_of_space(&err) {
                out.note(
                    "the file system has no room for this write (the disk is full, or a quota \
                     or file-size limit was reached): free space or raise the limit before \
                     running the command again",
                );
            }
            for note in out.take_epilogue() {
                out.note(note);
            }
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                out.stderr_raw(&format!("{err:?}\n"));
            }
            Exit::from_error(&err)
        }
    }
}

/// The error and its causes joined by `: `, skipping a cause its parent already spelled out
/// (library errors include their I/O cause in their own message).
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}
