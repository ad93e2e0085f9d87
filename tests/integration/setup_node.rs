//! `skiff setup-node` on real local nodes: a fresh node becomes a skiff web host, a re-run
//! changes nothing, an interrupted apt is repaired, a broken config is named and never
//! loaded, and a hand-edited file is shown as a diff and put back.

use std::io::{BufRead, BufReader};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::get;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Files skiff manages (and the folders it owns) changed since `marker` was touched.
fn changed_since_marker(node: &TestNode) -> String {
    node.exec(
        "find /etc/nginx /etc/apache2 /etc/skiff /etc/sudoers.d /srv/skiff /var/lib/skiff \
         /usr/local/share/skiff /home/skiff -newer /tmp/skiff-marker \
         -not -path '/var/lib/skiff/setup-backup*' -print",
    )
}

fn assert_serves_404(node: &TestNode) {
    for host in ["unknown.example.com", "x.test", "10.1.2.3"] {
        let (code, body) = get(&node.address, host, "/some/path");
        assert_eq!(code, 404, "Host {host}: {body}");
        assert!(
            body.contains("skiff: no app is served at this host"),
            "Host {host} got another 404 page:\n{body}"
        );
    }
}

#[test]
fn a_fresh_node_is_set_up_and_a_rerun_changes_nothing() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch(&env);

    let out = env
        .skiff()
        .args(["setup-node", &node.name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "setup-node failed:\n{stderr}");
    for step in ["Inspected", "Installed", "Wrote", "Tested", "Checked"] {
        assert!(stderr.contains(step), "no `{step}` status line:\n{stderr}");
    }

    // unknown hosts get skiff's own 404 page, from outside the node
    assert_serves_404(&node);
    // Apache's config is valid and Apache listens on loopback:8080 only; NGINX has :80
    let test = node.exec("apache2ctl configtest 2>&1");
    assert!(test.contains("Syntax OK"), "{test}");
    let listen = node.exec("ss -Hltnp");
    let apache: Vec<&str> = listen
        .lines()
        .filter(|l| l.contains("\"apache2\""))
        .collect();
    assert!(!apache.is_empty(), "Apache does not listen:\n{listen}");
    for l in &apache {
        assert!(
            l.contains("127.0.0.1:8080"),
            "Apache listens elsewhere: {l}"
        );
    }
    assert!(
        listen
            .lines()
            .any(|l| l.contains(":80 ") && l.contains("\"nginx\"")),
        "NGINX is not on :80:\n{listen}"
    );
    // the deploy user logs in with the operator's key and may run only skiff's helper
    let login = StdCommand::new("ssh")
        .arg("-i")
        .arg(&node.identity)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", env.known_hosts().display()))
        .arg(format!("skiff@{}", node.address))
        .arg("id -un; sudo -n /usr/local/share/skiff/bin/skiff-node version; sudo -n true && echo SUDO-ALL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&login.stdout);
    assert!(
        said.starts_with("skiff\n"),
        "deploy login failed: {said} {login:?}"
    );
    assert!(said.contains("skiff 0.1.0"), "{said}");
    assert!(!said.contains("SUDO-ALL"), "the sudoers rule is not narrow");
    // folders with owners and modes, the stamp on the node and in cluster.toml
    let modes = node.exec("stat -c '%n %a %U' /etc/skiff/env /srv/skiff/apps /var/log/skiff /var/lib/skiff/state.toml /etc/sudoers.d/skiff");
    for want in [
        "/etc/skiff/env 700 skiff",
        "/srv/skiff/apps 755 skiff",
        "/var/log/skiff 755 skiff",
        "/var/lib/skiff/state.toml 644 skiff",
        "/etc/sudoers.d/skiff 440 root",
    ] {
        assert!(modes.contains(want), "{want} not in:\n{modes}");
    }
    let stamp = node.exec("cat /var/lib/skiff/setup.toml");
    assert!(stamp.contains(skiff::assets::digest()), "{stamp}");
    let recorded = env
        .cluster()
        .node(&node.name)
        .unwrap()
        .setup
        .clone()
        .expect("stamp in cluster.toml");
    assert_eq!(recorded.digest, skiff::assets::digest());

    // a second run: the dry run shows an empty plan, the run changes nothing
    node.exec("touch /tmp/skiff-marker; sleep 1");
    let dry = env
        .skiff()
        .args(["--json", "setup-node", &node.name, "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success());
    let doc = json(&dry);
    assert_eq!(doc["empty_plan"], true, "{doc:#}");
    assert_eq!(doc["plan"]["files"].as_array().unwrap().len(), 0);
    assert_eq!(doc["plan"]["packages"].as_array().unwrap().len(), 0);
    let text = env
        .skiff()
        .args(["setup-node", &node.name, "--dry-run"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("Nothing to change"),
        "{text:?}"
    );
    let again = env
        .skiff()
        .args(["--json", "setup-node", &node.name])
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
    let doc = json(&again);
    assert_eq!(doc["changed"], false, "{doc:#}");
    assert_eq!(
        changed_since_marker(&node).trim(),
        "",
        "the re-run wrote files"
    );
    assert_serves_404(&node);
}

/// Starts `skiff setup-node` on a fresh node and SIGKILLs it once dpkg is busy on the node.
fn kill_setup_during_apt(env: &TestEnv, node: &TestNode) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .env("HOME", &env.home)
        .env("NO_COLOR", "1")
        .arg("--state")
        .arg(&env.state)
        .args(["setup-node", &node.name])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait for the apt step to start, then for dpkg to be busy on the node
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("setup-node ended before apt:\n{seen}"))
            .unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Installing") {
            break;
        }
    }
    let start = Instant::now();
    loop {
        let busy = node.exec_output("pgrep -x dpkg >/dev/null");
        if busy.status.success() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "dpkg never started on the node"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn sigkill_during_apt_then_a_rerun_succeeds() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch(&env);
    // skiff dies; apt goes on on the node: the re-run waits for its lock, never breaks it
    kill_setup_during_apt(&env, &node);
    rerun_succeeds(&env, &node);
}

#[test]
fn an_apt_killed_on_the_node_is_repaired_by_a_rerun() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch(&env);
    // as if the connection drop took apt and dpkg down with it, mid-unpack
    kill_setup_during_apt(&env, &node);
    node.exec("pkill -9 -x apt-get; pkill -9 -x dpkg; true");
    let audit = node.exec("dpkg --audit 2>&1 | head -n 3; ls /var/lib/dpkg/updates | wc -l");
    eprintln!("after killing apt on the node: {audit}");
    rerun_succeeds(&env, &node);
}

