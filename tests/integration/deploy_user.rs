//! Least privilege (issue 18): after setup-node, deploys log in as the node's `skiff`
//! deploy user and reach root only through `sudo -n` of skiff-node and skiff-run. The
//! node's own journal (sshd's lines) is the witness: every login after setup-node's is
//! `Accepted publickey for skiff`, none is root's.

use std::path::PathBuf;

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{deploy, get, ok};

const HOST: &str = "least.test";

fn app(env: &TestEnv) -> PathBuf {
    let dir = env.root().join("least");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        format!(
            "name = \"least\"\nruntime = \"python\"\nhostnames = [\"{HOST}\"]\n[processes]\nticker = \"while true; do sleep 1; done\"\n[python]\nwsgi = \"app:application\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("app.py"),
        "import os\n\ndef application(environ, start_response):\n    body = (os.environ.get(\"MOOD\", \"none\") + \"\\n\").encode()\n    start_response(\"200 OK\", [(\"Content-Type\", \"text/plain\")])\n    return [body]\n",
    )
    .unwrap();
    dir
}

/// sshd's `Accepted ...` lines on the node since `since` (epoch seconds).
fn logins_since(node: &TestNode, since: &str) -> Vec<String> {
    let out = node.exec(&format!(
        "journalctl --no-pager -o cat -t sshd -t sshd-session --since @{since} | grep '^Accepted ' || true"
    ));
    out.lines().map(str::to_string).collect()
}

#[test]
fn deploys_log_in_as_the_deploy_user_and_never_as_root() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    // setup-node recorded the deploy user once its key login and sudo worked
    let cluster = env.cluster();
    assert_eq!(
        cluster.node(&node.name).unwrap().deploy_user.as_deref(),
        Some("skiff")
    );
    let text = std::fs::read_to_string(&env.state).unwrap();
    assert!(text.contains("deploy_user = \"skiff\""), "{text}");
    let since = node.exec("date +%s").trim().to_string();
    // (journald's --since has a one-second grain: no login of setup-node's may share it)
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let dir = app(&env);
    deploy(&env, &node, &dir);
    assert_eq!(get(&node.address, HOST, "/"), (200, "none\n".into()));
    ok(&env
        .skiff()
        .args(["config", HOST, "set", "MOOD=sunny"])
        .output()
        .unwrap());
    // (config set rolls the change out as a new version)
    assert_eq!(get(&node.address, HOST, "/"), (200, "sunny\n".into()));
    ok(&env.skiff().args(["rollback", HOST]).output().unwrap());
    assert_eq!(get(&node.address, HOST, "/"), (200, "none\n".into()));
    let out = env
        .skiff()
        .args(["run", HOST, "--", "id", "-un"])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "app-least\n");
    let out = env
        .skiff()
        .args(["logs", HOST, "--kind", "access", "--since", "10m"])
        .output()
        .unwrap();
    ok(&out);
    for verb in [["status", HOST], ["versions", HOST]] {
        ok(&env.skiff().args(verb).output().unwrap());
    }
    // the worker runs as the app's user, from units skiff-node installed
    let ps = node.exec("ps -o user= -C sleep | sort -u");
    assert_eq!(ps.trim(), "app-least", "{ps}");
    // what the deploys wrote is the deploy user's
    let owners = node.exec(
        "find /srv/skiff/apps/least /var/lib/skiff/locks /var/lib/skiff/history /var/lib/skiff/state.toml ! -user skiff",
    );
    assert_eq!(owners, "", "files deploys wrote that skiff does not own");

    // the deploy user's groups: the apps' files, the web servers' logs, the journal
    let groups = node.exec("id -nG skiff");
    for g in ["www-data", "adm", "systemd-journal"] {
        assert!(groups.split_whitespace().any(|w| w == g), "{groups}");
    }

    let logins = logins_since(&node, &since);
    assert!(
        !logins.is_empty(),
        "no login recorded in the node's journal"
    );
    for line in &logins {
        assert!(
            line.starts_with("Accepted publickey for skiff from "),
            "a login that is not the deploy user's: {line}\nall: {logins:#?}"
        );
    }
    // root came only through sudo of the two helpers
    let sudo = node.exec(&format!(
        "journalctl --no-pager -o cat -t sudo --since @{since} | grep 'COMMAND=' || true"
    ));
    assert!(
        sudo.contains("COMMAND=/usr/local/share/skiff/bin/skiff-node"),
        "{sudo}"
    );
    for line in sudo.lines() {
        assert!(
            line.contains("COMMAND=/usr/local/share/skiff/bin/skiff-node ")
                || line.contains("COMMAND=/usr/local/share/skiff/bin/skiff-run "),
            "sudo ran something else: {line}"
        );
    }

    // what the deploy user may not do as root: a shell, a unit of its own making that
    // runs as root, a job file run as root
    let as_skiff = |cmd: &str| node.exec_output(&format!("runuser -u skiff -- sh -c '{cmd}'"));
    let shell = as_skiff("sudo -n /bin/sh -c id");
    assert!(!shell.status.success(), "sudo gave skiff a shell");
    node.exec(
        "runuser -u skiff -- sh -c 'mkdir -p /srv/skiff/apps/least/units/99 && printf \"[Service]\\nUser=root\\nExecStart=/usr/local/share/skiff/bin/skiff-run /tmp/x\\n\" > /srv/skiff/apps/least/units/99/skiff_least_99_evil.service'",
    );
    let forged = as_skiff("sudo -n /usr/local/share/skiff/bin/skiff-node units least install 99");
    assert_eq!(forged.status.code(), Some(2), "{forged:?}");
    assert!(
        String::from_utf8_lossy(&forged.stderr).contains("User=root is not an app user"),
        "{forged:?}"
    );
    assert_eq!(
        node.exec("ls /etc/systemd/system | grep -c evil || true")
            .trim(),
        "0"
    );
    node.exec("runuser -u skiff -- sh -c 'printf \"kind command\\ndir /\\ncommand id\\n\" > /var/lib/skiff/staging/job'");
    let job = as_skiff("sudo -n /usr/local/share/skiff/bin/skiff-run /var/lib/skiff/staging/job");
    assert_eq!(job.status.code(), Some(2), "{job:?}");
    node.exec("rm -rf /srv/skiff/apps/least/units/99 /var/lib/skiff/staging/job");
}

