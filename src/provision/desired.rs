//! What a set-up node looks like: packages, the deploy user, folders with owners and
//! modes, every file skiff installs (rendered from the embedded templates and
//! server-files), Apache modules and sites. Pure data: the plan compares it with a probe.

use serde::Serialize;
use sha2::{Digest, Sha256};
use tera::Context;

use super::render::render;
use crate::assets;
use crate::deploy::contract;
use crate::error::Result;

/// The deploy user `setup-node` creates.
pub const DEPLOY_USER: &str = "skiff";
/// Where server-files live on the node.
pub const SHARE: &str = "/usr/local/share/skiff";
/// The stamp recording what the node was set up with.
pub const STAMP_PATH: &str = "/var/lib/skiff/setup.toml";
/// Where `--apt-proxy` is written.
pub const APT_PROXY_PATH: &str = "/etc/apt/apt.conf.d/90skiff-proxy";
/// Apache's listening ports, pre-seeded before apache2 is installed.
pub const PORTS_CONF: &str = "/etc/apache2/ports.conf";

/// Pool size when the node's memory is unknown (the memory rule's cap).
pub const DEFAULT_PYTHON_SLOTS: usize = 8;
/// Pool size when the node's memory is unknown.
pub const DEFAULT_RUBY_SLOTS: usize = 8;
/// Largest pool (slot names have two digits).
pub const MAX_SLOTS: usize = 99;
/// Where each slot's Apache vhost lives (`pyNN.conf`, `rbNN.conf`), included by the site.
pub const SLOT_CONF_DIR: &str = "/etc/apache2/skiff-slots";
/// Which app owns each slot: `SLOT.conf` holding `Define SKIFF_USER_SLOT USER`, written by
/// `skiff-node slots-own` (skiff-node's `SLOT_USERS`), never by setup-node.
pub const SLOT_USERS_DIR: &str = "/etc/apache2/skiff-slot-users";
/// Fewest and most slots of a kind the memory rule declares.
const SLOTS_FLOOR: usize = 4;
const SLOTS_CAP: usize = 8;
/// Memory per slot in the memory rule: one slot per 256 MiB.
const MIB_PER_SLOT: u64 = 256;

/// The default pool size of a kind for a node with `mem_kib` of memory (MemTotal): one
/// slot per 256 MiB, at least 4, at most 8 (1 GiB and less: 4, 1.5 GiB: 6, 2 GiB and more:
/// 8). An idle Python slot costs ~9 MB PSS (2 processes of ~15.7 MB RSS, ~4.5 MB PSS
/// each), an idle Ruby slot nothing; the pool grows by a batch of 4 when a deploy needs
/// more (one Apache graceful reload), so the default only has to spare small nodes.
pub fn default_slots(mem_kib: Option<u64>) -> usize {
    match mem_kib {
        None | Some(0) => DEFAULT_PYTHON_SLOTS,
        Some(kib) => ((kib / 1024 / MIB_PER_SLOT) as usize).clamp(SLOTS_FLOOR, SLOTS_CAP),
    }
}

/// The pool a setup declares: what was asked for (or the memory rule), never fewer than
/// the node has (a pool grown by deploys is kept), at most [`MAX_SLOTS`].
pub fn pool_size(requested: Option<usize>, mem_kib: Option<u64>, on_node: usize) -> usize {
    requested
        .unwrap_or_else(|| default_slots(mem_kib))
        .max(on_node)
        .min(MAX_SLOTS)
}

/// A slot's Apache vhost file: the installed server-file with `@SLOT@` replaced, exactly
/// what `skiff-node slots-own` writes for it on the node.
pub fn slot_conf(slot: &str) -> String {
    let template = if slot.starts_with("py") {
        "apache/slot-python.conf"
    } else {
        "apache/slot-ruby.conf"
    };
    assets::server_file(template).text().replace("@SLOT@", slot)
}

