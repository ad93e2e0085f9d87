//! HTTPS on real nodes (issue 16): `[tls] acme = true` ordered by the node's certbot from a
//! real ACME server (Debian's pebble, tests/support/acme.rs), served by NGINX with the
//! redirect and the challenge path; a forced renewal under a request loop; the `nginx -t`
//! gate; `skiff tls add` and its checks; two nodes whose challenges relay.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::acme::{
    HttpsLoop, Pebble, https_get, https_headers, make_ca, make_csr, openssl, pebble_available,
    served_serial,
};
use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{get, run_update};

/// A PHP app that says its version, the scheme it sees and its host.
fn php_app(env: &TestEnv, name: &str, hosts: &[&str], tls: &str) -> PathBuf {
    let dir = env.root().join(format!("app-{name}"));
    std::fs::create_dir_all(dir.join("public")).unwrap();
    let hostnames: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    std::fs::write(
        dir.join("app.toml"),
        format!(
            "name = \"{name}\"\nruntime = \"php\"\nhostnames = [{}]\n[php]\ndocroot = \"public\"\n{tls}",
            hostnames.join(", ")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("public/index.php"),
        "<?php\nheader('Content-Type: text/plain');\n$s = ($_SERVER['HTTPS'] ?? '') === 'on' ? 'https' : 'http';\n\
         printf(\"version=%s scheme=%s host=%s\\n\", getenv('SKIFF_VERSION'), $s, $_SERVER['HTTP_HOST'] ?? '');\n",
    )
    .unwrap();
    dir
}

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

fn account(env: &TestEnv, pebble: &Pebble) {
    let out = env
        .skiff()
        .args(["tls", "account", "--email", "ops@example.org", "--server"])
        .arg(&pebble.directory)
        .arg("--ca-bundle")
        .arg(&pebble.listener_ca)
        .output()
        .unwrap();
    ok(&out, "tls account");
}

/// `skiff status HOST`: whether it exited 0, and what it printed.
fn status(env: &TestEnv, host: &str) -> (bool, String) {
    let out = env.skiff().args(["status", host]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `curl -I http://HOST/PATH`: (status, Location).
fn head(address: &str, host: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "10",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg("-H")
        .arg(format!("Host: {host}"))
        .arg(format!("http://{address}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, loc) = text.split_once(' ').unwrap_or((&text, ""));
    (code.parse().unwrap_or(0), loc.to_string())
}

#[test]
fn acme_certificate_redirect_renewal_and_the_nginx_gate() {
    if !nodes_available() || !pebble_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let pebble = Pebble::start(&env);
    for h in ["tlsapp.test", "www.tlsapp.test", "prev.tlsapp.test"] {
        pebble.add_a(h, &node.address);
    }
    let dir = php_app(
        &env,
        "tlsapp",
        &["tlsapp.test", "www.tlsapp.test"],
        "[tls]\nacme = true\n",
    );

    // without an account, nothing is deployed
    let out = run_update(&env, &dir, &node);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skiff tls account"), "{err}");
    assert_eq!(
        get(&node.address, "tlsapp.test", "/").0,
        404,
        "deployed anyway"
    );

    account(&env, &pebble);
    let cluster = std::fs::read_to_string(&env.state).unwrap();
    assert!(
        cluster.contains("[tls]") && !cluster.contains("PRIVATE KEY"),
        "{cluster}"
    );
    let out = env
        .skiff()
        .args(["--json", "update"])
        .arg(&dir)
        .args(["--node", &node.name])
        .output()
        .unwrap();
    ok(&out, &format!("update (pebble: {})", pebble.logs()));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["urls"][0], "https://tlsapp.test/", "{report}");
    let cert = &report["certificates"][&node.name];
    assert_eq!(cert["source"], "acme", "{report}");
    assert!(cert["days_left"].as_i64().unwrap() > 30, "{report}");

    // HTTPS serves the app, which sees https; every name of the certificate works
    for host in ["tlsapp.test", "www.tlsapp.test"] {
        let (code, body) = https_get(&node.address, host, "/", &pebble.root);
        assert_eq!(code, 200, "{host}: {body}");
        assert!(body.contains("scheme=https"), "{body}");
        assert!(body.contains(&format!("host={host}")), "{body}");
    }
    // a TLS client that does not trust pebble's root is refused (a real certificate chain)
    let untrusted = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-m", "10", "--resolve"])
        .arg(format!("tlsapp.test:443:{}", node.address))
        .arg("https://tlsapp.test/")
        .status()
        .unwrap();
    assert!(!untrusted.success());
    // plain HTTP redirects, but the challenge path and the version hosts
    assert_eq!(
        head(&node.address, "tlsapp.test", "/a?b=1"),
        (301, "https://tlsapp.test/a?b=1".to_string())
    );
    assert_eq!(head(&node.address, "prev.tlsapp.test", "/").0, 301);
    node.exec("echo token-body > /var/lib/skiff/acme/.well-known/acme-challenge/skiff-probe");
    let (code, body) = get(
        &node.address,
        "tlsapp.test",
        "/.well-known/acme-challenge/skiff-probe",
    );
    assert_eq!((code, body.trim()), (200, "token-body"));
    let (code, body) = get(&node.address, "1.tlsapp.test", "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("scheme=http "), "{body}");
    // the key is root's alone; certbot renews by itself, trusting the test CA
    assert_eq!(
        node.exec("stat -c '%a %U' /etc/skiff/tls/tlsapp/privkey.pem")
            .trim(),
        "600 root"
    );
    assert_eq!(
        node.exec("systemctl is-enabled certbot.timer").trim(),
        "enabled"
    );
    assert!(
        node.exec("systemctl show certbot.service -p Environment")
            .contains("REQUESTS_CA_BUNDLE=/etc/skiff/tls/acme-ca.pem")
    );
    assert!(
        node.exec("cat /etc/letsencrypt/renewal/tlsapp.conf")
            .contains("skiff-node tls-deployed")
    );

    // a second update keeps the certificate (no new order)
    let before = served_serial(&node.address, "tlsapp.test");
    assert!(before.starts_with("serial="), "{before}");
    std::fs::write(dir.join("public/extra.txt"), "x").unwrap();
    ok(&run_update(&env, &dir, &node), "second update");
    assert_eq!(served_serial(&node.address, "tlsapp.test"), before);

    // a forced renewal under a request loop: a new certificate, no failed request
    let traffic = HttpsLoop::start(&node.address, "tlsapp.test", &pebble.root, 2);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = env
        .skiff()
        .args(["tls", "renew", "tlsapp.test"])
        .output()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let seen = traffic.stop();
    ok(&out, &format!("tls renew (pebble: {})", pebble.logs()));
    let after = served_serial(&node.address, "tlsapp.test");
    assert_ne!(after, before, "the renewal did not change the certificate");
    let failed: Vec<&(u16, String)> = seen.iter().filter(|(c, _)| *c != 200).collect();
    assert!(seen.len() >= 10, "only {} requests ran", seen.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );

    // a renewal whose result NGINX refuses (its key does not match) is never loaded: the
    // deploy hook (what certbot.timer runs) puts everything back, and status says so
    let conf = node.exec("md5sum /etc/nginx/conf.d/skiff.conf /etc/skiff/sites/nginx/tlsapp.tls.conf /etc/skiff/tls/tlsapp/*.pem");
    node.exec("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out \"$(readlink -f /etc/letsencrypt/live/tlsapp/privkey.pem)\"");
    let hook = node.exec_output("RENEWED_LINEAGE=/etc/letsencrypt/live/tlsapp /usr/local/share/skiff/bin/skiff-node tls-deployed");
    assert_eq!(
        hook.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&hook.stderr)
    );
    assert!(String::from_utf8_lossy(&hook.stderr).contains("previous one serves on"));
    assert_eq!(node.exec("md5sum /etc/nginx/conf.d/skiff.conf /etc/skiff/sites/nginx/tlsapp.tls.conf /etc/skiff/tls/tlsapp/*.pem"), conf);
    assert_eq!(served_serial(&node.address, "tlsapp.test"), after);
    node.exec("/usr/local/share/skiff/bin/skiff-node reload nginx");
    assert_eq!(
        https_get(&node.address, "tlsapp.test", "/", &pebble.root).0,
        200
    );
    let (fine, text) = status(&env, "tlsapp.test");
    assert!(!fine, "status did not report the failed renewal:\n{text}");
    assert!(
        text.contains("certificate (acme) expires") && text.contains("nginx -t refused"),
        "{text}"
    );

    // destroy-app takes the certificate, its renewal and the HTTPS server along
    ok(
        &env.skiff()
            .args(["destroy-app", "tlsapp.test", "--yes"])
            .output()
            .unwrap(),
        "destroy-app",
    );
    let left = node
        .exec("ls /etc/skiff/tls/ /etc/skiff/sites/nginx/ /etc/letsencrypt/renewal/ 2>/dev/null");
    assert!(!left.contains("tlsapp"), "{left}");
    assert_eq!(
        https_get(&node.address, "tlsapp.test", "/", &pebble.root).0,
        0
    );
}

/// A throwaway CA made with `openssl ca`, which can date a certificate in the past.
struct TestCa {
    dir: PathBuf,
}

impl TestCa {
    fn new(root: &Path) -> TestCa {
        let dir = root.join("ca");
        std::fs::create_dir_all(dir.join("newcerts")).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = test\n[test]\ndatabase = {d}/index.txt\nnew_certs_dir = {d}/newcerts\n\
                 serial = {d}/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
                 [any]\ncommonName = supplied\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
        make_ca(&p("root.key"), &p("root.pem"), "skiff test root");
        TestCa { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root.pem")
    }

    /// A key and a certificate for `names`, valid from `start` to `end`
    /// (YYYYMMDDHHMMSSZ): (cert, key).
    fn issue(&self, tag: &str, names: &[&str], start: &str, end: &str) -> (PathBuf, PathBuf) {
        let p = |f: &str| self.dir.join(f).to_string_lossy().into_owned();
        let key = p(&format!("{tag}.key"));
        let csr = p(&format!("{tag}.csr"));
        let cert = p(&format!("{tag}.pem"));
        make_csr(&key, &csr, names[0]);
        let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        std::fs::write(
            self.dir.join(format!("{tag}.ext")),
            format!(
                "[san]\nsubjectAltName = {}\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
                sans.join(",")
            ),
        )
        .unwrap();
        openssl(&[
            "ca",
            "-batch",
            "-config",
            &p("ca.cnf"),
            "-cert",
            &p("root.pem"),
            "-keyfile",
            &p("root.key"),
            "-in",
            &csr,
            "-out",
            &cert,
            "-notext",
            "-startdate",
            start,
            "-enddate",
            end,
            "-extfile",
            &p(&format!("{tag}.ext")),
            "-extensions",
            "san",
        ]);
        (PathBuf::from(cert), PathBuf::from(key))
    }
}

fn utc(offset_days: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("{offset_days} days"), "+%Y%m%d%H%M%SZ"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn tls_add_checks_before_upload_then_serves() {
    if !nodes_available() || !pebble_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = php_app(&env, "addapp", &["addapp.test"], "");
    ok(&run_update(&env, &dir, &node), "update");
    let ca = TestCa::new(env.root());
    let (now, later, past, older) = (utc(-1), utc(30), utc(-10), utc(-20));
    let (good, good_key) = ca.issue("good", &["addapp.test", "prev.addapp.test"], &now, &later);
    let (_, other_key) = ca.issue("other", &["addapp.test", "prev.addapp.test"], &now, &later);
    let (expired, expired_key) = ca.issue(
        "expired",
        &["addapp.test", "prev.addapp.test"],
        &older,
        &past,
    );
    let (narrow, narrow_key) = ca.issue("narrow", &["addapp.test"], &now, &later);
    let add = |cert: &Path, key: &Path| {
        env.skiff()
            .args(["tls", "add", "addapp.test", "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--ca")
            .arg(ca.root())
            .output()
            .unwrap()
    };
    let nothing =
        || node.exec("ls -A /etc/skiff/tls/ /var/lib/skiff/staging/ | grep -v acme-ca.pem || true");
    let empty = nothing();
    for (cert, key, says) in [
        (&good, &other_key, "does not belong to the certificate"),
        (&expired, &expired_key, "expired"),
        (&narrow, &narrow_key, "does not cover `prev.addapp.test`"),
    ] {
        let out = add(cert, key);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "expected `{says}` in:\n{err}");
        assert_eq!(nothing(), empty, "something was uploaded");
    }
    // a chain that does not lead to a trusted root (no --ca)
    let out = env
        .skiff()
        .args(["tls", "add", "addapp.test", "--cert"])
        .arg(&good)
        .arg("--key")
        .arg(&good_key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not verify"), "{err}");
    assert_eq!(nothing(), empty, "something was uploaded");

    let out = add(&good, &good_key);
    ok(&out, "tls add");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("version hosts (N.addapp.test) stay HTTP"),
        "{err}"
    );
    let (code, body) = https_get(&node.address, "addapp.test", "/", &ca.root());
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("scheme=https"), "{body}");
    assert_eq!(
        node.exec("stat -c '%a %U' /etc/skiff/tls/addapp/privkey.pem")
            .trim(),
        "600 root"
    );
    assert_eq!(
        node.exec("cat /etc/skiff/tls/addapp/source").trim(),
        "custom"
    );
    assert_eq!(head(&node.address, "addapp.test", "/").0, 301);
    // HTTPS for a name no certificate has: the handshake is refused
    assert_eq!(
        https_get(&node.address, "unknown.test", "/", &ca.root()).0,
        0
    );
    // the version hosts stay HTTP, until a wildcard certificate covers them
    assert_eq!(
        https_get(&node.address, "1.addapp.test", "/", &ca.root()).0,
        0
    );
    let (wild, wild_key) = ca.issue("wild", &["addapp.test", "*.addapp.test"], &now, &later);
    let out = add(&wild, &wild_key);
    ok(&out, "tls add (wildcard)");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("stay HTTP"));
    let (code, body) = https_get(&node.address, "1.addapp.test", "/", &ca.root());
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("scheme=https host=1.addapp.test"), "{body}");
    // app.toml's [tls] (no acme) reaches the custom certificate's server at the next update
    std::fs::write(
        dir.join("app.toml"),
        std::fs::read_to_string(dir.join("app.toml")).unwrap() + "[tls]\nhsts = true\n",
    )
    .unwrap();
    ok(&run_update(&env, &dir, &node), "update with [tls] hsts");
    let headers = https_headers(&node.address, "2.addapp.test", &ca.root());
    assert!(headers.starts_with("http/2 200"), "{headers}");
    assert!(headers.contains("strict-transport-security"), "{headers}");
    let (fine, text) = status(&env, "addapp.test");
    assert!(fine, "{text}");
    assert!(text.contains("certificate (custom) expires"), "{text}");
    // the key is nowhere else on the node
    let key_text = std::fs::read_to_string(&wild_key).unwrap();
    let line = key_text.lines().nth(1).unwrap();
    let found = node.exec_output(&format!(
        "grep -rlF -- '{line}' /var/lib/skiff /etc/nginx /srv/skiff /tmp"
    ));
    assert!(
        found.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&found.stdout)
    );
    // and never in cluster.toml
    assert!(!std::fs::read_to_string(&env.state).unwrap().contains(line));
}

#[test]
fn two_nodes_relay_challenges_to_each_other() {
    if !nodes_available() || !pebble_available() {
        return;
    }
    let env = TestEnv::new();
    let n1 = TestNode::launch_set_up(&env);
    let n2 = TestNode::launch_set_up(&env);
    let pebble = Pebble::start(&env);
    // DNS points at node 1 only: node 2's order is answered through node 1's relay
    for h in ["relay.test", "prev.relay.test"] {
        pebble.add_a(h, &n1.address);
    }
    account(&env, &pebble);
    let dir = php_app(
        &env,
        "relay",
        &["relay.test"],
        "[tls]\nacme = true\nredirect = false\nhsts = true\n",
    );
    let out = env
        .skiff()
        .arg("update")
        .arg(&dir)
        .args(["--node", &n1.name, "--node", &n2.name])
        .output()
        .unwrap();
    ok(
        &out,
        &format!("update on two nodes (pebble: {})", pebble.logs()),
    );
    for n in [&n1, &n2] {
        let (code, body) = https_get(&n.address, "relay.test", "/", &pebble.root);
        assert_eq!(code, 200, "node {}: {body}", n.name);
        assert_eq!(n.exec("cat /etc/skiff/tls/relay/source").trim(), "acme");
    }
    // node 2's tokens reached pebble through node 1
    let log = n1.exec("grep -c 'acme-challenge' /var/log/nginx/skiff-access.log || true");
    assert!(
        log.trim().parse::<u32>().unwrap_or(0) >= 4,
        "node 1 saw {log} challenge requests"
    );
    // hsts = true: HTTPS answers say so
    let headers = https_headers(&n1.address, "relay.test", &pebble.root);
    assert!(
        headers.contains("strict-transport-security: max-age=63072000"),
        "{headers}"
    );
    // redirect = false: plain HTTP serves the app
    assert_eq!(get(&n1.address, "relay.test", "/").0, 200);
    // a relayed request is never relayed again (no loop): a token neither node has is 404
    let (code, _) = get(
        &n1.address,
        "relay.test",
        "/.well-known/acme-challenge/none",
    );
    assert_eq!(code, 404);
}

#[test]
fn a_failed_order_keeps_http_serving_and_status_says_so() {
    if !nodes_available() || !pebble_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let pebble = Pebble::start(&env);
    account(&env, &pebble);
    // no DNS record for the host yet: the CA cannot validate it
    // (with a web cron every 2 s, which must pass the redirect once HTTPS is on)
    let dir = php_app(
        &env,
        "failapp",
        &["failapp.test"],
        "[tls]\nacme = true\n\n[[cron]]\ncalendar = \"*:*:0/2\"\npath = \"/\"\n",
    );
    let out = run_update(&env, &dir, &node);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("version 1 of `failapp` is live over HTTP, but its certificate is not"),
        "{err}"
    );
    let (code, body) = get(&node.address, "failapp.test", "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("version=1 scheme=http"), "{body}");
    let (fine, text) = status(&env, "failapp.test");
    assert!(!fine, "{text}");
    assert!(
        text.contains("no certificate yet") && text.contains("LAST ATTEMPT failed"),
        "{text}"
    );
    // DNS fixed: the next update gets it
    for h in ["failapp.test", "prev.failapp.test"] {
        pebble.add_a(h, &node.address);
    }
    ok(&run_update(&env, &dir, &node), "update after the DNS fix");
    let (code, body) = https_get(&node.address, "failapp.test", "/", &pebble.root);
    assert_eq!(code, 200, "{body}");
    let (fine, text) = status(&env, "failapp.test");
    assert!(fine, "{text}");
    assert!(text.contains("certificate (acme) expires"), "{text}");
    // plain HTTP redirects now, but the node's own web cron is still served (not 301)
    assert_eq!(head(&node.address, "failapp.test", "/").0, 301);
    let log = "/var/log/nginx/skiff-access.log";
    let from = node
        .exec(&format!("wc -l < {log}"))
        .trim()
        .parse::<usize>()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(5));
    let cron = node.exec(&format!(
        "tail -n +{} {log} | grep ' failapp.test 127.0.0.1 ' || true",
        from + 1
    ));
    assert!(
        cron.contains("\"GET / HTTP/1.1\" 200"),
        "no web cron request answered 200:\n{cron}"
    );
    assert!(
        !cron.contains("\" 301 "),
        "a web cron request was redirected:\n{cron}"
    );
}
