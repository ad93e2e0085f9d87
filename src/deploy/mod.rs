//! `skiff update`, `rollback`, `activate`, `versions` and `clean`: releases, routing,
//! version hosts and rollback.
//!
//! The order of an update on every node (see docs/architecture.md):
//!
//! 1. lock and read the node state (`begin`);
//! 2. delta-sync release N, cloned from current;
//! 3. env snapshot, venv, build commands (`prepare`);
//! 4. load N into an idle daemon slot, warm it, route `N.HOST`, health-check it through
//!    NGINX (`trial`; 3 and 4 are one round trip, `ready`);
//! 5. only when every node passed: flip HOST to N and `prev.HOST` to the old current,
//!    record the state, prune (`switch`).
//!
//! Anything that fails (or Ctrl-C) before 5 undoes its own work (`abort`): the live
//! version keeps serving and nothing is left to clean by hand.

pub mod contract;
pub mod deps;
pub mod pool;
pub mod remote;

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

/// What `skiff update` was asked to do.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    /// The app folder.
    pub dir: PathBuf,
    /// Host names (empty: app.toml's).
    pub hosts: Vec<String>,
    /// Nodes (empty: the default node).
    pub nodes: Vec<String>,
}

/// Per-node result of an update.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// Node name.
    pub node: String,
    /// Daemon slot the release runs in, if any.
    pub slot: Option<String>,
    /// Seconds per phase.
    pub phases: BTreeMap<String, f64>,
    /// The sync summary.
    pub sync: SyncSummary,
    /// Releases removed by pruning.
    pub pruned: Vec<u32>,
}

/// The result of an update (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct UpdateReport {
    /// App name.
    pub app: String,
    /// The new version.
    pub version: u32,
    /// The version it replaced.
    pub previous: Option<u32>,
    /// Per node.
    pub nodes: Vec<NodeReport>,
    /// URLs: HOST, `N.HOST`, `prev.HOST`.
    pub urls: Vec<String>,
    /// Seconds from start until HOST served the new version on every node.
    pub served_after: f64,
    /// Seconds in all.
    pub seconds: f64,
}

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

/// This run's lock owner line: who (`user@host`), which process, which app, since when.
/// The node compares it byte for byte to know which locks a step's caller holds.
fn owner_line(app: &str) -> String {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into());
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{user}@{host} pid={} app={app} since={} epoch={}.{:09}",
        std::process::id(),
        now_rfc3339(),
        now.as_secs(),
        now.subsec_nanos()
    )
}