/// The distributions setup-node knows, and what differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Distro {
    /// Debian 12 "bookworm" (PHP 8.2, Passenger 6.0 in main). Verified on test nodes.
    Debian12,
    /// Debian 13 "trixie" (PHP 8.4, Python 3.13, NGINX 1.26). Verified on test nodes
    /// (`create-node --provider local --os debian-13`).
    Debian13,
    /// Ubuntu 22.04 "jammy" (PHP 8.1; Passenger in universe). Reasoned, not run here.
    Ubuntu2204,
    /// Ubuntu 24.04 "noble" (PHP 8.3; Passenger in universe). Reasoned, not run here.
    Ubuntu2404,
}

impl Distro {
    /// Recognises `/etc/os-release`'s ID and VERSION_ID.
    pub fn from_os_release(id: &str, version: &str) -> Option<Distro> {
        match (id, version) {
            ("debian", "12") => Some(Distro::Debian12),
            ("debian", "13") => Some(Distro::Debian13),
            ("ubuntu", "22.04") => Some(Distro::Ubuntu2204),
            ("ubuntu", "24.04") => Some(Distro::Ubuntu2404),
            _ => None,
        }
    }

    /// `/etc/os-release`'s ID: `debian`, `ubuntu`.
    pub fn id(self) -> &'static str {
        match self {
            Distro::Debian12 | Distro::Debian13 => "debian",
            Distro::Ubuntu2204 | Distro::Ubuntu2404 => "ubuntu",
        }
    }

    /// How people write it.
    pub fn label(self) -> &'static str {
        match self {
            Distro::Debian12 => "Debian 12",
            Distro::Debian13 => "Debian 13",
            Distro::Ubuntu2204 => "Ubuntu 22.04",
            Distro::Ubuntu2404 => "Ubuntu 24.04",
        }
    }

    /// The packages a skiff web host needs. The names are the same on all four today
    /// (on Ubuntu, libapache2-mod-passenger and composer come from `universe`).
    /// `bundler` is Bundler's `bundle` command, `composer` brings php-cli with it.
    pub fn packages(self) -> Vec<&'static str> {
        vec![
            "nginx",
            "apache2",
            "libapache2-mod-wsgi-py3",
            "libapache2-mod-php",
            "libapache2-mod-passenger",
            "python3-venv",
            "bundler",
            "composer",
            "rdiff",
            "curl",
            "ca-certificates",
            "sudo",
            "tar",
            "gzip",
            // ACME certificates ([tls] acme): issued and renewed on the node, by its own
            // systemd timer (certbot.timer)
            "certbot",
            // hardening: skiff's firewall table, security updates every day
            "nftables",
            "unattended-upgrades",
        ]
    }
}

/// Which service must re-read its config when a path changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Affects {
    /// Read on every request or by skiff's own scripts: no reload.
    Nothing,
    /// NGINX config.
    Nginx,
    /// Apache config.
    Apache,
}

impl Affects {
    /// The service that re-reads `path`.
    pub fn of(path: &str) -> Affects {
        if path.starts_with("/etc/nginx/") {
            Affects::Nginx
        } else if path.starts_with("/etc/apache2/") {
            Affects::Apache
        } else {
            Affects::Nothing
        }
    }
}

/// How skiff owns a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// skiff's own: a re-run puts back exactly this content.
    Managed,
    /// Created when missing, then owned by someone else (`skiff update`): never rewritten.
    CreateOnly,
    /// Lines skiff needs in a file others also write (authorized_keys): added when missing.
    Lines,
}

/// One file on the node as skiff wants it.
#[derive(Debug, Clone)]
pub struct DesiredFile {
    /// Absolute path on the node.
    pub path: String,
    /// Content (for [`FileKind::Lines`]: the lines that must be present).
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Owner user.
    pub owner: String,
    /// Owner group.
    pub group: String,
    /// How skiff owns it.
    pub kind: FileKind,
    /// Which service re-reads it.
    pub affects: Affects,
    /// A check the node runs on the new content before installing it.
    pub validate: Option<&'static str>,
}

impl DesiredFile {
    fn new(path: impl Into<String>, content: impl Into<Vec<u8>>, mode: u32) -> Self {
        let path = path.into();
        DesiredFile {
            affects: Affects::of(&path),
            path,
            content: content.into(),
            mode,
            owner: "root".into(),
            group: "root".into(),
            kind: FileKind::Managed,
            validate: None,
        }
    }

