//! Test support shared by every area: a temp environment for the real `skiff` binary and
//! real throwaway nodes (`skiff create-node --provider local`).
//!
//! ```ignore
//! let env = TestEnv::new();
//! if !nodes_available() { return; }          // says why; panics under CI=true
//! let node = TestNode::launch(&env);          // destroyed on drop (SKIFF_KEEP_NODES keeps it)
//! env.skiff().args(["setup-node", &node.name]).assert().success();
//! assert_eq!(node.exec("cat /etc/hostname").trim(), format!("node{}", node.number));
//! ```

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::atomic::{AtomicUsize, Ordering};

use assert_cmd::Command;

pub mod acme;
pub mod setup;
pub mod traffic;

/// A private world for one test: temp HOME, a state file (cluster.toml) in it, and a
/// `skiff` command preconfigured to use them with no colour.
pub struct TestEnv {
    dir: tempfile::TempDir,
    /// The temp HOME.
    pub home: PathBuf,
    /// The state file passed as `--state`.
    pub state: PathBuf,
}

impl TestEnv {
    /// A fresh environment in a new temp folder.
    pub fn new() -> TestEnv {
        // SKIFF_KEEP_NODES keeps the folder too, or kept nodes would lose their state file.
        let dir = tempfile::Builder::new()
            .prefix("skiff-test.")
            .disable_cleanup(std::env::var_os("SKIFF_KEEP_NODES").is_some())
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let state = dir.path().join("state").join("cluster.toml");
        TestEnv { dir, home, state }
    }

    /// The temp folder everything of this environment lives in.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The folder of cluster.toml: skiff's known_hosts lives here.
    pub fn state_dir(&self) -> PathBuf {
        self.state.parent().unwrap().to_path_buf()
    }

    /// skiff's own known_hosts for this environment.
    pub fn known_hosts(&self) -> PathBuf {
        self.state_dir().join("known_hosts")
    }

    /// The real binary with `--state`, temp HOME, `NO_COLOR=1`, and no state or colour
    /// settings inherited from whoever runs the tests.
    pub fn skiff(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .env_remove("SKIFF_STATE")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CLICOLOR_FORCE")
            // A test node someone forgets to destroy exits by itself after an hour.
            .env("SKIFF_LOCAL_TTL", "3600")
            .arg("--state")
            .arg(&self.state);
        cmd
    }

    /// [`TestEnv::skiff`] as a plain `std::process::Command`, for tests that spawn
    /// several skiffs at once.
    pub fn skiff_std(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .env_remove("SKIFF_STATE")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CLICOLOR_FORCE")
            .env("SKIFF_LOCAL_TTL", "3600")
            .arg("--state")
            .arg(&self.state);
        cmd
    }

    /// The cluster as recorded in the state file.
    pub fn cluster(&self) -> skiff::cluster::Cluster {
        skiff::cluster::StateFile::new(self.state.clone())
            .load()
            .expect("state file loads")
    }

    /// The state file handle, for library calls.
    pub fn state_file(&self) -> skiff::cluster::StateFile {
        skiff::cluster::StateFile::new(self.state.clone())
    }

    /// The ssh control folder skiff uses for this environment.
    pub fn control_dir(&self) -> PathBuf {
        std::fs::create_dir_all(self.state_dir()).unwrap();
        skiff::transport::ssh::control_dir(&self.state_dir()).expect("control dir")
    }

