//! setup-node's hardening on real nodes: skiff's nftables firewall (SSH, HTTP and HTTPS
//! open, database ports only to the app's own nodes, everything else dropped, from other
//! nodes and from the host alike; kept across a reboot; `--no-firewall` takes it away),
//! key-only SSH once key logins work (and skipped, saying why, when one does not), and
//! unattended security upgrades.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::get;

/// A port that setup-node never opens.
const UNLISTED: u16 = 8999;

/// What a TCP connect from this host to `address:port` does within 3 s: `open`,
/// `refused` (the node answered: nothing listens) or `dropped` (no answer: filtered).
fn from_host(address: &str, port: u16) -> &'static str {
    let addr: SocketAddr = format!("{address}:{port}").parse().unwrap();
    match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(_) => "open",
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => "refused",
        Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => "dropped",
        Err(e) => panic!("connect to {addr}: {e}"),
    }
}

/// The same, from node `from` (Python's socket, 3 s).
fn from_node(from: &TestNode, address: &str, port: u16) -> String {
    const CONNECT: &str = r#"
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print('open')
except ConnectionRefusedError:
    print('refused')
except (socket.timeout, TimeoutError):
    print('dropped')
"#;
    from.exec(&format!(
        "python3 - {address} {port} <<'EOF'\n{CONNECT}\nEOF"
    ))
    .trim()
    .to_string()
}

/// Starts `python3 -m http.server PORT` on `node` (ended by `timeout` after 120 s at the
/// latest), waits until it listens (at most 10 s), and returns its PID.
fn start_listener(node: &TestNode, port: u16) -> String {
    // in a subshell, or the server goes with the SSH session
    let pid = node.exec(&format!(
        "cd /tmp && (setsid timeout 120 python3 -m http.server {port} --bind 0.0.0.0 \
         </dev/null >/dev/null 2>&1 & echo $! >/tmp/skiff-test-listener.pid) && \
         cat /tmp/skiff-test-listener.pid"
    ));
    let pid = pid.trim().to_string();
    node.exec(&format!(
        "i=0; until ss -Hltn 'sport = :{port}' | grep -q .; do \
         i=$((i + 1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done"
    ));
    // it answers on the node itself: only the firewall stands between it and the others
    assert_eq!(
        node.exec(&format!(
            "curl -s -m 5 -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/"
        )),
        "200"
    );
    pid
}

fn stop_listener(node: &TestNode, pid: &str) {
    // `timeout` is the PID we started: it passes the TERM on to the server
    node.exec(&format!("kill {pid} 2>/dev/null; true"));
}

/// `setup-node --dry-run` names the firewall step; then setup-node loads the table.
fn dry_run_then_load(env: &TestEnv, node: &str) {
    let dry = run(env, &["setup-node", node, "--dry-run"]);
    ok(&dry);
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("firewall: check (nft -c) and load nftables table inet skiff"),
        "{plan}"
    );
    let said = ok(&run(env, &["setup-node", node]));
    assert!(said.contains("nftables table inet skiff loaded"), "{said}");
}

fn run(env: &TestEnv, args: &[&str]) -> std::process::Output {
    env.skiff().args(args).output().unwrap()
}

