//! Symlinks never lead a request out of a release (issue 10, item 1): the laptop refuses
//! a tree whose links resolve outside the app folder, and a node never follows a link
//! inside a release, whoever placed it there.

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{deploy, fixture, get, run_update};

/// The hostile tester's chain: each link alone stays inside the tree, `s` is `/`
/// (seven levels up from `static/` or `public/` of `/srv/skiff/apps/APP/releases/N`).
const CHAIN: &[(&str, &str)] = &[
    ("y", ".."),
    ("x", "y/.."),
    ("w", "x/.."),
    ("v", "w/.."),
    ("u", "v/.."),
    ("t", "u/.."),
    ("s", "t/.."),
];

/// Shell commands that make the chain in `dir` (a folder on the node), owned by skiff as
/// if a sync had put them there.
fn chain_on_node(dir: &str) -> String {
    CHAIN
        .iter()
        .map(|(name, target)| {
            format!("ln -s '{target}' '{dir}/{name}' && chown -h skiff:skiff '{dir}/{name}'")
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Asserts `path` on `host` is not served (not 200, and none of `secret` in the body).
fn refused(node: &TestNode, host: &str, path: &str, secret: &str) {
    let (code, body) = get(&node.address, host, path);
    assert_ne!(code, 200, "{host}{path} was served:\n{body}");
    assert!(!body.contains(secret), "{host}{path} leaked:\n{body}");
}

#[test]
fn update_refuses_a_chain_of_links_leading_out_and_keeps_serving() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "static");
    deploy(&env, &node, &dir);
    let (code, before) = get(&node.address, "site.test", "/");
    assert_eq!(code, 200, "{before}");

    for (name, target) in CHAIN {
        std::os::unix::fs::symlink(target, dir.join("static").join(name)).unwrap();
    }
    let out = run_update(&env, &dir, &node);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("static/s"), "{stderr}");
    assert!(stderr.contains("inside the app folder"), "{stderr}");

    // nothing changed on the node
    let (code, after) = get(&node.address, "site.test", "/");
    assert_eq!(code, 200, "{after}");
    assert_eq!(after, before);
    refused(&node, "site.test", "/s/etc/passwd", "root:x:0:0");
    let releases = node.exec("ls /srv/skiff/apps/site/releases");
    assert!(!releases.contains('2'), "{releases}");

    // An in-tree link is shipped, but NGINX does not follow it: a static app answers 404
    // (skiff's `serve` does the same), never the file and never an error.
    for (name, _) in CHAIN {
        std::fs::remove_file(dir.join("static").join(name)).unwrap();
    }
    std::os::unix::fs::symlink("index.html", dir.join("static/home.html")).unwrap();
    deploy(&env, &node, &dir);
    assert_eq!(
        node.exec("readlink /srv/skiff/apps/site/releases/2/static/home.html")
            .trim(),
        "index.html"
    );
    let (code, _) = get(&node.address, "site.test", "/home.html");
    assert_eq!(code, 404);
    let (code, body) = get(&node.address, "site.test", "/");
    assert_eq!(code, 200);
    assert_eq!(body, before);
}

#[test]
fn a_node_never_follows_a_link_out_of_a_release() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let site = fixture(&env, "static");
    let php = fixture(&env, "php");
    deploy(&env, &node, &site);
    deploy(&env, &node, &php);
    node.exec("echo 'SKIFF_SECRET=hunter2' > /srv/skiff/apps/phpapp/releases/1/secret.txt");

    // placed by other means: straight into the live releases
    node.exec(&chain_on_node("/srv/skiff/apps/site/releases/1/static"));
    node.exec(&chain_on_node("/srv/skiff/apps/phpapp/releases/1/public"));
    // one link straight to skiff's own (skiff-owned) folder, so an owner check alone
    // would follow it
    node.exec(
        "ln -s ../../../.. /srv/skiff/apps/site/releases/1/static/apps && \
         ln -s ../../../.. /srv/skiff/apps/phpapp/releases/1/public/apps && \
         chown -h skiff:skiff /srv/skiff/apps/*/releases/1/*/apps",
    );
    // the links do lead out (so a refusal below is the node's doing)
    assert!(
        node.exec("cat /srv/skiff/apps/site/releases/1/static/s/etc/passwd")
            .contains("root:")
    );

    for host in ["site.test", "phpapp.test"] {
        refused(&node, host, "/s/etc/passwd", "root:x:0:0");
        refused(&node, host, "/s/var/lib/skiff/state.toml", "phpapp");
        refused(
            &node,
            host,
            "/s/srv/skiff/apps/phpapp/releases/1/secret.txt",
            "hunter2",
        );
        refused(&node, host, "/apps/phpapp/releases/1/secret.txt", "hunter2");
        refused(&node, host, "/apps/site/releases/1/app.toml", "site.test");
        refused(
            &node,
            host,
            "/apps/phpapp/releases/1/app.toml",
            "phpapp.test",
        );
    }

    // both apps still serve
    let (code, body) = get(&node.address, "site.test", "/");
    assert_eq!(code, 200, "{body}");
    let (code, body) = get(&node.address, "phpapp.test", "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("php version=1"), "{body}");
    let (code, body) = get(&node.address, "phpapp.test", "/index.php?x=1");
    assert_eq!(code, 200, "{body}");
    let (code, body) = get(&node.address, "phpapp.test", "/style.css");
    assert_eq!(code, 200, "{body}");
    // a path that is nowhere still reaches the app (front controllers need that)
    let (code, _) = get(&node.address, "phpapp.test", "/no/such/page");
    assert_eq!(code, 404);
}
