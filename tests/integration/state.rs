//! The cluster state file under contention and crashes, with real processes.
//!
//! Writers are copies of this test binary started in a child mode (see
//! [`child_process`]), so they always run the code under test; each child does one job
//! through the public `skiff::cluster` API and reports on stdout.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use skiff::cluster::{self, Cluster, Node, Provider, StateFile};

/// The variable that puts this binary into child mode, and what the child does.
const CHILD_MODE: &str = "SKIFF_STATE_CHILD";

/// Printed by a child right after its temp file is written, before the rename.
const BEFORE_RENAME: &str = "BEFORE-RENAME";
/// Printed by an adding child before it waits for the go file.
const READY: &str = "READY";
/// Printed by a child once it holds the lock.
const LOCKED: &str = "LOCKED";

fn node(i: usize) -> Node {
    Node {
        address: format!("10.250.{}.{}", i / 250, i % 250 + 1),
        user: "root".into(),
        port: 22,
        provider: Provider::Ssh,
        identity: None,
        host_key: None,
        os: None,
        setup: None,
        provider_data: Default::default(),
        deploy_user: None,
    }
}

/// Child processes' entry point: runs only when [`CHILD_MODE`] is set (the parent
/// starts this binary with `--ignored --exact state::child_process`).
#[test]
#[ignore = "runs only as a child process of the other state tests"]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"));
    let path = PathBuf::from(var("CHILD_STATE"));
    let mut stdout = std::io::stdout();
    match mode.as_str() {
        // Adds CHILD_COUNT nodes named CHILD_PREFIX0.., one locked update each.
        "add" => {
            let prefix = var("CHILD_PREFIX");
            let count: usize = var("CHILD_COUNT").parse().unwrap();
            let state = StateFile::new(path).with_lock_timeout(Duration::from_secs(60));
            // Start together: say ready, then wait (bounded) for the parent's go file.
            let go = PathBuf::from(var("CHILD_GO"));
            println!("{READY}");
            stdout.flush().unwrap();
            let start = Instant::now();
            while !go.exists() {
                assert!(start.elapsed() < Duration::from_secs(30), "no go file");
                std::thread::sleep(Duration::from_millis(2));
            }
            let mut waits = 0;
            for i in 0..count {
                state
                    .update(&mut |_| waits += 1, |c| {
                        c.nodes.insert(format!("{prefix}{i}"), node(i));
                        Ok(())
                    })
                    .unwrap();
            }
            writeln!(stdout, "WAITED {waits}").unwrap();
        }
        // Starts a save of one more node and stops between the temp write and the
        // rename, where the parent kills it.
        "hang" => {
            let state = StateFile::new(path.clone());
            let _lock = state.lock(&mut |_| {}).unwrap();
            let mut c = state.load().unwrap();
            c.nodes.insert("interrupted".into(), node(99));
            let text = cluster::render(&c);
            cluster::write_atomic(
                &path,
                text.as_bytes(),
                Some(|| {
                    println!("{BEFORE_RENAME}");
                    std::io::stdout().flush().unwrap();
                    // Bounded: the parent kills us long before this ends.
                    std::thread::sleep(Duration::from_secs(120));
                }),
            )
            .unwrap();
            panic!("the parent should have killed this process before the rename");
        }
        // Holds the lock for CHILD_HOLD_MS.
        "hold" => {
            let state = StateFile::new(path);
            let _lock = state.lock(&mut |_| {}).unwrap();
            println!("{LOCKED}");
            stdout.flush().unwrap();
            let ms: u64 = var("CHILD_HOLD_MS").parse().unwrap();
            std::thread::sleep(Duration::from_millis(ms));
        }
        // One update with a lock timeout of CHILD_TIMEOUT_MS; reports the outcome.
        "wait" => {
            let ms: u64 = var("CHILD_TIMEOUT_MS").parse().unwrap();
            let state = StateFile::new(path).with_lock_timeout(Duration::from_millis(ms));
            let result = state.update(&mut |lock| println!("WAITING {}", lock.display()), |c| {
                c.nodes.insert("late".into(), node(1));
                Ok(())
            });
            match result {
                Ok(()) => println!("SAVED"),
                Err(e) => println!("ERROR {e} | hint: {}", e.hint().unwrap_or_default()),
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Starts a copy of this binary in child `mode` with the given variables.
fn spawn_child(mode: &str, state: &Path, vars: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "state::child_process",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_MODE, mode)
    .env("CHILD_STATE", state)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start a child copy of the test binary")
}

/// The part of the first line of `out` that starts at `marker`, if any.
fn line_with<'a>(out: &'a str, marker: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.find(marker).map(|at| &l[at..]))
}

/// Reads the child's stdout on a thread, to the end (a closed pipe would fail the
/// child's next write), and hands over its lines.
fn follow(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The next line holding `marker`, from the marker on (libtest may print "test
/// state::child_process ... " before it); waits at most `limit`.
fn next_line_with(lines: &Receiver<String>, marker: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(at) = line.find(marker) {
                    return line[at..].to_string();
                }
            }
            Err(_) => panic!("the child did not print {marker:?} within {limit:?}"),
        }
    }
}

/// Reads the child's stdout until a line holds `marker` (at most `limit`) and returns
/// that line from the marker on; the rest of its stdout is drained in the background.
fn wait_for_line(child: &mut Child, marker: &str, limit: Duration) -> String {
    next_line_with(&follow(child), marker, limit)
}