fn ok(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

#[test]
fn the_firewall_drops_unlisted_ports_from_nodes_and_the_host_and_no_firewall_removes_it() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let a = TestNode::launch_set_up(&env);
    let b = TestNode::launch_set_up(&env);

    // skiff's table is loaded, its unit enabled, nothing else in the ruleset is skiff's
    assert_eq!(
        a.exec("systemctl is-enabled skiff-firewall.service; systemctl is-active skiff-firewall.service")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["enabled", "active"]
    );
    let tables = a.exec("nft list tables");
    assert!(tables.contains("table inet skiff"), "{tables}");

    let pid = start_listener(&a, UNLISTED);
    assert_eq!(from_node(&b, &a.address, UNLISTED), "dropped");
    assert_eq!(from_host(&a.address, UNLISTED), "dropped");
    // SSH, HTTP and HTTPS answer (NGINX's default server on 443 rejects handshakes)
    for (port, want) in [(22, "open"), (80, "open"), (443, "open")] {
        assert_eq!(from_node(&b, &a.address, port), want, "port {port} from b");
        assert_eq!(
            from_host(&a.address, port),
            want,
            "port {port} from the host"
        );
    }
    assert_eq!(get(&a.address, "unknown.test", "/").0, 404);
    // the databases' ports too, for anyone not in db_clients
    a.exec("nft list set inet skiff db_clients");
    assert_eq!(from_host(&a.address, 5432), "dropped");
    // the health check's loopback port stays reachable on the node
    assert_ne!(
        a.exec("curl -s -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:8079/"),
        "000"
    );

    // an operator's own table is never touched: not by --no-firewall, not by a reload
    a.exec("nft add table inet operator && nft add chain inet operator mine");
    // the dry run shows the step; --no-firewall removes the table, its unit and files
    let dry = run(&env, &["setup-node", &a.name, "--dry-run", "--no-firewall"]);
    ok(&dry);
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("firewall: delete nftables table inet skiff"),
        "{plan}"
    );
    assert!(plan.contains("remove /etc/skiff/firewall.nft"), "{plan}");
    let off = ok(&run(&env, &["setup-node", &a.name, "--no-firewall"]));
    assert!(off.contains("removed (--no-firewall)"), "{off}");
    assert!(!a.exec("nft list tables").contains("skiff"));
    assert_eq!(from_host(&a.address, UNLISTED), "open");
    assert_eq!(from_node(&b, &a.address, UNLISTED), "open");
    assert_eq!(
        a.exec("systemctl is-enabled skiff-firewall.service 2>&1; test -e /etc/skiff/firewall.nft && echo file || echo nofile")
            .split_whitespace()
            .last(),
        Some("nofile")
    );
    let again = ok(&run(&env, &["setup-node", &a.name, "--no-firewall"]));
    assert!(again.contains("nothing changed"), "{again}");

    // and setup-node puts it back, shown first by the dry run
    dry_run_then_load(&env, &a.name);
    assert_eq!(from_host(&a.address, UNLISTED), "dropped");
    assert_eq!(from_node(&b, &a.address, UNLISTED), "dropped");
    stop_listener(&a, &pid);
    let again = ok(&run(&env, &["setup-node", &a.name]));
    assert!(again.contains("nothing changed"), "{again}");
    a.exec("systemctl restart skiff-firewall.service");
    let tables = a.exec("nft list tables");
    assert!(
        tables.contains("table inet operator") && tables.contains("table inet skiff"),
        "{tables}"
    );
    assert!(
        a.exec("nft list table inet operator")
            .contains("chain mine")
    );
}

/// Asks PostgreSQL at `host` for a session from `from` (a raw startup message): `R` = it
/// asks for the password (the address got through).
fn pg_handshake(from: &TestNode, host: &str) -> String {
    from.exec(&format!(
        "python3 - {host} <<'EOF'\n\
import socket, struct, sys\n\
s = socket.create_connection((sys.argv[1], 5432), timeout=5)\n\
p = b'user\\0notes_db\\0database\\0notes_db\\0\\0'\n\
s.sendall(struct.pack('!ii', 8 + len(p), 196608) + p)\n\
print(s.recv(1).decode())\n\
EOF"
    ))
    .trim()
    .to_string()
}

#[test]
fn a_database_port_opens_to_the_apps_other_node_alone_and_stays_open_after_a_reboot() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let a = TestNode::launch_set_up(&env);
    let b = TestNode::launch_set_up(&env);
    let c = TestNode::launch_set_up(&env);
    // what a deploy of a two-node app runs on the services' node
    let said = a.exec(&format!(
        "/usr/local/share/skiff/bin/skiff-node service-ensure notes db postgresql {}",
        b.address
    ));
    assert!(said.contains("service db postgresql ready"), "{said}");
    assert_eq!(
        a.exec("cat /etc/skiff/firewall.d/db-notes_db.nft")
            .lines()
            .last(),
        Some(format!("add element inet skiff db_clients {{ {} }}", b.address).as_str())
    );
    assert_eq!(pg_handshake(&b, &a.address), "R");
    assert_eq!(from_node(&c, &a.address, 5432), "dropped");
    assert_eq!(from_host(&a.address, 5432), "dropped");
    // a second run changes nothing; the set survives the node's reboot
    let again = a.exec(&format!(
        "/usr/local/share/skiff/bin/skiff-node service-ensure notes db postgresql {}",
        b.address
    ));
    assert!(again.contains("ready"), "{again}");
    // /run is new at every boot: the marker tells the rebooted node from the old one
    a.exec("touch /run/skiff-test-before-reboot");
    let _ = a.exec_output("systemctl reboot");
    let start = Instant::now();
    let back = loop {
        std::thread::sleep(Duration::from_millis(500));
        if a.exec_output("! test -e /run/skiff-test-before-reboot && pg_isready -q -h 127.0.0.1")
            .status
            .success()
        {
            break true;
        }
        if start.elapsed() > Duration::from_secs(90) {
            break false;
        }
    };
    assert!(back, "node {} did not come back with PostgreSQL", a.name);
    assert!(
        a.exec("nft list set inet skiff db_clients")
            .contains(&b.address)
    );
    assert_eq!(pg_handshake(&b, &a.address), "R");
    assert_eq!(from_node(&c, &a.address, 5432), "dropped");
    assert_eq!(from_host(&a.address, 5432), "dropped");
    assert_eq!(from_host(&a.address, 22), "open");
}

