//! The hostile corpus, through the real binary and with no node: names, host names,
//! paths, environment values, TOML garbage, command-line arguments and app trees no
//! deploy should accept. Each must end in a clear error with exit 2 (nothing attempted)
//! that names the file, key, argument or path at fault and says what to do; never a
//! panic, a hang, or a connection attempt. (What must round-trip instead, odd file names
//! and env values, is proved on real nodes in `sync::`, `operate::` and `defects::`.)

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// A folder with a state file naming one node that does not exist (an address no one
/// answers on) and app `blog.test` on it: a command that got past its checks would try
/// to reach it (exit 3).
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let dir = tempfile::Builder::new()
            .prefix("skiff-hostile.")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        std::fs::write(
            dir.path().join("cluster.toml"),
            "schema = 1\ndefault_node = \"web1\"\n[nodes.web1]\naddress = \"10.250.0.254\"\nuser = \"root\"\nprovider = \"ssh\"\n[apps.\"blog.test\"]\nname = \"blog\"\nnodes = [\"web1\"]\n",
        )
        .unwrap();
        World { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn skiff(&self, args: &[&str]) -> Output {
        assert_cmd::Command::new(env!("CARGO_BIN_EXE_skiff"))
            .env("HOME", self.root().join("home"))
            .env("NO_COLOR", "1")
            .env_remove("SKIFF_STATE")
            .env_remove("XDG_CONFIG_HOME")
            .current_dir(self.root())
            .arg("--state")
            .arg(self.root().join("cluster.toml"))
            .args(args)
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap()
    }

    /// A Python app folder `app/` whose app.toml is `toml`.
    fn app(&self, toml: &[u8]) -> PathBuf {
        let dir = self.root().join("app");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app.toml"), toml).unwrap();
        std::fs::write(dir.join("app.py"), "def application(e, s): pass\n").unwrap();
        dir
    }
}

/// Exit 2, an `error:` naming `needle`, a `hint:`, no panic.
fn refused(what: &str, out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit {:?}\n{err}",
        out.status
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(err.contains("error:"), "{what}: {err}");
    assert!(
        err.contains(needle),
        "{what}: the error does not name `{needle}`:\n{err}"
    );
    assert!(err.contains("hint:"), "{what}: no hint:\n{err}");
}

const GOOD: &str = "name = \"blog\"\nruntime = \"python\"\nhostnames = [\"blog.test\"]\n[python]\nwsgi = \"app:application\"\n";

#[test]
fn hostile_app_toml_values_are_refused_naming_the_key() {
    let w = World::new();
    let long = "a".repeat(100);
    let label = format!("{}.test", "a".repeat(64));
    let huge_host = format!("{}.test", ["abc"; 90].join("."));
    let big_value = "v".repeat(200 * 1024);
    let cases: Vec<(String, String, &str)> = vec![
        ("empty name".into(), GOOD.replace("\"blog\"", "\"\""), "name"),
        ("name with a space".into(), GOOD.replace("\"blog\"", "\"Bad Name\""), "name"),
        ("name with a dash first".into(), GOOD.replace("\"blog\"", "\"-x\""), "name"),
        ("name too long".into(), GOOD.replace("\"blog\"", &format!("\"{long}\"")), "name"),
        ("non-ASCII name".into(), GOOD.replace("\"blog\"", "\"blög\""), "name"),
        ("shell in a name".into(), GOOD.replace("\"blog\"", "\"a;rm -rf /\""), "name"),
        ("path in a name".into(), GOOD.replace("\"blog\"", "\"../x\""), "name"),
        ("unknown runtime".into(), GOOD.replace("\"python\"", "\"java\""), "runtime"),
        ("runtime of the wrong type".into(), GOOD.replace("\"python\"", "5"), "runtime"),
        ("no host names".into(), GOOD.replace("[\"blog.test\"]", "[]"), "hostnames"),
        ("host with a dash first".into(), GOOD.replace("blog.test", "-a.test"), "hostnames"),
        ("empty label".into(), GOOD.replace("blog.test", "a..test"), "hostnames"),
        ("underscore".into(), GOOD.replace("blog.test", "a_b.test"), "hostnames"),
        ("64-byte label".into(), GOOD.replace("blog.test", &label), "hostnames"),
        ("host over 253 bytes".into(), GOOD.replace("blog.test", &huge_host), "hostnames"),
        ("newline in a host".into(), GOOD.replace("blog.test", "a.test\\n"), "hostnames"),
        ("non-ASCII host".into(), GOOD.replace("blog.test", "é.test"), "hostnames"),
        ("shell in a host".into(), GOOD.replace("blog.test", "a.test;id"), "hostnames"),
        ("host of the wrong type".into(), GOOD.replace("[\"blog.test\"]", "[1]"), "hostnames"),
        ("env name with a dash".into(), format!("{GOOD}[env]\n\"A-B\" = \"x\"\n"), "A-B"),
        ("NUL in an env value".into(), format!("{GOOD}[env]\nA = \"a\\u0000b\"\n"), "env"),
        ("newline in an env value".into(), format!("{GOOD}[env]\nA = \"a\\nb\"\n"), "env"),
        ("200 KB env value".into(), format!("{GOOD}[env]\nA = \"{big_value}\"\n"), "env"),
        ("negative keep".into(), format!("keep = -1\n{GOOD}"), "keep"),
        ("keep of the wrong type".into(), format!("keep = \"x\"\n{GOOD}"), "keep"),
        ("misspelt key".into(), format!("nmae = \"x\"\n{GOOD}"), "nmae"),
        (
            "docroot out of the app".into(),
            "name = \"blog\"\nruntime = \"php\"\nhostnames = [\"blog.test\"]\n[php]\ndocroot = \"../etc\"\n".into(),
            "docroot",
        ),
        (
            "absolute docroot".into(),
            "name = \"blog\"\nruntime = \"php\"\nhostnames = [\"blog.test\"]\n[php]\ndocroot = \"/etc\"\n".into(),
            "docroot",
        ),
    ];
    for (what, toml, key) in cases {
        let dir = w.app(toml.as_bytes());
        let out = w.skiff(&["update", dir.to_str().unwrap()]);
        refused(&what, &out, key);
        refused(&what, &out, "app.toml");
    }
}

