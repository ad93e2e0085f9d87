//! The probe: one read-only script that tells everything the plan needs about a node
//! (OS, packages, users, the files and folders skiff manages with their owners, modes and,
//! where they differ from what skiff would write, their content; Apache's switches;
//! whether NGINX and Apache run and pass their config tests), in one round trip.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use tera::Context;

use super::desired::{Desired, FileKind};
use super::render::render;
use crate::error::{Error, Result};

/// Type, mode and owner of a path on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// `regular file`, `directory`, `symbolic link`, ...
    pub kind: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner user name.
    pub owner: String,
    /// Owner group name.
    pub group: String,
}

/// A config test's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// Exit status.
    pub status: i32,
    /// What it printed.
    pub output: String,
}

/// What nftables on the node can do, and whether skiff's table is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FirewallState {
    /// `nft` is not installed (yet).
    #[default]
    NoNft,
    /// nftables works; skiff's table is not loaded.
    Absent,
    /// skiff's table is loaded.
    Loaded,
    /// `nft` cannot even list the tables (no CAP_NET_ADMIN: a container), with its words.
    Unsupported(String),
}

/// What the probe found.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// `/etc/os-release` ID.
    pub os_id: String,
    /// `/etc/os-release` VERSION_ID.
    pub os_version: String,
    /// uid the probe ran as (must be 0).
    pub uid: Option<u32>,
    /// systemd is PID 1.
    pub systemd: bool,
    /// The node has IPv6.
    pub ipv6: bool,
    /// MemTotal in KiB, when /proc/meminfo says.
    pub mem_kib: Option<u64>,
    /// The highest slot number the node has, by kind (`python`, `ruby`).
    pub pool: BTreeMap<String, usize>,
    /// dpkg status abbreviations of the packages asked about (`ii ` = installed).
    pub packages: BTreeMap<String, String>,
    /// An interrupted dpkg left work in /var/lib/dpkg/updates.
    pub dpkg_pending: bool,
    /// The deploy user exists.
    pub user_exists: bool,
    /// The login user's authorized keys.
    pub login_keys: Vec<String>,
    /// The deploy user's groups (`id -nG`).
    pub user_groups: BTreeSet<String>,
    /// Groups the node has, among those the deploy user must be in.
    pub groups_present: BTreeSet<String>,
    /// Folders (of `Desired::migrate`) holding something root owns.
    pub root_owned: Vec<String>,
    /// Paths that exist, with type, mode and owner.
    pub stat: BTreeMap<String, Meta>,
    /// Content of files that differ from what skiff would write (and of line files).
    pub content: BTreeMap<String, Vec<u8>>,
    /// Enabled Apache modules, confs and sites, as `mods:NAME`, `conf:NAME`, `sites:NAME`.
    pub enabled: BTreeSet<String>,
    /// Paths among the must-be-absent ones that exist.
    pub existing_absent: BTreeSet<String>,
    /// Which services run.
    pub running: BTreeMap<String, bool>,
    /// Config tests, by service (`nginx`, `apache2`), when the service is installed.
    pub tests: BTreeMap<String, TestResult>,
    /// nftables and skiff's table.
    pub firewall: FirewallState,
    /// The firewall's unit is enabled (systemd nodes).
    pub firewall_unit: bool,
    /// An OpenSSH server is installed (`sshd`).
    pub sshd: bool,
}

impl Facts {
    /// `debian 12`.
    pub fn os(&self) -> String {
        format!("{} {}", self.os_id, self.os_version)
    }

    /// Whether a package is fully installed.
    pub fn installed(&self, package: &str) -> bool {
        self.packages
            .get(package)
            .is_some_and(|s| s.starts_with("ii"))
    }

    /// Whether `kind:name` (`mods:wsgi`) is enabled in Apache.
    pub fn is_enabled(&self, kind: &str, name: &str) -> bool {
        self.enabled.contains(&format!("{kind}:{name}"))
    }

    /// The highest slot number of `kind` (`python`, `ruby`) on the node (0: none).
    pub fn pool_on_node(&self, kind: &str) -> usize {
        self.pool.get(kind).copied().unwrap_or(0)
    }