    fn owned_by(mut self, user: &str) -> Self {
        self.owner = user.into();
        self.group = user.into();
        self
    }

    fn kind(mut self, kind: FileKind) -> Self {
        self.kind = kind;
        self
    }

    /// Hex sha256 of the content.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.content))
    }
}

/// One folder on the node as skiff wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredDir {
    /// Absolute path.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner user.
    pub owner: String,
    /// Owner group.
    pub group: String,
    /// A slot's folder: once an app owns the slot (`skiff-node slots-own`), its group
    /// and mode (2751) are that app's, and a re-run leaves them so.
    pub slot: bool,
}

/// Apache's module, conf and site switches.
#[derive(Debug, Clone, Default)]
pub struct ApacheWanted {
    /// Modules that must be enabled (besides PHP).
    pub mods: Vec<&'static str>,
    /// Modules that must be off (the other MPMs: mod_php needs prefork).
    pub mods_off: Vec<&'static str>,
    /// conf-available entries to enable.
    pub confs: Vec<&'static str>,
    /// Sites to enable.
    pub sites: Vec<&'static str>,
    /// Sites to disable (the distribution's default).
    pub sites_off: Vec<&'static str>,
}

/// Node facts the rendering depends on.
#[derive(Debug, Clone)]
pub struct RenderFacts {
    /// The node has IPv6 (NGINX also listens on [::]:80).
    pub ipv6: bool,
    /// `debian 12` and the like, for the stamp.
    pub os: String,
    /// How many mod_wsgi slots to declare (see [`pool_size`]).
    pub python_slots: usize,
    /// How many Passenger slots to declare.
    pub ruby_slots: usize,
}

/// Choices from the command line.
#[derive(Debug, Clone)]
pub struct Choices {
    /// `--apt-proxy`, already validated.
    pub apt_proxy: Option<String>,
    /// `--python-slots`: mod_wsgi slots to declare (None: by the node's memory).
    pub python_slots: Option<usize>,
    /// `--ruby-slots`: Passenger slots to declare (None: by the node's memory).
    pub ruby_slots: Option<usize>,
    /// Public keys that must be able to log in as the deploy user.
    pub operator_keys: Vec<String>,
    /// The skiff version doing the setup.
    pub skiff_version: String,
    /// skiff's firewall (`setup-node --no-firewall` turns it off: the operator runs one).
    pub firewall: bool,
}

/// Everything setup-node installs.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Packages that must be installed.
    pub packages: Vec<&'static str>,
    /// The deploy user.
    pub user: &'static str,
    /// Groups the deploy user must be in: www-data (the apps' files), adm (the web
    /// servers' logs), and systemd-journal when the node has it (the apps' journal).
    pub groups: Vec<&'static str>,
    /// Groups among `groups` that only count when the node has them.
    pub optional_groups: Vec<&'static str>,
    /// Folders whose root-owned content becomes the deploy user's (nodes deployed to as
    /// root before deploys logged in as the deploy user).
    pub migrate: Vec<&'static str>,
    /// Folders, parents first.
    pub dirs: Vec<DesiredDir>,
    /// Files (the stamp excluded).
    pub files: Vec<DesiredFile>,
    /// Paths that must not exist (the distributions' default sites).
    pub absent: Vec<String>,
    /// Apache switches.
    pub apache: ApacheWanted,
    /// /var/lib/skiff/setup.toml, written last, only when everything else worked.
    pub stamp: DesiredFile,
    /// Rendered ports.conf, also written before apt installs apache2.
    pub ports_conf: String,
    /// Whether skiff's firewall is wanted (its files are in `files`, else in `absent`).
    pub firewall: bool,
    /// sshd's key-only drop-in: written by its own step, after a key login of the login
    /// user and of the deploy user is confirmed (never with the other files).
    pub sshd: DesiredFile,
}

/// Where the firewall's unit file lives.
pub fn firewall_unit_path() -> String {
    format!("{}/{}", contract::SYSTEMD_DIR, contract::FIREWALL_UNIT)
}

/// Names of the Python slots: py01, py02, ...
pub fn python_slot_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("py{i:02}")).collect()
}

