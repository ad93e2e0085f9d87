//! What `skiff init` writes: app.toml, `static/` and a runtime entry point that `serve`
//! and `update` run unchanged.
//!
//! Two steps so nothing is half-written: [`plan`] decides every file (pure, testable),
//! [`write`] checks every target first and writes only when none is in the way (or
//! `--force` was given). The generated app.toml passes [`AppConfig::load`].
//!
//! The default host name is `NAME.test`: `.test` is reserved for testing (RFC 6761), so
//! it can never point at someone else's server; `skiff update --etc-hosts` prints the
//! lines that make it resolve to a node. The app.toml comment says to replace it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::app_config::{FILE_NAME, Runtime};
use crate::error::{Error, Result};
use crate::names;

/// The folder served before the app.
pub const STATIC_DIR: &str = "static";

/// Everything `skiff init` will write, decided before anything touches the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The app folder (as given).
    pub dir: PathBuf,
    /// The app's name.
    pub name: String,
    /// Its runtime.
    pub runtime: Runtime,
    /// The host names written into app.toml.
    pub hostnames: Vec<String>,
    /// Files relative to `dir`, with their contents, in writing order.
    pub files: Vec<(PathBuf, String)>,
}

/// What [`write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Files written, relative to the app folder.
    pub files: Vec<PathBuf>,
    /// Those of `files` that existed before (only with `force`).
    pub overwritten: Vec<PathBuf>,
    /// Files another runtime's scaffold wrote, unchanged, removed (only with `force`):
    /// `init --force` from static to python must not leave `static/index.html`, which
    /// would answer `/` before the app.
    pub removed: Vec<PathBuf>,
    /// Files another runtime's scaffold wrote that the user changed since: kept, and
    /// named so the user decides.
    pub kept: Vec<PathBuf>,
}

/// The app name for `dir`: `--name` when given, else the folder's own name. Either is
/// checked against the app-name grammar; a folder name that fails points to `--name`
/// with a valid suggestion when one can be made.
pub fn app_name(dir: &Path, flag: Option<&str>) -> Result<String> {
    if let Some(name) = flag {
        names::check_name(name).map_err(|e| {
            Error::usage(
                format!("invalid `--name`: {e}"),
                "use lower-case letters, digits and `-`, starting with a letter, e.g. `--name my-app`",
            )
        })?;
        return Ok(name.to_string());
    }
    let resolved = dir
        .canonicalize()
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf());
    let folder = resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match names::check_name(&folder) {
        Ok(()) => Ok(folder),
        Err(e) => {
            let hint = match suggest_name(&folder) {
                Some(s) => format!("pass `--name {s}` (or another valid name)"),
                None => "pass `--name NAME`, e.g. `--name my-app`".to_string(),
            };
            Err(Error::usage(
                format!(
                    "the folder name `{folder}` is not a valid app name: {e}; app names use a-z, 0-9 and `-`, starting with a letter"
                ),
                hint,
            ))
        }
    }
}

/// A valid app name close to `folder` (`My App_2` -> `my-app-2`), if there is one.
pub fn suggest_name(folder: &str) -> Option<String> {
    let mut out = String::new();
    for c in folder.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '-')
        .chars()
        .take(names::MAX_NAME_LEN)
        .collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    names::check_name(&trimmed).ok().map(|()| trimmed)
}

/// Decides every file for an app called `name` with `runtime` in `dir`.
pub fn plan(dir: &Path, name: &str, runtime: Runtime) -> Plan {
    let hostnames = vec![format!("{name}.test")];
    let mut files: Vec<(PathBuf, String)> = vec![
        (
            PathBuf::from(FILE_NAME),
            app_toml(name, runtime, &hostnames),
        ),
        (PathBuf::from(".skiffignore"), SKIFFIGNORE.to_string()),
        (
            Path::new(STATIC_DIR).join("style.css"),
            STYLE_CSS.to_string(),
        ),
    ];
    match runtime {
        Runtime::Python => files.push((PathBuf::from("app.py"), python_app(name))),
        Runtime::Php => files.push((Path::new("public").join("index.php"), php_index(name))),
        Runtime::Ruby => files.push((PathBuf::from("config.ru"), ruby_rackup(name))),
        Runtime::Static => {
            files.push((Path::new(STATIC_DIR).join("index.html"), static_index(name)))
        }
    }
    Plan {
        dir: dir.to_path_buf(),
        name: name.to_string(),
        runtime,
        hostnames,
        files,
    }
}

