//! create-node / destroy-node / list-nodes and the SSH transport, on real local nodes.

use std::path::Path;
use std::process::Command as StdCommand;

use skiff::error::Error;
use skiff::transport::{self, Session, Target};

use crate::support::{TestEnv, TestNode, nodes_available};

/// Everything a local node owns on the host, for "nothing is left" checks.
fn leftovers(number: u8) -> Vec<String> {
    let mut left = Vec::new();
    let netns = StdCommand::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    if netns
        .lines()
        .any(|l| l.split_whitespace().next() == Some(&format!("node{number}")))
    {
        left.push(format!("netns node{number}"));
    }
    let link = StdCommand::new("ip")
        .args(["link", "show", &format!("tn{number}h")])
        .output()
        .unwrap();
    if link.status.success() {
        left.push(format!("veth tn{number}h"));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = skiff::providers::local::home()
        .join("nodes")
        .join(number.to_string());
    let dir = dir.display().to_string();
    for line in mounts.lines() {
        if line
            .split_whitespace()
            .nth(4)
            .is_some_and(|m| m.starts_with(&dir))
        {
            left.push(format!("mount {line}"));
        }
    }
    if Path::new(&dir).exists() {
        left.push(format!("folder {dir}"));
    }
    for hierarchy in ["systemd", "unified", ""] {
        let cgroup = Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join(format!("skiff-node{number}"));
        if cgroup.exists() {
            left.push(format!("cgroup {}", cgroup.display()));
        }
    }
    left
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn local_node_lifecycle_leaves_nothing_behind() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let out = env
        .skiff()
        .args(["create-node", "web1", "--provider", "local"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.assert_no_masters();

    let cluster = env.cluster();
    let node = cluster.node("web1").unwrap().clone();
    let number: u8 = node.provider_data["number"].parse().unwrap();
    assert!(number >= skiff::providers::local::FIRST_NUMBER);
    assert_eq!(node.address, format!("10.250.0.{number}"));
    assert_eq!(node.os.as_deref(), Some("debian 12"));
    assert!(node.host_key.as_deref().unwrap().starts_with("SHA256:"));

    // list-nodes shows it, as a table and as JSON
    let out = env.skiff().args(["list-nodes"]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("web1") && table.contains("local") && table.contains(&node.address),
        "{table}"
    );
    let out = env.skiff().args(["--json", "list-nodes"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["type"], "list-nodes");
    assert_eq!(json["nodes"][0]["name"], "web1");
    assert_eq!(json["nodes"][0]["provider"], "local");
    assert_eq!(json["nodes"][0]["os"], "debian 12");

    // a command runs on it through the transport, over one master
    let target = Target::for_node("web1", &node);
    let (hostname, trips) = transport::block_on(async {
        let s = Session::connect(&target, &env.state_dir()).await.unwrap();
        let out = s.run_ok(&["cat", "/etc/hostname"]).await.unwrap();
        let status = s.run(&["sh", "-c", "exit 7"]).await.unwrap();
        assert_eq!(status.status, Some(7));
        let trips = s.round_trips();
        s.close().await.unwrap();
        (String::from_utf8(out).unwrap(), trips)
    })
    .unwrap();
    assert_eq!(hostname.trim(), format!("node{number}"));
    assert_eq!(trips, 2);
    // systemd is the node's PID 1, as on a real server, and it booted without a failure
    let node = TestNode::adopt(&env, "web1");
    assert_eq!(node.exec("ps -p 1 -o comm=").trim(), "systemd");
    assert_eq!(
        node.exec("systemctl is-system-running --wait || true")
            .trim(),
        "running",
        "failed units: {}",
        node.exec("systemctl --failed --no-legend")
    );
    node.forget();
    env.assert_no_masters();

    let home = skiff::providers::local::home();
    let init: u32 = std::fs::read_to_string(home.join(format!("nodes/{number}/init.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(init));

    // destroy-node asks first: without a terminal and without --yes it refuses
    env.skiff()
        .args(["destroy-node", "web1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--yes"));
    assert!(env.cluster().nodes.contains_key("web1"));

    env.skiff()
        .args(["destroy-node", "web1", "--yes"])
        .assert()
        .success();
    assert!(env.cluster().nodes.is_empty());
    assert!(!pid_alive(init), "node PID 1 ({init}) still runs");
    assert_eq!(leftovers(number), Vec::<String>::new());
    let kh = std::fs::read_to_string(env.known_hosts()).unwrap_or_default();
    assert!(kh.trim().is_empty(), "pinned key not forgotten: {kh}");
    env.assert_no_masters();
}

#[test]
fn ssh_provider_pins_the_key_and_refuses_a_changed_one() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let node = TestNode::launch(&env);

    // a second user of skiff adds the same machine as an ssh node
    let other = TestEnv::new();
    let identity = node.identity.display().to_string();
    other
        .skiff()
        .args([
            "create-node",
            "srv",
            "--provider",
            "ssh",
            "--host",
            &node.address,
        ])
        .args(["--user", "root", "--identity", &identity])
        .assert()
        .success();
    other.assert_no_masters();
    let pinned = other
        .cluster()
        .node("srv")
        .unwrap()
        .host_key
        .clone()
        .unwrap();
    let real = node.exec("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub");
    assert!(real.contains(&pinned), "pinned {pinned}, node has {real}");
    assert_eq!(
        other.cluster().node("srv").unwrap().os.as_deref(),
        Some("debian 12")
    );

    // the node gets new host keys; sshd reloads them on SIGHUP
    node.exec(
        "rm -f /etc/ssh/ssh_host_*; ssh-keygen -q -A; kill -HUP \"$(cat /run/sshd.pid)\"; sleep 0.3",
    );
    let new_real = node_key_via_netns(node.number);
    assert!(!new_real.contains(&pinned));

    let target = Target {
        node: "srv".into(),
        address: node.address.clone(),
        user: "root".into(),
        port: 22,
        identity: Some(node.identity.clone()),
    };
    let err = transport::block_on(Session::connect(&target, &other.state_dir()))
        .unwrap()
        .expect_err("a changed key must be refused");
    match &err {
        Error::HostKeyChanged {
            node: n,
            old,
            new,
            hint,
        } => {
            assert_eq!(n, "srv");
            assert!(old.contains(&pinned), "{old}");
            assert!(
                new.starts_with("SHA256:") && !new.contains(&pinned),
                "{new}"
            );
            assert!(
                new_real.contains(new.split_whitespace().next().unwrap()),
                "{new} vs {new_real}"
            );
            assert!(hint.contains("--repin"));
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    assert_eq!(err.exit_code(), 3);
    other.assert_no_masters();

    // the deliberate way back: --repin pins the new key
    let out = other
        .skiff()
        .args(["create-node", "srv", "--repin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repinned = other
        .cluster()
        .node("srv")
        .unwrap()
        .host_key
        .clone()
        .unwrap();
    assert_ne!(repinned, pinned);
    assert!(new_real.contains(&repinned));
    transport::block_on(async {
        let s = Session::connect(&target, &other.state_dir()).await.unwrap();
        s.run_ok(&["true"]).await.unwrap();
        s.close().await.unwrap();
    })
    .unwrap();

    // forgetting an ssh node leaves the server alone and says so
    other
        .skiff()
        .args(["destroy-node", "srv", "--yes"])
        .assert()
        .success()
        .stderr(predicates::str::contains("not touched"));
    assert!(
        leftovers(node.number)
            .iter()
            .any(|l| l.starts_with("netns")),
        "forgetting an ssh node must not touch the machine"
    );
    other.assert_no_masters();
}

/// The node's ed25519 fingerprint, read through its netns (not over ssh, whose pinned
/// key no longer matches).
fn node_key_via_netns(number: u8) -> String {
    let home = skiff::providers::local::home();
    let root = home.join(format!(
        "nodes/{number}/root/etc/ssh/ssh_host_ed25519_key.pub"
    ));
    let out = StdCommand::new("ssh-keygen")
        .arg("-lf")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nasty_arguments_round_trip_exactly() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let node = TestNode::launch(&env);
    let nasty: Vec<&str> = vec![
        "with space",
        "  padded  ",
        "it's",
        "\"double\"",
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned2`",
        "a;touch /tmp/pwned3",
        "*",
        "/etc/*",
        "line1\nline2\n",
        "tab\there",
        "back\\slash",
        "$HOME ${HOME}",
        "~",
        "a=b",
        "#not a comment",
        "!bang",
        "{a,b}",
        "a|b&c>d<e",
        "",
        "ünïcødé ✓ 日本語",
        "-n",
        "'",
    ];
    transport::block_on(async {
        let s = Session::connect(&node.target(), &env.state_dir())
            .await
            .unwrap();

        let mut argv = vec!["printf", "%s\\0"];
        argv.extend(&nasty);
        let out = s.run_ok(&argv).await.unwrap();
        assert_eq!(split_nul(&out), nasty);

        // the same through a script's positional arguments
        let out = s
            .script_ok("set -eu\nprintf '%s\\0' \"$@\"\n", &nasty)
            .await
            .unwrap();
        assert_eq!(split_nul(&out), nasty);

        // bytes streamed up arrive exactly; bytes streamed down too
        let blob: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let out = s
            .run_with_input(&["sha256sum"], blob.as_slice())
            .await
            .unwrap();
        let want = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&blob))
        };
        assert!(
            out.stdout_text().starts_with(&want),
            "{}",
            out.stdout_text()
        );
        let out = s.run_with_input(&["cat"], blob.as_slice()).await.unwrap();
        assert_eq!(out.stdout, blob);
        let mut sink = Vec::new();
        let out = s
            .run_to_writer(&["head", "-c", "100000", "/dev/zero"], &mut sink)
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(sink.len(), 100_000);

        // a failing command names the node and carries its output
        let err = s
            .run_ok(&["sh", "-c", "echo oops >&2; exit 3"])
            .await
            .unwrap_err();
        match err {
            Error::Remote {
                node: n,
                status,
                output,
                ..
            } => {
                assert_eq!(n, node.name);
                assert_eq!(status, Some(3));
                assert!(output.contains("oops"));
            }
            other => panic!("{other:?}"),
        }
        s.close().await.unwrap();
    })
    .unwrap();
    let pwned = node.exec("ls /tmp");
    assert!(!pwned.contains("pwned"), "{pwned}");
    env.assert_no_masters();
}

fn split_nul(bytes: &[u8]) -> Vec<String> {
    let mut words: Vec<String> = bytes
        .split(|b| *b == 0)
        .map(|w| String::from_utf8(w.to_vec()).unwrap())
        .collect();
    words.pop();
    words
}

#[test]
fn many_commands_share_one_session_at_most_four_at_a_time() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let node = TestNode::launch(&env);
    transport::block_on(async {
        let s = Session::connect(&node.target(), &env.state_dir()).await.unwrap();
        // 16 commands at once; sshd allows 10 sessions, the semaphore keeps us at 4
        let script = "mkdir -p /tmp/c; touch /tmp/c/$$; n=$(ls /tmp/c | wc -l); sleep 0.2; rm /tmp/c/$$; echo $n";
        let argv = ["sh", "-c", script];
        let runs = (0..16).map(|_| s.run_ok(&argv));
        let outs = futures_util::future::join_all(runs).await;
        let mut max = 0;
        for out in outs {
            let n: usize = String::from_utf8(out.unwrap()).unwrap().trim().parse().unwrap();
            max = max.max(n);
        }
        assert!(max <= skiff::transport::ssh::MAX_CHANNELS, "{max} in flight");
        assert_eq!(s.round_trips(), 16);
        s.close().await.unwrap();
    })
    .unwrap();
    env.assert_no_masters();
}

/// Joins futures without another dependency: spawns nothing, polls them together.

#[test]
fn connect_errors_say_why() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let node = TestNode::launch(&env);

    // wrong key: login refused
    let stranger = env.root().join("stranger");
    let ok = StdCommand::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(ok.success());
    let mut target = node.target();
    target.identity = Some(stranger);
    let err = transport::block_on(Session::connect(&target, &env.state_dir()))
        .unwrap()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("login as `root` refused"), "{msg}");
    assert!(err.hint().unwrap().contains("--identity"));
    assert_eq!(err.exit_code(), 3);

    // nothing listens: refused
    let mut target = node.target();
    target.port = 2;
    let err = transport::block_on(Session::connect(&target, &env.state_dir()))
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");

    // the CLI says it too, with exit code 3, and leaves no pin for a node it did not add
    let identity = node.identity.display().to_string();
    env.skiff()
        .args([
            "create-node",
            "nobody",
            "--host",
            "10.250.0.254",
            "--identity",
            &identity,
        ])
        .assert()
        .code(3)
        .stderr(predicates::str::contains("cannot reach node `nobody`"));
    env.assert_no_masters();
}

#[test]
fn unsupported_os_is_refused_unless_forced() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let node = TestNode::launch(&env);
    node.exec("rm /etc/os-release; printf 'ID=fedora\\nVERSION_ID=40\\nPRETTY_NAME=\"Fedora Linux 40\"\\n' >/etc/os-release");
    let other = TestEnv::new();
    let identity = node.identity.display().to_string();
    let add = |force: bool| {
        let mut cmd = other.skiff();
        cmd.args([
            "create-node",
            "fed",
            "--host",
            &node.address,
            "--user",
            "root",
        ])
        .args(["--identity", &identity]);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let out = add(false);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Fedora Linux 40") && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(other.cluster().nodes.is_empty());
    let out = add(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        other.cluster().node("fed").unwrap().os.as_deref(),
        Some("fedora 40")
    );
    other.assert_no_masters();
}

#[test]
fn create_node_checks_its_arguments() {
    let env = TestEnv::new();
    env.skiff()
        .args(["create-node", "Bad_Name", "--host", "10.250.0.9"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bad node name"));
    env.skiff()
        .args(["create-node", "web1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("needs `--host`"));
    env.skiff()
        .args(["create-node", "web1", "--host=-oProxyCommand=touch /tmp/x"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bad `--host`"));
    env.skiff()
        .args([
            "create-node",
            "web1",
            "--provider",
            "local",
            "--host",
            "10.0.0.1",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "not used with `--provider local`",
        ));
    // no ssh program: said plainly, exit 3, nothing recorded
    env.skiff()
        .env("PATH", env.root().join("empty-path"))
        .args([
            "create-node",
            "web1",
            "--host",
            "10.250.0.254",
            "--user",
            "root",
        ])
        .assert()
        .code(3)
        .stderr(predicates::str::contains("the `ssh` program was not found"))
        .stderr(predicates::str::contains("openssh-client"));
    assert!(env.cluster().nodes.is_empty());
    env.skiff()
        .args(["destroy-node", "ghost", "--yes"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unknown node `ghost`"));
}

#[test]
fn a_dropped_session_stops_its_master() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let node = TestNode::launch(&env);
    transport::block_on(async {
        let s = Session::connect(&node.target(), &env.state_dir())
            .await
            .unwrap();
        s.run_ok(&["true"]).await.unwrap();
        assert_eq!(env.ssh_masters().len(), 1, "one master per session");
        drop(s); // an error path that never reached close()
    })
    .unwrap();
    // the shutdown request is sent on drop; the master exits right after
    let mut left = env.ssh_masters();
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        left = env.ssh_masters();
    }
    assert!(left.is_empty(), "ssh masters left running: {left:?}");
}

/// `vagrant validate` on the Vagrantfile skiff ships (the VM itself cannot run here:
/// no hypervisor). Vagrant needs a writable home and no provider with
/// `--ignore-provider`.
#[test]
fn vagrantfile_validates() {
    let Ok(vagrant) = which::which("vagrant") else {
        let msg = "vagrant is not installed (apt-get install vagrant; see .ci/prepare-nodes.sh)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return;
    };
    let env = TestEnv::new();
    let dir = env.root().join("vm");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Vagrantfile"),
        skiff::providers::vagrant::VAGRANTFILE,
    )
    .unwrap();
    let out = StdCommand::new(vagrant)
        .args(["validate", "--ignore-provider"])
        .current_dir(&dir)
        .env("HOME", &env.home)
        .env("VAGRANT_HOME", env.root().join("vagrant.d"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_NO_COLOR", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "vagrant validate failed:\n{text}");
    assert!(text.contains("validated successfully"), "{text}");

    // and it does catch a broken file (so the check above can fail)
    std::fs::write(
        dir.join("Vagrantfile"),
        "Vagrant.configure(\"2\") { |c| c.vm.bxo = 1 }\n",
    )
    .unwrap();
    let out = StdCommand::new("vagrant")
        .args(["validate", "--ignore-provider"])
        .current_dir(&dir)
        .env("HOME", &env.home)
        .env("VAGRANT_HOME", env.root().join("vagrant.d"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Without a hypervisor `vagrant up` fails; skiff must say so and leave nothing.
#[test]
fn a_failed_vagrant_up_leaves_nothing() {
    if which::which("vagrant").is_err() {
        eprintln!("SKIPPED: vagrant is not installed");
        return;
    }
    let env = TestEnv::new();
    let probe = StdCommand::new("sh")
        .args(["-c", "command -v VBoxManage || command -v virsh"])
        .output()
        .unwrap();
    if probe.status.success() {
        eprintln!("SKIPPED: a hypervisor is installed; this test wants `vagrant up` to fail");
        return;
    }
    let out = env
        .skiff()
        .args(["create-node", "vm", "--provider", "vagrant"])
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`vagrant up`") && stderr.contains("provider"),
        "{stderr}"
    );
    assert!(env.cluster().nodes.is_empty());
    assert!(!env.state_dir().join("vagrant/vm").exists());
}

/// A record that outlived its node (a copied or forgotten cluster.toml) must never
/// destroy a newer node that got the same number; a node whose PID 1 died is reaped
/// by the next create.
#[test]
fn stale_records_and_dead_nodes_are_harmless() {
    let a = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let node = TestNode::launch_named(&a, "old");
    let number = node.number;
    let stale = TestEnv::new();
    std::fs::create_dir_all(stale.state_dir()).unwrap();
    std::fs::copy(&a.state, &stale.state).unwrap();
    node.destroy();

    let b = TestEnv::new();
    let newer = TestNode::launch(&b);
    stale
        .skiff()
        .args(["destroy-node", "old", "--yes"])
        .assert()
        .success();
    assert!(stale.cluster().nodes.is_empty());
    newer.exec("true"); // still up, whatever number it got
    if newer.number == number {
        eprintln!("the newer node reused number {number} and survived the stale destroy");
    }

    // kill a node's PID 1 (a crash; systemd as PID 1 ignores TERM): the next create
    // reaps it
    let dying = TestNode::launch(&b);
    let home = skiff::providers::local::home();
    let init: i32 = std::fs::read_to_string(home.join(format!("nodes/{}/init.pid", dying.number)))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for _ in 0..50 {
        if !pid_alive(init as u32) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let dying_id = b.cluster().node(&dying.name).unwrap().provider_data["id"].clone();
    let _third = TestNode::launch(&b);
    // reaped: its folder is gone, or (tests run in parallel) the number already serves
    // a newer node with another owner token
    let id_file = home.join(format!("nodes/{}/id", dying.number));
    let id = std::fs::read_to_string(&id_file).unwrap_or_default();
    assert_ne!(id.trim(), dying_id, "dead node {} not reaped", dying.number);
    // its record is still destroyable (nothing left to do but forget it)
    dying.destroy();
    newer.exec("true");
}
