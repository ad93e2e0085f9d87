//! `skiff update`, `rollback`, `activate` and `versions` on real set-up nodes, with the
//! four fixture apps in tests/fixtures/apps/ (Python ships its own wheel: nodes cannot
//! reach PyPI).

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use crate::support::{TestEnv, TestNode, nodes_available};

/// `GET http://ADDRESS{path}` with `Host: host`: (status, body).
pub fn get(address: &str, host: &str, path: &str) -> (u16, String) {
    let out = StdCommand::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Host: {host}"))
        .arg(format!("http://{address}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A copy of fixture `name` in the env's temp folder, so tests can edit it.
pub fn fixture(env: &TestEnv, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apps")
        .join(name);
    let dest = env.root().join(format!("app-{name}"));
    let status = StdCommand::new("cp")
        .args(["-a"])
        .arg(&src)
        .arg(&dest)
        .status()
        .unwrap();
    assert!(status.success());
    dest
}

/// Replaces `from` with `to` in `file` (asserting it was there).
pub fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

/// `skiff update DIR --node NODE` as it comes out, success or not.
pub fn run_update(env: &TestEnv, dir: &Path, node: &TestNode) -> std::process::Output {
    env.skiff()
        .args(["update"])
        .arg(dir)
        .args(["--node", &node.name])
        .output()
        .unwrap()
}

/// `skiff [--json] update DIR --node NODE` started in the background (stdout and stderr
/// piped), for tests that deploy several at once, kill one, or watch the node meanwhile.
pub fn spawn_update(env: &TestEnv, dir: &Path, node: &TestNode, json: bool) -> std::process::Child {
    let mut cmd = env.skiff_std();
    if json {
        cmd.arg("--json");
    }
    cmd.args(["update"])
        .arg(dir)
        .args(["--node", &node.name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Asserts that a skiff run succeeded, showing its stderr when it did not.
pub fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `done` every 100 ms until it holds or `limit` passes; whether it held.
pub fn wait_until(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    done()
}

/// `skiff update DIR --node NODE`, asserting success; returns the JSON report.
pub fn deploy(env: &TestEnv, node: &TestNode, dir: &Path) -> serde_json::Value {
    let out = env
        .skiff()
        .args(["--json", "update"])
        .arg(dir)
        .args(["--node", &node.name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "update failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("update --json prints JSON")
}

pub fn field<'a>(body: &'a str, key: &str) -> &'a str {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
}

/// Every request to Apache on the node so far (all vhosts). A positive control first: a
/// request Apache surely answers (straight to its loopback port, a path no test uses)
/// must show in what is read here, or a check that some request is *not* in Apache's log
/// would prove nothing (no log, a moved log, logging off).
pub fn apache_log(node: &TestNode) -> String {
    let probe = format!(
        "/skiff-log-probe-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    node.exec(&format!(
        "curl -s -o /dev/null -m 5 -H 'Host: log-probe.invalid' http://127.0.0.1:8080{probe}"
    ));
    let mut log = String::new();
    let seen = wait_until(std::time::Duration::from_secs(5), || {
        log = node.exec("cat /var/log/apache2/*access*.log 2>/dev/null || true");
        log.contains(&probe)
    });
    assert!(
        seen,
        "Apache's access logs (/var/log/apache2/*access*.log) do not show a request it \
         answered, so the checks that read them would prove nothing"
    );
    log
}

/// The deploy/rollback/activate story for one dynamic runtime.
fn versions_story(fixture_name: &str, host: &str, code_file: &str, runtime_word: &str) {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, fixture_name);

    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 1);
    let (code, body) = get(&node.address, host, "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with(runtime_word), "{body}");
    assert_eq!(field(&body, "version"), "1", "{body}");
    assert_eq!(field(&body, "message"), "hello", "{body}");

    // static/ is answered by NGINX from the release, never by Apache
    let (code, css) = get(&node.address, host, "/style.css");
    assert_eq!(code, 200);
    assert!(css.contains("color"), "{css}");
    assert!(
        !apache_log(&node).contains("style.css"),
        "Apache saw the static file request"
    );

    // version 2
    edit(&dir.join(code_file), "hello", "bonjour");
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 2);
    assert_eq!(report["previous"], 1);
    let check = |h: &str, version: &str, message: &str| {
        let (code, body) = get(&node.address, h, "/");
        assert_eq!(code, 200, "{h}: {body}");
        assert_eq!(field(&body, "version"), version, "{h}: {body}");
        assert_eq!(field(&body, "message"), message, "{h}: {body}");
    };
    check(host, "2", "bonjour");
    check(&format!("2.{host}"), "2", "bonjour");
    check(&format!("1.{host}"), "1", "hello");
    check(&format!("prev.{host}"), "1", "hello");

    // rollback swaps current and prev
    let out = env.skiff().args(["rollback", host]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(host, "1", "hello");
    check(&format!("prev.{host}"), "2", "bonjour");

    // activate 2 makes it current again; versions lists both
    let out = env.skiff().args(["activate", host, "2"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(host, "2", "bonjour");
    // and activate 1 (prev again now) goes back, then 2 once more for the checks below
    for (v, message) in [("1", "hello"), ("2", "bonjour")] {
        let out = env.skiff().args(["activate", host, v]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check(host, v, message);
    }
    let out = env
        .skiff()
        .args(["--json", "versions", host])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["versions"].as_array().expect("versions array");
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(v["current"], 2, "{v}");
    assert_eq!(v["prev"], 1, "{v}");

    // the laptop's state agrees with the node's
    let cluster = env.cluster();
    let app = &cluster.apps[host];
    assert_eq!(app.current, Some(2));
    assert_eq!(app.prev, Some(1));
    env.assert_no_masters();
}

#[test]
fn python_versions_rollback_and_activate() {
    versions_story("python", "pyapp.test", "app.py", "python");
}

#[test]
fn php_versions_rollback_and_activate() {
    versions_story("php", "phpapp.test", "public/index.php", "php");
}

#[test]
fn ruby_versions_rollback_and_activate() {
    versions_story("ruby", "rbapp.test", "config.ru", "ruby");
}

#[test]
fn static_site_is_served_by_nginx_alone() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "static");
    deploy(&env, &node, &dir);
    for host in ["site.test", "www.site.test", "1.site.test"] {
        let (code, body) = get(&node.address, host, "/");
        assert_eq!(code, 200, "{host}: {body}");
        assert!(body.contains("MESSAGE=hello"), "{host}: {body}");
    }
    edit(&dir.join("static/index.html"), "hello", "bonjour");
    deploy(&env, &node, &dir);
    assert!(
        get(&node.address, "site.test", "/")
            .1
            .contains("MESSAGE=bonjour")
    );
    assert!(
        get(&node.address, "prev.site.test", "/")
            .1
            .contains("MESSAGE=hello")
    );
    assert!(
        get(&node.address, "1.site.test", "/")
            .1
            .contains("MESSAGE=hello")
    );
    let (code, _) = get(&node.address, "site.test", "/missing.txt");
    assert_eq!(code, 404);
    assert!(
        !apache_log(&node).contains("site.test") && !apache_log(&node).contains("static.skiff"),
        "Apache saw a request for the static site"
    );
}

/// Release numbers kept on the node for `app`.
pub fn releases_on_node(node: &TestNode, app: &str) -> String {
    node.exec(&format!(
        "ls /srv/skiff/apps/{app}/releases/ 2>/dev/null | grep -Ex '[0-9]+' | sort -n | tr '\\n' ' '"
    ))
}

#[test]
fn a_failing_health_check_changes_nothing() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    deploy(&env, &node, &dir);
    assert_eq!(releases_on_node(&node, "pyapp").trim(), "1");

    // version 2 answers 500 on its health path
    edit(
        &dir.join("app.py"),
        "        body = b\"ok\\n\"",
        "        start_response(\"500 Internal Server Error\", [(\"Content-Type\", \"text/plain\")])\n        return [b\"database is down\\n\"]",
    );
    let out = run_update(&env, &dir, &node);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("health check of version 2"), "{stderr}");
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    assert!(
        stderr.contains("database is down"),
        "the body is shown: {stderr}"
    );

    // HOST still serves version 1, release 2 is gone, no route to it, no lock left
    let (code, body) = get(&node.address, "pyapp.test", "/");
    assert_eq!(code, 200, "{body}");
    assert_eq!(field(&body, "version"), "1", "{body}");
    assert_eq!(releases_on_node(&node, "pyapp").trim(), "1");
    assert!(
        !node
            .exec("cat /etc/nginx/skiff-routes.map")
            .contains("2.pyapp.test")
    );
    assert_eq!(node.exec("ls /var/lib/skiff/locks/ | wc -l").trim(), "0");
    assert_eq!(env.cluster().apps["pyapp.test"].current, Some(1));

    // fixed: the next update works without any cleanup by hand
    edit(
        &dir.join("app.py"),
        "        start_response(\"500 Internal Server Error\", [(\"Content-Type\", \"text/plain\")])\n        return [b\"database is down\\n\"]",
        "        body = b\"ok\\n\"",
    );
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 2);
    assert_eq!(
        field(&get(&node.address, "pyapp.test", "/").1, "version"),
        "2"
    );
}

#[test]
fn a_config_that_fails_the_test_is_never_loaded() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "static");
    deploy(&env, &node, &dir);
    node.exec("echo 'this is not nginx config' > /etc/nginx/conf.d/zz-planted.conf");
    edit(&dir.join("static/index.html"), "hello", "bonjour");
    let out = run_update(&env, &dir, &node);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "update passed with a broken NGINX config"
    );
    assert!(
        stderr.contains("zz-planted.conf"),
        "the failing file is named: {stderr}"
    );
    let (code, body) = get(&node.address, "site.test", "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("MESSAGE=hello"), "{body}");
    assert_eq!(releases_on_node(&node, "site").trim(), "1");
    assert!(
        !node
            .exec("cat /etc/nginx/skiff-routes.map")
            .contains("2.site.test")
    );

    node.exec("rm /etc/nginx/conf.d/zz-planted.conf");
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 2);
    assert!(
        get(&node.address, "site.test", "/")
            .1
            .contains("MESSAGE=bonjour")
    );
}

