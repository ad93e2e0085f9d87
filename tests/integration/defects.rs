//! Regression tests for what a hostile tester found (issue 10): two apps deployed at once,
//! deploys killed at any moment, signals, secrets on the node, build timeouts and
//! orphaned builds, host names that shadow another app's version hosts, and release
//! folders no state names. Each failed on the code before its fix.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{
    deploy, edit, field, fixture, get, ok, releases_on_node, run_update, spawn_update, wait_until,
};

/// A copy of the Python fixture as app `name` at `name.test`, printing `marker`.
pub fn python_app(env: &TestEnv, name: &str) -> PathBuf {
    let src = fixture(env, "python");
    let dir = env.root().join(format!("app-{name}"));
    std::fs::rename(&src, &dir).unwrap();
    edit(
        &dir.join("app.toml"),
        "name = \"pyapp\"",
        &format!("name = \"{name}\""),
    );
    edit(
        &dir.join("app.toml"),
        "\"pyapp.test\"",
        &format!("\"{name}.test\""),
    );
    dir
}

/// Sets the fixture's MESSAGE to `marker` (whatever it was).
pub fn set_message(dir: &Path, marker: &str) {
    let file = dir.join("app.py");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("MESSAGE = "))
        .unwrap()
        .to_string();
    std::fs::write(
        &file,
        text.replacen(&line, &format!("MESSAGE = \"{marker}\""), 1),
    )
    .unwrap();
}

