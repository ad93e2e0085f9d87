//! `skiff init` and `skiff --json list-nodes` through the real binary.
//!
//! The scaffolded entry points are run by the real runtimes (python3, php, ruby with
//! rack), not just parsed: what `init` writes is what `serve` and `update` will run.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

use assert_cmd::Command;
use skiff::app_config::{AppConfig, Runtime};

/// A temp HOME and state file, and the real binary configured to use them.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("skiff-init.")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn state(&self) -> PathBuf {
        self.path("state/cluster.toml")
    }

    /// `skiff` with a temp HOME, `--state`, no colour, no inherited state settings,
    /// stdin closed (not a terminal) and a time limit.
    fn skiff(&self) -> Command {
        let home = self.path("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.env("HOME", &home)
            .env("NO_COLOR", "1")
            .env_remove("SKIFF_STATE")
            .env_remove("XDG_CONFIG_HOME")
            .current_dir(self.dir.path())
            .timeout(Duration::from_secs(30))
            .arg("--state")
            .arg(self.state());
        cmd
    }
}

/// Whether `program` can run here; says why not, and under `CI=true` fails instead.
fn have(program: &str, why: &str) -> bool {
    let found = StdCommand::new("sh")
        .args(["-c", "command -v \"$1\" >/dev/null", "sh", program])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let msg = format!("`{program}` is not installed, so {why} cannot be checked");
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg} (CI=true: install it; .ci/run does)");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

fn stdout_of(cmd: &mut StdCommand) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the app's entry point with its runtime, with SKIFF_VERSION set, and returns
/// the body it answers `/` with (None when the runtime is not installed).
fn answer(dir: &Path, runtime: Runtime) -> Option<String> {
    match runtime {
        Runtime::Python => {
            if !have("python3", "the WSGI entry") {
                return None;
            }
            // wsgiref.validate checks the app keeps the WSGI protocol.
            let script = r#"
import sys, wsgiref.util, wsgiref.validate
sys.path.insert(0, ".")
import app
environ = {}
wsgiref.util.setup_testing_defaults(environ)
environ["SKIFF_VERSION"] = "7"
environ["QUERY_STRING"] = ""
status = []
it = wsgiref.validate.validator(app.application)(environ, lambda s, h, e=None: status.append(s))
body = b"".join(it)
it.close()
print(status[0])
print(body.decode())
"#;
            Some(stdout_of(
                StdCommand::new("python3")
                    .args(["-W", "error", "-c", script])
                    .current_dir(dir),
            ))
        }
        Runtime::Php => {
            if !have("php", "the PHP entry") {
                return None;
            }
            Some(stdout_of(
                StdCommand::new("php")
                    .arg("public/index.php")
                    .env("SKIFF_VERSION", "7")
                    .current_dir(dir),
            ))
        }
        Runtime::Ruby => {
            if !have("ruby", "the Rack entry") {
                return None;
            }
            // Rack::Lint checks the app keeps the Rack protocol.
            let script = r#"
require "rack"
require "rack/lint"
require "rack/mock"
app = Rack::Builder.parse_file("config.ru")
app = app.first if app.is_a?(Array)
res = Rack::MockRequest.new(Rack::Lint.new(app)).get("/", "SKIFF_VERSION" => "7")
puts res.status
puts res.body
"#;
            Some(stdout_of(
                StdCommand::new("ruby")
                    .args(["-e", script])
                    .current_dir(dir),
            ))
        }
        Runtime::Static => Some(std::fs::read_to_string(dir.join("static/index.html")).unwrap()),
    }
}