/// `ssh -o PreferredAuthentications=password` as `user`: what sshd said (it never asks:
/// BatchMode), e.g. `Permission denied (publickey).`
fn password_login(env: &TestEnv, node: &TestNode, user: &str) -> String {
    let out = StdCommand::new("timeout")
        .args(["20", "ssh", "-o", "PreferredAuthentications=password"])
        .args(["-o", "PubkeyAuthentication=no", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            env.known_hosts().display()
        ))
        .arg(format!("{user}@{}", node.address))
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a password login of {user} worked");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// sshd re-executes itself on a reload: wait (at most 5 s) until it takes connections.
fn wait_for_sshd(node: &TestNode) {
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        if from_host(&node.address, 22) == "open" {
            return;
        }
    }
    panic!("sshd on {} does not answer after a reload", node.name);
}

#[test]
fn sshd_takes_keys_only_once_key_logins_work_and_security_upgrades_are_on() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    for user in ["root", "skiff"] {
        let said = password_login(&env, &node, user);
        assert!(
            said.contains("Permission denied (publickey)."),
            "{user}: {said}"
        );
    }
    // the drop-in wins over the distribution's settings
    let effective = node.exec("sshd -T | grep -Ei '^(passwordauthentication|kbdinteractiveauthentication|permitrootlogin) ' | sort");
    assert_eq!(
        effective.lines().collect::<Vec<_>>(),
        [
            "kbdinteractiveauthentication no",
            "passwordauthentication no",
            "permitrootlogin without-password"
        ]
    );

    // without a working key login of the deploy user (sshd's StrictModes refuses keys
    // under a world-writable home; Debian lets a user's own group write), the step is
    // skipped, says why, and passwords work
    node.exec(
        "rm /etc/ssh/sshd_config.d/10-skiff.conf && systemctl reload ssh.service && \
         chmod 777 /home/skiff",
    );
    wait_for_sshd(&node);
    assert!(password_login(&env, &node, "root").contains("publickey,password"));
    let dry = run(&env, &["setup-node", &node.name, "--dry-run"]);
    ok(&dry);
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("key-only SSH: once key logins of the login user and the deploy user work"),
        "{plan}"
    );
    assert!(
        plan.contains("key-only SSH would be skipped now: no key login of `skiff` confirmed"),
        "{plan}"
    );
    let skipped = ok(&run(&env, &["setup-node", &node.name]));
    assert!(
        skipped.contains("key-only SSH not turned on: no key login of `skiff` confirmed"),
        "{skipped}"
    );
    assert!(password_login(&env, &node, "root").contains("publickey,password"));
    // fixed, the next run turns passwords off, the one after changes nothing
    node.exec("chmod 755 /home/skiff");
    let hardened = ok(&run(&env, &["setup-node", &node.name]));
    assert!(hardened.contains("passwords off in sshd"), "{hardened}");
    assert!(password_login(&env, &node, "root").contains("Permission denied (publickey)."));
    let again = ok(&run(&env, &["setup-node", &node.name]));
    assert!(again.contains("nothing changed"), "{again}");
    node.exec("true");

    // unattended-upgrades every day, from the security archive alone
    let periodic = node.exec("apt-config dump APT::Periodic");
    assert!(
        periodic.contains("APT::Periodic::Unattended-Upgrade \"1\";")
            && periodic.contains("APT::Periodic::Update-Package-Lists \"1\";"),
        "{periodic}"
    );
    let dry = node
        .exec("timeout 120 unattended-upgrade --dry-run --debug 2>&1 | grep -i 'allowed origins'");
    assert_eq!(
        dry.trim(),
        "Allowed origins are: origin=Debian,codename=bookworm-security,label=Debian-Security"
    );
}

#[test]
fn a_node_without_systemd_gets_the_firewall_loaded_by_setup_node() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let rootfs = crate::support::setup::set_up_rootfs();
    ok(&env
        .skiff()
        .env("SKIFF_LOCAL_ROOTFS", &rootfs)
        .env("SKIFF_LOCAL_INIT", "none")
        .args(["create-node", "plain", "--provider", "local", "--yes"])
        .output()
        .unwrap());
    let node = TestNode::adopt(&env, "plain");
    assert_ne!(node.exec("ps -p 1 -o comm=").trim(), "systemd");
    // nothing loads the table at boot without systemd: setup-node does
    assert!(!node.exec("nft list tables").contains("skiff"));
    dry_run_then_load(&env, "plain");
    let pid = start_listener(&node, UNLISTED);
    assert_eq!(from_host(&node.address, UNLISTED), "dropped");
    assert_eq!(from_host(&node.address, 22), "open");
    assert_eq!(get(&node.address, "unknown.test", "/").0, 404);
    stop_listener(&node, &pid);
    let again = ok(&run(&env, &["setup-node", "plain"]));
    assert!(again.contains("nothing changed"), "{again}");
    // sshd without systemd took the key-only drop-in too (it came with the rootfs)
    assert!(password_login(&env, &node, "root").contains("Permission denied (publickey)."));
}
