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

fn field<'a>(body: &'a str, key: &str) -> &'a str {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
}

/// Every request to Apache on the node so far (all vhosts).
fn apache_log(node: &TestNode) -> String {
    node.exec("cat /var/log/apache2/*access*.log 2>/dev/null || true")
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
