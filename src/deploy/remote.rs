//! The deploy steps as they run on one node: thin typed wrappers around `node.sh`, one
//! SSH round trip each, parsing what the script prints.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::node_state::{NodeState, SlotKind};
use crate::transport::ssh::Session;

/// The node-side half of every deploy step (see its header for the steps).
pub const SCRIPT: &str = include_str!("node.sh");

use super::contract::exit::{HEALTH_FAILED, LOCK_HELD, NOT_SET_UP, PACKAGES_FAILED};

/// What `begin` learned: the node's state and its slot pool.
#[derive(Debug, Clone)]
pub struct Begun {
    /// `/var/lib/skiff/state.toml` (the app's own entry is the truth while its lock is
    /// held; other apps' entries may change until the node lock is taken).
    pub state: NodeState,
    /// The node's Python slots (`py01`...): its slot vhost files.
    pub python_slots: Vec<String>,
    /// The node's Ruby slots (`rb01`...).
    pub ruby_slots: Vec<String>,
    /// The user each slot runs as (its owner app's, or www-data: no app owns it yet).
    pub slot_users: BTreeMap<String, String>,
    /// OS recorded by setup-node (part of the venv key).
    pub os: String,
    /// Whether `/etc/skiff/env/APP.env` exists (node-side secrets of the app).
    pub has_node_config: bool,
    /// Every release number of the app found on disk, the state's and leftovers alike.
    pub found: Vec<u32>,
    /// Whether systemd is the node's PID 1 (workers and cron need it).
    pub systemd: bool,
}

/// The truth about what apps share on a node, read under the node lock.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// `/var/lib/skiff/state.toml` as it is now.
    pub state: NodeState,
    /// What each slot's `slot.json` names: slot -> release folder.
    pub slot_files: BTreeMap<String, String>,
}

/// Outcome of trying to take a lock.
#[derive(Debug)]
pub enum Lock<T> {
    /// Ours now, with what was read under it.
    Taken(T),
    /// Someone else's: their owner line.
    Held(String),
}

/// The outcome of `begin`: the app's lock and what was read under it.
pub type LockAttempt = Lock<Box<Begun>>;

/// Per-phase seconds reported by the node (`phase NAME SECONDS` lines).
pub type PhaseTimes = BTreeMap<String, f64>;

pub(crate) fn phases(out: &str) -> PhaseTimes {
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some("phase")).then_some(())?;
            Some((parts.next()?.to_string(), parts.next()?.parse().ok()?))
        })
        .collect()
}

pub(crate) fn sections(out: &str) -> BTreeMap<String, String> {
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

/// The slots of kind `prefix` (`py`, `rb`) in `begin`'s `---pool` section (`SLOT USER`
/// per vhost file), sorted; `None` without the section (a node set up before slots had
/// files of their own: its pool is setup.toml's count).
pub(crate) fn pool_slots(pool: Option<&str>, prefix: &str) -> Option<Vec<String>> {
    let mut slots: Vec<String> = pool?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|l| {
            l.strip_prefix(prefix)
                .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(String::from)
        .collect();
    slots.sort();
    Some(slots)
}

/// Who each slot of `begin`'s `---pool` section runs as (`SLOT USER` lines; a line
/// without a user, from an older node, is www-data's).
pub(crate) fn pool_users(pool: Option<&str>) -> BTreeMap<String, String> {
    pool.unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let slot = w.next()?;
            Some((slot.to_string(), w.next().unwrap_or("www-data").to_string()))
        })
        .collect()
}

/// `app` has no free slot of `kind` of its own: gives it `slots` (free ones no app owns,
/// or new ones) through `skiff-node slots-own` (config test, one Apache graceful reload,
/// restored on failure), so their processes run as the app's user. Needs the node lock.
pub async fn own(
    session: &Session,
    app: &str,
    owner: &str,
    kind: SlotKind,
    slots: &[String],
) -> Result<()> {
    let list = slots.join(" ");
    let vars = [
        ("app", app),
        ("owner", owner),
        ("kind", kind.name()),
        ("own_slots", list.as_str()),
    ];
    let (status, out, err) = step(session, "grow", &vars, &[]).await?;
    if status != 0 {
        let mut e = failed(
            session,
            "giving the app slots of its own",
            status,
            &out,
            &err,
        );
        if let Error::Remote { hint, .. } = &mut e {
            *hint = Some(format!(
                "the pool is unchanged; re-run `skiff setup-node {}` (it installs the \
                 helper that gives slots to apps), or free slots with `skiff destroy-app HOST`",
                session.node()
            ));
        }
        return Err(e);
    }
    Ok(())
}

