//! Which process runs the app under `skiff serve`, per runtime, and how to explain its
//! absence: the program, its arguments, its folder and its environment.
//!
//! - python: `server-files/skiff-wsgi-runner.py` (stdlib only) under the app's venv
//!   python (`.venv/` or `venv/`) when there is one, else `python3`;
//! - php: `php -S 127.0.0.1:PORT -t DOCROOT`, with the nodes' `prepend.php` (so
//!   `SERVER_NAME` is the host the browser asked for, not the listening address);
//! - ruby: `rackup` (Debian's `ruby-rack`, served by WEBrick from `ruby-webrick`), as
//!   `bundle exec rackup` when the app has a `Gemfile.lock` (its bundle, as on the nodes);
//! - static: no process at all.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::app_config::{AppConfig, Runtime};
use crate::error::{Error, Result};

use super::environment;

/// The WSGI runner, embedded so the binary is all a laptop needs.
pub const WSGI_RUNNER: &str = include_str!("../../server-files/skiff-wsgi-runner.py");

/// The runner's file name when written out for a serve session.
pub const WSGI_RUNNER_NAME: &str = "skiff-wsgi-runner.py";

/// The nodes' PHP prepend file (`auto_prepend_file`): under `php -S` it gives the app
/// the requested host as `SERVER_NAME` (its environment part does nothing there).
pub const PHP_PREPEND: &str = include_str!("../../server-files/php/prepend.php");

/// The prepend file's name when written out for a serve session, beside the runner.
pub const PHP_PREPEND_NAME: &str = "skiff-prepend.php";

/// The loopback address runtime processes listen on.
pub const CHILD_HOST: &str = "127.0.0.1";

/// Venv folders looked for in the app folder, in order.
const VENV_DIRS: [&str; 2] = [".venv", "venv"];

/// How to start the app's process.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The runtime this plan is for.
    pub runtime: Runtime,
    /// The program (resolved to a path).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// The folder it runs in (the app folder).
    pub cwd: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
    /// Variables set on top of the laptop's environment.
    pub env: BTreeMap<String, String>,
}

impl Plan {
    /// The command line as a person would type it, for status lines.
    pub fn display(&self) -> String {
        let program = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut out = program;
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            // The runner's temp path says nothing useful; show its name.
            let arg = if arg.ends_with(WSGI_RUNNER_NAME) {
                WSGI_RUNNER_NAME.into()
            } else if arg.ends_with(PHP_PREPEND_NAME) {
                format!("auto_prepend_file={PHP_PREPEND_NAME}").into()
            } else {
                arg
            };
            out.push(' ');
            out.push_str(&arg);
        }
        out
    }
}

/// Where the laptop gets each runtime's programs: (program, Debian/Ubuntu package).
fn missing(program: &str, runtime: Runtime, package: &str) -> Error {
    Error::Failed {
        message: format!(
            "`{program}` is not installed on this machine; app.toml says runtime = \"{runtime}\""
        ),
        hint: Some(format!("install it: `sudo apt install {package}`")),
    }
}

fn find(program: &str, runtime: Runtime, package: &str) -> Result<PathBuf> {
    which::which(program).map_err(|_| missing(program, runtime, package))
}

/// The app's own venv python, if it has one.
pub fn venv_python(dir: &Path) -> Option<PathBuf> {
    VENV_DIRS
        .iter()
        .map(|v| dir.join(v).join("bin").join("python"))
        .find(|p| p.exists())
}

