//! Workers (`[processes]`) and cron (`[[cron]]`) on real systemd nodes: they run only for
//! the current version and follow it through update, rollback and activate; a worker
//! that does not stay up fails the deploy; cron runs on one node of the app; a node
//! reboot brings apps and their workers back; nodes without systemd refuse them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{get, ok, wait_until};

const HOST: &str = "jobs.test";
const SHARED: &str = "/srv/skiff-test";

const APP_PY: &str = r#"import os
MESSAGE = open(os.path.join(os.path.dirname(__file__), "message.txt")).read().strip()

def application(environ, start_response):
    cron = environ.get("HTTP_X_SKIFF_CRON", "-")
    if environ.get("PATH_INFO") == "/tasks/tick":
        with open("/srv/skiff-test/webcron", "a") as f:
            f.write("%s %s\n" % (MESSAGE, cron))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("message=%s cron=%s\n" % (MESSAGE, cron)).encode()]
"#;

const TICKER_PY: &str = r#"import os, time
message = open("message.txt").read().strip()
while True:
    with open("/srv/skiff-test/ticks", "a") as f:
        f.write("%s %d %.2f\n" % (message, os.getpid(), time.time()))
    time.sleep(0.3)
"#;

const WORKER: &str = "[processes.ticker]\ncommand = \"python3 ticker.py\"\nstop_timeout = \"5s\"\n";
const CRON: &str = "[[cron]]\ncalendar = \"*:*:0/2\"\npath = \"/tasks/tick\"\n\n[[cron]]\ncalendar = \"*:*:1/2\"\ncommand = \"echo cmd-$(cat message.txt) >> /srv/skiff-test/cmdcron\"\n";

fn app(env: &TestEnv, sections: &str) -> PathBuf {
    let dir = env.root().join("jobs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        format!(
            "name = \"jobs\"\nruntime = \"python\"\nhostnames = [\"{HOST}\"]\n[python]\nwsgi = \"app:application\"\n{sections}"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("app.py"), APP_PY).unwrap();
    std::fs::write(dir.join("ticker.py"), TICKER_PY).unwrap();
    std::fs::write(dir.join("message.txt"), "one\n").unwrap();
    dir
}

fn set_sections(dir: &Path, sections: &str) {
    let text = std::fs::read_to_string(dir.join("app.toml")).unwrap();
    let head = text.split("[python]").next().unwrap();
    std::fs::write(
        dir.join("app.toml"),
        format!("{head}[python]\nwsgi = \"app:application\"\n{sections}"),
    )
    .unwrap();
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Messages (and pids) of the ticks written after `since`.
fn ticks_since(node: &TestNode, since: f64) -> Vec<(String, String)> {
    node.exec(&format!("cat {SHARED}/ticks 2>/dev/null || true"))
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let t: f64 = w.get(2)?.parse().ok()?;
            (t > since).then(|| (w[0].to_string(), w[1].to_string()))
        })
        .collect()
}

/// Waits for the worker to settle, then which versions wrote ticks in the next 1.5 s.
fn writers(node: &TestNode) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(500));
    let since = now();
    std::thread::sleep(Duration::from_millis(1500));
    let mut v: Vec<String> = ticks_since(node, since)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    v.sort();
    v.dedup();
    v
}

fn run(env: &TestEnv, args: &[&str]) -> std::process::Output {
    env.skiff().args(args).output().unwrap()
}

fn update(env: &TestEnv, dir: &Path, nodes: &[&TestNode]) -> std::process::Output {
    let mut cmd = env.skiff();
    cmd.arg("update").arg(dir);
    for n in nodes {
        cmd.args(["--node", &n.name]);
    }
    cmd.output().unwrap()
}

fn prepare_shared(node: &TestNode) {
    node.exec(&format!("mkdir -p {SHARED} && chmod 1777 {SHARED}"));
}

fn lines_after(node: &TestNode, file: &str, skip: usize) -> Vec<String> {
    node.exec(&format!("cat {SHARED}/{file} 2>/dev/null || true"))
        .lines()
        .skip(skip)
        .map(str::to_string)
        .collect()
}

fn count(node: &TestNode, file: &str) -> usize {
    lines_after(node, file, 0).len()
}

