//! `skiff tls account|add|renew`.

use crate::cli::TlsAction;
use crate::cluster::StateFile;
use crate::deploy::tls;
use crate::error::Result;
use crate::printer::Printer;
use crate::transport;

/// Sets the ACME account, installs a custom certificate, or renews one now.
pub fn run(state: &StateFile, action: &TlsAction, printer: &Printer) -> Result<()> {
    match action {
        TlsAction::Account {
            email,
            server,
            ca_bundle,
        } => {
            let account = tls::set_account(
                state,
                email.as_deref(),
                server.as_deref(),
                ca_bundle.as_deref(),
            )?;
            if printer.json() {
                printer.json_of("tls-account", &account);
            } else {
                printer.status(
                    "Account",
                    format!(
                        "certificates come from {}{}",
                        account.server(),
                        account
                            .email
                            .as_ref()
                            .map(|e| format!(", notices to {e}"))
                            .unwrap_or_default()
                    ),
                );
            }
        }
        TlsAction::Add {
            host,
            cert,
            key,
            ca,
        } => {
            let (nodes, checked) =
                transport::block_on(tls::add(state, host, cert, key, ca.as_deref()))??;
            if printer.json() {
                printer.json_value(
                    "tls-add",
                    &serde_json::json!({
                        "host": host,
                        "nodes": nodes,
                        "names": checked.names,
                        "not_after": checked.not_after,
                    }),
                );
            } else {
                printer.status(
                    "Installed",
                    format!(
                        "the certificate for {} (valid until {}) on {}",
                        checked.names.join(", "),
                        checked.not_after,
                        nodes.join(", ")
                    ),
                );
                if !checked.wildcard {
                    printer.status(
                        "Note",
                        format!("version hosts (N.{host}) stay HTTP: the certificate does not cover *.{host}"),
                    );
                }
            }
        }
        TlsAction::Renew { host } => {
            let nodes = transport::block_on(tls::renew(state, host))??;
            if printer.json() {
                printer.json_value(
                    "tls-renew",
                    &serde_json::json!({ "host": host, "nodes": nodes }),
                );
            } else {
                printer.status(
                    "Renewed",
                    format!("the certificate of {host} on {}", nodes.join(", ")),
                );
            }
        }
    }
    Ok(())
}
