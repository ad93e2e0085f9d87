//! `skiff setup-node`: turn a bare Debian/Ubuntu node into a skiff web host, idempotently.
//!
//! The node is driven by a few shell scripts rendered from `templates/` (embedded, see
//! [`crate::assets`]) over the command's one SSH session, as root (through `sudo -n` when
//! the login user is not root):
//! 1. **probe** (read-only, one round trip): OS, packages, files with their digests (and
//!    content where it differs), folders, Apache's switches, services, config tests;
//! 2. the **plan** is computed here ([`plan::compute`]): an empty plan ends a re-run;
//!    `--dry-run` stops here and shows it with unified diffs;
//! 3. **packages** (only when some are missing, or dpkg was interrupted), then a re-probe;
//! 4. **apply**: user, folders, files, Apache modules, then `nginx -t` and
//!    `apache2ctl configtest` gate the reloads (a rejected config is replaced by the
//!    previous one and nothing reloads), then a check that unknown hosts get skiff's 404,
//!    then the stamp `/var/lib/skiff/setup.toml`; the firewall (skiff's nftables table,
//!    unless `--no-firewall`) and unattended security upgrades are part of it;
//! 5. **key-only SSH**: once a fresh key login of the login user and of the deploy user
//!    works, sshd's drop-in turns passwords off (`sshd -t`, `sshd -T`, a reload); without
//!    a confirmed key login the step is skipped and says why.
//!
//! The node layout this builds, and why Apache gets a pool of slots declared ahead (grown
//! in batches by deploys), is described in docs/node-layout.md.

pub mod desired;
pub mod plan;
pub mod probe;
pub mod render;
pub mod scripts;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::assets;
use crate::error::{Error, Result};
use crate::transport::{Output, Session, Target};

pub use desired::{
    Choices, DEFAULT_PYTHON_SLOTS, DEFAULT_RUBY_SLOTS, DEPLOY_USER, Distro, MAX_SLOTS,
    default_slots, pool_size,
};
pub use plan::Plan;

/// One finished step, as shown in the status lines and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct StepDone {
    /// Step name: `connect`, `inspect`, `packages`, `users`, `folders`, `files`,
    /// `apache-modules`, `config-test`, `services`, `check`, `stamp`.
    pub step: String,
    /// Seconds it took.
    pub seconds: f64,
    /// What it did, in a few words.
    pub detail: String,
}

/// Progress sent to the command while setup runs.
#[derive(Debug, Clone)]
pub enum Event {
    /// A long step begins (packages).
    Started {
        /// Step name.
        step: String,
        /// What it is about to do.
        detail: String,
    },
    /// A step finished.
    Done(StepDone),
}

/// What `setup-node` did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The plan computed from the first probe (what differed).
    pub plan: Plan,
    /// Whether anything was changed on the node.
    pub changed: bool,
    /// Steps with their times.
    pub steps: Vec<StepDone>,
    /// The assets digest the node now records.
    pub digest: String,
    /// After an apply: `Ok(user)` when a key login of the deploy user and its `sudo -n
    /// skiff-node version` worked (deploys log in as it from now on), else why not.
    /// `None` with `--dry-run`.
    pub deploy_login: Option<std::result::Result<String, String>>,
    /// The operating system found.
    pub os: String,
}

/// How setup-node checks, over fresh connections, that key logins work before it turns
/// passwords off: the node's target (address, port, login user, identity file) and the
/// folder of skiff's known_hosts.
#[derive(Debug, Clone)]
pub struct KeyLogin {
    /// The node as the session reached it.
    pub target: Target,
    /// The folder of skiff's known_hosts (beside cluster.toml).
    pub ssh_dir: PathBuf,
}

impl KeyLogin {
    /// Logs in as the login user and as `deploy_user` with a key alone; `Err` names who
    /// could not and why.
    pub async fn confirm(&self, deploy_user: &str) -> std::result::Result<(), String> {
        let mut users = vec![self.target.user.as_str()];
        if deploy_user != self.target.user {
            users.push(deploy_user);
        }
        for user in users {
            crate::transport::ssh::key_login(&self.target, &self.ssh_dir, user)
                .await
                .map_err(|why| format!("no key login of `{user}` confirmed ({why})"))?;
        }
        Ok(())
    }