    /// Whether a service runs.
    pub fn is_running(&self, service: &str) -> bool {
        self.running.get(service).copied().unwrap_or(false)
    }
}

/// Renders the probe for `desired`: it checks every path and sends back the content of
/// files that differ from `desired` (and of line files, always).
pub fn script(desired: &Desired, login_user: &str, services_lib: &str) -> Result<String> {
    let mut ctx = Context::new();
    ctx.insert("packages", &desired.packages);
    ctx.insert("user", desired.user);
    ctx.insert("login_user", login_user);
    ctx.insert("groups", &desired.groups);
    ctx.insert("migrate", &desired.migrate);
    let mut stat_paths: Vec<&str> = desired.dirs.iter().map(|d| d.path.as_str()).collect();
    stat_paths.extend(desired.all_files().map(|f| f.path.as_str()));
    stat_paths.push(&desired.sshd.path);
    ctx.insert("stat_paths", &stat_paths);
    let checks: Vec<serde_json::Value> = desired
        .all_files()
        .chain(std::iter::once(&desired.sshd))
        .filter(|f| f.kind == FileKind::Managed)
        .map(|f| serde_json::json!({"sha": f.sha256(), "path": f.path}))
        .collect();
    ctx.insert("fw_table", crate::deploy::contract::FIREWALL_TABLE);
    ctx.insert("fw_unit", crate::deploy::contract::FIREWALL_UNIT);
    ctx.insert("checks", &checks);
    let always: Vec<&str> = desired
        .all_files()
        .filter(|f| f.kind == FileKind::Lines)
        .map(|f| f.path.as_str())
        .collect();
    ctx.insert("always_fetch", &always);
    ctx.insert("absent", &desired.absent);
    ctx.insert("services_lib", services_lib);
    render("setup/probe.sh.tera", &ctx)
}

fn b64(node: &str, field: &str, text: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| {
            Error::failed(format!(
                "node `{node}` sent a bad {field} in the probe: {e}"
            ))
        })
}

