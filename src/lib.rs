//! skiff: an agentless deployer for people who run their own servers.
//!
//! Module map (each module has one job; commands are thin wrappers around them):
//! - [`cli`]: clap types, no I/O.
//! - [`commands`]: one file per verb; parses nothing, calls one library function,
//!   renders its result through the [`printer`].
//! - [`printer`]: the sole writer of output (stdout = data, stderr = status).
//! - [`error`]: the one error type, its hints and exit codes.
//! - [`names`]: the grammars for app names, node names, hostnames, env names, paths.
//! - [`cluster`]: the laptop's `cluster.toml`: nodes, default node, apps and versions.
//! - [`app_config`]: the typed `app.toml`.
//! - [`app_ref`]: which deployed app a verb means (folder, name or host).
//! - [`scaffold`]: what `skiff init` writes.
//! - [`providers`]: how nodes come to exist and go away (ssh, local, vagrant).
//! - [`transport`]: quoting and the SSH session to nodes (one multiplexed master each).
//! - [`dev_server`]: `skiff serve`, the app on the laptop (static first, then the runtime).
//! - [`sync`]: the delta sync of an app tree into a new release on a node.
//! - [`assets`]: `templates/` and `server-files/` embedded in the binary.
//! - [`provision`]: `setup-node`: probe, plan and provision a node as a skiff web host.

pub mod app_config;
pub mod app_ref;
pub mod assets;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod deploy;
pub mod dev_server;
pub mod error;
pub mod failpoint;
#[doc(hidden)]
/// Entry points for the fuzz targets in `fuzz/` only (private parsers of node output).
pub mod fuzzing;
pub mod names;
pub mod node_state;
pub mod operate;
pub mod printer;
pub mod providers;
pub mod provision;
pub mod pyproject;
pub mod routing;
pub mod scaffold;
pub mod sync;
pub mod toml_span;
pub mod transport;
pub mod units;

pub use error::{Error, Result};

/// Parses argv, runs the verb and returns the process exit code.
///
/// Kept apart from `main` so the exit code logic (and error rendering) lives in one place.
/// Data that could not be written to stdout (a full disk, an I/O error) fails the command
/// with exit code 1; a closed pipe (`skiff ... | head -1`) is not an error.
pub fn run() -> i32 {
    use clap::Parser;
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--json` before any `--`: the usage error is a JSON object on stdout too
            let json = std::env::args()
                .skip(1)
                .take_while(|a| a != "--")
                .any(|a| a == "--json");
            return clap_exit(&err, json);
        }
    };
    let printer = printer::Printer::new(&cli.global);
    let code = match commands::dispatch(&cli, &printer) {
        Ok(()) => 0,
        Err(err) => {
            printer.error(&err);
            err.exit_code()
        }
    };
    stdout_outcome(code, |err| printer.error(&err))
}

/// The exit code once stdout is flushed: `code`, unless data was lost on the way.
fn stdout_outcome(code: i32, report: impl FnOnce(Error)) -> i32 {
    match printer::finish_stdout() {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            report(Error::Failed {
                message: format!("could not write the output to stdout: {e}"),
                hint: Some(
                    "free space where stdout goes (or send it to another file), then run the command again"
                        .into(),
                ),
            });
            if code == 0 { error::EXIT_FAILURE } else { code }
        }
    }
}

/// Prints clap's help, version or usage error and returns its exit code. Help and
/// version are data on stdout, checked like any other (`skiff --help > /dev/full` fails).
fn clap_exit(err: &clap::Error, json: bool) -> i32 {
    use std::io::IsTerminal;
    let flags = cli::GlobalArgs {
        state: None,
        json,
        verbose: 0,
        quiet: false,
        yes: false,
        color: cli::ColorChoice::Auto,
    };
    if let Some(hint) = foreign_word_hint(err) {
        printer::Printer::new(&flags).error(&hint);
        return stdout_outcome(error::EXIT_USAGE, |_| {});
    }
    if err.use_stderr() && json {
        let rendered = err.render().to_string();
        let message = rendered
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        let _ = err.print();
        let doc = serde_json::json!({
            "message": message,
            "hint": "see `skiff --help`",
            "exit_code": err.exit_code(),
        });
        printer::Printer::new(&flags).json_value("error", &doc);
        return stdout_outcome(err.exit_code(), |_| {});
    }
    if err.use_stderr() || std::io::stdout().is_terminal() {
        // Usage errors go to stderr; help on a terminal keeps clap's colours.
        let _ = err.print();
        return err.exit_code();
    }
    printer::Printer::plain().raw(err.render().to_string().as_bytes());
    stdout_outcome(err.exit_code(), |e| {
        let plain = printer::Printer::plain();
        plain.error(&e);
    })
}

/// Words other deployers use for skiff's verbs (Kamal, Capistrano, fly, Heroku, Piku,
/// docker), and what skiff calls them: an unknown verb among them is answered with the
/// skiff verb instead of clap's spelling-based guess.
pub const FOREIGN_VERBS: &[(&str, &str)] = &[
    ("push", "update"),
    ("ship", "update"),
    ("release", "update"),
    ("publish", "update"),
    ("exec", "run"),
    ("ssh", "shell"),
    ("console", "shell"),
    ("ps", "status"),
    ("info", "status"),
    ("health", "status"),
    ("env", "config"),
    ("secrets", "config"),
    ("releases", "versions"),
    ("undo", "rollback"),
    ("revert", "rollback"),
    ("log", "logs"),
    ("tail", "logs"),
    ("new", "init"),
    ("create", "init"),
    ("dev", "serve"),
    ("start", "serve"),
    ("nodes", "list-nodes"),
    ("servers", "list-nodes"),
    ("provision", "setup-node"),
    ("setup", "setup-node"),
    ("prune", "clean"),
    ("cleanup", "clean"),
    ("dump", "backup"),
];

/// The hint for an unknown verb that is another tool's word (`skiff push`), or `version`
/// (`--version` is skiff's, `versions` an app's); `None` for any other error.
fn foreign_word_hint(err: &clap::Error) -> Option<Error> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(word)) = err.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let message = format!("skiff has no verb `{word}`");
    if word == "version" {
        return Some(Error::usage(
            message,
            "`skiff --version` prints skiff's version; `skiff versions [APP]` lists an app's deployed versions",
        ));
    }
    let (_, verb) = FOREIGN_VERBS.iter().find(|(w, _)| w == word)?;
    Some(Error::usage(
        message,
        format!("skiff calls it `skiff {verb}` (see `skiff {verb} --help`)"),
    ))
}
