//! One rollout for every version change (issue 12): `activate` and `rollback` switch every
//! node or none, and check a version they load with the health check it was deployed with.

use std::path::Path;

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{edit, field, fixture, get, ok, run_update};

fn run(env: &TestEnv, args: &[&str]) -> std::process::Output {
    env.skiff().args(args).output().unwrap()
}

/// Both nodes' versions of pyapp.test, and what each node's state calls current.
fn versions_served(nodes: &[&TestNode]) -> Vec<(String, String)> {
    nodes
        .iter()
        .map(|n| {
            let body = get(&n.address, "pyapp.test", "/").1;
            let state: toml::Table =
                toml::from_str(&n.exec("cat /var/lib/skiff/state.toml")).unwrap();
            let current = state["apps"]["pyapp"]["current"].as_integer().unwrap();
            (field(&body, "version").to_string(), current.to_string())
        })
        .collect()
}

/// A node that refuses its switch (a broken NGINX file planted there after everything was
/// checked) leaves both nodes, their states and cluster.toml on the old version, for
/// rollback (a map flip) and for activate (a version loaded and checked first).
#[test]
fn rollback_and_activate_switch_every_node_or_none() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let a = TestNode::launch_set_up(&env);
    let b = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    let deploy = |dir: &Path| {
        ok(&env
            .skiff()
            .args(["update"])
            .arg(dir)
            .args(["--node", &a.name, "--node", &b.name])
            .output()
            .unwrap());
    };
    for message in ["one", "two", "three"] {
        edit(
            &dir.join("app.py"),
            "MESSAGE = \"",
            &format!("MESSAGE = \"{message}-"),
        );
        deploy(&dir);
    }
    let three = vec![("3".to_string(), "3".to_string()); 2];
    assert_eq!(versions_served(&[&a, &b]), three);

    // b's NGINX refuses any reload: rollback (a warm slot, no trial) must not leave a on 2.
    // The plant goes in once both nodes are locked and checked: a file NGINX reads only
    // when the routes are installed (a map include the switch tests and reloads).
    b.exec("echo 'broken;;' > /etc/nginx/skiff-routes.map.d-planted && ln -sf /etc/nginx/skiff-routes.map.d-planted /etc/nginx/conf.d/zz-planted.conf");
    let out = run(&env, &["rollback", "pyapp.test"]);
    assert!(!out.status.success(), "rollback passed with b broken");
    assert_eq!(
        versions_served(&[&a, &b]),
        three,
        "nodes disagree after a refused rollback"
    );
    assert_eq!(env.cluster().apps["pyapp.test"].current, Some(3));
    assert_eq!(a.exec("ls -A /var/lib/skiff/locks/ | wc -l").trim(), "0");
    assert_eq!(b.exec("ls -A /var/lib/skiff/locks/ | wc -l").trim(), "0");

    // activate 1 (runs in no slot: loaded and checked on both nodes first); the trial's
    // own `nginx -t` finds b broken before anything switches
    let out = run(&env, &["activate", "pyapp.test", "1"]);
    assert!(!out.status.success(), "activate passed with b broken");
    assert_eq!(versions_served(&[&a, &b]), three);
    for n in [&a, &b] {
        assert_eq!(
            n.exec("ls /srv/skiff/slots/python/*/slot.json | wc -l")
                .trim(),
            "2",
            "{}: only current and prev hold a slot",
            n.name
        );
    }

    b.exec("rm /etc/nginx/conf.d/zz-planted.conf");
    ok(&run(&env, &["rollback", "pyapp.test"]));
    assert_eq!(
        versions_served(&[&a, &b]),
        vec![("2".to_string(), "2".to_string()); 2]
    );
    ok(&run(&env, &["activate", "pyapp.test", "1"]));
    assert_eq!(
        versions_served(&[&a, &b]),
        vec![("1".to_string(), "1".to_string()); 2]
    );
    assert_eq!(env.cluster().apps["pyapp.test"].current, Some(1));
}

