//! The scripts skiff runs on nodes (and the providers' and CI's) parse with `sh -n` and
//! pass `shellcheck` at warning level: a syntax error or an unquoted expansion there is a
//! deploy that fails on a user's server, not on the laptop.

use std::path::Path;
use std::process::Command;

/// Node-side scripts (POSIX sh) and the helpers that run on the laptop (bash).
const SCRIPTS: &[&str] = &[
    "src/deploy/node.sh",
    "src/sync/node.sh",
    "server-files/bin/skiff-node",
    "server-files/lib/services.sh",
    "providers/local-node.sh",
    "scripts/demo.sh",
    ".ci/run",
    ".ci/prepare-nodes.sh",
    ".ci/fetch-wheels.sh",
];

#[test]
fn node_scripts_parse_and_pass_shellcheck() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let have_shellcheck = Command::new("shellcheck").arg("--version").output().is_ok();
    if !have_shellcheck {
        let why = "shellcheck is not installed (apt-get install shellcheck; .ci/run does)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipping the shellcheck half: {why}");
    }
    for script in SCRIPTS {
        let path = root.join(script);
        let text = std::fs::read_to_string(&path).unwrap();
        let shell = if text.starts_with("#!/usr/bin/env bash") || text.starts_with("#!/bin/bash") {
            "bash"
        } else {
            "sh"
        };
        let out = Command::new(shell).arg("-n").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{shell} -n {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if have_shellcheck {
            let out = Command::new("shellcheck")
                .args(["-S", "warning", "-x"])
                .arg(&path)
                .current_dir(path.parent().unwrap())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "shellcheck {script}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

/// Runs one step of the deploy's node.sh on this machine against a temporary layout: the
/// contract's paths all point into `root` (the prelude carries them, so no node is
/// needed), then the step's own inputs. Returns (exit code, stdout, stderr).
fn step(root: &Path, name: &str, vars: &[(&str, &str)]) -> (i32, String, String) {
    use std::io::Write;
    let mut prelude = String::new();
    for (k, v) in skiff::deploy::contract::prelude() {
        let v = match k {
            "APPS" | "LOCKS" | "NODE_LOCK" | "STATE" | "SETUP" | "STAGING" | "SLOTS" | "ENVDIR" => {
                format!("{}{v}", root.display())
            }
            _ => v,
        };
        prelude.push_str(&format!("{k}='{v}'\n"));
    }
    for (k, v) in vars {
        assert!(!v.contains('\''), "test values stay simple");
        prelude.push_str(&format!("{k}='{v}'\n"));
    }
    let mut child = Command::new("sh")
        .args(["-s", "--", name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let script = skiff::deploy::remote::SCRIPT;
    let (first, rest) = script.split_once('\n').unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{first}\n{prelude}{rest}").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lock steps of node.sh on a temporary layout: `begin` takes the app's lock and
/// lists the release numbers on disk (not a sync's `.tmp-N`), a second owner is told who
/// holds it (exit 75), breaking a stale lock stops the dead run's session (an orphaned
/// build), `recover` drops releases only for the lock's holder, `unlock` releases only
/// what its caller holds.
#[test]
fn node_sh_lock_steps_on_a_temporary_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let apps = root.join("srv/skiff/apps/blog");
    for dir in ["releases/3", "releases/.tmp-9", "meta"] {
        std::fs::create_dir_all(apps.join(dir)).unwrap();
    }
    std::fs::write(apps.join("meta/5.json"), "{}").unwrap();
    std::fs::create_dir_all(root.join("var/lib/skiff")).unwrap();
    std::fs::write(root.join("var/lib/skiff/setup.toml"), "python_slots = 2\n").unwrap();
    let alice = "alice@laptop pid=1 app=blog since=x";
    let bob = "bob@laptop pid=2 app=blog since=y";

    let (code, out, err) = step(
        root,
        "begin",
        &[("app", "blog"), ("owner", alice), ("brk", "0")],
    );
    assert_eq!(code, 0, "{err}");
    let found: Vec<&str> = out.split("---found\n").nth(1).unwrap().lines().collect();
    assert_eq!(found, ["3", "5"], "{out}");
    let lock = root.join("var/lib/skiff/locks/blog.lock");
    assert_eq!(
        std::fs::read_to_string(lock.join("owner")).unwrap(),
        format!("{alice}\n")
    );

    // someone else: told who holds it
    let (code, out, _) = step(
        root,
        "begin",
        &[("app", "blog"), ("owner", bob), ("brk", "0")],
    );
    assert_eq!(code, skiff::deploy::contract::exit::LOCK_HELD);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["HELD", alice]);
    // only the holder may recover
    let (code, _, _) = step(
        root,
        "recover",
        &[("app", "blog"), ("owner", bob), ("numbers", "5")],
    );
    assert_eq!(code, skiff::deploy::contract::exit::LOCK_HELD);
    assert!(apps.join("meta/5.json").exists());
    let (code, _, err) = step(
        root,
        "recover",
        &[("app", "blog"), ("owner", alice), ("numbers", "5")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!apps.join("meta/5.json").exists());
    assert!(apps.join("releases/3").exists());

    // alice's skiff died during a build: her session still runs it; bob breaks the lock
    let orphan = Command::new("setsid")
        .args(["sh", "-c", "sleep 77"])
        .spawn()
        .unwrap();
    let sid = orphan.id();
    let start = std::fs::read_to_string(format!("/proc/{sid}/stat")).unwrap();
    let start = start
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    std::fs::write(lock.join("pgid"), format!("{sid} {start}\n")).unwrap();
    let (code, out, err) = step(
        root,
        "begin",
        &[("app", "blog"), ("owner", bob), ("brk", "1")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("stopped the dead run's processes"), "{out}");
    let mut orphan = orphan;
    let status = orphan.wait().unwrap();
    assert!(!status.success(), "the orphaned build was stopped");
    assert_eq!(
        std::fs::read_to_string(lock.join("owner")).unwrap(),
        format!("{bob}\n")
    );

    // unlock: only what its caller holds
    let (code, _, _) = step(
        root,
        "unlock",
        &[("app", "blog"), ("owner", alice), ("which", "both")],
    );
    assert_eq!(code, 0);
    assert!(lock.exists(), "alice no longer holds it");
    let (code, _, _) = step(
        root,
        "unlock",
        &[("app", "blog"), ("owner", bob), ("which", "both")],
    );
    assert_eq!(code, 0);
    assert!(!lock.exists());
}
