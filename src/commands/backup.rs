//! `skiff backup [APP] [--to DIR]`: the app's services into one archive on this machine.

use std::sync::Arc;

use indicatif::HumanBytes;

use crate::cluster::StateFile;
use crate::deploy::backup::{self, BackupProgress, ProgressFn};
use crate::error::Result;
use crate::printer::Printer;
use crate::transport;

/// Runs `skiff backup` of the app at `host`, into `to` (else the current folder).
pub fn run(
    state: &StateFile,
    host: &str,
    to: Option<&std::path::Path>,
    printer: &Printer,
) -> Result<()> {
    let progress = progress_line(printer, "Backing up");
    let report = transport::block_on(backup::backup(state, host, to, progress))??;
    if printer.json() {
        printer.json_of("backup", &report);
        return Ok(());
    }
    for part in &report.parts {
        printer.status(
            "Dumped",
            format!(
                "{} ({}): {} sha256 {}",
                part.service,
                part.kind,
                HumanBytes(part.size),
                part.sha256
            ),
        );
    }
    printer.status(
        "Saved",
        format!(
            "{} ({}, {} on node {})",
            report.path.display(),
            HumanBytes(report.bytes),
            report.host,
            report.node
        ),
    );
    Ok(())
}

/// A progress callback that draws one live line on a terminal (`PREFIX what (elapsed)`),
/// and nothing on a pipe, with `--json`, `-q` or `-v` (notes are status lines). The line
/// goes when the callback is dropped.
pub fn progress_line(printer: &Printer, prefix: &str) -> ProgressFn {
    let line = printer.live_line(prefix).map(|bar| {
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        Arc::new(Cleared(bar))
    });
    let printer = printer.clone();
    Arc::new(move |event| {
        if let BackupProgress::Note(note) = &event {
            match &line {
                Some(line) => line.0.suspend(|| printer.status("Note", note)),
                None => printer.status("Note", note),
            }
            return;
        }
        let Some(line) = &line else {
            return;
        };
        let what = match event {
            BackupProgress::Dumping { service, bytes } => {
                format!("{service}: {} received", HumanBytes(bytes))
            }
            BackupProgress::Checking { bytes, total } => {
                format!("checking {}/{}", HumanBytes(bytes), HumanBytes(total))
            }
            BackupProgress::Uploading {
                service,
                bytes,
                total,
            } => format!(
                "{service}: {}/{} uploaded",
                HumanBytes(bytes),
                HumanBytes(total)
            ),
            BackupProgress::Restoring => "restoring into fresh copies, then swapping".into(),
            BackupProgress::Note(_) => return,
        };
        line.0.set_message(what);
    })
}

/// A live line that clears itself when the last callback holding it is dropped.
struct Cleared(indicatif::ProgressBar);

impl Drop for Cleared {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
