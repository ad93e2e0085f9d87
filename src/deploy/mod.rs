//! Releases on nodes: `update`, `rollback`/`activate`, `clean`, `destroy-app` and
//! `versions`, one file each (and `backup` for `backup` and `restore`), over what they share here (the event stream, the lock
//! owner's targets, recording into cluster.toml) and in `locks` (the app's and the
//! node's locks, signals, abort), `remote` (one typed call per node.sh step), `contract`
//! (the node's paths, ports and exit codes), `pool` and `deps`.
//!
//! The order of an update on every node (docs/architecture.md has the whole flow):
//!
//! 1. take the app's lock and read the node state (`begin`);
//! 2. delta-sync release N, cloned from current;
//! 3. env snapshot, packages, venv, bundle, vendor, build commands (`prepare`), then
//!    the node lock, under which the state is read again;
//! 4. load N into an idle daemon slot, warm it, health-check it through NGINX by its
//!    backend name (`trial`);
//! 5. only when every node passed: flip HOST to N and `prev.HOST` to the old current,
//!    record the state (`switch`), then idle freed slots, prune, unlock (`finish`). One
//!    node: 4 and 5 are one round trip (`go`).
//!
//! Anything that fails (or a signal) before 5 undoes this run's work on every node
//! (`abort`): the live version keeps serving and nothing is left to clean by hand.

mod activate;
pub mod backup;
mod clean;
pub mod config;
pub mod contract;
pub mod deps;
mod destroy;
pub mod diff;
pub mod env_file;
pub mod history;
mod locks;
pub mod pool;
pub mod remote;
pub mod status;
pub mod tls;
mod update;
mod versions;

pub use activate::activate;
pub use clean::clean;
pub use destroy::{DestroyReport, destroy_app};
pub use update::{NodeReport, UpdateReport, UpdateRequest, update};
pub use versions::{VersionRow, VersionsReport, versions};

use locks::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::Digest;

use crate::app_config::{AppConfig, Runtime};
use crate::cluster::{AppState, StateFile, Version};
use crate::error::{Error, Result};
use crate::node_state::{NodeApp, NodeState, Release, ReleaseHealth, SlotKind, SlotUse};
use crate::routing;
use crate::sync::{self, Releases, SyncSummary};
use crate::transport::ssh::Session;

use remote::{Begun, NodeView, PhaseTimes};

/// How long a deploy waits for another deploy of the same app on a node
/// (`SKIFF_LOCK_TIMEOUT`, in seconds, overrides it).
pub const LOCK_WAIT: Duration = Duration::from_secs(120);

fn lock_wait() -> Duration {
    std::env::var("SKIFF_LOCK_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(LOCK_WAIT)
}

/// NGINX's loopback-only check port (see [`contract::CHECK_PORT`]).
pub const CHECK_PORT: u16 = contract::CHECK_PORT;

/// Releases kept per app unless app.toml says otherwise.
pub const DEFAULT_KEEP: u32 = 5;

/// Processes per Python slot (setup-node's `processes=2`) and Ruby slot
/// (`PassengerMinInstances 2`): warming waits until this many answer the new release.
pub const SLOT_PROCESSES: u32 = 2;

/// Something a deploy reports while it runs; the command renders it.
#[derive(Debug, Clone)]
pub enum Event {
    /// A phase finished on a node.
    Phase {
        /// Node name.
        node: String,
        /// Phase name.
        phase: String,
        /// Seconds it took.
        seconds: f64,
    },
    /// Waiting for another deploy's lock.
    Waiting {
        /// Node name.
        node: String,
        /// Who holds it.
        holder: String,
    },
    /// A notice worth showing (stale lock broken, venv reused...).
    Note {
        /// Node name.
        node: String,
        /// The notice.
        message: String,
    },
    /// A step began on a node (`sync`, `build`, `lock`, `trial`, `switch`, `finish`):
    /// what a live per-node line shows.
    Step {
        /// Node name.
        node: String,
        /// The step.
        step: &'static str,
    },
    /// Sync progress on a node.
    Progress {
        /// Node name.
        node: String,
        /// Bytes/files so far.
        progress: sync::Progress,
    },
}

/// The event callback.
pub type EventFn = Arc<dyn Fn(Event) + Send + Sync>;

/// One node being deployed to: its session and what `begin` read under the app's lock.
struct Target {
    name: String,
    session: Session,
    begun: Begun,
    /// Laptop-side seconds: opening the SSH session, and the `begin` round trip that
    /// took the lock (phases `connect` and `lock` of the report).
    connect_seconds: f64,
    lock_seconds: f64,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The node of an app that does what one node does alone: runs its cron timers, holds
/// its services (unless app.toml places them) and runs its release command. The first by
/// name, so every verb picks the same one.
pub(super) fn duty_node<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().min().unwrap_or_default().to_string()
}

/// The one `prev` every node gets when a switch makes `n` current on several nodes:
/// their old current when they all agree (the normal case). When a dead run left them
/// disagreeing (killed between two nodes' switches), the version cluster.toml records as
/// current if every node keeps it, else the newest old current every node keeps, else
/// none: a `prev` that differs between nodes would send `prev.HOST` and `rollback` to
/// different versions.
pub(super) fn agreed_prev(
    olds: &[Option<u32>],
    kept_everywhere: &std::collections::BTreeSet<u32>,
    recorded: Option<u32>,
    n: u32,
) -> Option<u32> {
    let olds: Vec<Option<u32>> = olds.iter().map(|o| o.filter(|v| *v != n)).collect();
    if olds.windows(2).all(|w| w[0] == w[1]) {
        return olds.first().copied().flatten();
    }
    let everywhere = |v: &u32| kept_everywhere.contains(v);
    recorded
        .filter(|r| *r != n && everywhere(r) && olds.contains(&Some(*r)))
        .or_else(|| olds.iter().flatten().copied().filter(everywhere).max())
}

/// The releases of `app` that every one of these node states keeps.
pub(super) fn kept_everywhere<'a>(
    states: impl IntoIterator<Item = &'a NodeState>,
    app: &str,
) -> std::collections::BTreeSet<u32> {
    let mut all: Option<std::collections::BTreeSet<u32>> = None;
    for st in states {
        let mine: std::collections::BTreeSet<u32> = st
            .apps
            .get(app)
            .map(|a| a.releases.iter().map(|r| r.number).collect())
            .unwrap_or_default();
        all = Some(match all {
            None => mine,
            Some(a) => a.intersection(&mine).copied().collect(),
        });
    }
    all.unwrap_or_default()
}