#[test]
fn workers_and_cron_follow_the_current_version() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let a = TestNode::launch_set_up(&env);
    let b = TestNode::launch_set_up(&env);
    for n in [&a, &b] {
        prepare_shared(n);
    }
    let (cron_node, other) = if a.name < b.name { (&a, &b) } else { (&b, &a) };
    let dir = app(&env, &format!("{WORKER}\n{CRON}"));
    ok(&update(&env, &dir, &[&a, &b]));
    std::fs::write(dir.join("message.txt"), "two\n").unwrap();
    ok(&update(&env, &dir, &[&a, &b]));
    for n in [&a, &b] {
        assert_eq!(
            writers(n),
            ["two"],
            "{}: only version 2's worker writes",
            n.name
        );
        assert_eq!(
            n.exec("systemctl is-enabled skiff_jobs_2_ticker@1.service")
                .trim(),
            "enabled"
        );
    }

    // cron: on one node only, as the current version; the web cron's request carries the
    // mark, a request from outside that sends the header does not
    assert!(
        wait_until(Duration::from_secs(8), || {
            lines_after(cron_node, "webcron", 0)
                .iter()
                .any(|l| l == "two 1")
                && lines_after(cron_node, "cmdcron", 0)
                    .iter()
                    .any(|l| l == "cmd-two")
        }),
        "no cron run on {}: web {:?}, command {:?}, timers:\n{}",
        cron_node.name,
        lines_after(cron_node, "webcron", 0),
        lines_after(cron_node, "cmdcron", 0),
        cron_node.exec(
            "systemctl list-timers --all --no-pager; journalctl -u 'skiff_jobs_*' -n 20 --no-pager"
        )
    );
    // versions shows each version's workers and the cron jobs with their last result
    // (a job every 2 s may be running when versions looks: wait, bounded, for a moment
    // both last runs are finished)
    let versions = || {
        let out = run(&env, &["--json", "versions", HOST]);
        ok(&out);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let mut report = versions();
    for _ in 0..20 {
        let done = report["timers"].as_array().is_some_and(|t| {
            t.iter()
                .all(|t| t["result"] != "running" && t["result"] != "-")
        });
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        report = versions();
    }
    let v = &report["versions"];
    assert_eq!(v[0]["workers"][0]["name"], "ticker@1", "{report}");
    assert_eq!(v[0]["workers"][0]["state"], "stopped", "{report}");
    assert_eq!(v[1]["workers"][0]["state"], "active (running)", "{report}");
    assert_eq!(report["timers_node"], cron_node.name.as_str(), "{report}");
    let timers = report["timers"].as_array().unwrap();
    assert_eq!(timers.len(), 2, "{report}");
    for t in timers {
        assert_eq!(t["result"], "success", "{report}");
    }
    let out = run(&env, &["versions", HOST]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("worker ticker@1: active (running)"), "{text}");
    assert!(
        text.contains(&format!("cron (on node {}):", cron_node.name)),
        "{text}"
    );
    assert_eq!(
        count(other, "webcron"),
        0,
        "web cron ran on {} too",
        other.name
    );
    assert_eq!(
        count(other, "cmdcron"),
        0,
        "command cron ran on {} too",
        other.name
    );
    let outside = std::process::Command::new("curl")
        .args([
            "-s",
            "-m",
            "10",
            "-H",
            &format!("Host: {HOST}"),
            "-H",
            "X-Skiff-Cron: 1",
        ])
        .arg(format!("http://{}/", cron_node.address))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&outside.stdout);
    assert!(
        body.contains("cron=-"),
        "an outside request passed as cron: {body}"
    );

    // rollback: version 1's worker and timers, on both nodes
    ok(&run(&env, &["rollback", HOST]));
    for n in [&a, &b] {
        assert_eq!(writers(n), ["one"], "{}: after rollback", n.name);
    }
    let (web, cmd) = (count(cron_node, "webcron"), count(cron_node, "cmdcron"));
    assert!(
        wait_until(Duration::from_secs(8), || {
            lines_after(cron_node, "webcron", web)
                .iter()
                .any(|l| l == "one 1")
                && lines_after(cron_node, "cmdcron", cmd)
                    .iter()
                    .any(|l| l == "cmd-one")
        }),
        "cron did not follow the rollback: web {:?}, command {:?}",
        lines_after(cron_node, "webcron", web),
        lines_after(cron_node, "cmdcron", cmd)
    );
    ok(&run(&env, &["activate", HOST, "2"]));
    for n in [&a, &b] {
        assert_eq!(writers(n), ["two"], "{}: after activate 2", n.name);
    }

    // kill -9: systemd starts it again
    let pid = a.exec("systemctl show -p MainPID --value skiff_jobs_2_ticker@1.service");
    let pid = pid.trim().to_string();
    a.exec(&format!("kill -9 {pid}"));
    let since = now();
    assert!(
        wait_until(Duration::from_secs(8), || ticks_since(&a, since)
            .iter()
            .any(|(m, p)| m == "two" && *p != pid)),
        "the killed worker was not restarted"
    );

    // a worker that exits at once fails the deploy before the switch; HOST keeps serving
    set_sections(
        &dir,
        "[processes.ticker]\ncommand = \"echo starting; exit 3\"\n",
    );
    std::fs::write(dir.join("message.txt"), "three\n").unwrap();
    let out = update(&env, &dir, &[&a, &b]);
    assert!(!out.status.success(), "a worker that exits passed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("worker"), "{stderr}");
    assert!(stderr.contains("starting"), "no journal tail: {stderr}");
    for n in [&a, &b] {
        let (code, body) = get(&n.address, HOST, "/");
        assert_eq!(code, 200);
        assert!(body.contains("message=two"), "{}: {body}", n.name);
        assert_eq!(
            writers(n),
            ["two"],
            "{}: version 2's worker runs again",
            n.name
        );
    }

    // removed from app.toml: it stops at the next update
    set_sections(&dir, "");
    ok(&update(&env, &dir, &[&a, &b]));
    for n in [&a, &b] {
        assert_eq!(
            writers(n),
            Vec::<String>::new(),
            "{}: a removed worker still writes",
            n.name
        );
        assert_eq!(
            n.exec("ls /etc/systemd/system | grep -c '^skiff_jobs_' || true")
                .trim(),
            "0"
        );
    }
}

