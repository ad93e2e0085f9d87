//! The two locks of every run: the app's (whole run) and the node's (what apps
//! share), taken in node-name order when contended; the signals that abort a run; and
//! the abort itself.

use super::*;

/// This run's lock owner line: who (`user@host`), which process, which app, since when.
/// The node compares it byte for byte to know which locks a step's caller holds.
pub(super) fn owner_line(app: &str) -> String {
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
pub(super) fn new_token(n: u32) -> String {
    let mut h = sha2::Sha256::new();
    h.update(owner_line("").as_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(format!("{:?}", Instant::now()).as_bytes());
    format!("{n}-{}", &hex::encode(h.finalize())[..16])
}

/// Whether a lock owner line names a skiff process on this machine that no longer runs:
/// such a lock is certainly stale and may be broken (with a notice).
pub(super) fn owner_is_dead_here(owner: &str) -> bool {
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
pub(super) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let catch =
            |kind| signal(kind).map_err(|e| Error::failed(format!("could not catch signals: {e}")));
        Ok(Signals {
            int: catch(SignalKind::interrupt())?,
            term: catch(SignalKind::terminate())?,
            hup: catch(SignalKind::hangup())?,
        })
    }

    pub(super) async fn recv(&mut self) {
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
pub(super) async fn wait_for_lock<T, F, Fut>(
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
pub(super) async fn lock_all(
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
pub(super) async fn lock_nodes(
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
pub(super) async fn lock_everything(
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

/// Unlocks and closes every target after a failure, returning the error.
pub(super) async fn release_all(targets: Vec<Target>, app: &str, owner: &str, e: Error) -> Error {
    for t in targets {
        let _ = remote::unlock(&t.session, app, owner).await;
        let _ = t.session.close().await;
    }
    e
}

/// Undoes this run on every node (each node undoes only what `owner`/`token` did
/// there: its slots, release `n`, its locks), closes every session and returns `error`.
pub(super) async fn abort_all(
    targets: Vec<Target>,
    app: &str,
    owner: &str,
    n: Option<u32>,
    token: &str,
    run: &super::history::Run,
    error: Error,
) -> Error {
    let line = run.line(Err(&error));
    let _ = futures_util::future::join_all(
        targets
            .iter()
            .map(|t| remote::abort(&t.session, app, owner, n, token, &line)),
    )
    .await;
    for t in targets {
        let _ = t.session.close().await;
    }
    error
}
