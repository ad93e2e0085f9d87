//! One file per verb. Each parses nothing (clap did), calls one library function and
//! renders its result through the [`Printer`].

use crate::cli::{Cli, Command};
use crate::cluster::{self, StateFile};
use crate::deploy::Choice;
use crate::error::Result;
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
            versions::activate(&state_file(cli)?, &args.host, Choice::Prev, printer)
        }
        Command::Activate(args) => versions::activate(
            &state_file(cli)?,
            &args.host,
            Choice::Version(args.version),
            printer,
        ),
        Command::Versions(args) => versions::versions(&state_file(cli)?, &args.host, printer),
        Command::Status(args) => status::run(&state_file(cli)?, args.host.as_deref(), printer),
        Command::Diff(args) => diff::run(&state_file(cli)?, args, printer),
        Command::History(args) => versions::history(&state_file(cli)?, &args.host, printer),
        Command::DestroyApp(args) => destroy_app::run(&state_file(cli)?, &args.host, printer),
        Command::Clean(args) => versions::clean(&state_file(cli)?, &args.host, args.keep, printer),
        Command::Backup(args) => backup::run(&state_file(cli)?, args, printer),
        Command::Restore(args) => restore::run(&state_file(cli)?, args, printer),
        Command::Completions(args) => completions::completions(args.shell, printer),
        Command::Man => completions::man(printer),
        Command::Config { host, action } => config::run(&state_file(cli)?, host, action, printer),
        Command::Run {
            host,
            node,
            version,
            command,
        } => run::run(&state_file(cli)?, host, node.as_deref(), *version, command),
        Command::Shell { host, node } => run::shell(&state_file(cli)?, host, node.as_deref()),
        Command::Tls { action } => tls::run(&state_file(cli)?, action, printer),
        Command::Logs {
            host,
            follow,
            since,
            node,
            kind,
            lines,
        } => logs::run(
            &state_file(cli)?,
            operate::LogsRequest {
                host: host.clone(),
                node: node.clone(),
                kinds: kind.iter().filter_map(|k| logs::kind(k)).collect(),
                since: *since,
                lines: *lines,
                follow: *follow,
            },
            printer,
        ),
    }
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