fn rerun_succeeds(env: &TestEnv, node: &TestNode) {
    let out = env
        .skiff()
        .args(["setup-node", &node.name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "re-run after SIGKILL failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_serves_404(node);
    let audit = node.exec("dpkg --audit; echo rc=$?");
    assert_eq!(audit.trim(), "rc=0", "dpkg is not clean: {audit}");
    let installed = node
        .exec("dpkg-query -W -f '${db:Status-Abbrev}\\n' nginx apache2 libapache2-mod-passenger");
    assert!(
        installed.lines().all(|l| l.starts_with("ii")),
        "{installed}"
    );
}

#[test]
fn a_broken_nginx_site_is_named_and_never_loaded() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let workers = || node.exec("pgrep -P \"$(cat /run/nginx.pid)\" | sort | tr '\\n' ' '");
    let before = workers();
    assert!(!before.trim().is_empty());

    node.exec("printf 'server {\\n  bogus_directive on;\\n}\\n' > /etc/nginx/sites-enabled/broken");
    // also a hand edit of a skiff file: the run will want to write it, then must put the
    // edited copy back when the config test fails
    node.exec("echo '# hand edit' >> /etc/nginx/snippets/skiff-proxy.conf");
    let out = env
        .skiff()
        .args(["setup-node", &node.name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "setup-node accepted a broken config");
    assert!(
        stderr.contains("/etc/nginx/sites-enabled/broken"),
        "the error does not name the broken file:\n{stderr}"
    );
    assert!(stderr.contains("nginx -t"), "{stderr}");
    assert_eq!(workers(), before, "NGINX was reloaded");
    assert!(
        node.exec("tail -n 1 /etc/nginx/snippets/skiff-proxy.conf")
            .contains("# hand edit"),
        "the previous file was not put back"
    );
    assert_serves_404(&node);

    // the dry run says the same and changes nothing; removing the file fixes the node
    node.exec("rm /etc/nginx/sites-enabled/broken");
    let out = env
        .skiff()
        .args(["setup-node", &node.name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !node
            .exec("cat /etc/nginx/snippets/skiff-proxy.conf")
            .contains("# hand edit")
    );
}

#[test]
fn a_broken_site_on_a_set_up_node_fails_a_rerun_without_reloading() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    node.exec("echo 'Bogus directive' > /etc/apache2/sites-enabled/zz-broken.conf");
    let pid = node.exec("cat /run/apache2/apache2.pid");
    let out = env
        .skiff()
        .args(["--json", "setup-node", &node.name])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/etc/apache2/sites-enabled/zz-broken.conf"),
        "{stderr}"
    );
    let doc = json(&out);
    assert_eq!(doc["type"], "error", "{doc:#}");
    assert_eq!(node.exec("cat /run/apache2/apache2.pid"), pid);
}

#[test]
fn a_hand_edit_is_shown_as_a_diff_and_put_back() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    node.exec("sed -i 's/MaxSpareServers .*/MaxSpareServers 3/' /etc/apache2/mods-available/mpm_prefork.conf; chmod 600 /etc/skiff/sites/nginx");
    let dry = env
        .skiff()
        .args(["setup-node", &node.name, "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success());
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("update /etc/apache2/mods-available/mpm_prefork.conf"),
        "{plan}"
    );
    assert!(
        plan.contains("-\tMaxSpareServers 3")
            || plan.contains("-MaxSpareServers 3")
            || plan.contains("MaxSpareServers 3"),
        "{plan}"
    );
    assert!(plan.contains("fix folder /etc/skiff/sites/nginx"), "{plan}");
    assert!(plan.contains("services: reload apache2"), "{plan}");
    // the dry run changed nothing
    assert!(
        node.exec("cat /etc/apache2/mods-available/mpm_prefork.conf")
            .contains("MaxSpareServers 3")
    );

    let out = env
        .skiff()
        .args(["setup-node", &node.name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !node
            .exec("cat /etc/apache2/mods-available/mpm_prefork.conf")
            .contains("MaxSpareServers 3")
    );
    assert_eq!(node.exec("stat -c %a /etc/skiff/sites/nginx").trim(), "755");
    let dry = env
        .skiff()
        .args(["--json", "setup-node", &node.name, "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(json(&dry)["empty_plan"], true);
}
