//! `skiff rollback`, `activate`, `versions` and `clean`: what runs at a host, and which
//! kept version serves it.

use crate::cluster::StateFile;
use crate::deploy::{self, Choice, SwitchReport};
use crate::error::Result;
use crate::printer::Printer;
use crate::transport;

use super::update::event_printer;

/// `rollback HOST` (`choice` = prev) and `activate HOST N`.
pub fn activate(state: &StateFile, host: &str, choice: Choice, printer: &Printer) -> Result<()> {
    let kind = match choice {
        Choice::Prev => "rollback",
        Choice::Version(_) => "activate",
    };
    let report = transport::block_on(deploy::activate(
        state,
        host,
        choice,
        event_printer(printer),
    ))??;
    print_switch(&report, printer, kind, "Switched");
    Ok(())
}

/// `clean HOST --keep N`.
pub fn clean(state: &StateFile, host: &str, keep: u32, printer: &Printer) -> Result<()> {
    let report = transport::block_on(deploy::clean(state, host, keep, event_printer(printer)))??;
    print_switch(&report, printer, "clean", "Cleaned");
    Ok(())
}

fn print_switch(report: &SwitchReport, printer: &Printer, kind: &str, verb: &str) {
    if printer.json() {
        printer.json_of(kind, report);
        return;
    }
    let show = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    let removed = if report.removed.is_empty() {
        String::new()
    } else {
        format!("; removed {:?}", report.removed)
    };
    printer.status(
        verb,
        format!(
            "{}: current {}, prev {}{removed}",
            report.host,
            show(report.current),
            show(report.prev)
        ),
    );
}

/// `history HOST`: the deploy log, oldest first: a table, or JSON with `--json`.
pub fn history(state: &StateFile, host: &str, printer: &Printer) -> Result<()> {
    let (app, node, entries) = transport::block_on(deploy::history::history(state, host))??;
    if printer.json() {
        printer.json_value(
            "history",
            &serde_json::json!({ "app": app, "host": host, "node": node, "runs": entries }),
        );
        return Ok(());
    }
    if entries.is_empty() {
        printer.status(
            "History",
            format!("no runs logged for {host} on node `{node}`"),
        );
        return Ok(());
    }
    printer.data(format!(
        "{:<21} {:<9} {:>7} {:<7} {:>8}  {:<12} WHO",
        "TIME", "VERB", "VERSION", "RESULT", "SECONDS", "COMMIT"
    ));
    for e in &entries {
        let commit = e.commit.as_deref().map_or("-".to_string(), |c| {
            let short: String = c.chars().take(10).collect();
            if e.dirty == Some(true) {
                format!("{short}+")
            } else {
                short
            }
        });
        printer.data(format!(
            "{:<21} {:<9} {:>7} {:<7} {:>8.2}  {:<12} {}",
            e.time,
            e.verb,
            e.version.map_or("-".to_string(), |v| v.to_string()),
            e.result,
            e.seconds,
            commit,
            e.who
        ));
        if let Some(reason) = &e.reason {
            printer.data(format!("    {reason}"));
        }
    }
    Ok(())
}

/// `versions HOST`: a table, or JSON with `--json`.
pub fn versions(state: &StateFile, host: &str, printer: &Printer) -> Result<()> {
    let report = transport::block_on(deploy::versions(state, host))??;
    if printer.json() {
        printer.json_of("versions", &report);
        return Ok(());
    }
    printer.data(format!(
        "{:<8} {:<22} {:>10}  {:<8} {}",
        "VERSION", "DEPLOYED", "SIZE", "SLOT", "ROLE"
    ));
    for v in &report.versions {
        let role = if v.current {
            "current"
        } else if v.prev {
            "prev"
        } else {
            ""
        };
        printer.data(format!(
            "{:<8} {:<22} {:>10}  {:<8} {role}",
            v.number,
            v.time,
            v.size,
            v.slot.as_deref().unwrap_or("-")
        ));
        for w in &v.workers {
            let restarts = match w.restarts {
                0 => String::new(),
                n => format!(", restarted {n} times"),
            };
            printer.data(format!("         worker {}: {}{restarts}", w.name, w.state));
        }
    }
    if let Some(node) = &report.timers_node {
        printer.data(format!("cron (on node {node}):"));
        for t in &report.timers {
            printer.data(format!(
                "  {}: last {}, result {}, next {}",
                t.name, t.last, t.result, t.next
            ));
        }
    }
    Ok(())
}
