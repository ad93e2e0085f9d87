//! The typed `app.toml`: what an app is, how it runs and where it is served.
//!
//! Every section README.md documents parses and validates now, so the format is stable from the
//! start; sections whose feature is not built yet are refused with "not supported yet"
//! by the command that would use them (see [`AppConfig::unsupported`]).
//! Nothing invalid gets past [`AppConfig::load`]: names, hosts, paths and env names are
//! checked against [`crate::names`] before anything reaches a template, a path or a shell.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigProblem, Error, Result};
use crate::names;
use crate::toml_span;

/// The file name skiff looks for in an app folder.
pub const FILE_NAME: &str = "app.toml";

/// How the app runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// WSGI under mod_wsgi.
    Python,
    /// PHP under mod_php.
    Php,
    /// Rack under Passenger.
    Ruby,
    /// Files only, served by NGINX.
    Static,
}

impl Runtime {
    /// The name app.toml uses (`python`, `php`, `ruby`, `static`).
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Python => "python",
            Runtime::Php => "php",
            Runtime::Ruby => "ruby",
            Runtime::Static => "static",
        }
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole app.toml.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// App name: `[a-z][a-z0-9-]*`.
    pub name: String,
    /// How it runs.
    pub runtime: Runtime,
    /// Host names it answers to; the first is the main one (`N.HOST`, `prev.HOST`).
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Fixed version number for the next deploy (else the next free number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Releases kept on the node (current and prev are always kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
    /// Python settings (runtime = "python").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonConfig>,
    /// PHP settings (runtime = "php").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub php: Option<PhpConfig>,
    /// Ruby settings (runtime = "ruby").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruby: Option<RubyConfig>,
    /// Plain settings for the app's environment (secrets belong in `/etc/skiff/env/APP.env` on the node).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The check a new version must pass before it goes live.
    #[serde(default)]
    pub health: HealthConfig,
    /// Commands run on the node in the new release before the switch.
    #[serde(default)]
    pub build: BuildConfig,
    /// Debian/Ubuntu packages the app needs on every node it runs on.
    #[serde(default)]
    pub packages: PackagesConfig,
    /// Backing services by name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceEntry>,
    /// `[deploy]`: the release command.
    #[serde(default)]
    pub deploy: DeployConfig,
    /// Scheduled jobs of the current version: a request to a path, or a command.
    #[serde(default)]
    pub cron: Vec<CronEntry>,
    /// Background workers (current version only), by name.
    #[serde(default)]
    pub processes: BTreeMap<String, ProcessEntry>,
    /// `[tls]`: HTTPS for the app's hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// `[tls]`: HTTPS for HOST, its aliases and `prev.HOST`, with a certificate ordered and
/// renewed on each node (`acme = true`), or one installed by `skiff tls add`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Order and renew the certificate with ACME (certbot on each node, webroot).
    #[serde(default)]
    pub acme: bool,
    /// Plain HTTP to the app's hosts moves to HTTPS (301), but ACME challenges.
    #[serde(default = "yes")]
    pub redirect: bool,
    /// Send `Strict-Transport-Security` (browsers then refuse plain HTTP for two years).
    #[serde(default)]
    pub hsts: bool,
}

fn yes() -> bool {
    true
}

/// `[python]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PythonConfig {
    /// `module:callable` of the WSGI app, e.g. `app:application`.
    pub wsgi: String,
    /// Requirements file; a venv per its hash is built on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<String>,
    /// Folder of wheels shipped with the app (`pip install --no-index --find-links`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wheels: Option<String>,
    /// Daemon processes per slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u32>,
    /// Whether the app's venv sees the Python packages Debian installed (`[packages]
    /// apt = ["python3-lxml"]`), as `python3 -m venv --system-site-packages` makes it.
    /// Apps without a venv always see them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system_packages: bool,
}

/// `[packages]`: system packages installed by `skiff update` on every node of the app,
/// before the build (TOPP Cloud's rule: if it's in a distribution package, use that).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PackagesConfig {
    /// Package names for apt, e.g. `["python3-lxml", "ruby-sinatra"]`. Installed when
    /// missing, never removed by skiff.
    #[serde(default)]
    pub apt: Vec<String>,
}

/// Most packages one app may list.
const MAX_PACKAGES: usize = 100;

/// A Debian package name (Debian Policy 5.6.1): lower-case letters, digits and `+ - .`,
/// at least two characters, starting with a letter or digit.
pub fn check_package_name(name: &str) -> std::result::Result<(), String> {
    let ok = name.len() >= 2
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a Debian package name (lower-case letters, digits and `+-.`, starting with a letter or digit)"
        ))
    }
}

/// `[php]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PhpConfig {
    /// Document root inside the app tree.
    #[serde(default = "default_docroot")]
    pub docroot: String,
}

fn default_docroot() -> String {
    ".".into()
}

/// `[ruby]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RubyConfig {
    /// Rack file inside the app tree.
    #[serde(default = "default_rackup")]
    pub rackup: String,
}

fn default_rackup() -> String {
    "config.ru".into()
}

/// `[health]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Path requested on `N.HOST`; 2xx or 3xx passes.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// How long the new version may take to pass, e.g. "30s".
    #[serde(default = "default_health_timeout")]
    pub timeout: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            path: default_health_path(),
            timeout: default_health_timeout(),
        }
    }
}

fn default_health_path() -> String {
    "/".into()
}

fn default_health_timeout() -> String {
    "30s".into()
}

impl HealthConfig {
    /// The timeout as a duration (validated at load, so this cannot fail afterwards).
    pub fn timeout(&self) -> Duration {
        humantime::parse_duration(&self.timeout).unwrap_or(Duration::from_secs(30))
    }
}

/// `[build]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// Commands run with `sh -c` in the new release on the node, as the app user.
    #[serde(default)]
    pub commands: Vec<String>,
    /// How long one build command may run, e.g. "10m" (default); a command still
    /// running then is stopped and the deploy fails, the live version untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Default of `[build] timeout`: long enough for a cold `pip install` or asset build.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(600);
const MIN_BUILD_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_BUILD_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

impl BuildConfig {
    /// The timeout of one build command (validated at load).
    pub fn timeout(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(DEFAULT_BUILD_TIMEOUT)
    }
}

/// `[deploy]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// Run once per deploy, on one node (the one that holds the app's services), after
    /// the build and before any switch, in the new release with its environment: e.g.
    /// `python manage.py migrate --noinput`. A failure aborts the deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Dump every service on its node (`/var/backups/skiff/APP/N/NAME`) before the
    /// release command runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backup_before_release: bool,
}

/// `[services] NAME = "TYPE"` or `[services.NAME]` with options.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ServiceEntry {
    /// `db = "postgresql"`.
    Kind(ServiceKind),
    /// `[services.db]` with `type` and `node`.
    Full(ServiceConfig),
}

/// The keys of `[services.NAME]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// What it is.
    #[serde(rename = "type")]
    pub kind: ServiceKind,
    /// The node it lives on (default: the app's first node by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl<'de> Deserialize<'de> for ServiceEntry {
    /// `db = "postgresql"` or `[services.db]`; an unknown type or key is named.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        short_or_table(
            d,
            ServiceEntry::Kind,
            ServiceEntry::Full,
            "a service type (\"postgresql\", \"mysql\" or \"files\") or a table",
        )
    }
}

/// A `NAME = "..."` entry or a `[SECTION.NAME]` table, each read by its own serde type;
/// an unknown variant or key, or another TOML type, is named in the error (serde's untagged
/// enums would only say "data did not match any variant").
fn short_or_table<'de, D, S, T, R>(
    d: D,
    short: fn(S) -> R,
    full: fn(T) -> R,
    expected: &str,
) -> std::result::Result<R, D::Error>
where
    D: serde::Deserializer<'de>,
    S: serde::de::DeserializeOwned,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error as _;
    let value = toml::Value::deserialize(d)?;
    let read = match value {
        toml::Value::String(_) => S::deserialize(value).map(short),
        toml::Value::Table(_) => T::deserialize(value).map(full),
        other => {
            return Err(D::Error::custom(format!(
                "expected {expected}, found {}",
                other.type_str()
            )));
        }
    };
    read.map_err(|e| D::Error::custom(e.message()))
}

impl ServiceEntry {
    /// Its type.
    pub fn kind(&self) -> ServiceKind {
        match self {
            ServiceEntry::Kind(k) => *k,
            ServiceEntry::Full(c) => c.kind,
        }
    }

    /// The node it was placed on in app.toml, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            ServiceEntry::Kind(_) => None,
            ServiceEntry::Full(c) => c.node.as_deref(),
        }
    }
}