/// Builds the plan for the app in `dir`, or `None` for a static app. Fails with a
/// clear message when a runtime program is missing or a configured path does not exist.
/// `runner` is where the WSGI runner was written (and the PHP prepend file beside it,
/// [`PHP_PREPEND_NAME`]); `port` the loopback port to use.
pub fn plan(
    dir: &Path,
    config: &AppConfig,
    dotenv: &[(String, String)],
    runner: &Path,
    port: u16,
) -> Result<Option<Plan>> {
    let mut env = environment::app_env(config, dotenv);
    let (program, args): (PathBuf, Vec<OsString>) = match config.runtime {
        Runtime::Static => return Ok(None),
        Runtime::Python => {
            let wsgi = config
                .python
                .as_ref()
                .map(|p| p.wsgi.clone())
                .unwrap_or_else(|| "app:application".into());
            let program = match venv_python(dir) {
                Some(python) => {
                    let venv = python.parent().and_then(Path::parent).unwrap_or(dir);
                    env.entry("VIRTUAL_ENV".into())
                        .or_insert_with(|| venv.display().to_string());
                    let bin = venv.join("bin");
                    let path = std::env::var_os("PATH").unwrap_or_default();
                    let mut dirs = vec![bin];
                    dirs.extend(std::env::split_paths(&path));
                    if let Ok(joined) = std::env::join_paths(dirs) {
                        env.insert("PATH".into(), joined.to_string_lossy().into_owned());
                    }
                    python
                }
                None => find("python3", Runtime::Python, "python3")?,
            };
            // Output as it happens, not when a pipe buffer fills.
            env.entry("PYTHONUNBUFFERED".into())
                .or_insert_with(|| "1".into());
            let args = vec![
                runner.as_os_str().to_owned(),
                "--app-dir".into(),
                dir.as_os_str().to_owned(),
                "--wsgi".into(),
                wsgi.into(),
                "--host".into(),
                CHILD_HOST.into(),
                "--port".into(),
                port.to_string().into(),
            ];
            (program, args)
        }
        Runtime::Php => {
            let docroot = config
                .php
                .as_ref()
                .map(|p| p.docroot.clone())
                .unwrap_or_else(|| ".".into());
            let root = dir.join(&docroot);
            if !root.is_dir() {
                return Err(Error::Failed {
                    message: format!(
                        "`[php] docroot` in `{}` is \"{docroot}\", but `{}` is not a folder",
                        dir.join("app.toml").display(),
                        root.display()
                    ),
                    hint: Some(format!(
                        "create `{docroot}/` with an index.php, or fix `docroot`"
                    )),
                });
            }
            let program = find("php", Runtime::Php, "php-cli")?;
            let args = vec![
                // The built-in server runs with opcache on (it is not the `cli` SAPI),
                // which rechecks files only every 2 s: check on every request instead.
                "-d".into(),
                "opcache.revalidate_freq=0".into(),
                "-d".into(),
                {
                    let mut prepend = OsString::from("auto_prepend_file=");
                    prepend.push(runner.with_file_name(PHP_PREPEND_NAME));
                    prepend
                },
                "-S".into(),
                format!("{CHILD_HOST}:{port}").into(),
                "-t".into(),
                root.into_os_string(),
            ];
            (program, args)
        }
        Runtime::Ruby => {
            let rackup = config
                .ruby
                .as_ref()
                .map(|r| r.rackup.clone())
                .unwrap_or_else(|| "config.ru".into());
            if !dir.join(&rackup).is_file() {
                return Err(Error::Failed {
                    message: format!(
                        "`[ruby] rackup` in `{}` is \"{rackup}\", but there is no such file",
                        dir.join("app.toml").display()
                    ),
                    hint: Some(format!("create `{rackup}`, or fix `rackup`")),
                });
            }
            find("ruby", Runtime::Ruby, "ruby")?;
            let bundled = dir.join("Gemfile.lock").is_file();
            let bundle = if bundled {
                Some(which::which("bundle").map_err(|_| Error::Failed {
                    message: "the app has a Gemfile.lock, but `bundle` (Bundler) is not installed on this machine"
                        .into(),
                    hint: Some(
                        "install it: `sudo apt install bundler`, then `bundle install` in the app folder"
                            .into(),
                    ),
                })?)
            } else {
                None
            };
            let rackup_program = which::which("rackup").map_err(|_| Error::Failed {
                message: "`rackup` is not installed on this machine; app.toml says runtime = \"ruby\""
                    .into(),
                hint: Some(format!(
                    "install it: `sudo apt install {RACK_PACKAGES}` (where Rack is 3.x, \
                     `rackup` comes in its own package: `sudo apt install ruby-rackup ruby-webrick`)"
                )),
            })?;
            // Plain `rackup` runs in development, as a Rack developer expects.
            env.entry("RACK_ENV".into())
                .or_insert_with(|| "development".into());
            let mut args: Vec<OsString> = vec![
                // -q: no CommonLogger; skiff writes the access log.
                "-q".into(),
                "-o".into(),
                CHILD_HOST.into(),
                "-p".into(),
                port.to_string().into(),
                rackup.into(),
            ];
            // With a Gemfile.lock the app runs in its bundle (`bundle exec`), like on the
            // nodes; Bundler says which gem is missing, diagnose() what to run.
            let program = match bundle {
                Some(bundle) => {
                    env.insert(
                        "BUNDLE_GEMFILE".into(),
                        dir.join("Gemfile").display().to_string(),
                    );
                    args.splice(0..0, ["exec".into(), "rackup".into()]);
                    bundle
                }
                None => rackup_program,
            };
            (program, args)
        }
    };
    Ok(Some(Plan {
        runtime: config.runtime,
        program,
        args,
        cwd: dir.to_path_buf(),
        port,
        env,
    }))
}

