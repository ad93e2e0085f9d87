//! `skiff logs`: `NODE | LINE`, or JSON lines `{type: "log", node, time, kind, line}`
//! with `--json`.

use crate::cluster::StateFile;
use crate::error::Result;
use crate::operate::{self, LogKind, LogLine, LogsRequest};
use crate::printer::Printer;
use crate::transport;

/// `--kind` words (clap checked them).
pub fn kind(word: &str) -> Option<LogKind> {
    match word {
        "access" => Some(LogKind::Access),
        "error" => Some(LogKind::Error),
        "worker" => Some(LogKind::Worker),
        "cron" => Some(LogKind::Cron),
        "deploy" => Some(LogKind::Deploy),
        _ => None,
    }
}

/// `logs HOST [-f] [--since AGE] [--node N] [--kind K]`.
pub fn run(state: &StateFile, req: LogsRequest, printer: &Printer) -> Result<()> {
    let mut show = |line: LogLine| {
        if printer.json() {
            printer.json_of("log", &line);
        } else {
            printer.data(format!("{} | {}", line.node, line.line));
        }
    };
    transport::block_on(operate::logs(state, &req, &mut show))?
}