impl ServiceKind {
    /// The name the node's scripts use.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Postgresql => "postgresql",
            ServiceKind::Mysql => "mysql",
            ServiceKind::Files => "files",
        }
    }

    /// A database (rather than a folder).
    pub fn is_database(self) -> bool {
        !matches!(self, ServiceKind::Files)
    }
}

impl AppConfig {
    /// The services as the node gets them, `NAME TYPE` lines: databases first (the first
    /// of them is the one `DATABASE_URL` names), then folders, each by name.
    pub fn service_lines(&self) -> String {
        let mut list: Vec<(&String, ServiceKind)> =
            self.services.iter().map(|(n, e)| (n, e.kind())).collect();
        list.sort_by_key(|(n, k)| (!k.is_database(), (*n).clone()));
        list.iter()
            .map(|(n, k)| format!("{n} {}\n", k.as_str()))
            .collect()
    }
}

/// A backing service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// A PostgreSQL database.
    Postgresql,
    /// A MySQL/MariaDB database.
    Mysql,
    /// A persistent folder (`data/`), never synced over.
    Files,
}

/// `[[cron]]`: a job of the current version on a schedule, run by a systemd timer on one
/// node of the app.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CronEntry {
    /// Five-field cron schedule (`*/10 * * * *`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Or a systemd calendar expression (`*:*:0/5`: every 5 seconds), used as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// A web cron: the path requested from the current version as HOST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Or a command run in the current release with its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// How long one run may take (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Default `[[cron]] timeout`.
pub const DEFAULT_CRON_TIMEOUT: Duration = Duration::from_secs(300);

impl CronEntry {
    /// The run's time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(DEFAULT_CRON_TIMEOUT)
    }
}

/// `[processes.NAME]`: a background worker of the current version, or just its command
/// (`worker = "python worker.py"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ProcessEntry {
    /// `NAME = "COMMAND"`: one instance, the defaults.
    Command(String),
    /// `[processes.NAME]` with its keys.
    Full(ProcessConfig),
}

/// The keys of `[processes.NAME]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Run with `sh -c` in the release folder, with the release's environment.
    pub command: String,
    /// How many run on each node (default 1).
    #[serde(default = "one")]
    pub instances: u32,
    /// The signal that asks it to stop (default `TERM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// How long it may take to stop before it is killed (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<String>,
}

fn one() -> u32 {
    1
}

impl<'de> Deserialize<'de> for ProcessEntry {
    /// `worker = "python worker.py"` or `[processes.worker]`; a wrong key is named.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        short_or_table(
            d,
            ProcessEntry::Command,
            ProcessEntry::Full,
            "the worker's command (a string) or a table with `command`",
        )
    }
}

/// Signals a worker may be asked to stop with.
pub const STOP_SIGNALS: [&str; 6] = ["TERM", "INT", "QUIT", "HUP", "USR1", "USR2"];
/// Most instances of one worker per node.
pub const MAX_INSTANCES: u32 = 16;
/// Default `stop_timeout`.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl ProcessEntry {
    /// The worker's settings, defaults filled in.
    pub fn config(&self) -> ProcessConfig {
        match self {
            ProcessEntry::Command(command) => ProcessConfig {
                command: command.clone(),
                instances: 1,
                stop_signal: None,
                stop_timeout: None,
            },
            ProcessEntry::Full(c) => c.clone(),
        }
    }
}

impl ProcessConfig {
    /// `stop_signal` without a `SIG` prefix, upper case (default `TERM`).
    pub fn signal(&self) -> String {
        let s = self
            .stop_signal
            .as_deref()
            .unwrap_or("TERM")
            .to_ascii_uppercase();
        s.strip_prefix("SIG").map(str::to_string).unwrap_or(s)
    }

    /// `stop_timeout` (default 10s).
    pub fn stop_timeout(&self) -> Duration {
        self.stop_timeout
            .as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(DEFAULT_STOP_TIMEOUT)
    }
}

impl AppConfig {
    /// Reads and validates `DIR/app.toml`, including the checks that need the app's
    /// files: every configured path exists, has the right kind (file or folder) and,
    /// after following symlinks, stays inside the app folder.
    pub fn load(dir: &Path) -> Result<AppConfig> {
        let file = dir.join(FILE_NAME);
        let bytes = std::fs::read(&file).map_err(|err| {
            let missing = if dir.is_dir() {
                format!(
                    "`{}` is not an app folder yet: create its app.toml with `skiff init {} --runtime RUNTIME`, or pass the folder of an app",
                    dir.display(),
                    dir.display()
                )
            } else {
                format!(
                    "the folder `{}` does not exist: pass the folder of an app, or make one with `skiff init {} --runtime RUNTIME`",
                    dir.display(),
                    dir.display()
                )
            };
            Error::config_file(&file, &err, &missing, "")
        })?;
        let text = toml_span::text_of(&file, bytes)?;
        let config = Self::parse(&file, &text)?;
        config.check_files(dir, &Checker::new(&file, &text))?;
        Ok(config)
    }

    /// Parses and validates app.toml text; `file` is used in messages.
    ///
    /// Only lexical checks happen here (no file system access): paths are relative and
    /// cannot leave the app folder by `..`; [`AppConfig::load`] adds the checks on disk.
    pub fn parse(file: &Path, text: &str) -> Result<AppConfig> {
        let config: AppConfig = toml_span::parse(file, text).map_err(with_example)?;
        config.validate(&Checker::new(file, text))?;
        Ok(config)
    }

    /// The main host name (first of `hostnames`), if any.
    pub fn main_host(&self) -> Option<&str> {
        self.hostnames.first().map(String::as_str)
    }

    /// The PHP document root, defaulting to the app folder itself when `[php]` is absent.
    pub fn php_docroot(&self) -> &str {
        self.php.as_ref().map_or(".", |p| p.docroot.as_str())
    }

    /// The Rack file, defaulting to `config.ru` when `[ruby]` is absent.
    pub fn ruby_rackup(&self) -> &str {
        self.ruby
            .as_ref()
            .map_or("config.ru", |r| r.rackup.as_str())
    }

    /// Features configured in this file that skiff does not build yet, as (key, hint),
    /// so a command that would need them can refuse clearly instead of ignoring them.
    pub fn unsupported(&self) -> Vec<(String, String)> {
        // every section app.toml accepts is built; the next one that parses before it is
        // built is listed here
        Vec::new()
    }

    /// Fails with "not supported yet" for the first configured but unbuilt feature.
    pub fn refuse_unsupported(&self, file: &Path) -> Result<()> {
        match self.unsupported().into_iter().next() {
            Some((key, hint)) => Err(Error::NotSupported {
                what: format!("`[{key}]` in `{}`", file.display()),
                hint: Some(hint),
            }),
            None => Ok(()),
        }
    }