/// The packages that give `rackup` and a server for it on Debian 12 and Ubuntu 22.04
/// (on releases with Rack 3, `rackup` is its own package, `ruby-rackup`).
const RACK_PACKAGES: &str = "ruby-rack ruby-webrick";

/// The signal that stops the runtime's process quietly: rackup traps SIGINT and shuts
/// WEBrick down (SIGTERM makes it print a FATAL backtrace); the WSGI runner exits on
/// SIGTERM at once, even while Python is still starting (SIGINT there prints a
/// KeyboardInterrupt traceback); `php -S` ends quietly on either.
pub fn stop_signal(runtime: Runtime) -> nix::sys::signal::Signal {
    use nix::sys::signal::Signal;
    match runtime {
        Runtime::Ruby | Runtime::Php => Signal::SIGINT,
        Runtime::Python | Runtime::Static => Signal::SIGTERM,
    }
}

/// Lines the runtime prints for every request or at start and stop, which would only
/// repeat skiff's own access log and status lines.
pub fn is_noise(runtime: Runtime, line: &str) -> bool {
    match runtime {
        Runtime::Php => {
            // "[Sat Nov 21 22:12:58 2026] 127.0.0.1:43142 Accepted", "... [200]: GET /",
            // "... Closing", "... PHP 8.2.36 Development Server (http://...) started".
            let Some(rest) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) else {
                return false;
            };
            let rest = rest.1;
            if rest.starts_with("PHP ") && rest.contains("Development Server") {
                return true;
            }
            let Some((peer, what)) = rest.split_once(' ') else {
                return false;
            };
            // "Closed without sending a request" answers skiff's own readiness probe.
            peer.starts_with("127.0.0.1:")
                && (what == "Accepted"
                    || what == "Closing"
                    || what.starts_with("Closed without sending a request")
                    || (what.starts_with('[') && what.contains("]: ")))
        }
        Runtime::Ruby => {
            line.contains("INFO  WEBrick")
                || line.contains("INFO  ruby ")
                || line.contains("INFO  going to shutdown")
        }
        Runtime::Python | Runtime::Static => false,
    }
}

