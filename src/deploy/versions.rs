//! `skiff versions`: the kept versions as the app's first node knows them.

use super::*;

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
    /// Its workers (`[processes]`): running for the current version, stopped otherwise.
    pub workers: Vec<WorkerRow>,
}

/// A worker instance of a version.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRow {
    /// `NAME@I`.
    pub name: String,
    /// systemd's state (`active (running)`, `activating (auto-restart)`...), or `stopped`
    /// for a version that is not current.
    pub state: String,
    /// How often systemd restarted it since it started.
    pub restarts: u32,
}

/// A cron job of the current version (on the node that runs the app's timers).
#[derive(Debug, Clone, Serialize)]
pub struct TimerRow {
    /// `cronI` (the entry's index in app.toml).
    pub name: String,
    /// When it last started, as systemd says (`n/a`: never).
    pub last: String,
    /// The last run's result: `success`, `exit-code`, `timeout`... (`running` while a run
    /// goes on, `-` before any run).
    pub result: String,
    /// When it runs next.
    pub next: String,
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
    /// The current version's cron jobs, on the node that runs them (`timers_node`).
    pub timers: Vec<TimerRow>,
    /// The node whose timers run the app's cron jobs, when it has any.
    pub timers_node: Option<String>,
}

/// `versions HOST`: the kept versions as the app's first node knows them, with their
/// workers; the cron jobs from the node that runs them (the first by name). No lock.
pub async fn versions(state: &StateFile, host: &str) -> Result<VersionsReport> {
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, host)?;
    let node = nodes[0].clone();
    let session = Session::for_node(&node, cluster.node(&node)?, state).await?;
    let peeked = remote::peek(&session, Some(&app)).await;
    let _ = session.close().await;
    let peeked = peeked?;
    let timers_node = duty_node(nodes.iter().map(String::as_str));
    let timer_view = if timers_node == node {
        Some(peeked.clone())
    } else {
        let session = Session::for_node(&timers_node, cluster.node(&timers_node)?, state).await?;
        let p = remote::peek(&session, Some(&app)).await;
        let _ = session.close().await;
        p.ok()
    };
    let st = &peeked.state;
    let a = st.apps.get(&app).ok_or_else(|| Error::Failed {
        message: format!("app `{app}` is not on node `{node}`"),
        hint: Some("the cluster state is out of date; deploy again with `skiff update`".into()),
    })?;
    let prefix = |n: u32| format!("skiff_{app}_{n}_");
    let workers_of = |n: u32| -> Vec<WorkerRow> {
        peeked
            .units
            .iter()
            .filter(|(r, u)| *r == n && u.ends_with(".service"))
            .map(|(_, unit)| {
                let props = peeked.unit_state.get(unit).filter(|_| a.current == Some(n));
                let name = unit
                    .trim_start_matches(&prefix(n))
                    .trim_end_matches(".service")
                    .to_string();
                WorkerRow {
                    name,
                    state: props.map_or("stopped".into(), |p| {
                        format!(
                            "{} ({})",
                            p.get("ActiveState").map_or("?", String::as_str),
                            p.get("SubState").map_or("?", String::as_str)
                        )
                    }),
                    restarts: props
                        .and_then(|p| p.get("NRestarts"))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                }
            })
            .collect()
    };
    let mut timers = Vec::new();
    if let (Some(view), Some(current)) = (&timer_view, a.current) {
        for (_, unit) in view
            .units
            .iter()
            .filter(|(r, u)| *r == current && u.ends_with(".timer"))
        {
            let timer = view.unit_state.get(unit);
            let service = view
                .unit_state
                .get(&format!("{}.service", unit.trim_end_matches(".timer")));
            let get = |p: Option<&BTreeMap<String, String>>, k: &str| {
                p.and_then(|p| p.get(k)).cloned().filter(|v| !v.is_empty())
            };
            let ran = get(service, "ExecMainExitTimestamp").is_some();
            let running = get(service, "ActiveState").as_deref() == Some("activating");
            timers.push(TimerRow {
                name: unit
                    .trim_start_matches(&prefix(current))
                    .trim_end_matches(".timer")
                    .to_string(),
                last: get(timer, "LastTriggerUSec").unwrap_or_else(|| "n/a".into()),
                result: if running {
                    "running".into()
                } else if ran {
                    get(service, "Result").unwrap_or_else(|| "-".into())
                } else {
                    "-".into()
                },
                next: get(timer, "NextElapseUSecRealtime").unwrap_or_else(|| "-".into()),
            });
        }
    }
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
                workers: workers_of(r.number),
            })
            .collect(),
        timers_node: (!timers.is_empty()).then_some(timers_node),
        timers,
    })
}