/// `skiff versions HOST --json` as JSON.
fn versions(env: &TestEnv, host: &str) -> serde_json::Value {
    let out = env
        .skiff()
        .args(["--json", "versions", host])
        .output()
        .unwrap();
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The node's state.toml, parsed.
pub fn node_state(node: &TestNode) -> toml::Table {
    toml::from_str(&node.exec("cat /var/lib/skiff/state.toml")).unwrap()
}

fn current_on_node(state: &toml::Table, app: &str) -> Option<i64> {
    state["apps"][app]
        .get("current")
        .and_then(|v| v.as_integer())
}

/// Both apps at once, 5 rounds: each round both report their new version, both HOSTs
/// serve their own latest code, node state, `versions` and cluster.toml agree, and no
/// slot is shared.
#[test]
fn two_apps_deployed_at_once_never_corrupt_each_other() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let apps = ["alpha", "beta"];
    let dirs: Vec<PathBuf> = apps.iter().map(|a| python_app(&env, a)).collect();
    for round in 1..=5 {
        for (app, dir) in apps.iter().zip(&dirs) {
            set_message(dir, &format!("{app}-round-{round}"));
        }
        let children: Vec<_> = dirs
            .iter()
            .map(|dir| spawn_update(&env, dir, &node, true))
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let state = node_state(&node);
        let cluster = env.cluster();
        let mut slots_seen = Vec::new();
        for (app, out) in apps.iter().zip(&outs) {
            assert!(
                out.status.success(),
                "round {round}, {app}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let n = report["version"].as_i64().unwrap();
            assert_eq!(n, round, "round {round}, {app}: {report}");
            let host = format!("{app}.test");
            let (code, body) = get(&node.address, &host, "/");
            assert_eq!(code, 200, "round {round}, {app}: {body}");
            assert_eq!(
                field(&body, "message"),
                format!("{app}-round-{round}"),
                "round {round}: {host} serves its own latest code"
            );
            assert_eq!(field(&body, "version"), n.to_string(), "{body}");
            assert_eq!(current_on_node(&state, app), Some(n), "node state: {state}");
            assert_eq!(cluster.apps[&host].current, Some(n as u32), "cluster.toml");
            let v = versions(&env, &host);
            assert_eq!(v["current"].as_i64(), Some(n), "versions: {v}");
            for row in v["versions"].as_array().unwrap() {
                if let Some(slot) = row["slot"].as_str() {
                    assert!(
                        !slots_seen.contains(&slot.to_string()),
                        "round {round}: slot {slot} is shared: {state}"
                    );
                    slots_seen.push(slot.to_string());
                }
            }
        }
        assert_eq!(node.exec("ls -A /var/lib/skiff/locks/ | wc -l").trim(), "0");
    }
}

/// `skiff update` killed with SIGKILL at 12 moments spread over its run: after each the
/// live version serves, and the next update succeeds and serves exactly its own code.
#[test]
fn an_update_killed_at_any_moment_leaves_the_live_version_and_the_next_one_serves_its_own_code() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = python_app(&env, "crash");
    set_message(&dir, "base");
    deploy(&env, &node, &dir);
    // how long one update runs, to spread the kills over it
    set_message(&dir, "timing");
    let start = Instant::now();
    deploy(&env, &node, &dir);
    let run = start.elapsed();
    let mut live = "timing".to_string();
    for i in 1..=12u32 {
        let at = run.mul_f64(f64::from(i) / 12.0) + Duration::from_millis(20);
        set_message(&dir, &format!("killed-{i}"));
        let mut child = spawn_update(&env, &dir, &node, false);
        std::thread::sleep(at);
        let _ = child.kill();
        child.wait().unwrap();
        // the kill may have come after the switch: then the killed run's code is live
        let (code, body) = get(&node.address, "crash.test", "/");
        assert_eq!(code, 200, "kill {i} at {at:?}: {body}");
        let message = field(&body, "message").to_string();
        assert!(
            message == live || message == format!("killed-{i}"),
            "kill {i} at {at:?}: serves {message}, live was {live}"
        );
        set_message(&dir, &format!("after-{i}"));
        let out = run_update(&env, &dir, &node);
        assert!(
            out.status.success(),
            "kill {i} at {at:?}: the next update failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (code, body) = get(&node.address, "crash.test", "/");
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            field(&body, "message"),
            format!("after-{i}"),
            "kill {i} at {at:?}: HOST serves the new update's own code"
        );
        live = format!("after-{i}");
        // nothing of the dead run is left: every release folder is in the state, and
        // every loaded slot is one the state names
        let state = node_state(&node);
        let kept: Vec<String> = state["apps"]["crash"]["releases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["number"].as_integer().unwrap().to_string())
            .collect();
        let on_disk = releases_on_node(&node, "crash");
        let on_disk: Vec<&str> = on_disk.split_whitespace().collect();
        assert_eq!(on_disk, kept, "kill {i}: release folders no state names");
        let loaded = node.exec("ls /srv/skiff/slots/python/*/slot.json | wc -l");
        let in_state = state
            .get("slots")
            .and_then(|s| s.as_table())
            .map_or(0, |t| t.len());
        assert_eq!(loaded.trim(), in_state.to_string(), "kill {i}: {state}");
    }
}

/// SIGTERM and SIGHUP get the same clean abort as Ctrl-C: exit 130, the live version
/// serving, no release, lock or loaded slot left.
#[test]
fn sigterm_and_sighup_abort_cleanly_like_ctrl_c() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    deploy(&env, &node, &dir);
    edit(
        &dir.join("app.py"),
        "        body = b\"ok\\n\"",
        "        import time\n        time.sleep(4)\n        body = b\"ok\\n\"",
    );
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        let child = spawn_update(&env, &dir, &node, false);
        std::thread::sleep(Duration::from_millis(1500));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{signal}: {stderr}");
        let (code, body) = get(&node.address, "pyapp.test", "/");
        assert_eq!(code, 200, "{body}");
        assert_eq!(field(&body, "version"), "1", "{body}");
        assert_eq!(releases_on_node(&node, "pyapp").trim(), "1", "{signal}");
        assert_eq!(node.exec("ls -A /var/lib/skiff/locks/ | wc -l").trim(), "0");
        assert_eq!(
            node.exec("ls /srv/skiff/slots/python/*/slot.json | wc -l")
                .trim(),
            "1",
            "{signal}: only the live version's slot runs anything"
        );
    }
    env.assert_no_masters();
}