#[test]
fn a_reboot_brings_apps_and_workers_back() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    prepare_shared(&node);
    // nginx and apache2 are systemd services, enabled, and a setup-node re-run changes nothing
    assert_eq!(
        node.exec("systemctl is-enabled nginx apache2 && systemctl is-active nginx apache2")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["enabled", "enabled", "active", "active"]
    );
    let again = run(&env, &["setup-node", &node.name]);
    ok(&again);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing changed"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let dir = app(&env, WORKER);
    ok(&update(&env, &dir, &[&node]));
    assert_eq!(writers(&node), ["one"]);

    let _ = node.exec_output("systemctl reboot");
    let since = now();
    let back = wait_until(Duration::from_secs(90), || {
        node.exec_output("true").status.success()
            && get(&node.address, HOST, "/").0 == 200
            && !ticks_since(&node, since + 1.0).is_empty()
    });
    let console = std::fs::read_to_string(
        skiff::providers::local::home().join(format!("nodes/{}/console.log", node.number)),
    )
    .unwrap_or_default();
    assert!(
        back,
        "after a reboot the app or its worker did not come back: {:?}\n{}\nconsole:\n{}",
        get(&node.address, HOST, "/"),
        String::from_utf8_lossy(
            &node
                .exec_output("systemctl is-system-running; systemctl --failed --no-legend; systemctl status 'skiff_jobs_*' --no-pager | head -20")
                .stdout
        ),
        console.lines().rev().take(15).collect::<Vec<_>>().join("\n")
    );
    let (_, body) = get(&node.address, HOST, "/");
    assert!(body.contains("message=one"), "{body}");
}

#[test]
fn nodes_without_systemd_refuse_workers_and_cron_before_sending() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let rootfs = crate::support::setup::set_up_rootfs();
    let out = env
        .skiff()
        .env("SKIFF_LOCAL_ROOTFS", &rootfs)
        .env("SKIFF_LOCAL_INIT", "none")
        .args(["create-node", "plain", "--provider", "local", "--yes"])
        .output()
        .unwrap();
    ok(&out);
    let node = TestNode::adopt(&env, "plain");
    assert_ne!(node.exec("ps -p 1 -o comm=").trim(), "systemd");
    ok(&run(&env, &["setup-node", "plain"]));
    let dir = app(&env, CRON);
    let out = update(&env, &dir, &[&node]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("systemd"), "{stderr}");
    assert!(stderr.contains("[[cron]]"), "{stderr}");
    // nothing was sent: no release folder, no lock left
    assert_eq!(
        node.exec(
            "ls /srv/skiff/apps/jobs 2>/dev/null | wc -l; ls -A /var/lib/skiff/locks | wc -l"
        )
        .split_whitespace()
        .collect::<Vec<_>>(),
        ["0", "0"]
    );
    // the same app without them deploys there (nothing of systemd is asked of the node)
    set_sections(&dir, "");
    ok(&update(&env, &dir, &[&node]));
    let (code, body) = get(&node.address, HOST, "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("message=one"), "{body}");
}