/// Writes `plan`. Every target is checked first: an existing file stops everything
/// (naming it) unless `force`; something that is not a regular file (a folder) stops
/// everything even with `force`. Nothing is written unless every check passes.
pub fn write(plan: &Plan, force: bool) -> Result<Written> {
    if plan.dir.exists() && !plan.dir.is_dir() {
        return Err(Error::usage(
            format!("`{}` exists and is not a folder", plan.dir.display()),
            "give a new or existing folder for the app",
        ));
    }
    // Check first, write after.
    let mut existing = Vec::new();
    for (rel, _) in &plan.files {
        let target = plan.dir.join(rel);
        // The folders on the way must be folders (or missing).
        let mut parent = rel.parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let full = plan.dir.join(p);
            if let Ok(meta) = fs::symlink_metadata(&full)
                && !meta.is_dir()
            {
                return Err(Error::usage(
                    format!(
                        "`{}` is in the way: skiff init needs a folder there",
                        full.display()
                    ),
                    format!("move or remove `{}`", full.display()),
                ));
            }
            parent = p.parent();
        }
        // symlink_metadata: a symlink (even a dangling one) counts as existing, and
        // is replaced rather than followed.
        match fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::usage(
                    format!(
                        "`{}` is a folder where skiff init writes a file",
                        target.display()
                    ),
                    format!("move or remove `{}`", target.display()),
                ));
            }
            Ok(_) => existing.push(rel.clone()),
            Err(_) => {}
        }
    }
    if !existing.is_empty() && !force {
        let first = plan.dir.join(&existing[0]);
        let more = match existing.len() {
            1 => String::new(),
            n => format!(
                " (and {} more: {})",
                n - 1,
                existing[1..]
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(Error::usage(
            format!(
                "`{}` already exists{more}; nothing was written",
                first.display()
            ),
            "pass `--force` to overwrite, or choose another folder",
        ));
    }
    let (removed, kept) = if force {
        other_scaffolds(plan)
    } else {
        (Vec::new(), Vec::new())
    };
    let mut written = Vec::new();
    for (rel, contents) in &plan.files {
        let target = plan.dir.join(rel);
        let write_err = |source| Error::Write {
            path: target.clone(),
            source,
        };
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|source| Error::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        if existing.contains(rel) {
            fs::remove_file(&target).map_err(write_err)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(write_err)?;
        file.write_all(contents.as_bytes()).map_err(write_err)?;
        written.push(rel.clone());
    }
    for rel in &removed {
        let target = plan.dir.join(rel);
        fs::remove_file(&target).map_err(|source| Error::Write {
            path: target.clone(),
            source,
        })?;
        // a folder only that scaffold made (`public/`) goes too once empty
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = fs::remove_dir(plan.dir.join(parent));
        }
    }
    Ok(Written {
        files: written,
        overwritten: existing,
        removed,
        kept,
    })
}

/// The files of the other runtimes' scaffolds (for the plan's name, or the name in the
/// app.toml being replaced) that are in the folder and not in the plan: those still
/// exactly as skiff wrote them (to remove), and those changed since (to keep).
fn other_scaffolds(plan: &Plan) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut names = vec![plan.name.clone()];
    let old = fs::read_to_string(plan.dir.join(FILE_NAME))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("name").and_then(|n| n.as_str()).map(str::to_string));
    names.extend(old.filter(|o| *o != plan.name));
    let ours: Vec<&PathBuf> = plan.files.iter().map(|(rel, _)| rel).collect();
    let (mut removed, mut kept) = (Vec::new(), Vec::new());
    for runtime in [
        Runtime::Python,
        Runtime::Php,
        Runtime::Ruby,
        Runtime::Static,
    ] {
        if runtime == plan.runtime {
            continue;
        }
        for (rel, _) in plan_files(&plan.dir, runtime, &names) {
            if ours.contains(&&rel) || removed.contains(&rel) || kept.contains(&rel) {
                continue;
            }
            let Ok(on_disk) = fs::read(plan.dir.join(&rel)) else {
                continue;
            };
            let unchanged = names.iter().any(|name| {
                self::plan(&plan.dir, name, runtime)
                    .files
                    .iter()
                    .any(|(r, text)| *r == rel && text.as_bytes() == on_disk.as_slice())
            });
            if unchanged {
                removed.push(rel);
            } else {
                kept.push(rel);
            }
        }
    }
    (removed, kept)
}

