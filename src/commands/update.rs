//! `skiff update DIR`: deploy a new version (or, with `--etc-hosts`, print the lines a
//! laptop needs to reach the app's hosts on its nodes).

use std::io::Write;
use std::sync::Arc;

use crate::app_config::AppConfig;
use crate::cli::UpdateArgs;
use crate::cluster::StateFile;
use crate::deploy::{self, Event, UpdateRequest};
use crate::error::{Error, Result};
use crate::printer::Printer;
use crate::routing;
use crate::transport;

/// Runs `skiff update`.
pub fn run(state: &StateFile, args: &UpdateArgs, printer: &Printer) -> Result<()> {
    if args.etc_hosts {
        return etc_hosts(state, args, printer);
    }
    let req = UpdateRequest {
        dir: args.dir.clone(),
        hosts: args.hosts.clone(),
        nodes: args.nodes.clone(),
    };
    deploy_and_report(state, &req, printer)
}

/// Runs one update and prints its report (also `config set`'s rollout).
pub fn deploy_and_report(state: &StateFile, req: &UpdateRequest, printer: &Printer) -> Result<()> {
    let events = event_printer(printer);
    let report = transport::block_on(deploy::update(state, req, events))??;
    if printer.json() {
        printer.json_of("update", &report);
        return Ok(());
    }
    for node in &report.nodes {
        let s = &node.sync;
        printer.status(
            "Synced",
            format!(
                "{}: {} new, {} changed, {} deleted, {} unchanged; {} bytes on the wire, {} round trips",
                node.node,
                s.files.new,
                s.files.changed,
                s.files.deleted,
                s.files.unchanged,
                s.bytes_sent,
                s.round_trips
            ),
        );
        if !node.pruned.is_empty() {
            printer.status(
                "Pruned",
                format!("{}: releases {:?}", node.node, node.pruned),
            );
        }
    }
    let prev = report
        .previous
        .map(|p| format!(" (was {p})"))
        .unwrap_or_default();
    printer.status(
        "Deployed",
        format!(
            "{} version {}{prev} in {:.2}s",
            report.app, report.version, report.seconds
        ),
    );
    for (node, cert) in &report.certificates {
        printer.status("Certificate", format!("{node}: {}", cert.line()));
    }
    for url in &report.urls {
        printer.data(url);
    }
    Ok(())
}

/// Renders deploy events on stderr. On a terminal (no `-q`, `-v` or `--json`), each node
/// has a live line (its step, bytes synced, time) and notes print above those lines;
/// elsewhere, plain status lines and no escape codes. Phase times only with `-v`.
pub fn event_printer(printer: &Printer) -> deploy::EventFn {
    let printer = printer.clone();
    let live = printer
        .progress_allowed()
        .then(|| Arc::new(LiveNodes::new(printer.clone())));
    Arc::new(move |event| {
        let say = |verb: &str, message: String| match &live {
            Some(l) => l.multi.suspend(|| printer.status(verb, message)),
            None => printer.status(verb, message),
        };
        match event {
            Event::Phase {
                node,
                phase,
                seconds,
            } => {
                if printer.verbose(1) {
                    let at = if node.is_empty() {
                        String::new()
                    } else {
                        format!("{node}: ")
                    };
                    printer.detail(format!("{at}{phase} {seconds:.3}s"));
                }
            }
            Event::Waiting { node, holder } => say(
                "Waiting",
                format!("{node}: another deploy holds the lock ({holder})"),
            ),
            Event::Note { node, message } => {
                let at = if node.is_empty() {
                    String::new()
                } else {
                    format!("{node}: ")
                };
                say("Note", format!("{at}{message}"));
            }
            Event::Step { node, step } => {
                if let Some(l) = &live {
                    l.set(&node, step.to_string());
                }
            }
            Event::Progress { node, progress } => {
                if let Some(l) = &live {
                    l.set(
                        &node,
                        format!(
                            "sync {}/{} files, {}/{} bytes",
                            progress.files_done,
                            progress.files_total,
                            progress.bytes_done,
                            progress.bytes_total
                        ),
                    );
                }
            }
        }
    })
}

/// One live indicatif line per node, cleared when the deploy's events are dropped.
/// Status lines print above them through `multi.suspend` (cleared, printed, redrawn).
struct LiveNodes {
    printer: Printer,
    multi: indicatif::MultiProgress,
    bars: std::sync::Mutex<std::collections::BTreeMap<String, indicatif::ProgressBar>>,
}