/// `activate` of a version no slot runs checks it with its own `[health]` path and
/// timeout, not `/`: this app answers 500 at `/` while loading, and is healthy at its
/// configured path only.
#[test]
fn activate_checks_a_loaded_version_with_its_own_health_path() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    // `/` fails until the app has answered its health path once
    edit(
        &dir.join("app.py"),
        "    path = environ.get(\"PATH_INFO\", \"/\")\n",
        "    path = environ.get(\"PATH_INFO\", \"/\")\n    global HEALTHY\n    if path == \"/health\":\n        HEALTHY = True\n    elif not globals().get(\"HEALTHY\"):\n        start_response(\"500 Internal Server Error\", [(\"Content-Type\", \"text/plain\")])\n        return [b\"not ready\\n\"]\n",
    );
    for message in ["one", "two", "three"] {
        edit(
            &dir.join("app.py"),
            "MESSAGE = \"",
            &format!("MESSAGE = \"{message}-"),
        );
        ok(&run_update(&env, &dir, &node));
    }
    let out = run(&env, &["activate", "pyapp.test", "1"]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running; loading it"));
    let (code, body) = get(&node.address, "pyapp.test", "/");
    assert_eq!(code, 200, "{body}");
    assert_eq!(field(&body, "version"), "1", "{body}");
}

/// On a terminal, `update` shows a live line per node (its step and time, redrawn in
/// place); without one, no escape codes at all.
#[test]
fn update_shows_live_node_lines_on_a_terminal_only() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    let plain = env
        .skiff()
        .env_remove("NO_COLOR")
        .args(["update"])
        .arg(&dir)
        .args(["--node", &node.name])
        .output()
        .unwrap();
    ok(&plain);
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(
        !stderr.contains('\x1b'),
        "escape codes without a terminal: {stderr:?}"
    );
    assert!(!stderr.contains('\r'), "{stderr:?}");

    // under a pseudo-terminal (util-linux `script`)
    edit(&dir.join("app.py"), "MESSAGE = \"", "MESSAGE = \"tty-");
    let skiff = env!("CARGO_BIN_EXE_skiff");
    let line = format!(
        "{skiff} --state {} update {} --node {}",
        env.state.display(),
        dir.display(),
        node.name
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("HOME", &env.home)
        .env_remove("NO_COLOR")
        .env_remove("SKIFF_STATE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // a live line is redrawn in place ("\r" + clear line); status lines never are
    assert!(
        text.contains("\r\x1b[2K"),
        "no live lines on a terminal: {text:?}"
    );
    assert!(
        text.contains(&format!("{} sync (", node.name)),
        "the node's line shows its step: {text:?}"
    );
    assert!(text.contains("Deployed"), "{text:?}");
}

/// `setup-node` on a terminal shows a live line for the node (redrawn in place); without
/// one, no escape codes.
#[test]
fn setup_node_shows_a_live_line_on_a_terminal_only() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let plain = env
        .skiff()
        .env_remove("NO_COLOR")
        .args(["setup-node", &node.name])
        .output()
        .unwrap();
    ok(&plain);
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    let skiff = env!("CARGO_BIN_EXE_skiff");
    let line = format!(
        "{skiff} --state {} setup-node {}",
        env.state.display(),
        node.name
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("HOME", &env.home)
        .env_remove("NO_COLOR")
        .env_remove("SKIFF_STATE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\r\x1b[2K") && text.contains(&format!("{} connecting (", node.name)),
        "no live line on a terminal: {text:?}"
    );
    assert!(text.contains("Finished"), "{text:?}");
}