    /// PIDs of live ssh processes whose command line names this environment's control
    /// folder: skiff's masters. Must be empty after any skiff command exits.
    pub fn ssh_masters(&self) -> Vec<u32> {
        let dir = self.control_dir().display().to_string();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let words: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            let is_ssh = words
                .first()
                .is_some_and(|w| w == "ssh" || w.ends_with("/ssh"));
            let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let zombie = state
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'));
            if is_ssh && !zombie && words.iter().any(|w| w.contains(&dir)) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Asserts that no ssh master of this environment is running.
    pub fn assert_no_masters(&self) {
        let pids = self.ssh_masters();
        assert!(pids.is_empty(), "ssh masters left running: {pids:?}");
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // The (empty) ssh control folder lives in /tmp, outside the temp dir.
        if let Ok(dir) = skiff::transport::ssh::control_dir(&self.state_dir()) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The variable that lets real-node tests be skipped where they cannot run.
pub const SKIP_VAR: &str = "SKIFF_SKIP_NODE_TESTS";

/// Whether real nodes can run here. When not, the test fails, naming why and how to fix
/// it, unless the user opted out with `SKIFF_SKIP_NODE_TESTS=1` (never under `CI=true`):
/// then it is counted, and the run ends with one visible line saying how many real-node
/// tests did not run. A skipped test must never look like a passed one.
pub fn nodes_available() -> bool {
    let Some(why) = node_problem() else {
        return true;
    };
    let msg = format!(
        "real test nodes are unavailable: {why}\n  \
         (run as root on Linux after `.ci/prepare-nodes.sh`, or `bash .ci/run` as root)"
    );
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let opted_out = std::env::var(SKIP_VAR).is_ok_and(|v| v == "1");
    if ci || !opted_out {
        panic!(
            "{msg}\n  to skip the real-node tests instead, set {SKIP_VAR}=1 (not under CI=true)"
        );
    }
    count_skip(&why);
    false
}

/// Counts one skipped real-node test; the first one registers the line printed when the
/// test binary exits: the harness captures the print macros of passing tests, but not
/// a write through the `stderr()` handle at exit.
fn count_skip(why: &str) {
    static SKIPPED: AtomicUsize = AtomicUsize::new(0);
    static WHY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    extern "C" fn report() {
        use std::io::Write;
        let n = SKIPPED.load(Ordering::SeqCst);
        let why = WHY.get().map(String::as_str).unwrap_or("");
        let _ = writeln!(
            std::io::stderr().lock(),
            "\nSKIPPED: {n} real-node test(s) did not run ({SKIP_VAR}=1): {why}\n"
        );
    }
    unsafe extern "C" {
        fn atexit(cb: extern "C" fn()) -> std::ffi::c_int;
    }
    if SKIPPED.fetch_add(1, Ordering::SeqCst) == 0 {
        let _ = WHY.set(why.to_string());
        // SAFETY: registers a plain function with no captured state to run at exit.
        unsafe {
            atexit(report);
        }
    }
}

fn node_problem() -> Option<String> {
    if let Some(p) = skiff::providers::local::host_problem() {
        return Some(p);
    }
    let netns = StdCommand::new("ip").args(["netns", "list"]).output();
    if !netns.is_ok_and(|o| o.status.success()) {
        return Some("`ip netns list` does not work (no network namespaces)".into());
    }
    if !skiff::providers::local::rootfs_ready("bookworm") {
        return Some(format!(
            "no Debian rootfs with sshd at `{}`",
            skiff::providers::local::rootfs("bookworm").display()
        ));
    }
    None
}

static NEXT_NAME: AtomicUsize = AtomicUsize::new(1);

/// A real throwaway node made with `skiff create-node NAME --provider local` in a
/// [`TestEnv`]; destroyed with `skiff destroy-node` on drop unless `SKIFF_KEEP_NODES`
/// is set (then it says how to remove it).
pub struct TestNode<'a> {
    env: &'a TestEnv,
    /// The node's name in the environment's cluster.toml.
    pub name: String,
    /// 10.250.0.N.
    pub address: String,
    /// N.
    pub number: u8,
    /// The key root logs in with.
    pub identity: PathBuf,
    destroyed: bool,
}

impl<'a> TestNode<'a> {
    /// Launches a node with a generated name (`t1`, `t2`, ...).
    pub fn launch(env: &'a TestEnv) -> TestNode<'a> {
        let name = format!("t{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed));
        TestNode::launch_named(env, &name)
    }

    /// Launches a node called `name`.
    pub fn launch_named(env: &'a TestEnv, name: &str) -> TestNode<'a> {
        let out = env
            .skiff()
            .args(["create-node", name, "--provider", "local", "--yes"])
            .output()
            .expect("skiff runs");
        assert!(
            out.status.success(),
            "create-node {name} --provider local failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestNode::adopt(env, name)
    }

    /// A handle on node `name`, created by the test itself with `skiff create-node`;
    /// [`TestNode::forget`] it before the test destroys the node its own way.
    pub fn adopt(env: &'a TestEnv, name: &str) -> TestNode<'a> {
        let cluster = env.cluster();
        let node = cluster.node(name).expect("node recorded");
        TestNode {
            env,
            name: name.to_string(),
            address: node.address.clone(),
            number: node.provider_data["number"].parse().unwrap(),
            identity: node.identity.clone().expect("local nodes have a key"),
            destroyed: false,
        }
    }

    /// Drops the handle without destroying the node.
    pub fn forget(mut self) {
        self.destroyed = true;
    }

    /// Where to reach the node through the library transport.
    pub fn target(&self) -> skiff::transport::Target {
        skiff::transport::Target {
            node: self.name.clone(),
            address: self.address.clone(),
            user: "root".into(),
            port: 22,
            identity: Some(self.identity.clone()),
        }
    }

    /// Runs a shell command on the node as root (entering its namespaces from the host:
    /// no login, so the node's auth log holds only skiff's) and returns what it printed;
    /// panics if it fails.
    pub fn exec(&self, cmd: &str) -> String {
        let out = self.exec_output(cmd);
        assert!(
            out.status.success(),
            "`{cmd}` failed on node {} ({}):\n{}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The host PID of the node's PID 1 (a reboot in the node makes a new one).
    pub fn init_pid(&self) -> u32 {
        let script = skiff::providers::local::home().join("local-node.sh");
        let out = StdCommand::new("bash")
            .arg(&script)
            .args(["init-pid", &self.number.to_string()])
            .output()
            .expect("bash runs");
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().unwrap_or_else(|_| {
            panic!(
                "no PID 1 for node {} ({}): {}",
                self.name,
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// [`TestNode::exec`] without the success check: `sh -c CMD` as root in the node's
    /// namespaces and root (nsenter), with a login's PATH and HOME, stdin empty.
    pub fn exec_output(&self, cmd: &str) -> std::process::Output {
        StdCommand::new("nsenter")
            .args(["--target", &self.init_pid().to_string()])
            .args(["--all", "--root", "--wd", "--"])
            .args([
                "env",
                "-i",
                "HOME=/root",
                "USER=root",
                "LOGNAME=root",
                "LANG=C.UTF-8",
            ])
            .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .args(["/bin/sh", "-c", cmd])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("nsenter runs")
    }

    /// Destroys the node now (asserting success) instead of on drop.
    pub fn destroy(mut self) {
        self.destroyed = true;
        self.env
            .skiff()
            .args(["destroy-node", &self.name, "--yes"])
            .assert()
            .success();
    }
}

impl Drop for TestNode<'_> {
    fn drop(&mut self) {
        if self.destroyed {
            return;
        }
        if std::env::var_os("SKIFF_KEEP_NODES").is_some() {
            eprintln!(
                "SKIFF_KEEP_NODES: keeping node {} at {} (state {}); remove it with \
                 `skiff --state {} destroy-node {} --yes` or \
                 `bash /var/lib/skiff-local/local-node.sh down {}`",
                self.name,
                self.address,
                self.env.state.display(),
                self.env.state.display(),
                self.name,
                self.number
            );
            return;
        }
        let out = self
            .env
            .skiff()
            .args(["destroy-node", &self.name, "--yes"])
            .output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!(
                "warning: could not destroy test node {}: {out:?}",
                self.name
            );
        }
    }
}
