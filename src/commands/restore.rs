//! `skiff restore ARCHIVE [APP]`: a backup's data back into the app's services (asks
//! first).

use indicatif::HumanBytes;

use crate::cluster::StateFile;
use crate::deploy::backup;
use crate::error::{Error, Result};
use crate::printer::Printer;
use crate::transport;

use super::backup::progress_line;

/// Runs `skiff restore`: opens the archive and checks it belongs to HOST's app, asks,
/// then restores (every part's sha256 is checked before the node is touched).
pub fn run(
    state: &StateFile,
    archive_path: &std::path::Path,
    host: &str,
    printer: &Printer,
) -> Result<()> {
    let archive = backup::open_archive(archive_path)?;
    let app = backup::check_app(state, host, &archive)?;
    let m = &archive.manifest;
    let services: Vec<String> = m
        .parts
        .iter()
        .map(|p| format!("{} ({})", p.service, p.kind))
        .collect();
    let version = m
        .version
        .map(|v| format!(", version {v}"))
        .unwrap_or_default();
    let question = format!(
        "Replace the data of app `{app}` ({}): {} with the backup taken {}{version}?",
        host,
        services.join(", "),
        m.time
    );
    if !printer.confirm(&question)? {
        return Err(Error::Interrupted);
    }
    let progress = progress_line(printer, "Restoring");
    let report = transport::block_on(backup::restore(state, host, &archive, progress))??;
    if printer.json() {
        printer.json_of("restore", &report);
        return Ok(());
    }
    for part in &report.parts {
        printer.status(
            "Restored",
            format!(
                "{} ({}, {}) on node {}",
                part.service,
                part.kind,
                HumanBytes(part.size),
                report.node
            ),
        );
    }
    printer.status(
        "Done",
        format!(
            "{} serves the data of {} (backup of {})",
            report.host,
            report.archive.display(),
            report.time
        ),
    );
    Ok(())
}
