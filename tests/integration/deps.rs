//! Ruby apps with Bundler and PHP apps with Composer (issue 11): the node makes one
//! bundle (`bundles/KEY`) or vendor folder (`vendors/KEY`) per lock, offline (the test
//! nodes reach Debian's mirror only), and each release runs with its own.

use std::path::Path;
use std::process::Command as StdCommand;

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{deploy, edit, field, fixture, get};

/// `skiff VERB HOST`, asserting success.
fn skiff_ok(env: &TestEnv, verb: &str, host: &str) {
    let out = env.skiff().args([verb, host]).output().unwrap();
    assert!(
        out.status.success(),
        "skiff {verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Folders below `dir` on the node (one line each, sorted).
fn folders(node: &TestNode, dir: &str) -> Vec<String> {
    node.exec(&format!("ls -1 {dir} 2>/dev/null || true"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Builds tests/fixtures/gems/skiff_greet with `gem build` into `app/vendor/cache`.
fn build_test_gem(app: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gems/skiff_greet");
    let cache = app.join("vendor/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let out = StdCommand::new("gem")
        .args(["build", "skiff_greet.gemspec", "--output"])
        .arg(cache.join("skiff_greet-1.0.0.gem"))
        .current_dir(&src)
        .output()
        .expect("`gem` runs (install Debian's ruby: .ci/run does)");
    assert!(
        out.status.success(),
        "gem build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Bundler app with `vendor/cache` (a gem built here) and a gem Debian installed
/// (rack): one bundle for both versions, deployed, redeployed and rolled back, with
/// HOST, `1.HOST` and `prev.HOST` answering; build commands run with the bundle.
#[test]
fn bundler_app_with_vendor_cache() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "ruby-bundler");
    build_test_gem(&dir);
    // the lock names the rack Debian's ruby-rack installed on the node
    let rack = node.exec("ruby -e 'print Gem::Specification.find_by_name(\"rack\").version'");
    assert!(!rack.trim().is_empty());
    edit(
        &dir.join("Gemfile.lock"),
        "rack (2.2.22)",
        &format!("rack ({})", rack.trim()),
    );
    let host = "rbdeps.test";

    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 1);
    let (code, body) = get(&node.address, host, "/");
    assert_eq!(code, 200, "{body}");
    assert_eq!(field(&body, "version"), "1", "{body}");
    assert_eq!(field(&body, "greeting"), "from-skiff-greet", "{body}");
    assert_eq!(field(&body, "rack"), rack.trim(), "{body}");
    assert_eq!(field(&body, "dev"), "no", "{body}");
    let bundles = folders(&node, "/srv/skiff/apps/rbdeps/bundles");
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    assert_eq!(
        field(&body, "gem"),
        format!(
            "/srv/skiff/apps/rbdeps/bundles/{}/gems/skiff_greet-1.0.0",
            bundles[0]
        ),
        "{body}"
    );
    // the build command ran `bundle exec` with the bundle
    let (code, built) = get(&node.address, host, "/built.txt");
    assert_eq!(code, 200, "{built}");
    assert_eq!(built.trim(), "greeting=from-skiff-greet");
    // Bundler wrote nothing into the release (no .bundle/, no vendor/bundle)
    assert_eq!(
        node.exec(
            "ls -d /srv/skiff/apps/rbdeps/releases/1/.bundle /srv/skiff/apps/rbdeps/releases/1/vendor/bundle 2>/dev/null | wc -l"
        )
        .trim(),
        "0"
    );

    // version 2: same lock, the bundle is reused
    edit(&dir.join("config.ru"), "\"hello\"", "\"bonjour\"");
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 2);
    assert_eq!(folders(&node, "/srv/skiff/apps/rbdeps/bundles"), bundles);
    let check = |h: &str, version: &str, message: &str| {
        let (code, body) = get(&node.address, h, "/");
        assert_eq!(code, 200, "{h}: {body}");
        assert_eq!(field(&body, "version"), version, "{h}: {body}");
        assert_eq!(field(&body, "message"), message, "{h}: {body}");
        assert_eq!(field(&body, "greeting"), "from-skiff-greet", "{h}: {body}");
    };
    check(host, "2", "bonjour");
    check(&format!("1.{host}"), "1", "hello");
    check(&format!("prev.{host}"), "1", "hello");

    skiff_ok(&env, "rollback", host);
    check(host, "1", "hello");
    check(&format!("prev.{host}"), "2", "bonjour");
    check(&format!("2.{host}"), "2", "bonjour");
    env.assert_no_masters();
}

/// A PHP app whose dependencies come through Composer (a path repository shipped with
/// the app, composer.lock committed): `composer install --no-dev` once per key on the
/// node, `vendor/` hard-linked into each release; deployed, redeployed (same vendor),
/// rolled back; a changed package makes a new vendor folder.
#[test]
fn composer_app_with_path_repository() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "php-composer");
    let host = "phpdeps.test";
    let vendors = "/srv/skiff/apps/phpdeps/vendors";

    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 1);
    let (code, body) = get(&node.address, host, "/");
    assert_eq!(code, 200, "{body}");
    assert_eq!(field(&body, "version"), "1", "{body}");
    assert_eq!(field(&body, "message"), "hello", "{body}");
    assert_eq!(field(&body, "greeting"), "from-acme", "{body}");
    assert_eq!(field(&body, "dev"), "no", "require-dev is left out: {body}");
    assert_eq!(
        field(&body, "vendor"),
        "/srv/skiff/apps/phpdeps/releases/1/vendor",
        "{body}"
    );
    let keys = folders(&node, vendors);
    assert_eq!(keys.len(), 1, "{keys:?}");
    // a real folder (no link NGINX or PHP would resolve elsewhere), the package copied
    assert_eq!(
        node.exec(
            "test -d /srv/skiff/apps/phpdeps/releases/1/vendor && ! test -L /srv/skiff/apps/phpdeps/releases/1/vendor && ! test -L /srv/skiff/apps/phpdeps/releases/1/vendor/acme/greet && echo ok"
        )
        .trim(),
        "ok"
    );
    // build commands see vendor/
    let (code, built) = get(&node.address, host, "/built.txt");
    assert_eq!(code, 200, "{built}");
    assert_eq!(built.trim(), "greeting=from-acme");

    // version 2: app code only, the vendor folder is reused (and not shipped back)
    edit(&dir.join("src/Message.php"), "\"hello\"", "\"bonjour\"");
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 2);
    assert_eq!(folders(&node, vendors), keys);
    let check = |h: &str, version: &str, message: &str| {
        let (code, body) = get(&node.address, h, "/");
        assert_eq!(code, 200, "{h}: {body}");
        assert_eq!(field(&body, "version"), version, "{h}: {body}");
        assert_eq!(field(&body, "message"), message, "{h}: {body}");
        assert_eq!(
            field(&body, "vendor"),
            format!("/srv/skiff/apps/phpdeps/releases/{version}/vendor"),
            "{h}: {body}"
        );
    };
    check(host, "2", "bonjour");
    check(&format!("1.{host}"), "1", "hello");
    check(&format!("prev.{host}"), "1", "hello");

    skiff_ok(&env, "rollback", host);
    check(host, "1", "hello");
    check(&format!("prev.{host}"), "2", "bonjour");
    skiff_ok(&env, "rollback", host);
    check(host, "2", "bonjour");

    // the path package's code changed (composer.lock did not): a new vendor folder
    edit(
        &dir.join("packages/greet/src/Greeter.php"),
        "from-acme",
        "from-acme-2",
    );
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 3);
    assert_eq!(folders(&node, vendors).len(), 2);
    let (code, body) = get(&node.address, host, "/");
    assert_eq!(code, 200, "{body}");
    assert_eq!(field(&body, "greeting"), "from-acme-2", "{body}");
    assert_eq!(
        field(
            &get(&node.address, &format!("prev.{host}"), "/").1,
            "greeting"
        ),
        "from-acme"
    );
    env.assert_no_masters();
}