/// Waits for the child to exit (at most `limit`, then kills it) and returns its output.
fn finish(mut child: Child, limit: Duration) -> (bool, String, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not finish within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn temps_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn two_writers_at_once_keep_all_200_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    let go = dir.path().join("go");
    let go_var = go.to_str().unwrap();
    let mut writers = Vec::new();
    for prefix in ["a", "b"] {
        let mut child = spawn_child(
            "add",
            &path,
            &[
                ("CHILD_PREFIX", prefix),
                ("CHILD_COUNT", "100"),
                ("CHILD_GO", go_var),
            ],
        );
        let lines = follow(&mut child);
        writers.push((child, lines));
    }
    for (_, lines) in &writers {
        next_line_with(lines, READY, Duration::from_secs(30));
    }
    std::fs::write(&go, "").unwrap();
    let mut waits = 0;
    for (child, lines) in writers {
        let (ok, _, err) = finish(child, Duration::from_secs(120));
        assert!(ok, "a writer failed\n{err}");
        let done = next_line_with(&lines, "WAITED", Duration::from_secs(5));
        waits += done["WAITED ".len()..].trim().parse::<usize>().unwrap();
    }
    // Proof that the two really wrote at once: some updates found the lock taken.
    assert!(waits > 0, "the writers never met at the lock");
    eprintln!("updates that waited for the other writer: {waits} of 200");

    let cluster = StateFile::new(path.clone()).load().unwrap();
    assert_eq!(cluster.nodes.len(), 200, "entries were lost");
    for i in 0..100 {
        for prefix in ["a", "b"] {
            let name = format!("{prefix}{i}");
            assert_eq!(cluster.nodes.get(&name), Some(&node(i)), "{name}");
        }
    }
    assert!(
        temps_in(dir.path()).is_empty(),
        "{:?}",
        temps_in(dir.path())
    );
}

#[test]
fn a_save_killed_before_the_rename_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    let state = StateFile::new(path.clone());
    state
        .update(&mut |_| {}, |c| {
            for i in 0..3 {
                c.nodes.insert(format!("web{i}"), node(i));
            }
            c.default_node = Some("web0".into());
            Ok(())
        })
        .unwrap();
    let before = std::fs::read(&path).unwrap();

    let mut child = spawn_child("hang", &path, &[]);
    wait_for_line(&mut child, BEFORE_RENAME, Duration::from_secs(30));
    // The child is between its temp write and its rename: the new text is on disk in a
    // temp file beside the state, the state itself is untouched.
    let temps = temps_in(dir.path());
    assert_eq!(temps.len(), 1, "{temps:?}");
    let temp_text = std::fs::read_to_string(dir.path().join(&temps[0])).unwrap();
    assert!(temp_text.contains("[nodes.interrupted]"), "{temp_text}");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the state file changed"
    );
    let cluster: Cluster = state.load().expect("the old file loads");
    assert_eq!(cluster.nodes.len(), 3);
    assert!(!cluster.nodes.contains_key("interrupted"));

    // The dead writer's lock went with it; the next save works and tidies its temp.
    state
        .update(&mut |_| {}, |c| {
            c.nodes.insert("after".into(), node(7));
            Ok(())
        })
        .unwrap();
    assert_eq!(state.load().unwrap().nodes.len(), 4);
    assert!(
        temps_in(dir.path()).is_empty(),
        "{:?}",
        temps_in(dir.path())
    );
}

#[test]
fn a_held_lock_makes_a_writer_wait_then_give_up_naming_lock_and_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    let mut holder = spawn_child("hold", &path, &[("CHILD_HOLD_MS", "20000")]);
    wait_for_line(&mut holder, LOCKED, Duration::from_secs(30));

    let waiter = spawn_child("wait", &path, &[("CHILD_TIMEOUT_MS", "1000")]);
    let (_, out, err) = finish(waiter, Duration::from_secs(30));
    let lock = format!("{}.lock", path.display());
    assert!(out.contains(&format!("WAITING {lock}")), "{out}\n{err}");
    let error = line_with(&out, "ERROR")
        .unwrap_or_else(|| panic!("the writer did not give up:\n{out}\n{err}"));
    assert!(error.contains(&lock), "{error}");
    assert!(error.contains("gave up after 1 s"), "{error}");
    assert!(error.contains("hint: another skiff"), "{error}");
    // Nothing was written by the writer that gave up.
    assert!(!path.exists() || !std::fs::read_to_string(&path).unwrap().contains("late"));

    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn the_binary_waits_for_a_held_lock_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    StateFile::new(path.clone())
        .update(&mut |_| {}, |c| {
            c.nodes.insert("web1".into(), node(1));
            Ok(())
        })
        .unwrap();
    let mut holder = spawn_child("hold", &path, &[("CHILD_HOLD_MS", "1500")]);
    wait_for_line(&mut holder, LOCKED, Duration::from_secs(30));

    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("--state")
        .arg(&path)
        .args(["default-node", "web1"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Waiting") && stderr.contains("cluster.toml.lock"),
        "no waiting message: {stderr}"
    );
    assert_eq!(
        StateFile::new(path).load().unwrap().default_node.as_deref(),
        Some("web1")
    );
    let (ok, _, err) = finish(holder, Duration::from_secs(30));
    assert!(ok, "{err}");
}
