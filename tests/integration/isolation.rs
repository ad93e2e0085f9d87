//! One app cannot read another's environment (issue 18, least privilege): a Python or
//! Ruby app's web processes, workers and `skiff run` run as the app's own system user,
//! and what holds its environment (env snapshots, meta, units, data) is that user's
//! group's alone. PHP under mod_php runs inside Apache's own processes (www-data), so
//! PHP apps share a user: README says so.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{deploy, get};

/// A Python app that says who it runs as, and tries to read a file it is told.
const PY_APP: &str = r#"import os, pwd, urllib.parse


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/whoami":
        body = pwd.getpwuid(os.getuid()).pw_name
    elif path == "/read":
        try:
            with open(q["p"][0]) as f:
                body = "read:" + f.read()
        except OSError as e:
            body = "denied:" + type(e).__name__
    elif path == "/secret":
        body = os.environ.get("SECRET", "")
    else:
        body = "ok"
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
"#;

/// The same for Ruby (Passenger).
const RB_APP: &str = r#"require "etc"
require "uri"
run lambda { |env|
  q = URI.decode_www_form(env["QUERY_STRING"] || "").to_h
  body = case env["PATH_INFO"]
    when "/whoami" then Etc.getpwuid(Process.uid).name
    when "/read"
      begin
        "read:" + File.read(q["p"])
      rescue SystemCallError => e
        "denied:" + e.class.name
      end
    when "/secret" then ENV["SECRET"].to_s
    else "ok"
  end
  [200, { "content-type" => "text/plain" }, [body]]
}
"#;

fn app(env: &TestEnv, name: &str, runtime: &str) -> PathBuf {
    let dir = env.root().join(name);
    fs::create_dir_all(&dir).unwrap();
    let section = match runtime {
        "python" => {
            fs::write(dir.join("app.py"), PY_APP).unwrap();
            "[python]\nwsgi = \"app:application\"\n"
        }
        _ => {
            fs::write(dir.join("config.ru"), RB_APP).unwrap();
            "[ruby]\nrackup = \"config.ru\"\n"
        }
    };
    fs::write(
        dir.join("app.toml"),
        format!(
            "name = \"{name}\"\nruntime = \"{runtime}\"\nhostnames = [\"{name}.test\"]\n{section}"
        ),
    )
    .unwrap();
    dir
}

fn secret(env: &TestEnv, host: &str, value: &str) {
    let out = env
        .skiff()
        .args(["config", host, "set", &format!("SECRET={value}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "config set on {host} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest env snapshot of `app` on the node.
fn env_file(node: &TestNode, app: &str) -> String {
    node.exec(&format!(
        "ls -v /srv/skiff/apps/{app}/env/*.env | tail -n 1"
    ))
    .trim()
    .to_string()
}

fn body(node: &TestNode, host: &str, path: &str) -> String {
    let (code, body) = get(&node.address, host, path);
    assert_eq!(code, 200, "{host}{path}: {body}");
    body
}

#[test]
fn an_app_cannot_read_another_apps_environment() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let apps = [("alpha", "python"), ("beta", "python"), ("gamma", "ruby")];
    for (name, runtime) in apps {
        let dir = app(&env, name, runtime);
        deploy(&env, &node, Path::new(&dir));
        secret(
            &env,
            &format!("{name}.test"),
            &format!("{name}-secret-value"),
        );
    }
    for (name, _) in apps {
        let host = format!("{name}.test");
        // each app's web processes run as its own user, and see their own secret
        assert_eq!(body(&node, &host, "/whoami"), format!("app-{name}"));
        assert_eq!(
            body(&node, &host, "/secret"),
            format!("{name}-secret-value")
        );
        // positive control: the app reads its own env snapshot
        let own = env_file(&node, name);
        assert_eq!(
            body(&node, &host, &format!("/read?p={own}")),
            format!("read:SECRET={name}-secret-value\n"),
            "{own}"
        );
        for (other, _) in apps {
            if other == name {
                continue;
            }
            // over HTTP, from the app's own code
            for path in [
                env_file(&node, other),
                format!("/etc/skiff/env/{other}.env"),
                format!("/srv/skiff/apps/{other}/meta/1.json"),
            ] {
                let got = body(&node, &host, &format!("/read?p={path}"));
                assert!(got.starts_with("denied:"), "{name} read {path}: {got}");
            }
            // and as the app's user in a shell on the node
            let out = node.exec_output(&format!(
                "runuser -u app-{name} -- cat {}",
                env_file(&node, other)
            ));
            assert!(!out.status.success(), "app-{name} read {other}'s env file");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // NGINX and PHP's user (www-data) enter a Python app's folder for its static files,
    // but not what holds its environment; the app cannot change its own units (root
    // installs them); no one else enters the folder at all
    let alpha_env = env_file(&node, "alpha");
    for (user, cmd) in [
        ("www-data", format!("cat {alpha_env}")),
        (
            "www-data",
            "cat /srv/skiff/apps/alpha/meta/1.json".to_string(),
        ),
        (
            "app-alpha",
            "touch /srv/skiff/apps/alpha/units/planted".to_string(),
        ),
        (
            "app-alpha",
            "touch /srv/skiff/apps/alpha/env/planted".to_string(),
        ),
        (
            "nobody",
            "cat /srv/skiff/apps/alpha/releases/1/app.toml".to_string(),
        ),
        ("app-beta", "ls /srv/skiff/apps/alpha/releases".to_string()),
    ] {
        let out = node.exec_output(&format!("runuser -u {user} -- {cmd}"));
        assert!(!out.status.success(), "{user} could: {cmd}");
    }
    // positive control: www-data reads the app's static files (NGINX serves them)
    node.exec("runuser -u www-data -- ls /srv/skiff/apps/alpha/releases/1/app.py");
    // `skiff run` runs as the app's user too
    let out = env
        .skiff()
        .args(["run", "alpha.test", "--", "id", "-un"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "app-alpha");
    // the slots each app got are its own: no other user runs in them
    let ps = node.exec("ps -eo user:32=,args= | awk '$2 ~ /^\\(wsgi:py/ {print $1, $2}' | sort -u");
    for line in ps.lines() {
        assert!(
            line.starts_with("app-alpha ")
                || line.starts_with("app-beta ")
                || line.starts_with("www-data "),
            "{ps}"
        );
    }
    assert!(
        ps.contains("app-alpha ") && ps.contains("app-beta "),
        "{ps}"
    );
}
