//! The typed `app.toml`: what an app is, how it runs and where it is served.
//!
//! Every section of DESIGN.md parses and validates now, so the format is stable from the
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

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Runtime::Python => "python",
            Runtime::Php => "php",
            Runtime::Ruby => "ruby",
            Runtime::Static => "static",
        })
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
    /// Plain settings for the app's environment (secrets go through `skiff config`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The check a new version must pass before it goes live.
    #[serde(default)]
    pub health: HealthConfig,
    /// Commands run on the node in the new release before the switch.
    #[serde(default)]
    pub build: BuildConfig,
    /// Backing services by name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceKind>,
    /// Web-cron entries: a request to the current version on a schedule.
    #[serde(default)]
    pub cron: Vec<CronEntry>,
    /// Background workers (current version only), name -> command.
    #[serde(default)]
    pub processes: BTreeMap<String, String>,
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

/// `[[cron]]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CronEntry {
    /// Five-field cron schedule.
    pub schedule: String,
    /// Path requested on the current version.
    pub path: String,
}

impl AppConfig {
    /// Reads and validates `DIR/app.toml`.
    pub fn load(dir: &Path) -> Result<AppConfig> {
        let file = dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&file).map_err(|source| Error::Read {
            path: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
    }

    /// Parses and validates app.toml text; `file` is used in messages.
    pub fn parse(file: &Path, text: &str) -> Result<AppConfig> {
        let config: AppConfig = toml_span::parse(file, text)?;
        config.validate(file, text)?;
        Ok(config)
    }

    /// The main host name (first of `hostnames`), if any.
    pub fn main_host(&self) -> Option<&str> {
        self.hostnames.first().map(String::as_str)
    }

    /// Features configured in this file that skiff does not build yet, as (key, hint),
    /// so a command that would need them can refuse clearly instead of ignoring them.
    pub fn unsupported(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.services.is_empty() {
            out.push((
                "services".into(),
                "remove `[services]` for now; provision the database by hand".into(),
            ));
        }
        if !self.cron.is_empty() {
            out.push(("cron".into(), "remove `[[cron]]` for now".into()));
        }
        if !self.processes.is_empty() {
            out.push(("processes".into(), "remove `[processes]` for now".into()));
        }
        out
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
    fn validate(&self, file: &Path, text: &str) -> Result<()> {
        let bad = |key: &str, problem: String, fix: &str| {
            Error::config(ConfigProblem {
                file: file.to_path_buf(),
                key: key.to_string(),
                problem,
                fix: Some(fix.to_string()),
                location: toml_span::find_key(text, key),
            })
        };
        names::check_name(&self.name)
            .map_err(|e| bad("name", e, "use a name like `blog` or `my-app`"))?;
        for (i, host) in self.hostnames.iter().enumerate() {
            names::check_hostname(host).map_err(|e| {
                bad(
                    &format!("hostnames[{i}]"),
                    e,
                    "use a lower-case DNS name like `blog.example.com`",
                )
            })?;
            if self.hostnames[..i].contains(host) {
                return Err(bad(
                    &format!("hostnames[{i}]"),
                    format!("`{host}` is listed twice"),
                    "remove the duplicate",
                ));
            }
        }
        // The runtime's section must match the runtime.
        let sections = [
            ("python", self.python.is_some(), Runtime::Python),
            ("php", self.php.is_some(), Runtime::Php),
            ("ruby", self.ruby.is_some(), Runtime::Ruby),
        ];
        for (key, present, runtime) in sections {
            if present && self.runtime != runtime {
                return Err(bad(
                    key,
                    format!("`[{key}]` is set but `runtime` is \"{}\"", self.runtime),
                    &format!("remove `[{key}]` or set `runtime = \"{key}\"`"),
                ));
            }
        }
        if self.runtime == Runtime::Python && self.python.is_none() {
            return Err(bad(
                "python",
                "`runtime = \"python\"` needs a `[python]` section".into(),
                "add `[python]` with `wsgi = \"app:application\"`",
            ));
        }
        if let Some(py) = &self.python {
            check_wsgi(&py.wsgi).map_err(|e| {
                bad(
                    "python.wsgi",
                    e,
                    "write `module:callable`, e.g. `app:application`",
                )
            })?;
            for (key, value) in [
                ("python.requirements", &py.requirements),
                ("python.wheels", &py.wheels),
            ] {
                if let Some(v) = value {
                    names::check_relative_path(v)
                        .map_err(|e| bad(key, e, "give a path inside the app folder"))?;
                }
            }
            if let Some(n) = py.processes
                && !(1..=32).contains(&n)
            {
                return Err(bad(
                    "python.processes",
                    format!("{n} is outside 1..=32"),
                    "use a number of processes between 1 and 32",
                ));
            }
        }
        if let Some(php) = &self.php {
            names::check_relative_path(&php.docroot).map_err(|e| {
                bad(
                    "php.docroot",
                    e,
                    "give a folder inside the app, e.g. `public`",
                )
            })?;
        }
        if let Some(ruby) = &self.ruby {
            names::check_relative_path(&ruby.rackup).map_err(|e| {
                bad(
                    "ruby.rackup",
                    e,
                    "give a file inside the app, e.g. `config.ru`",
                )
            })?;
        }
        if self.version == Some(0) {
            return Err(bad(
                "version",
                "version 0 is not allowed; versions start at 1".into(),
                "remove `version` to use the next number, or give 1 or more",
            ));
        }
        if self.keep == Some(0) {
            return Err(bad(
                "keep",
                "keep = 0 would delete the live release".into(),
                "keep at least 1 (current and prev are always kept)",
            ));
        }
        for (name, value) in &self.env {
            let key = format!("env.{name}");
            names::check_env_name(name)
                .map_err(|e| bad(&key, e, "rename the variable, e.g. `LOG_LEVEL`"))?;
            if value.contains('\0') {
                return Err(bad(
                    &key,
                    "the value contains a NUL byte".into(),
                    "remove it",
                ));
            }
        }
        check_url_path(&self.health.path)
            .map_err(|e| bad("health.path", e, "write a path like `/` or `/healthz`"))?;
        match humantime::parse_duration(&self.health.timeout) {
            Ok(d) if d.is_zero() || d > Duration::from_secs(600) => {
                return Err(bad(
                    "health.timeout",
                    format!("`{}` is outside 1s..=10m", self.health.timeout),
                    "write a duration like \"30s\"",
                ));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(bad(
                    "health.timeout",
                    format!("`{}` is not a duration ({e})", self.health.timeout),
                    "write a duration like \"30s\" or \"2m\"",
                ));
            }
        }
        for (i, cmd) in self.build.commands.iter().enumerate() {
            if cmd.trim().is_empty() {
                return Err(bad(
                    &format!("build.commands[{i}]"),
                    "the command is empty".into(),
                    "remove the empty entry",
                ));
            }
        }
        for name in self.services.keys() {
            names::check_name(name).map_err(|e| {
                bad(
                    &format!("services.{name}"),
                    e,
                    "name services like `db` or `uploads`",
                )
            })?;
        }
        for (i, entry) in self.cron.iter().enumerate() {
            check_cron(&entry.schedule).map_err(|e| {
                bad(
                    &format!("cron[{i}].schedule"),
                    e,
                    "write five fields, e.g. \"*/10 * * * *\"",
                )
            })?;
            check_url_path(&entry.path).map_err(|e| {
                bad(
                    &format!("cron[{i}].path"),
                    e,
                    "write a path like `/tasks/cleanup`",
                )
            })?;
        }
        for (name, cmd) in &self.processes {
            let key = format!("processes.{name}");
            names::check_name(name).map_err(|e| bad(&key, e, "name workers like `worker`"))?;
            if cmd.trim().is_empty() {
                return Err(bad(
                    &key,
                    "the command is empty".into(),
                    "give the worker's command",
                ));
            }
        }
        Ok(())
    }
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
        return Err(format!("`{module}` is not a Python module name"));
    }
    if !ident(callable) {
        return Err(format!("`{callable}` is not a Python name"));
    }
    Ok(())
}

/// An absolute URL path without spaces, control characters, `..` or a query.
fn check_url_path(path: &str) -> std::result::Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` does not start with `/`"));
    }
    if path
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '"' || c == '\\')
    {
        return Err(format!(
            "`{path}` contains spaces, quotes or control characters"
        ));
    }
    if path.split('/').any(|seg| seg == "..") {
        return Err(format!("`{path}` contains `..`"));
    }
    Ok(())
}

/// A standard five-field cron expression.
fn check_cron(schedule: &str) -> std::result::Result<(), String> {
    let fields = schedule.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "`{schedule}` has {fields} fields; cron schedules have 5 (minute hour day month weekday)"
        ));
    }
    schedule
        .parse::<croner::Cron>()
        .map(|_| ())
        .map_err(|e| format!("`{schedule}` is not a valid schedule ({e})"))
}

/// The app folder's path as given, made absolute for messages and manifests.
pub fn absolute_dir(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}
