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
//! - [`scaffold`]: what `skiff init` writes.
//! - [`providers`]: how nodes come to exist and go away (ssh, local, vagrant).
//! - [`transport`]: quoting and the SSH session to nodes (one multiplexed master each).
//! - [`dev_server`]: `skiff serve`, the app on the laptop (static first, then the runtime).
//! - [`sync`]: the delta sync of an app tree into a new release on a node.
//! - [`assets`]: `templates/` and `server-files/` embedded in the binary.
//! - [`provision`]: `setup-node`: probe, plan and provision a node as a skiff web host.

pub mod app_config;
pub mod assets;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod deploy;
pub mod dev_server;
pub mod error;
pub mod failpoint;
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
        Err(err) => return clap_exit(&err),
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
fn clap_exit(err: &clap::Error) -> i32 {
    use std::io::IsTerminal;
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
