//! The sole writer of output.
//!
//! stdout carries data only (tables, JSON); status, progress, warnings and errors go to
//! stderr, so `skiff --json list-nodes | jq` always works. Library code never prints: it
//! returns values (or sends events) that a verb renders here. Both go to a [`Sink`]: the
//! process's stdout and stderr, or buffers a test reads ([`Printer::capture`]).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

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
    sink: Sink,
}

/// Where a printer writes.
#[derive(Debug, Clone)]
enum Sink {
    /// The process's stdout (data) and stderr (everything else).
    Std,
    /// In-memory buffers, for tests.
    Capture(Captured),
}

/// What a [`Printer::capture`] printer wrote: stdout and stderr apart, as text.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Captured {
    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        text(&self.out)
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        text(&self.err)
    }
}

fn text(buf: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

fn append(buf: &Mutex<Vec<u8>>, bytes: &[u8]) {
    buf.lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend_from_slice(bytes);
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

/// `value` as an object with a `type` field (see [`Printer::json_value`]).
fn typed(kind: &str, value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut map = map.clone();
            map.entry("type")
                .or_insert_with(|| serde_json::Value::String(kind.to_string()));
            serde_json::Value::Object(map)
        }
        other => serde_json::json!({ "type": kind, "value": other }),
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
        Printer::with_sink(global, color, Sink::Std)
    }

    /// A printer for the global flags that writes to buffers instead of stdout and
    /// stderr, read through the returned [`Captured`]. It is never on a terminal: colour
    /// only with `--color always`, no live lines, no prompts.
    pub fn capture(global: &GlobalArgs) -> (Self, Captured) {
        let captured = Captured::default();
        let color = global.color == ColorChoice::Always;
        let printer = Printer::with_sink(global, color, Sink::Capture(captured.clone()));
        (printer, captured)
    }

    fn with_sink(global: &GlobalArgs, color: bool, sink: Sink) -> Self {
        Printer {
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            color,
            yes: global.yes,
            sink,
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
            sink: Sink::Std,
        }
    }

    /// Data for stdout (a failure is kept for [`finish_stdout`]).
    fn out(&self, bytes: &[u8]) {
        match &self.sink {
            Sink::Std => write_stdout(bytes),
            Sink::Capture(c) => append(&c.out, bytes),
        }
    }

    /// Everything else, for stderr.
    fn err(&self, bytes: &[u8]) {
        match &self.sink {
            Sink::Std => {
                let _ = std::io::stderr().write_all(bytes);
            }
            Sink::Capture(c) => append(&c.err, bytes),
        }
    }

    /// Whether stderr is a terminal (a captured printer's never is).
    fn stderr_is_terminal(&self) -> bool {
        matches!(self.sink, Sink::Std) && std::io::stderr().is_terminal()
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
        std::io::stdin().is_terminal() && self.stderr_is_terminal()
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
        let verb = self.paint(GREEN, &format!("{verb:>12}"));
        self.err(format!("{verb} {message}\n").as_bytes());
    }

    /// Whether status lines are shown at all (not `-q`).
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// A detail line on stderr, shown only with `-v`.
    pub fn detail(&self, message: impl std::fmt::Display) {
        if self.verbose >= 1 && !self.quiet {
            self.err(format!("{message}\n").as_bytes());
        }
    }

    /// A raw line on stderr: what an app's own process printed (`skiff serve`). Shown
    /// even with `-q`: it is the app's output, tracebacks included.
    pub fn log(&self, line: impl std::fmt::Display) {
        self.err(format!("{line}\n").as_bytes());
    }

    /// A warning on stderr (shown even with `-q`: warnings matter).
    pub fn warn(&self, message: impl std::fmt::Display) {
        let label = self.paint(YELLOW, "warning");
        self.err(format!("{label}: {message}\n").as_bytes());
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
        self.err(out.as_bytes());
        if self.json {
            let doc = serde_json::json!({
                "type": "error",
                "message": err.to_string(),
                "hint": err.hint(),
                "exit_code": err.exit_code(),
            });
            self.out(format!("{doc}\n").as_bytes());
        }
    }

    /// Data for stdout: a line of text (tables, values).
    pub fn data(&self, text: impl std::fmt::Display) {
        self.out(format!("{text}\n").as_bytes());
    }

    /// Data for stdout as one JSON document: an object with a `type` field, as every
    /// JSON value skiff prints is (README, "JSON output"). `kind` becomes its `type`
    /// unless the value has one (serve's events are tagged by their own type); a value
    /// that is not an object goes under `value`.
    pub fn json_value(&self, kind: &str, value: &serde_json::Value) {
        let doc = typed(kind, value);
        self.out(format!("{doc}\n").as_bytes());
    }

    /// [`Printer::json_value`] of a serializable report (every verb's `--json` result).
    pub fn json_of<T: serde::Serialize + ?Sized>(&self, kind: &str, value: &T) {
        let value = serde_json::to_value(value).expect("skiff's reports serialize");
        self.json_value(kind, &value);
    }

    /// Data for stdout as it is: a generated document (completions, the man page).
    pub fn raw(&self, bytes: &[u8]) {
        self.out(bytes);
    }

    /// Whether progress bars may be drawn: only on a terminal, never with `-q`, `-v` or
    /// `--json` (verbose output would tear the bar).
    pub fn progress_allowed(&self) -> bool {
        !self.quiet && !self.json && self.verbose == 0 && self.stderr_is_terminal()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(json: bool, quiet: bool, verbose: u8, color: ColorChoice) -> GlobalArgs {
        GlobalArgs {
            state: None,
            json,
            verbose,
            quiet,
            yes: false,
            color,
        }
    }

    fn plain() -> (Printer, Captured) {
        Printer::capture(&flags(false, false, 0, ColorChoice::Auto))
    }

    #[test]
    fn status_lines_and_details_go_to_stderr_with_the_verb_right_aligned() {
        let (p, c) = plain();
        p.status("Deployed", "blog version 3");
        p.detail("hidden without -v");
        p.data("http://blog.test/");
        assert_eq!(c.stderr(), "    Deployed blog version 3\n");
        assert_eq!(c.stdout(), "http://blog.test/\n");

        let (p, c) = Printer::capture(&flags(false, false, 1, ColorChoice::Auto));
        p.detail("sync 0.120s");
        assert_eq!(c.stderr(), "sync 0.120s\n");
    }

    #[test]
    fn warnings_and_errors_with_their_hint() {
        let (p, c) = plain();
        p.warn("the pool is full");
        p.error(&Error::usage("no app.toml in `x`", "run `skiff init`"));
        assert_eq!(
            c.stderr(),
            "warning: the pool is full\nerror: no app.toml in `x`\n\nhint: run `skiff init`\n"
        );
        assert_eq!(c.stdout(), "", "without --json an error is not data");
    }

    #[test]
    fn json_mode_puts_documents_and_errors_on_stdout() {
        let (p, c) = Printer::capture(&flags(true, false, 0, ColorChoice::Auto));
        p.json_value("update", &serde_json::json!({"app": "blog", "version": 3}));
        p.json_value("listening", &serde_json::json!({"type": "access"}));
        p.json_value("list-nodes", &serde_json::json!([1]));
        p.error(&Error::usage("bad", "do this"));
        assert_eq!(
            c.stdout(),
            "{\"app\":\"blog\",\"type\":\"update\",\"version\":3}\n\
             {\"type\":\"access\"}\n\
             {\"type\":\"list-nodes\",\"value\":[1]}\n\
             {\"exit_code\":2,\"hint\":\"do this\",\"message\":\"bad\",\"type\":\"error\"}\n"
        );
        assert_eq!(c.stderr(), "error: bad\n\nhint: do this\n");
        assert!(!p.progress_allowed());
    }

    #[test]
    fn quiet_keeps_only_warnings_errors_logs_and_data() {
        let (p, c) = Printer::capture(&flags(false, true, 0, ColorChoice::Auto));
        p.status("Synced", "web1: 1 new");
        p.detail("not shown");
        p.warn("shown");
        p.log("Traceback (most recent call last):");
        p.error(&Error::failed("it broke"));
        p.data("data");
        assert_eq!(
            c.stderr(),
            "warning: shown\nTraceback (most recent call last):\nerror: it broke\n"
        );
        assert_eq!(c.stdout(), "data\n");
    }

    #[test]
    fn escape_codes_only_with_colour() {
        for color in [ColorChoice::Auto, ColorChoice::Never] {
            let (p, c) = Printer::capture(&flags(false, false, 0, color));
            p.status("Deployed", "x");
            p.warn("w");
            p.error(&Error::usage("e", "h"));
            assert!(!c.stderr().contains('\x1b'), "{color:?}: {:?}", c.stderr());
            assert!(p.live_line("web1").is_none(), "no live line off a terminal");
        }
        let (p, c) = Printer::capture(&flags(false, false, 0, ColorChoice::Always));
        p.status("Deployed", "x");
        assert_eq!(c.stderr(), format!("{GREEN}    Deployed{RESET} x\n"));
    }

    #[test]
    fn a_captured_printer_never_prompts() {
        let (p, _) = plain();
        let err = p.confirm("remove blog").unwrap_err();
        assert!(err.hint().unwrap().contains("--yes"));
    }
}