#[test]
fn toml_garbage_is_refused_naming_the_file() {
    let w = World::new();
    let deep = format!("a = {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    let deep_tables = format!(
        "{}\n",
        (0..5_000).map(|i| format!("[t{i}]")).collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not UTF-8", b"\xff\xfe\x00name = 1".to_vec()),
        ("binary", (0u8..=255).cycle().take(4096).collect()),
        ("unclosed table", b"[python\nname = \"x\"".to_vec()),
        (
            "unclosed string",
            b"name = \"blog\nruntime = \"python\"".to_vec(),
        ),
        (
            "duplicate key",
            format!("{GOOD}name = \"x\"\n").into_bytes(),
        ),
        ("nested arrays 50,000 deep", deep.into_bytes()),
        ("5,000 headers on one line", deep_tables.into_bytes()),
        ("empty file", Vec::new()),
    ];
    for (what, bytes) in &cases {
        let dir = w.app(bytes);
        let out = w.skiff(&["update", dir.to_str().unwrap()]);
        refused(what, &out, "app.toml");
    }
    // the same garbage as cluster.toml: every command names that file
    for (what, bytes) in &cases {
        if bytes.is_empty() {
            continue; // an empty state file is a fresh one
        }
        std::fs::write(w.root().join("cluster.toml"), bytes).unwrap();
        let out = w.skiff(&["list-nodes"]);
        refused(&format!("cluster.toml: {what}"), &out, "cluster.toml");
    }
}

#[test]
fn hostile_arguments_are_refused_naming_the_argument() {
    let w = World::new();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "node name with a space",
            vec!["create-node", "a b", "--host", "10.250.0.9"],
            "a b",
        ),
        (
            "node name as a path",
            vec!["create-node", "../x", "--host", "10.250.0.9"],
            "../x",
        ),
        (
            "address as an ssh option",
            vec!["create-node", "web2", "--host=-oProxyCommand=id"],
            "-oProxyCommand=id",
        ),
        (
            "shell in an address",
            vec!["create-node", "web2", "--host", "10.0.0.1;id"],
            "10.0.0.1;id",
        ),
        (
            "login with a space",
            vec![
                "create-node",
                "web2",
                "--host",
                "10.250.0.9",
                "--user",
                "ro ot",
            ],
            "ro ot",
        ),
        ("unknown node", vec!["setup-node", "nope"], "nope"),
        (
            "node name as a path in setup-node",
            vec!["setup-node", "../../etc"],
            "../../etc",
        ),
        (
            "bad version number",
            vec!["activate", "blog.test", "-1"],
            "-1",
        ),
        (
            "bad env name",
            vec!["config", "blog.test", "set", "1BAD=x"],
            "1BAD",
        ),
        (
            "unknown app",
            vec!["versions", "no-such-app.test"],
            "no-such-app.test",
        ),
        (
            "bad --since",
            vec!["logs", "blog.test", "--since", "yesterday"],
            "yesterday",
        ),
        (
            "bad --kind",
            vec!["logs", "blog.test", "--kind", "all;id"],
            "all;id",
        ),
    ];
    for (what, args, needle) in cases {
        let out = w.skiff(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: exit {:?}\n{err}",
            out.status
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert!(
            err.contains(needle),
            "{what}: the error does not name `{needle}`:\n{err}"
        );
    }
}

#[test]
fn hostile_app_trees_are_refused_before_any_connection() {
    let w = World::new();
    let good = GOOD.as_bytes();
    type Plant = fn(&Path);
    let cases: Vec<(&str, Plant, &str)> = vec![
        (
            "a FIFO",
            |d| nix::unistd::mkfifo(&d.join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap(),
            "pipe",
        ),
        (
            "a name that is not UTF-8",
            |d| {
                use std::os::unix::ffi::OsStrExt;
                std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), "x").unwrap();
            },
            "not valid UTF-8",
        ),
        (
            "an absolute link",
            |d| std::os::unix::fs::symlink("/etc/passwd", d.join("passwd")).unwrap(),
            "passwd",
        ),
        (
            "a link out",
            |d| std::os::unix::fs::symlink("../../etc/passwd", d.join("up")).unwrap(),
            "up",
        ),
        (
            "a chain of links out",
            |d| {
                std::fs::create_dir(d.join("sub")).unwrap();
                std::os::unix::fs::symlink("sub/hop", d.join("first")).unwrap();
                std::os::unix::fs::symlink("../..", d.join("sub/hop")).unwrap();
            },
            "first",
        ),
        (
            "a link loop",
            |d| {
                std::os::unix::fs::symlink("loop-b", d.join("loop-a")).unwrap();
                std::os::unix::fs::symlink("loop-a", d.join("loop-b")).unwrap();
            },
            "loop-",
        ),
    ];
    for (what, plant, needle) in cases {
        let dir = w.app(good);
        plant(&dir);
        let out = w.skiff(&["update", dir.to_str().unwrap(), "--node", "web1"]);
        refused(what, &out, needle);
    }
}