    /// Checks what serde cannot. Every error names the file, key, value and fix.
    fn validate(&self, c: &Checker) -> Result<()> {
        if let Some(tls) = &self.tls
            && tls.acme
            && let Some(w) = self.hostnames.iter().find(|h| h.starts_with("*."))
        {
            return Err(c.bad(
                "tls.acme",
                format!("host `{w}` is a wildcard, which ACME's HTTP challenge cannot prove"),
                "install a wildcard certificate with `skiff tls add HOST --cert FILE --key FILE` and set `acme = false`",
            ));
        }
        names::check_name(&self.name).map_err(|e| {
            c.bad(
                "name",
                e,
                "use a name like `name = \"blog\"` or `\"my-app\"`",
            )
        })?;
        self.validate_hostnames(c)?;
        self.validate_runtime(c)?;
        if self.version == Some(0) {
            return Err(c.bad(
                "version",
                "version 0 is not allowed; versions start at 1".into(),
                "remove `version` to use the next number, or give 1 or more",
            ));
        }
        if let Some(keep) = self.keep
            && !(1..=MAX_KEEP).contains(&keep)
        {
            return Err(c.bad(
                "keep",
                format!("keep = {keep} is outside 1..={MAX_KEEP}"),
                "keep between 1 and 100 releases, e.g. `keep = 5` (current and prev are always kept)",
            ));
        }
        self.validate_env(c)?;
        if self.packages.apt.len() > MAX_PACKAGES {
            return Err(c.bad(
                "packages.apt",
                format!(
                    "{} packages listed; at most {MAX_PACKAGES}",
                    self.packages.apt.len()
                ),
                "list only what the app needs; apt installs their dependencies itself",
            ));
        }
        for (i, name) in self.packages.apt.iter().enumerate() {
            check_package_name(name).map_err(|e| {
                c.bad(
                    &format!("packages.apt[{i}]"),
                    e,
                    "write the name as apt knows it, e.g. `apt = [\"python3-lxml\"]` (`apt-cache search WORD` finds it)",
                )
            })?;
        }
        check_url_path(&self.health.path).map_err(|e| {
            c.bad(
                "health.path",
                e,
                "write a path like `path = \"/\"` or `\"/healthz\"`",
            )
        })?;
        if let Some(t) = &self.build.timeout {
            check_duration(t, MIN_BUILD_TIMEOUT, MAX_BUILD_TIMEOUT).map_err(|e| {
                c.bad(
                    "build.timeout",
                    e,
                    "write a duration like `timeout = \"10m\"` or `\"90s\"`",
                )
            })?;
        }
        check_duration(&self.health.timeout, MIN_HEALTH_TIMEOUT, MAX_HEALTH_TIMEOUT).map_err(
            |e| {
                c.bad(
                    "health.timeout",
                    e,
                    "write a duration like `timeout = \"30s\"` or `\"2m\"`",
                )
            },
        )?;
        for (i, cmd) in self.build.commands.iter().enumerate() {
            let key = format!("build.commands[{i}]");
            if cmd.trim().is_empty() {
                return Err(c.bad(
                    &key,
                    "the command is empty".into(),
                    "remove the empty entry",
                ));
            }
            if cmd.contains('\0') {
                return Err(c.bad(
                    &key,
                    format!("the command {cmd:?} contains a NUL character"),
                    "remove it",
                ));
            }
        }
        for (name, entry) in &self.services {
            let key = format!("services.{}", toml_span::quote_key(name));
            names::check_name(name).map_err(|e| {
                c.bad(
                    &key,
                    e,
                    "name services like `db` or `uploads`, e.g. `db = \"postgresql\"`",
                )
            })?;
            // the database and its role are APP_NAME: PostgreSQL allows 63 bytes
            if self.name.len() + 1 + name.len() > 63 {
                return Err(c.bad(
                    &key,
                    format!(
                        "`{}_{name}` (the database's name) is longer than 63 characters",
                        self.name
                    ),
                    "use a shorter service name, e.g. `db`",
                ));
            }
            if let Some(node) = entry.node() {
                names::check_name(node).map_err(|e| {
                    c.bad(
                        &format!("{key}.node"),
                        e,
                        "name a node of the cluster, e.g. `node = \"db1\"`",
                    )
                })?;
            }
        }
        if let Some(cmd) = &self.deploy.release {
            check_command(cmd).map_err(|e| {
                c.bad(
                    "deploy.release",
                    format!("the release command {e}"),
                    "write it on one line, e.g. `release = \"python manage.py migrate --noinput\"`",
                )
            })?;
        }
        for (i, entry) in self.cron.iter().enumerate() {
            self.validate_cron(c, i, entry)?;
        }
        for (name, entry) in &self.processes {
            let key = format!("processes.{}", toml_span::quote_key(name));
            names::check_name(name).map_err(|e| {
                c.bad(
                    &key,
                    e,
                    "name workers like `[processes.worker]` with `command = \"python worker.py\"`",
                )
            })?;
            let p = entry.config();
            let sub = |k: &str| match entry {
                ProcessEntry::Command(_) => key.clone(),
                ProcessEntry::Full(_) => format!("{key}.{k}"),
            };
            check_command(&p.command).map_err(|e| {
                c.bad(
                    &sub("command"),
                    format!("the command of process `{name}` {e}"),
                    "give the worker's command on one line, e.g. `command = \"python worker.py\"`",
                )
            })?;
            if !(1..=MAX_INSTANCES).contains(&p.instances) {
                return Err(c.bad(
                    &sub("instances"),
                    format!("{} instances is outside 1..={MAX_INSTANCES}", p.instances),
                    "use a small number, e.g. `instances = 2`",
                ));
            }
            if !STOP_SIGNALS.contains(&p.signal().as_str()) {
                return Err(c.bad(
                    &sub("stop_signal"),
                    format!(
                        "`{}` is not a stop signal skiff sends",
                        p.stop_signal.as_deref().unwrap_or_default()
                    ),
                    &format!("use one of {}", STOP_SIGNALS.join(", ")),
                ));
            }
            if let Some(t) = &p.stop_timeout {
                check_duration(t, Duration::from_secs(1), Duration::from_secs(3600)).map_err(
                    |e| {
                        c.bad(
                            &sub("stop_timeout"),
                            e,
                            "write a duration like `stop_timeout = \"30s\"`",
                        )
                    },
                )?;
            }
        }
        Ok(())
    }

    /// One `[[cron]]` entry: a schedule (cron's five fields, or a systemd calendar
    /// expression) and a job (a path, or a command), each exactly once.
    fn validate_cron(&self, c: &Checker, i: usize, entry: &CronEntry) -> Result<()> {
        let key = |k: &str| format!("cron[{i}].{k}");
        match (&entry.schedule, &entry.calendar) {
            (Some(schedule), None) => check_cron(schedule).map_err(|e| {
                c.bad(
                    &key("schedule"),
                    e,
                    "write five fields (minute hour day month weekday), e.g. `schedule = \"*/10 * * * *\"`",
                )
            })?,
            (None, Some(calendar)) => check_calendar(calendar).map_err(|e| {
                c.bad(
                    &key("calendar"),
                    e,
                    "write a systemd calendar expression, e.g. `calendar = \"*:0/15\"` (every 15 minutes) or `\"*:*:0/5\"` (every 5 seconds)",
                )
            })?,
            (Some(_), Some(_)) => {
                return Err(c.bad(
                    &key("calendar"),
                    "an entry has either `schedule` or `calendar`, not both".into(),
                    "keep one of them",
                ))
            }
            (None, None) => {
                return Err(c.bad(
                    &key("schedule"),
                    "the entry has no schedule".into(),
                    "add `schedule = \"*/10 * * * *\"` (cron) or `calendar = \"*:0/10\"` (systemd)",
                ))
            }
        }
        match (&entry.path, &entry.command) {
            (Some(path), None) => check_url_path(path).map_err(|e| {
                c.bad(&key("path"), e, "write a path like `path = \"/tasks/cleanup\"`")
            })?,
            (None, Some(command)) => check_command(command).map_err(|e| {
                c.bad(
                    &key("command"),
                    format!("the command {e}"),
                    "write the command on one line, e.g. `command = \"python manage.py clearsessions\"`",
                )
            })?,
            (Some(_), Some(_)) => {
                return Err(c.bad(
                    &key("command"),
                    "an entry has either `path` (a request) or `command`, not both".into(),
                    "split it into two `[[cron]]` entries",
                ))
            }
            (None, None) => {
                return Err(c.bad(
                    &key("path"),
                    "the entry has no job".into(),
                    "add `path = \"/tasks/cleanup\"` (a request to the app) or `command = \"...\"`",
                ))
            }
        }
        if entry.path.is_some() && self.runtime == Runtime::Static {
            return Err(c.bad(
                &key("path"),
                "a static app has no code to answer a web cron".into(),
                "use `command = \"...\"` instead, or remove the entry",
            ));
        }
        if let Some(t) = &entry.timeout {
            check_duration(t, Duration::from_secs(1), Duration::from_secs(24 * 3600)).map_err(
                |e| {
                    c.bad(
                        &key("timeout"),
                        e,
                        "write a duration like `timeout = \"5m\"`",
                    )
                },
            )?;
        }
        Ok(())
    }

    /// `[env]`: names by grammar; values on one line (the node keeps them as
    /// `KEY=VALUE` lines, so a newline would smuggle in another variable) and small
    /// enough for the deploy, which sends them to the node on one command line that
    /// Linux caps at 128 KiB (`MAX_ARG_STRLEN`).
    fn validate_env(&self, c: &Checker) -> Result<()> {
        // `skiff config APP set NAME --file FILE` as cli.rs spells it (issue 17)
        let elsewhere = |var: &str| {
            format!(
                "put it in a file shipped with the app and read it from there, or keep it on the node (`/etc/skiff/env/{app}.env`) with `skiff config {app} set {var} --file FILE`",
                app = self.name
            )
        };
        for (name, value) in &self.env {
            let key = format!("env.{}", toml_span::quote_key(name));
            names::check_env_name(name)
                .map_err(|e| c.bad(&key, e, "rename the variable, e.g. `LOG_LEVEL`"))?;
            if let Some(bad) = value.chars().find(|ch| ch.is_control() && *ch != '\t') {
                return Err(c.bad(
                    &key,
                    format!(
                        "the value of `{name}` contains the control character {:?}; values must be one line",
                        bad
                    ),
                    &format!("write the value on one line; for a multi-line value, {}", elsewhere(name)),
                ));
            }
            if value.len() > MAX_ENV_VALUE {
                return Err(c.bad(
                    &key,
                    format!(
                        "the value of `{name}` is {} bytes, over the limit of {} KiB for one `[env]` value",
                        value.len(),
                        MAX_ENV_VALUE / 1024
                    ),
                    &format!("keep `[env]` for short settings; for a value this large, {}", elsewhere(name)),
                ));
            }
        }
        let sent = env_wire_size(&self.env);
        if sent > MAX_ENV_SENT {
            let (largest, value) = self
                .env
                .iter()
                .max_by_key(|(_, v)| v.len())
                .expect("a non-empty [env] to be this large");
            return Err(c.bad(
                "env",
                format!(
                    "the `[env]` values take {sent} bytes as `KEY=VALUE` strings, over the limit of {} KiB for a build command's environment; the largest is `{largest}` ({} bytes)",
                    MAX_ENV_SENT / 1024,
                    value.len()
                ),
                &format!("keep `[env]` for short settings; for large values, {}", elsewhere(largest)),
            ));
        }
        Ok(())
    }

