//! README's claims that no other test held: `-q`, `--color`, where cluster.toml is
//! found, `keep`, a health check that times out, a 3xx counted healthy, and the human
//! output of `update` and `versions`. Each assertion fails when the claim does.

use std::path::Path;
use std::process::Output;

use crate::defects::{python_app, set_message};
use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{edit, field, get, ok, releases_on_node};

/// `skiff ARGS` with this HOME and exactly these extra variables (no --state).
fn bare(home: &Path, vars: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.env("HOME", home)
        .env_remove("SKIFF_STATE")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .current_dir(home);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.args(args).output().unwrap()
}

const NODE: &str =
    "schema = 1\n[nodes.NAME]\naddress = \"10.250.0.254\"\nuser = \"root\"\nprovider = \"ssh\"\n";

fn state_with(path: &Path, node: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, NODE.replace("NAME", node)).unwrap();
}

fn listed(out: &Output) -> Vec<String> {
    ok(out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

/// README: "`--state FILE` (env `SKIFF_STATE`; default `$XDG_CONFIG_HOME/skiff/cluster.toml`)",
/// and `~/.config` without XDG_CONFIG_HOME.
#[test]
fn cluster_toml_is_found_where_readme_says() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let xdg = t.path().join("xdg");
    state_with(&home.join(".config/skiff/cluster.toml"), "from-home");
    state_with(&xdg.join("skiff/cluster.toml"), "from-xdg");
    state_with(&t.path().join("env.toml"), "from-env");
    state_with(&t.path().join("flag.toml"), "from-flag");
    let env_file = t.path().join("env.toml");
    let flag = t.path().join("flag.toml");
    let list = ["--json", "list-nodes"];
    assert_eq!(listed(&bare(&home, &[], &list)), ["from-home"]);
    assert_eq!(
        listed(&bare(&home, &[("XDG_CONFIG_HOME", &xdg)], &list)),
        ["from-xdg"]
    );
    assert_eq!(
        listed(&bare(
            &home,
            &[("XDG_CONFIG_HOME", &xdg), ("SKIFF_STATE", &env_file)],
            &list
        )),
        ["from-env"]
    );
    let with_flag = ["--json", "--state", flag.to_str().unwrap(), "list-nodes"];
    assert_eq!(
        listed(&bare(&home, &[("SKIFF_STATE", &env_file)], &with_flag)),
        ["from-flag"]
    );
}

/// `-q` keeps errors and data but drops status lines; `--color always` colours even
/// into a pipe, `never` and the default (no terminal) do not; NO_COLOR wins over auto.
#[test]
fn quiet_and_color_flags_do_what_readme_says() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().to_path_buf();
    let state = t.path().join("cluster.toml");
    let s = state.to_str().unwrap();
    let out = bare(
        &home,
        &[],
        &["--state", s, "init", "loud", "--runtime", "static"],
    );
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Created"));
    let out = bare(
        &home,
        &[],
        &["-q", "--state", s, "init", "calm", "--runtime", "static"],
    );
    ok(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "-q printed status"
    );
    assert!(
        home.join("calm/app.toml").is_file(),
        "-q changed what the command does"
    );
    // errors stay under -q
    let out = bare(&home, &[], &["-q", "--state", s, "versions", "nope.test"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.test"));
    let escape = |out: &Output| out.stderr.contains(&0x1b);
    let err = ["--state", s, "versions", "nope.test"];
    let with = |flag: &str| {
        let mut a = vec!["--color", flag];
        a.extend(err);
        bare(&home, &[], &a)
    };
    assert!(escape(&with("always")), "--color always printed no colour");
    assert!(!escape(&with("never")), "--color never printed colour");
    assert!(
        !escape(&bare(&home, &[], &err)),
        "colour into a pipe by default"
    );
    let no_color = t.path().join("x");
    assert!(!escape(&bare(&home, &[("NO_COLOR", &no_color)], &err)));
}

/// On a node: `keep = 2` keeps two releases; a 3xx at the health path counts as healthy;
/// a health check slower than `[health] timeout` fails the deploy with the live version
/// serving; and the human output of `update` and `versions` says what happened.
#[test]
fn keep_health_redirects_and_timeouts_and_human_output() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = python_app(&env, "claims");
    let toml = dir.join("app.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(
        text.contains("path = \"/health\"\ntimeout = \"30s\""),
        "{text}"
    );
    std::fs::write(
        &toml,
        format!(
            "keep = 2\n{}",
            text.replace("path = \"/health\"", "path = \"/moved\"")
        ),
    )
    .unwrap();
    edit(
        &dir.join("app.py"),
        "def application(environ, start_response):",
        "def application(environ, start_response):\n    if environ.get(\"PATH_INFO\") == \"/moved\":\n        start_response(\"302 Found\", [(\"Location\", \"/\"), (\"Content-Length\", \"0\")])\n        return [b\"\"]\n    if environ.get(\"PATH_INFO\") == \"/slow\":\n        import time\n        time.sleep(6)",
    );
    let update = || {
        env.skiff()
            .args(["update", dir.to_str().unwrap(), "--node", &node.name])
            .output()
            .unwrap()
    };
    // human output of update: the version and the URLs, on a 302 health answer
    for i in 1..=4 {
        set_message(&dir, &format!("k{i}"));
        let out = update();
        ok(&out);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("http://claims.test/"), "{text}");
        assert!(text.contains(&format!("http://{i}.claims.test/")), "{text}");
    }
    // keep = 2: current and prev only
    assert_eq!(
        releases_on_node(&node, "claims")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["3", "4"]
    );
    // human versions: every kept version, and which is current and prev
    let out = env
        .skiff()
        .args(["versions", "claims.test"])
        .output()
        .unwrap();
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = |v: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(v))
            .map(str::to_string)
    };
    assert!(row("4").is_some_and(|l| l.contains("current")), "{text}");
    assert!(row("3").is_some_and(|l| l.contains("prev")), "{text}");
    assert!(row("2").is_none(), "{text}");
    // a health check slower than its timeout fails the deploy; version 4 keeps serving
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replace(
            "path = \"/moved\"\ntimeout = \"30s\"",
            "path = \"/slow\"\ntimeout = \"2s\"",
        ),
    )
    .unwrap();
    set_message(&dir, "too-slow");
    let out = update();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/slow"), "{err}");
    let (code, body) = get(&node.address, "claims.test", "/");
    assert_eq!(code, 200);
    assert_eq!(field(&body, "message"), "k4");
    env.assert_no_masters();
}