/// Every file path the scaffold of `runtime` writes (for any of `names`).
fn plan_files(dir: &Path, runtime: Runtime, names: &[String]) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for name in names {
        for (rel, text) in plan(dir, name, runtime).files {
            if !files.iter().any(|(r, _)| *r == rel) {
                files.push((rel, text));
            }
        }
    }
    files
}

/// app.toml with a comment on every key, so the file documents itself.
fn app_toml(name: &str, runtime: Runtime, hostnames: &[String]) -> String {
    let hosts = hostnames
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = format!(
        r#"# app.toml: how skiff runs and serves this app. skiff checks every key and
# refuses unknown ones, so a typo never goes unnoticed.

# The app's name: a-z, 0-9 and `-`, starting with a letter (at most 32 characters).
# It names the app's folders and processes on the node.
name = "{name}"

# How the app runs: "python" (WSGI under mod_wsgi), "php" (mod_php),
# "ruby" (Rack under Passenger) or "static" (files only, served by NGINX).
runtime = "{runtime}"

# Host names the app answers to; the first is the main one. Every deploy N is also
# served at N.<main host>, and the previous version at prev.<main host>.
# `.test` names never reach the public DNS: `skiff update --etc-hosts` prints the
# /etc/hosts lines to reach them; put your real domain here when you have one.
# An alias may be a wildcard as a whole first label: "*.example.com".
hostnames = [{hosts}]

# A fixed number for the next deploy (default: the next free number).
# version = 1
# Releases kept on each node (current and prev are always kept; default 5).
# keep = 5

# Files under static/ are served before the app sees the request, by NGINX on a node
# and by `skiff serve` on this machine: static/style.css answers /style.css.
"#
    );
    out.push_str(match runtime {
        Runtime::Python => {
            r#"
[python]
# The WSGI entry point, `module:callable`: `application` in app.py.
wsgi = "app:application"
# A requirements file: the node builds a venv per its content and reuses it while
# the file does not change. Nodes may have no network: ship wheels and name their folder.
# requirements = "requirements.txt"
# wheels = "wheels"
# Daemon processes per version, 1 to 32.
# processes = 2
"#
        }
        Runtime::Php => {
            r#"
[php]
# The web root: only files under it can be requested. public/index.php is the entry.
docroot = "public"
"#
        }
        Runtime::Ruby => {
            r#"
[ruby]
# The Rack file that Passenger (and `rackup` under `skiff serve`) loads.
rackup = "config.ru"
"#
        }
        Runtime::Static => {
            r#"
# A static app has no code: static/index.html answers /.
"#
        }
    });
    out.push_str(&format!(
        r#"
# Plain settings for the app's environment, as strings of one line (at most 16 KiB
# each; a larger one belongs in a file shipped with the app). Secrets do not belong
# here: once the app is deployed, run `skiff config set NAME=VALUE` in this folder (or
# `skiff config {name} set NAME=VALUE` anywhere); it keeps them on the node, in
# /etc/skiff/env/{name}.env, and rolls them out. Names use A-Z, a-z, 0-9 and `_`;
# SKIFF_* is reserved: skiff sets SKIFF_APP, SKIFF_VERSION, SKIFF_HOST and
# SKIFF_CANONICAL_HOST itself.
[env]
# LOG_LEVEL = "info"

# The check a new version must pass on N.<main host> before it goes live:
# a 2xx or 3xx answer to `path` within `timeout` (1s to 10m, e.g. "30s", "2m").
[health]
path = "/"
timeout = "30s"

# Commands run with `sh -c` in the new release on the node, before the switch.
[build]
commands = []

# Parsed and checked already, refused by `update` until skiff builds them:
# [services]                # backing services: postgresql | mysql | files
# db = "postgresql"
# [[cron]]                  # a request to the live version on a five-field schedule
# schedule = "*/10 * * * *"
# path = "/tasks/cleanup"
# [processes]               # background workers of the live version
# worker = "python worker.py"
"#
    ));
    out
}