/// `skiff history HOST`: every run in order, failed ones with their reason, and the app
/// folder's git commit (marked dirty when it had uncommitted changes).
#[test]
fn history_logs_every_run_in_order_with_its_result() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {:?}", out);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "first"]);
    let commit = git(&["rev-parse", "HEAD"]);
    let update = || {
        env.skiff()
            .args(["update"])
            .arg(&dir)
            .args(["--node", &node.name])
            .output()
            .unwrap()
    };
    ok(&update());
    for message in ["two", "three"] {
        edit(
            &dir.join("app.py"),
            "MESSAGE = \"",
            &format!("MESSAGE = \"{message}-"),
        );
        ok(&update());
    }
    // a version whose build fails
    let toml = std::fs::read_to_string(dir.join("app.toml")).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        format!("{toml}\n[build]\ncommands = [\"exit 7\"]\n"),
    )
    .unwrap();
    assert!(!update().status.success());
    ok(&env
        .skiff()
        .args(["rollback", "pyapp.test"])
        .output()
        .unwrap());

    let out = env
        .skiff()
        .args(["--json", "history", "pyapp.test"])
        .output()
        .unwrap();
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = report["runs"].as_array().unwrap();
    let summary: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            (
                r["verb"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("update", "ok"),
        ("update", "ok"),
        ("update", "ok"),
        ("update", "failed"),
        ("rollback", "ok"),
    ];
    assert_eq!(
        summary,
        want.iter()
            .map(|(v, r)| (v.to_string(), r.to_string()))
            .collect::<Vec<_>>(),
        "{report}"
    );
    assert_eq!(runs[0]["version"], 1);
    assert_eq!(runs[0]["commit"], commit.as_str());
    assert_eq!(runs[0]["dirty"], false);
    assert_eq!(runs[1]["dirty"], true, "an edited checkout is dirty");
    assert!(
        runs[3]["reason"].as_str().unwrap().contains("build"),
        "{report}"
    );
    assert!(runs[0]["who"].as_str().unwrap().contains('@'));
    let text = env
        .skiff()
        .args(["history", "pyapp.test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("failed") && text.contains("rollback"),
        "{text}"
    );
}

/// `skiff diff DIR`: exactly the files edited and added (a diff of the small text one),
/// the `[env]` names changed, and the node left as it was.
#[test]
fn diff_lists_what_update_would_change_and_changes_nothing() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    ok(&run_update(&env, &dir, &node));
    let diff = || {
        env.skiff()
            .args(["--json", "diff"])
            .arg(&dir)
            .args(["--node", &node.name])
            .output()
            .unwrap()
    };
    let out = diff();
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["files"], serde_json::json!([]), "{report}");
    assert_eq!(report["current"], 1);

    edit(&dir.join("app.py"), "MESSAGE = \"", "MESSAGE = \"edited-");
    std::fs::write(dir.join("notes.txt"), "new file\n").unwrap();
    edit(
        &dir.join("app.toml"),
        "[env]\n",
        "[env]\nNEW_SETTING = \"x\"\n",
    );
    let before = node.exec("ls /srv/skiff/apps/pyapp/releases; cat /var/lib/skiff/state.toml");
    let out = diff();
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<(String, String)> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["change"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("changed".to_string(), "app.py".to_string()),
            ("changed".to_string(), "app.toml".to_string()),
            ("added".to_string(), "notes.txt".to_string()),
        ],
        "{report}"
    );
    let app_py = &report["files"][0]["diff"];
    assert!(
        app_py.as_str().unwrap().contains("+MESSAGE = \"edited-"),
        "{report}"
    );
    assert_eq!(
        report["env"],
        serde_json::json!(["+NEW_SETTING"]),
        "{report}"
    );
    let text = env
        .skiff()
        .args(["diff"])
        .arg(&dir)
        .args(["--node", &node.name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("M app.py") && text.contains("A notes.txt"),
        "{text}"
    );
    // nothing changed on the node
    assert_eq!(
        node.exec("ls /srv/skiff/apps/pyapp/releases; cat /var/lib/skiff/state.toml"),
        before
    );
    assert_eq!(node.exec("ls -A /var/lib/skiff/locks | wc -l").trim(), "0");
}

/// `skiff status`: a healthy app exits 0; after the node's own state is changed by hand
/// (another version made current there), status names the drift and the fix, and exits 1.
#[test]
fn status_reports_health_and_drift_from_cluster_toml() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    for message in ["one", "two"] {
        edit(
            &dir.join("app.py"),
            "MESSAGE = \"",
            &format!("MESSAGE = \"{message}-"),
        );
        ok(&run_update(&env, &dir, &node));
    }
    let out = env.skiff().args(["--json", "status"]).output().unwrap();
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["type"], "status", "{report}");
    let n = &report["apps"][0]["nodes"][0];
    assert_eq!(n["current"], 2, "{report}");
    assert_eq!(n["healthy"], true, "{report}");
    assert!(n["http"].as_str().unwrap().starts_with('2'), "{report}");
    assert_eq!(n["drift"], serde_json::json!([]), "{report}");
    assert!(n["disk_kib"].as_u64().unwrap() > 0, "{report}");

    // by hand on the node: version 1 current again (state.toml only)
    node.exec(
        "sed -i 's/^current = 2$/current = 1/; s/^prev = 1$/prev = 2/' /var/lib/skiff/state.toml",
    );
    let out = env.skiff().args(["status", "pyapp.test"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("drift: cluster.toml says version 2 is current, the node serves 1"),
        "{text}"
    );
    assert!(
        text.contains("fix: `skiff activate pyapp.test 1`"),
        "{text}"
    );
}
