//! Issue 10 through the real binary: configuration files that cannot be read exit 2 with
//! a hint naming the file, and data that cannot be written to stdout fails the command.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `skiff ARGS` in `dir` with state file `state`, stdout to `stdout`.
fn skiff(dir: &Path, state: &Path, args: &[&str], stdout: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .env("HOME", dir)
        .env("NO_COLOR", "1")
        .env_remove("SKIFF_STATE")
        .env_remove("XDG_CONFIG_HOME")
        .current_dir(dir)
        .arg("--state")
        .arg(state)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("skiff runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("skiff-files.")
        .tempdir()
        .unwrap()
}

/// Asserts exit 2 and that stderr names `file` and says what to do.
fn assert_config_error(out: &Output, file: &Path, hint: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("hint: "), "{err}");
    assert!(err.contains(hint), "{err}");
}

#[test]
fn unreadable_app_toml_exits_2_with_a_hint() {
    let dir = tempdir();
    let state = dir.path().join("cluster.toml");
    let app = dir.path().join("blog");
    std::fs::create_dir(&app).unwrap();
    let file = app.join("app.toml");
    // As the user typed it: `skiff update blog` names `blog/app.toml`.
    let shown = Path::new("blog/app.toml");
    let run = |cmd: &str| skiff(dir.path(), &state, &[cmd, "blog"], Stdio::null());

    // Missing: `update` and `serve` both point at `skiff init`.
    let out = run("update");
    assert_config_error(&out, shown, "skiff init blog --runtime");
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    for cmd in ["update", "serve"] {
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("skiff init blog"), "{}", stderr(&out));
    }
    // An app folder that does not exist.
    let out = skiff(dir.path(), &state, &["update", "nope"], Stdio::null());
    assert_config_error(&out, Path::new("nope/app.toml"), "does not exist");

    // A folder where the file should be (root reads anything, so this stands in for an
    // unreadable file).
    std::fs::create_dir(&file).unwrap();
    for cmd in ["update", "serve"] {
        let out = run(cmd);
        assert_config_error(&out, shown, "move the folder");
        assert!(stderr(&out).contains("is a folder"), "{}", stderr(&out));
    }
    std::fs::remove_dir(&file).unwrap();

    // Binary: not UTF-8, pointed at by line and column.
    std::fs::write(
        &file,
        b"name = \"blog\"\nruntime = \"static\"\nx\xff\xfe\x00\n",
    )
    .unwrap();
    for cmd in ["update", "serve"] {
        let out = run(cmd);
        assert_config_error(&out, shown, "UTF-8");
        assert!(stderr(&out).contains("app.toml:3:2"), "{}", stderr(&out));
    }
}

#[test]
fn unreadable_cluster_toml_exits_2_with_a_hint() {
    let dir = tempdir();
    let state = dir.path().join("cluster.toml");

    std::fs::create_dir(&state).unwrap();
    for args in [
        &["list-nodes"][..],
        &["default-node", "web1"],
        &["versions", "blog.test"],
    ] {
        let out = skiff(dir.path(), &state, args, Stdio::null());
        assert_config_error(&out, &state, "--state FILE");
        assert!(stderr(&out).contains("is a folder"), "{}", stderr(&out));
    }
    std::fs::remove_dir(&state).unwrap();

    std::fs::write(&state, b"\x7fELF\x02\x01\x01\x00\xff\xff").unwrap();
    for args in [&["list-nodes"][..], &["default-node", "web1"]] {
        let out = skiff(dir.path(), &state, args, Stdio::null());
        assert_config_error(&out, &state, "UTF-8");
    }
}

fn dev_full() -> Stdio {
    Stdio::from(std::fs::File::create("/dev/full").expect("/dev/full"))
}

#[test]
fn data_lost_on_a_full_disk_fails_the_command() {
    let dir = tempdir();
    let state = dir.path().join("cluster.toml");
    for args in [
        &["--json", "list-nodes"][..],
        &["completions", "bash"],
        &["man"],
        &["--help"],
        &["--version"],
    ] {
        let out = skiff(dir.path(), &state, args, dev_full());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("stdout"), "{args:?}: {err}");
        assert!(err.contains("No space left on device"), "{args:?}: {err}");
    }
    // A failed command keeps its own exit code (2 here: the state file is a folder).
    std::fs::create_dir(&state).unwrap();
    let out = skiff(dir.path(), &state, &["--json", "list-nodes"], dev_full());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let dir = tempdir();
    let state = dir.path().join("cluster.toml");
    // A pipe whose reader is gone: every write fails with EPIPE (SIGPIPE is ignored).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    for args in [
        &["--json", "list-nodes"][..],
        &["completions", "bash"],
        &["--help"],
    ] {
        let out = skiff(
            dir.path(),
            &state,
            args,
            Stdio::from(writer.try_clone().unwrap()),
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}