/// A hint for a process that exited before it listened, read off its output.
pub fn diagnose(runtime: Runtime, output: &str) -> Option<String> {
    match runtime {
        Runtime::Ruby
            if output.contains("bundle install")
                || output.contains("Bundler::GemNotFound")
                || output.contains("Could not find gem") =>
        {
            Some("the app's gems (Gemfile.lock) are not installed on this machine: run `bundle install` in the app folder".into())
        }
        Runtime::Ruby if output.contains("bundler: command not found: rackup") => Some(
            "`bundle exec` found no rackup: add `gem \"rack\"` (with Rack 3 also `gem \"rackup\"`) to the Gemfile, then `bundle install`".into(),
        ),
        Runtime::Ruby
            if output.contains("Couldn't find handler")
                || output.contains("cannot load such file -- webrick") =>
        {
            Some("rackup found no web server: `sudo apt install ruby-webrick` (with a Gemfile.lock, the Gemfile needs it too: `gem \"webrick\"`, then `bundle install`)".into())
        }
        Runtime::Ruby if output.contains("cannot load such file -- rack") => Some(format!(
            "install Rack: `sudo apt install {RACK_PACKAGES}` (with a Gemfile.lock, the Gemfile needs it too: `gem \"rack\"`)"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> AppConfig {
        AppConfig::parse(Path::new("app.toml"), text).unwrap()
    }

    #[test]
    fn php_request_log_is_noise_but_app_output_is_not() {
        let php = Runtime::Php;
        for line in [
            "[Sat Nov 21 22:12:58 2026] 127.0.0.1:43142 Accepted",
            "[Sat Nov 21 22:12:58 2026] 127.0.0.1:43142 [200]: GET /",
            "[Sat Nov 21 22:12:58 2026] 127.0.0.1:43142 Closing",
            "[Sat Nov 21 22:17:24 2026] 127.0.0.1:43736 Closed without sending a request; it was probably just an unused speculative preconnection",
            "[Sat Nov 21 22:12:58 2026] PHP 8.2.36 Development Server (http://127.0.0.1:1) started",
        ] {
            assert!(is_noise(php, line), "{line}");
        }
        for line in [
            "[Sat Nov 21 22:12:58 2026] logged",
            "[Sat Nov 21 22:12:58 2026] PHP Parse error:  syntax error in /x/index.php on line 2",
            "plain",
        ] {
            assert!(!is_noise(php, line), "{line}");
        }
        assert!(is_noise(
            Runtime::Ruby,
            "[2026-11-21 22:13:05] INFO  WEBrick 1.8.1"
        ));
        assert!(!is_noise(Runtime::Ruby, "config.ru:1: syntax error"));
    }

    #[test]
    fn static_needs_no_process_and_php_needs_its_docroot() {
        let dir = tempfile::tempdir().unwrap();
        let runner = dir.path().join(WSGI_RUNNER_NAME);
        let stat = config("name = \"s\"\nruntime = \"static\"\n");
        assert!(plan(dir.path(), &stat, &[], &runner, 1).unwrap().is_none());
        let php = config("name = \"p\"\nruntime = \"php\"\n[php]\ndocroot = \"public\"\n");
        let err = plan(dir.path(), &php, &[], &runner, 1).unwrap_err();
        assert!(err.to_string().contains("docroot"), "{err}");
        let ruby = config("name = \"r\"\nruntime = \"ruby\"\n");
        let err = plan(dir.path(), &ruby, &[], &runner, 1).unwrap_err();
        assert!(err.to_string().contains("config.ru"), "{err}");
    }

    #[test]
    fn python_prefers_the_apps_venv() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join(".venv/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("python"), "").unwrap();
        let py = config("name = \"p\"\nruntime = \"python\"\n[python]\nwsgi = \"main:app\"\n");
        let runner = dir.path().join(WSGI_RUNNER_NAME);
        let plan = plan(dir.path(), &py, &[], &runner, 4242).unwrap().unwrap();
        assert_eq!(plan.program, bin.join("python"));
        assert!(plan.env["PATH"].starts_with(&bin.display().to_string()));
        assert_eq!(plan.env["SKIFF_VERSION"], "dev");
        let shown = plan.display();
        assert_eq!(
            shown,
            format!(
                "python {WSGI_RUNNER_NAME} --app-dir {} --wsgi main:app --host 127.0.0.1 --port 4242",
                dir.path().display()
            )
        );
    }

    #[test]
    fn ruby_with_a_gemfile_lock_runs_in_its_bundle() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.ru"), "run nil\n").unwrap();
        std::fs::write(dir.path().join("Gemfile"), "gem 'rack'\n").unwrap();
        std::fs::write(dir.path().join("Gemfile.lock"), "").unwrap();
        let ruby = config("name = \"r\"\nruntime = \"ruby\"\n");
        let runner = dir.path().join(WSGI_RUNNER_NAME);
        if which::which("ruby").is_err() || which::which("rackup").is_err() {
            return; // the machine cannot run Ruby apps at all
        }
        match which::which("bundle") {
            Ok(bundle) => {
                let plan = plan(dir.path(), &ruby, &[], &runner, 4243)
                    .unwrap()
                    .unwrap();
                assert_eq!(plan.program, bundle);
                assert!(
                    plan.display().starts_with("bundle exec rackup -q"),
                    "{}",
                    plan.display()
                );
                assert!(plan.env["BUNDLE_GEMFILE"].ends_with("/Gemfile"));
            }
            Err(_) => {
                let err = plan(dir.path(), &ruby, &[], &runner, 4243).unwrap_err();
                assert!(err.to_string().contains("Gemfile.lock"), "{err}");
                assert!(err.hint().unwrap().contains("apt install bundler"));
            }
        }
        let out = "Could not find gem 'skiff_devtool' in locally installed gems.\nRun `bundle install` to install missing gems.";
        assert!(
            diagnose(Runtime::Ruby, out)
                .unwrap()
                .contains("bundle install")
        );
    }

    #[test]
    fn missing_programs_name_the_package() {
        let err = missing("php", Runtime::Php, "php-cli");
        assert!(err.hint().unwrap().contains("apt install php-cli"));
        assert!(err.to_string().contains("`php`"));
    }
}
