//! One file per verb. Each parses nothing (clap did), calls one library function and
//! renders its result through the [`Printer`].

use crate::app_ref;
use crate::cli::{Cli, Command};
use crate::cluster::{self, StateFile};
use crate::deploy::Choice;
use crate::error::{Error, Result};
use crate::operate;
use crate::printer::Printer;

mod backup;
mod completions;
mod config;
mod create_node;
mod default_node;
mod destroy_app;
mod destroy_node;
mod diff;
mod init;
mod list_nodes;
mod logs;
mod restore;
mod run;
mod serve;
mod setup_node;
mod status;
mod tls;
mod update;
mod versions;

/// Runs the verb chosen on the command line.
pub fn dispatch(cli: &Cli, printer: &Printer) -> Result<()> {
    match &cli.command {
        Command::Init(args) => init::run(args, printer),
        Command::CreateNode(args) => create_node::run(&state_file(cli)?, args, printer),
        Command::DestroyNode(args) => destroy_node::run(&state_file(cli)?, &args.name, printer),
        Command::SetupNode(args) => setup_node::run(&state_file(cli)?, args, printer),
        Command::ListNodes => list_nodes::run(&state_file(cli)?, printer),
        Command::DefaultNode(args) => default_node::run(&state_file(cli)?, &args.name, printer),
        Command::Serve(args) => serve::run(args, printer),
        Command::Update(args) => update::run(&state_file(cli)?, args, printer),
        Command::Rollback(args) => {
            let (state, host) = app(cli, args.app.as_deref())?;
            versions::activate(&state, &host, Choice::Prev, printer)
        }
        Command::Activate(args) => {
            let (given, version) = args
                .app_and_version()
                .map_err(|m| Error::usage(m, "e.g. `skiff activate 3` in the app's folder"))?;
            let (state, host) = app(cli, given)?;
            versions::activate(&state, &host, Choice::Version(version), printer)
        }
        Command::Versions(args) => {
            let (state, host) = app(cli, args.app.as_deref())?;
            versions::versions(&state, &host, printer)
        }
        Command::Status(args) => {
            let state = state_file(cli)?;
            let host = match &args.app {
                Some(given) => Some(app_ref::resolve(&state.load()?, Some(given))?.host),
                None => None,
            };
            status::run(&state, host.as_deref(), printer)
        }
        Command::Diff(args) => diff::run(&state_file(cli)?, args, printer),
        Command::History(args) => {
            let (state, host) = app(cli, args.app.as_deref())?;
            versions::history(&state, &host, printer)
        }
        Command::DestroyApp(args) => {
            let (state, host) = app(cli, Some(&args.app))?;
            destroy_app::run(&state, &host, printer)
        }
        Command::Clean(args) => {
            let (state, host) = app(cli, args.app.as_deref())?;
            versions::clean(&state, &host, args.keep, printer)
        }
        Command::Backup(args) => {
            let (state, host) = app(cli, args.app.as_deref())?;
            backup::run(&state, &host, args.to.as_deref(), printer)
        }
        Command::Restore(args) => {
            let (state, host) = app(cli, args.app.as_deref())?;
            restore::run(&state, &args.archive, &host, printer)
        }
        Command::Completions(args) => completions::completions(args.shell, printer),
        Command::Man(args) => completions::man(args.verb.as_deref(), printer),
        Command::Config { app: given, action } => {
            let (state, host) = app(cli, given.as_deref())?;
            config::run(&state, &host, action, printer)
        }
        Command::Run {
            app: given,
            node,
            version,
            command,
        } => {
            let (state, host) = app(cli, given.as_deref())?;
            run::run(&state, &host, node.as_deref(), *version, command)
        }
        Command::Shell { app: given, node } => {
            let (state, host) = app(cli, given.as_deref())?;
            run::shell(&state, &host, node.as_deref())
        }
        Command::Tls { action } => tls::run(&state_file(cli)?, action, printer),
        Command::Logs {
            app: given,
            follow,
            since,
            node,
            kind,
            lines,
        } => {
            let (state, host) = app(cli, given.as_deref())?;
            logs::run(
                &state,
                operate::LogsRequest {
                    host,
                    node: node.clone(),
                    kinds: kind.iter().filter_map(|k| logs::kind(k)).collect(),
                    since: *since,
                    lines: *lines,
                    follow: *follow,
                },
                printer,
            )
        }
    }
}

/// The state file and the main host of the deployed app the user named (a folder, a
/// name or a host; this folder when `None`), through the one resolver, [`app_ref`].
fn app(cli: &Cli, given: Option<&str>) -> Result<(StateFile, String)> {
    let state = state_file(cli)?;
    let host = app_ref::resolve(&state.load()?, given)?.host;
    Ok((state, host))
}

/// The state file chosen by `--state`, `SKIFF_STATE` or the XDG default.
pub fn state_file(cli: &Cli) -> Result<StateFile> {
    Ok(StateFile::new(cluster::default_state_path(
        cli.global.state.as_deref(),
    )?))
}

/// A callback for [`StateFile::lock`] that says why we are waiting.
pub fn waiting_notice(printer: &Printer) -> impl FnMut(&std::path::Path) + '_ {
    move |path| {
        printer.status(
            "Waiting",
            format!("for another skiff to release `{}`", path.display()),
        )
    }
}
