//! The deploy steps as they run on one node: thin typed wrappers around `node.sh`, one
//! SSH round trip each, parsing what the script prints.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::node_state::NodeState;
use crate::transport::ssh::Session;

/// The node-side half of every deploy step (see its header for the steps).
pub const SCRIPT: &str = include_str!("node.sh");

/// Exit status of `begin` when another deploy holds the app's lock.
const LOCK_HELD: i32 = 75;
/// Exit status of `begin` on a node that was never set up.
const NOT_SET_UP: i32 = 78;
/// Exit status of `trial` when the health check failed.
const HEALTH_FAILED: i32 = 7;

/// What `begin` learned: the node's state and its slot pool.
#[derive(Debug, Clone)]
pub struct Begun {
    /// `/var/lib/skiff/state.toml`.
    pub state: NodeState,
    /// Python slot names declared by setup-node (`py01`...).
    pub python_slots: Vec<String>,
    /// Ruby slot names declared by setup-node (`rb01`...).
    pub ruby_slots: Vec<String>,
    /// OS recorded by setup-node (part of the venv key).
    pub os: String,
    /// Whether `/etc/skiff/env/APP.env` exists (secrets set with `skiff config`).
    pub has_node_config: bool,
}

/// Outcome of trying to take the lock.
#[derive(Debug)]
pub enum LockAttempt {
    /// Ours now.
    Taken(Box<Begun>),
    /// Someone else's: their owner line.
    Held(String),
}

/// Per-phase seconds reported by the node (`phase NAME SECONDS` lines).
pub type PhaseTimes = BTreeMap<String, f64>;

fn phases(out: &str) -> PhaseTimes {
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some("phase")).then_some(())?;
            Some((parts.next()?.to_string(), parts.next()?.parse().ok()?))
        })
        .collect()
}

fn sections(out: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut current = String::new();
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("---") {
            current = name.to_string();
            map.insert(current.clone(), String::new());
        } else if let Some(body) = map.get_mut(&current) {
            body.push_str(line);
            body.push('\n');
        }
    }
    map
}

fn slot_names(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}{i:02}")).collect()
}