/// `.skiffignore`: gitignore syntax; what never belongs in a release.
const SKIFFIGNORE: &str = r#"# Files `skiff update` never uploads (gitignore syntax).
# skiff always leaves out .git, __pycache__, *.pyc and editor backups as well.

# Local secrets and settings for `skiff serve`.
.env
.env.*

# Virtual environments: the node builds its own from the requirements file.
.venv/
venv/

# Logs, caches and editor or OS leftovers.
*.log
.pytest_cache/
.mypy_cache/
.ruff_cache/
.idea/
.vscode/
.DS_Store
"#;

/// A small stylesheet under static/, so static precedence can be seen.
const STYLE_CSS: &str = r#"/* Served from static/ before the app sees the request. */
body {
  font-family: system-ui, sans-serif;
  max-width: 40rem;
  margin: 3rem auto;
  padding: 0 1rem;
  color: #1d2330;
}
.version {
  font-family: ui-monospace, monospace;
  background: #eef1f6;
  padding: 0.1rem 0.4rem;
}
"#;

/// The Python entry: a plain WSGI callable (stdlib only) that shows the version.
fn python_app(name: &str) -> String {
    format!(
        r#""""{name}: the app's WSGI entry point (`[python] wsgi = "app:application"`).

Only the Python standard library is used. Files under static/ never reach this
code: they are served first (static/style.css answers /style.css).
"""

import html
import os

APP_NAME = "{name}"


def application(environ, start_response):
    """Answers / with a page naming the running version; anything else is 404."""
    # mod_wsgi passes skiff's variables in `environ`; `skiff serve` sets them in
    # the process environment. Either way the page shows which deploy answered.
    version = environ.get("SKIFF_VERSION") or os.environ.get("SKIFF_VERSION", "dev")
    path = environ.get("PATH_INFO") or "/"
    if path != "/":
        body = b"not found\n"
        start_response(
            "404 Not Found",
            [("Content-Type", "text/plain; charset=utf-8"),
             ("Content-Length", str(len(body)))],
        )
        return [body]
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{html.escape(APP_NAME)}}</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<h1>{{html.escape(APP_NAME)}}</h1>
<p>Hello from Python. This is version <span class="version">{{html.escape(version)}}</span>.</p>
</body>
</html>
"""
    body = page.encode("utf-8")
    start_response(
        "200 OK",
        [("Content-Type", "text/html; charset=utf-8"),
         ("Content-Length", str(len(body)))],
    )
    return [body]
"#
    )
}