/// `[env]` values never appear in a process's arguments on the node (a build runs long
/// enough to look), and the files holding them are not world-readable.
#[test]
fn env_values_stay_out_of_argv_and_world_readable_files() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    edit(
        &dir.join("app.toml"),
        "GREETING_STYLE = \"plain\"",
        "GREETING_STYLE = \"plain\"\nAPI_TOKEN = \"s3cr3t-0f-th3-app\"\n[build]\ncommands = [\"sleep 3\"]",
    );
    let child = spawn_update(&env, &dir, &node, false);
    // look at every process's arguments while the build sleeps
    let mut seen_build = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !seen_build {
        let ps = node.exec("ps -eo args");
        assert!(
            !ps.contains("s3cr3t-0f-th3-app"),
            "a secret is in a process's argv on the node:\n{ps}"
        );
        seen_build = ps.lines().any(|l| l.trim() == "sleep 3");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    ok(&out);
    assert!(seen_build, "the build was never seen running");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cr3t"));
    let (_, body) = get(&node.address, "pyapp.test", "/");
    assert_eq!(field(&body, "version"), "1", "{body}");
    // every file on the node that holds the value: not readable by others
    let holders = node.exec(
        "grep -rl s3cr3t-0f-th3-app /srv/skiff /var/lib/skiff /etc/skiff 2>/dev/null || true",
    );
    assert!(!holders.trim().is_empty(), "the value reached the node");
    for file in holders.lines() {
        let read = node.exec_output(&format!("su -s /bin/sh nobody -c 'cat {file}'"));
        assert!(
            !read.status.success(),
            "{file} is readable by every user of the node"
        );
    }
}

/// A build command that runs past `[build] timeout` is stopped and fails the deploy; a
/// build orphaned by a killed skiff is stopped by the next run.
#[test]
fn builds_time_out_and_an_orphaned_build_is_stopped() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "static");
    deploy(&env, &node, &dir);
    let toml = dir.join("app.toml");
    let base = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!("{base}\n[build]\ncommands = [\"sleep 41\"]\ntimeout = \"2s\"\n"),
    )
    .unwrap();
    let start = Instant::now();
    let out = run_update(&env, &dir, &node);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("timed out after 2s"), "{stderr}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(get(&node.address, "site.test", "/").0, 200);
    assert_eq!(node.exec("pgrep -fc '[s]leep 41' || true").trim(), "0");

    // skiff killed during a long build: the next run stops the orphan
    std::fs::write(
        &toml,
        format!("{base}\n[build]\ncommands = [\"sleep 43\"]\n"),
    )
    .unwrap();
    let mut child = spawn_update(&env, &dir, &node, false);
    wait_until(Duration::from_secs(20), || {
        node.exec("pgrep -fc '[s]leep 43' || true").trim() != "0"
    });
    let _ = child.kill();
    child.wait().unwrap();
    std::fs::write(&toml, &base).unwrap();
    let out = run_update(&env, &dir, &node);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        node.exec("pgrep -fc '[s]leep 43' || true").trim(),
        "0",
        "the orphaned build still runs: {stderr}"
    );
}

/// A host name that is another app's `prev.HOST` or `N.HOST` is refused (it would never
/// be routed to the new app).
#[test]
fn a_host_name_that_is_another_apps_version_host_is_refused() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let site = fixture(&env, "static");
    deploy(&env, &node, &site);
    let other = python_app(&env, "other");
    for host in ["prev.site.test", "1.site.test", "7.site.test"] {
        let out = env
            .skiff()
            .args(["update"])
            .arg(&other)
            .args(["--node", &node.name, "--hostname", host])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{host} was accepted: {stderr}");
        assert!(stderr.contains(host) && stderr.contains("site"), "{stderr}");
    }
    assert!(
        get(&node.address, "site.test", "/")
            .1
            .contains("MESSAGE=hello")
    );
}

/// Release folders no state names (a kill between switch and finish) are removed by
/// `clean` and by the next update.
#[test]
fn release_folders_no_state_names_are_removed() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "static");
    deploy(&env, &node, &dir);
    let plant = |n: u32| {
        node.exec(&format!(
            "cd /srv/skiff/apps/site && cp -a releases/1 releases/{n} && mkdir -p meta && echo '{{}}' > meta/{n}.json && chown -R skiff: releases/{n} meta"
        ));
    };
    plant(7);
    let out = env
        .skiff()
        .args(["clean", "site.test", "--keep", "5"])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(releases_on_node(&node, "site").trim(), "1");
    assert_eq!(node.exec("ls /srv/skiff/apps/site/meta/").trim(), "1.json");
    plant(8);
    let report = deploy(&env, &node, &dir);
    assert_eq!(
        report["version"], 9,
        "a number found on disk is never reused"
    );
    assert_eq!(releases_on_node(&node, "site").trim(), "1 9");
}

