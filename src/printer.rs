//! The sole writer of output.
//!
//! stdout carries data only (tables, JSON); status, progress, warnings and errors go to
//! stderr, so `skiff --json list-nodes | jq` always works. Library code never prints: it
//! returns values (or sends events) that a verb renders here.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::cli::{ColorChoice, GlobalArgs};
use crate::error::Error;

/// How loud and in what form a command speaks; built once from the global flags.
#[derive(Debug, Clone)]
pub struct Printer {
    json: bool,
    quiet: bool,
    verbose: u8,
    color: bool,
    yes: bool,
}

/// The first failed write of data to stdout (a full disk, an I/O error, a closed pipe),
/// kept until [`finish_stdout`] reports it: a command whose data did not arrive must
/// not exit 0.
static STDOUT_ERROR: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Writes data to stdout, remembering the first failure for [`finish_stdout`].
fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes) {
        remember_stdout_error(e);
    }
}

fn remember_stdout_error(err: std::io::Error) {
    let mut slot = STDOUT_ERROR.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Some(err);
    }
}

/// Flushes stdout and returns the first error met writing data to it, if any.
///
/// Called once at the end of a command: the caller turns a failure into exit code 1 with
/// a message, except a closed pipe (`skiff ... | head -1`), which stays quiet as in
/// `ripgrep` and `cargo`: the reader chose to stop reading.
pub fn finish_stdout() -> std::io::Result<()> {
    if let Err(e) = std::io::stdout().lock().flush() {
        remember_stdout_error(e);
    }
    match STDOUT_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

const GREEN: &str = "\x1b[1;32m";
const YELLOW: &str = "\x1b[1;33m";
const RED: &str = "\x1b[1;31m";
const CYAN: &str = "\x1b[1;36m";
const RESET: &str = "\x1b[0m";

impl Printer {
    /// Builds the printer from the global flags and the environment (`NO_COLOR`, TTYs).
    pub fn new(global: &GlobalArgs) -> Self {
        let color = match global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal()
            }
        };
        Printer {
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            color,
            yes: global.yes,
        }
    }

    /// A printer for tests and library callers: plain, quiet, no colour.
    pub fn plain() -> Self {
        Printer {
            json: false,
            quiet: true,
            verbose: 0,
            color: false,
            yes: true,
        }
    }

    /// Whether `--json` was given: data goes to stdout as JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether `--verbose` was given at least `level` times.
    pub fn verbose(&self, level: u8) -> bool {
        self.verbose >= level
    }

    /// Whether `--yes` was given.
    pub fn yes(&self) -> bool {
        self.yes
    }

    /// Whether a person is at the keyboard (stdin and stderr are terminals).
    pub fn interactive(&self) -> bool {
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// A cargo-style status line on stderr: a right-aligned verb, then the message.
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if self.quiet {
            return;
        }
        let _ = writeln!(std::io::stderr(), "{}", self.status_text(verb, message));
    }

    /// The text of a status line, for a caller that must print it itself (above live
    /// progress lines, which a plain write would tear).
    pub fn status_text(&self, verb: &str, message: impl std::fmt::Display) -> String {
        let verb = self.paint(GREEN, &format!("{verb:>12}"));
        format!("{verb} {message}")
    }

    /// Whether status lines are shown at all (not `-q`).
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// A detail line on stderr, shown only with `-v`.
    pub fn detail(&self, message: impl std::fmt::Display) {
        if self.verbose >= 1 && !self.quiet {
            let _ = writeln!(std::io::stderr(), "{message}");
        }
    }

    /// A raw line on stderr: what an app's own process printed (`skiff serve`). Shown
    /// even with `-q`: it is the app's output, tracebacks included.
    pub fn log(&self, line: impl std::fmt::Display) {
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    /// A warning on stderr (shown even with `-q`: warnings matter).
    pub fn warn(&self, message: impl std::fmt::Display) {
        let label = self.paint(YELLOW, "warning");
        let _ = writeln!(std::io::stderr(), "{label}: {message}");
    }

    /// Renders an error: message, file pointer, causes, detail and hint, on stderr.
    /// With `--json`, also one JSON object on stdout so scripts see the failure.
    pub fn error(&self, err: &Error) {
        let mut out = String::new();
        out.push_str(&format!("{}: {err}\n", self.paint(RED, "error")));
        if let Some((file, loc)) = err.location() {
            out.push_str(&format!(
                " --> {}:{}:{}\n",
                file.display(),
                loc.line,
                loc.column
            ));
        }
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            out.push_str(&format!("caused by: {cause}\n"));
            source = cause.source();
        }
        if let Some(detail) = err.detail() {
            for line in detail.trim_end().lines() {
                out.push_str(&format!("  | {line}\n"));
            }
        }
        if let Some(hint) = err.hint() {
            out.push_str(&format!("\n{}: {hint}\n", self.paint(CYAN, "hint")));
        }
        let _ = std::io::stderr().write_all(out.as_bytes());
        if self.json {
            let doc = serde_json::json!({
                "type": "error",
                "message": err.to_string(),
                "hint": err.hint(),
                "exit_code": err.exit_code(),
            });
            write_stdout(format!("{doc}\n").as_bytes());
        }
    }

    /// Data for stdout: a line of text (tables, values).
    pub fn data(&self, text: impl std::fmt::Display) {
        write_stdout(format!("{text}\n").as_bytes());
    }

    /// Data for stdout as one JSON document.
    pub fn json_value(&self, value: &serde_json::Value) {
        write_stdout(format!("{value}\n").as_bytes());
    }

    /// Data for stdout as it is: a generated document (completions, the man page).
    pub fn raw(&self, bytes: &[u8]) {
        write_stdout(bytes);
    }

    /// Whether progress bars may be drawn: only on a terminal, never with `-q`, `-v` or
    /// `--json` (verbose output would tear the bar).
    pub fn progress_allowed(&self) -> bool {
        !self.quiet && !self.json && self.verbose == 0 && std::io::stderr().is_terminal()
    }

    /// A live line on stderr for one node (`PREFIX step (elapsed)`), redrawn in place;
    /// `None` when progress is not allowed. The caller sets its message and adds it to a
    /// `MultiProgress` when there are several.
    pub fn live_line(&self, prefix: &str) -> Option<indicatif::ProgressBar> {
        if !self.progress_allowed() {
            return None;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix:>12} {msg} ({elapsed})")
                .expect("a valid template"),
        );
        bar.set_prefix(prefix.to_string());
        Some(bar)
    }

    /// A progress bar on stderr, hidden when progress is not allowed.
    pub fn progress_bar(&self, len: u64, message: &str) -> indicatif::ProgressBar {
        if !self.progress_allowed() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(len);
        bar.set_message(message.to_string());
        bar
    }

    /// Asks a yes/no question; `--yes` answers yes, and without a terminal the answer
    /// is an error that names `--yes` (a script must never hang on a prompt).
    pub fn confirm(&self, question: &str) -> crate::Result<bool> {
        if self.yes {
            return Ok(true);
        }
        if !self.interactive() {
            return Err(Error::usage(
                format!("{question}: refusing to ask without a terminal"),
                "pass `--yes` to confirm",
            ));
        }
        dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact()
            .map_err(|e| Error::failed(format!("could not read the answer: {e}")))
    }
}