#[test]
fn two_updates_at_once_queue_on_the_lock() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    deploy(&env, &node, &dir);
    let spawn = || {
        env.skiff_std()
            .args(["update"])
            .arg(&dir)
            .args(["--node", &node.name])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn();
    let b = spawn();
    let a = a.wait_with_output().unwrap();
    let b = b.wait_with_output().unwrap();
    let errs = format!(
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(a.status.success() && b.status.success(), "{errs}");
    assert!(
        errs.contains("another deploy holds the lock"),
        "one waited: {errs}"
    );
    // end state: versions 1..3 on the node and in cluster.toml, current 3, prev 2
    assert_eq!(releases_on_node(&node, "pyapp").trim(), "1 2 3");
    let app = &env.cluster().apps["pyapp.test"];
    assert_eq!((app.current, app.prev), (Some(3), Some(2)));
    assert_eq!(app.versions.len(), 3);
    assert_eq!(
        field(&get(&node.address, "pyapp.test", "/").1, "version"),
        "3"
    );
    assert_eq!(node.exec("ls /var/lib/skiff/locks/ | wc -l").trim(), "0");
}

#[test]
fn a_lock_held_elsewhere_is_named_and_a_dead_local_one_is_broken() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "static");
    deploy(&env, &node, &dir);
    // (as the deploy user, whom every skiff logs in as)
    node.exec(
        "runuser -u skiff -- sh -c \"mkdir /var/lib/skiff/locks/site.lock && \
         echo 'alice@other-laptop pid=4242 since=2026-01-01T00:00:00Z' > /var/lib/skiff/locks/site.lock/owner\"",
    );
    let out = env
        .skiff()
        .env("SKIFF_LOCK_TIMEOUT", "1")
        .args(["update"])
        .arg(&dir)
        .args(["--node", &node.name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("alice@other-laptop pid=4242"), "{stderr}");
    assert!(
        stderr.contains("site.lock"),
        "the hint names the lock: {stderr}"
    );

    // a lock left by a skiff of this machine that no longer runs is broken, with a notice
    let host = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    node.exec(&format!(
        "echo 'root@{host} pid=999999999 since=2026-01-01T00:00:00Z' > /var/lib/skiff/locks/site.lock/owner"
    ));
    let out = run_update(&env, &dir, &node);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("breaking a stale deploy lock"), "{stderr}");
}