    fn validate_hostnames(&self, c: &Checker) -> Result<()> {
        for (i, host) in self.hostnames.iter().enumerate() {
            let key = format!("hostnames[{i}]");
            names::check_hostname(host).map_err(|e| {
                c.bad(
                    &key,
                    e,
                    "use a lower-case DNS name like `blog.example.com`, or `*.example.com` for every subdomain",
                )
            })?;
            if i == 0 && host.starts_with("*.") {
                return Err(c.bad(
                    &key,
                    format!(
                        "the first host name is the main one (`N.HOST`, `prev.HOST`) and cannot be the wildcard `{host}`"
                    ),
                    "put a plain name first, e.g. `hostnames = [\"example.com\", \"*.example.com\"]`",
                ));
            }
            if self.hostnames[..i].contains(host) {
                return Err(c.bad(
                    &key,
                    format!("`{host}` is listed twice"),
                    "remove the duplicate",
                ));
            }
        }
        // `prev.HOST` and `N.HOST` are skiff's version hosts; an app host spelled like
        // one of them would be routed two ways.
        for (i, host) in self.hostnames.iter().enumerate() {
            let Some((first, rest)) = host.split_once('.') else {
                continue;
            };
            let version_label = first == "prev" || first.bytes().all(|b| b.is_ascii_digit());
            if version_label && self.hostnames.iter().any(|h| h == rest) {
                return Err(c.bad(
                    &format!("hostnames[{i}]"),
                    format!(
                        "`{host}` is the name of a version host of `{rest}` (`prev.HOST`, `N.HOST`)"
                    ),
                    "remove it: skiff routes version hosts itself",
                ));
            }
        }
        Ok(())
    }

    fn validate_runtime(&self, c: &Checker) -> Result<()> {
        let sections = [
            ("python", self.python.is_some(), Runtime::Python),
            ("php", self.php.is_some(), Runtime::Php),
            ("ruby", self.ruby.is_some(), Runtime::Ruby),
        ];
        for (key, present, runtime) in sections {
            if present && self.runtime != runtime {
                return Err(c.bad(
                    key,
                    format!("`[{key}]` is set but `runtime` is \"{}\"", self.runtime),
                    &format!("remove `[{key}]`, or set `runtime = \"{key}\"`"),
                ));
            }
        }
        if self.runtime == Runtime::Python && self.python.is_none() {
            let mut err = c.bad(
                "python",
                "`runtime = \"python\"` needs a `[python]` section with the WSGI entry".into(),
                "add `[python]` with `wsgi = \"app:application\"`",
            );
            // Nothing to point at but the line that asks for Python.
            if let Error::Config(p) = &mut err {
                p.location = toml_span::find_key(c.text, "runtime");
            }
            return Err(err);
        }
        if let Some(py) = &self.python {
            check_wsgi(&py.wsgi).map_err(|e| {
                c.bad(
                    "python.wsgi",
                    e,
                    "write `module:callable`, e.g. `wsgi = \"app:application\"`",
                )
            })?;
            if let Some(v) = &py.requirements {
                check_app_path(v).map_err(|e| {
                    c.bad(
                        "python.requirements",
                        e,
                        "give a file inside the app folder, e.g. `requirements = \"requirements.txt\"`",
                    )
                })?;
            }
            if let Some(v) = &py.wheels {
                check_app_path(v).map_err(|e| {
                    c.bad(
                        "python.wheels",
                        e,
                        "give a folder inside the app folder, e.g. `wheels = \"wheels\"`",
                    )
                })?;
            }
            if let Some(n) = py.processes
                && !(1..=MAX_PROCESSES).contains(&n)
            {
                return Err(c.bad(
                    "python.processes",
                    format!("{n} processes is outside 1..={MAX_PROCESSES}"),
                    "use a number between 1 and 32, e.g. `processes = 2`",
                ));
            }
        }
        if let Some(php) = &self.php {
            check_app_path(&php.docroot).map_err(|e| {
                c.bad(
                    "php.docroot",
                    e,
                    "give a folder inside the app, e.g. `docroot = \"public\"`",
                )
            })?;
        }
        if let Some(ruby) = &self.ruby {
            check_app_path(&ruby.rackup).map_err(|e| {
                c.bad(
                    "ruby.rackup",
                    e,
                    "give a file inside the app, e.g. `rackup = \"config.ru\"`",
                )
            })?;
        }
        Ok(())
    }

    /// The on-disk checks of [`AppConfig::load`]: configured paths exist, have the right
    /// kind, and do not lead out of the app folder through a symlink.
    fn check_files(&self, dir: &Path, c: &Checker) -> Result<()> {
        let mut wanted: Vec<(&str, &str, Kind)> = Vec::new();
        if let Some(py) = &self.python {
            if let Some(r) = &py.requirements {
                wanted.push(("python.requirements", r, Kind::File));
            }
            if let Some(w) = &py.wheels {
                wanted.push(("python.wheels", w, Kind::Dir));
            }
        }
        if self.runtime == Runtime::Php {
            wanted.push(("php.docroot", self.php_docroot(), Kind::Dir));
        }
        if self.runtime == Runtime::Ruby {
            wanted.push(("ruby.rackup", self.ruby_rackup(), Kind::File));
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let root = dir.canonicalize().map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        for (key, rel, kind) in wanted {
            let shown = dir.join(rel);
            let real = match shown.canonicalize() {
                Ok(real) => real,
                Err(_) => {
                    return Err(c.bad(
                        key,
                        format!(
                            "`{rel}` does not exist in the app folder (`{}`)",
                            shown.display()
                        ),
                        &format!(
                            "create {} `{rel}`, or point `{key}` at one that exists",
                            kind.noun()
                        ),
                    ));
                }
            };
            if !real.starts_with(&root) {
                return Err(c.bad(
                    key,
                    format!(
                        "`{rel}` leads out of the app folder through a symlink (to `{}`)",
                        real.display()
                    ),
                    "keep the app's files inside its folder: replace the symlink with the file itself",
                ));
            }
            let is_right_kind = match kind {
                Kind::File => real.is_file(),
                Kind::Dir => real.is_dir(),
            };
            if !is_right_kind {
                return Err(c.bad(
                    key,
                    format!("`{rel}` is not {}", kind.noun()),
                    &format!("point `{key}` at {}", kind.noun()),
                ));
            }
        }
        Ok(())
    }
}

/// Longest health timeout: a deploy should not hang longer than this on one check.
const MAX_HEALTH_TIMEOUT: Duration = Duration::from_secs(600);
/// Shortest health timeout: anything shorter fails on a cold start.
const MIN_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Most mod_wsgi daemon processes per slot.
const MAX_PROCESSES: u32 = 32;
/// Most releases kept on a node.
const MAX_KEEP: u32 = 100;
/// Largest `[env]` value, in bytes: half of Linux's 128 KiB cap on one environment
/// string (`MAX_ARG_STRLEN`), which every build command's `KEY=VALUE` must fit in. (The
/// values reach the node on stdin, in the deploy script's prelude, so no command line
/// limits them.)
const MAX_ENV_VALUE: usize = 64 * 1024;
/// Most bytes all of `[env]` may take as `KEY=VALUE` strings: a quarter of the usual
/// 2 MiB a process's arguments and environment share, leaving room for the rest.
const MAX_ENV_SENT: usize = 512 * 1024;

/// What `[env]` takes in a build command's environment: its `KEY=VALUE` strings.
fn env_wire_size(env: &BTreeMap<String, String>) -> usize {
    env.iter().map(|(k, v)| k.len() + 1 + v.len() + 1).sum()
}

/// What a configured path must be on disk.
#[derive(Clone, Copy)]
enum Kind {
    File,
    Dir,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::File => "a file",
            Kind::Dir => "a folder",
        }
    }
}