/// A node deployed to as root before: setup-node's plan names the folders holding root's
/// files, and the run gives them to the deploy user (their groups kept).
#[test]
fn setup_node_gives_the_files_of_root_deploys_to_the_deploy_user() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    node.exec(
        "mkdir -p /srv/skiff/apps/old/meta /var/lib/skiff/history && chgrp www-data /srv/skiff/apps/old/meta \
         && echo '{}' > /srv/skiff/apps/old/meta/1.json && echo '{}' > /var/lib/skiff/history/old.jsonl \
         && chown root /srv/skiff/apps/old /srv/skiff/apps/old/meta /var/lib/skiff/history/old.jsonl",
    );
    let out = env
        .skiff()
        .args(["setup-node", &node.name, "--dry-run"])
        .output()
        .unwrap();
    ok(&out);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("give /srv/skiff/apps's root-owned files to skiff")
            && plan.contains("give /var/lib/skiff/history's root-owned files to skiff"),
        "{plan}"
    );
    ok(&env
        .skiff()
        .args(["setup-node", &node.name])
        .output()
        .unwrap());
    assert_eq!(
        node.exec("find /srv/skiff/apps /var/lib/skiff/history -user root"),
        ""
    );
    assert_eq!(
        node.exec("stat -c '%U:%G' /srv/skiff/apps/old/meta").trim(),
        "skiff:www-data"
    );
    // and a second run has nothing left to give
    let out = env
        .skiff()
        .args(["setup-node", &node.name, "--dry-run"])
        .output()
        .unwrap();
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Nothing to change"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// When the deploy user cannot log in (here: no login shell), setup-node says why and
/// deploys keep logging in as the node's `user`; a run that works records it again.
#[test]
fn setup_node_keeps_the_login_user_until_the_deploy_user_works() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    node.exec("usermod -s /usr/sbin/nologin skiff");
    let out = env
        .skiff()
        .args(["setup-node", &node.name])
        .output()
        .unwrap();
    ok(&out);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("deploys keep logging in as `root`") && said.contains("`skiff`"),
        "{said}"
    );
    let deploy_user = |env: &TestEnv| env.cluster().node(&node.name).unwrap().deploy_user.clone();
    assert_eq!(deploy_user(&env), None);
    deploy(&env, &node, &app(&env));
    assert_eq!(get(&node.address, HOST, "/"), (200, "none\n".into()));
    node.exec("usermod -s /bin/bash skiff");
    ok(&env
        .skiff()
        .args(["setup-node", &node.name])
        .output()
        .unwrap());
    assert_eq!(deploy_user(&env).as_deref(), Some("skiff"));
}
