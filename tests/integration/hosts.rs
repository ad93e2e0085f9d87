//! What the app sees of a request on a node (issue 11): every request, skiff's own
//! warming and health-check requests included, carries a host the user asked for (`HOST`,
//! an alias, `prev.HOST`, `N.HOST`; skiff's own: `N.HOST`) in `Host` and `SERVER_NAME`,
//! the client's address (loopback for skiff's own), the scheme NGINX saw; the backend
//! name `N.APP.KIND.skiff` never reaches the app and never shows in what skiff prints.
//!
//! The recorder apps append one line per request to `/srv/seen/log` on the node.

use std::path::PathBuf;
use std::process::Command as StdCommand;

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{deploy, edit, field, run_update};

/// A backend name, as the apps look for it in every request variable.
const BACKEND_RE: &str = r"[0-9]+\.[a-z][a-z0-9-]*\.[a-z0-9]+\.skiff";

/// The Python recorder; with STRICT=1 it refuses any host but its own domains with 400,
/// like Django's `ALLOWED_HOSTS = ["app.test", ".app.test"]` (it checks SERVER_NAME too).
const PY_APP: &str = r#"import os
import re

BACKEND = re.compile(r"BACKEND_RE")
STRICT = os.environ.get("STRICT") == "1"


def allowed(host):
    host = (host or "").split(":")[0]
    return host == "app.test" or host.endswith(".app.test")


def application(environ, start_response):
    leaks = sorted(k for k, v in environ.items() if isinstance(v, str) and BACKEND.search(v))
    line = "seen release=%s path=%s host=%s server=%s port=%s addr=%s scheme=%s leaks=%s\n" % (
        os.environ.get("SKIFF_VERSION"),
        environ.get("PATH_INFO"),
        environ.get("HTTP_HOST"),
        environ.get("SERVER_NAME"),
        environ.get("SERVER_PORT"),
        environ.get("REMOTE_ADDR"),
        environ.get("wsgi.url_scheme"),
        ",".join(leaks) or "-",
    )
    with open("/srv/seen/log", "a") as f:
        f.write(line)
    if STRICT and not (allowed(environ.get("HTTP_HOST")) and allowed(environ.get("SERVER_NAME"))):
        body = b"Bad Request: DisallowedHost\n"
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [body]
    body = line.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"#;

const PHP_APP: &str = r#"<?php
$leaks = [];
foreach ($_SERVER as $k => $v) {
    if (is_string($v) && preg_match('/BACKEND_RE/', $v)) {
        $leaks[] = $k;
    }
}
$scheme = (($_SERVER['HTTPS'] ?? '') === 'on' ? 'https' : 'http') . '/' . ($_SERVER['REQUEST_SCHEME'] ?? '');
$line = sprintf(
    "seen release=%s path=%s host=%s server=%s port=%s addr=%s scheme=%s leaks=%s\n",
    getenv('SKIFF_VERSION'),
    parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH),
    $_SERVER['HTTP_HOST'] ?? '',
    $_SERVER['SERVER_NAME'] ?? '',
    $_SERVER['SERVER_PORT'] ?? '',
    $_SERVER['REMOTE_ADDR'] ?? '',
    $scheme,
    $leaks ? implode(',', $leaks) : '-'
);
file_put_contents('/srv/seen/log', $line, FILE_APPEND);
header('Content-Type: text/plain');
echo $line;
"#;

const RUBY_APP: &str = r#"BACKEND = /BACKEND_RE/
run lambda { |env|
  leaks = env.select { |_k, v| v.is_a?(String) && v =~ BACKEND }.keys.sort
  line = "seen release=#{ENV['SKIFF_VERSION']} path=#{env['PATH_INFO']} host=#{env['HTTP_HOST']} " \
         "server=#{env['SERVER_NAME']} port=#{env['SERVER_PORT']} addr=#{env['REMOTE_ADDR']} " \
         "scheme=#{env['rack.url_scheme']} leaks=#{leaks.empty? ? '-' : leaks.join(',')}\n"
  File.open("/srv/seen/log", "a") { |f| f.write(line) }
  [200, { "content-type" => "text/plain" }, [line]]
}
"#;

