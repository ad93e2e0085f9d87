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
pub mod names;
pub mod node_state;
pub mod printer;
pub mod providers;
pub mod provision;
pub mod routing;
pub mod scaffold;
pub mod sync;
pub mod toml_span;
pub mod transport;

pub use error::{Error, Result};

/// Parses argv, runs the verb and returns the process exit code.
///
/// Kept apart from `main` so the exit code logic (and error rendering) lives in one place.
pub fn run() -> i32 {
    use clap::Parser;
    let cli = cli::Cli::parse();
    let printer = printer::Printer::new(&cli.global);
    match commands::dispatch(&cli, &printer) {
        Ok(()) => 0,
        Err(err) => {
            printer.error(&err);
            err.exit_code()
        }
    }
}