/// Builds errors that name the file, the key and its position.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
}

impl<'a> Checker<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Checker { file, text }
    }

    fn bad(&self, key: &str, problem: String, fix: &str) -> Error {
        Error::config(ConfigProblem {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            problem,
            fix: Some(fix.to_string()),
            location: toml_span::find_key(self.text, key),
        })
    }
}

/// Replaces toml's generic fix for a wrong type or a missing key with an example of the
/// key written correctly, which says more than "write a string here".
fn with_example(err: Error) -> Error {
    let Error::Config(mut p) = err else {
        return err;
    };
    let is_shape_error = ["invalid type", "invalid value", "missing field"]
        .iter()
        .any(|s| p.problem.starts_with(s));
    if is_shape_error && let Some(example) = example_for(&p.key, &p.problem) {
        let verb = if p.problem.starts_with("missing field") {
            "add"
        } else {
            "write"
        };
        let note = if p.key.starts_with("env.") {
            " (environment values are strings)"
        } else {
            ""
        };
        p.fix = Some(format!("{verb} `{example}`{note}"));
    }
    Error::Config(p)
}

/// A correct line for `key` (indexes ignored), for fixes.
fn example_for(key: &str, problem: &str) -> Option<String> {
    let mut plain = String::new();
    let mut in_index = false;
    for ch in key.chars() {
        match ch {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => plain.push(c),
            _ => {}
        }
    }
    let (table, leaf) = plain.split_once('.').unwrap_or((plain.as_str(), ""));
    // The bad value as toml quotes it: "invalid type: integer `8080`, expected a string".
    let value = problem.split('`').nth(1).unwrap_or("...");
    let text = match (table, leaf) {
        ("name", "") => "name = \"blog\"".into(),
        ("runtime", "") => "runtime = \"python\"".into(),
        ("hostnames", "") => "hostnames = [\"blog.example.com\"]".into(),
        ("version", "") => "version = 3".into(),
        ("keep", "") => "keep = 5".into(),
        ("python", "") => "[python] wsgi = \"app:application\"".into(),
        ("python", "wsgi") => "wsgi = \"app:application\"".into(),
        ("python", "requirements") => "requirements = \"requirements.txt\"".into(),
        ("python", "wheels") => "wheels = \"wheels\"".into(),
        ("python", "processes") => "processes = 2".into(),
        ("php", "docroot") => "docroot = \"public\"".into(),
        ("ruby", "rackup") => "rackup = \"config.ru\"".into(),
        ("env", "") => "[env] LOG_LEVEL = \"info\"".into(),
        ("env", name) => format!("{name} = \"{value}\""),
        ("health", "path") => "path = \"/healthz\"".into(),
        ("health", "timeout") => "timeout = \"30s\"".into(),
        ("build", "commands") => "commands = [\"make assets\"]".into(),
        ("services", _) => "db = \"postgresql\"".into(),
        ("cron", "schedule") => "schedule = \"*/10 * * * *\"".into(),
        ("cron", "path") => "path = \"/tasks/cleanup\"".into(),
        ("processes", _) => "worker = \"python worker.py\"".into(),
        _ => return None,
    };
    Some(text)
}

/// `module:callable` with Python identifiers (dotted module allowed).
fn check_wsgi(spec: &str) -> std::result::Result<(), String> {
    let Some((module, callable)) = spec.split_once(':') else {
        return Err(format!("`{spec}` has no `:` between module and callable"));
    };
    let ident = |s: &str| {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    };
    if module.is_empty() || !module.split('.').all(ident) {
        return Err(format!(
            "`{module}` in `{spec}` is not a Python module name"
        ));
    }
    if !ident(callable) {
        return Err(format!("`{callable}` in `{spec}` is not a Python name"));
    }
    Ok(())
}

/// A path inside the app folder that is safe to put into a web server config and an
/// argv: relative, no `..`, only `A-Z a-z 0-9 . _ - + @ /`, no part starting with `-`.
fn check_app_path(path: &str) -> std::result::Result<(), String> {
    names::check_relative_path(path)?;
    if let Some(bad) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-+@/".contains(*c)))
    {
        return Err(format!(
            "`{path}` contains {bad:?}; paths here use only A-Z, a-z, 0-9, `.`, `_`, `-`, `+`, `@` and `/`"
        ));
    }
    if path.split('/').any(|part| part.starts_with('-')) {
        return Err(format!("`{path}` has a part that starts with `-`"));
    }
    Ok(())
}

/// An absolute URL path (optionally with a query) of plain characters: nothing that
/// needs quoting in a config, a crontab or a shell.
fn check_url_path(path: &str) -> std::result::Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` does not start with `/`"));
    }
    if path.len() > 1024 {
        return Err(format!(
            "the path is {} characters long; at most 1024",
            path.len()
        ));
    }
    if let Some(bad) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/-._~?=&+,:@%".contains(*c)))
    {
        return Err(format!(
            "`{path}` contains {bad:?}; URL paths here use only letters, digits and `/-._~?=&+,:@%`"
        ));
    }
    let before_query = path.split('?').next().unwrap_or(path);
    if before_query.split('/').any(|seg| seg == "..") {
        return Err(format!("`{path}` contains `..`"));
    }
    Ok(())
}

/// A duration written like "30s" or "2m", within `min..=max`.
fn check_duration(text: &str, min: Duration, max: Duration) -> std::result::Result<(), String> {
    let shown = |d: Duration| humantime::format_duration(d).to_string();
    match humantime::parse_duration(text) {
        Ok(d) if d < min || d > max => Err(format!(
            "`{text}` is outside {}..={}",
            shown(min),
            shown(max)
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("`{text}` is not a duration ({e})")),
    }
}

/// A standard five-field cron expression, as Debian's and Ubuntu's cron read it: numbers,
/// `*`, `,`, `-`, `/`, and single month or weekday names; none of croner's extensions
/// (`L`, `W`, `#`, `?`, seconds, years, `@daily`).
fn check_cron(schedule: &str) -> std::result::Result<(), String> {
    if schedule.trim_start().starts_with('@') {
        return Err(format!(
            "`{schedule}` is a nickname; write the five fields instead (`@daily` is `0 0 * * *`, `@hourly` is `0 * * * *`)"
        ));
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "`{schedule}` has {} fields; cron schedules have 5 (minute hour day month weekday)",
            fields.len()
        ));
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    for (i, field) in fields.iter().enumerate() {
        if field.chars().any(|c| c.is_ascii_alphabetic()) {
            let lower = field.to_ascii_lowercase();
            let names: &[&str] = match i {
                3 => &MONTHS,
                4 => &DAYS,
                _ => &[],
            };
            if !names.contains(&lower.as_str()) {
                return Err(format!(
                    "`{field}` in `{schedule}` is not a number, range or step; names are allowed only alone in the month (jan..dec) and weekday (sun..sat) fields; write ranges and lists with numbers, e.g. `1-5`"
                ));
            }
            continue;
        }
        if let Some(bad) = field
            .chars()
            .find(|c| !(c.is_ascii_digit() || "*,-/".contains(*c)))
        {
            return Err(format!(
                "`{field}` in `{schedule}` contains {bad:?}; use numbers, `*`, `,`, `-` and `/`"
            ));
        }
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(schedule)
        .map(|_| ())
        .map_err(|e| format!("`{schedule}` is not a valid schedule ({e})"))
}

/// A command for `sh -c`: not empty, on one line.
fn check_command(cmd: &str) -> std::result::Result<(), String> {
    if cmd.trim().is_empty() {
        return Err("is empty".into());
    }
    if let Some(bad) = cmd.chars().find(|ch| ch.is_control() && *ch != '\t') {
        return Err(format!("contains the control character {bad:?}"));
    }
    Ok(())
}

/// A systemd calendar expression, by its characters (the node's `systemd-analyze
/// calendar` checks its meaning before any switch): digits, names, `*`, `:`, `-`, `/`,
/// `.`, `,`, `~` and spaces.
fn check_calendar(text: &str) -> std::result::Result<(), String> {
    if text.trim().is_empty() || text.len() > 200 {
        return Err(format!("`{text}` is not a calendar expression"));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "*:-/.,~ ".contains(*c)))
    {
        return Err(format!(
            "`{text}` contains {bad:?}, which no systemd calendar expression has"
        ));
    }
    Ok(())
}