/// Names of the Ruby slots: rb01, rb02, ...
pub fn ruby_slot_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("rb{i:02}")).collect()
}

fn dir(path: &str, mode: u32, owner: &str) -> DesiredDir {
    DesiredDir {
        path: path.into(),
        mode,
        owner: owner.into(),
        group: owner.into(),
        slot: false,
    }
}

fn slot_dir(path: &str, owner: &str) -> DesiredDir {
    DesiredDir {
        slot: true,
        ..dir(path, 0o755, owner)
    }
}

impl Desired {
    /// Renders every file for a node with these facts and choices.
    pub fn build(distro: Distro, facts: &RenderFacts, choices: &Choices) -> Result<Desired> {
        let user = DEPLOY_USER;
        let python_slots = python_slot_names(facts.python_slots);
        let ruby_slots = ruby_slot_names(facts.ruby_slots);

        let mut ctx = Context::new();
        ctx.insert("share", SHARE);
        ctx.insert("user", user);
        ctx.insert("ipv6", &facts.ipv6);
        ctx.insert("check_port", &crate::deploy::CHECK_PORT);
        ctx.insert("cron_map", crate::deploy::contract::CRON_MAP);
        ctx.insert("access_log", crate::deploy::contract::ACCESS_LOG);
        ctx.insert("acme_webroot", crate::deploy::contract::ACME_WEBROOT);
        // NGINX 1.19.4+ can refuse a TLS handshake without a certificate; Ubuntu 22.04
        // ships 1.18 (there the first app's HTTPS server answers unknown names)
        ctx.insert("reject_handshake", &(distro != Distro::Ubuntu2204));
        ctx.insert("python_slots", &python_slots);
        ctx.insert("ruby_slots", &ruby_slots);
        ctx.insert(
            "prefork",
            &serde_json::json!({"start": 10, "min_spare": 10, "max_spare": 20, "max_workers": 150}),
        );
        ctx.insert("version", &choices.skiff_version);
        ctx.insert("digest", assets::digest());
        ctx.insert("os", &facts.os);
        ctx.insert("distro", distro.id());
        ctx.insert("table", contract::FIREWALL_TABLE);
        ctx.insert("firewall", contract::FIREWALL);
        ctx.insert("dir", contract::FIREWALL_DIR);
        ctx.insert("open_ports", &contract::OPEN_TCP_PORTS);
        ctx.insert("db_ports", &contract::DB_PORTS);
        ctx.insert("origins", contract::UPGRADES_ORIGINS);
        let r = |t: &str| render(t, &ctx);

        let mut dirs = vec![
            dir("/srv/skiff", 0o755, "root"),
            dir(crate::deploy::contract::APPS, 0o755, user),
            dir("/srv/skiff/slots", 0o755, "root"),
            dir("/srv/skiff/slots/python", 0o755, "root"),
            dir("/srv/skiff/slots/ruby", 0o755, "root"),
            dir(SLOT_CONF_DIR, 0o755, "root"),
            dir(SLOT_USERS_DIR, 0o755, "root"),
            dir("/etc/skiff", 0o755, "root"),
            dir("/etc/skiff/env", 0o700, user),
            dir("/etc/skiff/sites", 0o755, "root"),
            dir("/etc/skiff/sites/nginx", 0o755, "root"),
            dir("/etc/skiff/sites/apache", 0o755, "root"),
            dir("/var/lib/skiff", 0o755, "root"),
            dir("/var/lib/skiff/staging", 0o755, user),
            dir(crate::deploy::contract::TLS_DIR, 0o700, "root"),
            dir(crate::deploy::contract::ACME_WEBROOT, 0o755, "root"),
            dir("/var/log/skiff", 0o755, user),
            dir(&format!("/home/{user}/.ssh"), 0o700, user),
            // what deploys, logged in as the deploy user, write
            dir(contract::LOCKS, 0o755, user),
            dir(contract::HISTORY_DIR, 0o755, user),
            dir(contract::BACKUPS_DIR, 0o700, user),
        ];
        let mut files = vec![
            DesiredFile::new(PORTS_CONF, r("apache/ports.conf.tera")?, 0o644),
            DesiredFile::new(
                "/etc/apache2/mods-available/mpm_prefork.conf",
                r("apache/mpm_prefork.conf.tera")?,
                0o644,
            ),
            DesiredFile::new(
                "/etc/apache2/conf-available/skiff.conf",
                r("apache/skiff-conf.conf.tera")?,
                0o644,
            ),
            DesiredFile::new(
                "/etc/apache2/sites-available/skiff.conf",
                r("apache/skiff-site.conf.tera")?,
                0o644,
            ),
            DesiredFile::new(
                "/etc/nginx/conf.d/skiff.conf",
                r("nginx/skiff.conf.tera")?,
                0o644,
            ),
            DesiredFile::new(
                "/etc/nginx/snippets/skiff-proxy.conf",
                r("nginx/skiff-proxy.conf.tera")?,
                0o644,
            ),
            DesiredFile::new(
                "/etc/nginx/snippets/skiff-app.conf",
                r("nginx/skiff-app.conf.tera")?,
                0o644,
            ),
            DesiredFile::new(
                "/etc/nginx/snippets/skiff-acme.conf",
                r("nginx/skiff-acme.conf.tera")?,
                0o644,
            ),
            DesiredFile::new(
                "/etc/nginx/snippets/skiff-tls.conf",
                r("nginx/skiff-tls.conf.tera")?,
                0o644,
            ),
            DesiredFile::new(
                "/etc/nginx/snippets/skiff-listen-443.conf",
                r("nginx/skiff-listen-443.conf.tera")?,
                0o644,
            ),
            DesiredFile::new(
                "/etc/nginx/snippets/skiff-listen-80.conf",
                r("nginx/skiff-listen-80.conf.tera")?,
                0o644,
            ),
            DesiredFile::new(
                "/etc/tmpfiles.d/skiff-passenger.conf",
                "# Managed by `skiff setup-node`: Passenger's instance registry (see\n# /etc/apache2/conf-available/skiff.conf), made at boot before Apache starts.\nd /run/passenger-instreg 0755 root root -\n".to_string(),
                0o644,
            ),
            DesiredFile::new(
                "/etc/nginx/skiff-routes.map",
                r("nginx/skiff-routes.map.tera")?,
                0o644,
            )
            .kind(FileKind::CreateOnly),
            DesiredFile::new(
                "/var/lib/skiff/state.toml",
                r("system/state.toml.tera")?,
                0o644,
            )
            .owned_by(user)
            .kind(FileKind::CreateOnly),
            DesiredFile {
                validate: Some("sudoers"),
                ..DesiredFile::new("/etc/sudoers.d/skiff", r("system/sudoers.tera")?, 0o440)
            },
            // security updates every day, and only those
            DesiredFile::new(
                contract::AUTO_UPGRADES,
                r("system/auto-upgrades.tera")?,
                0o644,
            ),
            DesiredFile::new(
                contract::UPGRADES_ORIGINS,
                r("system/upgrades-origins.tera")?,
                0o644,
            ),
        ];
        // the firewall: skiff's table, loaded at boot by its unit (systemd nodes)
        let mut absent = vec![
            "/etc/nginx/sites-enabled/default".to_string(),
            "/etc/apache2/sites-enabled/000-default.conf".to_string(),
        ];
        let unit = firewall_unit_path();
        if choices.firewall {
            dirs.push(dir(contract::FIREWALL_DIR, 0o755, "root"));
            files.push(DesiredFile {
                validate: Some("nft"),
                ..DesiredFile::new(contract::FIREWALL, r("system/firewall.nft.tera")?, 0o644)
            });
            files.push(DesiredFile::new(
                unit.clone(),
                r("system/skiff-firewall.service.tera")?,
                0o644,
            ));
        } else {
            absent.push(contract::FIREWALL.to_string());
            absent.push(unit);
        }
        if let Some(url) = &choices.apt_proxy {
            let mut c = ctx.clone();
            c.insert("url", url);
            files.push(DesiredFile::new(
                APT_PROXY_PATH,
                render("system/apt-proxy.conf.tera", &c)?,
                0o644,
            ));
        }
        // server-files, and the version stamp beside them
        let mut share_dirs = std::collections::BTreeSet::new();
        share_dirs.insert(SHARE.to_string());
        for a in assets::SERVER_FILES {
            let path = format!("{SHARE}/{}", a.path);
            let mut parent = std::path::Path::new(&path).parent();
            while let Some(p) = parent {
                let text = p.to_string_lossy().to_string();
                if text.len() <= SHARE.len() {
                    break;
                }
                share_dirs.insert(text);
                parent = p.parent();
            }
            let mode = if a.executable { 0o755 } else { 0o644 };
            files.push(DesiredFile::new(path, a.bytes, mode));
        }
        files.push(DesiredFile::new(
            format!("{SHARE}/VERSION"),
            format!(
                "skiff {}\nserver-files {}\n",
                choices.skiff_version,
                assets::digest()
            ),
            0o644,
        ));
        dirs.extend(share_dirs.into_iter().map(|p| dir(&p, 0o755, "root")));
        // the slot pools: a vhost file each, folders and entry scripts the deploy user may
        // touch (`skiff-node slots-own` makes the same for the slots a deploy adds, and
        // gives a slot to one app: its owner file, its folder's group)
        for slot in python_slots.iter().chain(&ruby_slots) {
            files.push(DesiredFile::new(
                format!("{SLOT_CONF_DIR}/{slot}.conf"),
                slot_conf(slot),
                0o644,
            ));
        }
        for slot in &python_slots {
            let d = format!("/srv/skiff/slots/python/{slot}");
            dirs.push(slot_dir(&d, user));
            files.push(
                DesiredFile::new(
                    format!("{d}/slot.wsgi"),
                    assets::server_file("python/slot.wsgi").bytes,
                    0o644,
                )
                .owned_by(user),
            );
        }
        for slot in &ruby_slots {
            let d = format!("/srv/skiff/slots/ruby/{slot}");
            dirs.push(slot_dir(&d, user));
            dirs.push(dir(&format!("{d}/public"), 0o755, user));
            files.push(
                DesiredFile::new(
                    format!("{d}/config.ru"),
                    assets::server_file("ruby/config.ru").bytes,
                    0o644,
                )
                .owned_by(user),
            );
        }
        // the operator's keys for the deploy user
        let mut keys = String::new();
        for k in &choices.operator_keys {
            keys.push_str(k.trim());
            keys.push('\n');
        }
        files.push(
            DesiredFile::new(format!("/home/{user}/.ssh/authorized_keys"), keys, 0o600)
                .owned_by(user)
                .kind(FileKind::Lines),
        );

        let stamp = DesiredFile::new(STAMP_PATH, r("system/setup.toml.tera")?, 0o644);
        let ports_conf = String::from_utf8(files[0].content.clone()).expect("rendered text");
        Ok(Desired {
            packages: distro.packages(),
            user,
            groups: vec!["www-data", "adm", "systemd-journal"],
            optional_groups: vec!["systemd-journal"],
            migrate: vec![
                contract::APPS,
                contract::LOCKS,
                contract::HISTORY_DIR,
                contract::BACKUPS_DIR,
                contract::ENVDIR,
            ],
            dirs,
            files,
            absent,
            apache: ApacheWanted {
                mods: vec![
                    "mpm_prefork",
                    "wsgi",
                    "passenger",
                    "rewrite",
                    "headers",
                    "remoteip",
                    "vhost_alias",
                ],
                mods_off: vec!["mpm_event", "mpm_worker"],
                confs: vec!["skiff"],
                sites: vec!["skiff"],
                sites_off: vec!["000-default"],
            },
            stamp,
            ports_conf,
            firewall: choices.firewall,
            sshd: DesiredFile::new(
                contract::SSHD_DROPIN,
                r("system/sshd-key-only.conf.tera")?,
                0o644,
            ),
        })
    }

