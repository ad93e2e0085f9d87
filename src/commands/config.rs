//! `skiff config HOST list|get|set|unset`.

use std::collections::BTreeMap;
use std::io::Read;

use crate::cli::ConfigAction;
use crate::cluster::StateFile;
use crate::deploy::config::{self, Change};
use crate::error::{Error, Result};
use crate::printer::Printer;
use crate::transport;

/// Lists (masked unless `--reveal`), gets, sets or unsets the app's variables on every
/// node; a change says that it reaches the app with the next update.
pub fn run(state: &StateFile, host: &str, action: &ConfigAction, printer: &Printer) -> Result<()> {
    match action {
        ConfigAction::List { reveal } => {
            let vars = transport::block_on(config::list(state, host))??;
            let shown: BTreeMap<&String, String> = vars
                .iter()
                .map(|(k, v)| (k, if *reveal { v.clone() } else { mask(v) }))
                .collect();
            if printer.json() {
                printer.json_value(
                    "config-list",
                    &serde_json::json!({ "host": host, "vars": shown }),
                );
            } else if shown.is_empty() {
                printer.status("Config", format!("{host} has no node-side variables"));
            } else {
                for (k, v) in shown {
                    printer.data(format!("{k}={v}"));
                }
            }
        }
        ConfigAction::Get { name } => {
            config::check(name, None)?;
            let vars = transport::block_on(config::list(state, host))??;
            let value = vars.get(name).ok_or_else(|| {
                Error::usage(
                    format!("{host} has no variable `{name}`"),
                    "list them with `skiff config HOST list`",
                )
            })?;
            if printer.json() {
                printer.json_value(
                    "config-get",
                    &serde_json::json!({ "host": host, "name": name, "value": value }),
                );
            } else {
                printer.data(value);
            }
        }
        ConfigAction::Set {
            pairs,
            file,
            no_deploy,
        } => {
            let vars = parse_pairs(pairs, file.as_deref())?;
            let names: Vec<String> = vars.keys().cloned().collect();
            change(state, host, Change::Set(vars), &names, *no_deploy, printer)?;
        }
        ConfigAction::Unset { names, no_deploy } => {
            change(
                state,
                host,
                Change::Unset(names.clone()),
                names,
                *no_deploy,
                printer,
            )?;
        }
    }
    Ok(())
}

/// Stores the change on every node, then (unless `no_deploy`) rolls it out: the current
/// release's files deployed again as a new version, which snapshots the new environment
/// (health check, zero downtime, every node or none; `rollback` goes back).
fn change(
    state: &StateFile,
    host: &str,
    change: Change,
    names: &[String],
    no_deploy: bool,
    printer: &Printer,
) -> Result<()> {
    let verb = match change {
        Change::Set(_) => "Set",
        Change::Unset(_) => "Unset",
    };
    let nodes = transport::block_on(config::apply(state, host, &change))??;
    if no_deploy {
        if printer.json() {
            let kind = match verb {
                "Set" => "config-set",
                _ => "config-unset",
            };
            printer.json_value(
                kind,
                &serde_json::json!({ "host": host, "names": names, "nodes": nodes }),
            );
        } else {
            printer.status(
                verb,
                format!("{} on {}", names.join(", "), nodes.join(", ")),
            );
            printer.status(
                "Note",
                format!("the app gets it with the next `skiff update` of {host}"),
            );
        }
        return Ok(());
    }
    if !printer.json() {
        printer.status(
            verb,
            format!("{} on {}", names.join(", "), nodes.join(", ")),
        );
        printer.status("Deploying", format!("{host}'s current files with it"));
    }
    let (dir, req) = transport::block_on(config::current_tree(state, host))??;
    let result = super::update::deploy_and_report(state, &req, printer);
    drop(dir);
    result
}

/// `NAME=VALUE` pairs, or one `NAME` whose value comes from `file` or stdin (`-` too).
fn parse_pairs(
    pairs: &[String],
    file: Option<&std::path::Path>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let from_input = file.is_some() || pairs.iter().any(|p| p == "-");
    if from_input {
        let names: Vec<&String> = pairs.iter().filter(|p| *p != "-").collect();
        let [name] = names.as_slice() else {
            return Err(Error::usage(
                "a value from --file or stdin goes with exactly one NAME",
                "e.g. `skiff config HOST set TLS_KEY --file key.pem`",
            ));
        };
        let mut value = match file {
            Some(f) => std::fs::read_to_string(f).map_err(|e| {
                Error::usage(
                    format!("cannot read `{}`: {e}", f.display()),
                    "pass a readable text file to --file",
                )
            })?,
            None => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| Error::failed(format!("could not read stdin: {e}")))?;
                s
            }
        };
        if value.ends_with('\n') {
            value.pop();
        }
        config::check(name, Some(&value))?;
        out.insert((*name).clone(), value);
        return Ok(out);
    }
    for p in pairs {
        let (k, v) = p.split_once('=').ok_or_else(|| {
            Error::usage(
                format!("`{p}` is not NAME=VALUE"),
                "write `NAME=VALUE`, or give one NAME with --file or `-` for stdin",
            )
        })?;
        config::check(k, Some(v))?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// A value as `list` shows it without `--reveal`.
fn mask(value: &str) -> String {
    if value.is_empty() {
        String::new()
    } else {
        "****".into()
    }
}
