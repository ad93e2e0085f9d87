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
use std::time::{Duration, Instant};

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
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            schema: SCHEMA_VERSION,
            default_node: None,
            nodes: BTreeMap::new(),
            apps: BTreeMap::new(),
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
    /// Login user.
    pub user: String,
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
    /// Checks what serde cannot: names, hosts, references and the schema version.
    fn validate(&self, file: &Path, text: &str) -> Result<()> {
        let problem = |key: String, problem: String, fix: Option<String>| {
            Error::config(ConfigProblem {
                location: toml_span::find_key(text, &key),
                file: file.to_path_buf(),
                key,
                problem,
                fix,
            })
        };
        if self.schema > SCHEMA_VERSION {
            return Err(problem(
                "schema".into(),
                format!(
                    "schema {} is newer than this skiff understands ({SCHEMA_VERSION})",
                    self.schema
                ),
                Some("upgrade skiff".into()),
            ));
        }
        if self.schema == 0 {
            return Err(problem(
                "schema".into(),
                "schema 0 does not exist".into(),
                Some(format!("write `schema = {SCHEMA_VERSION}`")),
            ));
        }
        for (name, node) in &self.nodes {
            if let Err(e) = names::check_name(name) {
                return Err(problem(
                    format!("nodes.{name}"),
                    format!("bad node name: {e}"),
                    Some("rename the `[nodes.NAME]` table".into()),
                ));
            }
            if node.address.is_empty()
                || node
                    .address
                    .chars()
                    .any(|c| !(c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
            {
                return Err(problem(
                    format!("nodes.{name}.address"),
                    format!("`{}` is not a host name or IP address", node.address),
                    Some("write an address like `203.0.113.7` or `web1.example.com`".into()),
                ));
            }
            if node.user.is_empty()
                || node.user.starts_with('-')
                || node
                    .user
                    .chars()
                    .any(|c| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
            {
                return Err(problem(
                    format!("nodes.{name}.user"),
                    format!("`{}` is not a valid login name", node.user),
                    Some("write a unix user name like `root` or `deploy`".into()),
                ));
            }
            if node.port == 0 {
                return Err(problem(
                    format!("nodes.{name}.port"),
                    "port 0 is not a port".into(),
                    Some("write the SSH port, usually `port = 22`".into()),
                ));
            }
        }
        if let Some(default) = &self.default_node
            && !self.nodes.contains_key(default)
        {
            return Err(problem(
                "default_node".into(),
                format!("`{default}` is not one of the nodes"),
                Some("set it to a name under `[nodes]` or remove the line".into()),
            ));
        }
        for (host, app) in &self.apps {
            if let Err(e) = names::check_hostname(host) {
                return Err(problem(
                    format!("apps.\"{host}\""),
                    format!("bad host name: {e}"),
                    None,
                ));
            }
            if let Err(e) = names::check_name(&app.name) {
                return Err(problem(
                    format!("apps.\"{host}\".name"),
                    format!("bad app name: {e}"),
                    None,
                ));
            }
            for node in &app.nodes {
                if !self.nodes.contains_key(node) {
                    return Err(problem(
                        format!("apps.\"{host}\".nodes"),
                        format!("node `{node}` is not one of the nodes"),
                        Some("remove it from the list or add the node".into()),
                    ));
                }
            }
            for (key, v) in [("current", app.current), ("prev", app.prev)] {
                if let Some(n) = v
                    && !app.versions.iter().any(|ver| ver.number == n)
                {
                    return Err(problem(
                        format!("apps.\"{host}\".{key}"),
                        format!("version {n} is not among the app's versions"),
                        Some("fix the number or run `skiff versions HOST`".into()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Parses and validates cluster.toml text; `file` is only used in messages.
    pub fn parse(file: &Path, text: &str) -> Result<Cluster> {
        let cluster: Cluster = toml_span::parse(file, text)?;
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
        match fs::read_to_string(&self.path) {
            Ok(text) => Cluster::parse(&self.path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cluster::default()),
            Err(source) => Err(Error::Read {
                path: self.path.clone(),
                source,
            }),
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
        let start = Instant::now();
        let mut told = false;
        loop {
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
            if !told {
                on_wait(&lock_path);
                told = true;
            }
            if start.elapsed() >= self.lock_timeout {
                return Err(Error::LockTimeout {
                    path: lock_path,
                    secs: self.lock_timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
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
        write_atomic(&self.path, text.as_bytes(), None::<fn()>)
    }
}

/// The TOML text of a cluster, with a header comment for people reading it.
pub fn render(cluster: &Cluster) -> String {
    let body = toml::to_string_pretty(cluster).expect("the cluster model always serializes");
    format!("# skiff cluster state: written by skiff, safe to read; edit with care\n{body}")
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
    let mut tmp = tempfile::Builder::new()
        .prefix(".cluster.toml.")
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
            },
        );
        c.default_node = Some("web1".into());
        let text = render(&c);
        let back = Cluster::parse(Path::new("c.toml"), &text).unwrap();
        assert_eq!(back, c);
    }
}
