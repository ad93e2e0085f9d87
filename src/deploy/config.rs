//! `skiff config HOST list|get|set|unset`: the app's node-side environment
//! (`/etc/skiff/env/APP.env` on every node of the app, 0600, never in cluster.toml). It
//! reaches the app with the next release: every release snapshots it (`env/N.env`), so a
//! rollback also brings back the environment the previous version ran with.

use std::collections::BTreeMap;

use super::remote;
use crate::cluster::StateFile;
use crate::error::{Error, Result};
use crate::transport::ssh::Session;

/// A change to make.
#[derive(Debug, Clone)]
pub enum Change {
    /// Set these names to these values.
    Set(BTreeMap<String, String>),
    /// Remove these names.
    Unset(Vec<String>),
}

/// Checks a name and value for the env file: the name by grammar, the value on one line
/// (the file holds `KEY=VALUE` lines: a newline would smuggle in another variable).
pub fn check(name: &str, value: Option<&str>) -> Result<()> {
    crate::names::check_env_name(name).map_err(|e| {
        Error::usage(
            format!("invalid variable name `{name}`: {e}"),
            "use letters, digits and `_`, not starting with a digit, e.g. `API_TOKEN`",
        )
    })?;
    if let Some(v) = value
        && let Some(bad) = v.chars().find(|c| *c == '\n' || *c == '\r' || *c == '\0')
    {
        return Err(Error::usage(
            format!("the value of `{name}` contains {bad:?}; values are one line"),
            "put multi-line data in a file the app reads, or encode it (base64)",
        ));
    }
    Ok(())
}

/// The app's variables as its first node keeps them (`KEY=VALUE` lines parsed).
pub async fn list(state: &StateFile, host: &str) -> Result<BTreeMap<String, String>> {
    let cluster = state.load()?;
    let (app, nodes) = super::app_for_host(&cluster, host)?;
    let node = &nodes[0];
    let session = Session::for_node(node, cluster.node(node)?, state).await?;
    let text = remote::config(&session, &app, "list", "").await;
    let _ = session.close().await;
    Ok(text?
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// Applies `change` on every node of HOST's app; the nodes it was applied on.
pub async fn apply(state: &StateFile, host: &str, change: &Change) -> Result<Vec<String>> {
    let cluster = state.load()?;
    let (app, nodes) = super::app_for_host(&cluster, host)?;
    let (op, lines) = match change {
        Change::Set(vars) => {
            for (k, v) in vars {
                check(k, Some(v))?;
            }
            let lines: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            ("set", lines)
        }
        Change::Unset(keys) => {
            for k in keys {
                check(k, None)?;
            }
            ("unset", keys.iter().map(|k| format!("{k}\n")).collect())
        }
    };
    let mut done = Vec::new();
    for node in &nodes {
        let session = Session::for_node(node, cluster.node(node)?, state).await?;
        let r = remote::config(&session, &app, op, &lines).await;
        let _ = session.close().await;
        r.map_err(|e| match done.is_empty() {
            true => e,
            false => Error::Failed {
                message: format!("{e} (already changed on {})", done.join(", ")),
                hint: Some("run the same `skiff config` command again: it is idempotent".into()),
            },
        })?;
        done.push(node.clone());
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_by_grammar_and_values_on_one_line() {
        assert!(check("API_TOKEN", Some("a \"quoted\" $(id) = ünï")).is_ok());
        assert!(check("1BAD", Some("x")).is_err());
        assert!(check("BAD-NAME", None).is_err());
        let e = check("MULTI", Some("a\nb")).unwrap_err().to_string();
        assert!(e.contains("MULTI"), "{e}");
    }
}
