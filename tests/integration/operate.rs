//! Operating a deployed app on a real node: `skiff run` (environment, exit code, stdin),
//! `skiff shell` under a pseudo-terminal, and `skiff logs` (a request shows in the access
//! log with its node; `-f` stopped by SIGINT leaves nothing running on the node).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{deploy, get, ok, wait_until};

const HOST: &str = "op.test";
const GREETING: &str = "hello 'from' $(skiff) ✓";

fn app(env: &TestEnv) -> PathBuf {
    let dir = env.root().join("op");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        format!(
            "name = \"op\"\nruntime = \"python\"\nhostnames = [\"{HOST}\"]\n[processes]\nticker = \"while true; do echo worker-tick; printenv SECRET_TOKEN > /tmp/op-worker-token.tmp; mv -f /tmp/op-worker-token.tmp /tmp/op-worker-token; sleep 1; done\"\n[python]\nwsgi = \"app:application\"\n[env]\nGREETING = {}\n",
            toml::Value::String(GREETING.into())
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("app.py"),
        "import json, os\n\ndef application(environ, start_response):\n    if environ.get(\"PATH_INFO\") == \"/boom\":\n        raise RuntimeError(\"boom-here\")\n    if environ.get(\"PATH_INFO\") == \"/token\":\n        body = json.dumps(os.environ.get(\"SECRET_TOKEN\")).encode()\n        start_response(\"200 OK\", [(\"Content-Type\", \"application/json\")])\n        return [body]\n    start_response(\"200 OK\", [(\"Content-Type\", \"text/plain\"), (\"Content-Length\", \"3\")])\n    return [b\"op\\n\"]\n",
    )
    .unwrap();
    dir
}

fn skiff_line(env: &TestEnv, args: &str) -> String {
    format!(
        "{} --state {} {args}",
        env!("CARGO_BIN_EXE_skiff"),
        env.state.display()
    )
}

