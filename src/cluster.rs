//! The laptop's view of the cluster: `cluster.toml`.
//!
//! A typed model with a schema version, read with errors that name line, column and key,
//! and written atomically (temp file in the same folder, fsync, rename, fsync the folder)
//! under an exclusive lock, so two skiffs at once never lose an entry and a crash never
//! leaves a half-written file. Secrets never live here.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigProblem, Error, Result};
use crate::names;
use crate::toml_span;

/// The schema version this skiff writes; files with a newer one are refused.
pub const SCHEMA_VERSION: u32 = 1;

/// How long a command waits for another skiff's lock on the state before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole cluster state as stored in cluster.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Schema version of the file; see [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The node used when a command names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_node: Option<String>,
    /// Nodes by name.
    #[serde(default)]
    pub nodes: BTreeMap<String, Node>,
    /// Apps by their main host name.
    #[serde(default)]
    pub apps: BTreeMap<String, AppState>,
    /// The ACME account apps with `[tls] acme = true` order their certificates with
    /// (`skiff tls account`). No private key is ever kept here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsAccount>,
}

/// Let's Encrypt's production directory: the default ACME server.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`skiff tls account --server staging`).
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// `[tls]` in cluster.toml: the operator's ACME account settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsAccount {
    /// Contact address the CA sends expiry notices to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The CA's ACME directory URL ([`LETSENCRYPT`] when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// A PEM file on this machine with the CA certificate(s) the nodes' certbot trusts for
    /// `server` (a private or test CA only; public CAs need none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
}

impl TlsAccount {
    /// The ACME directory URL orders go to.
    pub fn server(&self) -> &str {
        self.server.as_deref().unwrap_or(LETSENCRYPT)
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            schema: SCHEMA_VERSION,
            default_node: None,
            nodes: BTreeMap::new(),
            apps: BTreeMap::new(),
            tls: None,
        }
    }
}

/// How a node came to exist, which decides what `destroy-node` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// A server the user has; skiff only forgets it.
    Ssh,
    /// The VM in vagrant/; destroyed with `vagrant destroy`.
    Vagrant,
    /// A throwaway node in a network namespace on this machine.
    Local,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::Ssh => "ssh",
            Provider::Vagrant => "vagrant",
            Provider::Local => "local",
        })
    }
}

/// One node: how to reach it and what skiff knows of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Address or DNS name.
    pub address: String,
    /// Login user: setup-node's (root, or a sudoer), and deploys' until `deploy_user` is set.
    pub user: String,
    /// The user deploys log in as (setup-node's `skiff`, recorded once a key login and its
    /// `sudo -n skiff-node` are confirmed); `user` stays the admin login (setup-node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_user: Option<String>,
    /// SSH port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// How the node came to exist.
    pub provider: Provider,
    /// Private key to log in with, when not from ssh config or the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    /// SHA256 fingerprint of the host key pinned on first contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// Operating system as read from /etc/os-release, e.g. "debian 12".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// When `setup-node` last completed, and with what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupStamp>,
    /// Provider-specific detail (local node number, vagrant folder).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provider_data: BTreeMap<String, String>,
}

fn default_port() -> u16 {
    22
}

/// A unix login name skiff accepts in cluster.toml.
fn valid_login_name(user: &str) -> bool {
    !(user.is_empty()
        || user.len() > 32
        || user.starts_with('-')
        || user
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "._-".contains(c))))
}

impl Node {
    /// Who deploys log in as: `deploy_user` once setup-node recorded it, else `user`.
    pub fn deploy_login(&self) -> &str {
        self.deploy_user.as_deref().unwrap_or(&self.user)
    }
}

/// What a node was last set up with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupStamp {
    /// RFC 3339 time.
    pub time: String,
    /// skiff version that ran setup-node.
    pub skiff_version: String,
    /// Digest of the server-files and templates it installed.
    pub digest: String,
}

/// One app, keyed by its main host name in [`Cluster::apps`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AppState {
    /// The app's name (from app.toml).
    pub name: String,
    /// Nodes the app is deployed to.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Kept versions, oldest first.
    #[serde(default)]
    pub versions: Vec<Version>,
    /// The version HOST serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u32>,
    /// The version `prev.HOST` serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<u32>,
    /// Its services (databases, folders) and the node holding each: what `destroy-node`
    /// names before it destroys their data. No credentials: those stay on the node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, ServiceRecord>,
}