impl LiveNodes {
    fn new(printer: Printer) -> LiveNodes {
        LiveNodes {
            printer,
            multi: indicatif::MultiProgress::new(),
            bars: Default::default(),
        }
    }

    /// Shows `what` on `node`'s line (made on first use).
    fn set(&self, node: &str, what: String) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if !bars.contains_key(node) {
            let Some(bar) = self.printer.live_line(node) else {
                return;
            };
            let bar = self.multi.add(bar);
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bars.insert(node.to_string(), bar);
        }
        if let Some(bar) = bars.get(node) {
            bar.set_message(what);
        }
    }
}

impl Drop for LiveNodes {
    fn drop(&mut self) {
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        for bar in bars.values() {
            bar.finish_and_clear();
        }
    }
}

/// `--etc-hosts`: the `/etc/hosts` lines for HOST, its aliases, `prev.HOST` and every kept
/// `N.HOST`, pointing at the app's nodes; `--write` appends the missing ones.
fn etc_hosts(state: &StateFile, args: &UpdateArgs, printer: &Printer) -> Result<()> {
    let config = AppConfig::load(&args.dir)?;
    let hosts = if args.hosts.is_empty() {
        config.hostnames.clone()
    } else {
        args.hosts.clone()
    };
    let Some(main) = routing::main_host(&hosts).map(str::to_string) else {
        return Err(Error::usage(
            "no plain host name to print",
            "add a host name to app.toml or pass `--hostname`",
        ));
    };
    let cluster = state.load()?;
    let app = cluster.apps.get(&main);
    let nodes: Vec<String> = match (&args.nodes, app) {
        (n, _) if !n.is_empty() => n.clone(),
        (_, Some(a)) if !a.nodes.is_empty() => a.nodes.clone(),
        _ => vec![cluster.pick_node(None)?],
    };
    let mut names: Vec<String> = hosts
        .iter()
        .filter(|h| !h.starts_with("*."))
        .cloned()
        .collect();
    names.push(format!("prev.{main}"));
    if let Some(a) = app {
        names.extend(a.versions.iter().map(|v| format!("{}.{main}", v.number)));
    }
    // /etc/hosts can point a name at one address only: the first node.
    let address = cluster.node(&nodes[0])?.address.clone();
    let lines: Vec<String> = names.iter().map(|n| format!("{address} {n}")).collect();
    if !args.write {
        if printer.json() {
            printer.json_value("etc-hosts", &serde_json::json!({ "lines": lines }));
            return Ok(());
        }
        for l in &lines {
            printer.data(l);
        }
        return Ok(());
    }
    let current = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let missing: Vec<&String> = lines
        .iter()
        .filter(|l| {
            !current
                .lines()
                .any(|c| c.split_whitespace().eq(l.split_whitespace()))
        })
        .collect();
    let report = |added: &[&String]| {
        if printer.json() {
            printer.json_value(
                "etc-hosts",
                &serde_json::json!({ "lines": lines, "added": added }),
            );
        }
    };
    if missing.is_empty() {
        printer.status("Fresh", "/etc/hosts already has every line");
        report(&[]);
        return Ok(());
    }
    if !printer.confirm(&format!("add {} lines to /etc/hosts", missing.len()))? {
        return Err(Error::Interrupted);
    }
    let text: String = missing.iter().map(|l| format!("{l}\n")).collect();
    let root = nix::unistd::geteuid().is_root();
    let mut cmd = if root {
        let mut c = std::process::Command::new("tee");
        c.args(["-a", "/etc/hosts"]);
        c
    } else {
        let mut c = std::process::Command::new("sudo");
        c.args(["tee", "-a", "/etc/hosts"]);
        c
    };
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::failed(format!("could not run tee on /etc/hosts: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .map_err(|source| Error::Write {
            path: "/etc/hosts".into(),
            source,
        })?;
    let status = child
        .wait()
        .map_err(|e| Error::failed(format!("tee on /etc/hosts failed: {e}")))?;
    if !status.success() {
        return Err(Error::failed("could not append to /etc/hosts"));
    }
    printer.status("Added", format!("{} lines to /etc/hosts", missing.len()));
    report(&missing);
    Ok(())
}
