//! `skiff default-node NAME`: choose the node used when a command names none.

use crate::cluster::StateFile;
use crate::error::Result;
use crate::printer::Printer;

/// Records `name` as the default node; an unknown name is an error listing the known ones.
pub fn run(state: &StateFile, name: &str, printer: &Printer) -> Result<()> {
    state.update(&mut super::waiting_notice(printer), |cluster| {
        cluster.node(name)?;
        cluster.default_node = Some(name.to_string());
        Ok(())
    })?;
    if printer.json() {
        printer.json_value("default-node", &serde_json::json!({ "default_node": name }));
    } else {
        printer.status("Default", format!("node is now `{name}`"));
    }
    Ok(())
}
