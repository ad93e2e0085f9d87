//! The deploy log: one JSON line per `update`, `rollback`, `activate` and `clean`, kept on
//! each node of the app (`/var/lib/skiff/history/APP.jsonl`, append-only) and read back by
//! `skiff history HOST`. The line rides on the run's last step (`finish`, `go` or
//! `abort`), so it costs no round trip; failed runs are logged with their reason.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::remote;
use crate::cluster::StateFile;
use crate::error::{Error, Result};
use crate::transport::ssh::Session;

/// One run, as logged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// RFC 3339 time the run started.
    pub time: String,
    /// Who ran it: the laptop's `user@host pid=...` owner line.
    pub who: String,
    /// `update`, `rollback`, `activate` or `clean`.
    pub verb: String,
    /// The version it made current (or tried to), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The app tree's digest (update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The app folder's git commit, when it is a checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Whether that checkout had uncommitted changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty: Option<bool>,
    /// Seconds the run took.
    pub seconds: f64,
    /// `ok` or `failed`.
    pub result: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A run being logged: what is known at its start.
#[derive(Debug, Clone)]
pub struct Run {
    started: Instant,
    entry: Entry,
}

impl Run {
    /// Starts logging a run of `verb` by `who`.
    pub fn start(verb: &str, who: &str) -> Run {
        Run {
            started: Instant::now(),
            entry: Entry {
                time: super::now_rfc3339(),
                who: who.to_string(),
                verb: verb.to_string(),
                version: None,
                digest: None,
                commit: None,
                dirty: None,
                seconds: 0.0,
                result: String::new(),
                reason: None,
            },
        }
    }

    /// The version the run makes current.
    pub fn version(mut self, n: Option<u32>) -> Run {
        self.entry.version = n;
        self
    }

    /// The app tree's digest and, when `dir` is a git checkout, its commit.
    pub fn tree(mut self, digest: String, dir: &Path) -> Run {
        self.entry.digest = Some(digest);
        if let Some((commit, dirty)) = git_commit(dir) {
            self.entry.commit = Some(commit);
            self.entry.dirty = Some(dirty);
        }
        self
    }

    /// The log line for the run's outcome (one line: JSON escapes newlines).
    pub fn line(&self, outcome: std::result::Result<(), &Error>) -> String {
        let mut e = self.entry.clone();
        e.seconds = (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        match outcome {
            Ok(()) => e.result = "ok".into(),
            Err(err) => {
                e.result = "failed".into();
                let text = err.to_string();
                e.reason = Some(text.lines().next().unwrap_or_default().to_string());
            }
        }
        serde_json::to_string(&e).expect("entry serializes")
    }
}

/// The commit of the git checkout at `dir` and whether it has uncommitted changes; `None`
/// when it is not one or git is missing.
fn git_commit(dir: &Path) -> Option<(String, bool)> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"])?;
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    Some((commit, dirty))
}

/// `skiff history HOST`: the deploy log as the app's first node keeps it, oldest first.
pub async fn history(state: &StateFile, host: &str) -> Result<(String, String, Vec<Entry>)> {
    let cluster = state.load()?;
    let (app, nodes) = super::app_for_host(&cluster, host)?;
    let node = nodes[0].clone();
    let session = Session::for_node(&node, cluster.node(&node)?, state).await?;
    let text = remote::history(&session, &app).await;
    let _ = session.close().await;
    Ok((app, node, entries(&text?)))
}

/// The entries of a node's deploy log (one JSON object a line); unreadable lines are
/// skipped.
pub(crate) fn entries(text: &str) -> Vec<Entry> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_line_with_the_outcome() {
        let run = Run::start("update", "me@laptop pid=1").version(Some(3));
        let ok: Entry = serde_json::from_str(&run.line(Ok(()))).unwrap();
        assert_eq!(ok.result, "ok");
        assert_eq!(ok.version, Some(3));
        assert!(ok.reason.is_none());
        let err = Error::failed("the build failed\nwith detail");
        let line = run.line(Err(&err));
        assert!(!line.contains('\n'));
        let failed: Entry = serde_json::from_str(&line).unwrap();
        assert_eq!(failed.result, "failed");
        assert_eq!(failed.reason.as_deref(), Some("the build failed"));
    }
}