async fn step(session: &Session, args: &[&str]) -> Result<(i32, String, String)> {
    let out = session.script(SCRIPT, args).await?;
    Ok((
        out.status.unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn failed(session: &Session, what: &str, status: i32, stdout: &str, stderr: &str) -> Error {
    let mut output = stderr.trim().to_string();
    if output.is_empty() {
        output = stdout.trim().to_string();
    }
    Error::Remote {
        node: session.node().to_string(),
        command: what.to_string(),
        status: Some(status),
        output: tail(&output, 25),
        hint: None,
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Takes `app`'s deploy lock on the node and reads its state (one round trip).
pub async fn begin(
    session: &Session,
    app: &str,
    owner: &str,
    break_lock: bool,
) -> Result<LockAttempt> {
    let mut args = vec!["begin", app, owner];
    if break_lock {
        args.push("break");
    }
    let (status, out, err) = step(session, &args).await?;
    match status {
        0 => {}
        LOCK_HELD => {
            let holder = out.lines().nth(1).unwrap_or("unknown").to_string();
            return Ok(LockAttempt::Held(holder));
        }
        NOT_SET_UP => {
            return Err(Error::Failed {
                message: format!("node `{}` is not set up for skiff", session.node()),
                hint: Some(format!("run `skiff setup-node {}` first", session.node())),
            });
        }
        _ => return Err(failed(session, "deploy step `begin`", status, &out, &err)),
    }
    let parts = sections(&out);
    let state = NodeState::parse(
        session.node(),
        parts.get("state").map_or("", String::as_str),
    )?;
    let setup: toml::Table = toml::from_str(parts.get("setup").map_or("", String::as_str))
        .map_err(|e| Error::Failed {
            message: format!(
                "node `{}` has an unreadable /var/lib/skiff/setup.toml: {}",
                session.node(),
                e.message()
            ),
            hint: Some(format!("re-run `skiff setup-node {}`", session.node())),
        })?;
    let count = |key: &str| {
        setup
            .get(key)
            .and_then(|v| v.as_integer())
            .unwrap_or(0)
            .max(0) as usize
    };
    Ok(LockAttempt::Taken(Box::new(Begun {
        state,
        python_slots: slot_names("py", count("python_slots")),
        ruby_slots: slot_names("rb", count("ruby_slots")),
        os: setup
            .get("os")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string(),
        has_node_config: parts
            .get("env")
            .is_some_and(|e| e.contains("node-config=yes")),
    })))
}

/// Everything `prepare` needs for one release.
#[derive(Debug, Clone, Default)]
pub struct Prepare {
    /// Release meta (what a slot or PHP docroot loads), JSON.
    pub meta: String,
    /// Venv key, when the app has requirements.
    pub venv: String,
    /// Requirements file inside the release.
    pub requirements: String,
    /// Wheels folder inside the release ("" = use the index).
    pub wheels: String,
    /// PHP docroot inside the release ("" = not PHP).
    pub docroot: String,
    /// `KEY=VALUE` lines of the release's plain environment.
    pub env_lines: String,
    /// `build.commands`.
    pub commands: Vec<String>,
}

/// What `trial` needs: where to load release N, and how to check it.
#[derive(Debug, Clone)]
pub struct Trial<'a> {
    /// App name.
    pub app: &'a str,
    /// Release number.
    pub n: u32,
    /// Slot to load into ("" for PHP and static).
    pub slot: &'a str,
    /// `python` or `ruby` (ignored without a slot).
    pub kind: &'a str,
    /// Processes that must answer with release N.
    pub want: u32,
    /// Release N's backend name (`N.APP.KIND.skiff`), checked on NGINX's loopback
    /// check port before any route points at it.
    pub backend: &'a str,
    /// Health path.
    pub health: &'a str,
    /// Seconds allowed for warming and for the health check each.
    pub timeout: f64,
}

/// The result of a failed health check, for the user.
#[derive(Debug, Clone)]
pub struct HealthFailure {
    /// HTTP status (000 = no answer).
    pub status: String,
    /// First lines of the body.
    pub body: String,
    /// Tail of the error log.
    pub error_log: String,
}

/// Loads release N, warms it and health-checks it (one round trip; no route changes).
pub async fn trial(session: &Session, t: &Trial<'_>) -> Result<Result<PhaseTimes, HealthFailure>> {
    let n = t.n.to_string();
    let want = t.want.to_string();
    let timeout = format!("{:.1}", t.timeout);
    let args = [
        "trial", t.app, &n, t.slot, t.kind, &want, t.backend, t.health, &timeout,
    ];
    let (status, out, err) = step(session, &args).await?;
    trial_outcome(session, status, &out, &err)
}

/// What a finished `trial` (or `ready`) printed: its phases, a failed health check, or
/// an error.
fn trial_outcome(
    session: &Session,
    status: i32,
    out: &str,
    err: &str,
) -> Result<Result<PhaseTimes, HealthFailure>> {
    if status == HEALTH_FAILED {
        let parts = sections(out);
        let health = parts.get("health").cloned().unwrap_or_default();
        let mut lines = health.lines();
        let status = lines
            .next()
            .and_then(|l| l.strip_prefix("status "))
            .unwrap_or("000")
            .to_string();
        let body: Vec<&str> = lines.take(10).collect();
        return Ok(Err(HealthFailure {
            status,
            body: body.join("\n"),
            error_log: parts.get("errorlog").cloned().unwrap_or_default(),
        }));
    }
    if status != 0 {
        return Err(failed(session, "loading the new release", status, out, err));
    }
    Ok(Ok(phases(out)))
}

/// How a [`ready`] step failed: in `prepare` (nothing was loaded, only release N needs
/// removing) or once the trial had begun (the slot needs undoing too).
#[derive(Debug)]
pub enum NotReady {
    /// The env snapshot, venv or build commands failed.
    Build(Error),
    /// Loading, warming or routing failed (or the connection did, which may be either).
    Trial(Error),
}

/// `prepare` (env snapshot, venv, build commands, the release's meta) then `trial`
/// (load, warm, route, health-check) in one round trip.
pub async fn ready(
    session: &Session,
    p: &Prepare,
    t: &Trial<'_>,
) -> std::result::Result<Result<PhaseTimes, HealthFailure>, NotReady> {
    let n = t.n.to_string();
    let want = t.want.to_string();
    let timeout = format!("{:.1}", t.timeout);
    let mut args = vec![
        "ready",
        t.app,
        &n,
        t.slot,
        t.kind,
        &want,
        t.backend,
        t.health,
        &timeout,
        // prepare
        t.app,
        &n,
        &p.meta,
        &p.venv,
        &p.requirements,
        &p.wheels,
        &p.docroot,
        &p.env_lines,
    ];
    args.extend(p.commands.iter().map(String::as_str));
    let (status, out, err) = step(session, &args).await.map_err(NotReady::Trial)?;
    if status != 0 && !out.lines().any(|l| l == "---trial") {
        let mut e = failed(session, "build", status, &out, &err);
        if let Error::Remote { hint, .. } = &mut e {
            *hint = Some("fix the build (requirements, wheels, build.commands) and run `skiff update` again; the live version is untouched".into());
        }
        return Err(NotReady::Build(e));
    }
    trial_outcome(session, status, &out, &err).map_err(NotReady::Trial)
}

/// Routes and state.toml: the switch itself (one round trip; keeps the lock).
pub async fn switch(
    session: &Session,
    app: &str,
    state: &NodeState,
    routes: &str,
) -> Result<PhaseTimes> {
    let state_text = state.render();
    let (status, out, err) = step(session, &["switch", app, &state_text, routes]).await?;
    if status != 0 {
        return Err(failed(session, "switching versions", status, &out, &err));
    }
    Ok(phases(&out))
}

/// After every node switched: idle the freed slots, prune, unlock (one round trip).
pub async fn finish(
    session: &Session,
    app: &str,
    freed: &[String],
    prune: &[u32],
) -> Result<PhaseTimes> {
    let freed = freed.join(" ");
    let prune = prune
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let (status, out, err) = step(session, &["finish", app, &freed, &prune]).await?;
    if status != 0 {
        return Err(failed(session, "pruning", status, &out, &err));
    }
    Ok(phases(&out))
}

/// Undoes a trial: the slot goes back to what it ran, release N is removed, the lock is
/// released (a trial never changes routes). Best effort: errors are returned for reporting.
pub async fn abort(
    session: &Session,
    app: &str,
    n: Option<u32>,
    slot: &str,
    kind: &str,
) -> Result<()> {
    let n = n.map(|n| n.to_string()).unwrap_or_default();
    let (status, out, err) = step(session, &["abort", app, &n, slot, kind]).await?;
    if status != 0 {
        return Err(failed(session, "cleaning up", status, &out, &err));
    }
    Ok(())
}

/// Reads the node state without taking any lock (for `versions`).
pub async fn peek(session: &Session) -> Result<NodeState> {
    let (status, out, err) = step(session, &["peek"]).await?;
    if status != 0 {
        return Err(failed(
            session,
            "reading the node state",
            status,
            &out,
            &err,
        ));
    }
    NodeState::parse(session.node(), &out)
}

/// Releases the app's deploy lock.
pub async fn unlock(session: &Session, app: &str) -> Result<()> {
    let (status, out, err) = step(session, &["unlock", app]).await?;
    if status != 0 {
        return Err(failed(session, "unlock", status, &out, &err));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_phases_and_sections() {
        let out = "phase env 0.010\nvenv reused\nphase venv 0.500\n";
        let p = phases(out);
        assert_eq!(p["env"], 0.010);
        assert_eq!(p["venv"], 0.5);
        let s = sections("x\n---state\na = 1\n---setup\nb = 2\n");
        assert_eq!(s["state"], "a = 1\n");
        assert_eq!(s["setup"], "b = 2\n");
        assert_eq!(slot_names("py", 2), vec!["py01", "py02"]);
    }
}