/// `destroy-app HOST` removes the app from the node and cluster.toml and frees its slots;
/// the other app keeps serving, and a new app can use the freed slot.
#[test]
fn destroy_app_frees_what_the_app_held() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let keep = python_app(&env, "keep");
    let gone = python_app(&env, "gone");
    deploy(&env, &node, &keep);
    deploy(&env, &node, &gone);
    set_message(&gone, "second");
    deploy(&env, &node, &gone);
    let held: Vec<String> = versions(&env, "gone.test")["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["slot"].as_str().map(str::to_string))
        .collect();
    assert_eq!(held.len(), 2, "current and prev hold a slot each");
    node.exec("echo 'SECRET=x' > /etc/skiff/env/gone.env && chown skiff /etc/skiff/env/gone.env");

    // without a terminal it asks for --yes and changes nothing
    let out = env
        .skiff()
        .args(["destroy-app", "gone.test"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(get(&node.address, "gone.test", "/").0, 200);

    let out = env
        .skiff()
        .args(["--json", "--yes", "destroy-app", "gone.test"])
        .output()
        .unwrap();
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut freed: Vec<String> = report["freed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    freed.sort();
    let mut held = held;
    held.sort();
    assert_eq!(freed, held);
    for host in ["gone.test", "prev.gone.test", "2.gone.test"] {
        assert_eq!(get(&node.address, host, "/").0, 404, "{host} still answers");
    }
    assert_eq!(get(&node.address, "keep.test", "/").0, 200);
    assert!(!env.cluster().apps.contains_key("gone.test"));
    assert!(
        !node_state(&node)["apps"]
            .as_table()
            .unwrap()
            .contains_key("gone")
    );
    assert_eq!(
        node.exec("ls -d /srv/skiff/apps/gone /etc/skiff/env/gone.env 2>/dev/null | wc -l")
            .trim(),
        "0"
    );
    for slot in &freed {
        assert_eq!(
            node.exec(&format!(
                "ls /srv/skiff/slots/python/{slot}/slot.json 2>/dev/null | wc -l"
            ))
            .trim(),
            "0",
            "{slot} is idle"
        );
    }
    assert_eq!(node.exec("ls -A /var/lib/skiff/locks/ | wc -l").trim(), "0");
    // the app can come back, from version 1
    let report = deploy(&env, &node, &gone);
    assert_eq!(report["version"], 1);
}

/// A connection lost in the middle of the build fails the deploy with an error that
/// never prints an `[env]` value (the values travel on stdin, not on a command line),
/// `--json` or not, and the next update works.
#[test]
fn a_dropped_connection_never_prints_env_values() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "static");
    deploy(&env, &node, &dir);
    let toml = dir.join("app.toml");
    let base = std::fs::read_to_string(&toml).unwrap();
    let secret = "tok3n-".repeat(40);
    for json in [false, true] {
        std::fs::write(
            &toml,
            format!("{base}\n[env]\nAPI_TOKEN = \"{secret}\"\n[build]\ncommands = [\"sleep 5\"]\n"),
        )
        .unwrap();
        assert!(std::fs::read_to_string(&toml).unwrap().contains(&secret));
        let child = spawn_update(&env, &dir, &node, json);
        wait_until(Duration::from_secs(20), || {
            node.exec("pgrep -fc '[s]leep 5' || true").trim() != "0"
        });
        for pid in env.ssh_masters() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "the deploy passed: {text}");
        assert!(!text.contains("tok3n-"), "a value is printed: {text}");
        std::fs::write(&toml, &base).unwrap();
        let out = run_update(&env, &dir, &node);
        ok(&out);
    }
}

/// A large `[env]` value (60 KB) reaches the build and the app; one over the limit is
/// refused before anything is sent, naming the key (it used to fail as a broken pipe).
#[test]
fn large_env_values_deploy_and_too_large_ones_are_refused_up_front() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "static");
    let toml = dir.join("app.toml");
    let base = std::fs::read_to_string(&toml).unwrap();
    let write = |size: usize| {
        std::fs::write(
            &toml,
            format!(
                "{base}\n[env]\nBIG = \"{}\"\n[build]\ncommands = [\"printenv BIG | wc -c > static/big.txt\"]\n",
                "b".repeat(size)
            ),
        )
        .unwrap();
    };
    write(60_000);
    deploy(&env, &node, &dir);
    let (code, body) = get(&node.address, "site.test", "/big.txt");
    assert_eq!((code, body.trim()), (200, "60001"));
    write(200_000);
    let out = run_update(&env, &dir, &node);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("BIG") && stderr.contains("app.toml"),
        "{stderr}"
    );
}
