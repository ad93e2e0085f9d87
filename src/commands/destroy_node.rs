//! `skiff destroy-node NAME`: destroy a local or vagrant node, forget an ssh node.

use crate::cluster::{Provider, StateFile};
use crate::error::{Error, Result};
use crate::printer::Printer;
use crate::providers;
use crate::transport;

/// Asks (unless `--yes`), destroys or forgets the node, and says which it was.
pub fn run(state: &StateFile, name: &str, printer: &Printer) -> Result<()> {
    let cluster = state.load()?;
    let node = cluster.node(name)?;
    let question = match node.provider {
        Provider::Local => format!(
            "Destroy local node `{name}` ({}) and everything on it?",
            node.address
        ),
        Provider::Vagrant => {
            format!("Destroy the Vagrant VM of node `{name}` and everything on it?")
        }
        Provider::Ssh => format!(
            "Forget node `{name}` ({})? The server itself is left as it is",
            node.address
        ),
    };
    // the data of services this node holds goes with it: name it in the question
    let data: Vec<String> = cluster
        .apps
        .iter()
        .flat_map(|(host, a)| {
            a.services
                .iter()
                .filter(|(_, s)| s.node == name)
                .map(move |(service, s)| format!("`{service}` ({}) of {host}", s.kind))
        })
        .collect();
    let question = if data.is_empty() || node.provider == Provider::Ssh {
        question
    } else {
        format!(
            "{question} It holds the data of {}: take a backup first if you need it",
            data.join(", ")
        )
    };
    if !printer.confirm(&question)? {
        return Err(Error::Interrupted);
    }
    let mut status = |verb: &str, msg: String| printer.status(verb, msg);
    let done = transport::block_on(providers::destroy(name, state, &mut status))??;
    for app in &done.apps {
        printer.warn(format!(
            "app `{app}` listed node `{name}`; it no longer does"
        ));
    }
    if done.was_default {
        printer.warn(format!(
            "`{name}` was the default node; set a new one with `skiff default-node NAME`"
        ));
    }
    if printer.json() {
        printer.json_value(
            "destroy-node",
            &serde_json::json!({
                "name": done.name,
                "provider": done.provider.to_string(),
                "destroyed": done.provider != Provider::Ssh,
                "apps": done.apps,
                "was_default": done.was_default,
            }),
        );
        return Ok(());
    }
    match done.provider {
        Provider::Ssh => printer.status(
            "Forgot",
            format!("node `{name}`; the server was not touched (skiff's files on it remain)"),
        ),
        _ => printer.status("Destroyed", format!("{} node `{name}`", done.provider)),
    }
    Ok(())
}