    /// Every file, the stamp last.
    pub fn all_files(&self) -> impl Iterator<Item = &DesiredFile> {
        self.files.iter().chain(std::iter::once(&self.stamp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> Choices {
        Choices {
            apt_proxy: Some("http://10.0.0.1:3142".into()),
            python_slots: Some(3),
            ruby_slots: Some(2),
            operator_keys: vec!["ssh-ed25519 AAAAC3Nza test".into()],
            skiff_version: "0.1.0".into(),
            firewall: true,
        }
    }

    #[test]
    fn renders_the_pool_and_the_front_door() {
        let facts = RenderFacts {
            ipv6: false,
            os: "debian 12".into(),
            python_slots: 3,
            ruby_slots: 2,
        };
        let d = Desired::build(Distro::Debian12, &facts, &choices()).unwrap();
        let file = |p: &str| {
            let f = d.files.iter().find(|f| f.path == p).unwrap();
            String::from_utf8(f.content.clone()).unwrap()
        };
        let site = file("/etc/apache2/sites-available/skiff.conf");
        assert!(site.contains("IncludeOptional /etc/apache2/skiff-slots/*.conf"));
        assert!(
            !site.contains("WSGIDaemonProcess"),
            "slots live in their own files"
        );
        assert!(site.contains("VirtualDocumentRoot /srv/skiff/apps/%2/docroots/%1"));
        let py03 = file("/etc/apache2/skiff-slots/py03.conf");
        assert!(py03.contains("WSGIDaemonProcess py03 processes=2 threads=4 "));
        assert!(py03.contains("/srv/skiff/slots/python/py03/slot.wsgi process-group=py03"));
        assert!(!py03.contains("@SLOT@"));
        assert!(!d.files.iter().any(|f| f.path.ends_with("/py04.conf")));
        assert!(
            file("/etc/apache2/skiff-slots/rb02.conf")
                .contains("PassengerAppRoot /srv/skiff/slots/ruby/rb02")
        );
        let nginx = file("/etc/nginx/conf.d/skiff.conf");
        assert!(nginx.contains("include /etc/nginx/skiff-routes.map;"));
        assert!(nginx.contains("listen 80 default_server;"));
        assert!(!nginx.contains("[::]"), "no IPv6 listener without IPv6");
        assert_eq!(
            file("/etc/apache2/ports.conf").trim_end().lines().last(),
            Some("Listen 127.0.0.1:8080")
        );
        assert!(file(APT_PROXY_PATH).contains("\"http://10.0.0.1:3142\""));
        let sudoers = file("/etc/sudoers.d/skiff");
        assert!(
            sudoers.contains("skiff ALL=(root) NOPASSWD: /usr/local/share/skiff/bin/skiff-node")
        );
        assert!(
            d.files
                .iter()
                .any(|f| f.path == "/usr/local/share/skiff/bin/skiff-node" && f.mode == 0o755)
        );
        assert!(
            d.dirs
                .iter()
                .any(|x| x.path == "/usr/local/share/skiff/python")
        );
        assert!(
            d.dirs
                .iter()
                .any(|x| x.path == "/etc/skiff/env" && x.mode == 0o700)
        );
        let stamp = String::from_utf8(d.stamp.content.clone()).unwrap();
        assert!(stamp.contains(assets::digest()));
        assert!(stamp.contains("python_slots = 3"));
    }

    #[test]
    fn the_pool_follows_memory_and_never_shrinks() {
        let gib = |g: u64| Some(g * 1024 * 1024);
        assert_eq!(default_slots(None), 8);
        assert_eq!(default_slots(Some(512 * 1024)), 4, "floor");
        assert_eq!(default_slots(gib(1)), 4);
        assert_eq!(default_slots(gib(2)), 8);
        assert_eq!(default_slots(Some(2 * 1024 * 1024 - 1)), 7);
        assert_eq!(default_slots(Some(1536 * 1024)), 6);
        assert_eq!(default_slots(gib(64)), 8, "cap");
        assert_eq!(pool_size(None, gib(2), 0), 8);
        assert_eq!(pool_size(Some(2), gib(64), 0), 2, "an explicit flag wins");
        assert_eq!(pool_size(Some(2), gib(64), 12), 12, "grown slots are kept");
        assert_eq!(pool_size(None, gib(1), 12), 12);
        assert_eq!(pool_size(Some(99), None, 120), 99);
    }

    #[test]
    fn ipv6_adds_a_listener() {
        let facts = RenderFacts {
            ipv6: true,
            os: "debian 12".into(),
            python_slots: 3,
            ruby_slots: 2,
        };
        let d = Desired::build(Distro::Debian12, &facts, &choices()).unwrap();
        let f = d
            .files
            .iter()
            .find(|f| f.path == "/etc/nginx/conf.d/skiff.conf")
            .unwrap();
        assert!(String::from_utf8_lossy(&f.content).contains("listen [::]:80 default_server;"));
        let text = |d: &Desired, path: &str| {
            let f = d.files.iter().find(|f| f.path == path).unwrap();
            String::from_utf8_lossy(&f.content).into_owned()
        };
        let listen = text(&d, "/etc/nginx/snippets/skiff-listen-443.conf");
        assert!(listen.contains("listen [::]:443 ssl http2;"));
        assert!(d.packages.contains(&"certbot"));
        // NGINX 1.18 (Ubuntu 22.04) has no ssl_reject_handshake
        let conf = |d: &Desired| text(d, "/etc/nginx/conf.d/skiff.conf");
        assert!(conf(&d).contains("ssl_reject_handshake on;"));
        let jammy = Desired::build(Distro::Ubuntu2204, &facts, &choices()).unwrap();
        assert!(!conf(&jammy).contains("ssl_reject_handshake"));
    }

    #[test]
    fn hardening_files_follow_the_distribution_and_the_firewall_choice() {
        let facts = RenderFacts {
            ipv6: true,
            os: "debian 12".into(),
            python_slots: 2,
            ruby_slots: 1,
        };
        let text = |d: &Desired, p: &str| {
            let f = d.files.iter().find(|f| f.path == p).unwrap();
            String::from_utf8(f.content.clone()).unwrap()
        };
        let debian = Desired::build(Distro::Debian12, &facts, &choices()).unwrap();
        let rules = text(&debian, contract::FIREWALL);
        assert!(rules.contains("policy drop;"), "{rules}");
        assert!(rules.contains("elements = { 22, 80, 443 }"), "{rules}");
        assert!(rules.contains("tcp dport { 5432, 3306 } ip saddr @db_clients accept"));
        assert!(rules.contains("ct state established,related accept"));
        assert!(rules.contains("meta l4proto ipv6-icmp accept"));
        assert!(rules.contains("include \"/etc/skiff/firewall.d/*.nft\""));
        assert!(rules.starts_with("#!/usr/sbin/nft -f\n"));
        assert!(!rules.contains("flush ruleset"), "never touch other tables");
        let unit = text(&debian, &firewall_unit_path());
        assert!(unit.contains("ExecStart=/usr/sbin/nft -f /etc/skiff/firewall.nft"));
        assert!(
            text(&debian, contract::AUTO_UPGRADES)
                .contains("APT::Periodic::Unattended-Upgrade \"1\";")
        );
        let origins = text(&debian, contract::UPGRADES_ORIGINS);
        assert!(origins.contains("label=Debian-Security"), "{origins}");
        assert!(!origins.contains("Allowed-Origins {"), "{origins}");
        let ubuntu = Desired::build(Distro::Ubuntu2404, &facts, &choices()).unwrap();
        let origins = text(&ubuntu, contract::UPGRADES_ORIGINS);
        assert!(
            origins.contains("\"${distro_id}:${distro_codename}-security\";"),
            "{origins}"
        );
        assert!(origins.contains("#clear Unattended-Upgrade::Origins-Pattern;"));
        let sshd = String::from_utf8(debian.sshd.content.clone()).unwrap();
        assert!(sshd.contains("\nPasswordAuthentication no\n"), "{sshd}");
        assert!(!debian.files.iter().any(|f| f.path == contract::SSHD_DROPIN));

        let off = Desired::build(
            Distro::Debian12,
            &facts,
            &Choices {
                firewall: false,
                ..choices()
            },
        )
        .unwrap();
        assert!(!off.files.iter().any(|f| f.path == contract::FIREWALL));
        assert!(off.absent.iter().any(|p| p == contract::FIREWALL));
        assert!(off.absent.contains(&firewall_unit_path()));
    }
}