    /// Logs in as `deploy_user` (a fresh session, its key alone as for every deploy) and
    /// runs `sudo -n skiff-node version`: what every deploy needs of it. `Err` says why not.
    pub async fn confirm_deploy(&self, deploy_user: &str) -> std::result::Result<(), String> {
        crate::transport::ssh::key_login(&self.target, &self.ssh_dir, deploy_user)
            .await
            .map_err(|why| format!("no key login of `{deploy_user}` ({why})"))?;
        let target = Target {
            user: deploy_user.to_string(),
            ..self.target.clone()
        };
        let session = Session::connect(&target, &self.ssh_dir)
            .await
            .map_err(|e| format!("could not log in as `{deploy_user}`: {e}"))?;
        let node = crate::deploy::contract::SKIFF_NODE;
        let out = session.run(&["sudo", "-n", node, "version"]).await;
        let _ = session.close().await;
        match out {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => Err(format!(
                "`sudo -n {node} version` as `{deploy_user}` failed (exit {}): {}",
                out.status.map_or("?".into(), |s| s.to_string()),
                out.tail(3).trim()
            )),
            Err(e) => Err(format!("`sudo -n {node} version` as `{deploy_user}`: {e}")),
        }
    }
}

/// Runs provisioning scripts as root over a session.
pub struct RootShell<'a> {
    session: &'a Session,
    sudo: bool,
}

impl<'a> RootShell<'a> {
    /// Scripts go through `sudo -n` unless the login user is root.
    pub fn new(session: &'a Session, login_user: &str) -> Self {
        RootShell {
            session,
            sudo: login_user != "root",
        }
    }

    fn node(&self) -> &str {
        self.session.node()
    }

    /// Runs `script` with `sh -s` as root; a non-zero exit is a normal [`Output`].
    pub async fn run(&self, script: &str) -> Result<Output> {
        if self.sudo {
            let out = self
                .session
                .run_with_input(&["sudo", "-n", "sh", "-s"], script.as_bytes())
                .await?;
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status == Some(1) && err.contains("sudo:") && err.contains("password") {
                return Err(Error::Remote {
                    node: self.node().into(),
                    command: "sudo -n sh -s".into(),
                    status: out.status,
                    output: err.into_owned(),
                    hint: Some(
                        "setup-node needs root: log in as root, or give the login user \
                         passwordless sudo"
                            .into(),
                    ),
                });
            }
            Ok(out)
        } else {
            self.session.script(script, &[]).await
        }
    }

    async fn run_ok(&self, what: &str, script: &str) -> Result<Output> {
        let out = self.run(script).await?;
        if out.success() {
            return Ok(out);
        }
        Err(Error::Remote {
            node: self.node().into(),
            command: what.into(),
            status: out.status,
            output: out.tail(30),
            hint: None,
        })
    }
}

/// The public keys that must be able to log in as the deploy user: the `.pub` beside the
/// node's identity file, or the one `ssh-keygen -y` derives from it. Empty when the node
/// has no identity file (then the login user's authorized keys on the node are used).
pub fn operator_keys(identity: Option<&Path>) -> Vec<String> {
    let Some(identity) = identity else {
        return Vec::new();
    };
    let mut pub_path = identity.as_os_str().to_owned();
    pub_path.push(".pub");
    if let Ok(text) = std::fs::read_to_string(&pub_path) {
        let keys: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| looks_like_key(l))
            .map(String::from)
            .collect();
        if !keys.is_empty() {
            return keys;
        }
    }
    let derived = std::process::Command::new("ssh-keygen")
        .args(["-y", "-P", "", "-f"])
        .arg(identity)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    match derived {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| looks_like_key(l))
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