/// The PHP entry under the docroot.
fn php_index(name: &str) -> String {
    format!(
        r#"<?php
// {name}: the app's entry point, under the docroot (`[php] docroot = "public"`).
// Files under static/ never reach PHP: they are served first.

// Apache's SetEnv arrives in $_SERVER; `skiff serve` sets the process environment.
$version = $_SERVER['SKIFF_VERSION'] ?? (getenv('SKIFF_VERSION') ?: 'dev');
$name = '{name}';
header('Content-Type: text/html; charset=utf-8');
?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title><?= htmlspecialchars($name) ?></title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<h1><?= htmlspecialchars($name) ?></h1>
<p>Hello from PHP. This is version <span class="version"><?= htmlspecialchars($version) ?></span>.</p>
</body>
</html>
"#
    )
}

/// The Ruby entry: a plain Rack lambda (no gems beyond rack).
fn ruby_rackup(name: &str) -> String {
    format!(
        r#"# {name}: the app's Rack entry point (`[ruby] rackup = "config.ru"`).
# Only rack is used. Files under static/ never reach this code: they are served first.

APP_NAME = "{name}"

run lambda {{ |env|
  # Passenger passes skiff's variables in the Rack env or the process environment;
  # `skiff serve` sets the process environment.
  version = env["SKIFF_VERSION"] || ENV.fetch("SKIFF_VERSION", "dev")
  if env["PATH_INFO"].to_s != "/" && env["PATH_INFO"].to_s != ""
    next [404, {{ "content-type" => "text/plain; charset=utf-8" }}, ["not found\n"]]
  end
  h = ->(s) {{ Rack::Utils.escape_html(s.to_s) }}
  body = <<~HTML
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <title>#{{h.(APP_NAME)}}</title>
    <link rel="stylesheet" href="/style.css">
    </head>
    <body>
    <h1>#{{h.(APP_NAME)}}</h1>
    <p>Hello from Ruby. This is version <span class="version">#{{h.(version)}}</span>.</p>
    </body>
    </html>
  HTML
  [200, {{ "content-type" => "text/html; charset=utf-8" }}, [body]]
}}
"#
    )
}

/// The static app's page.
fn static_index(name: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{name}</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<h1>{name}</h1>
<p>Hello from a static app: static/index.html answers <code>/</code>.</p>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_config::AppConfig;

    #[test]
    fn every_runtime_plans_a_valid_app_toml() {
        for runtime in [
            Runtime::Python,
            Runtime::Php,
            Runtime::Ruby,
            Runtime::Static,
        ] {
            let p = plan(Path::new("blog"), "blog", runtime);
            let (_, text) = &p.files[0];
            let config = AppConfig::parse(Path::new("app.toml"), text)
                .unwrap_or_else(|e| panic!("{runtime}: {e}\n{text}"));
            assert_eq!(config.name, "blog");
            assert_eq!(config.runtime, runtime);
            assert_eq!(config.hostnames, ["blog.test"]);
            assert!(config.unsupported().is_empty());
            assert!(
                p.files
                    .iter()
                    .any(|(f, _)| f == Path::new("static/style.css"))
            );
        }
    }

    #[test]
    fn names_from_folders() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("my-blog");
        assert_eq!(app_name(&ok, None).unwrap(), "my-blog");
        assert_eq!(app_name(&ok.join("."), None).unwrap(), "my-blog");
        assert_eq!(app_name(&ok, Some("other")).unwrap(), "other");
        let err = app_name(&dir.path().join("My Blog"), None).unwrap_err();
        assert!(err.to_string().contains("`My Blog`"), "{err}");
        assert!(err.hint().unwrap().contains("--name my-blog"));
        let err = app_name(&ok, Some("Bad_Name")).unwrap_err();
        assert!(err.to_string().contains("`--name`"), "{err}");
    }

    #[test]
    fn name_suggestions() {
        assert_eq!(suggest_name("My App_2").as_deref(), Some("my-app-2"));
        assert_eq!(suggest_name("2fast").as_deref(), Some("fast"));
        assert_eq!(suggest_name("--"), None);
        assert_eq!(suggest_name("___"), None);
    }
}
