//! `skiff diff DIR`: what `update` would change on a node, changing nothing: the files
//! (the same manifest comparison the sync makes, against the node's current release; a
//! unified diff for small text files), the environment (`[env]` names), the `[packages]`
//! and the app.toml sections that move with a release. Two round trips, no lock, no upload.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use super::remote;
use crate::app_config::AppConfig;
use crate::cluster::StateFile;
use crate::error::{Error, Result};
use crate::sync::manifest::{Kind, Manifest};
use crate::transport::ssh::Session;

/// Files at most this big (on both sides) get a unified diff.
const DIFF_LIMIT: u64 = 64 * 1024;
/// At most this many files get one.
const MAX_DIFFS: usize = 20;

/// One changed path.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileChange {
    /// `added`, `changed` or `removed`.
    pub change: String,
    /// Path inside the app folder.
    pub path: String,
    /// A unified diff, for small text files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// What `update` would change.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// App name.
    pub app: String,
    /// Node compared against.
    pub node: String,
    /// Its current version (`None`: the app is not there yet, everything is new).
    pub current: Option<u32>,
    /// Files added, changed, removed.
    pub files: Vec<FileChange>,
    /// `[env]` names added, changed or removed (values never shown).
    pub env: Vec<String>,
    /// `[packages] apt` names to install.
    pub packages: Vec<String>,
}

impl DiffReport {
    /// Whether `update` would ship nothing new.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.env.is_empty() && self.packages.is_empty()
    }
}

/// Compares the app folder `dir` with its current release on `node` (default: the first
/// node of its main host in cluster.toml, else the default node).
pub async fn diff(state: &StateFile, dir: PathBuf, node: Option<String>) -> Result<DiffReport> {
    let config = AppConfig::load(&dir)?;
    let app = config.name.clone();
    let cluster = state.load()?;
    let node = match node {
        Some(n) => n,
        None => match config
            .main_host()
            .and_then(|h| cluster.apps.get(h))
            .and_then(|a| a.nodes.first())
        {
            Some(n) => n.clone(),
            None => cluster.pick_node(None)?,
        },
    };
    let scan_dir = dir.clone();
    let local = tokio::task::spawn_blocking(move || {
        crate::sync::scan::scan(&scan_dir, &Default::default())
    })
    .await
    .map_err(|e| Error::failed(format!("scanning the app folder failed: {e}")))??;

    let session = Session::for_node(&node, cluster.node(&node)?, state).await?;
    let result = compare(&session, &config, &local).await;
    let _ = session.close().await;
    let (current, files, env, packages) = result?;
    Ok(DiffReport {
        app,
        node,
        current,
        files,
        env,
        packages,
    })
}

type Compared = (Option<u32>, Vec<FileChange>, Vec<String>, Vec<String>);

async fn compare(session: &Session, config: &AppConfig, local: &Manifest) -> Result<Compared> {
    let app = &config.name;
    let (state, release) = remote::current_release(session, app).await?;
    let current = state.apps.get(app).and_then(|a| a.current);
    let Some(release) = release else {
        // not deployed there yet: everything is new
        let files = local
            .entries
            .keys()
            .map(|p| FileChange {
                change: "added".into(),
                path: p.clone(),
                diff: None,
            })
            .collect();
        let env = config.env.keys().map(|k| format!("+{k}")).collect();
        return Ok((None, files, env, config.packages.apt.clone()));
    };
    let remote_manifest = Manifest::parse(&release.manifest, "the node's current release")?;
    let mut files = changes(&remote_manifest, local);

    // unified diffs of small text files
    let wanted: Vec<String> = files
        .iter()
        .filter(|c| c.change == "changed")
        .filter(|c| small_file(&remote_manifest, &c.path) && small_file(local, &c.path))
        .take(MAX_DIFFS)
        .map(|c| c.path.clone())
        .collect();
    if !wanted.is_empty() {
        let theirs = remote::release_files(session, app, release.number, &wanted).await?;
        for change in files.iter_mut() {
            let Some(old) = theirs.get(&change.path) else {
                continue;
            };
            let Ok(new) = std::fs::read(crate::sync::manifest::local_path(
                local.root.as_deref().unwrap_or(std::path::Path::new(".")),
                &change.path,
            )) else {
                continue;
            };
            if let (Ok(old), Ok(new)) = (std::str::from_utf8(old), std::str::from_utf8(&new)) {
                change.diff = Some(
                    similar::TextDiff::from_lines(old, new)
                        .unified_diff()
                        .context_radius(3)
                        .header(&format!("a/{}", change.path), &format!("b/{}", change.path))
                        .to_string(),
                );
            }
        }
    }

    // [env] by name: the node's meta has the release's plain environment
    let theirs: BTreeMap<String, String> = serde_json::from_str::<serde_json::Value>(&release.meta)
        .ok()
        .and_then(|m| m.get("env").cloned())
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default();
    let theirs: BTreeMap<&String, &String> = theirs
        .iter()
        .filter(|(k, _)| !k.starts_with("SKIFF_"))
        .collect();
    let mine: BTreeMap<&String, &String> = config.env.iter().collect();
    let names: BTreeSet<&&String> = theirs.keys().chain(mine.keys()).collect();
    let env = names
        .into_iter()
        .filter_map(|k| match (theirs.get(*k), mine.get(*k)) {
            (None, Some(_)) => Some(format!("+{k}")),
            (Some(_), None) => Some(format!("-{k}")),
            (Some(a), Some(b)) if a != b => Some(format!("~{k}")),
            _ => None,
        })
        .collect();
    let installed: BTreeSet<&String> = state
        .apps
        .get(app)
        .map(|a| a.packages.iter().collect())
        .unwrap_or_default();
    let packages = config
        .packages
        .apt
        .iter()
        .filter(|p| !installed.contains(p))
        .cloned()
        .collect();
    Ok((current, files, env, packages))
}

fn small_file(m: &Manifest, path: &str) -> bool {
    m.entries
        .get(path)
        .is_some_and(|e| matches!(e.kind, Kind::File { .. }) && e.size <= DIFF_LIMIT)
}

/// Paths added, changed (content, mode or kind) and removed from `old` to `new`, sorted.
pub fn changes(old: &Manifest, new: &Manifest) -> Vec<FileChange> {
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = old.entries.keys().chain(new.entries.keys()).collect();
    for path in paths {
        let change = match (old.entries.get(path), new.entries.get(path)) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (Some(a), Some(b)) if a != b => "changed",
            _ => continue,
        };
        out.push(FileChange {
            change: change.into(),
            path: path.clone(),
            diff: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::manifest::Entry;

    fn file(byte: u8) -> Entry {
        Entry {
            kind: Kind::File {
                exec: false,
                sha256: [byte; 32],
            },
            size: 1,
        }
    }

    #[test]
    fn changes_are_added_changed_and_removed_in_path_order() {
        let mut old = Manifest::default();
        let mut new = Manifest::default();
        old.entries.insert("a.py".into(), file(1));
        old.entries.insert("gone.txt".into(), file(2));
        old.entries.insert("same.txt".into(), file(3));
        new.entries.insert("a.py".into(), file(9));
        new.entries.insert("same.txt".into(), file(3));
        new.entries.insert("new.txt".into(), file(4));
        let got: Vec<(String, String)> = changes(&old, &new)
            .into_iter()
            .map(|c| (c.change, c.path))
            .collect();
        assert_eq!(
            got,
            [
                ("changed".to_string(), "a.py".to_string()),
                ("removed".to_string(), "gone.txt".to_string()),
                ("added".to_string(), "new.txt".to_string()),
            ]
        );
    }
}
