//! The plan: what differs between a node (the probe's [`Facts`]) and a set-up node
//! ([`Desired`]): packages to install, the user, folders, files (with unified diffs
//! computed here, from the content the probe sent), Apache switches and services.
//! An empty plan means a re-run has nothing to do.

use std::collections::BTreeSet;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::desired::{Affects, Desired, DesiredDir, DesiredFile, FileKind};
use super::probe::Facts;
use crate::error::{Error, Result};

/// What happens to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileAction {
    /// It does not exist yet.
    Create,
    /// Its content changes.
    Update,
    /// Only its mode or owner changes.
    Chmod,
}

/// One file to write.
#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    /// Absolute path on the node.
    pub path: String,
    /// Create, update or chmod.
    pub action: FileAction,
    /// Octal mode, e.g. `0644`.
    pub mode: String,
    /// `owner:group`.
    pub owner: String,
    /// Unified diff from the node's content to the new one (empty for chmod).
    pub diff: String,
    /// Created only when missing (then owned by `skiff update`).
    pub create_only: bool,
    #[serde(skip)]
    pub(crate) content: Vec<u8>,
    #[serde(skip)]
    pub(crate) file: DesiredFile,
}

/// One folder to create or fix.
#[derive(Debug, Clone, Serialize)]
pub struct DirChange {
    /// Absolute path.
    pub path: String,
    /// Create, or fix mode/owner.
    pub action: FileAction,
    /// Octal mode.
    pub mode: String,
    /// `owner:group`.
    pub owner: String,
    #[serde(skip)]
    pub(crate) dir: DesiredDir,
}

/// Apache switches to flip.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApacheChanges {
    /// Modules to disable (other MPMs).
    pub disable_mods: Vec<String>,
    /// Modules to enable.
    pub enable_mods: Vec<String>,
    /// Enable whichever `php*` module is installed.
    pub enable_php: bool,
    /// confs to enable.
    pub enable_confs: Vec<String>,
    /// Sites to enable.
    pub enable_sites: Vec<String>,
    /// Sites to disable.
    pub disable_sites: Vec<String>,
}

impl ApacheChanges {
    /// Whether nothing in Apache's switches changes.
    pub fn is_empty(&self) -> bool {
        self.disable_mods.is_empty()
            && self.enable_mods.is_empty()
            && !self.enable_php
            && self.enable_confs.is_empty()
            && self.enable_sites.is_empty()
            && self.disable_sites.is_empty()
    }

    fn changes_mpm(&self) -> bool {
        self.disable_mods.iter().any(|m| m.starts_with("mpm_"))
            || self.enable_mods.iter().any(|m| m.starts_with("mpm_"))
    }
}

/// What to do with a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAction {
    /// Nothing.
    None,
    /// Start it (it is not running).
    Start,
    /// Re-read config (NGINX: reload; Apache: graceful).
    Reload,
    /// Stop and start (Apache, when the MPM changes).
    Restart,
}

impl ServiceAction {
    fn as_str(self) -> &'static str {
        match self {
            ServiceAction::None => "none",
            ServiceAction::Start => "start",
            ServiceAction::Reload => "reload",
            ServiceAction::Restart => "restart",
        }
    }
}

/// What happens to skiff's firewall table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallAction {
    /// Nothing: loaded as wanted, or off and absent.
    None,
    /// Check the ruleset (`nft -c -f`), load it, enable its unit.
    Load,
    /// `--no-firewall` on a node that has it: delete the table, disable the unit.
    Unload,
}