/// Where one service of an app lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecord {
    /// `postgresql`, `mysql` or `files`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The node that holds its data.
    pub node: String,
}

/// One deployed version of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// Release number N (`N.HOST`).
    pub number: u32,
    /// RFC 3339 time of the deploy.
    pub time: String,
    /// sha256 of the release's manifest: equal digests mean equal trees.
    pub digest: String,
}

impl Cluster {
    /// Checks what serde cannot: names, addresses, references and the schema version.
    /// Every error names the key (e.g. `nodes.web1.address`), the bad value and the fix.
    fn validate(&self, file: &Path, text: &str) -> Result<()> {
        let problem = |key: String, problem: String, fix: &str| {
            Error::config(ConfigProblem {
                location: toml_span::find_key(text, &key),
                file: file.to_path_buf(),
                key,
                problem,
                fix: Some(fix.to_string()),
            })
        };
        if self.schema > SCHEMA_VERSION {
            return Err(problem(
                "schema".into(),
                format!(
                    "schema {} is newer than this skiff understands ({SCHEMA_VERSION})",
                    self.schema
                ),
                "upgrade skiff",
            ));
        }
        if self.schema == 0 {
            return Err(problem(
                "schema".into(),
                "schema 0 does not exist".into(),
                &format!("write `schema = {SCHEMA_VERSION}`"),
            ));
        }
        for (name, node) in &self.nodes {
            let key = format!("nodes.{}", toml_span::quote_key(name));
            if let Err(e) = names::check_name(name) {
                return Err(problem(
                    key,
                    format!("bad node name: {e}"),
                    "rename the `[nodes.NAME]` table to a name like `web1`",
                ));
            }
            if let Err(e) = names::check_node_address(&node.address) {
                return Err(problem(
                    format!("{key}.address"),
                    e,
                    "write an address like `203.0.113.7` or `web1.example.com`",
                ));
            }
            if !valid_login_name(&node.user) {
                return Err(problem(
                    format!("{key}.user"),
                    format!("`{}` is not a valid login name", node.user),
                    "write a unix user name like `root` or `deploy`",
                ));
            }
            if let Some(deploy) = node.deploy_user.as_deref().filter(|u| !valid_login_name(u)) {
                return Err(problem(
                    format!("{key}.deploy_user"),
                    format!("`{deploy}` is not a valid login name"),
                    "write the deploy user setup-node made (`skiff`), or remove the line to deploy as `user`",
                ));
            }
            if node.port == 0 {
                return Err(problem(
                    format!("{key}.port"),
                    "port 0 is not a port".into(),
                    "write the SSH port, usually `port = 22`",
                ));
            }
            if let Some(identity) = &node.identity
                && identity.as_os_str().is_empty()
            {
                return Err(problem(
                    format!("{key}.identity"),
                    "the identity file path is empty".into(),
                    "remove the line, or give the private key's path",
                ));
            }
        }
        if let Some(default) = &self.default_node
            && !self.nodes.contains_key(default)
        {
            return Err(problem(
                "default_node".into(),
                format!("`{default}` is not one of the nodes"),
                "set it to a name under `[nodes]` or remove the line",
            ));
        }
        for (host, app) in &self.apps {
            let key = format!("apps.{}", toml_span::quote_key(host));
            if let Err(e) = names::check_hostname(host) {
                return Err(problem(
                    key,
                    format!("bad host name: {e}"),
                    "apps are keyed by their main host name, e.g. `[apps.\"blog.example.com\"]`",
                ));
            }
            if let Err(e) = names::check_name(&app.name) {
                return Err(problem(
                    format!("{key}.name"),
                    format!("bad app name: {e}"),
                    "write the app's name from its app.toml, e.g. `name = \"blog\"`",
                ));
            }
            for (i, node) in app.nodes.iter().enumerate() {
                if !self.nodes.contains_key(node) {
                    return Err(problem(
                        format!("{key}.nodes[{i}]"),
                        format!("node `{node}` is not one of the nodes"),
                        "remove it from the list or add the node",
                    ));
                }
                if app.nodes[..i].contains(node) {
                    return Err(problem(
                        format!("{key}.nodes[{i}]"),
                        format!("node `{node}` is listed twice"),
                        "remove the duplicate",
                    ));
                }
            }
            for (i, v) in app.versions.iter().enumerate() {
                let vkey = format!("{key}.versions[{i}].number");
                if v.number == 0 {
                    return Err(problem(
                        vkey,
                        "version 0 does not exist; versions start at 1".into(),
                        "fix the number or remove the entry",
                    ));
                }
                if app.versions[..i].iter().any(|w| w.number == v.number) {
                    return Err(problem(
                        vkey,
                        format!("version {} is listed twice", v.number),
                        "remove the duplicate entry",
                    ));
                }
            }
            for (field, v) in [("current", app.current), ("prev", app.prev)] {
                if let Some(n) = v
                    && !app.versions.iter().any(|ver| ver.number == n)
                {
                    return Err(problem(
                        format!("{key}.{field}"),
                        format!("version {n} is not among the app's versions"),
                        "fix the number or run `skiff versions HOST`",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Parses and validates cluster.toml text; `file` is only used in messages.
    pub fn parse(file: &Path, text: &str) -> Result<Cluster> {
        let cluster: Cluster = toml_span::parse(file, text).map_err(|err| match err {
            Error::Config(mut p) if p.key == "schema" => {
                p.fix = Some(format!("write `schema = {SCHEMA_VERSION}`"));
                Error::Config(p)
            }
            other => other,
        })?;
        cluster.validate(file, text)?;
        Ok(cluster)
    }

    /// The node called `name`, or an error listing the known ones.
    pub fn node(&self, name: &str) -> Result<&Node> {
        self.nodes.get(name).ok_or_else(|| Error::UnknownNode {
            name: name.to_string(),
            known: self.nodes.keys().cloned().collect(),
        })
    }

    /// The node a command should use: the one named, else the default, else the only one.
    pub fn pick_node(&self, name: Option<&str>) -> Result<String> {
        match name {
            Some(n) => self.node(n).map(|_| n.to_string()),
            None => match &self.default_node {
                Some(d) => Ok(d.clone()),
                None if self.nodes.len() == 1 => Ok(self.nodes.keys().next().cloned().unwrap()),
                None => Err(Error::NoNode),
            },
        }
    }
}

/// Where cluster.toml lives: `--state`/`SKIFF_STATE`, else
/// `$XDG_CONFIG_HOME/skiff/cluster.toml`, else `~/.config/skiff/cluster.toml`.
pub fn default_state_path(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("SKIFF_STATE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => {
                return Err(Error::usage(
                    "cannot find a place for cluster.toml: neither XDG_CONFIG_HOME nor HOME is set",
                    "pass `--state FILE` or set SKIFF_STATE",
                ));
            }
        },
    };
    Ok(base.join("skiff").join("cluster.toml"))
}

/// A handle on the state file: reads freely, writes through [`StateFile::update`].
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    lock_timeout: Duration,
}

/// Held while a read-modify-write of the state runs; dropping it unlocks.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateFile {
    /// A state file at `path` (which need not exist yet).
    pub fn new(path: PathBuf) -> Self {
        StateFile {
            path,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// Changes how long [`StateFile::update`] waits for another skiff's lock.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Folder beside the state for skiff's own files (known_hosts, ssh control sockets).
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Loads the state; a missing file is an empty cluster.
    pub fn load(&self) -> Result<Cluster> {
        match fs::read(&self.path) {
            Ok(bytes) => Cluster::parse(&self.path, &toml_span::text_of(&self.path, bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cluster::default()),
            Err(err) => Err(Error::config_file(
                &self.path,
                &err,
                "",
                "pass `--state FILE` to use another state file",
            )),
        }
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// Takes the exclusive lock, waiting up to the timeout; `on_wait` is called once if
    /// another process holds it, so the caller can say why it is waiting.
    pub fn lock(&self, on_wait: &mut dyn FnMut(&Path)) -> Result<StateLock> {
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
        let lock_path = self.lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| Error::Write {
                path: lock_path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => return Ok(StateLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Write {
                    path: lock_path,
                    source,
                });
            }
        }
        on_wait(&lock_path);
        // Wait in the kernel rather than polling: the kernel wakes a blocked waiter the
        // moment the lock is released, where a poll every few ms loses nearly every race
        // against a holder that re-locks at once (seen: 1 wait in 200 contended updates).
        // The blocking call runs on a helper thread so we can give up after the timeout;
        // it owns a clone of the same open file, so the lock it takes is ours.
        let waiter = file.try_clone().map_err(|source| Error::Write {
            path: lock_path.clone(),
            source,
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let result = waiter.lock();
            // After a timeout nobody listens; dropping `waiter` then closes the last
            // handle of the file and releases the lock at once.
            let _ = tx.send(result);
        });
        match rx.recv_timeout(self.lock_timeout) {
            Ok(Ok(())) => Ok(StateLock { _file: file }),
            Ok(Err(source)) => Err(Error::Write {
                path: lock_path,
                source,
            }),
            Err(_) => Err(Error::LockTimeout {
                path: lock_path,
                secs: self.lock_timeout.as_secs(),
            }),
        }
    }

    /// Read-modify-write under the lock: loads the newest state, applies `change`, saves
    /// atomically. `change`'s error aborts without writing.
    pub fn update<T>(
        &self,
        on_wait: &mut dyn FnMut(&Path),
        change: impl FnOnce(&mut Cluster) -> Result<T>,
    ) -> Result<T> {
        let _lock = self.lock(on_wait)?;
        let mut cluster = self.load()?;
        let out = change(&mut cluster)?;
        self.save_locked(&cluster)?;
        Ok(out)
    }

    /// Writes `cluster` atomically; the caller must hold the lock.
    pub fn save_locked(&self, cluster: &Cluster) -> Result<()> {
        let text = render(cluster);
        remove_stale_temps(&self.path);
        write_atomic(&self.path, text.as_bytes(), None::<fn()>)
    }
}

/// The TOML text of a cluster, with a header comment for people reading it.
pub fn render(cluster: &Cluster) -> String {
    let body = toml::to_string_pretty(cluster).expect("the cluster model always serializes");
    format!("# skiff cluster state: written by skiff, safe to read; edit with care\n{body}")
}

/// Random characters in a temp file's name.
const TEMP_RANDOM_LEN: usize = 6;

/// `.NAME.`: the prefix of [`write_atomic`]'s temp files for `path`, so leftovers of a
/// writer that died before its rename can be told apart from other files' temps.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.")
}

/// Removes temp files left by a writer of `path` that was killed between its temp write
/// and its rename. Only safe under the state lock (no live writer can own one then);
/// best effort, as a leftover harms nothing but tidiness.
fn remove_stale_temps(path: &Path) {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = temp_prefix(path);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // tempfile names are PREFIX + 6 random alphanumerics + SUFFIX.
        let is_ours = name.strip_prefix(&prefix).is_some_and(|rest| {
            rest.strip_suffix(".tmp").is_some_and(|r| {
                r.len() == TEMP_RANDOM_LEN && r.chars().all(|c| c.is_ascii_alphanumeric())
            })
        });
        if is_ours {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Atomic replace: temp file in the same folder, fsync, rename, fsync the folder.
/// `before_rename` runs between the temp write and the rename (tests kill there).
pub fn write_atomic(path: &Path, bytes: &[u8], before_rename: Option<impl FnOnce()>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let write_err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let prefix = temp_prefix(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .rand_bytes(TEMP_RANDOM_LEN)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(write_err)?;
    tmp.write_all(bytes).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    if let Some(hook) = before_rename {
        hook();
    }
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut c = Cluster::default();
        c.nodes.insert(
            "web1".into(),
            Node {
                address: "10.250.0.5".into(),
                user: "root".into(),
                port: 22,
                provider: Provider::Local,
                identity: None,
                host_key: Some("SHA256:abc".into()),
                os: Some("debian 12".into()),
                setup: None,
                provider_data: BTreeMap::new(),
                deploy_user: Some("skiff".into()),
            },
        );
        c.default_node = Some("web1".into());
        let text = render(&c);
        let back = Cluster::parse(Path::new("c.toml"), &text).unwrap();
        assert_eq!(back, c);
    }

    const NODE: &str = "schema = 1\n[nodes.web1]\naddress = \"10.250.0.5\"\nuser = \"root\"\nprovider = \"local\"\n";

    /// (what, cluster.toml text, key, problem text, line of the pointer or 0 for "any").
    fn invalid_cases() -> Vec<(&'static str, String, &'static str, &'static str, usize)> {
        let with = |extra: &str| format!("{NODE}{extra}");
        let app = |body: &str| {
            with(&format!(
                "[apps.\"blog.test\"]\nname = \"blog\"\nnodes = [\"web1\"]\n{body}"
            ))
        };
        let version = "[[apps.\"blog.test\".versions]]\nnumber = 1\ntime = \"2026-01-01T00:00:00Z\"\ndigest = \"ab\"\n";
        vec![
            (
                "unknown top-level key",
                format!("colour = 1\n{NODE}"),
                "colour",
                "unknown field `colour`",
                1,
            ),
            (
                "typo in a node",
                NODE.replace("address", "adress"),
                "nodes.web1.adress",
                "unknown field `adress`",
                3,
            ),
            (
                "missing schema",
                "[nodes]\n".into(),
                "schema",
                "missing field `schema`",
                0,
            ),
            (
                "schema from the future",
                NODE.replace("schema = 1", "schema = 9"),
                "schema",
                "schema 9 is newer",
                1,
            ),
            (
                "schema 0",
                NODE.replace("schema = 1", "schema = 0"),
                "schema",
                "schema 0 does not exist",
                1,
            ),
            (
                "schema as a string",
                NODE.replace("schema = 1", "schema = \"1\""),
                "schema",
                "string \"1\"",
                1,
            ),
            (
                "bad node name",
                NODE.replace("web1", "Web_1"),
                "nodes.Web_1",
                "bad node name: `Web_1`",
                2,
            ),
            (
                "node name with a dot",
                NODE.replace("[nodes.web1]", "[nodes.\"web.1\"]"),
                "nodes.\"web.1\"",
                "`web.1` contains `.`",
                2,
            ),
            (
                "address that is an ssh option",
                NODE.replace("10.250.0.5", "-oProxyCommand=x"),
                "nodes.web1.address",
                "`-oProxyCommand=x` must start with a letter or digit",
                3,
            ),
            (
                "address with a space",
                NODE.replace("10.250.0.5", "web 1"),
                "nodes.web1.address",
                "`web 1` contains ` `",
                3,
            ),
            (
                "empty address",
                NODE.replace("10.250.0.5", ""),
                "nodes.web1.address",
                "the address is empty",
                3,
            ),
            (
                "missing address",
                NODE.replace("address = \"10.250.0.5\"\n", ""),
                "nodes.web1.address",
                "missing field `address`",
                2,
            ),
            (
                "user with a space",
                NODE.replace("\"root\"", "\"ro ot\""),
                "nodes.web1.user",
                "`ro ot` is not a valid login name",
                4,
            ),
            (
                "deploy user with a dash first",
                with("deploy_user = \"-oProxyCommand\"\n"),
                "nodes.web1.deploy_user",
                "`-oProxyCommand` is not a valid login name",
                6,
            ),
            (
                "port 0",
                with("port = 0\n"),
                "nodes.web1.port",
                "port 0 is not a port",
                6,
            ),
            (
                "port too large",
                with("port = 70000\n"),
                "nodes.web1.port",
                "integer `70000`",
                6,
            ),
            (
                "unknown provider",
                NODE.replace("\"local\"", "\"docker\""),
                "nodes.web1.provider",
                "unknown variant `docker`",
                5,
            ),
            (
                "empty identity",
                with("identity = \"\"\n"),
                "nodes.web1.identity",
                "the identity file path is empty",
                6,
            ),
            (
                "setup stamp without digest",
                with("[nodes.web1.setup]\ntime = \"t\"\nskiff_version = \"0.1.0\"\n"),
                "nodes.web1.setup.digest",
                "missing field `digest`",
                6,
            ),
            (
                "default node that does not exist",
                NODE.replace("schema = 1\n", "schema = 1\ndefault_node = \"web2\"\n"),
                "default_node",
                "`web2` is not one of the nodes",
                2,
            ),
            (
                "bad app host",
                with("[apps.\"Blog.Test\"]\nname = \"blog\"\n"),
                "apps.\"Blog.Test\"",
                "bad host name: `Blog.Test` has upper-case",
                6,
            ),
            (
                "app host that is an IP",
                with("[apps.\"10.0.0.1\"]\nname = \"blog\"\n"),
                "apps.\"10.0.0.1\"",
                "is an IP address",
                6,
            ),
            (
                "bad app name",
                app("").replace("name = \"blog\"", "name = \"Blog\""),
                "apps.\"blog.test\".name",
                "bad app name: `Blog`",
                7,
            ),
            (
                "app on an unknown node",
                app("").replace("[\"web1\"]", "[\"web1\", \"web9\"]"),
                "apps.\"blog.test\".nodes[1]",
                "node `web9` is not one of the nodes",
                8,
            ),
            (
                "app node listed twice",
                app("").replace("[\"web1\"]", "[\"web1\", \"web1\"]"),
                "apps.\"blog.test\".nodes[1]",
                "node `web1` is listed twice",
                8,
            ),
            (
                "current not among versions",
                app(&format!("current = 2\n{version}")),
                "apps.\"blog.test\".current",
                "version 2 is not among the app's versions",
                9,
            ),
            (
                "prev not among versions",
                app(&format!("current = 1\nprev = 5\n{version}")),
                "apps.\"blog.test\".prev",
                "version 5 is not among the app's versions",
                10,
            ),
            (
                "version listed twice",
                app(&format!("{version}{version}")),
                "apps.\"blog.test\".versions[1].number",
                "version 1 is listed twice",
                14,
            ),
            (
                "version 0",
                app(&version.replace("number = 1", "number = 0")),
                "apps.\"blog.test\".versions[0].number",
                "version 0 does not exist",
                10,
            ),
            (
                "version without digest",
                app(&version.replace("digest = \"ab\"\n", "")),
                "apps.\"blog.test\".versions[0].digest",
                "missing field `digest`",
                9,
            ),
            (
                "unknown key in an app",
                app("colour = 1\n"),
                "apps.\"blog.test\".colour",
                "unknown field `colour`",
                9,
            ),
        ]
    }

    #[test]
    fn invalid_cluster_toml_names_key_and_problem() {
        let cases = invalid_cases();
        assert!(cases.len() >= 10);
        let mut failures = Vec::new();
        for (what, text, key, needle, line) in &cases {
            let err = match Cluster::parse(Path::new("cluster.toml"), text) {
                Ok(_) => {
                    failures.push(format!("{what}: accepted\n{text}"));
                    continue;
                }
                Err(e) => e,
            };
            let mut shown = err.to_string();
            if let Some((f, l)) = err.location() {
                shown.push_str(&format!("\n --> {}:{}:{}", f.display(), l.line, l.column));
            }
            if let Some(h) = err.hint() {
                shown.push_str(&format!("\nhint: {h}"));
            }
            if std::env::var_os("SKIFF_SHOW_ERRORS").is_some() {
                eprintln!("## {what}\n{shown}\n");
            }
            let Error::Config(p) = &err else {
                failures.push(format!("{what}: not a config problem: {err:?}"));
                continue;
            };
            let mut wrong = Vec::new();
            if p.key != *key {
                wrong.push(format!("key `{}` instead of `{key}`", p.key));
            }
            if !shown.contains(&format!("`{key}`")) {
                wrong.push("the message does not name the key".into());
            }
            if !p.problem.contains(needle) {
                wrong.push(format!("problem lacks {needle:?}"));
            }
            if !shown.contains("cluster.toml") {
                wrong.push("the message does not name the file".into());
            }
            if p.fix.as_deref().is_none_or(str::is_empty) {
                wrong.push("no fix".into());
            }
            match (p.location, line) {
                (_, 0) => {}
                (Some(l), n) if l.line == *n => {}
                (l, n) => wrong.push(format!("location {l:?} instead of line {n}")),
            }
            if !wrong.is_empty() {
                failures.push(format!("{what}: {}\n{shown}", wrong.join("; ")));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn syntax_error_names_line() {
        let err =
            Cluster::parse(Path::new("cluster.toml"), "schema = 1\n[nodes.web1\n").unwrap_err();
        assert_eq!(err.location().map(|(_, l)| l.line), Some(2));
    }

    #[test]
    fn stale_temps_are_removed_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path().join("cluster.toml"));
        let stale = dir.path().join(".cluster.toml.abc123.tmp");
        let other = dir.path().join(".cluster.toml.bak.abc123.tmp");
        fs::write(&stale, "half").unwrap();
        fs::write(&other, "someone else's").unwrap();
        state.update(&mut |_| {}, |_| Ok(())).unwrap();
        assert!(!stale.exists());
        assert!(other.exists());
        assert_eq!(state.load().unwrap(), Cluster::default());
    }
}