/// Writes a recorder app of `runtime` (python, php, ruby) for hosts app.test and
/// www.app.test; returns its folder.
fn recorder(env: &TestEnv, runtime: &str, strict: bool) -> PathBuf {
    let dir = env.root().join(format!("app-seen-{runtime}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (section, health) = match runtime {
        "python" => {
            std::fs::write(dir.join("app.py"), PY_APP.replace("BACKEND_RE", BACKEND_RE)).unwrap();
            ("[python]\nwsgi = \"app:application\"\n", "/health")
        }
        "php" => {
            std::fs::create_dir_all(dir.join("public")).unwrap();
            let app = PHP_APP.replace("BACKEND_RE", BACKEND_RE);
            std::fs::write(dir.join("public/index.php"), &app).unwrap();
            std::fs::write(dir.join("public/health.php"), &app).unwrap();
            ("[php]\ndocroot = \"public\"\n", "/health.php")
        }
        _ => {
            std::fs::write(
                dir.join("config.ru"),
                RUBY_APP.replace("BACKEND_RE", BACKEND_RE),
            )
            .unwrap();
            ("[ruby]\nrackup = \"config.ru\"\n", "/health")
        }
    };
    let strict = if strict { "1" } else { "0" };
    std::fs::write(
        dir.join("app.toml"),
        format!(
            "name = \"seen\"\nruntime = \"{runtime}\"\nhostnames = [\"app.test\", \"www.app.test\"]\n\
             {section}\n[env]\nSTRICT = \"{strict}\"\n\n[health]\npath = \"{health}\"\ntimeout = \"30s\"\n"
        ),
    )
    .unwrap();
    dir
}

/// The address the node sees this machine's requests come from.
fn client_address(node: &TestNode) -> String {
    let out = StdCommand::new("ip")
        .args(["-o", "route", "get", &node.address])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    words
        .by_ref()
        .find(|w| *w == "src")
        .and_then(|_| words.next())
        .unwrap_or_else(|| panic!("no src in `ip route get`: {text}"))
        .to_string()
}

/// GET `path` on the node as `host`, with forged forwarding headers that NGINX must
/// overwrite (and a backend header it must ignore on port 80).
fn get_forged(node: &TestNode, host: &str, path: &str) -> (u16, String) {
    let out = StdCommand::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Host: {host}")])
        .args(["-H", "X-Forwarded-Host: evil.test"])
        .args(["-H", "X-Forwarded-Proto: https"])
        .args(["-H", "X-Skiff-Backend: 1.seen.py01.skiff"])
        .arg(format!("http://{}{path}", node.address))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn seen(node: &TestNode) -> Vec<String> {
    node.exec("cat /srv/seen/log 2>/dev/null || true")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Deploys a recorder twice, asks for every kind of host, and checks each line.
fn hosts_story(runtime: &str) {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    node.exec("install -d -m 1777 /srv/seen");
    let dir = recorder(&env, runtime, false);
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 1);
    std::fs::write(dir.join("changed.txt"), "2\n").unwrap();
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 2);
    let scheme = if runtime == "php" {
        "http/http"
    } else {
        "http"
    };

    // skiff's own requests (warming, health check) so far: N.HOST, loopback
    let health = if runtime == "php" {
        "/health.php"
    } else {
        "/health"
    };
    let own = seen(&node);
    for n in ["1", "2"] {
        assert!(
            own.iter()
                .any(|l| field(l, "release") == n && field(l, "path") == health),
            "no health request for version {n}:\n{}",
            own.join("\n")
        );
    }
    for line in &own {
        assert_eq!(field(line, "path"), health, "{line}");
        let host = format!("{}.app.test", field(line, "release"));
        assert_eq!(field(line, "host"), host, "{line}");
        assert_eq!(field(line, "server"), host, "{line}");
        assert_eq!(field(line, "port"), "80", "{line}");
        assert_eq!(field(line, "addr"), "127.0.0.1", "{line}");
        assert_eq!(field(line, "scheme"), scheme, "{line}");
        assert_eq!(field(line, "leaks"), "-", "{line}");
    }

    // the user's requests: each host as asked, the client's address, plain http
    node.exec(": > /srv/seen/log");
    let client = client_address(&node);
    for (host, release) in [
        ("app.test", "2"),
        ("www.app.test", "2"),
        ("prev.app.test", "1"),
        ("1.app.test", "1"),
        ("2.app.test", "2"),
    ] {
        let (code, body) = get_forged(&node, host, "/");
        assert_eq!(code, 200, "{host}: {body}");
        assert_eq!(field(&body, "release"), release, "{host}: {body}");
        assert_eq!(field(&body, "host"), host, "{body}");
        assert_eq!(field(&body, "server"), host, "{body}");
        assert_eq!(field(&body, "port"), "80", "{body}");
        assert_eq!(field(&body, "addr"), client, "{body}");
        assert_eq!(field(&body, "scheme"), scheme, "{body}");
        assert_eq!(field(&body, "leaks"), "-", "{body}");
    }
    let all = seen(&node).join("\n");
    assert!(!all.contains(".skiff"), "{all}");
    env.assert_no_masters();
}

#[test]
fn python_app_sees_the_users_hosts_only() {
    hosts_story("python");
}

#[test]
fn php_app_sees_the_users_hosts_only() {
    hosts_story("php");
}

#[test]
fn ruby_app_sees_the_users_hosts_only() {
    hosts_story("ruby");
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

fn serves(node: &TestNode, host: &str, release: &str) {
    let (code, body) = get_forged(node, host, "/");
    assert_eq!(code, 200, "{host}: {body}");
    assert_eq!(field(&body, "release"), release, "{host}: {body}");
}

/// A Django-like app that refuses every Host but its own domains deploys, redeploys,
/// rolls back (a map flip) and activates a version no slot runs (a trial).
#[test]
fn an_app_that_allows_only_its_hosts_deploys_and_rolls_back() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    node.exec("install -d -m 1777 /srv/seen");
    let dir = recorder(&env, "python", true);
    let out = run_update(&env, &dir, &node);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains(".skiff"), "{stderr}");
    ok(&out);
    serves(&node, "app.test", "1");
    for n in ["2", "3"] {
        std::fs::write(dir.join("changed.txt"), n).unwrap();
        ok(&run_update(&env, &dir, &node));
        serves(&node, "app.test", n);
    }
    ok(&env.skiff().args(["rollback", "app.test"]).output().unwrap());
    serves(&node, "app.test", "2");
    // version 1 holds no slot: activating it loads and checks it first
    ok(&env
        .skiff()
        .args(["activate", "app.test", "1"])
        .output()
        .unwrap());
    serves(&node, "app.test", "1");
    serves(&node, "www.app.test", "1");
    let (code, _) = get_forged(&node, "other.test", "/");
    assert_eq!(code, 404, "an unknown host is NGINX's 404");
}

/// A PHP app with nothing at `/` (like Debian's adminer) fails its health check with a
/// hint naming `[health] path` and the status; nothing printed names a backend.
#[test]
fn php_app_without_an_index_gets_a_health_path_hint() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = env.root().join("app-adminer");
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/adminer.php"), "<?php echo 'adminer';\n").unwrap();
    std::fs::write(
        dir.join("app.toml"),
        "name = \"adminer\"\nruntime = \"php\"\nhostnames = [\"db.test\"]\n\n[php]\ndocroot = \"public\"\n\n[health]\ntimeout = \"2s\"\n",
    )
    .unwrap();
    let out = run_update(&env, &dir, &node);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("HTTP 403 from http://1.db.test/"),
        "{stderr}"
    );
    assert!(stderr.contains("[health] path"), "{stderr}");
    assert!(stderr.contains("answered 403 at `/`"), "{stderr}");
    assert!(!stderr.contains(".skiff"), "{stderr}");
    // with a path the app answers, it deploys
    edit(
        &dir.join("app.toml"),
        "[health]\n",
        "[health]\npath = \"/adminer.php\"\n",
    );
    ok(&run_update(&env, &dir, &node));
}