/// Everything setup-node would change on a node.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The node's name.
    pub node: String,
    /// `Debian 12` and the like.
    pub os: String,
    /// Packages to install.
    pub packages: Vec<String>,
    /// An interrupted dpkg must be finished first.
    pub repair_dpkg: bool,
    /// The deploy user to create.
    pub create_user: Option<String>,
    /// Groups to add the deploy user to (`usermod -a -G`).
    pub add_groups: Vec<String>,
    /// Folders whose root-owned content becomes the deploy user's (`chown`): a node
    /// deployed to as root before.
    pub migrate: Vec<String>,
    /// Folders to create or fix.
    pub dirs: Vec<DirChange>,
    /// Files to write.
    pub files: Vec<FileChange>,
    /// Paths to remove (distribution default sites).
    pub removals: Vec<String>,
    /// Apache switches.
    pub apache: ApacheChanges,
    /// NGINX: start, reload or nothing.
    pub nginx: ServiceAction,
    /// Apache: start, reload (graceful), restart or nothing.
    pub apache2: ServiceAction,
    /// skiff's nftables table: load, unload or nothing.
    pub firewall: FirewallAction,
    /// sshd's key-only drop-in to write (after a key login is confirmed), reloading sshd.
    pub sshd: Option<FileChange>,
    /// Things said about the node that change nothing (shown in `--dry-run`).
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether a re-run has nothing to do.
    pub fn is_empty(&self) -> bool {
        !self.needs_apply() && self.sshd.is_none()
    }

    /// Whether the apply script has anything to do (everything but sshd's drop-in, which
    /// has its own step).
    pub fn needs_apply(&self) -> bool {
        !(self.packages.is_empty()
            && !self.repair_dpkg
            && self.create_user.is_none()
            && self.add_groups.is_empty()
            && self.migrate.is_empty()
            && self.dirs.is_empty()
            && self.files.is_empty()
            && self.removals.is_empty()
            && self.apache.is_empty()
            && self.nginx == ServiceAction::None
            && self.apache2 == ServiceAction::None
            && self.firewall == FirewallAction::None)
    }

    /// Whether apt must run.
    pub fn needs_apt(&self) -> bool {
        !self.packages.is_empty() || self.repair_dpkg
    }

    /// Services to touch, as `reload nginx`-style phrases.
    pub fn service_phrases(&self) -> Vec<String> {
        [("nginx", self.nginx), ("apache2", self.apache2)]
            .into_iter()
            .filter(|(_, a)| *a != ServiceAction::None)
            .map(|(s, a)| format!("{} {s}", a.as_str()))
            .collect()
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Unified diff from `old` to `new` for `path` (text; binary content is summarised).
pub fn unified_diff(path: &str, old: Option<&[u8]>, new: &[u8]) -> String {
    let (Ok(old_text), Ok(new_text)) = (
        std::str::from_utf8(old.unwrap_or_default()),
        std::str::from_utf8(new),
    ) else {
        return format!("binary file {path} changes\n");
    };
    let from = if old.is_some() {
        format!("a{path}")
    } else {
        "/dev/null".to_string()
    };
    similar::TextDiff::from_lines(old_text, new_text)
        .unified_diff()
        .context_radius(3)
        .header(&from, &format!("b{path}"))
        .to_string()
}

/// The lines of `wanted` missing from `current`, appended to it.
fn merge_lines(current: &[u8], wanted: &[u8]) -> Vec<u8> {
    let current_text = String::from_utf8_lossy(current);
    let have: BTreeSet<&str> = current_text.lines().map(str::trim).collect();
    let mut out = current.to_vec();
    for line in String::from_utf8_lossy(wanted).lines() {
        let line = line.trim();
        if line.is_empty() || have.contains(line) {
            continue;
        }
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The node's content of `file`, when the probe says the file exists: sent by the probe
/// when it differs from `hint` (what the probe was told skiff would write), else `hint`.
fn node_content<'a>(
    file: &DesiredFile,
    facts: &'a Facts,
    hint: Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    facts.stat.get(&file.path)?;
    match facts.content.get(&file.path) {
        Some(c) => Some(c.as_slice()),
        None => hint,
    }
}

/// Compares a node with what it should be. `probed` is the desired state the probe was
/// rendered for (its files' content stands for the node's where the probe sent none).
pub fn compute(
    node: &str,
    os: &str,
    desired: &Desired,
    probed: &Desired,
    facts: &Facts,
) -> Result<Plan> {
    let mut plan = Plan {
        node: node.into(),
        os: os.into(),
        packages: desired
            .packages
            .iter()
            .filter(|p| !facts.installed(p))
            .map(|p| p.to_string())
            .collect(),
        repair_dpkg: facts.dpkg_pending,
        create_user: (!facts.user_exists).then(|| desired.user.to_string()),
        add_groups: desired
            .groups
            .iter()
            .filter(|g| !facts.user_groups.contains(**g))
            .filter(|g| !desired.optional_groups.contains(g) || facts.groups_present.contains(**g))
            .map(|g| g.to_string())
            .collect(),
        migrate: facts.root_owned.clone(),
        dirs: Vec::new(),
        files: Vec::new(),
        removals: Vec::new(),
        apache: ApacheChanges::default(),
        nginx: ServiceAction::None,
        apache2: ServiceAction::None,
        firewall: FirewallAction::None,
        sshd: None,
        notes: Vec::new(),
    };
    let fresh_web = plan.packages.iter().any(|p| p == "nginx" || p == "apache2");

    for d in &desired.dirs {
        let action = match facts.stat.get(&d.path) {
            None => Some(FileAction::Create),
            Some(m) if m.kind != "directory" => {
                return Err(Error::Failed {
                    message: format!(
                        "`{}` on node `{node}` is a {}, where skiff needs a folder",
                        d.path, m.kind
                    ),
                    hint: Some(format!("move `{}` away, then run setup-node again", d.path)),
                });
            }
            // a slot an app owns: the deploy user's, group and mode the app's
            Some(m) if d.slot && m.owner == d.owner && m.mode == 0o2751 => None,
            Some(m) if m.mode != d.mode || m.owner != d.owner || m.group != d.group => {
                Some(FileAction::Chmod)
            }
            Some(_) => None,
        };
        if let Some(action) = action {
            plan.dirs.push(DirChange {
                path: d.path.clone(),
                action,
                mode: format!("{:04o}", d.mode),
                owner: format!("{}:{}", d.owner, d.group),
                dir: d.clone(),
            });
        }
    }

    let mut touched = BTreeSet::new();
    for file in desired.all_files() {
        let hint = probed
            .all_files()
            .find(|f| f.path == file.path)
            .map(|f| f.content.as_slice());
        if let Some(change) = file_change(node, file, facts, hint)? {
            touched.insert(file.affects);
            plan.files.push(change);
        }
    }
    plan.sshd = if facts.sshd {
        file_change(
            node,
            &desired.sshd,
            facts,
            Some(probed.sshd.content.as_slice()),
        )?
    } else {
        plan.notes.push(
            "no OpenSSH server (/usr/sbin/sshd) on the node: key-only SSH is left to you".into(),
        );
        None
    };
    let firewall_files = [
        crate::deploy::contract::FIREWALL.to_string(),
        super::desired::firewall_unit_path(),
    ];
    let rules_change = plan.files.iter().any(|f| firewall_files.contains(&f.path));
    plan.firewall = if desired.firewall {
        if rules_change
            || facts.firewall != super::probe::FirewallState::Loaded
            || (facts.systemd && !facts.firewall_unit)
        {
            FirewallAction::Load
        } else {
            FirewallAction::None
        }
    } else if facts.firewall == super::probe::FirewallState::Loaded || facts.firewall_unit {
        FirewallAction::Unload
    } else {
        FirewallAction::None
    };

    for path in &desired.absent {
        if facts.existing_absent.contains(path) {
            plan.removals.push(path.clone());
            touched.insert(match Affects::of(path) {
                Affects::Nothing => continue,
                a => a,
            });
        } else if fresh_web {
            plan.notes.push(format!(
                "after the packages are installed, {path} (if they add it) will be removed"
            ));
        }
    }
    finish(plan, desired, facts, touched)
}

/// The change `file` needs on the node (`None`: it is as wanted).
fn file_change(
    node: &str,
    file: &DesiredFile,
    facts: &Facts,
    hint: Option<&[u8]>,
) -> Result<Option<FileChange>> {
    let meta = facts.stat.get(&file.path);
    if let Some(m) = meta
        && m.kind != "regular file"
    {
        return Err(Error::Failed {
            message: format!(
                "`{}` on node `{node}` is a {}, where skiff needs a file",
                file.path, m.kind
            ),
            hint: Some(format!(
                "move `{}` away, then run setup-node again",
                file.path
            )),
        });
    }
    let current = node_content(file, facts, hint);
    let (new, action) = match (file.kind, current) {
        (FileKind::CreateOnly, Some(_)) => return Ok(None),
        (FileKind::CreateOnly, None) | (_, None) => (file.content.clone(), FileAction::Create),
        (FileKind::Lines, Some(cur)) => {
            let merged = merge_lines(cur, &file.content);
            let action = if merged != cur {
                FileAction::Update
            } else {
                FileAction::Chmod
            };
            (merged, action)
        }
        (FileKind::Managed, Some(cur)) => {
            let action = if sha(cur) != file.sha256() {
                FileAction::Update
            } else {
                FileAction::Chmod
            };
            (file.content.clone(), action)
        }
    };
    let meta_ok =
        meta.is_some_and(|m| m.mode == file.mode && m.owner == file.owner && m.group == file.group);
    if action == FileAction::Chmod && meta_ok {
        return Ok(None);
    }
    let diff = if action == FileAction::Chmod {
        String::new()
    } else {
        unified_diff(&file.path, current, &new)
    };
    Ok(Some(FileChange {
        path: file.path.clone(),
        action,
        mode: format!("{:04o}", file.mode),
        owner: format!("{}:{}", file.owner, file.group),
        diff,
        create_only: file.kind == FileKind::CreateOnly,
        content: new,
        file: file.clone(),
    }))
}

/// Apache's switches and the services' actions, once files and removals are known.
fn finish(
    mut plan: Plan,
    desired: &Desired,
    facts: &Facts,
    touched: BTreeSet<Affects>,
) -> Result<Plan> {
    let a = &desired.apache;
    let ap = &mut plan.apache;
    ap.disable_mods = a
        .mods_off
        .iter()
        .filter(|m| facts.is_enabled("mods", m))
        .map(|m| m.to_string())
        .collect();
    ap.enable_mods = a
        .mods
        .iter()
        .filter(|m| !facts.is_enabled("mods", m))
        .map(|m| m.to_string())
        .collect();
    ap.enable_php = !facts.enabled.iter().any(|e| e.starts_with("mods:php"));
    ap.enable_confs = a
        .confs
        .iter()
        .filter(|c| !facts.is_enabled("conf", c))
        .map(|c| c.to_string())
        .collect();
    ap.enable_sites = a
        .sites
        .iter()
        .filter(|s| !facts.is_enabled("sites", s))
        .map(|s| s.to_string())
        .collect();
    ap.disable_sites = a
        .sites_off
        .iter()
        .filter(|s| facts.is_enabled("sites", s))
        .map(|s| s.to_string())
        .collect();
    // removing sites-enabled/000-default.conf is what a2dissite does: do it once
    if !ap.disable_sites.is_empty() {
        plan.removals
            .retain(|p| !p.starts_with("/etc/apache2/sites-enabled/"));
    }

    let nginx_changes = touched.contains(&Affects::Nginx);
    let apache_changes = touched.contains(&Affects::Apache) || !plan.apache.is_empty();
    plan.nginx = if !facts.is_running("nginx") {
        ServiceAction::Start
    } else if nginx_changes {
        ServiceAction::Reload
    } else {
        ServiceAction::None
    };
    plan.apache2 = if !facts.is_running("apache2") {
        ServiceAction::Start
    } else if plan.apache.changes_mpm() {
        ServiceAction::Restart
    } else if apache_changes {
        ServiceAction::Reload
    } else {
        ServiceAction::None
    };
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::super::desired::{Choices, Distro, RenderFacts};
    use super::super::probe::{FirewallState, Meta, TestResult};
    use super::*;

    fn desired() -> Desired {
        desired_with(true)
    }

    fn desired_with(firewall: bool) -> Desired {
        let facts = RenderFacts {
            ipv6: true,
            os: "debian 12".into(),
            python_slots: 2,
            ruby_slots: 1,
        };
        let choices = Choices {
            apt_proxy: None,
            python_slots: Some(2),
            ruby_slots: Some(1),
            operator_keys: vec!["ssh-ed25519 AAAAkey op@laptop".into()],
            skiff_version: "0.1.0".into(),
            firewall,
        };
        Desired::build(Distro::Debian12, &facts, &choices).unwrap()
    }

    /// Facts of a node where everything is as `d` wants.
    fn set_up(d: &Desired) -> Facts {
        let mut f = Facts {
            os_id: "debian".into(),
            os_version: "12".into(),
            uid: Some(0),
            user_exists: true,
            user_groups: d.groups.iter().map(|g| g.to_string()).collect(),
            systemd: true,
            firewall: FirewallState::Loaded,
            firewall_unit: true,
            sshd: true,
            ..Facts::default()
        };
        for p in &d.packages {
            f.packages.insert(p.to_string(), "ii ".into());
        }
        for dir in &d.dirs {
            f.stat.insert(
                dir.path.clone(),
                Meta {
                    kind: "directory".into(),
                    mode: dir.mode,
                    owner: dir.owner.clone(),
                    group: dir.group.clone(),
                },
            );
        }
        for file in d.all_files().chain(std::iter::once(&d.sshd)) {
            f.stat.insert(
                file.path.clone(),
                Meta {
                    kind: "regular file".into(),
                    mode: file.mode,
                    owner: file.owner.clone(),
                    group: file.group.clone(),
                },
            );
            if file.kind == FileKind::Lines {
                f.content.insert(file.path.clone(), file.content.clone());
            }
        }
        for m in &d.apache.mods {
            f.enabled.insert(format!("mods:{m}"));
        }
        f.enabled.insert("mods:php8.2".into());
        f.enabled.insert("conf:skiff".into());
        f.enabled.insert("sites:skiff".into());
        f.running.insert("nginx".into(), true);
        f.running.insert("apache2".into(), true);
        f.tests.insert(
            "nginx".into(),
            TestResult {
                status: 0,
                output: String::new(),
            },
        );
        f
    }

    #[test]
    fn the_deploy_user_joins_its_groups_and_gets_root_deploys_files() {
        let d = desired();
        let mut f = set_up(&d);
        f.user_groups = ["skiff", "www-data"]
            .iter()
            .map(|g| g.to_string())
            .collect();
        // a node without systemd-journal: that group is not asked for
        f.groups_present = ["www-data", "adm"].iter().map(|g| g.to_string()).collect();
        f.root_owned = vec![crate::deploy::contract::APPS.to_string()];
        let plan = compute("n1", "Debian 12", &d, &d, &f).unwrap();
        assert_eq!(plan.add_groups, ["adm"]);
        assert_eq!(plan.migrate, [crate::deploy::contract::APPS]);
        assert!(plan.needs_apply());
        f.groups_present.insert("systemd-journal".into());
        let plan = compute("n1", "Debian 12", &d, &d, &f).unwrap();
        assert_eq!(plan.add_groups, ["adm", "systemd-journal"]);
    }

    #[test]
    fn a_set_up_node_has_an_empty_plan() {
        let d = desired();
        let plan = compute("n1", "Debian 12", &d, &d, &set_up(&d)).unwrap();
        assert!(plan.is_empty(), "{plan:#?}");
    }

    #[test]
    fn a_bare_node_gets_everything() {
        let d = desired();
        let facts = Facts {
            os_id: "debian".into(),
            os_version: "12".into(),
            ..Facts::default()
        };
        let plan = compute("n1", "Debian 12", &d, &d, &facts).unwrap();
        assert!(plan.packages.contains(&"nginx".to_string()));
        assert_eq!(plan.create_user.as_deref(), Some("skiff"));
        assert_eq!(plan.files.len(), d.all_files().count());
        assert!(plan.files.iter().all(|f| f.action == FileAction::Create));
        let nginx = plan
            .files
            .iter()
            .find(|f| f.path == "/etc/nginx/conf.d/skiff.conf")
            .unwrap();
        assert!(
            nginx
                .diff
                .starts_with("--- /dev/null\n+++ b/etc/nginx/conf.d/skiff.conf")
        );
        assert!(plan.apache.enable_php);
        assert!(!plan.notes.is_empty());
    }

    #[test]
    fn a_changed_file_shows_a_diff_and_reloads_its_service() {
        let d = desired();
        let mut facts = set_up(&d);
        let path = "/etc/nginx/conf.d/skiff.conf";
        let mut old = d
            .files
            .iter()
            .find(|f| f.path == path)
            .unwrap()
            .content
            .clone();
        old.extend_from_slice(b"# hand edit\n");
        facts.content.insert(path.into(), old);
        let plan = compute("n1", "Debian 12", &d, &d, &facts).unwrap();
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.files[0].action, FileAction::Update);
        assert!(
            plan.files[0].diff.contains("-# hand edit"),
            "{}",
            plan.files[0].diff
        );
        assert_eq!(plan.nginx, ServiceAction::Reload);
        assert_eq!(plan.apache2, ServiceAction::None);
    }

    #[test]
    fn create_only_files_are_never_rewritten_and_keys_are_merged() {
        let d = desired();
        let mut facts = set_up(&d);
        facts.content.insert(
            "/etc/nginx/skiff-routes.map".into(),
            b"a.example.com py01.skiff;\n".to_vec(),
        );
        facts.content.insert(
            "/home/skiff/.ssh/authorized_keys".into(),
            b"ssh-rsa AAAAother someone\n".to_vec(),
        );
        let plan = compute("n1", "Debian 12", &d, &d, &facts).unwrap();
        assert_eq!(plan.files.len(), 1, "{:#?}", plan.files);
        let keys = &plan.files[0];
        assert_eq!(
            String::from_utf8_lossy(&keys.content),
            "ssh-rsa AAAAother someone\nssh-ed25519 AAAAkey op@laptop\n"
        );
        assert_eq!(plan.nginx, ServiceAction::None);
    }

    #[test]
    fn wrong_modes_are_fixed_and_mpm_changes_restart_apache() {
        let d = desired();
        let mut facts = set_up(&d);
        facts.stat.get_mut("/etc/skiff/env").unwrap().mode = 0o755;
        facts.enabled.insert("mods:mpm_event".into());
        facts.enabled.remove("mods:mpm_prefork");
        let plan = compute("n1", "Debian 12", &d, &d, &facts).unwrap();
        assert_eq!(plan.dirs.len(), 1);
        assert_eq!(plan.dirs[0].action, FileAction::Chmod);
        assert_eq!(plan.apache.disable_mods, vec!["mpm_event"]);
        assert_eq!(plan.apache2, ServiceAction::Restart);
    }

    #[test]
    fn stopped_services_are_started() {
        let d = desired();
        let mut facts = set_up(&d);
        facts.running.insert("apache2".into(), false);
        let plan = compute("n1", "Debian 12", &d, &d, &facts).unwrap();
        assert_eq!(plan.apache2, ServiceAction::Start);
        assert_eq!(plan.nginx, ServiceAction::None);
        assert!(!plan.is_empty());
    }

    #[test]
    fn the_firewall_is_loaded_until_its_unit_is_enabled_and_unloaded_when_turned_off() {
        let d = desired();
        let mut facts = set_up(&d);
        facts.firewall_unit = false;
        let plan = compute("n1", "Debian 12", &d, &d, &facts).unwrap();
        assert_eq!(plan.firewall, FirewallAction::Load);
        assert!(plan.files.is_empty() && plan.needs_apply());
        // an init-less node has no unit to enable
        facts.systemd = false;
        let plan = compute("n1", "Debian 12", &d, &d, &facts).unwrap();
        assert!(plan.is_empty(), "{plan:#?}");
        // a flushed ruleset is loaded again
        facts.firewall = FirewallState::Absent;
        let plan = compute("n1", "Debian 12", &d, &d, &facts).unwrap();
        assert_eq!(plan.firewall, FirewallAction::Load);
        // --no-firewall: the table and its files go, and nothing else reloads
        let off = desired_with(false);
        let mut facts_off = set_up(&d);
        facts_off
            .existing_absent
            .insert(crate::deploy::contract::FIREWALL.into());
        let plan = compute("n1", "Debian 12", &off, &off, &facts_off).unwrap();
        assert_eq!(plan.firewall, FirewallAction::Unload);
        assert_eq!(plan.removals, vec![crate::deploy::contract::FIREWALL]);
        assert_eq!(plan.nginx, ServiceAction::None);
        assert_eq!(plan.apache2, ServiceAction::None);
    }

    #[test]
    fn the_key_only_drop_in_is_planned_apart_from_the_files() {
        let d = desired();
        let mut facts = set_up(&d);
        facts.content.insert(
            d.sshd.path.clone(),
            b"PasswordAuthentication yes\n".to_vec(),
        );
        let plan = compute("n1", "Debian 12", &d, &d, &facts).unwrap();
        let sshd = plan.sshd.as_ref().expect("the drop-in differs");
        assert_eq!(sshd.action, FileAction::Update);
        assert!(
            sshd.diff.contains("+PasswordAuthentication no"),
            "{}",
            sshd.diff
        );
        assert!(!plan.needs_apply() && !plan.is_empty());
        facts.sshd = false;
        let plan = compute("n1", "Debian 12", &d, &d, &facts).unwrap();
        assert!(plan.sshd.is_none() && plan.is_empty());
        assert!(plan.notes.iter().any(|n| n.contains("key-only")));
    }
}