/// Runs step `name` of node.sh with its named inputs in the prelude (never in argv).
async fn step(
    session: &Session,
    name: &str,
    vars: &[(&str, &str)],
    args: &[&str],
) -> Result<(i32, String, String)> {
    let mut argv = vec![name];
    argv.extend_from_slice(args);
    let contract = super::contract::prelude();
    let mut all: Vec<(&str, &str)> = contract.iter().map(|(n, v)| (*n, v.as_str())).collect();
    all.extend_from_slice(vars);
    let out = session.script_with(SCRIPT, &all, &argv).await?;
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

/// The release whose systemd units (workers, timers) run after a switch to `state`: the
/// app's current one ("" when the state drops the app or it has no current release).
fn units_release(state: &NodeState, app: &str) -> String {
    state
        .apps
        .get(app)
        .and_then(|a| a.current)
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// A refused switch: NGINX's config test, or a worker of the new release that did not
/// stay up (with its journal tail).
fn switch_failed(session: &Session, status: i32, out: &str, err: &str) -> Error {
    if status != super::contract::exit::WORKERS {
        return failed(session, "switching versions", status, out, err);
    }
    let journal = sections(out).get("workers").cloned().unwrap_or_default();
    Error::Remote {
        node: session.node().to_string(),
        command: "starting the new version's workers".into(),
        status: Some(status),
        output: tail(&format!("{}\n{}", err.trim(), journal.trim_end()), 40),
        hint: Some(
            "the worker exited or restarted within its first seconds (its journal is above); the previous version still serves and its workers run again".into(),
        ),
    }
}

/// The owner line after a `HELD` line (exit [`LOCK_HELD`]).
pub(crate) fn holder(out: &str) -> String {
    out.lines()
        .skip_while(|l| *l != "HELD")
        .nth(1)
        .unwrap_or("unknown")
        .to_string()
}

fn brk(break_lock: bool) -> &'static str {
    if break_lock { "1" } else { "0" }
}

/// Takes `app`'s deploy lock on the node and reads its state (one round trip). With
/// `break_lock`, a stale lock is removed first and the processes of its dead run stopped.
pub async fn begin(
    session: &Session,
    app: &str,
    owner: &str,
    break_lock: bool,
) -> Result<LockAttempt> {
    let vars = [("app", app), ("owner", owner), ("brk", brk(break_lock))];
    let (status, out, err) = step(session, "begin", &vars, &[]).await?;
    match status {
        0 => {}
        LOCK_HELD => return Ok(Lock::Held(holder(&out))),
        NOT_SET_UP => {
            return Err(Error::Failed {
                message: format!("node `{}` is not set up for skiff", session.node()),
                hint: Some(format!("run `skiff setup-node {}` first", session.node())),
            });
        }
        _ => return Err(failed(session, "deploy step `begin`", status, &out, &err)),
    }
    Ok(Lock::Taken(Box::new(begun(session.node(), &out)?)))
}

/// What `begin` printed on success (`---state`, `---setup`, `---pool`, `---env`,
/// `---found`), read for `node`.
pub(crate) fn begun(node: &str, out: &str) -> Result<Begun> {
    let parts = sections(out);
    let state = NodeState::parse(node, parts.get("state").map_or("", String::as_str))?;
    let setup: toml::Table = toml::from_str(parts.get("setup").map_or("", String::as_str))
        .map_err(|e| Error::Failed {
            message: format!(
                "node `{node}` has an unreadable /var/lib/skiff/setup.toml: {}",
                e.message()
            ),
            hint: Some(format!("re-run `skiff setup-node {node}`")),
        })?;
    let count = |key: &str| {
        setup
            .get(key)
            .and_then(|v| v.as_integer())
            .unwrap_or(0)
            .max(0) as usize
    };
    let pool = parts.get("pool").map(String::as_str);
    Ok(Begun {
        state,
        python_slots: pool_slots(pool, "py")
            .unwrap_or_else(|| slot_names("py", count("python_slots"))),
        ruby_slots: pool_slots(pool, "rb").unwrap_or_else(|| slot_names("rb", count("ruby_slots"))),
        slot_users: pool_users(pool),
        os: setup
            .get("os")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string(),
        has_node_config: parts
            .get("env")
            .is_some_and(|e| e.contains("node-config=yes")),
        found: parts
            .get("found")
            .map(|f| f.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default(),
        systemd: parts.get("env").is_some_and(|e| e.contains("init=systemd")),
    })
}

/// On the node that holds the app's services, before the others prepare: makes them ready
/// for the app's other nodes (`allow`, their addresses) and returns their credential files
/// (`NAME.env`, `NAME.json`), which never leave memory on the laptop.
pub async fn services(
    session: &Session,
    app: &str,
    owner: &str,
    services: &str,
    allow: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    use base64::Engine as _;
    let vars = [
        ("app", app),
        ("owner", owner),
        ("services", services),
        ("allow", allow),
    ];
    let (status, out, err) = step(session, "services", &vars, &[]).await?;
    if status != 0 {
        let mut e = failed(session, "preparing [services]", status, &out, &err);
        if let Error::Remote { hint, .. } = &mut e {
            *hint = Some("the service's server or database could not be made ready (its output is above); the live version is untouched".into());
        }
        return Err(e);
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    sections(&out)
        .into_iter()
        .filter_map(|(name, body)| name.strip_prefix("file ").map(|n| (n.to_string(), body)))
        .map(|(name, body)| {
            b64.decode(body.trim())
                .map(|bytes| (name.clone(), bytes))
                .map_err(|_| {
                    Error::failed(format!(
                        "node `{}` sent an unreadable credentials file `{name}`",
                        session.node()
                    ))
                })
        })
        .collect()
}

/// Removes releases of `app` that no state names (a dead run's), under the app's lock.
pub async fn recover(session: &Session, app: &str, owner: &str, numbers: &[u32]) -> Result<()> {
    let numbers = join(numbers);
    let vars = [
        ("app", app),
        ("owner", owner),
        ("numbers", numbers.as_str()),
    ];
    let (status, out, err) = step(session, "recover", &vars, &[]).await?;
    if status != 0 {
        return Err(failed(
            session,
            "removing an interrupted deploy's leftovers",
            status,
            &out,
            &err,
        ));
    }
    Ok(())
}

fn join(numbers: &[u32]) -> String {
    numbers
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the node printed after taking its node lock: the state and the slot files.
pub(crate) fn node_view(node: &str, out: &str) -> Result<NodeView> {
    let parts = sections(out);
    let state = NodeState::parse(node, parts.get("state").map_or("", String::as_str))?;
    let slot_files = parts
        .get("slots")
        .map(|s| {
            s.lines()
                .filter_map(|l| {
                    let (slot, release) = l.split_once(' ')?;
                    Some((slot.to_string(), release.trim().to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(NodeView { state, slot_files })
}

/// Takes the node lock (after the app's) and reads the truth under it: one round trip.
pub async fn node_lock(
    session: &Session,
    app: &str,
    owner: &str,
    break_lock: bool,
) -> Result<Lock<NodeView>> {
    let vars = [("app", app), ("owner", owner), ("brk", brk(break_lock))];
    let (status, out, err) = step(session, "nodelock", &vars, &[]).await?;
    match status {
        0 => Ok(Lock::Taken(node_view(session.node(), &out)?)),
        LOCK_HELD => Ok(Lock::Held(holder(&out))),
        _ => Err(failed(session, "taking the node lock", status, &out, &err)),
    }
}

/// Releases only the node lock (the app's stays held), if this owner holds it.
pub async fn node_unlock(session: &Session, app: &str, owner: &str) -> Result<()> {
    let vars = [("app", app), ("owner", owner), ("which", "node")];
    let (status, out, err) = step(session, "unlock", &vars, &[]).await?;
    if status != 0 {
        return Err(failed(
            session,
            "releasing the node lock",
            status,
            &out,
            &err,
        ));
    }
    Ok(())
}

/// Everything `prepare` needs for one release.
#[derive(Debug, Clone, Default)]
pub struct Prepare {
    /// `python`, `ruby`, `php` or `static`: which tools build commands find first.
    pub runtime: &'static str,
    /// The user the app's processes run as ([`crate::units::run_user`]): the group of its
    /// folders that hold its environment.
    pub run_user: String,
    /// `[packages] apt`, space-separated (names checked by Debian's grammar at load).
    pub packages: String,
    /// Whether a new venv sees the system's Python packages.
    pub system_site: bool,
    /// Release meta (what a slot or PHP docroot loads), JSON. Holds the app's
    /// environment: it reaches the node in the prelude, never in argv.
    pub meta: String,
    /// Venv key, when the app has requirements.
    pub venv: String,
    /// Requirements file inside the release.
    pub requirements: String,
    /// Requirements text to install when `requirements` is empty (pyproject.toml's
    /// `[project] dependencies`, one per line).
    pub requirements_text: String,
    /// Wheels folder inside the release ("" = use the index).
    pub wheels: String,
    /// PHP docroot inside the release ("" = not PHP).
    pub docroot: String,
    /// Bundler bundle key ("" = none): `bundles/KEY`, made once with `bundle install`.
    pub bundle: String,
    /// `bundle install --local` (the app ships `vendor/cache`).
    pub bundle_local: bool,
    /// Composer vendor key ("" = none): `vendors/KEY`, made once with `composer
    /// install`, hard-linked into the release as `vendor/`.
    pub composer: String,
    /// `KEY=VALUE` lines of the release's plain environment (for build commands).
    pub env_lines: String,
    /// `build.commands`.
    pub commands: Vec<String>,
    /// Seconds a build command may run (`[build] timeout`).
    pub build_timeout: u64,
    /// The release's systemd units and job files, in their wire form ("" = none).
    pub units: String,
    /// The app's services, `NAME TYPE` lines ("" = none).
    pub services: String,
    /// On a node that does not hold the services: their credential files from the node
    /// that does (`NAME BASE64` lines, pointing at it); "" on the services' node.
    pub service_files: String,
    /// On the services' node: the app's other nodes' addresses, let in to its databases.
    pub allow: String,
    /// The release command, on the one node that runs it ("" elsewhere).
    pub release: String,
    /// Dump every service on the node before the release command.
    pub backup_first: bool,
}

/// What `trial` needs: where to load release N, and how to check it.
#[derive(Debug, Clone)]
pub struct Trial<'a> {
    /// App name.
    pub app: &'a str,
    /// This run's lock owner line.
    pub owner: &'a str,
    /// Release number.
    pub n: u32,
    /// Slot to load into and its kind (none for PHP and static).
    pub slot: Option<(&'a str, SlotKind)>,
    /// Processes that must answer with this run's token.
    pub want: u32,
    /// Release N's backend name (`N.APP.KIND.skiff`), checked on NGINX's loopback
    /// check port before any route points at it. Never shown to the app or the user.
    pub backend: &'a str,
    /// Release N's version host (`N.HOST`): the host the app sees on skiff's own warming
    /// and health-check requests.
    pub vhost: &'a str,
    /// Health path.
    pub health: &'a str,
    /// Seconds allowed for warming and for the health check each.
    pub timeout: f64,
    /// This run's token (`N-NONCE`): written into slot.json, answered by the loader.
    pub token: &'a str,
    /// Slots to reset first (a dead run loaded them).
    pub reset: &'a [String],
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
/// Needs the node lock.
pub async fn trial(session: &Session, t: &Trial<'_>) -> Result<Result<PhaseTimes, HealthFailure>> {
    trial_or_go(session, t, None).await
}

/// What the switch and finish of a one-node deploy need, sent with its trial.
#[derive(Debug, Clone, Copy)]
pub struct AndSwitch<'a> {
    /// The node's state after the switch.
    pub state: &'a NodeState,
    /// Its routing table.
    pub routes: &'a str,
    /// Slots the switch frees.
    pub freed: &'a [String],
    /// Releases to prune.
    pub prune: &'a [u32],
    /// The run's deploy-log line.
    pub history: &'a str,
}

/// A deploy to one node: trial, then (when it passed) switch and finish, in one round
/// trip. No other node has to agree, so nothing is gained by a round trip in between.
pub async fn go(
    session: &Session,
    t: &Trial<'_>,
    then: AndSwitch<'_>,
) -> Result<Result<PhaseTimes, HealthFailure>> {
    trial_or_go(session, t, Some(then)).await
}

async fn trial_or_go(
    session: &Session,
    t: &Trial<'_>,
    then: Option<AndSwitch<'_>>,
) -> Result<Result<PhaseTimes, HealthFailure>> {
    let n = t.n.to_string();
    let want = t.want.to_string();
    let timeout = format!("{:.1}", t.timeout);
    let reset = t.reset.join(" ");
    let mut vars = vec![
        ("app", t.app),
        ("owner", t.owner),
        ("n", n.as_str()),
        ("slot", t.slot.map_or("", |(s, _)| s)),
        ("kind", t.slot.map_or("", |(_, k)| k.name())),
        ("want", want.as_str()),
        ("backend", t.backend),
        ("vhost", t.vhost),
        ("health", t.health),
        ("timeout", timeout.as_str()),
        ("token", t.token),
        ("reset", reset.as_str()),
    ];
    let state_text;
    let freed;
    let prune;
    let run;
    if let Some(then) = &then {
        state_text = then.state.render();
        freed = then.freed.join(" ");
        prune = join(then.prune);
        run = units_release(then.state, t.app);
        vars.extend([
            ("state", state_text.as_str()),
            ("routes", then.routes),
            ("run", run.as_str()),
            ("freed", freed.as_str()),
            ("prune", prune.as_str()),
            ("history", then.history),
        ]);
    }
    let name = if then.is_some() { "go" } else { "trial" };
    let (status, out, err) = step(session, name, &vars, &[]).await?;
    if status == HEALTH_FAILED {
        let parts = sections(&out);
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
    if status == super::contract::exit::WORKERS && then.is_some() {
        return Err(switch_failed(session, status, &out, &err));
    }
    if status != 0 {
        let what = if status == super::contract::exit::NGINX && then.is_some() {
            "switching versions"
        } else {
            "loading the new release"
        };
        return Err(failed(session, what, status, &out, &err));
    }
    Ok(Ok(phases(&out)))
}

/// What a passed `prepare` left: its phases, and the node lock if it was free.
#[derive(Debug)]
pub struct Prepared {
    /// Seconds per phase (env, venv, build, meta).
    pub phases: PhaseTimes,
    /// The node lock, tried right after the build in the same round trip.
    pub lock: Lock<NodeView>,
}

/// `prepare` (env snapshot, venv, build commands, the release's meta), then an attempt
/// at the node lock, in one round trip. Needs the app's lock; the environment travels in
/// the prelude, never in argv (where `ps` on the node would show it).
pub async fn prepare(
    session: &Session,
    app: &str,
    owner: &str,
    n: u32,
    p: &Prepare,
) -> Result<Prepared> {
    let n = n.to_string();
    let timeout = p.build_timeout.to_string();
    let vars = [
        ("app", app),
        ("owner", owner),
        ("n", n.as_str()),
        ("runtime", p.runtime),
        ("run_user", p.run_user.as_str()),
        ("packages", p.packages.as_str()),
        ("system_site", if p.system_site { "1" } else { "0" }),
        ("meta", p.meta.as_str()),
        ("venv", p.venv.as_str()),
        ("req", p.requirements.as_str()),
        ("reqtext", p.requirements_text.as_str()),
        ("wheels", p.wheels.as_str()),
        ("docroot", p.docroot.as_str()),
        ("bundle", p.bundle.as_str()),
        ("bundle_local", if p.bundle_local { "1" } else { "" }),
        ("composer", p.composer.as_str()),
        ("envlines", p.env_lines.as_str()),
        ("build_timeout", timeout.as_str()),
        ("units", p.units.as_str()),
        ("services", p.services.as_str()),
        ("service_files", p.service_files.as_str()),
        ("allow", p.allow.as_str()),
        ("release", p.release.as_str()),
        ("backup_first", if p.backup_first { "1" } else { "" }),
    ];
    let commands: Vec<&str> = p.commands.iter().map(String::as_str).collect();
    let (status, out, err) = step(session, "prepare", &vars, &commands).await?;
    let prepared = out.lines().any(|l| l == "---prepared");
    if !prepared {
        let (what, fix) = match status {
            PACKAGES_FAILED => (
                "installing [packages] apt",
                "fix `[packages] apt` in app.toml (the name as `apt-cache search WORD` on the node shows it) and run `skiff update` again; the live version is untouched",
            ),
            super::contract::exit::SERVICE => (
                "preparing [services]",
                "the service's server or database could not be made ready (its output is above); the live version is untouched",
            ),
            super::contract::exit::RELEASE => (
                "the release command",
                "fix the release command (`[deploy] release`; its output is above) and run `skiff update` again; nothing switched, the live version is untouched (a migration that failed inside a transaction left the database as it was)",
            ),
            _ => (
                "build",
                "fix the build (requirements, wheels, Gemfile.lock, composer.lock, build.commands) and run `skiff update` again; the live version is untouched",
            ),
        };
        let mut e = failed(session, what, status, &out, &err);
        if let Error::Remote { hint, .. } = &mut e {
            *hint = Some(fix.into());
        }
        return Err(e);
    }
    let phases = phases(&out);
    let lock = match status {
        0 => Lock::Taken(node_view(session.node(), &out)?),
        LOCK_HELD => Lock::Held(holder(&out)),
        _ => return Err(failed(session, "taking the node lock", status, &out, &err)),
    };
    Ok(Prepared { phases, lock })
}

/// Routes and state.toml: the switch itself (one round trip; keeps the locks).
pub async fn switch(
    session: &Session,
    app: &str,
    owner: &str,
    state: &NodeState,
    routes: &str,
) -> Result<PhaseTimes> {
    let state_text = state.render();
    let run = units_release(state, app);
    let vars = [
        ("app", app),
        ("owner", owner),
        ("state", state_text.as_str()),
        ("routes", routes),
        ("run", run.as_str()),
    ];
    let (status, out, err) = step(session, "switch", &vars, &[]).await?;
    if status != 0 {
        return Err(switch_failed(session, status, &out, &err));
    }
    Ok(phases(&out))
}

/// After every node switched: idle the freed slots, prune, release both locks (one
/// round trip).
pub async fn finish(
    session: &Session,
    app: &str,
    owner: &str,
    freed: &[String],
    prune: &[u32],
    history: &str,
) -> Result<PhaseTimes> {
    let freed = freed.join(" ");
    let prune = join(prune);
    let vars = [
        ("app", app),
        ("owner", owner),
        ("freed", freed.as_str()),
        ("prune", prune.as_str()),
        ("history", history),
    ];
    let (status, out, err) = step(session, "finish", &vars, &[]).await?;
    if status != 0 {
        return Err(failed(session, "pruning", status, &out, &err));
    }
    Ok(phases(&out))
}

/// Undoes what this run (`owner`, `token`) did on the node: a slot it loaded goes back
/// to what it ran (only while it holds the node lock), release `n` is removed, both
/// locks are released. Safe at any point of a run, and a no-op for locks it does not
/// hold. Best effort: errors are returned for reporting.
pub async fn abort(
    session: &Session,
    app: &str,
    owner: &str,
    n: Option<u32>,
    token: &str,
    history: &str,
) -> Result<()> {
    let n = n.map(|n| n.to_string()).unwrap_or_default();
    let vars = [
        ("app", app),
        ("owner", owner),
        ("n", n.as_str()),
        ("token", token),
        ("history", history),
    ];
    let (status, out, err) = step(session, "abort", &vars, &[]).await?;
    if status != 0 {
        return Err(failed(session, "cleaning up", status, &out, &err));
    }
    Ok(())
}

/// After a switch that dropped the app: idles its slots, removes its folder (but a
/// `data/` folder) and node-side env file, and releases both locks (one round trip).
pub async fn destroy(session: &Session, app: &str, owner: &str, freed: &[String]) -> Result<()> {
    let freed = freed.join(" ");
    let vars = [("app", app), ("owner", owner), ("freed", freed.as_str())];
    let (status, out, err) = step(session, "destroy", &vars, &[]).await?;
    if status != 0 {
        return Err(failed(session, "removing the app", status, &out, &err));
    }
    Ok(())
}

/// Runs a read-only step that prints `---state` among its sections: the sections and the
/// parsed state, or an error naming `what`.
async fn read_state(
    session: &Session,
    name: &str,
    vars: &[(&str, &str)],
    what: &str,
) -> Result<(BTreeMap<String, String>, NodeState)> {
    let (status, out, err) = step(session, name, vars, &[]).await?;
    if status != 0 {
        return Err(failed(session, what, status, &out, &err));
    }
    state_of(session.node(), &out)
}

/// The sections of a read-only step's output and its `---state` parsed for `node`.
pub(crate) fn state_of(node: &str, out: &str) -> Result<(BTreeMap<String, String>, NodeState)> {
    let parts = sections(out);
    let state = NodeState::parse(node, parts.get("state").map_or("", String::as_str))?;
    Ok((parts, state))
}

/// The current release of an app on a node, for `skiff diff`.
#[derive(Debug, Clone)]
pub struct ReleaseView {
    /// N.
    pub number: u32,
    /// Its manifest, as the sync wrote it.
    pub manifest: String,
    /// Its meta (JSON).
    pub meta: String,
}

/// The node state and the app's current release (its manifest and meta), if any; no lock.
pub async fn current_release(
    session: &Session,
    app: &str,
) -> Result<(NodeState, Option<ReleaseView>)> {
    let (parts, state) = read_state(
        session,
        "inspect",
        &[("app", app)],
        "reading the current release",
    )
    .await?;
    Ok((state, release_of(&parts)))
}

/// The `---release`, `---manifest` and `---meta` sections of `inspect`, if a release is
/// current.
pub(crate) fn release_of(parts: &BTreeMap<String, String>) -> Option<ReleaseView> {
    parts
        .get("release")
        .and_then(|n| n.trim().parse().ok())
        .map(|number| ReleaseView {
            number,
            manifest: parts.get("manifest").cloned().unwrap_or_default(),
            meta: parts.get("meta").cloned().unwrap_or_default(),
        })
}

/// [`current_release`] for a verb that needs one: no current version is a usage error
/// naming the app and node, with the deploy that makes one.
pub async fn live_release(session: &Session, app: &str) -> Result<(NodeState, ReleaseView)> {
    let (state, release) = current_release(session, app).await?;
    let release = release.ok_or_else(|| {
        Error::usage(
            format!(
                "`{app}` has no current version on node `{}`",
                session.node()
            ),
            "deploy it with `skiff update DIR` first",
        )
    })?;
    Ok((state, release))
}

/// The content of release `n`'s files `paths` (regular files only; others are left out).
pub async fn release_files(
    session: &Session,
    app: &str,
    n: u32,
    paths: &[String],
) -> Result<BTreeMap<String, Vec<u8>>> {
    let n = n.to_string();
    let list: String = paths
        .iter()
        .filter(|p| !p.contains('\n'))
        .map(|p| format!("{p}\n"))
        .collect();
    let vars = [("app", app), ("n", n.as_str()), ("paths", list.as_str())];
    let (status, out, err) = step(session, "files", &vars, &[]).await?;
    if status != 0 {
        return Err(failed(session, "reading release files", status, &out, &err));
    }
    Ok(files_of(&out))
}

/// The `---file PATH` sections of `files` (base64 bodies), decoded; bad ones are left out.
pub(crate) fn files_of(out: &str) -> BTreeMap<String, Vec<u8>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    sections(out)
        .into_iter()
        .filter_map(|(name, body)| {
            let path = name.strip_prefix("file ")?.to_string();
            Some((path, b64.decode(body.trim()).ok()?))
        })
        .collect()
}

/// The app's deploy log as this node keeps it (JSON lines; no lock).
pub async fn history(session: &Session, app: &str) -> Result<String> {
    let (status, out, err) = step(session, "history", &[("app", app)], &[]).await?;
    if status != 0 {
        return Err(failed(
            session,
            "reading the deploy log",
            status,
            &out,
            &err,
        ));
    }
    Ok(out)
}

/// Reads the node state without taking any lock (for `versions`); with `app`, also that
/// app's systemd units: per release the unit instances it runs, and systemd's view of the
/// current release's units (`KEY=VALUE` blocks of `systemctl show`, by unit).
pub async fn peek(session: &Session, app: Option<&str>) -> Result<Peeked> {
    let vars: Vec<(&str, &str)> = app.map(|a| vec![("app", a)]).unwrap_or_default();
    let (parts, state) = read_state(session, "peek", &vars, "reading the node state").await?;
    Ok(peeked(&parts, state))
}

/// What `peek` printed besides the state: the `---units`, `---unitstate` and `---disk`
/// sections.
pub(crate) fn peeked(parts: &BTreeMap<String, String>, state: NodeState) -> Peeked {
    let units = parts
        .get("units")
        .map(|text| {
            text.lines()
                .filter_map(|l| {
                    let (n, unit) = l.split_once(' ')?;
                    Some((n.parse().ok()?, unit.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let unit_state = parts
        .get("unitstate")
        .map(|text| {
            text.split("\n\n")
                .filter_map(|block| {
                    let props: BTreeMap<String, String> = block
                        .lines()
                        .filter_map(|l| l.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    Some((props.get("Id")?.clone(), props))
                })
                .collect()
        })
        .unwrap_or_default();
    let disk_kib = parts
        .get("disk")
        .and_then(|d| d.trim().parse().ok())
        .unwrap_or(0);
    Peeked {
        state,
        units,
        unit_state,
        disk_kib,
    }
}

/// What `peek` read.
#[derive(Debug, Clone, Default)]
pub struct Peeked {
    /// The node state.
    pub state: NodeState,
    /// `(release, unit instance)` of every kept release that has units.
    pub units: Vec<(u32, String)>,
    /// systemd's properties of the current release's units, by unit name.
    pub unit_state: BTreeMap<String, BTreeMap<String, String>>,
    /// KiB the app's folder takes on the node (hard links counted once).
    pub disk_kib: u64,
}

/// `skiff config`: `list` prints the app's env file; `set` (KEY=VALUE lines) and `unset`
/// (KEY lines) change it. Values travel in the prelude (stdin), never in argv.
pub async fn config(session: &Session, app: &str, op: &str, lines: &str) -> Result<String> {
    let vars = [("app", app), ("op", op), ("lines", lines)];
    let (status, out, err) = step(session, "config", &vars, &[]).await?;
    if status != 0 {
        return Err(failed(
            session,
            "changing the app's environment",
            status,
            &out,
            &err,
        ));
    }
    Ok(out)
}

/// HOST's HTTP status at `path` through NGINX on the node (`000`: no answer).
pub async fn probe(session: &Session, host: &str, path: &str) -> Result<String> {
    let vars = [("host", host), ("path", path)];
    let (status, out, err) = step(session, "probe", &vars, &[]).await?;
    if status != 0 {
        return Err(failed(session, "checking HOST", status, &out, &err));
    }
    Ok(out.trim().to_string())
}

/// Releases both locks, if this owner holds them.
pub async fn unlock(session: &Session, app: &str, owner: &str) -> Result<()> {
    let vars = [("app", app), ("owner", owner), ("which", "both")];
    let (status, out, err) = step(session, "unlock", &vars, &[]).await?;
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

    #[test]
    fn the_pool_is_the_slot_files() {
        let pool = "py10\npy01\nrb01\npy1\npyx9\n";
        assert_eq!(pool_slots(Some(pool), "py").unwrap(), vec!["py01", "py10"]);
        assert_eq!(pool_slots(Some(pool), "rb").unwrap(), vec!["rb01"]);
        assert_eq!(pool_slots(Some(""), "rb").unwrap(), Vec::<String>::new());
        assert_eq!(pool_slots(None, "py"), None);
    }
}