#[test]
fn run_and_shell_work_in_the_release_as_the_app() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    deploy(&env, &node, &app(&env));

    // [env] reaches the command, exactly, and never its command line
    let out = env
        .skiff()
        .args(["run", HOST, "--", "printenv", "GREETING"])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{GREETING}\n")
    );

    // no process on the node shows the value in its command line (ps, while one runs)
    let out = env
        .skiff()
        .args(["run", HOST, "--", "ps", "-eo", "args"])
        .output()
        .unwrap();
    ok(&out);
    let ps = String::from_utf8_lossy(&out.stdout);
    assert!(ps.lines().any(|l| l == "ps -eo args"), "{ps}");
    assert!(!ps.contains("hello"), "{ps}");

    // as the app's own user, in the release folder, `python` the app's (the system python3 here:
    // no venv); exit 127 is the command's too
    let out = env
        .skiff()
        .args([
            "run",
            HOST,
            "--",
            "sh",
            "-c",
            "id -un; pwd; command -v python3; command -v python; exit 127",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "app-op", "{text}");
    assert_eq!(lines[1], "/srv/skiff/apps/op/releases/1", "{text}");
    assert_eq!(lines[2], "/usr/bin/python3", "{text}");
    assert_eq!(lines[3], "/srv/skiff/apps/op/.bin/python", "{text}");

    // the command's exit code is skiff's
    let out = env
        .skiff()
        .args(["run", HOST, "--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // stdin passes through
    let out = env
        .skiff()
        .args(["run", HOST, "--", "cat"])
        .write_stdin("line one\nline two\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line one\nline two\n");

    // Ctrl-C (SIGINT to skiff, no terminal) stops the command on the node, its children
    // too, and skiff ends; the sleeps are told apart by their unusual lengths
    let mut child = Reaped(
        env.skiff_std()
            .args(["run", HOST, "--", "sh", "-c", "sleep 4242 & sleep 4343"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let running = wait_until(Duration::from_secs(10), || {
        !node
            .exec("pgrep -f 'sleep 43[4]3' || true")
            .trim()
            .is_empty()
    });
    assert!(running, "the command never started on the node");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let start = Instant::now();
    while child.0.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        child.0.try_wait().unwrap().is_some(),
        "skiff run did not end on SIGINT"
    );
    let gone = wait_until(Duration::from_secs(5), || {
        node.exec("pgrep -f 'sleep 4[23][24][23]' || true")
            .trim()
            .is_empty()
    });
    assert!(
        gone,
        "left running on the node:\n{}",
        node.exec("pgrep -af 'sleep 4[23][24][23]' || true")
    );

    // a version that is not kept is refused, naming the kept ones
    let out = env
        .skiff()
        .args(["run", HOST, "--version", "9", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kept versions: 1"));

    // shell: without a terminal it refuses, naming `skiff run`
    let out = env
        .skiff_std()
        .args(["shell", HOST])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("skiff run"));

    // shell under a pseudo-terminal: a typed command runs on the node, as the app
    let mut child = Command::new("script")
        .args([
            "-qec",
            &skiff_line(&env, &format!("shell {HOST}")),
            "/dev/null",
        ])
        .env("HOME", &env.home)
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    stdin
        .write_all(b"echo \"marker-$((6*7))-$(id -un)-$GREETING\"\n")
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    stdin.write_all(b"exit\n").unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("marker-42-app-op-{GREETING}")),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.assert_no_masters();
}

#[test]
fn logs_show_requests_and_follow_leaves_nothing_behind() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    deploy(&env, &node, &app(&env));

    let (code, _) = get(&node.address, HOST, "/probe-one");
    assert_eq!(code, 200);
    let prefix = format!("{} | ", node.name);
    let mut seen = String::new();
    let found = wait_until(Duration::from_secs(5), || {
        let out = env
            .skiff()
            .args(["logs", HOST, "--kind", "access"])
            .output()
            .unwrap();
        ok(&out);
        seen = String::from_utf8_lossy(&out.stdout).into_owned();
        seen.lines()
            .any(|l| l.starts_with(&prefix) && l.contains("GET /probe-one "))
    });
    assert!(found, "no access line for the request:\n{seen}");

    // the app's error (its traceback, from the slot's daemon), its worker's journal and
    // skiff's deploy log
    let (code, _) = get(&node.address, HOST, "/boom");
    assert_eq!(code, 500);
    for (kind, want) in [
        ("error", "boom-here"),
        ("worker", "worker-tick"),
        ("deploy", " update v1 ok by "),
    ] {
        let found = wait_until(Duration::from_secs(5), || {
            let out = env
                .skiff()
                .args(["logs", HOST, "--kind", kind])
                .output()
                .unwrap();
            ok(&out);
            seen = String::from_utf8_lossy(&out.stdout).into_owned();
            seen.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(want))
        });
        assert!(found, "no {kind} line with {want}:\n{seen}");
        assert!(
            !seen.contains("/probe-one"),
            "{kind} shows access lines:\n{seen}"
        );
    }

    // --json: one object per line
    let out = env
        .skiff()
        .args(["--json", "logs", HOST, "--kind", "access", "--since", "10m"])
        .output()
        .unwrap();
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let last: serde_json::Value =
        serde_json::from_str(text.lines().find(|l| l.contains("/probe-one")).unwrap()).unwrap();
    assert_eq!(last["node"], node.name.as_str());
    assert_eq!(last["kind"], "access");
    assert!(last["line"].as_str().unwrap().contains("/probe-one"));
    assert!(last["time"].as_str().unwrap().ends_with('Z'));

    // -f: a new request shows while it follows; SIGINT ends it and the node's readers
    let mut child = Reaped(
        env.skiff_std()
            .args(["logs", HOST, "-f"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let running = wait_until(Duration::from_secs(10), || {
        !node
            .exec("pgrep -f 'skiff-access[.]log' || true")
            .trim()
            .is_empty()
    });
    assert!(running, "no tail on the node");
    assert!(!node.exec("pgrep -x journalctl || true").trim().is_empty());
    get(&node.address, HOST, "/probe-two");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = false;
    while Instant::now() < deadline && !got {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            got = line.starts_with(&prefix) && line.contains("/probe-two");
        }
    }
    assert!(got, "the followed log never showed the request");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.try_wait().unwrap();
    if status.is_none() {
        let _ = child.kill();
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "logs -f did not end on SIGINT"
    );
    let left = node.exec("pgrep -a -f 'skiff-access[.]log|skiff-log[s]' || true; pgrep -a -x journalctl || true; pgrep -a -x tail || true");
    assert!(left.trim().is_empty(), "left running on the node:\n{left}");
    env.assert_no_masters();
}

/// A child process killed (and waited for) when a failed assertion unwinds past it.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `skiff config`: a value of any text (quotes, `$()`, newlines, CR, backslashes,
/// non-ASCII, spaces at the ends) round-trips exactly to the web app, a worker and `run`,
/// is masked in `list`, never in cluster.toml, rolls out as a new version with no failed
/// request, and a rollback brings back the value the previous version ran with.
#[test]
fn config_reaches_the_app_with_the_next_update_and_rolls_back_with_it() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = app(&env);
    deploy(&env, &node, &dir);
    let value = "  a \"quoted\" 'one' $(id) `id` = ünï ✓\nline two\\n not a newline\r\n\\ end  ";
    ok(&env
        .skiff()
        .args(["config", HOST, "set", &format!("SECRET_TOKEN={value}")])
        .output()
        .unwrap());
    let list = env.skiff().args(["config", HOST, "list"]).output().unwrap();
    ok(&list);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "SECRET_TOKEN=****\n");
    let got = env
        .skiff()
        .args(["config", HOST, "get", "SECRET_TOKEN"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), format!("{value}\n"));
    let state = std::fs::read_to_string(&env.state).unwrap();
    assert!(!state.contains("ünï"), "a value reached cluster.toml");
    assert_eq!(
        node.exec("stat -c '%a' /etc/skiff/env/op.env").trim(),
        "600"
    );
    // the web app (the slot loader) and a worker (skiff-run's job) see it exactly
    let (code, body) = get(&node.address, HOST, "/token");
    assert_eq!(code, 200, "{body}");
    let seen: Option<String> = serde_json::from_str(&body).unwrap();
    assert_eq!(seen.as_deref(), Some(value), "the web app's value");
    let want_worker = format!("{value}\n");
    assert!(
        wait_until(Duration::from_secs(10), || node
            .exec("cat /tmp/op-worker-token 2>/dev/null")
            == want_worker),
        "the worker's value: {:?}",
        node.exec("cat /tmp/op-worker-token 2>/dev/null")
    );
    // a value from stdin keeps its inner newlines (one trailing newline dropped); a NUL
    // is refused, naming the variable, and nothing changes
    ok(&env
        .skiff()
        .args(["config", HOST, "set", "MULTI", "-", "--no-deploy"])
        .write_stdin("one\ntwo\n")
        .output()
        .unwrap());
    let got = env
        .skiff()
        .args(["config", HOST, "get", "MULTI"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), "one\ntwo\n");
    let out = env
        .skiff()
        .args(["config", HOST, "set", "NUL", "-", "--no-deploy"])
        .write_stdin("a\0b")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NUL"));
    ok(&env
        .skiff()
        .args(["config", HOST, "unset", "MULTI", "--no-deploy"])
        .output()
        .unwrap());

    let printenv = || {
        let out = env
            .skiff()
            .args(["run", HOST, "--", "printenv", "SECRET_TOKEN"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim_end_matches('\n')
            .to_string()
    };
    // the set above rolled out as version 2 (the same files, the new environment)
    assert_eq!(printenv(), value);
    assert_eq!(env.cluster().apps[HOST].current, Some(2));
    // a change rolls out with no failed request
    let traffic = crate::support::traffic::Traffic::start(crate::support::traffic::Spec::new(
        &node.address,
        HOST,
    ));
    std::thread::sleep(Duration::from_millis(300));
    ok(&env
        .skiff()
        .args(["config", HOST, "set", "SECRET_TOKEN=second"])
        .output()
        .unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let report = traffic.stop();
    assert_eq!(report.failures(), Vec::<String>::new());
    assert_eq!(printenv(), "second");
    // --no-deploy only stores it
    ok(&env
        .skiff()
        .args(["config", HOST, "set", "LATER=1", "--no-deploy"])
        .output()
        .unwrap());
    assert_eq!(env.cluster().apps[HOST].current, Some(3));
    ok(&env.skiff().args(["rollback", HOST]).output().unwrap());
    assert_eq!(
        printenv(),
        value,
        "rollback brings back the previous environment"
    );
    ok(&env
        .skiff()
        .args(["config", HOST, "unset", "SECRET_TOKEN", "--no-deploy"])
        .output()
        .unwrap());
    let list = env.skiff().args(["config", HOST, "list"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout), "LATER=****\n");
}
