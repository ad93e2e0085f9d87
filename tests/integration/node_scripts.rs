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
