//! `skiff create-node NAME`: make a node known (ssh), or create one (local, vagrant).

use crate::cli::{CreateNodeArgs, ProviderArg};
use crate::cluster::{Provider, StateFile};
use crate::error::Result;
use crate::printer::Printer;
use crate::providers::{self, CreateRequest};
use crate::transport;

/// Creates or adds the node, pins its host key and records it; prints what was recorded.
pub fn run(state: &StateFile, args: &CreateNodeArgs, printer: &Printer) -> Result<()> {
    let req = CreateRequest {
        name: args.name.clone(),
        provider: match args.provider {
            ProviderArg::Ssh => Provider::Ssh,
            ProviderArg::Vagrant => Provider::Vagrant,
            ProviderArg::Local => Provider::Local,
        },
        host: args.host.clone(),
        user: args.user.clone(),
        port: args.port,
        identity: args.identity.clone(),
        force: args.force,
        repin: args.repin,
        suite: args.os.map(|os| match os {
            crate::cli::LocalOsArg::Debian12 => "bookworm",
            crate::cli::LocalOsArg::Debian13 => "trixie",
        }),
    };
    let mut status = |verb: &str, msg: String| printer.status(verb, msg);
    let created = transport::block_on(providers::create(&req, state, &mut status))??;
    let node = &created.node;
    if printer.json() {
        printer.json_value(
            "create-node",
            &serde_json::json!({
                "name": created.name,
                "provider": node.provider.to_string(),
                "address": node.address,
                "user": node.user,
                "port": node.port,
                "os": node.os,
                "host_key": node.host_key,
                "previous_host_key": created.previous_host_key,
                "provider_data": node.provider_data,
            }),
        );
        return Ok(());
    }
    let key = node.host_key.as_deref().unwrap_or("-");
    if args.repin {
        match &created.previous_host_key {
            Some(old) => printer.status("Re-pinned", format!("`{}`: {old} -> {key}", created.name)),
            None => printer.status(
                "Re-pinned",
                format!("`{}`: key unchanged ({key})", created.name),
            ),
        }
    } else {
        printer.status(
            "Added",
            format!(
                "{} node `{}` at {}@{}:{} ({}), host key {key}",
                node.provider,
                created.name,
                node.user,
                node.address,
                node.port,
                node.os.as_deref().unwrap_or("unknown OS"),
            ),
        );
    }
    Ok(())
}
