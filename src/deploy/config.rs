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

/// Checks a name and value for the env file: the name by grammar; the value may hold any
/// text (`env_file` escapes newlines) but no NUL, which no process environment can hold.
pub fn check(name: &str, value: Option<&str>) -> Result<()> {
    crate::names::check_env_name(name).map_err(|e| {
        Error::usage(
            format!("invalid variable name `{name}`: {e}"),
            "use letters, digits and `_`, not starting with a digit, e.g. `API_TOKEN`",
        )
    })?;
    if value.is_some_and(|v| v.contains('\0')) {
        return Err(Error::usage(
            format!(
                "the value of `{name}` contains a NUL byte, which no environment variable can hold"
            ),
            "encode binary data (base64) or put it in a file the app reads",
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
    Ok(super::env_file::parse(&text?).into_iter().collect())
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
            ("set", super::env_file::lines(vars))
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
        crate::failpoint::hit("config:applied", Some(node))?;
    }
    Ok(done)
}

/// HOST's current release as an app folder on this machine, to deploy again with a changed
/// environment: the node's tree of the release (tar over the session), keeping exactly
/// the paths its manifest lists (not what build commands made), with the hosts and nodes
/// it runs on. Dropping the returned folder removes it.
pub async fn current_tree(
    state: &StateFile,
    host: &str,
) -> Result<(tempfile::TempDir, super::UpdateRequest)> {
    let cluster = state.load()?;
    let (app, nodes) = super::app_for_host(&cluster, host)?;
    let node = &nodes[0];
    let session = Session::for_node(node, cluster.node(node)?, state).await?;
    let fetched = fetch_release(&session, &app).await;
    let _ = session.close().await;
    let (archive, manifest, hosts) = fetched?;
    let dir = tempfile::Builder::new()
        .prefix("skiff-config.")
        .tempdir()
        .map_err(|e| Error::failed(format!("could not make a temp folder: {e}")))?;
    let root = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || unpack(&archive, &root, &manifest))
        .await
        .map_err(|e| Error::failed(format!("unpacking the release failed: {e}")))??;
    let req = super::UpdateRequest {
        dir: dir.path().to_path_buf(),
        hosts,
        nodes,
    };
    Ok((dir, req))
}

type Fetched = (Vec<u8>, crate::sync::manifest::Manifest, Vec<String>);

async fn fetch_release(session: &Session, app: &str) -> Result<Fetched> {
    let (state, release) = remote::live_release(session, app).await?;
    let manifest =
        crate::sync::manifest::Manifest::parse(&release.manifest, "the node's current release")?;
    let hosts = state
        .apps
        .get(app)
        .map(|a| a.hostnames.clone())
        .unwrap_or_default();
    let dir = super::contract::release_dir(app, release.number);
    let mut archive = Vec::new();
    let out = session
        .run_to_writer(&["tar", "-C", &dir, "-cf", "-", "."], &mut archive)
        .await?;
    if out.status != Some(0) {
        return Err(Error::failed(format!(
            "could not read release {} of `{app}` on node `{}`: {}",
            release.number,
            session.node(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok((archive, manifest, hosts))
}

/// Unpacks `archive` into `root`, keeping only the manifest's paths.
fn unpack(
    archive: &[u8],
    root: &std::path::Path,
    manifest: &crate::sync::manifest::Manifest,
) -> Result<()> {
    let fail = |e: std::io::Error| Error::failed(format!("unpacking the release failed: {e}"));
    let mut tar = tar::Archive::new(archive);
    tar.set_preserve_permissions(true);
    for entry in tar.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        let path = entry.path().map_err(fail)?.into_owned();
        let rel = path
            .strip_prefix(".")
            .unwrap_or(&path)
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        if rel.is_empty() || !manifest.entries.contains_key(&rel) {
            continue;
        }
        entry.unpack_in(root).map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_by_grammar_and_values_of_any_text_but_nul() {
        assert!(check("API_TOKEN", Some("a \"quoted\" $(id) = ünï")).is_ok());
        assert!(check("MULTI", Some("a\nb\r\n")).is_ok());
        assert!(check("1BAD", Some("x")).is_err());
        assert!(check("BAD-NAME", None).is_err());
        let e = check("NUL", Some("a\0b")).unwrap_err().to_string();
        assert!(e.contains("NUL"), "{e}");
    }
}