/// This run's token for release `n`: `N-NONCE`. A slot's loader answers with it, so a
/// process loaded by an interrupted run of the same N never passes for this one.
fn new_token(n: u32) -> String {
    let mut h = sha2::Sha256::new();
    h.update(owner_line("").as_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(format!("{:?}", Instant::now()).as_bytes());
    format!("{n}-{}", &hex::encode(h.finalize())[..16])
}

/// Whether a lock owner line names a skiff process on this machine that no longer runs:
/// such a lock is certainly stale and may be broken (with a notice).
fn owner_is_dead_here(owner: &str) -> bool {
    let Ok(host) = nix::unistd::gethostname() else {
        return false;
    };
    let host = host.to_string_lossy();
    let Some(who) = owner.split_whitespace().next() else {
        return false;
    };
    if who.rsplit_once('@').map(|(_, h)| h) != Some(&*host) {
        return false;
    }
    let Some(pid) = owner
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return false;
    };
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP, caught from the start of a command: any of them
/// gets the same clean abort (a signal that arrives while locks are taken is acted on as
/// soon as the run can undo its work).
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let catch =
            |kind| signal(kind).map_err(|e| Error::failed(format!("could not catch signals: {e}")));
        Ok(Signals {
            int: catch(SignalKind::interrupt())?,
            term: catch(SignalKind::terminate())?,
            hup: catch(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// Waits for a lock on `node` (`what` names it in messages): `attempt(break)` tries once.
/// A lock left by a dead skiff on this machine is broken with a notice (the node stops
/// its dead run's processes); any other holder is named and waited for, up to
/// [`LOCK_WAIT`].
async fn wait_for_lock<T, F, Fut>(
    node: &str,
    what: &str,
    path: &str,
    events: &EventFn,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Result<remote::Lock<T>>>,
{
    let start = Instant::now();
    let mut told = false;
    let mut break_lock = false;
    loop {
        match attempt(break_lock).await? {
            remote::Lock::Taken(t) => return Ok(t),
            remote::Lock::Held(holder) => {
                if !break_lock && owner_is_dead_here(&holder) {
                    events(Event::Note {
                        node: node.to_string(),
                        message: format!(
                            "breaking a stale {what} left by a skiff that is no longer running ({holder}); its leftovers are removed"
                        ),
                    });
                    break_lock = true;
                    continue;
                }
                break_lock = false;
                if !told {
                    events(Event::Waiting {
                        node: node.to_string(),
                        holder: holder.clone(),
                    });
                    told = true;
                }
                if start.elapsed() >= lock_wait() {
                    return Err(Error::Failed {
                        message: format!(
                            "another skiff holds the {what} on node `{node}` (gave up after {} s): {holder}",
                            lock_wait().as_secs()
                        ),
                        hint: Some(format!(
                            "wait for it to finish (SKIFF_LOCK_TIMEOUT=SECONDS waits longer); if that skiff is gone, remove {path} on the node"
                        )),
                    });
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Connects to every node (in parallel) and takes `app`'s deploy lock on each. Locks
/// are tried on all nodes at once; if one is held, those taken are given back and all
/// are taken one by one in node-name order, so two runs never wait for each other.
/// On any failure the locks already taken are released.
async fn lock_all(
    state: &StateFile,
    cluster: &crate::cluster::Cluster,
    nodes: &[String],
    app: &str,
    owner: &str,
    events: &EventFn,
) -> Result<Vec<Target>> {
    let sessions = futures_util::future::join_all(nodes.iter().map(|n| async move {
        let info = cluster.node(n)?;
        let connecting = Instant::now();
        let session = Session::for_node(n, info, state).await?;
        Ok::<_, Error>((n.clone(), session, connecting.elapsed().as_secs_f64()))
    }))
    .await;
    let mut connected = Vec::new();
    let mut first_err = None;
    for r in sessions {
        match r {
            Ok(c) => connected.push(c),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        for (_, s, _) in connected {
            let _ = s.close().await;
        }
        return Err(e);
    }
    // one attempt everywhere at once
    let firsts = futures_util::future::join_all(connected.iter().map(|(_, s, _)| async move {
        let t = Instant::now();
        (
            remote::begin(s, app, owner, false).await,
            t.elapsed().as_secs_f64(),
        )
    }))
    .await;
    let mut begun: Vec<Option<(Begun, f64)>> = Vec::new();
    let mut first_err = None;
    for (r, secs) in firsts {
        match r {
            Ok(remote::Lock::Taken(b)) => begun.push(Some((*b, secs))),
            Ok(remote::Lock::Held(_)) => begun.push(None),
            Err(e) => {
                first_err.get_or_insert(e);
                begun.push(None);
            }
        }
    }
    let all_taken = begun.iter().all(Option::is_some);
    if first_err.is_some() || !all_taken {
        for ((_, s, _), b) in connected.iter().zip(&begun) {
            if b.is_some() {
                let _ = remote::unlock(s, app, owner).await;
            }
        }
    }
    if let Some(e) = first_err {
        for (_, s, _) in connected {
            let _ = s.close().await;
        }
        return Err(e);
    }
    if !all_taken {
        begun = connected.iter().map(|_| None).collect();
        let mut order: Vec<usize> = (0..connected.len()).collect();
        order.sort_by(|a, b| connected[*a].0.cmp(&connected[*b].0));
        for i in order {
            let (name, session, _) = &connected[i];
            let t = Instant::now();
            let path = contract::app_lock(app);
            let got = wait_for_lock(
                name,
                &format!("deploy lock of `{app}`"),
                &path,
                events,
                |brk| remote::begin(session, app, owner, brk),
            )
            .await;
            match got {
                Ok(b) => begun[i] = Some((*b, t.elapsed().as_secs_f64())),
                Err(e) => {
                    for (c, b) in connected.iter().zip(&begun) {
                        if b.is_some() {
                            let _ = remote::unlock(&c.1, app, owner).await;
                        }
                    }
                    for (_, s, _) in connected {
                        let _ = s.close().await;
                    }
                    return Err(e);
                }
            }
        }
    }
    Ok(connected
        .into_iter()
        .zip(begun)
        .map(|((name, session, connect_seconds), b)| {
            let (begun, lock_seconds) = b.expect("every lock taken");
            Target {
                name,
                session,
                begun,
                connect_seconds,
                lock_seconds,
            }
        })
        .collect())
}

/// Takes the node lock of every target: `got[i]` is what an earlier attempt (in
/// `prepare`'s round trip) already took. If any node's lock was held, the ones taken are
/// given back and all are taken one by one in node-name order (no two runs can wait for
/// each other). Returns the truth read under each lock.
async fn lock_nodes(
    targets: &[Target],
    app: &str,
    owner: &str,
    events: &EventFn,
    got: Vec<Option<NodeView>>,
) -> Result<Vec<NodeView>> {
    if got.iter().all(Option::is_some) {
        return Ok(got.into_iter().map(|v| v.expect("checked")).collect());
    }
    for (t, g) in targets.iter().zip(&got) {
        if g.is_some() {
            remote::node_unlock(&t.session, app, owner).await?;
        }
    }
    let mut views: Vec<Option<NodeView>> = targets.iter().map(|_| None).collect();
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by(|a, b| targets[*a].name.cmp(&targets[*b].name));
    for i in order {
        let t = &targets[i];
        views[i] = Some(
            wait_for_lock(&t.name, "node lock", contract::NODE_LOCK, events, |brk| {
                remote::node_lock(&t.session, app, owner, brk)
            })
            .await?,
        );
    }
    Ok(views.into_iter().map(|v| v.expect("taken")).collect())
}

/// Both locks on every node at once (app's, then node's), for the verbs that change
/// shared state from the start (`rollback`, `activate`, `clean`, `destroy-app`); on
/// failure nothing stays locked.
async fn lock_everything(
    state: &StateFile,
    cluster: &crate::cluster::Cluster,
    nodes: &[String],
    app: &str,
    owner: &str,
    events: &EventFn,
) -> Result<(Vec<Target>, Vec<NodeView>)> {
    let targets = lock_all(state, cluster, nodes, app, owner, events).await?;
    match lock_nodes(&targets, app, owner, events, vec![None; targets.len()]).await {
        Ok(views) => Ok((targets, views)),
        Err(e) => Err(release_all(targets, app, owner, e).await),
    }
}

/// The hosts to deploy: `--host`s (validated) or app.toml's.
fn hosts_for(config: &AppConfig, requested: &[String]) -> Result<Vec<String>> {
    let hosts = if requested.is_empty() {
        config.hostnames.clone()
    } else {
        for h in requested {
            crate::names::check_hostname(h).map_err(|e| {
                Error::usage(
                    format!("invalid `--host`: {e}"),
                    "pass a host name like `blog.example.com`",
                )
            })?;
        }
        requested.to_vec()
    };
    if hosts.is_empty() {
        return Err(Error::usage(
            format!("app `{}` has no host names", config.name),
            "add `hostnames = [\"blog.example.com\"]` to app.toml or pass `--host`",
        ));
    }
    if routing::main_host(&hosts).is_none() {
        return Err(Error::usage(
            "every host name is a wildcard; the first plain one is the main host",
            "add a plain host name first, e.g. `blog.example.com`",
        ));
    }
    Ok(hosts)
}

/// The plain environment of a release: `[env]` then skiff's own variables.
fn release_env(config: &AppConfig, n: u32, main: &str) -> BTreeMap<String, String> {
    let mut env = config.env.clone();
    env.insert("SKIFF_APP".into(), config.name.clone());
    env.insert("SKIFF_VERSION".into(), n.to_string());
    env.insert("SKIFF_HOST".into(), main.to_string());
    env.insert("SKIFF_CANONICAL_HOST".into(), main.to_string());
    env
}

/// Key of the venv for a requirements file: its sha256, the node's OS, and whether it
/// sees the system's packages (`[python] system_packages`).
fn venv_key(requirements_sha256: &[u8], os: &str, system_packages: bool) -> String {
    let mut h = sha2::Sha256::new();
    h.update(os.as_bytes());
    h.update(b"\0");
    if system_packages {
        h.update(b"system-site-packages\0");
    }
    h.update(requirements_sha256);
    hex::encode(h.finalize())[..16].to_string()
}

/// Tells the command that `node` began `what`.
fn step(events: &EventFn, node: &str, what: &'static str) {
    events(Event::Step {
        node: node.to_string(),
        step: what,
    });
}

/// What one update needs on every node, shared by the per-node steps.
struct Plan<'a> {
    config: &'a AppConfig,
    hosts: &'a [String],
    main: &'a str,
    n: u32,
    manifest: &'a sync::manifest::Manifest,
    /// pyproject.toml's `[project] dependencies` as requirements text, when
    /// `[python] requirements` is not set.
    pyproject_deps: Option<&'a str>,
    cache: &'a Path,
    owner: &'a str,
    token: &'a str,
    events: &'a EventFn,
    /// One node only: its trial, switch and finish go in one round trip, keeping this
    /// many releases.
    one_node_keep: Option<usize>,
}

/// Deploys `req.dir` as a new version to every chosen node.
pub async fn update(
    state: &StateFile,
    req: &UpdateRequest,
    events: EventFn,
) -> Result<UpdateReport> {
    let started = Instant::now();
    let mut signals = Signals::new()?;
    let config = AppConfig::load(&req.dir)?;
    config.refuse_unsupported(&req.dir.join(crate::app_config::FILE_NAME))?;
    let pyproject_deps = match &config.python {
        Some(py) if py.requirements.is_none() => crate::pyproject::dependencies(&req.dir)?,
        _ => None,
    };
    let hosts = hosts_for(&config, &req.hosts)?;
    let main = routing::main_host(&hosts).expect("checked").to_string();
    let cluster = state.load()?;
    let nodes: Vec<String> = if req.nodes.is_empty() {
        vec![cluster.pick_node(None)?]
    } else {
        for n in &req.nodes {
            cluster.node(n)?;
        }
        req.nodes.clone()
    };
    let cache = state.dir().join("cache").join(&config.name);
    let scan_dir = req.dir.clone();
    let hash_cache = cache.join("hashes.json");
    let manifest = tokio::task::spawn_blocking(move || {
        sync::scan::scan(
            &scan_dir,
            &sync::scan::ScanOptions {
                hash_cache: Some(hash_cache),
            },
        )
    })
    .await
    .map_err(|e| Error::failed(format!("scanning the app folder failed: {e}")))??;
    events(Event::Phase {
        node: String::new(),
        phase: "scan".into(),
        seconds: started.elapsed().as_secs_f64(),
    });

    let app = config.name.as_str();
    let owner = owner_line(app);
    let targets = lock_all(state, &cluster, &nodes, app, &owner, &events).await?;
    for t in &targets {
        if let Err(e) = routing::check_hosts_free(&t.begun.state, app, &hosts) {
            return Err(release_all(targets, app, &owner, e).await);
        }
    }
    let n = match config.version {
        Some(v) => {
            if let Some(t) = targets.iter().find(|t| {
                t.begun
                    .state
                    .apps
                    .get(app)
                    .is_some_and(|a| a.releases.iter().any(|r| r.number == v))
            }) {
                let e = Error::usage(
                    format!("version {v} of `{app}` already exists on node `{}`", t.name),
                    "raise `version` in app.toml, or remove it to use the next number",
                );
                return Err(release_all(targets, app, &owner, e).await);
            }
            v
        }
        // never a number an interrupted run used on any node: its leftovers count too
        None => targets
            .iter()
            .map(|t| {
                let found = t.begun.found.iter().max().map_or(1, |m| m + 1);
                t.begun.state.next_number(app).max(found)
            })
            .max()
            .unwrap_or(1),
    };
    // What a dead run left (its lock was broken, or it died between switch and finish):
    // release folders no state names.
    for t in &targets {
        let left = t.begun.state.leftovers(app, &t.begun.found);
        if left.is_empty() {
            continue;
        }
        events(Event::Note {
            node: t.name.clone(),
            message: format!(
                "removing release(s) {} that an interrupted deploy left behind",
                left.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        if let Err(e) = remote::recover(&t.session, app, &owner, &left).await {
            return Err(release_all(targets, app, &owner, e).await);
        }
    }

    // Sync, build and trial on every node in parallel; a signal or any failure aborts
    // them all (each node undoes exactly what this run did there).
    let token = new_token(n);
    let plan = Plan {
        config: &config,
        hosts: &hosts,
        main: &main,
        n,
        manifest: &manifest,
        pyproject_deps: pyproject_deps.as_deref(),
        cache: &cache,
        owner: &owner,
        token: &token,
        events: &events,
        one_node_keep: (targets.len() == 1).then(|| config.keep.unwrap_or(DEFAULT_KEEP) as usize),
    };
    let staged = tokio::select! {
        r = stage_all(&targets, &plan) => r,
        _ = signals.recv() => Err(Error::Interrupted),
    };
    let staged = match staged {
        Ok(s) => s,
        Err(e) => return Err(abort_all(targets, app, &owner, Some(n), &token, e).await),
    };

    // Every node passed: switch them all (routes + state), then finish (idle freed
    // slots, prune, unlock). A node refusing its switch puts the nodes already
    // switched back, so nodes never disagree on what HOST serves. Signals wait until
    // this is done: the switch is short, and stopping half-way is worse.
    let keep = config.keep.unwrap_or(DEFAULT_KEEP) as usize;
    let mut previous = None;
    let mut plans = Vec::new();
    for p in &staged {
        previous = previous.or(p.before.apps.get(app).and_then(|a| a.current));
        let (st, freed, prune) = p.state.after_switch(app, n, keep);
        let routes = routing::render_map(&st);
        plans.push((st, routes, freed, prune));
    }
    let mut phases: Vec<PhaseTimes> = staged.iter().map(|p| p.phases.clone()).collect();
    for (i, t) in targets.iter().enumerate() {
        let (st, routes, _, _) = &plans[i];
        if staged[i].done {
            continue; // one node: switched and finished in its trial's round trip
        }
        step(&events, &t.name, "switch");
        match remote::switch(&t.session, app, &owner, st, routes).await {
            Ok(ph) => phases[i].extend(ph),
            Err(e) => {
                for (done, p) in targets[..i].iter().zip(&staged) {
                    let old = routing::render_map(&p.before);
                    let _ = remote::switch(&done.session, app, &owner, &p.before, &old).await;
                }
                return Err(abort_all(targets, app, &owner, Some(n), &token, e).await);
            }
        }
    }
    let served_after = started.elapsed().as_secs_f64();
    let mut reports = Vec::new();
    let mut final_states = Vec::new();
    for (i, (t, p)) in targets.iter().zip(&staged).enumerate() {
        let (st, _, freed, prune) = &plans[i];
        if !p.done {
            step(&events, &t.name, "finish");
            match remote::finish(&t.session, app, &owner, freed, prune).await {
                Ok(ph) => phases[i].extend(ph),
                Err(e) => events(Event::Note {
                    node: t.name.clone(),
                    message: format!("version {n} is live, but tidying up failed: {e}"),
                }),
            }
        }
        for (k, v) in &phases[i] {
            events(Event::Phase {
                node: t.name.clone(),
                phase: k.clone(),
                seconds: *v,
            });
        }
        reports.push(NodeReport {
            node: t.name.clone(),
            slot: p.slot.clone(),
            phases: phases[i].clone(),
            sync: p.sync.clone(),
            pruned: prune.clone(),
        });
        final_states.push((t.name.clone(), st.clone()));
    }
    record(state, app, &main, &final_states, &events)?;
    for t in targets {
        let _ = t.session.close().await;
    }
    let mut urls = vec![format!("http://{main}/"), format!("http://{n}.{main}/")];
    if previous.is_some() {
        urls.push(format!("http://prev.{main}/"));
    }
    Ok(UpdateReport {
        app: config.name.clone(),
        version: n,
        previous,
        nodes: reports,
        urls,
        served_after,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The slot kind and pool for `runtime` on a node, if it needs one.
fn pool_for(begun: &Begun, runtime: Runtime) -> Option<(SlotKind, &[String])> {
    SlotKind::of(runtime).map(|k| match k {
        SlotKind::Python => (k, begun.python_slots.as_slice()),
        SlotKind::Ruby => (k, begun.ruby_slots.as_slice()),
    })
}

/// Unlocks and closes every target after a failure, returning the error.
async fn release_all(targets: Vec<Target>, app: &str, owner: &str, e: Error) -> Error {
    for t in targets {
        let _ = remote::unlock(&t.session, app, owner).await;
        let _ = t.session.close().await;
    }
    e
}

/// A node that passed its trial, holding both locks.
struct Staged {
    /// The node state as it was under the node lock (a refused switch elsewhere puts
    /// this back).
    before: NodeState,
    /// That state with release N kept (not current yet) and its slot.
    state: NodeState,
    slot: Option<String>,
    phases: PhaseTimes,
    sync: SyncSummary,
    /// Already switched and finished (a one-node deploy's `go`).
    done: bool,
}

/// Undoes this run on every node (each node undoes only what `owner`/`token` did
/// there: its slots, release `n`, its locks), closes every session and returns `error`.
async fn abort_all(
    targets: Vec<Target>,
    app: &str,
    owner: &str,
    n: Option<u32>,
    token: &str,
    error: Error,
) -> Error {
    let _ = futures_util::future::join_all(
        targets
            .iter()
            .map(|t| remote::abort(&t.session, app, owner, n, token)),
    )
    .await;
    for t in targets {
        let _ = t.session.close().await;
    }
    error
}

/// Sync and build on every node (in parallel), then the node locks, then the trials on
/// every node (in parallel) against the truth read under those locks.
async fn stage_all(targets: &[Target], plan: &Plan<'_>) -> Result<Vec<Staged>> {
    let built =
        futures_util::future::join_all(targets.iter().map(|t| sync_and_build(t, plan))).await;
    let mut ok = Vec::new();
    let mut first_err = None;
    for r in built {
        match r {
            Ok(b) => ok.push(b),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let got = ok.iter_mut().map(|b| b.lock.take()).collect();
    let views = lock_nodes(targets, &plan.config.name, plan.owner, plan.events, got).await?;
    let trials = futures_util::future::join_all(
        targets
            .iter()
            .zip(ok)
            .zip(views)
            .map(|((t, b), v)| trial_node(t, b, v, plan)),
    )
    .await;
    trials.into_iter().collect()
}

/// A node whose release N is synced and built, holding the app's lock.
struct Built {
    phases: PhaseTimes,
    sync: SyncSummary,
    venv: Option<String>,
    /// The node lock, when `prepare` could take it at once.
    lock: Option<NodeView>,
}

/// Syncs release N to one node and prepares it (env snapshot, venv, build commands,
/// meta); the same round trip tries the node lock.
async fn sync_and_build(t: &Target, plan: &Plan<'_>) -> Result<Built> {
    let config = plan.config;
    let app = &config.name;
    let n = plan.n;
    let base = t.begun.state.apps.get(app).and_then(|a| a.current);
    let releases = Releases::for_app(app)?;
    let node = t.name.clone();
    let ev = plan.events.clone();
    let progress: sync::ProgressFn = Arc::new(move |p| {
        ev(Event::Progress {
            node: node.clone(),
            progress: p,
        })
    });
    let options = sync::PushOptions {
        cache_dir: Some(plan.cache.join("manifests").join(&t.name)),
        progress: Some(progress),
        ..Default::default()
    };
    step(plan.events, &t.name, "sync");
    let summary = sync::push(&t.session, plan.manifest, &releases, base, n, &options).await?;
    let mut phases = PhaseTimes::new();
    phases.insert("connect".into(), t.connect_seconds);
    phases.insert("lock".into(), t.lock_seconds);
    phases.insert("sync".into(), summary.seconds.total);

    // The release's environment and meta.
    let env = release_env(config, n, plan.main);
    let env_lines: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let release_dir = releases.release_dir(n);
    let mut venv = String::new();
    let mut requirements = String::new();
    let mut wheels = String::new();
    let mut requirements_text = String::new();
    let mut meta = serde_json::json!({ "release": release_dir, "env": env });
    if t.begun.has_node_config {
        meta["env_file"] = contract::env_snapshot(app, n).into();
    }
    if let Some(py) = &config.python {
        meta["wsgi"] = py.wsgi.clone().into();
        if let Some(req) = &py.requirements {
            // the manifest already hashed the file: no second read
            let hash = plan
                .manifest
                .entries
                .get(req.as_str())
                .and_then(|e| e.sha256())
                .ok_or_else(|| {
                    Error::usage(
                        format!("`{req}` (python.requirements) is not in the shipped tree"),
                        "check .skiffignore: the requirements file must be shipped",
                    )
                })?;
            venv = venv_key(hash, &t.begun.os, py.system_packages);
            requirements = req.clone();
            wheels = py.wheels.clone().unwrap_or_default();
            meta["venv"] = contract::venv_dir(app, &venv).into();
        } else if let Some(deps) = plan.pyproject_deps {
            // no requirements file: pyproject.toml's dependencies, keyed by the list
            // (editing other tables of pyproject.toml keeps the venv)
            venv = venv_key(
                &sha2::Sha256::digest(deps.as_bytes()),
                &t.begun.os,
                py.system_packages,
            );
            requirements_text = deps.to_string();
            wheels = py.wheels.clone().unwrap_or_default();
            meta["venv"] = contract::venv_dir(app, &venv).into();
        }
    }
    if config.runtime == Runtime::Ruby {
        meta["rackup"] = config.ruby_rackup().into();
    }
    // Bundler's bundle and Composer's vendor folder, one per key (like the venv)
    let deps = deps::plan(config, plan.manifest, &t.begun.os)?;
    if !deps.bundle.is_empty() {
        meta["bundle"] = contract::bundle_dir(app, &deps.bundle).into();
    }
    let docroot = if config.runtime == Runtime::Php {
        config.php_docroot().to_string()
    } else {
        String::new()
    };
    let prep = remote::Prepare {
        runtime: config.runtime.as_str(),
        packages: config.packages.apt.join(" "),
        system_site: config.python.as_ref().is_some_and(|p| p.system_packages),
        meta: meta.to_string(),
        venv: venv.clone(),
        requirements,
        requirements_text,
        wheels,
        docroot,
        bundle: deps.bundle,
        bundle_local: deps.bundle_local,
        composer: deps.composer,
        env_lines,
        commands: config.build.commands.clone(),
        build_timeout: config.build.timeout().as_secs().max(1),
    };
    step(plan.events, &t.name, "build");
    let prepared = remote::prepare(&t.session, app, plan.owner, n, &prep).await?;
    phases.extend(prepared.phases);
    Ok(Built {
        phases,
        sync: summary,
        venv: (!venv.is_empty()).then_some(venv),
        lock: match prepared.lock {
            remote::Lock::Taken(v) => Some(v),
            remote::Lock::Held(_) => None,
        },
    })
}

/// Under the node lock: decides release N's place from the truth (hosts still free, the
/// slot, slots a dead run left loaded), then loads, warms and health-checks it.
async fn trial_node(t: &Target, built: Built, view: NodeView, plan: &Plan<'_>) -> Result<Staged> {
    let config = plan.config;
    let app = &config.name;
    let n = plan.n;
    routing::check_hosts_free(&view.state, app, plan.hosts)?;
    let mut st = view.state.clone();
    let entry = st.apps.entry(app.clone()).or_insert_with(|| NodeApp {
        runtime: config.runtime,
        hostnames: plan.hosts.to_vec(),
        current: None,
        prev: None,
        releases: Vec::new(),
        packages: Vec::new(),
    });
    for p in &config.packages.apt {
        if !entry.packages.contains(p) {
            entry.packages.push(p.clone());
        }
    }
    entry.runtime = config.runtime;
    entry.hostnames = plan.hosts.to_vec();
    entry.releases.retain(|r| r.number != n);
    entry.releases.push(Release {
        number: n,
        time: now_rfc3339(),
        digest: plan.manifest.digest(),
        size: plan.manifest.total_bytes(),
        venv: built.venv.clone(),
        health: Some(ReleaseHealth {
            path: config.health.path.clone(),
            timeout: config.health.timeout().as_secs_f64(),
        }),
    });
    let reset = st.stale_slots(&view.slot_files);
    if !reset.is_empty() {
        plan.events.as_ref()(Event::Note {
            node: t.name.clone(),
            message: format!(
                "resetting slot(s) {} that an interrupted run left loaded",
                reset.join(", ")
            ),
        });
    }
    let mut slot = None;
    if let Some((k, pool)) = pool_for(&t.begun, config.runtime) {
        let s = pool::choose_or_grow(
            &t.session,
            &t.name,
            &st,
            app,
            n,
            k,
            pool,
            plan.owner,
            plan.events,
        )
        .await?;
        st.slots.insert(
            s.clone(),
            SlotUse {
                app: app.clone(),
                release: n,
            },
        );
        slot = Some((s, k));
    }
    let backend = routing::backend(&st, app, &st.apps[app.as_str()], n);
    let vhost = format!("{n}.{}", plan.main);
    let trial = remote::Trial {
        app,
        owner: plan.owner,
        n,
        slot: slot.as_ref().map(|(s, k)| (s.as_str(), *k)),
        want: SLOT_PROCESSES,
        backend: &backend,
        vhost: &vhost,
        health: &config.health.path,
        timeout: config.health.timeout().as_secs_f64(),
        token: plan.token,
        reset: &reset,
    };
    let mut phases = built.phases;
    step(plan.events, &t.name, "check");
    let after = plan.one_node_keep.map(|keep| {
        let (next, freed, prune) = st.after_switch(app, n, keep);
        let routes = routing::render_map(&next);
        (next, routes, freed, prune)
    });
    let outcome = match &after {
        Some((next, routes, freed, prune)) => {
            let then = remote::AndSwitch {
                state: next,
                routes,
                freed,
                prune,
            };
            remote::go(&t.session, &trial, then).await?
        }
        None => remote::trial(&t.session, &trial).await?,
    };
    match outcome {
        Ok(ph) => phases.extend(ph),
        Err(h) => {
            let main = plan.main;
            let mut output = format!(
                "HTTP {} from http://{n}.{main}{}",
                h.status, config.health.path
            );
            if !h.body.trim().is_empty() {
                output.push_str(&format!("\n--- body (first lines)\n{}", h.body.trim_end()));
            }
            if !h.error_log.trim().is_empty() {
                output.push_str(&format!(
                    "\n--- error log (tail)\n{}",
                    h.error_log.trim_end()
                ));
            }
            return Err(Error::Remote {
                node: t.name.clone(),
                command: format!("health check of version {n}"),
                status: None,
                output,
                hint: Some(health_hint(n, &h.status, &config.health.path)),
            });
        }
    }
    plan.events.as_ref()(Event::Note {
        node: t.name.clone(),
        message: format!(
            "version {n} passed its health check at http://{n}.{}{}",
            plan.main, config.health.path
        ),
    });
    Ok(Staged {
        before: view.state,
        state: st,
        slot: slot.map(|(s, _)| s),
        phases,
        sync: built.sync,
        done: after.is_some(),
    })
}

/// The hint of a failed health check; a 403 or 404 at `/` (the default path) most
/// likely means the app has no page there (e.g. Debian's adminer).
fn health_hint(n: u32, status: &str, path: &str) -> String {
    let fix = match status {
        "403" | "404" if path == "/" => format!(
            "the app answered {status} at `/`: if it has no page there, set `[health] path` in app.toml to one it answers with 2xx or 3xx (e.g. `path = \"/login\"`)"
        ),
        _ => "fix the app".to_string(),
    };
    format!(
        "version {n} was removed; HOST still serves the previous version. {}{} and run `skiff update` again",
        fix[..1].to_uppercase(),
        &fix[1..]
    )
}

/// Writes the deploy into cluster.toml: the app's versions, current and prev, as the
/// first node reports them (nodes are switched together).
fn record(
    state: &StateFile,
    app: &str,
    main: &str,
    finals: &[(String, NodeState)],
    events: &EventFn,
) -> Result<()> {
    let Some((_, first)) = finals.first() else {
        return Ok(());
    };
    let Some(node_app) = first.apps.get(app) else {
        return Ok(());
    };
    let ev = events.clone();
    let mut waiting = move |p: &Path| {
        ev(Event::Note {
            node: String::new(),
            message: format!("waiting for another skiff to release `{}`", p.display()),
        })
    };
    state.update(&mut waiting, |cluster| {
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
fn app_for_host(cluster: &crate::cluster::Cluster, host: &str) -> Result<(String, Vec<String>)> {
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

/// `rollback` / `activate`: makes another kept version current on every node of `host`,
/// all or nothing. A version still in a warm slot is a map flip; one that is not running
/// is loaded into an idle slot, warmed and checked first with the health check it was
/// deployed with. Only when every node is ready are they switched; a node refusing its
/// switch puts the ones already switched back, and every node undoes what this run did.
pub async fn activate(
    state: &StateFile,
    host: &str,
    choice: Choice,
    events: EventFn,
) -> Result<SwitchReport> {
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, host)?;
    let owner = owner_line(&app);
    let (targets, views) = lock_everything(state, &cluster, &nodes, &app, &owner, &events).await?;
    // one token for the run (the loaders answer with it; every node's abort finds the
    // slots this run loaded by it)
    let token = new_token(0);
    let mut ready = Vec::new();
    for (t, view) in targets.iter().zip(views) {
        match ready_to_activate(t, view, &app, host, choice, &owner, &token, &events).await {
            Ok(r) => ready.push(r),
            Err(e) => return Err(abort_all(targets, &app, &owner, None, &token, e).await),
        }
    }
    for (i, (t, r)) in targets.iter().zip(&ready).enumerate() {
        if let Err(e) = remote::switch(&t.session, &app, &owner, &r.state, &r.routes).await {
            for (done, d) in targets[..i].iter().zip(&ready) {
                let old = routing::render_map(&d.before);
                let _ = remote::switch(&done.session, &app, &owner, &d.before, &old).await;
            }
            return Err(abort_all(targets, &app, &owner, None, &token, e).await);
        }
    }
    let mut finals = Vec::new();
    for (t, r) in targets.iter().zip(ready) {
        if let Err(e) = remote::finish(&t.session, &app, &owner, &r.freed, &[]).await {
            events(Event::Note {
                node: t.name.clone(),
                message: format!("the switch is done, but tidying up failed: {e}"),
            });
        }
        finals.push((t.name.clone(), r.state));
    }
    for t in targets {
        let _ = t.session.close().await;
    }
    record(state, &app, host, &finals, &events)?;
    let (current, prev) = finals
        .first()
        .and_then(|(_, st)| st.apps.get(&app))
        .map(|a| (a.current, a.prev))
        .unwrap_or((None, None));
    Ok(SwitchReport {
        app,
        host: host.to_string(),
        current,
        prev,
        removed: Vec::new(),
        nodes,
    })
}

/// A node ready to switch to another kept version: the states before and after, the new
/// routing table, and the slots the switch frees.
struct ReadyToActivate {
    before: NodeState,
    state: NodeState,
    routes: String,
    freed: Vec<String>,
}

/// Under both locks: decides the version to activate on one node, loads and checks it
/// when no slot runs it (a dead run's slots reset first); changes no route.
#[allow(clippy::too_many_arguments)]
async fn ready_to_activate(
    t: &Target,
    view: NodeView,
    app: &str,
    host: &str,
    choice: Choice,
    owner: &str,
    token: &str,
    events: &EventFn,
) -> Result<ReadyToActivate> {
    let mut st = view.state.clone();
    let node_app = st.apps.get(app).cloned().ok_or_else(|| Error::Failed {
        message: format!("app `{app}` is not on node `{}`", t.name),
        hint: Some("deploy it there with `skiff update DIR --node NODE`".into()),
    })?;
    let target = match choice {
        Choice::Prev => node_app.prev.ok_or_else(|| Error::Failed {
            message: format!(
                "`{host}` has no previous version on node `{}` to roll back to",
                t.name
            ),
            hint: Some("rollback needs two deploys; see `skiff versions HOST`".into()),
        })?,
        Choice::Version(v) => v,
    };
    let Some(release) = node_app.releases.iter().find(|r| r.number == target) else {
        return Err(Error::Usage {
            message: format!(
                "version {target} of `{host}` is not kept on node `{}`",
                t.name
            ),
            hint: Some(format!(
                "kept versions: {}",
                node_app
                    .releases
                    .iter()
                    .map(|r| r.number.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        });
    };
    let reset = st.stale_slots(&view.slot_files);
    let mut slot = None;
    if node_app.current != Some(target)
        && let Some((k, pool)) = pool_for(&t.begun, node_app.runtime)
        && st.slot_of(app, target).is_none()
    {
        let s = pool::choose_or_grow(
            &t.session, &t.name, &st, app, target, k, pool, owner, events,
        )
        .await?;
        st.slots.insert(
            s.clone(),
            SlotUse {
                app: app.to_string(),
                release: target,
            },
        );
        slot = Some((s, k));
    }
    if slot.is_some() || !reset.is_empty() {
        // not running: load it into an idle slot and check it before the flip
        if let Some((s, _)) = &slot {
            events(Event::Note {
                node: t.name.clone(),
                message: format!("version {target} is not running; loading it into slot {s}"),
            });
        }
        let backend = routing::backend(&st, app, &st.apps[app], target);
        let main = routing::main_host(&node_app.hostnames).unwrap_or(host);
        let vhost = format!("{target}.{main}");
        let (health, timeout) = release
            .health
            .as_ref()
            .map(|h| (h.path.clone(), h.timeout))
            .unwrap_or_else(|| ("/".to_string(), 30.0));
        let trial = remote::Trial {
            app,
            owner,
            n: target,
            slot: slot.as_ref().map(|(s, k)| (s.as_str(), *k)),
            want: SLOT_PROCESSES,
            backend: &backend,
            vhost: &vhost,
            health: &health,
            timeout,
            token,
            reset: &reset,
        };
        if let Err(h) = remote::trial(&t.session, &trial).await? {
            return Err(Error::Remote {
                node: t.name.clone(),
                command: format!("health check of version {target}"),
                status: None,
                output: format!("HTTP {} from http://{vhost}{health}\n{}", h.status, h.body),
                hint: Some("the live version is unchanged".into()),
            });
        }
    }
    let before = view.state;
    let a = st.apps.get_mut(app).expect("checked above");
    if a.current != Some(target) {
        let old = a.current;
        a.current = Some(target);
        a.prev = old;
    }
    let freed = st.free_spare_slots(app);
    let routes = routing::render_map(&st);
    Ok(ReadyToActivate {
        before,
        state: st,
        routes,
        freed,
    })
}

/// `clean HOST --keep N`: removes the oldest releases beyond `keep` on every node (never
/// current, prev or one running in a slot), and every release folder no state names.
pub async fn clean(
    state: &StateFile,
    host: &str,
    keep: u32,
    events: EventFn,
) -> Result<SwitchReport> {
    if keep == 0 {
        return Err(Error::usage(
            "`--keep 0` would remove the live version",
            "keep at least 1 (current and prev are always kept)",
        ));
    }
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, host)?;
    let owner = owner_line(&app);
    let (targets, views) = lock_everything(state, &cluster, &nodes, &app, &owner, &events).await?;
    let mut finals = Vec::new();
    let mut removed = Vec::new();
    for (t, view) in targets.iter().zip(views) {
        let mut st = view.state;
        let mut prune = st.prune_candidates(&app, keep as usize);
        if let Some(a) = st.apps.get_mut(&app) {
            a.releases.retain(|r| !prune.contains(&r.number));
        }
        let leftovers = st.leftovers(&app, &t.begun.found);
        let routes = routing::render_map(&st);
        let switched = match remote::switch(&t.session, &app, &owner, &st, &routes).await {
            Ok(_) => {
                let mut drop = prune.clone();
                drop.extend(leftovers.iter().copied());
                remote::finish(&t.session, &app, &owner, &[], &drop).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = switched {
            return Err(release_all(targets, &app, &owner, e).await);
        }
        prune.extend(leftovers);
        for p in prune {
            if !removed.contains(&p) {
                removed.push(p);
            }
        }
        finals.push((t.name.clone(), st));
    }
    for t in targets {
        let _ = t.session.close().await;
    }
    record(state, &app, host, &finals, &events)?;
    let (current, prev) = finals
        .first()
        .and_then(|(_, st)| st.apps.get(&app))
        .map(|a| (a.current, a.prev))
        .unwrap_or((None, None));
    removed.sort_unstable();
    Ok(SwitchReport {
        app,
        host: host.to_string(),
        current,
        prev,
        removed,
        nodes,
    })
}

/// The result of `destroy-app` (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct DestroyReport {
    /// App name.
    pub app: String,
    /// The main host.
    pub host: String,
    /// Nodes it was removed from.
    pub nodes: Vec<String>,
    /// Daemon slots it held, now free.
    pub freed: Vec<String>,
}

/// `destroy-app HOST`: removes the app from every node (routes first, so no host of it
/// answers any more; then its slots, releases, venvs, env snapshots and node-side env
/// file) and from cluster.toml. Under both locks, like a deploy.
pub async fn destroy_app(state: &StateFile, host: &str, events: EventFn) -> Result<DestroyReport> {
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, host)?;
    let owner = owner_line(&app);
    let (targets, views) = lock_everything(state, &cluster, &nodes, &app, &owner, &events).await?;
    let mut freed_all = Vec::new();
    for (t, view) in targets.iter().zip(views) {
        let mut st = view.state;
        st.apps.remove(&app);
        let freed: Vec<String> = st
            .slots
            .iter()
            .filter(|(_, u)| u.app == app)
            .map(|(s, _)| s.clone())
            .collect();
        for s in &freed {
            st.slots.remove(s);
        }
        let routes = routing::render_map(&st);
        let done = match remote::switch(&t.session, &app, &owner, &st, &routes).await {
            Ok(_) => remote::destroy(&t.session, &app, &owner, &freed).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            return Err(release_all(targets, &app, &owner, e).await);
        }
        for s in freed {
            if !freed_all.contains(&s) {
                freed_all.push(s);
            }
        }
    }
    for t in targets {
        let _ = t.session.close().await;
    }
    let ev = events.clone();
    let mut waiting = move |p: &Path| {
        ev(Event::Note {
            node: String::new(),
            message: format!("waiting for another skiff to release `{}`", p.display()),
        })
    };
    state.update(&mut waiting, |cluster| {
        cluster.apps.remove(host);
        Ok(())
    })?;
    Ok(DestroyReport {
        app,
        host: host.to_string(),
        nodes,
        freed: freed_all,
    })
}

/// One row of `skiff versions`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    /// N.
    pub number: u32,
    /// Deploy time.
    pub time: String,
    /// Tree size in bytes.
    pub size: u64,
    /// Digest of the tree.
    pub digest: String,
    /// Serving HOST.
    pub current: bool,
    /// Serving `prev.HOST`.
    pub prev: bool,
    /// Daemon slot running it (Python/Ruby), if any.
    pub slot: Option<String>,
}

/// The result of `skiff versions HOST`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionsReport {
    /// App name.
    pub app: String,
    /// The main host.
    pub host: String,
    /// Node the list was read from.
    pub node: String,
    /// Current version.
    pub current: Option<u32>,
    /// Previous version.
    pub prev: Option<u32>,
    /// Kept versions, oldest first.
    pub versions: Vec<VersionRow>,
}

/// `versions HOST`: the kept versions as the app's first node knows them (no lock).
pub async fn versions(state: &StateFile, host: &str) -> Result<VersionsReport> {
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, host)?;
    let node = nodes[0].clone();
    let session = Session::for_node(&node, cluster.node(&node)?, state).await?;
    let st = remote::peek(&session).await;
    let _ = session.close().await;
    let st = st?;
    let a = st.apps.get(&app).ok_or_else(|| Error::Failed {
        message: format!("app `{app}` is not on node `{node}`"),
        hint: Some("the cluster state is out of date; deploy again with `skiff update`".into()),
    })?;
    Ok(VersionsReport {
        app: app.clone(),
        host: host.to_string(),
        node,
        current: a.current,
        prev: a.prev,
        versions: a
            .releases
            .iter()
            .map(|r| VersionRow {
                number: r.number,
                time: r.time.clone(),
                size: r.size,
                digest: r.digest.clone(),
                current: a.current == Some(r.number),
                prev: a.prev == Some(r.number),
                slot: st.slot_of(&app, r.number).map(str::to_string),
            })
            .collect(),
    })
}