/// The slot kind and pool for `runtime` on a node, if it needs one.
pub(super) fn pool_for(begun: &Begun, runtime: Runtime) -> Option<(SlotKind, &[String])> {
    SlotKind::of(runtime).map(|k| match k {
        SlotKind::Python => (k, begun.python_slots.as_slice()),
        SlotKind::Ruby => (k, begun.ruby_slots.as_slice()),
    })
}

/// Says (as a note) that this run waits for another skiff's lock on cluster.toml.
fn waiting_note(events: &EventFn) -> impl FnMut(&Path) + '_ {
    move |p| {
        events(Event::Note {
            node: String::new(),
            message: format!("waiting for another skiff to release `{}`", p.display()),
        })
    }
}

/// Tells the command that `node` began `what` (its live line shows it).
fn step(events: &EventFn, node: &str, what: &'static str) {
    events(Event::Step {
        node: node.to_string(),
        step: what,
    });
}

/// Writes the deploy into cluster.toml: the app's versions, current and prev, as the
/// first node reports them (nodes are switched together).
pub(super) fn record(
    state: &StateFile,
    app: &str,
    main: &str,
    finals: &[(String, NodeState)],
    services: Option<BTreeMap<String, crate::cluster::ServiceRecord>>,
    events: &EventFn,
) -> Result<()> {
    let Some((_, first)) = finals.first() else {
        return Ok(());
    };
    let Some(node_app) = first.apps.get(app) else {
        return Ok(());
    };
    state.update(&mut waiting_note(events), |cluster| {
        let entry = cluster
            .apps
            .entry(main.to_string())
            .or_insert_with(|| AppState {
                name: app.to_string(),
                ..Default::default()
            });
        entry.name = app.to_string();
        for (node, _) in finals {
            if !entry.nodes.contains(node) && cluster.nodes.contains_key(node) {
                entry.nodes.push(node.clone());
            }
        }
        entry.versions = node_app
            .releases
            .iter()
            .map(|r| Version {
                number: r.number,
                time: r.time.clone(),
                digest: r.digest.clone(),
            })
            .collect();
        entry.current = node_app.current;
        entry.prev = node_app.prev;
        if let Some(services) = services {
            entry.services = services;
        }
        Ok(())
    })
}

/// Which version `activate` should make current.
#[derive(Debug, Clone, Copy)]
pub enum Choice {
    /// `prev.HOST` (rollback).
    Prev,
    /// A kept version number.
    Version(u32),
}

/// The result of `rollback`, `activate` or `clean` (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct SwitchReport {
    /// App name.
    pub app: String,
    /// The main host.
    pub host: String,
    /// Current version afterwards.
    pub current: Option<u32>,
    /// Previous version afterwards.
    pub prev: Option<u32>,
    /// Releases removed (clean).
    pub removed: Vec<u32>,
    /// Nodes switched.
    pub nodes: Vec<String>,
}

/// The app name and nodes of `host` from cluster.toml.
pub fn app_for_host(
    cluster: &crate::cluster::Cluster,
    host: &str,
) -> Result<(String, Vec<String>)> {
    let app = cluster.apps.get(host).ok_or_else(|| Error::Usage {
        message: format!("no app is deployed at `{host}` (according to the cluster state)"),
        hint: Some(if cluster.apps.is_empty() {
            "deploy one with `skiff update DIR`".to_string()
        } else {
            format!(
                "known hosts: {}",
                cluster.apps.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        }),
    })?;
    if app.nodes.is_empty() {
        return Err(Error::usage(
            format!("`{host}` is not deployed to any node"),
            "deploy it with `skiff update DIR`",
        ));
    }
    Ok((app.name.clone(), app.nodes.clone()))
}

#[cfg(test)]
mod agreement_tests {
    use super::agreed_prev;

    #[test]
    fn every_node_gets_one_prev() {
        let kept = |v: &[u32]| v.iter().copied().collect();
        // the usual case: they agree
        assert_eq!(
            agreed_prev(&[Some(4), Some(4)], &kept(&[3, 4, 5]), Some(4), 5),
            Some(4)
        );
        assert_eq!(agreed_prev(&[None, None], &kept(&[1]), None, 1), None);
        // a dead run switched the first node only: cluster.toml's current, kept on both
        assert_eq!(
            agreed_prev(&[Some(11), Some(10)], &kept(&[10, 12]), Some(10), 12),
            Some(10)
        );
        // nothing recorded: the newest old current every node keeps
        assert_eq!(
            agreed_prev(&[Some(11), Some(10)], &kept(&[10, 11, 12]), None, 12),
            Some(11)
        );
        assert_eq!(
            agreed_prev(&[Some(11), Some(10)], &kept(&[12]), Some(10), 12),
            None
        );
        // activating a node's own current leaves that node nothing to step back from
        assert_eq!(
            agreed_prev(&[Some(5), Some(5)], &kept(&[4, 5]), Some(5), 5),
            None
        );
    }
}