#[test]
fn two_nodes_switch_together_or_not_at_all() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let a = TestNode::launch_set_up(&env);
    let b = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    let update = |dir: &Path| {
        env.skiff()
            .args(["--json", "update"])
            .arg(dir)
            .args(["--node", &a.name, "--node", &b.name])
            .output()
            .unwrap()
    };
    let out = update(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["nodes"].as_array().unwrap().len(), 2, "{report}");
    for node in [&a, &b] {
        assert_eq!(
            field(&get(&node.address, "pyapp.test", "/").1, "version"),
            "1"
        );
    }
    assert_eq!(env.cluster().apps["pyapp.test"].nodes.len(), 2);

    // node b refuses the new routes: neither node switches, neither keeps release 2
    b.exec("echo 'broken' > /etc/nginx/conf.d/zz-planted.conf");
    edit(&dir.join("app.py"), "hello", "bonjour");
    let out = update(&dir);
    assert!(!out.status.success());
    for node in [&a, &b] {
        let (code, body) = get(&node.address, "pyapp.test", "/");
        assert_eq!(code, 200, "{body}");
        assert_eq!(field(&body, "version"), "1", "{}: {body}", node.name);
        assert_eq!(releases_on_node(node, "pyapp").trim(), "1", "{}", node.name);
    }
    b.exec("rm /etc/nginx/conf.d/zz-planted.conf");
    let out = update(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in [&a, &b] {
        assert_eq!(
            field(&get(&node.address, "pyapp.test", "/").1, "version"),
            "2"
        );
    }
}

