//! A second OS release: a local node of Debian 13 "trixie" (`create-node --provider
//! local --os debian-13`; the release nearest to Ubuntu 24.04 that this network reaches,
//! with PHP 8.4, Python 3.13, Ruby 3.3 and NGINX 1.26 where Debian 12 has 8.2, 3.11, 3.1
//! and 1.22) is set up from scratch and serves every runtime, a rollback and a
//! PostgreSQL app (PostgreSQL 17 there, 15 on Debian 12). The other suites run on Debian
//! 12, from the shared frozen set-up rootfs.

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{field, fixture, get, ok};

#[test]
fn a_debian_13_node_sets_up_and_serves_every_runtime_and_a_database() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let out = env
        .skiff()
        .args([
            "create-node",
            "trixie1",
            "--provider",
            "local",
            "--os",
            "debian-13",
            "--yes",
        ])
        .output()
        .unwrap();
    ok(&out);
    let node = TestNode::adopt(&env, "trixie1");
    assert!(
        node.exec("cat /etc/debian_version")
            .trim()
            .starts_with("13"),
        "{}",
        node.exec("cat /etc/os-release")
    );
    assert_eq!(
        env.cluster().node("trixie1").unwrap().os.as_deref(),
        Some("debian 13")
    );
    ok(&env
        .skiff()
        .args(["setup-node", "trixie1"])
        .output()
        .unwrap());
    // a re-run changes nothing
    let out = env
        .skiff()
        .args(["--json", "setup-node", "trixie1"])
        .output()
        .unwrap();
    ok(&out);

    let update = |dir: &std::path::Path| {
        env.skiff()
            .args(["update", dir.to_str().unwrap(), "--node", "trixie1"])
            .output()
            .unwrap()
    };
    for (kind, host, word) in [
        ("python", "pyapp.test", "python version=1"),
        ("php", "phpapp.test", "php version=1"),
        ("ruby", "rbapp.test", "ruby version=1"),
        ("static", "site.test", "MESSAGE=hello"),
    ] {
        let dir = fixture(&env, kind);
        ok(&update(&dir));
        let (code, body) = get(&node.address, host, "/");
        assert_eq!(code, 200, "{kind}: {body}");
        assert!(body.contains(word), "{kind}: {body}");
        if kind == "python" {
            crate::update::edit(
                &dir.join("app.py"),
                "MESSAGE = \"hello\"",
                "MESSAGE = \"two\"",
            );
            ok(&update(&dir));
            assert_eq!(field(&get(&node.address, host, "/").1, "message"), "two");
            ok(&env.skiff().args(["rollback", host]).output().unwrap());
            assert_eq!(field(&get(&node.address, host, "/").1, "message"), "hello");
        }
    }
    let php = node.exec("php -r 'echo PHP_MAJOR_VERSION, \".\", PHP_MINOR_VERSION;'");
    assert_eq!(php.trim(), "8.4", "not trixie's PHP");

    // PostgreSQL 17: the services suite's app, its migration and a row through the app
    let dir = crate::services::pg_app(&env, false);
    ok(&update(&dir));
    let (code, body) = get(&node.address, "notes.test", "/add?on-trixie");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("rows=on-trixie"), "{body}");
    assert!(
        node.exec("ls /etc/postgresql").trim().starts_with("17"),
        "{}",
        node.exec("ls /etc/postgresql")
    );
    env.assert_no_masters();
}