/// The app folder's path as given, made absolute for messages and manifests.
pub fn absolute_dir(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name = \"blog\"\nruntime = \"python\"\nhostnames = [\"blog.example.com\"]\n[python]\nwsgi = \"app:application\"\n";

    /// The error as the printer shows it: message, pointer, hint.
    fn render(err: &Error) -> String {
        let mut out = err.to_string();
        if let Some((file, loc)) = err.location() {
            out.push_str(&format!(
                "\n --> {}:{}:{}",
                file.display(),
                loc.line,
                loc.column
            ));
        }
        if let Some(hint) = err.hint() {
            out.push_str(&format!("\nhint: {hint}"));
        }
        out
    }

    fn problem(err: &Error) -> &ConfigProblem {
        match err {
            Error::Config(p) => p,
            other => panic!("expected a config problem, got {other:?}"),
        }
    }

    /// (what, app.toml text, key, problem text, line of the pointer or 0 for "any").
    fn invalid_cases() -> Vec<(&'static str, String, &'static str, &'static str, usize)> {
        let base = |extra: &str| format!("{BASE}{extra}");
        let top = |lines: &str| format!("{lines}\n[python]\nwsgi = \"app:application\"\n");
        vec![
            (
                "unknown top-level key",
                base("colour = \"red\"\n"),
                "python.colour",
                "unknown field `colour`",
                6,
            ),
            (
                "unknown top-level key before tables",
                format!("colour = \"red\"\n{BASE}"),
                "colour",
                "unknown field `colour`",
                1,
            ),
            (
                "typo in [python]",
                "name = \"blog\"\nruntime = \"python\"\n[python]\nwgsi = \"app:application\"\n"
                    .into(),
                "python.wgsi",
                "unknown field `wgsi`",
                4,
            ),
            (
                "missing name",
                "runtime = \"static\"\n".into(),
                "name",
                "missing field `name`",
                0,
            ),
            (
                "missing runtime",
                "name = \"blog\"\n".into(),
                "runtime",
                "missing field `runtime`",
                0,
            ),
            (
                "upper-case name",
                top("name = \"Blog\"\nruntime = \"python\""),
                "name",
                "`Blog`",
                1,
            ),
            (
                "underscore in name",
                top("name = \"my_app\"\nruntime = \"python\""),
                "name",
                "`_`",
                1,
            ),
            (
                "name too long",
                top(&format!(
                    "name = \"{}\"\nruntime = \"python\"",
                    "a".repeat(40)
                )),
                "name",
                "longer than 32",
                1,
            ),
            (
                "name is a number",
                top("name = 7\nruntime = \"python\""),
                "name",
                "integer `7`",
                1,
            ),
            (
                "unknown runtime",
                top("name = \"blog\"\nruntime = \"pyhton\""),
                "runtime",
                "unknown variant `pyhton`",
                2,
            ),
            (
                "upper-case hostname",
                top("name = \"blog\"\nruntime = \"python\"\nhostnames = [\"Blog.example.com\"]"),
                "hostnames[0]",
                "`Blog.example.com` has upper-case",
                3,
            ),
            (
                "IP address as hostname",
                top(
                    "name = \"blog\"\nruntime = \"python\"\nhostnames = [\"blog.test\", \"10.0.0.1\"]",
                ),
                "hostnames[1]",
                "`10.0.0.1` is an IP address",
                3,
            ),
            (
                "IPv6 address as hostname",
                top("name = \"blog\"\nruntime = \"python\"\nhostnames = [\"blog.test\", \"::1\"]"),
                "hostnames[1]",
                "`::1` is an IP address",
                3,
            ),
            (
                "wildcard inside a hostname",
                top(
                    "name = \"blog\"\nruntime = \"python\"\nhostnames = [\"blog.test\", \"a.*.test\"]",
                ),
                "hostnames[1]",
                "`a.*.test` has a wildcard",
                3,
            ),
            (
                "partial wildcard label",
                top(
                    "name = \"blog\"\nruntime = \"python\"\nhostnames = [\"blog.test\", \"*blog.test\"]",
                ),
                "hostnames[1]",
                "`*blog.test` has a wildcard",
                3,
            ),
            (
                "wildcard as the main host",
                top("name = \"blog\"\nruntime = \"python\"\nhostnames = [\"*.blog.test\"]"),
                "hostnames[0]",
                "cannot be the wildcard `*.blog.test`",
                3,
            ),
            (
                "single-label hostname",
                top("name = \"blog\"\nruntime = \"python\"\nhostnames = [\"localhost\"]"),
                "hostnames[0]",
                "`localhost` has a single label",
                3,
            ),
            (
                "underscore in hostname",
                top("name = \"blog\"\nruntime = \"python\"\nhostnames = [\"my_blog.test\"]"),
                "hostnames[0]",
                "contains `_`",
                3,
            ),
            (
                "label starting with -",
                top("name = \"blog\"\nruntime = \"python\"\nhostnames = [\"-blog.test\"]"),
                "hostnames[0]",
                "`-blog.test` has a label that starts or ends with `-`",
                3,
            ),
            (
                "trailing dot",
                top("name = \"blog\"\nruntime = \"python\"\nhostnames = [\"blog.test.\"]"),
                "hostnames[0]",
                "`blog.test.` has an empty label",
                3,
            ),
            (
                "hostname listed twice",
                top(
                    "name = \"blog\"\nruntime = \"python\"\nhostnames = [\"blog.test\",\n  \"blog.test\"]",
                ),
                "hostnames[1]",
                "`blog.test` is listed twice",
                4,
            ),
            (
                "hostname that is a version host",
                top(
                    "name = \"blog\"\nruntime = \"python\"\nhostnames = [\"blog.test\", \"prev.blog.test\"]",
                ),
                "hostnames[1]",
                "`prev.blog.test` is the name of a version host",
                3,
            ),
            (
                "hostnames not an array",
                top("name = \"blog\"\nruntime = \"python\"\nhostnames = \"blog.test\""),
                "hostnames",
                "expected a sequence",
                3,
            ),
            (
                "python without [python]",
                "name = \"blog\"\nruntime = \"python\"\n".into(),
                "python",
                "needs a `[python]` section",
                2,
            ),
            (
                "[php] on a python app",
                base("[php]\ndocroot = \"public\"\n"),
                "php",
                "`[php]` is set but `runtime` is \"python\"",
                6,
            ),
            (
                "[ruby] on a static app",
                "name = \"blog\"\nruntime = \"static\"\n[ruby]\n".into(),
                "ruby",
                "`[ruby]` is set but `runtime` is \"static\"",
                3,
            ),
            (
                "wsgi without colon",
                top("name = \"blog\"\nruntime = \"python\"").replace("app:application", "app"),
                "python.wsgi",
                "`app` has no `:`",
                4,
            ),
            (
                "wsgi callable not a name",
                top("name = \"blog\"\nruntime = \"python\"").replace("app:application", "app:1x"),
                "python.wsgi",
                "`1x` in `app:1x` is not a Python name",
                4,
            ),
            (
                "wsgi module with a dash",
                top("name = \"blog\"\nruntime = \"python\"")
                    .replace("app:application", "my-app:application"),
                "python.wsgi",
                "`my-app` in `my-app:application` is not a Python module name",
                4,
            ),
            (
                "absolute requirements",
                base("requirements = \"/etc/passwd\"\n"),
                "python.requirements",
                "`/etc/passwd` is absolute",
                6,
            ),
            (
                "requirements outside the app",
                base("requirements = \"../req.txt\"\n"),
                "python.requirements",
                "`../req.txt` leaves the app folder",
                6,
            ),
            (
                "space in wheels path",
                base("wheels = \"my wheels\"\n"),
                "python.wheels",
                "`my wheels` contains ' '",
                6,
            ),
            (
                "quote in wheels path",
                base("wheels = \"w\\\"x\"\n"),
                "python.wheels",
                "contains '\"'",
                6,
            ),
            (
                "path part starting with -",
                base("requirements = \"-r.txt\"\n"),
                "python.requirements",
                "`-r.txt` has a part that starts with `-`",
                6,
            ),
            (
                "empty requirements",
                base("requirements = \"\"\n"),
                "python.requirements",
                "the path is empty",
                6,
            ),
            (
                "zero processes",
                base("processes = 0\n"),
                "python.processes",
                "0 processes is outside 1..=32",
                6,
            ),
            (
                "negative processes",
                base("processes = -2\n"),
                "python.processes",
                "integer `-2`",
                6,
            ),
            (
                "docroot outside the app",
                "name = \"blog\"\nruntime = \"php\"\n[php]\ndocroot = \"public/../../etc\"\n"
                    .into(),
                "php.docroot",
                "leaves the app folder",
                4,
            ),
            (
                "absolute rackup",
                "name = \"blog\"\nruntime = \"ruby\"\n[ruby]\nrackup = \"/srv/config.ru\"\n".into(),
                "ruby.rackup",
                "`/srv/config.ru` is absolute",
                4,
            ),
            (
                "version 0",
                base("").replace("hostnames", "version = 0\nhostnames"),
                "version",
                "version 0 is not allowed",
                3,
            ),
            (
                "negative version",
                base("").replace("hostnames", "version = -1\nhostnames"),
                "version",
                "integer `-1`",
                3,
            ),
            (
                "keep 0",
                base("").replace("hostnames", "keep = 0\nhostnames"),
                "keep",
                "keep = 0 is outside",
                3,
            ),
            (
                "env name with a dash",
                base("[env]\nLOG-LEVEL = \"info\"\n"),
                "env.LOG-LEVEL",
                "`LOG-LEVEL` contains `-`",
                7,
            ),
            (
                "env name starting with a digit",
                base("[env]\n1X = \"a\"\n"),
                "env.1X",
                "`1X` must start with a letter",
                7,
            ),
            (
                "reserved env name",
                base("[env]\nSKIFF_VERSION = \"9\"\n"),
                "env.SKIFF_VERSION",
                "`SKIFF_VERSION` starts with `SKIFF_`",
                7,
            ),
            (
                "env value not a string",
                base("[env]\nPORT = 8080\n"),
                "env.PORT",
                "integer `8080`",
                7,
            ),
            (
                "env value with a newline",
                base("[env]\nMOTD = \"a\\nb\"\n"),
                "env.MOTD",
                "the value of `MOTD` contains the control character '\\n'",
                7,
            ),
            (
                "health path without /",
                base("[health]\npath = \"healthz\"\n"),
                "health.path",
                "`healthz` does not start with `/`",
                7,
            ),
            (
                "health path with a space",
                base("[health]\npath = \"/health z\"\n"),
                "health.path",
                "`/health z` contains ' '",
                7,
            ),
            (
                "health path with ..",
                base("[health]\npath = \"/a/../b\"\n"),
                "health.path",
                "`/a/../b` contains `..`",
                7,
            ),
            (
                "duration without unit",
                base("[health]\ntimeout = \"30\"\n"),
                "health.timeout",
                "`30` is not a duration",
                7,
            ),
            (
                "duration as a number",
                base("[health]\ntimeout = 30\n"),
                "health.timeout",
                "integer `30`",
                7,
            ),
            (
                "duration too long",
                base("[health]\ntimeout = \"1h\"\n"),
                "health.timeout",
                "`1h` is outside 1s..=10m",
                7,
            ),
            (
                "duration too short",
                base("[health]\ntimeout = \"500ms\"\n"),
                "health.timeout",
                "`500ms` is outside",
                7,
            ),
            (
                "duration gibberish",
                base("[health]\ntimeout = \"soon\"\n"),
                "health.timeout",
                "`soon` is not a duration",
                7,
            ),
            (
                "unknown key in [health]",
                base("[health]\ntimout = \"30s\"\n"),
                "health.timout",
                "unknown field `timout`",
                7,
            ),
            (
                "empty build command",
                base("[build]\ncommands = [\"make\", \" \"]\n"),
                "build.commands[1]",
                "the command is empty",
                7,
            ),
            (
                "build commands not a list",
                base("[build]\ncommands = \"make\"\n"),
                "build.commands",
                "expected a sequence",
                7,
            ),
            (
                "unknown service kind",
                base("[services]\ndb = \"redis\"\n"),
                "services.db",
                "unknown variant `redis`",
                7,
            ),
            (
                "bad service name",
                base("[services]\nMy_DB = \"postgresql\"\n"),
                "services.My_DB",
                "`My_DB` must start with a lower-case letter",
                7,
            ),
            (
                "cron with four fields",
                base("[[cron]]\nschedule = \"*/10 * * *\"\npath = \"/t\"\n"),
                "cron[0].schedule",
                "`*/10 * * *` has 4 fields",
                7,
            ),
            (
                "cron minute out of range",
                base("[[cron]]\nschedule = \"61 * * * *\"\npath = \"/t\"\n"),
                "cron[0].schedule",
                "`61 * * * *` is not a valid schedule",
                7,
            ),
            (
                "cron extension L",
                base("[[cron]]\nschedule = \"0 0 L * *\"\npath = \"/t\"\n"),
                "cron[0].schedule",
                "`L` in `0 0 L * *` is not a number",
                7,
            ),
            (
                "cron with seconds",
                base("[[cron]]\nschedule = \"0 0 0 * * *\"\npath = \"/t\"\n"),
                "cron[0].schedule",
                "has 6 fields",
                7,
            ),
            (
                "cron nickname",
                base("[[cron]]\nschedule = \"@daily\"\npath = \"/t\"\n"),
                "cron[0].schedule",
                "`@daily` is a nickname",
                7,
            ),
            (
                "second cron entry bad",
                base(
                    "[[cron]]\nschedule = \"* * * * *\"\npath = \"/a\"\n[[cron]]\nschedule = \"* * * * mon-fri\"\npath = \"/b\"\n",
                ),
                "cron[1].schedule",
                "`mon-fri` in `* * * * mon-fri`",
                10,
            ),
            (
                "cron path relative",
                base("[[cron]]\nschedule = \"* * * * *\"\npath = \"tasks\"\n"),
                "cron[0].path",
                "`tasks` does not start with `/`",
                8,
            ),
            (
                "cron path with percent-free shell chars",
                base("[[cron]]\nschedule = \"* * * * *\"\npath = \"/t;rm\"\n"),
                "cron[0].path",
                "`/t;rm` contains ';'",
                8,
            ),
            (
                "cron without path",
                base("[[cron]]\nschedule = \"* * * * *\"\n"),
                "cron[0].path",
                "the entry has no job",
                6,
            ),
            (
                "empty process command",
                base("[processes]\nworker = \"\"\n"),
                "processes.worker",
                "the command of process `worker` is empty",
                7,
            ),
            (
                "bad process name",
                base("[processes]\nWorker = \"x\"\n"),
                "processes.Worker",
                "`Worker` must start with a lower-case letter",
                7,
            ),
            (
                "process command with a newline",
                base("[processes]\nworker = \"a\\nb\"\n"),
                "processes.worker",
                "control character '\\n'",
                7,
            ),
            (
                "duplicate key",
                base("").replace(
                    "runtime = \"python\"\n",
                    "runtime = \"python\"\nname = \"other\"\n",
                ),
                "name",
                "duplicate key `name`",
                3,
            ),
            (
                "section given twice",
                base("[python]\nwsgi = \"x:y\"\n"),
                "python",
                "duplicate key",
                6,
            ),
        ]
    }

    #[test]
    fn invalid_app_toml_names_key_and_problem() {
        let cases = invalid_cases();
        if std::env::var_os("SKIFF_SHOW_ERRORS").is_some() {
            for (what, text, ..) in &cases {
                if let Err(e) = AppConfig::parse(Path::new("app.toml"), text) {
                    eprintln!("## {what}\n{}\n", render(&e));
                }
            }
        }
        assert!(cases.len() >= 25);
        let mut failures = Vec::new();
        for (what, text, key, needle, line) in &cases {
            let err = match AppConfig::parse(Path::new("app.toml"), text) {
                Ok(_) => {
                    failures.push(format!("{what}: accepted\n{text}"));
                    continue;
                }
                Err(e) => e,
            };
            let shown = render(&err);
            let p = problem(&err);
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
            if !shown.contains("app.toml") {
                wrong.push("the message does not name the file".into());
            }
            if p.fix.as_deref().is_none_or(str::is_empty) {
                wrong.push("no fix".into());
            }
            match (p.location, line) {
                (None, 0) => {}
                (Some(l), 0) => assert!(l.line >= 1),
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
    fn apt_packages_are_checked_by_debians_grammar() {
        let parse = |body: &str| AppConfig::parse(Path::new("app.toml"), &format!("{BASE}{body}"));
        let ok =
            parse("[packages]\napt = [\"python3-lxml\", \"libstdc++6\", \"g++\", \"ruby2.7\"]\n")
                .unwrap();
        assert_eq!(ok.packages.apt.len(), 4);
        for bad in [
            "Python3",
            "-x",
            "a",
            "a b",
            "x;rm",
            "pkg=1.0",
            "$(id)",
            "nginx/stable",
        ] {
            let err = parse(&format!("[packages]\napt = [\"ok-one\", \"{bad}\"]\n")).unwrap_err();
            let shown = render(&err);
            assert_eq!(problem(&err).key, "packages.apt[1]", "{shown}");
            assert!(shown.contains("Debian package name"), "{shown}");
        }
        let err = parse("[packages]\nyum = [\"x\"]\n").unwrap_err();
        assert!(render(&err).contains("yum"), "{}", render(&err));
    }

    #[test]
    fn env_values_are_one_line_and_bounded() {
        let parse =
            |env: &str| AppConfig::parse(Path::new("app.toml"), &format!("{BASE}[env]\n{env}"));
        let big = |n: usize, ch: char| ch.to_string().repeat(n);

        // Non-ASCII is fine: the runtimes get it as UTF-8.
        let ok = parse("GREETING = \"héllo wörld ✓\"\n").unwrap();
        assert_eq!(ok.env["GREETING"], "héllo wörld ✓");
        // Largest value allowed.
        parse(&format!("BIG = \"{}\"\n", big(MAX_ENV_VALUE, 'x'))).unwrap();

        // A newline, CR or NUL would add a `KEY=VALUE` line where the node keeps them.
        for bad in ["a\\nEVIL=1", "a\\rEVIL=1", "a\\u0000b", "a\\u0085b"] {
            let err = parse(&format!("MOTD = \"{bad}\"\n")).unwrap_err();
            let shown = render(&err);
            assert_eq!(problem(&err).key, "env.MOTD", "{shown}");
            assert!(shown.contains("one line"), "{shown}");
            assert!(shown.contains("/etc/skiff/env/blog.env"), "{shown}");
            // issue 17: the way to put it on the node, as the CLI spells it
            assert!(
                shown.contains("`skiff config blog set MOTD --file FILE`"),
                "{shown}"
            );
        }

        // The issue's case: 200 KB made the deploy fail as "cannot reach node".
        for size in [MAX_ENV_VALUE + 1, 200_000] {
            let err = parse(&format!("CERT = \"{}\"\n", big(size, 'x'))).unwrap_err();
            let shown = render(&err);
            assert_eq!(problem(&err).key, "env.CERT", "{shown}");
            assert!(shown.contains(&format!("{size} bytes")), "{shown}");
            assert!(shown.contains("64 KiB"), "{shown}");
            assert!(shown.contains("app.toml"), "{shown}");
            assert!(shown.contains("shipped with the app"), "{shown}");
            assert!(shown.contains("/etc/skiff/env/blog.env"), "{shown}");
            assert_eq!(problem(&err).location.map(|l| l.line), Some(7), "{shown}");
        }
        // Quotes cost nothing any more: values travel on stdin, not on a command line.
        assert!(parse(&format!("Q = \"{}\"\n", big(MAX_ENV_VALUE, '\''))).is_ok());

        // Each value under the limit, together too much for one environment.
        let many: String = (0..9)
            .map(|i| format!("V{i} = \"{}\"\n", big(MAX_ENV_VALUE - i, 'x')))
            .collect();
        let err = parse(&many).unwrap_err();
        let shown = render(&err);
        assert_eq!(problem(&err).key, "env", "{shown}");
        assert!(shown.contains("512 KiB"), "{shown}");
        assert!(
            shown.contains(&format!("`V0` ({MAX_ENV_VALUE} bytes)")),
            "{shown}"
        );
    }

    #[test]
    fn syntax_error_names_position() {
        let err = AppConfig::parse(
            Path::new("app.toml"),
            "name = \"blog\nruntime = \"static\"\n",
        )
        .unwrap_err();
        let p = problem(&err);
        assert_eq!(p.location.map(|l| l.line), Some(1));
        assert!(render(&err).contains("app.toml"));
        assert!(p.fix.is_some());
    }

    #[test]
    fn type_errors_show_an_example() {
        let err = AppConfig::parse(
            Path::new("app.toml"),
            &format!("{BASE}[health]\ntimeout = 30\n"),
        )
        .unwrap_err();
        assert_eq!(err.hint().as_deref(), Some("write `timeout = \"30s\"`"));
        let err = AppConfig::parse(
            Path::new("app.toml"),
            &format!("{BASE}[env]\nPORT = 8080\n"),
        )
        .unwrap_err();
        assert!(err.hint().unwrap().contains("PORT = \"8080\""));
        let err = AppConfig::parse(
            Path::new("app.toml"),
            "name = \"blog\"\nruntime = \"python\"\n[python]\nwgsi = \"a:b\"\n",
        )
        .unwrap_err();
        assert!(err.hint().unwrap().contains("did you mean `wsgi`"));
    }

    #[test]
    fn valid_app_toml() {
        let ok = [
            "name = \"site\"\nruntime = \"static\"\n",
            BASE,
            "name = \"shop\"\nruntime = \"php\"\nhostnames = [\"shop.example.com\", \"*.shop.example.com\"]\n[php]\ndocroot = \"public\"\n",
            "name = \"rack\"\nruntime = \"ruby\"\n",
            "name = \"r2\"\nruntime = \"ruby\"\n[ruby]\nrackup = \"app/config.ru\"\n",
            "name = \"dotted\"\nruntime = \"static\"\nhealth.timeout = \"2m\"\n",
        ];
        for text in ok {
            if let Err(e) = AppConfig::parse(Path::new("app.toml"), text) {
                panic!("{text}\n{}", render(&e));
            }
        }
        let full = r#"
name = "blog"
runtime = "python"
hostnames = ["blog.example.com", "www.blog.example.com", "*.blog.example.com"]
version = 7
keep = 3
[python]
wsgi = "blog.wsgi:application"
requirements = "requirements.txt"
wheels = "vendor/wheels"
processes = 4
[env]
LOG_LEVEL = "info"
_X1 = "tab\there"
[health]
path = "/healthz?full=1"
timeout = "1m 30s"
[build]
commands = ["python -m compileall .", "make assets"]
[services]
db = "postgresql"
uploads = "files"
[[cron]]
schedule = "*/10 * * * *"
path = "/tasks/cleanup"
[[cron]]
schedule = "0 3 1,15 jan sun"
path = "/tasks/report"
[processes]
worker = "python worker.py"
"#;
        let config = AppConfig::parse(Path::new("app.toml"), full).unwrap();
        assert_eq!(config.main_host(), Some("blog.example.com"));
        assert_eq!(config.health.timeout(), Duration::from_secs(90));
        assert_eq!(config.python.as_ref().unwrap().processes, Some(4));
        assert_eq!(config.cron.len(), 2);
        // workers, cron and services are built
        assert_eq!(config.unsupported().len(), 0);
        let minimal =
            AppConfig::parse(Path::new("app.toml"), "name = \"x\"\nruntime = \"php\"\n").unwrap();
        assert_eq!(minimal.php_docroot(), ".");
        assert_eq!(minimal.health.path, "/");
    }

    #[test]
    fn load_checks_files_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let write = |text: &str| std::fs::write(app.join(FILE_NAME), text).unwrap();

        write(&format!("{BASE}requirements = \"requirements.txt\"\n"));
        let err = AppConfig::load(&app).unwrap_err();
        assert_eq!(problem(&err).key, "python.requirements");
        assert!(
            problem(&err)
                .problem
                .contains("`requirements.txt` does not exist")
        );
        assert_eq!(problem(&err).location.unwrap().line, 6);

        std::fs::create_dir(app.join("requirements.txt")).unwrap();
        let err = AppConfig::load(&app).unwrap_err();
        assert!(
            problem(&err).problem.contains("is not a file"),
            "{}",
            render(&err)
        );
        std::fs::remove_dir(app.join("requirements.txt")).unwrap();
        std::fs::write(app.join("requirements.txt"), "").unwrap();
        AppConfig::load(&app).unwrap();

        // A symlink that leads out of the app folder.
        std::fs::write(dir.path().join("outside.ru"), "run ->(e){}").unwrap();
        std::os::unix::fs::symlink("../outside.ru", app.join("config.ru")).unwrap();
        write("name = \"rack\"\nruntime = \"ruby\"\n");
        let err = AppConfig::load(&app).unwrap_err();
        assert_eq!(problem(&err).key, "ruby.rackup");
        assert!(
            problem(&err)
                .problem
                .contains("leads out of the app folder"),
            "{}",
            render(&err)
        );

        // A symlink inside the tree is fine.
        std::fs::remove_file(app.join("config.ru")).unwrap();
        std::fs::write(app.join("real.ru"), "").unwrap();
        std::os::unix::fs::symlink("real.ru", app.join("config.ru")).unwrap();
        AppConfig::load(&app).unwrap();

        // The PHP docroot must be a folder.
        write("name = \"shop\"\nruntime = \"php\"\n[php]\ndocroot = \"public\"\n");
        let err = AppConfig::load(&app).unwrap_err();
        assert_eq!(problem(&err).key, "php.docroot");
        std::fs::create_dir(app.join("public")).unwrap();
        AppConfig::load(&app).unwrap();

        let missing = AppConfig::load(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("app.toml"));
    }
}