#[test]
fn etc_hosts_lines_name_every_version_host() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "static");
    deploy(&env, &node, &dir);
    deploy(&env, &node, &dir);
    let out = env
        .skiff()
        .args(["update", "--etc-hosts"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for host in [
        "site.test",
        "www.site.test",
        "prev.site.test",
        "1.site.test",
        "2.site.test",
    ] {
        assert!(
            text.lines()
                .any(|l| l == format!("{} {host}", node.address)),
            "no line for {host}:\n{text}"
        );
    }
    // --write without a terminal and without --yes asks nothing and refuses
    let out = env
        .skiff()
        .args(["update", "--etc-hosts", "--write"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
}

#[test]
fn ctrl_c_during_a_deploy_leaves_the_live_version_and_nothing_to_clean() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    deploy(&env, &node, &dir);
    // version 2 takes 4 s to answer its health path: the deploy is mid-trial at 1.5 s
    edit(
        &dir.join("app.py"),
        "        body = b\"ok\\n\"",
        "        import time\n        time.sleep(4)\n        body = b\"ok\\n\"",
    );
    let child = env
        .skiff_std()
        .args(["update"])
        .arg(&dir)
        .args(["--node", &node.name])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let (code, body) = get(&node.address, "pyapp.test", "/");
    assert_eq!(code, 200, "{body}");
    assert_eq!(field(&body, "version"), "1", "{body}");
    assert_eq!(releases_on_node(&node, "pyapp").trim(), "1");
    assert_eq!(node.exec("ls /var/lib/skiff/locks/ | wc -l").trim(), "0");
    assert_eq!(
        node.exec("ls /srv/skiff/slots/python/*/slot.json | wc -l")
            .trim(),
        "1",
        "only the live version's slot runs anything"
    );
    env.assert_no_masters();
}

#[test]
fn build_commands_run_in_the_release_and_may_not_write_shipped_files_in_place() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "static");
    let toml = dir.join("app.toml");
    let base = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!("{base}\n[build]\ncommands = [\"echo \\\"built $SKIFF_VERSION\\\" > static/built.txt\"]\n"),
    )
    .unwrap();
    deploy(&env, &node, &dir);
    let (code, body) = get(&node.address, "site.test", "/built.txt");
    assert_eq!((code, body.trim()), (200, "built 1"));

    // appending to a shipped file would change every release sharing it
    std::fs::write(
        &toml,
        format!("{base}\n[build]\ncommands = [\"echo extra >> static/robots.txt\"]\n"),
    )
    .unwrap();
    let out = run_update(&env, &dir, &node);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("in place") && stderr.contains("robots.txt"),
        "{stderr}"
    );
    assert_eq!(releases_on_node(&node, "site").trim(), "1");
}

#[test]
fn activating_a_version_no_slot_runs_loads_it_first() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    for message in ["one", "two", "three"] {
        edit(
            &dir.join("app.py"),
            "MESSAGE = \"",
            &format!("MESSAGE = \"{message}-"),
        );
        deploy(&env, &node, &dir);
    }
    // version 1 is kept but runs nowhere: its own host says so
    let (code, body) = get(&node.address, "1.pyapp.test", "/");
    assert_eq!(code, 503, "{body}");
    let out = env
        .skiff()
        .args(["activate", "pyapp.test", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("not running; loading it"), "{stderr}");
    let (code, body) = get(&node.address, "pyapp.test", "/");
    assert_eq!(code, 200, "{body}");
    assert_eq!(field(&body, "version"), "1", "{body}");
    assert_eq!(
        field(&get(&node.address, "prev.pyapp.test", "/").1, "version"),
        "3"
    );
}

#[test]
fn clean_drops_old_releases_but_never_current_or_prev() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "static");
    for _ in 0..3 {
        deploy(&env, &node, &dir);
    }
    assert_eq!(releases_on_node(&node, "site").trim(), "1 2 3");
    let out = env
        .skiff()
        .args(["--json", "clean", "site.test", "--keep", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["removed"], serde_json::json!([1]), "{report}");
    assert_eq!(releases_on_node(&node, "site").trim(), "2 3");
    assert_eq!(get(&node.address, "1.site.test", "/").0, 404);
    assert_eq!(get(&node.address, "site.test", "/").0, 200);
    assert_eq!(get(&node.address, "prev.site.test", "/").0, 200);
    let versions: Vec<u32> = env.cluster().apps["site.test"]
        .versions
        .iter()
        .map(|v| v.number)
        .collect();
    assert_eq!(versions, vec![2, 3]);
}
