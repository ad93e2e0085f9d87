//! `skiff diff DIR [--node N]`: what `update` would change there, changing nothing.

use crate::cli::DiffArgs;
use crate::cluster::StateFile;
use crate::deploy;
use crate::error::Result;
use crate::printer::Printer;
use crate::transport;

/// Prints the changes (`A`dded, `M`odified, `D`eleted paths with diffs of small text
/// files, `[env]` names, packages to install), or the report with `--json`.
pub fn run(state: &StateFile, args: &DiffArgs, printer: &Printer) -> Result<()> {
    let report = transport::block_on(deploy::diff::diff(
        state,
        args.dir.clone(),
        args.node.clone(),
    ))??;
    if printer.json() {
        printer.json_of("diff", &report);
        return Ok(());
    }
    let against = match report.current {
        Some(n) => format!("version {n} on node `{}`", report.node),
        None => format!("node `{}` (the app is not there yet)", report.node),
    };
    if report.is_empty() {
        printer.status("Unchanged", format!("{} matches {against}", report.app));
        return Ok(());
    }
    printer.status("Comparing", format!("{} with {against}", report.app));
    for f in &report.files {
        let letter = match f.change.as_str() {
            "added" => "A",
            "removed" => "D",
            _ => "M",
        };
        printer.data(format!("{letter} {}", f.path));
    }
    for f in &report.files {
        if let Some(diff) = &f.diff {
            printer.data(diff.trim_end());
        }
    }
    if !report.env.is_empty() {
        printer.data(format!("env: {}", report.env.join(" ")));
    }
    if !report.packages.is_empty() {
        printer.data(format!(
            "packages to install: {}",
            report.packages.join(" ")
        ));
    }
    Ok(())
}
