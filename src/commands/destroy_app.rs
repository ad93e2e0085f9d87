//! `skiff destroy-app HOST`: remove an app from every node it is on, and from cluster.toml.

use crate::cluster::StateFile;
use crate::deploy;
use crate::error::{Error, Result};
use crate::printer::Printer;
use crate::transport;

use super::update::event_printer;

/// Asks (unless `--yes`), then removes the app at `host` everywhere and says what went.
pub fn run(state: &StateFile, host: &str, printer: &Printer) -> Result<()> {
    let cluster = state.load()?;
    let app = cluster.apps.get(host).ok_or_else(|| {
        Error::usage(
            format!("no app is deployed at `{host}` (according to the cluster state)"),
            "see the deployed apps' hosts in cluster.toml, or `skiff versions HOST`",
        )
    })?;
    let question = format!(
        "Remove app `{}` ({host}) from node(s) {}: every release, route, slot and its node-side env file?",
        app.name,
        app.nodes.join(", ")
    );
    if !printer.confirm(&question)? {
        return Err(Error::Interrupted);
    }
    let report = transport::block_on(deploy::destroy_app(state, host, event_printer(printer)))??;
    if printer.json() {
        printer.json_of("destroy-app", &report);
        return Ok(());
    }
    printer.status(
        "Removed",
        format!(
            "app `{}` ({host}) from {}; freed slot(s): {}",
            report.app,
            report.nodes.join(", "),
            if report.freed.is_empty() {
                "none".to_string()
            } else {
                report.freed.join(", ")
            }
        ),
    );
    Ok(())
}
