//! `skiff list-nodes`: the cluster's nodes as a table, or with `--json` one object whose
//! `nodes` array lists them.

use crate::cluster::StateFile;
use crate::error::Result;
use crate::printer::Printer;

/// Prints every node: name, provider, address, OS, whether it is set up, default mark.
pub fn run(state: &StateFile, printer: &Printer) -> Result<()> {
    let cluster = state.load()?;
    if printer.json() {
        let nodes: Vec<_> = cluster
            .nodes
            .iter()
            .map(|(name, n)| {
                serde_json::json!({
                    "name": name,
                    "provider": n.provider.to_string(),
                    "address": n.address,
                    "user": n.user,
                    "port": n.port,
                    "os": n.os,
                    "host_key": n.host_key,
                    "set_up": n.setup.is_some(),
                    "default": cluster.default_node.as_deref() == Some(name.as_str()),
                })
            })
            .collect();
        printer.json_value("list-nodes", &serde_json::json!({ "nodes": nodes }));
        return Ok(());
    }
    if cluster.nodes.is_empty() {
        printer.status(
            "Empty",
            "no nodes yet; add a server you have with `skiff create-node NAME --host ADDRESS`, or a throwaway local one (as root) with `skiff create-node NAME --provider local`",
        );
        return Ok(());
    }
    let rows: Vec<[String; 6]> = cluster
        .nodes
        .iter()
        .map(|(name, n)| {
            let mark = if cluster.default_node.as_deref() == Some(name.as_str()) {
                "*"
            } else {
                ""
            };
            [
                format!("{name}{mark}"),
                n.provider.to_string(),
                format!("{}@{}:{}", n.user, n.address, n.port),
                n.os.clone().unwrap_or_else(|| "-".into()),
                if n.setup.is_some() { "yes" } else { "no" }.into(),
                n.host_key.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["NODE", "PROVIDER", "ADDRESS", "OS", "SET UP", "HOST KEY"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 5 {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    printer.data(line(header));
    for row in &rows {
        printer.data(line(row.each_ref().map(String::as_str)));
    }
    Ok(())
}
