//! `skiff status [HOST]`: what serves where, whether it is healthy, and drift.

use crate::cluster::StateFile;
use crate::deploy;
use crate::error::{Error, Result};
use crate::printer::Printer;
use crate::transport;

/// Prints each app's nodes (or JSON); fails (exit 1) when a node is unhealthy, drifted
/// from cluster.toml or unreachable, after printing everything.
pub fn run(state: &StateFile, host: Option<&str>, printer: &Printer) -> Result<()> {
    let apps = transport::block_on(deploy::status::status(state, host))??;
    if printer.json() {
        printer.json_value("status", &serde_json::json!({ "apps": apps }));
    } else if apps.is_empty() {
        printer.status("Status", "no app is deployed (cluster.toml lists none)");
    }
    let show = |v: Option<u32>| v.map_or("-".to_string(), |n| n.to_string());
    let mut problems = 0;
    for a in &apps {
        if !printer.json() {
            printer.data(format!("{} (app {})", a.host, a.app));
        }
        for n in &a.nodes {
            if !(n.healthy && n.drift.is_empty() && n.error.is_none() && n.cert_ok()) {
                problems += 1;
            }
            if printer.json() {
                continue;
            }
            if let Some(e) = &n.error {
                printer.data(format!("  {}: unreachable: {e}", n.node));
                continue;
            }
            let workers = if n.workers.is_empty() {
                String::new()
            } else {
                format!("  workers {}", n.workers.join(", "))
            };
            printer.data(format!(
                "  {}: current {} prev {}  HTTP {}  {}  slots {}{workers}  disk {:.1} MB",
                n.node,
                show(n.current),
                show(n.prev),
                if n.http.is_empty() { "-" } else { &n.http },
                if n.healthy { "healthy" } else { "UNHEALTHY" },
                if n.slots.is_empty() {
                    "-".to_string()
                } else {
                    n.slots.join(",")
                },
                n.disk_kib as f64 / 1024.0
            ));
            if let Some(c) = &n.certificate {
                printer.data(format!("    {}", c.line()));
            }
            for d in &n.drift {
                printer.data(format!("    drift: {d}"));
            }
            if let Some(fix) = &n.fix {
                printer.data(format!("    fix: {fix}"));
            }
        }
    }
    if problems > 0 {
        return Err(Error::Failed {
            message: format!(
                "{problems} node(s) unhealthy, drifted, unreachable or with a certificate problem"
            ),
            hint: Some("each line above says what, with the fix".into()),
        });
    }
    Ok(())
}
