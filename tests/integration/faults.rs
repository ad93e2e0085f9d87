//! The fault sweep: `skiff update` (and `skiff config set`) stopped at every named step
//! of its run through a failpoint (`SKIFF_FAILPOINT`, src/failpoint.rs, debug builds
//! only), on an app on two nodes with a request loop on each. After each: every node
//! serves (the old version, or the new one when the kill came after its switch), no
//! request failed, `skiff status` is clean or names the drift with its fix, and the next
//! plain update succeeds with nothing cleaned by hand and leaves no trace of the dead run.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::defects::{node_state, python_app, set_message};
use crate::support::traffic::{Spec, Traffic};
use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{field, get, ok, releases_on_node};

const HOST: &str = "sweep.test";

/// `skiff update DIR --node A --node B` with `SKIFF_FAILPOINT` set to `failpoint` ("" none).
fn update(
    env: &TestEnv,
    dir: &Path,
    nodes: [&TestNode; 2],
    failpoint: &str,
) -> std::process::Output {
    let mut cmd = env.skiff();
    cmd.arg("update")
        .arg(dir)
        .args(["--node", &nodes[0].name, "--node", &nodes[1].name]);
    if !failpoint.is_empty() {
        cmd.env("SKIFF_FAILPOINT", failpoint);
    }
    cmd.output().unwrap()
}