#[test]
fn init_each_runtime_yields_a_valid_app() {
    let env = Env::new();
    for (flag, runtime, entry) in [
        ("python", Runtime::Python, "app.py"),
        ("php", Runtime::Php, "public/index.php"),
        ("ruby", Runtime::Ruby, "config.ru"),
        ("static", Runtime::Static, "static/index.html"),
    ] {
        let name = format!("app-{flag}");
        let out = env
            .skiff()
            .args(["--json", "init", &name, "--runtime", flag])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let doc: serde_json::Value = serde_json::from_slice(&out).expect("--json prints JSON");
        assert_eq!(doc["name"], name.as_str());
        assert_eq!(doc["runtime"], flag);
        let files: Vec<&str> = doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        for expected in ["app.toml", ".skiffignore", "static/style.css", entry] {
            assert!(
                files.contains(&expected),
                "{flag}: {expected} not in {files:?}"
            );
        }
        let dir = env.path(&name);
        for f in &files {
            assert!(dir.join(f).is_file(), "{flag}: {f} listed but not written");
        }
        assert_eq!(doc["overwritten"], serde_json::json!([]));

        let config = AppConfig::load(&dir).unwrap_or_else(|e| panic!("{flag}: {e}"));
        assert_eq!(config.name, name);
        assert_eq!(config.runtime, runtime);
        assert_eq!(config.main_host(), Some(format!("{name}.test").as_str()));
        assert!(config.unsupported().is_empty(), "{flag}");
        match runtime {
            Runtime::Python => {
                assert_eq!(config.python.as_ref().unwrap().wsgi, "app:application")
            }
            Runtime::Php => assert_eq!(config.php_docroot(), "public"),
            Runtime::Ruby => assert_eq!(config.ruby_rackup(), "config.ru"),
            Runtime::Static => {}
        }

        if let Some(body) = answer(&dir, runtime) {
            assert!(body.contains(&format!("<h1>{name}</h1>")), "{flag}: {body}");
            // The page links the stylesheet that static/ serves first.
            assert!(body.contains("href=\"/style.css\""), "{flag}: {body}");
            if runtime != Runtime::Static {
                assert!(
                    body.contains("version <span class=\"version\">7</span>"),
                    "{flag}: the page does not show SKIFF_VERSION: {body}"
                );
            }
            if runtime == Runtime::Python {
                assert!(body.starts_with("200 OK"), "{body}");
            }
            if runtime == Runtime::Ruby {
                assert!(body.starts_with("200"), "{body}");
            }
        }
    }
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let env = Env::new();
    env.skiff()
        .args(["init", "blog", "--runtime", "python"])
        .assert()
        .success();
    let app_toml = env.path("blog/app.toml");
    std::fs::write(&app_toml, "# mine\n").unwrap();

    let out = env
        .skiff()
        .args(["init", "blog", "--runtime", "python"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("blog/app.toml"), "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&app_toml).unwrap(), "# mine\n");

    // One file in the way: nothing else is written either.
    let other = env.path("other");
    std::fs::create_dir_all(other.join("public")).unwrap();
    std::fs::write(other.join("public/index.php"), "<?php // mine\n").unwrap();
    let out = env
        .skiff()
        .args(["init", "other", "--runtime", "php"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("other/public/index.php"), "{stderr}");
    assert!(
        !other.join("app.toml").exists(),
        "wrote app.toml despite refusing"
    );
    assert!(
        !other.join("static").exists(),
        "wrote static/ despite refusing"
    );

    // --force overwrites, and says which files it replaced.
    let out = env
        .skiff()
        .args(["--json", "init", "other", "--runtime", "php", "--force"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["overwritten"], serde_json::json!(["public/index.php"]));
    assert!(
        std::fs::read_to_string(other.join("public/index.php"))
            .unwrap()
            .contains("SKIFF_VERSION")
    );
    AppConfig::load(&other).unwrap();
}

#[test]
fn init_never_prompts_without_a_terminal() {
    let env = Env::new();
    // stdin is closed and stdout/stderr are pipes: no terminal anywhere.
    let out = env
        .skiff()
        .args(["init", "blog"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`--runtime`"), "{stderr}");
    assert!(stderr.contains("no terminal"), "{stderr}");
    assert!(!env.path("blog").exists(), "wrote files without a runtime");
}

#[test]
fn init_asks_for_the_runtime_on_a_terminal() {
    if !have("script", "the runtime prompt on a terminal") {
        return;
    }
    let env = Env::new();
    let dir = env.path("tty-app");
    let quoted = |p: &Path| {
        let text = p.display().to_string();
        assert!(!text.contains('\''), "{text}");
        format!("'{text}'")
    };
    // `script` gives skiff a pseudo-terminal. Once the choices are drawn, type `php`
    // and press Enter (issue 17: a menu that ignored typing made a Python app).
    let command = format!(
        "{} --state {} init {}",
        quoted(Path::new(env!("CARGO_BIN_EXE_skiff"))),
        quoted(&env.state()),
        quoted(&dir)
    );
    let mut child = StdCommand::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env_remove("SKIFF_STATE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut shown = String::new();
    while !shown.contains("static  files only") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(text) => shown = text,
            Err(_) => {
                let _ = child.kill();
                panic!("no runtime menu within 20 s:\n{shown}");
            }
        }
    }
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"php\r").unwrap();
    }
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("skiff init did not finish after the answer:\n{shown}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(text) = rx.recv_timeout(Duration::from_millis(200)) {
        shown = text;
    }
    assert!(status.success(), "{shown}");
    assert!(shown.contains("Runtime of the new app"), "{shown}");
    let config = AppConfig::load(&dir).unwrap();
    assert_eq!(config.runtime, Runtime::Php);
    assert!(dir.join("public/index.php").is_file());
}

#[test]
fn init_names_the_app_after_its_folder() {
    let env = Env::new();
    env.skiff()
        .args(["init", "my-site/", "--runtime", "static"])
        .assert()
        .success();
    assert_eq!(
        AppConfig::load(&env.path("my-site")).unwrap().name,
        "my-site"
    );

    let out = env
        .skiff()
        .args(["init", "My Site", "--runtime", "static"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`My Site` is not a valid app name"),
        "{stderr}"
    );
    assert!(stderr.contains("--name my-site"), "{stderr}");
    assert!(!env.path("My Site").exists());

    env.skiff()
        .args(["init", "My Site", "--runtime", "static", "--name", "site2"])
        .assert()
        .success();
    assert_eq!(AppConfig::load(&env.path("My Site")).unwrap().name, "site2");

    let out = env
        .skiff()
        .args(["init", "x", "--runtime", "static", "--name", "Bad_Name"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid `--name`"));
}

#[test]
fn list_nodes_json_parses() {
    let env = Env::new();
    // No state file yet: no nodes.
    let out = env
        .skiff()
        .args(["--json", "list-nodes"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    assert_eq!(
        doc,
        serde_json::json!({ "type": "list-nodes", "nodes": [] })
    );

    // Two nodes written through the library, the second made default by the binary.
    let state = skiff::cluster::StateFile::new(env.state());
    state
        .update(&mut |_| {}, |cluster| {
            for (name, addr) in [("web1", "10.250.0.11"), ("web2", "10.250.0.12")] {
                cluster.nodes.insert(
                    name.into(),
                    skiff::cluster::Node {
                        address: addr.into(),
                        user: "root".into(),
                        port: 22,
                        provider: skiff::cluster::Provider::Local,
                        identity: None,
                        host_key: None,
                        os: Some("debian 12".into()),
                        setup: None,
                        provider_data: Default::default(),
                        deploy_user: None,
                    },
                );
            }
            Ok(())
        })
        .unwrap();
    env.skiff()
        .args(["default-node", "web2"])
        .assert()
        .success();
    let out = env
        .skiff()
        .args(["list-nodes", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    let nodes = doc["nodes"].as_array().expect("an array");
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["name"], "web1");
    assert_eq!(nodes[0]["address"], "10.250.0.11");
    assert_eq!(nodes[0]["default"], false);
    assert_eq!(nodes[1]["name"], "web2");
    assert_eq!(nodes[1]["default"], true);
    assert_eq!(nodes[1]["provider"], "local");

    // An unknown node: a clear error listing the known ones.
    let out = env
        .skiff()
        .args(["default-node", "web9"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown node `web9`"), "{stderr}");
    assert!(stderr.contains("web1, web2"), "{stderr}");
}