/// Parses the probe's output.
pub fn parse(node: &str, out: &str) -> Result<Facts> {
    let mut f = Facts::default();
    let mut ended = false;
    for line in out.lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        match parts.as_slice() {
            ["os", id, version] => {
                f.os_id = id.to_string();
                f.os_version = version.to_string();
            }
            ["uid", uid] => f.uid = uid.parse().ok(),
            ["systemd", v] => f.systemd = *v == "1",
            ["ipv6", v] => f.ipv6 = *v == "1",
            ["mem", kib] => f.mem_kib = kib.trim().parse().ok(),
            ["pool", kind, n] => {
                f.pool
                    .insert(kind.to_string(), n.trim().parse().unwrap_or(0));
            }
            ["pkg", name, status] => {
                f.packages.insert(name.to_string(), status.to_string());
            }
            ["dpkg_pending", v] => f.dpkg_pending = *v == "1",
            ["user", v] => f.user_exists = *v == "1",
            ["key", rest @ ..] => f.login_keys.push(rest.join("\t")),
            ["groups", names] => {
                f.user_groups = names.split_whitespace().map(str::to_string).collect();
            }
            ["group", name] => {
                f.groups_present.insert(name.to_string());
            }
            ["root_owned", path] => f.root_owned.push(path.to_string()),
            ["stat", path, kind, mode, owner, group] => {
                let mode = u32::from_str_radix(mode, 8).unwrap_or(0);
                f.stat.insert(
                    path.to_string(),
                    Meta {
                        kind: kind.to_string(),
                        mode,
                        owner: owner.to_string(),
                        group: group.to_string(),
                    },
                );
            }
            ["changed", _] => {}
            ["content", path, data] => {
                f.content
                    .insert(path.to_string(), b64(node, "file content", data)?);
            }
            ["content", path] => {
                f.content.insert(path.to_string(), Vec::new());
            }
            ["enabled", kind, name] => {
                f.enabled.insert(format!("{kind}:{name}"));
            }
            ["exists", path] => {
                f.existing_absent.insert(path.to_string());
            }
            ["running", svc, v] => {
                f.running.insert(svc.to_string(), *v == "1");
            }
            ["test", svc, status, data] => {
                let output = String::from_utf8_lossy(&b64(node, "test output", data)?).into_owned();
                f.tests.insert(
                    svc.to_string(),
                    TestResult {
                        status: status.parse().unwrap_or(-1),
                        output,
                    },
                );
            }
            ["test", svc, status] => {
                f.tests.insert(
                    svc.to_string(),
                    TestResult {
                        status: status.parse().unwrap_or(-1),
                        output: String::new(),
                    },
                );
            }
            ["firewall", "loaded"] => f.firewall = FirewallState::Loaded,
            ["firewall", "absent"] => f.firewall = FirewallState::Absent,
            ["firewall", "unsupported", data] => {
                let why = String::from_utf8_lossy(&b64(node, "nft output", data)?).into_owned();
                f.firewall = FirewallState::Unsupported(why.trim().to_string());
            }
            ["firewall_unit", v] => f.firewall_unit = *v == "1",
            ["sshd", v] => f.sshd = *v == "1",
            ["end"] => ended = true,
            _ => {}
        }
    }
    if !ended {
        return Err(Error::Remote {
            node: node.into(),
            command: "setup-node probe".into(),
            status: None,
            output: out
                .chars()
                .rev()
                .take(2000)
                .collect::<String>()
                .chars()
                .rev()
                .collect(),
            hint: Some("the probe stopped early; run it again with `-v`".into()),
        });
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_record() {
        let out = "os\tdebian\t12\nuid\t0\nsystemd\t0\nipv6\t1\nmem\t2048000\npool\tpython\t12\npkg\tnginx\tii \npkg\tapache2\tiU \n\
                   dpkg_pending\t1\nuser\t0\nkey\tssh-ed25519 AAAA op@laptop\n\
                   stat\t/srv/skiff\tdirectory\t755\troot\troot\n\
                   changed\t/etc/x\ncontent\t/etc/x\taGVsbG8K\n\
                   enabled\tmods\twsgi\nexists\t/etc/nginx/sites-enabled/default\n\
                   running\tnginx\t1\nrunning\tapache2\t0\n\
                   test\tnginx\t1\tYmFkIGluIC9ldGMvbmdpbngvc2l0ZXMtZW5hYmxlZC94OjE=\n\
                   firewall\tunsupported\tT3BlcmF0aW9uIG5vdCBwZXJtaXR0ZWQ=\nfirewall_unit\t1\nsshd\t1\nend\n";
        let f = parse("n1", out).unwrap();
        assert_eq!(f.os(), "debian 12");
        assert_eq!(f.mem_kib, Some(2048000));
        assert_eq!((f.pool_on_node("python"), f.pool_on_node("ruby")), (12, 0));
        assert!(f.installed("nginx"));
        assert!(!f.installed("apache2"), "iU is unpacked, not installed");
        assert!(f.dpkg_pending && !f.user_exists && f.ipv6 && !f.systemd);
        assert_eq!(f.login_keys, vec!["ssh-ed25519 AAAA op@laptop"]);
        assert_eq!(f.stat["/srv/skiff"].mode, 0o755);
        assert_eq!(f.content["/etc/x"], b"hello\n");
        assert!(f.is_enabled("mods", "wsgi"));
        assert!(
            f.existing_absent
                .contains("/etc/nginx/sites-enabled/default")
        );
        assert!(f.is_running("nginx") && !f.is_running("apache2"));
        assert_eq!(f.tests["nginx"].status, 1);
        assert!(f.tests["nginx"].output.contains("sites-enabled/x:1"));
        assert_eq!(
            f.firewall,
            FirewallState::Unsupported("Operation not permitted".into())
        );
        assert!(f.firewall_unit && f.sshd);
    }

    #[test]
    fn a_cut_off_probe_is_an_error() {
        assert!(parse("n1", "os\tdebian\t12\n").is_err());
    }
}