/// The dead skiff's SSH masters go too (a laptop that dies takes its ssh with it).
fn kill_masters(env: &TestEnv) {
    for pid in env.ssh_masters() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Asserts skiff died by SIGKILL at the failpoint `point` (not before, not after its
/// end), then takes its SSH masters down too.
fn killed_there(env: &TestEnv, point: &str, out: &std::process::Output) {
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{point}: skiff was not killed there: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    kill_masters(env);
}

/// What each node serves at HOST: its `message`.
fn messages(nodes: [&TestNode; 2]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| {
            let (code, body) = get(&n.address, HOST, "/");
            assert_eq!(code, 200, "{}: {body}", n.name);
            field(&body, "message").to_string()
        })
        .collect()
}

/// Every release folder on the node is one its state names, and no lock is left.
fn no_traces(node: &TestNode, what: &str) {
    let state = node_state(node);
    let kept: Vec<String> = state["apps"]["sweep"]["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_integer().unwrap().to_string())
        .collect();
    let on_disk = releases_on_node(node, "sweep");
    let on_disk: Vec<&str> = on_disk.split_whitespace().collect();
    assert_eq!(
        on_disk, kept,
        "{what}: {}: release folders no state names",
        node.name
    );
    assert_eq!(
        node.exec("ls -A /var/lib/skiff/locks/ | wc -l").trim(),
        "0",
        "{what}: {}: a lock is left",
        node.name
    );
}

/// `skiff status HOST --json`: (exit code, report).
fn status(env: &TestEnv) -> (Option<i32>, String) {
    let out = env
        .skiff()
        .args(["--json", "status", HOST])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Two set-up nodes with the sweep app deployed on both (message `base`).
fn deployed_on_two_nodes(env: &TestEnv) -> (TestNode<'_>, TestNode<'_>, PathBuf) {
    let a = TestNode::launch_set_up(env);
    let b = TestNode::launch_set_up(env);
    let dir = python_app(env, "sweep");
    set_message(&dir, "base");
    ok(&update(env, &dir, [&a, &b], ""));
    (a, b, dir)
}

#[test]
fn an_update_stopped_at_every_step_leaves_every_node_serving_and_the_next_one_clean() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let (a, b, dir) = deployed_on_two_nodes(&env);
    let nodes = [&a, &b];
    let mut live = "base".to_string();

    // per-node points name a node: the second one, so the first has moved on already
    let points = [
        "update:locked".to_string(),
        format!("sync:round@{}", b.name),
        format!("update:synced@{}", a.name),
        format!("update:prepared@{}", b.name),
        "update:staged".to_string(),
        format!("update:switch@{}", b.name),
        "update:switched".to_string(),
        "update:finished".to_string(),
        "update:recorded".to_string(),
    ];
    for (i, point) in points.iter().enumerate() {
        let loops: Vec<Traffic> = nodes
            .iter()
            .map(|n| {
                let mut spec = Spec::new(&n.address, HOST);
                spec.threads = 1;
                spec.max_time = Duration::from_secs(60);
                Traffic::start(spec)
            })
            .collect();
        let new = format!("killed-{i}");
        set_message(&dir, &new);
        killed_there(&env, point, &update(&env, &dir, nodes, point));
        // every node serves, the old code or (after its switch) the killed run's
        let seen = messages(nodes);
        for (n, m) in nodes.iter().zip(&seen) {
            assert!(
                *m == live || *m == new,
                "{point}: {} serves {m}; live was {live}",
                n.name
            );
        }
        // between the two switches the nodes disagree: status must say so, with a fix
        let (code, report) = status(&env);
        if seen[0] != seen[1] || code != Some(0) {
            assert_ne!(
                code,
                Some(0),
                "{point}: nodes disagree and status is clean: {report}"
            );
            assert!(
                report.contains("drift") || report.contains("\"fix\""),
                "{point}: status names no drift: {report}"
            );
        }
        // the next plain update: no hand work, every node serves its own code
        let next = format!("after-{i}");
        set_message(&dir, &next);
        let out = update(&env, &dir, nodes, "");
        assert!(
            out.status.success(),
            "{point}: the next update failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(messages(nodes), vec![next.clone(), next.clone()], "{point}");
        live = next;
        let (code, report) = status(&env);
        assert_eq!(
            code,
            Some(0),
            "{point}: status after the next update: {report}"
        );
        for n in nodes {
            no_traces(n, point);
        }
        for (n, traffic) in nodes.iter().zip(loops) {
            let report = traffic.stop();
            assert_eq!(
                report.failures(),
                Vec::<String>::new(),
                "{point}: requests to {} failed",
                n.name
            );
        }
    }

    // a rollback killed between the two nodes' switches: they disagree, status says so,
    // a plain rollback refuses (it would split them further), activate puts them together
    let before = env.cluster().apps[HOST].current.unwrap();
    let mut cmd = env.skiff();
    cmd.args(["rollback", HOST])
        .env("SKIFF_FAILPOINT", format!("activate:switch@{}", b.name));
    killed_there(&env, "activate:switch", &cmd.output().unwrap());
    let seen = messages(nodes);
    assert_ne!(seen[0], seen[1], "the kill came between the switches");
    let (code, report) = status(&env);
    assert_ne!(code, Some(0), "{report}");
    let out = env.skiff().args(["rollback", HOST]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("disagree") && err.contains("skiff activate"),
        "{err}"
    );
    assert_eq!(
        messages(nodes),
        seen,
        "a refused rollback changed something"
    );
    let out = env
        .skiff()
        .args(["activate", HOST, &before.to_string()])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(messages(nodes), vec![live.clone(), live.clone()]);
    let (code, report) = status(&env);
    assert_eq!(code, Some(0), "after activate: {report}");

    // a switch refused on the second node after the first switched: the first is put
    // back, so both serve the live version, and nothing drifted
    set_message(&dir, "refused");
    let out = update(
        &env,
        &dir,
        nodes,
        &format!("update:switch@{}=error", b.name),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("failpoint"));
    assert_eq!(messages(nodes), vec![live.clone(), live.clone()]);
    let (code, report) = status(&env);
    assert_eq!(code, Some(0), "after a reverted switch: {report}");
    for n in nodes {
        no_traces(n, "reverted switch");
    }
    env.assert_no_masters();
}

/// `skiff config set` killed after the first node took the change: the live version
/// serves, and running the same command again finishes it on every node.
#[test]
fn a_config_change_stopped_between_nodes_is_finished_by_running_it_again() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let (a, b, _dir) = deployed_on_two_nodes(&env);
    let nodes = [&a, &b];
    let set = |failpoint: &str| {
        let mut cmd = env.skiff();
        cmd.args(["config", HOST, "set", "SWEEP_TOKEN=t1"]);
        if !failpoint.is_empty() {
            cmd.env("SKIFF_FAILPOINT", failpoint);
        }
        cmd.output().unwrap()
    };
    let first = env.cluster().apps[HOST].nodes.iter().min().unwrap().clone();
    killed_there(
        &env,
        "config:applied",
        &set(&format!("config:applied@{first}")),
    );
    assert_eq!(
        messages(nodes),
        vec!["base".to_string(), "base".to_string()]
    );
    let out = set("");
    ok(&out);
    for n in nodes {
        assert_eq!(
            n.exec("grep -c '^SWEEP_TOKEN=t1$' /etc/skiff/env/sweep.env")
                .trim(),
            "1",
            "{}",
            n.name
        );
    }
    let (code, report) = status(&env);
    assert_eq!(code, Some(0), "{report}");
    env.assert_no_masters();
}