fn looks_like_key(line: &str) -> bool {
    let mut it = line.split_whitespace();
    matches!(
        (it.next(), it.next()),
        (Some(kind), Some(blob))
            if (kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
                && blob.len() > 16
                && blob.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
    )
}

/// Checks an `--apt-proxy` URL: `http://HOST[:PORT][/PATH]` (or https), nothing that could
/// break out of apt's quoted string.
pub fn check_apt_proxy(url: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::usage(
            format!("invalid `--apt-proxy` value `{url}`: {why}"),
            "write a URL like `http://10.0.0.1:3142`",
        )
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("it must start with http:// or https://"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (authority, None),
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
    {
        return Err(bad(
            "the host has characters a host name or address cannot have",
        ));
    }
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |n| n == 0)
    {
        return Err(bad("the port must be a number from 1 to 65535"));
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~/%".contains(c))
    {
        return Err(bad("the path has characters apt's config cannot hold"));
    }
    Ok(url.to_string())
}

fn secs(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

async fn probe(
    shell: &RootShell<'_>,
    desired: &desired::Desired,
    login_user: &str,
) -> Result<probe::Facts> {
    let lib = assets::server_file("lib/services.sh").text();
    let script = probe::script(desired, login_user, lib)?;
    let out = shell.run_ok("setup-node probe", &script).await?;
    let facts = probe::parse(shell.node(), &out.stdout_text())?;
    if facts.uid != Some(0) {
        return Err(Error::Failed {
            message: format!("the probe on node `{}` did not run as root", shell.node()),
            hint: Some("log in as root, or give the login user passwordless sudo".into()),
        });
    }
    Ok(facts)
}

fn facts_for(facts: &probe::Facts, choices: &Choices) -> desired::RenderFacts {
    desired::RenderFacts {
        ipv6: facts.ipv6,
        os: facts.os(),
        python_slots: desired::pool_size(
            choices.python_slots,
            facts.mem_kib,
            facts.pool_on_node("python"),
        ),
        ruby_slots: desired::pool_size(
            choices.ruby_slots,
            facts.mem_kib,
            facts.pool_on_node("ruby"),
        ),
    }
}

/// Notes on the pool: a smaller `--python-slots`/`--ruby-slots` than the node has.
fn pool_notes(facts: &probe::Facts, choices: &Choices) -> Vec<String> {
    let mut notes = Vec::new();
    for (kind, flag, asked) in [
        ("Python", "--python-slots", choices.python_slots),
        ("Ruby", "--ruby-slots", choices.ruby_slots),
    ] {
        let have = facts.pool_on_node(&kind.to_lowercase());
        if let Some(n) = asked
            && n < have
        {
            notes.push(format!(
                "the node has {have} {kind} slots (deploys grow the pool); `{flag} {n}` keeps \
                 them all: setup-node never removes a slot"
            ));
        }
    }
    notes
}

/// The config tests the probe ran, as an error when one fails.
fn failing_test(node: &str, facts: &probe::Facts) -> Option<Error> {
    for svc in ["nginx", "apache2"] {
        if let Some(t) = facts.tests.get(svc)
            && t.status != 0
        {
            return Some(scripts::rejected(node, svc, t.output.clone(), false));
        }
    }
    None
}

fn apply_detail(step: &str, plan: &Plan) -> Option<String> {
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    Some(match step {
        "users" => {
            let mut parts = Vec::new();
            if let Some(user) = &plan.create_user {
                parts.push(format!("user {user}"));
            }
            if !plan.add_groups.is_empty() {
                parts.push(format!("groups {}", plan.add_groups.join(" ")));
            }
            if parts.is_empty() {
                return None;
            }
            parts.join(", ")
        }
        "folders" if !plan.dirs.is_empty() => count(plan.dirs.len(), "folder"),
        "files" if !plan.files.is_empty() || !plan.removals.is_empty() => {
            let mut s = count(plan.files.len(), "file");
            if !plan.removals.is_empty() {
                s.push_str(&format!(", removed {}", plan.removals.join(", ")));
            }
            s
        }
        "apache-modules" if !plan.apache.is_empty() => {
            let mut on: Vec<String> = plan.apache.enable_mods.clone();
            if plan.apache.enable_php {
                on.push("php".into());
            }
            on.extend(plan.apache.enable_confs.iter().map(|c| format!("conf {c}")));
            on.extend(plan.apache.enable_sites.iter().map(|s| format!("site {s}")));
            let mut off: Vec<String> = plan.apache.disable_mods.clone();
            off.extend(
                plan.apache
                    .disable_sites
                    .iter()
                    .map(|s| format!("site {s}")),
            );
            let mut s = String::from("Apache: ");
            if !on.is_empty() {
                s.push_str(&format!("enabled {}", on.join(", ")));
            }
            if !off.is_empty() {
                if !on.is_empty() {
                    s.push_str("; ");
                }
                s.push_str(&format!("disabled {}", off.join(", ")));
            }
            s
        }
        "config-test" => "nginx -t and apache2ctl configtest: ok".into(),
        "services" if !plan.service_phrases().is_empty() => plan
            .service_phrases()
            .iter()
            .map(|p| {
                p.replacen("start ", "started ", 1)
                    .replacen("reload ", "reloaded ", 1)
                    .replacen("restart ", "restarted ", 1)
            })
            .collect::<Vec<_>>()
            .join(", "),
        "firewall" => match plan.firewall {
            plan::FirewallAction::Load => format!(
                "nftables table {} loaded: TCP {} open, {} to the apps' nodes only",
                crate::deploy::contract::FIREWALL_TABLE,
                ports(&crate::deploy::contract::OPEN_TCP_PORTS),
                ports(&crate::deploy::contract::DB_PORTS),
            ),
            plan::FirewallAction::Unload => format!(
                "nftables table {} removed (--no-firewall)",
                crate::deploy::contract::FIREWALL_TABLE
            ),
            plan::FirewallAction::None => return None,
        },
        "check" => "unknown hosts get skiff's 404 page".into(),
        "stamp" => "recorded in /var/lib/skiff/setup.toml".into(),
        _ => return None,
    })
}

/// A setup script's end: a check that rejected a config (its `@@fail` marker: the
/// previous files are back, but for the unknown-host check and nftables, which put
/// nothing in place), or the script's own failure.
fn script_result(
    node: &str,
    command: &str,
    out: &Output,
    failure: Option<(String, String)>,
) -> Result<()> {
    if let Some((what, output)) = failure {
        let restored = what != "check" && what != "nft";
        return Err(scripts::rejected(node, &what, output, restored));
    }
    if !out.success() {
        return Err(Error::Remote {
            node: node.into(),
            command: command.into(),
            status: out.status,
            output: out.tail(30),
            hint: Some("setup-node can be run again safely".into()),
        });
    }
    Ok(())
}

fn ports(list: &[u16]) -> String {
    list.iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The error for a node where nftables cannot run (a container without CAP_NET_ADMIN).
fn no_nftables(node: &str, why: &str) -> Error {
    Error::Failed {
        message: format!(
            "node `{node}` cannot run nftables, so setup-node cannot turn its firewall on: `nft \
             list tables` said: {why}"
        ),
        hint: Some(
            "a container needs CAP_NET_ADMIN in its own network namespace (systemd-nspawn: \
             `--capability=CAP_NET_ADMIN`); or run `skiff setup-node --no-firewall` and \
             firewall the node from its host"
                .into(),
        ),
    }
}

/// Sets up the node behind `session`: probe, plan, and unless `dry_run`, packages and
/// apply. `events` receives progress (one `Done` per step, with its time).
pub async fn setup_node(
    session: &Session,
    login: &KeyLogin,
    choices: &Choices,
    dry_run: bool,
    events: &mut dyn FnMut(Event),
) -> Result<Outcome> {
    let login_user = login.target.user.as_str();
    let node = session.node().to_string();
    let shell = RootShell::new(session, login_user);
    let mut steps = Vec::new();
    fn done(
        events: &mut dyn FnMut(Event),
        steps: &mut Vec<StepDone>,
        step: &str,
        t: Instant,
        detail: String,
    ) {
        let s = StepDone {
            step: step.into(),
            seconds: secs(t),
            detail,
        };
        events(Event::Done(s.clone()));
        steps.push(s);
    }

    // 1. probe, rendered for a guess of the node (its content answers stand for the rest);
    // a second time when the slot pool turns out another size than guessed (the probe
    // must have looked at every slot file the plan compares)
    let t = Instant::now();
    let mut guess_facts = desired::RenderFacts {
        ipv6: true,
        os: String::new(),
        python_slots: choices.python_slots.unwrap_or(DEFAULT_PYTHON_SLOTS),
        ruby_slots: choices.ruby_slots.unwrap_or(DEFAULT_RUBY_SLOTS),
    };
    let mut guess = desired::Desired::build(Distro::Debian12, &guess_facts, choices)?;
    let mut facts = probe(&shell, &guess, login_user).await?;
    let sized = facts_for(&facts, choices);
    if (sized.python_slots, sized.ruby_slots) != (guess_facts.python_slots, guess_facts.ruby_slots)
    {
        guess_facts.python_slots = sized.python_slots;
        guess_facts.ruby_slots = sized.ruby_slots;
        guess = desired::Desired::build(Distro::Debian12, &guess_facts, choices)?;
        facts = probe(&shell, &guess, login_user).await?;
    }
    let distro =
        Distro::from_os_release(&facts.os_id, &facts.os_version).ok_or_else(|| Error::Failed {
            message: format!(
                "node `{node}` runs {} {}, which setup-node does not support",
                facts.os_id, facts.os_version
            ),
            hint: Some("setup-node supports Debian 12, Ubuntu 22.04 and Ubuntu 24.04".into()),
        })?;
    let mut choices = choices.clone();
    let no_key = choices.operator_keys.is_empty() && facts.login_keys.is_empty();
    if choices.operator_keys.is_empty() {
        choices.operator_keys = facts.login_keys.clone();
    }
    let desired = desired::Desired::build(distro, &facts_for(&facts, &choices), &choices)?;
    let mut plan = plan::compute(&node, distro.label(), &desired, &guess, &facts)?;
    plan.notes.extend(pool_notes(&facts, &choices));
    if no_key {
        plan.notes.push(format!(
            "no operator key found: nobody can log in as `{}` until a key is added to its \
             authorized_keys (create the node with `--identity FILE` to use that key)",
            desired.user
        ));
    }
    if let (true, probe::FirewallState::Unsupported(why)) = (desired.firewall, &facts.firewall) {
        return Err(no_nftables(&node, why));
    }
    let first_plan = plan.clone();
    let summary = if plan.is_empty() {
        format!("{}: nothing to change", distro.label())
    } else {
        let mut parts = vec![distro.label().to_string()];
        if !plan.packages.is_empty() {
            parts.push(format!(
                "{} package{} to install",
                plan.packages.len(),
                if plan.packages.len() == 1 { "" } else { "s" }
            ));
        }
        if !plan.files.is_empty() {
            parts.push(format!(
                "{} file{} to write",
                plan.files.len(),
                if plan.files.len() == 1 { "" } else { "s" }
            ));
        }
        parts.join(", ")
    };
    done(events, &mut steps, "inspect", t, summary);

    if dry_run {
        let mut first_plan = first_plan;
        // say now whether the key-only step would run (the same fresh logins it tries)
        if first_plan.sshd.is_some() {
            first_plan.notes.push(if !facts.user_exists {
                format!(
                    "key-only SSH: `{}` does not exist yet; its key login is tried once it \
                     is made",
                    desired.user
                )
            } else {
                match login.confirm(desired.user).await {
                    Ok(()) => format!(
                        "key-only SSH: key logins of `{login_user}` and `{}` work now, so \
                         passwords would go off",
                        desired.user
                    ),
                    Err(why) => format!("key-only SSH would be skipped now: {why}"),
                }
            });
        }
        return Ok(Outcome {
            plan: first_plan,
            changed: false,
            steps,
            digest: assets::digest().to_string(),
            os: distro.label().into(),
            deploy_login: None,
        });
    }

    // 2. packages, then a fresh look at what they brought
    if plan.needs_apt() {
        let t = Instant::now();
        let what = if plan.packages.is_empty() {
            "nothing new; finishing an interrupted dpkg".to_string()
        } else {
            plan.packages.join(" ")
        };
        events(Event::Started {
            step: "packages".into(),
            detail: what,
        });
        let script = scripts::apt_script(&plan, &desired)?;
        let out = shell.run(&script).await?;
        if !out.success() {
            let output = String::from_utf8_lossy(&out.stderr).into_owned();
            let ubuntu = matches!(distro, Distro::Ubuntu2204 | Distro::Ubuntu2404);
            let hint = if ubuntu && output.contains("Unable to locate package") {
                "Passenger for Apache comes from Ubuntu's `universe` component: enable it \
                 (`add-apt-repository universe`), then run setup-node again"
            } else {
                "see /var/log/skiff/apt.log on the node; setup-node can be run again safely"
            };
            return Err(Error::Remote {
                node,
                command: "apt-get install".into(),
                status: out.status,
                output,
                hint: Some(hint.into()),
            });
        }
        done(
            events,
            &mut steps,
            "packages",
            t,
            if plan.packages.is_empty() {
                "nothing: finished the interrupted dpkg".into()
            } else {
                format!("{} packages", plan.packages.len())
            },
        );
        facts = probe(&shell, &desired, login_user).await?;
        plan = plan::compute(&node, distro.label(), &desired, &desired, &facts)?;
        plan.notes.extend(pool_notes(&facts, &choices));
        if let (true, probe::FirewallState::Unsupported(why)) = (desired.firewall, &facts.firewall)
        {
            return Err(no_nftables(&node, why));
        }
    }

    // 3. apply, or just make sure the node is healthy
    let mut changed = !steps.iter().all(|s| s.step == "inspect");
    if plan.needs_apply() {
        let lib = assets::server_file("lib/services.sh").text();
        let script = scripts::apply_script(&plan, &desired, lib)?;
        let out = shell.run(&script).await?;
        let report = scripts::parse_report(&out.stdout_text());
        for s in &report.steps {
            if let Some(detail) = apply_detail(&s.name, &plan) {
                let step = StepDone {
                    step: s.name.clone(),
                    seconds: (s.seconds * 1000.0).round() / 1000.0,
                    detail,
                };
                events(Event::Done(step.clone()));
                steps.push(step);
            }
        }
        script_result(&node, "setup-node apply", &out, report.failure)?;
        changed = true;
    } else if let Some(err) = failing_test(&node, &facts) {
        return Err(err);
    }

    // 4. key-only SSH, once a key login of both users works over a fresh connection
    if let Some(change) = &plan.sshd {
        let t = Instant::now();
        match login.confirm(desired.user).await {
            Ok(()) => {
                let out = shell.run(&scripts::ssh_script(change)?).await?;
                let report = scripts::parse_report(&out.stdout_text());
                script_result(&node, "setup-node key-only SSH", &out, report.failure)?;
                done(
                    events,
                    &mut steps,
                    "key-only-ssh",
                    t,
                    format!(
                        "passwords off in sshd ({}; key logins of `{login_user}` and `{}` \
                         confirmed), sshd reloaded",
                        change.path, desired.user
                    ),
                );
                changed = true;
            }
            Err(why) => done(
                events,
                &mut steps,
                "key-only-ssh-skipped",
                t,
                format!("key-only SSH not turned on: {why}; passwords still work"),
            ),
        }
    }
    // 5. deploys log in as the deploy user from now on, once it can log in and reach
    // skiff-node through sudo (what every deploy step needs)
    let t = Instant::now();
    let deploy_login = match login.confirm_deploy(desired.user).await {
        Ok(()) => {
            done(
                events,
                &mut steps,
                "deploy-user",
                t,
                format!(
                    "deploys log in as `{}` (key login and `sudo -n skiff-node` confirmed)",
                    desired.user
                ),
            );
            Ok(desired.user.to_string())
        }
        Err(why) => Err(why),
    };
    Ok(Outcome {
        plan: first_plan,
        changed,
        steps,
        digest: assets::digest().to_string(),
        os: distro.label().into(),
        deploy_login: Some(deploy_login),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_proxy_urls() {
        for good in [
            "http://10.0.0.1:3142",
            "https://proxy.example.com/apt/",
            "http://[::1]:3142",
        ] {
            assert!(check_apt_proxy(good).is_ok(), "{good}");
        }
        for bad in [
            "10.0.0.1:3142",
            "http://x\";Acquire::foo",
            "http://host:0",
            "http://host:99999",
            "http://ho st",
            "ftp://x",
            "http://",
        ] {
            let e = check_apt_proxy(bad).unwrap_err();
            assert!(e.to_string().contains("--apt-proxy"), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_are_recognised() {
        assert!(looks_like_key(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF op@x"
        ));
        assert!(!looks_like_key("command=\"x\" ssh-ed25519 AAAA"));
        assert!(!looks_like_key("# comment"));
    }
}
