//! Where walctl's output goes: data to stdout, diagnostics and progress to stderr.
//!
//! Every command writes through one [`Output`], built once in `main`. Stdout is locked once and
//! buffered (commands flush when a person would otherwise wait, for example `dump --follow`);
//! stderr messages carry the `walctl:` prefix and are never allowed to fail the command, because
//! a closed stderr must not turn a successful append into an error. Progress bars appear only
//! when stderr is a terminal and `NO_COLOR` is unset, so scripts and logs never see them.

use crate::named::Named;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt::Display;
use std::io::{self, BufWriter, IsTerminal, Write};

/// The process's output channels.
pub struct Output {
    stdout: BufWriter<Named<Box<dyn Write>>>,
    stdin_is_terminal: bool,
    progress_allowed: bool,
    /// Notes for after the error that ends the command (see [`Output::after_error`]).
    epilogue: Vec<String>,
}

impl Output {
    /// Output to the process's real stdout and stderr.
    pub fn new() -> Output {
        let stderr_is_terminal = io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            stdout: BufWriter::with_capacity(64 * 1024, Named::new(raw_stdout(), "stdout")),
            stdin_is_terminal: io::stdin().is_terminal(),
            progress_allowed: stderr_is_terminal && !no_color,
            epilogue: Vec::new(),
        }
    }

    /// The data channel. Buffered: call [`Output::flush`] before waiting on anything.
    pub fn stdout(&mut self) -> &mut impl Write {
        &mut self.stdout
    }

    /// Flushes stdout.
    ///
    /// # Errors
    /// The write error, typically a broken pipe, which `main` turns into a quiet exit 0.
    pub fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }

    /// Prints `walctl: {message}` on stderr (see [`note`]).
    pub fn note(&self, message: impl Display) {
        note(message);
    }

    /// Keeps `message` to be printed after the error that is ending the command, so that what
    /// the failure left behind and what to do next come after the failure itself.
    pub fn after_error(&mut self, message: impl Display) {
        self.epilogue.push(message.to_string());
    }

    /// The notes kept by [`Output::after_error`], in order.
    pub fn take_epilogue(&mut self) -> Vec<String> {
        std::mem::take(&mut self.epilogue)
    }

    /// Writes `text` verbatim on stderr (for prompts and multi-line reports), ignoring failures.
    pub fn stderr_raw(&self, text: &str) {
        let mut err = io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }

    /// Whether stdin is a terminal (a person could answer a prompt).
    pub fn stdin_is_terminal(&self) -> bool {
        self.stdin_is_terminal
    }

    /// Whether a progress bar would be shown (a person is watching on a terminal).
    pub fn shows_progress(&self) -> bool {
        self.progress_allowed
    }

    /// A byte-counting progress bar on stderr, hidden unless a person is watching.
    pub fn progress(&self, total_bytes: u64, label: &'static str) -> ProgressBar {
        if !self.progress_allowed {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "walctl: {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label);
        bar
    }
}

/// Stdout without a buffer of its own: on Unix a duplicate of descriptor 1, so that the count of
/// bytes written that a failed write reports (`named.rs`) is what the file received, not what
/// std's line buffer took; elsewhere (or if descriptor 1 cannot be duplicated) std's stdout.
fn raw_stdout() -> Box<dyn Write> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd as _;
        if let Ok(fd) = io::stdout().as_fd().try_clone_to_owned() {
            return Box::new(std::fs::File::from(fd));
        }
    }
    Box::new(io::stdout().lock())
}

/// Prints `walctl: {message}` on stderr, for code that has no [`Output`] at hand. Failures to
/// write it are ignored on purpose: a diagnostic that cannot be shown must not change the
/// command's outcome.
pub fn note(message: impl Display) {
    let _ = writeln!(io::stderr().lock(), "walctl: {message}");
}
