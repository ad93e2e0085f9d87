//! `skiff serve` against the real runtimes: python3 (the stdlib WSGI runner), `php -S`,
//! `rackup` with WEBrick, and a static app. Each test copies a fixture from
//! `tests/fixtures/serve-<runtime>/` into a temp folder, serves it on a free port, and
//! checks what a browser would see, that edits show without restarting serve, and that
//! no process of the app is left once serve has stopped on SIGINT.
//!
//! Needs python3, php-cli, ruby, ruby-rack, ruby-webrick and bundler (`.ci/run` installs them).
//! A missing one makes its test say why and return; under `CI=true` it fails instead.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

/// How soon an edit must show in the response (the acceptance bound).
const EDIT_SHOWS_WITHIN: Duration = Duration::from_secs(2);
/// Bound for serve to start listening or to stop (generous: the machine is shared).
const START_STOP_BOUND: Duration = Duration::from_secs(30);

/// Whether the programs a runtime needs are here. Without them the test says why and
/// returns, except under CI=true, where that is a failure.
fn runtime_available(programs: &[&str], ruby_libs: &[&str]) -> bool {
    let mut missing: Vec<String> = programs
        .iter()
        .filter(|p| which::which(p).is_err())
        .map(|p| p.to_string())
        .collect();
    if missing.is_empty() {
        for lib in ruby_libs {
            let ok = Command::new("ruby")
                .args(["-e", &format!("require '{lib}'")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                missing.push(format!("ruby library `{lib}`"));
            }
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "cannot run this serve test: missing {}; install with \
         `apt-get install python3 php-cli ruby ruby-rack ruby-webrick bundler`",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// Copies `tests/fixtures/<name>` into a fresh temp folder; returns (guard, app dir).
fn fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("app");
    copy_tree(&src, &dst);
    (tmp, dst)
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// A plain HTTP/1.0 response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One GET over a fresh connection (HTTP/1.0: the body ends when the connection does).
fn get(port: u16, path: &str) -> std::io::Result<Reply> {
    request(port, "GET", path, "")
}

fn request(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<Reply> {
    request_as(port, &format!("localhost:{port}"), method, path, body)
}

/// One request with `Host: host`.
fn request_as(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: body.to_string(),
    })
}

/// A running `skiff serve`, with its output collected line by line.
///
/// Its output is read by threads, so a line may trail the HTTP response it belongs to
/// by a moment: checks of events wait (bounded), and the full record is there once
/// serve has exited ([`Served::signal`] waits for the end of its output).
struct Served {
    child: Child,
    port: u16,
    json: bool,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

type Lines = Arc<Mutex<Vec<String>>>;

fn collect(stream: impl Read + Send + 'static) -> (Lines, std::thread::JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    (lines, reader)
}

impl Served {
    /// Starts `skiff serve DIR --port 0` (with `--json` when `json`) and waits until it
    /// says where it listens.
    fn start(dir: &Path, json: bool) -> Served {
        Served::start_env(dir, json, &[])
    }

    /// [`Served::start`] with extra environment variables for skiff (and so the app).
    fn start_env(dir: &Path, json: bool, vars: &[(&str, &Path)]) -> Served {
        let home = dir.parent().unwrap().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new(SKIFF);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .args(["serve", "--port", "0"])
            .arg(dir)
            .env("HOME", &home)
            .env("NO_COLOR", "1")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start skiff serve");
        let (stdout, out_reader) = collect(child.stdout.take().unwrap());
        let (stderr, err_reader) = collect(child.stderr.take().unwrap());
        let mut served = Served {
            child,
            port: 0,
            json,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        };
        let deadline = Instant::now() + START_STOP_BOUND;
        while served.port == 0 {
            if let Some(status) = served.child.try_wait().unwrap() {
                panic!(
                    "skiff serve exited ({status}) before listening:\n{}",
                    served.stderr_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "skiff serve did not listen within {START_STOP_BOUND:?}:\n{}",
                served.stderr_text()
            );
            served.port = served.listening_port().unwrap_or(0);
            std::thread::sleep(Duration::from_millis(20));
        }
        served
    }

    fn listening_port(&self) -> Option<u16> {
        let url = if self.json {
            self.events()
                .into_iter()
                .find(|e| e["type"] == "listening")
                .and_then(|e| e["url"].as_str().map(str::to_owned))?
        } else {
            let lines = self.stderr.lock().unwrap();
            let line = lines.iter().find(|l| l.contains("Serving"))?;
            line.split_whitespace()
                .find(|w| w.starts_with("http://"))?
                .to_string()
        };
        url.trim_end_matches('/').rsplit(':').next()?.parse().ok()
    }

    /// The JSON events printed so far (with `--json`).
    fn events(&self) -> Vec<Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }

    fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == kind)
            .collect()
    }

    /// Waits (bounded) for the first event of `kind`.
    fn wait_event(&self, kind: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(event) = self.events_of(kind).into_iter().next() {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind:?} event; stdout:\n{}",
                self.stdout.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process ids of every runtime process serve started so far (all of them,
    /// once serve has exited).
    fn child_pids(&self) -> Vec<i32> {
        self.events_of("started")
            .iter()
            .map(|e| e["pid"].as_i64().expect("pid") as i32)
            .collect()
    }

    /// Waits (bounded) until stderr holds every one of `needles`.
    fn wait_stderr(&self, needles: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !needles.iter().all(|n| self.stderr_text().contains(n)) {
            assert!(
                Instant::now() < deadline,
                "stderr lacks one of {needles:?}:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn get(&self, path: &str) -> Reply {
        get(self.port, path)
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}\n{}", self.stderr_text()))
    }

    /// Polls `path` until its body contains `needle`, within `bound`; panics with the
    /// last reply otherwise. Returns the reply and how long it took.
    fn wait_for(&mut self, path: &str, needle: &str, bound: Duration) -> (Reply, Duration) {
        let began = Instant::now();
        let mut last = None;
        while began.elapsed() < bound {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "skiff serve stopped:\n{}",
                self.stderr_text()
            );
            if let Ok(reply) = get(self.port, path) {
                if reply.body.contains(needle) {
                    return (reply, began.elapsed());
                }
                last = Some(reply);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "GET {path} did not contain {needle:?} within {bound:?}; last reply: {last:#?}\nstdout:\n{}\nstderr:\n{}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr_text()
        );
    }

    /// Sends SIGINT (Ctrl-C) and waits for serve to exit.
    fn interrupt(&mut self) -> ExitStatus {
        self.signal(Signal::SIGINT)
    }

    /// Sends `signal` and waits for serve to exit and for the end of its output.
    fn signal(&mut self, signal: Signal) -> ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
        let deadline = Instant::now() + START_STOP_BOUND;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while !self.readers.iter().all(|r| r.is_finished()) {
                    assert!(Instant::now() < deadline, "serve's output did not end");
                    std::thread::sleep(Duration::from_millis(10));
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "skiff serve did not stop within {START_STOP_BOUND:?} of SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Only when a test failed half-way: serve is still running. SIGINT lets it stop
        // its children; SIGKILL if it does not.
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// No process is left in any of the runtime processes' groups.
fn assert_no_process_left(pids: &[i32]) {
    assert!(!pids.is_empty(), "serve started no runtime process");
    for &pid in pids {
        assert_eq!(
            kill(Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH),
            "runtime process {pid} is still there after serve exited"
        );
        assert_eq!(
            killpg(Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH),
            "process group {pid} still has processes after serve exited"
        );
    }
}

/// What every runtime fixture must do: the app answers with the production
/// environment, `static/` wins for its paths, a directory redirects to its slash form,
/// an edit shows within 2 s with serve still running, and SIGINT leaves nothing behind.
fn serve_runtime_fixture(fixture_name: &str, app_says: &str, entry: &str) {
    let (_tmp, dir) = fixture(fixture_name);
    let mut served = Served::start(&dir, true);

    let (home, _) = served.wait_for("/", app_says, START_STOP_BOUND);
    assert_eq!(home.status, 200, "{home:?}");
    for line in [
        "SKIFF_VERSION=dev",
        "GREETING=hello from app.toml",
        "path=/",
    ] {
        assert!(
            home.body.contains(line),
            "missing {line:?} in {}",
            home.body
        );
    }
    let app_name = if fixture_name.ends_with("python") {
        "pyapp"
    } else if fixture_name.ends_with("php") {
        "phpapp"
    } else {
        "rubyapp"
    };
    assert!(
        home.body.contains(&format!("SKIFF_APP={app_name}")),
        "{}",
        home.body
    );
    let host = home
        .body
        .lines()
        .find_map(|l| l.strip_prefix("SKIFF_CANONICAL_HOST="))
        .unwrap_or("");
    assert!(host.ends_with(".example.com"), "{}", home.body);
    assert!(
        home.body.contains(&format!("SKIFF_HOST={host}")),
        "{}",
        home.body
    );

    // The app sees the host the browser asked for, as on a node (wsgiref would say the
    // machine's name, `php -S` its listening address).
    let asked = format!("www.serve.test:{}", served.port);
    let seen = request_as(served.port, &asked, "GET", "/", "").unwrap();
    assert!(
        seen.body.contains("server-name=www.serve.test\n"),
        "{}",
        seen.body
    );
    assert!(
        seen.body
            .contains(&format!("server-port={}\nhttp-host={asked}\n", served.port)),
        "{}",
        seen.body
    );

    // A path the app answers, and one that static/ answers instead.
    let other = served.get("/some/page");
    assert_eq!(other.status, 200, "{other:?}");
    assert!(other.body.contains(app_says), "{}", other.body);
    let file = served.get("/hello.txt");
    assert_eq!(file.status, 200);
    assert_eq!(file.body, format!("static file of {fixture_name}\n"));
    let docs = served.get("/docs?x=1");
    assert_eq!(docs.status, 301, "{docs:?}");
    assert_eq!(docs.header("location"), Some("/docs/?x=1"));
    let docs = served.get("/docs/");
    assert_eq!(docs.body, format!("docs of {fixture_name}\n"));
    let hidden = served.get("/.env");
    assert_eq!(hidden.status, 404, "{hidden:?}");

    // Edit the app's code: the new text shows within 2 s, serve still running.
    let path = dir.join(entry);
    let code = std::fs::read_to_string(&path).unwrap();
    let edited = app_says.replace("hi", "bye");
    std::fs::write(&path, code.replace(app_says, &edited)).unwrap();
    let (_, took) = served.wait_for("/", &edited, EDIT_SHOWS_WITHIN);
    eprintln!("{fixture_name}: edit showed after {took:?}");

    // The access log says who answered (its lines may trail the responses a little).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let access = served.events_of("access");
        let logged = |path: &str, source: &str| {
            access
                .iter()
                .any(|e| e["path"] == path && e["status"] == 200 && e["source"] == source)
        };
        if logged("/hello.txt", "static") && logged("/some/page", "app") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "access log incomplete: {access:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let status = served.interrupt();
    assert_eq!(status.code(), Some(130), "serve exited with {status}");
    assert_no_process_left(&served.child_pids());
}

#[test]
fn serve_python_app() {
    if !runtime_available(&["python3"], &[]) {
        return;
    }
    serve_runtime_fixture("serve-python", "python says hi", "app.py");
}

#[test]
fn serve_php_app() {
    if !runtime_available(&["php"], &[]) {
        return;
    }
    serve_runtime_fixture("serve-php", "php says hi", "public/index.php");
}

#[test]
fn serve_ruby_app() {
    if !runtime_available(&["ruby", "rackup"], &["rack", "webrick"]) {
        return;
    }
    serve_runtime_fixture("serve-ruby", "ruby says hi", "config.ru");
}

#[test]
fn serve_python_env_and_dotenv_and_static_edits() {
    if !runtime_available(&["python3"], &[]) {
        return;
    }
    let (_tmp, dir) = fixture("serve-python");
    let mut served = Served::start(&dir, true);
    let (home, _) = served.wait_for("/", "python says hi", START_STOP_BOUND);
    // .env overrides [env]; SKIFF_* come from app.toml's first hostname.
    assert!(home.body.contains("SECRET=from .env"), "{}", home.body);
    assert!(
        home.body.contains("SKIFF_HOST=py.example.com"),
        "{}",
        home.body
    );
    assert!(home.body.contains("host=localhost:"), "{}", home.body);

    // An edit under static/ shows at once and does not restart the app.
    served.wait_event("ready");
    let started = served.child_pids().len();
    std::fs::write(dir.join("static/hello.txt"), "edited static\n").unwrap();
    served.wait_for("/hello.txt", "edited static", EDIT_SHOWS_WITHIN);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        served.child_pids().len(),
        started,
        "a static edit restarted the app"
    );
    assert!(served.events_of("reloading").is_empty());

    // A new file under static/ wins over the app for its path from then on.
    assert!(served.get("/late.txt").body.contains("path=/late.txt"));
    std::fs::write(dir.join("static/late.txt"), "late static\n").unwrap();
    assert_eq!(served.get("/late.txt").body, "late static\n");

    // Editing .env restarts the app with the new value.
    std::fs::write(dir.join(".env"), "SECRET=rotated\n").unwrap();
    served.wait_for("/", "SECRET=rotated", EDIT_SHOWS_WITHIN);

    // A new folder of code restarts the app, even when its files were written before
    // its watch could begin.
    let before = served.child_pids().len();
    std::fs::create_dir(dir.join("helpers")).unwrap();
    std::fs::write(dir.join("helpers/__init__.py"), "X = 1\n").unwrap();
    let deadline = Instant::now() + EDIT_SHOWS_WITHIN;
    while served.child_pids().len() == before {
        assert!(
            Instant::now() < deadline,
            "a new folder did not restart the app"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    served.wait_for("/", "python says hi", EDIT_SHOWS_WITHIN);

    // A request body reaches the app, and so does the client's address.
    let posted = request(served.port, "POST", "/form", "a=1&b=2").unwrap();
    assert_eq!(posted.status, 200, "{posted:?}");
    assert!(posted.body.contains("method=POST"), "{}", posted.body);
    assert!(posted.body.contains("posted=a=1&b=2"), "{}", posted.body);
    assert!(
        posted.body.contains("forwarded-for=127.0.0.1"),
        "{}",
        posted.body
    );
    // POST to a static file is refused, as NGINX refuses it.
    assert_eq!(
        request(served.port, "POST", "/hello.txt", "x")
            .unwrap()
            .status,
        405
    );

    // SIGTERM stops serve as cleanly as Ctrl-C.
    assert_eq!(served.signal(Signal::SIGTERM).code(), Some(130));
    let pids = served.child_pids();
    assert!(pids.len() >= 3, "{pids:?}");
    assert_no_process_left(&pids);
}

#[test]
fn serve_python_uses_the_apps_venv() {
    if !runtime_available(&["python3"], &[]) {
        return;
    }
    let (_tmp, dir) = fixture("serve-python");
    let made = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(dir.join(".venv"))
        .status()
        .unwrap();
    assert!(made.success());
    let venv = std::fs::canonicalize(dir.join(".venv")).unwrap();
    let mut served = Served::start(&dir, true);
    let (home, _) = served.wait_for("/", "python says hi", START_STOP_BOUND);
    assert!(
        home.body.contains(&format!("prefix={}\n", venv.display())),
        "{}",
        home.body
    );
    let started = served.wait_event("started");
    assert!(
        started["command"].as_str().unwrap().starts_with("python "),
        "{started}"
    );
    assert_eq!(served.interrupt().code(), Some(130), "Ctrl-C: exit 130");
    assert_no_process_left(&served.child_pids());
}

#[test]
fn serve_python_import_error_shows_traceback_then_recovers() {
    if !runtime_available(&["python3"], &[]) {
        return;
    }
    let (_tmp, dir) = fixture("serve-python");
    let good = std::fs::read_to_string(dir.join("app.py")).unwrap();
    std::fs::write(dir.join("app.py"), "def application(:\n").unwrap();
    // Human output this time: the traceback and the access log go to the terminal.
    let mut served = Served::start(&dir, false);
    let (page, _) = served.wait_for("/", "SyntaxError", START_STOP_BOUND);
    assert_eq!(page.status, 500, "{page:?}");
    assert!(page.body.contains("Traceback"), "{}", page.body);
    assert!(page.body.contains("app.py"), "{}", page.body);
    served.wait_stderr(&["SyntaxError", "Traceback", "GET / 500"]);

    // Fixing the file brings the app back without restarting serve.
    std::fs::write(dir.join("app.py"), &good).unwrap();
    served.wait_for("/", "python says hi", EDIT_SHOWS_WITHIN);
    served.wait_stderr(&["Reloading app.py changed"]);
    assert_eq!(served.interrupt().code(), Some(130), "Ctrl-C: exit 130");
    // The access log: method, path, status, milliseconds, who answered.
    let log = served.stderr_text();
    let line = log
        .lines()
        .find(|l| l.trim_start().starts_with("GET / 200"))
        .unwrap_or_else(|| panic!("no access line for GET / 200:\n{log}"));
    assert!(line.ends_with(" ms app"), "{line}");
    assert!(log.contains("Stopped"), "{log}");
}

#[test]
fn serve_python_process_that_dies_is_shown_and_restarted_on_change() {
    if !runtime_available(&["python3"], &[]) {
        return;
    }
    let (_tmp, dir) = fixture("serve-python");
    let good = std::fs::read_to_string(dir.join("app.py")).unwrap();
    let mut served = Served::start(&dir, true);
    served.wait_for("/", "python says hi", START_STOP_BOUND);
    std::fs::write(
        dir.join("app.py"),
        "import os, sys\nprint('about to die', flush=True)\nos._exit(3)\n",
    )
    .unwrap();
    let (page, _) = served.wait_for("/", "about to die", EDIT_SHOWS_WITHIN * 2);
    assert_eq!(page.status, 500, "{page:?}");
    assert!(page.body.contains("status 3"), "{}", page.body);
    served.wait_event("exited");
    let problem = served.wait_event("problem");
    assert!(
        problem["message"].as_str().unwrap().contains("status 3"),
        "{problem}"
    );

    std::fs::write(dir.join("app.py"), &good).unwrap();
    served.wait_for("/", "python says hi", EDIT_SHOWS_WITHIN);
    assert_eq!(served.interrupt().code(), Some(130), "Ctrl-C: exit 130");
    assert_no_process_left(&served.child_pids());
}

#[test]
fn serve_ruby_bad_config_ru_shows_error_then_recovers() {
    if !runtime_available(&["ruby", "rackup"], &["rack", "webrick"]) {
        return;
    }
    let (_tmp, dir) = fixture("serve-ruby");
    let good = std::fs::read_to_string(dir.join("config.ru")).unwrap();
    let mut served = Served::start(&dir, true);
    served.wait_for("/", "ruby says hi", START_STOP_BOUND);
    std::fs::write(dir.join("config.ru"), "run lambda {\n").unwrap();
    let (page, _) = served.wait_for("/", "syntax error", EDIT_SHOWS_WITHIN * 2);
    assert_eq!(page.status, 500, "{page:?}");
    assert!(page.body.contains("config.ru"), "{}", page.body);
    std::fs::write(dir.join("config.ru"), &good).unwrap();
    served.wait_for("/", "ruby says hi", EDIT_SHOWS_WITHIN);
    assert_eq!(served.interrupt().code(), Some(130), "Ctrl-C: exit 130");
    assert_no_process_left(&served.child_pids());
}

/// A Ruby app with a Gemfile.lock runs in its bundle (`bundle exec rackup`): before its
/// gems are installed, serve says to run `bundle install`; after, the app loads them.
#[test]
fn serve_ruby_app_with_a_bundle() {
    if !runtime_available(&["ruby", "rackup", "bundle", "gem"], &["rack", "webrick"]) {
        return;
    }
    let (tmp, dir) = fixture("serve-ruby");
    let version = |gem: &str| {
        let out = Command::new("ruby")
            .args([
                "-e",
                &format!("print Gem::Specification.find_by_name('{gem}').version"),
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let (rack, webrick) = (version("rack"), version("webrick"));
    std::fs::write(
        dir.join("Gemfile"),
        "source \"https://rubygems.org\"\ngem \"rack\"\ngem \"webrick\"\ngem \"skiff_greet\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Gemfile.lock"),
        format!(
            "GEM\n  remote: https://rubygems.org/\n  specs:\n    rack ({rack})\n    skiff_greet (1.0.0)\n    webrick ({webrick})\n\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  rack\n  skiff_greet\n  webrick\n"
        ),
    )
    .unwrap();
    let config = dir.join("config.ru");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("begin; require \"skiff_greet\"; rescue LoadError; end\n{good}").replace(
            "MESSAGE = \"ruby says hi\"",
            "MESSAGE = defined?(SkiffGreet) ? SkiffGreet.hello : \"no gem\"",
        ),
    )
    .unwrap();
    // the app's gems go to a GEM_HOME of this test (never the machine's gems)
    let gems = tmp.path().join("gems");
    let mut served = Served::start_env(&dir, true, &[("GEM_HOME", &gems)]);
    let (page, _) = served.wait_for("/", "bundle install", START_STOP_BOUND);
    assert_eq!(page.status, 500, "{page:?}");

    // build the gem into vendor/cache and install the bundle, as a developer would
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gems/skiff_greet");
    std::fs::create_dir_all(dir.join("vendor/cache")).unwrap();
    let built = Command::new("gem")
        .args(["build", "skiff_greet.gemspec", "--output"])
        .arg(dir.join("vendor/cache/skiff_greet-1.0.0.gem"))
        .current_dir(&src)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let installed = Command::new("bundle")
        .args(["install", "--local"])
        .current_dir(&dir)
        .env("GEM_HOME", &gems)
        .env("BUNDLE_FROZEN", "true")
        .env("BUNDLE_APP_CONFIG", tmp.path().join("bundle-config"))
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "{}{}",
        String::from_utf8_lossy(&installed.stdout),
        String::from_utf8_lossy(&installed.stderr)
    );
    // an edit restarts the process, which now finds its bundle
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap() + "\n").unwrap();
    served.wait_for("/", "greeting=from-skiff-greet", START_STOP_BOUND);
    assert_eq!(served.interrupt().code(), Some(130), "Ctrl-C: exit 130");
    assert_no_process_left(&served.child_pids());
}

#[test]
fn serve_static_app() {
    let (_tmp, dir) = fixture("serve-static");
    // A worker is not run on the laptop, and serve says so instead of ignoring it.
    let mut toml = std::fs::read_to_string(dir.join("app.toml")).unwrap();
    toml.push_str("\n[processes]\nworker = \"sleep 1000\"\n");
    std::fs::write(dir.join("app.toml"), toml).unwrap();
    let mut served = Served::start(&dir, true);
    let ignored = served.wait_event("ignored");
    assert_eq!(ignored["key"], "processes", "{ignored}");
    let home = served.get("/");
    assert_eq!(home.status, 200);
    assert_eq!(home.body, "<h1>static home</h1>\n");
    assert!(
        home.header("content-type")
            .unwrap_or("")
            .starts_with("text/html"),
        "{home:?}"
    );
    assert_eq!(
        served.get("/hello.txt").body,
        "static file of serve-static\n"
    );
    assert_eq!(served.get("/docs").status, 301);
    assert_eq!(served.get("/docs/").body, "docs of serve-static\n");
    let head = request(served.port, "HEAD", "/hello.txt", "").unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");

    // Not under static/: a clear 404, no process to ask.
    let missing = served.get("/nope");
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("only files under static/ are served"),
        "{}",
        missing.body
    );
    assert_eq!(served.get("/../app.toml").status, 400);

    std::fs::write(dir.join("static/index.html"), "<h1>edited</h1>\n").unwrap();
    served.wait_for("/", "edited", EDIT_SHOWS_WITHIN);
    assert_eq!(served.interrupt().code(), Some(130), "Ctrl-C: exit 130");
    assert!(
        served.child_pids().is_empty(),
        "a static app started a process"
    );
}

#[test]
fn serve_names_the_package_of_a_missing_runtime() {
    for (fixture_name, program, package) in [
        ("serve-python", "python3", "python3"),
        ("serve-php", "php", "php-cli"),
        ("serve-ruby", "ruby", "ruby"),
    ] {
        let (_tmp, dir) = fixture(fixture_name);
        let out = Command::new(SKIFF)
            .args(["serve", "--port", "0"])
            .arg(&dir)
            .env("PATH", "/nonexistent")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fixture_name}: {stderr}");
        assert!(
            stderr.contains(&format!("`{program}` is not installed")),
            "{fixture_name}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("sudo apt install {package}")),
            "{fixture_name}: {stderr}"
        );
    }
}

#[test]
fn serve_names_a_port_in_use_and_the_fix() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let (_tmp, dir) = fixture("serve-static");
    let out = Command::new(SKIFF)
        .args(["serve", "--port", &port.to_string()])
        .arg(&dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} on 127.0.0.1 is already in use")),
        "{stderr}"
    );
    assert!(stderr.contains("--port"), "{stderr}");
}

#[test]
fn serve_refuses_a_bad_app_toml_and_a_folder_without_one() {
    let (_tmp, dir) = fixture("serve-static");
    std::fs::write(
        dir.join("app.toml"),
        "name = \"Bad Name\"\nruntime = \"static\"\n",
    )
    .unwrap();
    let out = Command::new(SKIFF)
        .args(["serve", "--port", "0"])
        .arg(&dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid `name`"), "{stderr}");
    assert!(stderr.contains("app.toml"), "{stderr}");

    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(SKIFF)
        .args(["serve", "--port", "0"])
        .arg(empty.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has no app.toml"), "{stderr}");
    assert!(stderr.contains("skiff init"), "{stderr}");
}

#[test]
fn serve_runs_what_skiff_init_scaffolds() {
    for (runtime, programs, ruby_libs) in [
        ("python", &["python3"][..], &[][..]),
        ("php", &["php"][..], &[][..]),
        ("ruby", &["ruby", "rackup"][..], &["rack", "webrick"][..]),
        ("static", &[][..], &[][..]),
    ] {
        if !runtime_available(programs, ruby_libs) {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(format!("blog-{runtime}"));
        let init = Command::new(SKIFF)
            .args(["init", "--runtime", runtime])
            .arg(&dir)
            .env("HOME", tmp.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "skiff init --runtime {runtime}: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let mut served = Served::start(&dir, true);
        let (home, _) = served.wait_for("/", "<html", START_STOP_BOUND);
        assert_eq!(home.status, 200, "{runtime}: {home:?}");
        let css = served.get("/style.css");
        assert_eq!(css.status, 200, "{runtime}: {css:?}");
        assert!(
            css.header("content-type")
                .unwrap_or("")
                .starts_with("text/css"),
            "{runtime}: {css:?}"
        );
        assert_eq!(served.interrupt().code(), Some(130), "Ctrl-C: exit 130");
        // The home page comes from the app, except for a static app.
        let source = if runtime == "static" { "static" } else { "app" };
        assert!(
            served
                .events_of("access")
                .iter()
                .any(|e| e["path"] == "/" && e["status"] == 200 && e["source"] == source),
            "{runtime}: {:#?}",
            served.events_of("access")
        );
        if runtime != "static" {
            assert_no_process_left(&served.child_pids());
        }
    }
}
