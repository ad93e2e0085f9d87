//! Benchmark (not a test): a one-line-change `skiff update` of the Python fixture on a
//! real, set-up local node, under a request loop against HOST.
//!
//! Run with `bench/update.sh` (root, Linux, the local node rootfs). For each run it
//! measures the wall time of `skiff --json update`, the per-phase times the update
//! reports, the time until HOST answers with the new version (seen by the request loop
//! on this machine, from the moment the update was started), and the longest request of
//! the loop while the update ran; then prints the medians beside the anchors of issue 6
//! and two anchors measured side by side on the same node: a fresh `ssh NODE true` (the
//! floor of any deploy over ssh) and the longest request while `apache2ctl graceful` runs
//! (the stall of a deploy that reloads Apache, as the anchor tools do).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/support/traffic.rs"]
mod traffic;

use traffic::{Spec, Traffic};

/// Anchors measured for a small WSGI app on this machine (issue 6): (tool, update wall
/// time, served after, stall at the switch), seconds.
const ANCHORS: &[(&str, &str, &str, &str)] = &[
    ("Capistrano", "1.4", "2.3", "~1.0"),
    ("Piku", "-", "1.5-3.6", "~1.0"),
    ("rsync + symlink + uWSGI reload", "0.4", "1.4", "~1.0"),
];

/// Goals of issue 6, seconds.
const GOAL_SERVED: f64 = 0.5;
const GOAL_LONGEST: f64 = 0.1;

/// The request loop every measurement uses: 2 threads, a fresh connection every 10 ms
/// each (HOST polled about every 5 ms), at most `requests` per thread and 30 s.
fn bench_loop(address: &str, host: &str, requests: usize) -> Spec {
    let mut spec = Spec::new(address, host);
    spec.threads = 2;
    spec.interval = Duration::from_millis(10);
    spec.max_requests = requests;
    spec.max_time = Duration::from_secs(30);
    spec
}

/// Traffic before and after each update.
const MARGIN: Duration = Duration::from_millis(300);

struct Bench {
    dir: tempfile::TempDir,
    state: PathBuf,
    node: Option<String>,
}

impl Bench {
    fn skiff(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .env("SKIFF_LOCAL_TTL", "3600")
            .env_remove("SKIFF_STATE")
            .env_remove("XDG_CONFIG_HOME")
            .arg("--state")
            .arg(&self.state);
        cmd
    }

    fn run(&self, cmd: &mut Command, what: &str) -> Vec<u8> {
        let out = cmd
            .output()
            .unwrap_or_else(|e| die(&format!("{what}: {e}")));
        if !out.status.success() {
            die(&format!(
                "{what} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        out.stdout
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let _ = self.skiff().args(["destroy-node", &node, "--yes"]).output();
        }
    }
}

/// Plain `ssh` to the node as root, with skiff's pinned known_hosts.
struct NodeShell {
    address: String,
    identity: PathBuf,
    known_hosts: PathBuf,
}

impl NodeShell {
    /// The `ssh ...` command line rsync's `-e` takes (same key, same pinned known_hosts).
    fn rsh(&self) -> String {
        format!(
            "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
             -o ControlMaster=no -o ControlPath=none -o UserKnownHostsFile={}",
            self.identity.display(),
            self.known_hosts.display()
        )
    }

    fn run(&self, cmd: &str) {
        let status = Command::new("ssh")
            .arg("-i")
            .arg(&self.identity)
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=no"])
            .args(["-o", "ControlPath=none"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg(format!("root@{}", self.address))
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| die(&format!("ssh: {e}")));
        if !status.success() {
            die(&format!("`{cmd}` over ssh failed ({status})"));
        }
    }
}

fn die(msg: &str) -> ! {
    eprintln!("update bench: {msg}");
    std::process::exit(1);
}

/// The frozen set-up rootfs that tests/support/setup.rs builds for this build's assets,
/// if it is there.
fn frozen_rootfs() -> Option<PathBuf> {
    let base = skiff::providers::local::rootfs("bookworm");
    let digest = skiff::assets::digest().trim_start_matches("sha256:");
    let name = format!(
        "{}-setup-{}",
        base.file_name()?.to_string_lossy(),
        &digest[..12]
    );
    let path = base.with_file_name(name);
    path.join(".skiff-setup-ready").exists().then_some(path)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn set_message(app_py: &Path, message: &str) {
    let text = std::fs::read_to_string(app_py).expect("app.py");
    let line = text
        .lines()
        .find(|l| l.starts_with("MESSAGE = "))
        .expect("the fixture has a MESSAGE line")
        .to_string();
    std::fs::write(
        app_py,
        text.replacen(&line, &format!("MESSAGE = \"{message}\""), 1),
    )
    .unwrap();
}

/// One measured update.
struct Run {
    version: u32,
    wall: f64,
    reported_served: f64,
    served: Option<f64>,
    longest: f64,
    requests: usize,
    failures: usize,
    phases: Vec<(String, f64)>,
    sync: f64,
    round_trips: u64,
}

fn main() {
    if let Some(problem) = skiff::providers::local::host_problem() {
        eprintln!("update bench skipped: {problem}");
        std::process::exit(1);
    }
    let runs: usize = std::env::var("SKIFF_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state").join("cluster.toml");
    let mut bench = Bench {
        dir,
        state,
        node: None,
    };

    // a set-up node: from the frozen rootfs when the tests built one, else a full setup
    let name = "ubench";
    let frozen = frozen_rootfs();
    let t = Instant::now();
    let mut create = bench.skiff();
    if let Some(f) = &frozen {
        create.env("SKIFF_LOCAL_ROOTFS", f);
    }
    create.args(["create-node", name, "--provider", "local", "--yes"]);
    bench.run(&mut create, "create-node");
    bench.node = Some(name.to_string());
    bench.run(bench.skiff().args(["setup-node", name]), "setup-node");
    eprintln!(
        "set-up node `{name}` ready in {:.1} s ({})",
        t.elapsed().as_secs_f64(),
        if frozen.is_some() {
            "frozen set-up rootfs"
        } else {
            "full setup-node; `cargo test --test integration update::` builds the frozen rootfs"
        }
    );
    let state_file = skiff::cluster::StateFile::new(bench.state.clone());
    let node_info = state_file
        .load()
        .expect("state")
        .node(name)
        .expect("node recorded")
        .clone();
    let address = node_info.address.clone();
    let ssh = NodeShell {
        address: address.clone(),
        identity: node_info.identity.clone().expect("local nodes have a key"),
        known_hosts: skiff::transport::ssh::known_hosts_path(&state_file.dir()),
    };

    let app = bench.dir.path().join("app");
    let status = Command::new("cp")
        .arg("-a")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apps/python"))
        .arg(&app)
        .status()
        .expect("cp");
    assert!(status.success());
    let host = "pyapp.test";
    // version 1 (first deploy: builds the venv; not measured)
    bench.run(
        bench.skiff().args(["--json", "update"]).arg(&app),
        "first update",
    );

    let mut results = Vec::new();
    for i in 0..runs {
        set_message(&app.join("app.py"), &format!("run{i}"));
        let loop_ = Traffic::start(bench_loop(&address, host, 3000));
        std::thread::sleep(MARGIN);
        let t0 = Instant::now();
        let out = bench.run(bench.skiff().args(["--json", "update"]).arg(&app), "update");
        let wall = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        std::thread::sleep(MARGIN);
        let seen = loop_.stop();
        let report: serde_json::Value = serde_json::from_slice(&out).expect("update --json");
        let version = report["version"].as_u64().unwrap_or(0) as u32;
        let node = &report["nodes"][0];
        let mut phases: Vec<(String, f64)> = node["phases"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0)))
                    .collect()
            })
            .unwrap_or_default();
        phases.sort_by(|a, b| a.0.cmp(&b.0));
        let served = seen
            .first_with(version, t0)
            .map(|s| s.done().duration_since(t0).as_secs_f64());
        let longest = seen
            .longest_between(t0, t1)
            .map_or(0.0, |s| s.took.as_secs_f64());
        let run = Run {
            version,
            wall,
            reported_served: report["served_after"].as_f64().unwrap_or(0.0),
            served,
            longest,
            requests: seen.samples.len(),
            failures: seen.failures().len(),
            phases,
            sync: node["sync"]["seconds"]["total"].as_f64().unwrap_or(0.0),
            round_trips: node["round_trips"].as_u64().unwrap_or(0),
        };
        eprintln!(
            "run {}: version {} wall {:.3} s, served on HOST after {}, longest request {:.1} ms, \
             {} requests, {} failed, {} round trips",
            i + 1,
            run.version,
            run.wall,
            run.served
                .map_or("never".to_string(), |s| format!("{s:.3} s")),
            run.longest * 1000.0,
            run.requests,
            run.failures,
            run.round_trips
        );
        results.push(run);
    }

    // The like-for-like anchor, on the same node in the same run: the same app shipped
    // the way a plain script (or Capistrano with mod_wsgi) does it, rsync into a new
    // release folder hard-linked to the last one, a symlink flip, and `apache2ctl
    // graceful` to load the new code; measured as skiff is, under the same request loop
    // against its own host.
    let anchor = anchor_runs(&ssh, &app, runs);

    // Anchors side by side, on the same node and machine load:
    // a fresh `ssh NODE true` (the floor of any deploy over ssh), and the stall of an
    // `apache2ctl graceful` (what a deploy that reloads Apache costs every app)
    let ssh_true = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                ssh.run("true");
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    // the same request loop with no deploy, as long as an update takes: the longest
    // request of a quiet node, to compare the update's longest with
    let mut quiet = Vec::new();
    for _ in 0..runs {
        let loop_ = Traffic::start(bench_loop(&address, host, 3000));
        std::thread::sleep(MARGIN);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(
            results.iter().map(|r| r.wall).fold(0.0, f64::max).max(0.5),
        ));
        let seen = loop_.stop();
        quiet.push(
            seen.longest_between(t0, Instant::now())
                .map_or(0.0, |s| s.took.as_secs_f64()),
        );
    }
    let quiet_longest = median(quiet);
    let mut graceful = Vec::new();
    let mut graceful_failed = 0;
    for _ in 0..3 {
        let loop_ = Traffic::start(bench_loop(&address, host, 1000));
        std::thread::sleep(MARGIN);
        let t0 = Instant::now();
        ssh.run("apache2ctl graceful");
        // the slots restart after the command returns: watch for 3 s
        std::thread::sleep(Duration::from_secs(3));
        let seen = loop_.stop();
        graceful.push(
            seen.longest_between(t0, Instant::now())
                .map_or(0.0, |s| s.took.as_secs_f64()),
        );
        graceful_failed += seen.failures().len();
        std::thread::sleep(Duration::from_secs(1));
    }
    let graceful_stall = median(graceful);

    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    println!(
        "skiff update benchmark: one-line change of the Python fixture, local node, {runs} runs, \
         {profile} build, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "request loop: 2 threads, a fresh connection per request every 10 ms each, \
         from {MARGIN:?} before to {MARGIN:?} after each update"
    );
    println!();
    println!("  {:<34} {:>9}", "median of runs", "seconds");
    let m = |f: &dyn Fn(&Run) -> f64| median(results.iter().map(f).collect());
    let wall = m(&|r| r.wall);
    let served = m(&|r| r.served.unwrap_or(f64::INFINITY));
    let longest = m(&|r| r.longest);
    let longest_max = results.iter().map(|r| r.longest).fold(0.0, f64::max);
    println!("  {:<34} {:>9.3}", "wall time of `skiff update`", wall);
    println!("  {:<34} {:>9.3}", "served on HOST after (loop)", served);
    println!(
        "  {:<34} {:>9.3}",
        "served_after (skiff's report)",
        m(&|r| r.reported_served)
    );
    println!(
        "  {:<34} {:>9.3}  (worst run {:.3})",
        "longest request during the update", longest, longest_max
    );
    println!(
        "  {:<34} {:>9.3}  (update / quiet = {:.1}, goal at most 2)",
        "longest request, no deploy",
        quiet_longest,
        longest / quiet_longest.max(0.000_1)
    );
    println!(
        "  {:<34} {:>9.0}",
        "round trips over the session",
        m(&|r| r.round_trips as f64)
    );
    println!(
        "  {:<34} {:>9.3}",
        "phase sync (sync.seconds)",
        m(&|r| r.sync)
    );
    let mut names: Vec<String> = results
        .iter()
        .flat_map(|r| r.phases.iter().map(|(k, _)| k.clone()))
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        if name == "sync" {
            continue;
        }
        let v = m(&|r| {
            r.phases
                .iter()
                .find(|(k, _)| *k == name)
                .map_or(0.0, |(_, v)| *v)
        });
        println!("  {:<34} {:>9.3}", format!("phase {name}"), v);
    }
    let failed: usize = results.iter().map(|r| r.failures).sum();
    let requests: usize = results.iter().map(|r| r.requests).sum();
    println!(
        "  {:<34} {:>9}",
        "failed or non-2xx requests",
        format!("{failed}/{requests}")
    );
    println!();
    println!(
        "  {:<34} {:>9} {:>12} {:>10}",
        "anchors (issue 6)", "update", "served after", "stall"
    );
    for (tool, update, served, stall) in ANCHORS {
        println!("  {tool:<34} {update:>9} {served:>12} {stall:>10}");
    }
    println!(
        "  {:<34} {:>9.2} {:>12.2} {:>10.3}",
        "skiff (this run, medians)", wall, served, longest
    );
    println!(
        "  {:<34} {:>9.2} {:>12.2} {:>10.3}",
        "side by side: rsync+symlink+graceful", anchor.wall, anchor.served, anchor.longest
    );
    println!(
        "  {:<34} {:>9.2} {:>12} {:>10}",
        "side by side: fresh `ssh NODE true`", ssh_true, "-", "-"
    );
    println!(
        "  {:<34} {:>9} {:>12} {:>10.3}",
        "side by side: apache2ctl graceful", "-", "-", graceful_stall
    );
    println!(
        "  (graceful: median of 3, {graceful_failed} failed or non-2xx requests; ratios: skiff \
         served / ssh true = {:.1}, graceful stall / skiff longest = {:.0})",
        served / ssh_true,
        graceful_stall / longest.max(0.000_1)
    );
    println!(
        "  (rsync anchor: medians of {runs}, {} failed or non-2xx requests; skiff / anchor: \
         wall {:.2}, served after {:.2}, longest request {:.2})",
        anchor.failed,
        wall / anchor.wall,
        served / anchor.served,
        longest / anchor.longest.max(0.000_1)
    );
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "goals: served within {GOAL_SERVED} s: {} ({served:.3} s); longest request under \
         {GOAL_LONGEST} s: {} ({longest:.3} s median, {longest_max:.3} s worst)",
        verdict(served <= GOAL_SERVED),
        verdict(longest < GOAL_LONGEST)
    );
    drop(bench);
}

/// The rsync anchor's medians: wall time of the deploy commands, time until its host
/// served the new code (from the start), the longest request meanwhile, and the failed
/// requests of all its runs.
struct Anchor {
    wall: f64,
    served: f64,
    longest: f64,
    failed: usize,
}

/// Sets up the rsync + symlink + `apache2ctl graceful` anchor on the node (untimed: a
/// venv with the app's wheel, a mod_wsgi daemon vhost for `anchor.test` behind NGINX)
/// and measures `runs` one-line-change deploys of the same app under the same loop.
fn anchor_runs(ssh: &NodeShell, app: &Path, runs: usize) -> Anchor {
    let host = "anchor.test";
    let rsync = |n: usize| {
        let mut cmd = Command::new("rsync");
        cmd.args(["-az", "--delete", "-e", &ssh.rsh()]);
        if n > 0 {
            cmd.arg(format!("--link-dest=/srv/anchor/releases/{}", n - 1));
        }
        let status = cmd
            .arg(format!("{}/", app.display()))
            .arg(format!("root@{}:/srv/anchor/releases/{n}/", ssh.address))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| die(&format!("rsync: {e}")));
        if !status.success() {
            die(&format!("rsync to the anchor failed ({status})"));
        }
    };
    let flip = |n: usize| {
        ssh.run(&format!(
            "ln -sfn releases/{n} /srv/anchor/current.new && mv -T /srv/anchor/current.new /srv/anchor/current && apache2ctl graceful"
        ))
    };
    ssh.run(
        "set -e; command -v rsync >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get -qq install -y rsync >/dev/null; \
         mkdir -p /srv/anchor/releases",
    );
    set_message(&app.join("app.py"), "anchor0");
    rsync(0);
    ssh.run(&format!(
        "set -e; python3 -m venv /srv/anchor/venv; \
         /srv/anchor/venv/bin/pip install -q --no-index --find-links /srv/anchor/releases/0/wheels skiff-greeting; \
         ln -sfn releases/0 /srv/anchor/current; chmod -R a+rX /srv/anchor; \
         printf '%s\\n' '<VirtualHost 127.0.0.1:8080>' '  ServerName {host}' \
           '  WSGIDaemonProcess anchor processes=2 threads=5 python-home=/srv/anchor/venv python-path=/srv/anchor/current' \
           '  WSGIProcessGroup anchor' '  WSGIApplicationGroup %{{GLOBAL}}' \
           '  WSGIScriptAlias / /srv/anchor/current/app.py' \
           '  <Directory /srv/anchor>' '    Require all granted' '  </Directory>' '</VirtualHost>' \
           >/etc/apache2/sites-available/anchor.conf; \
         a2ensite -q anchor >/dev/null; apache2ctl configtest 2>/dev/null; apache2ctl graceful; \
         printf '%s\\n' 'server {{' '  listen 80;' '  server_name {host};' \
           '  location / {{ proxy_pass http://127.0.0.1:8080; proxy_set_header Host {host}; }}' '}}' \
           >/etc/nginx/conf.d/zz-anchor.conf; \
         nginx -t 2>/dev/null; nginx -s reload; sleep 2"
    ));
    let mut walls = Vec::new();
    let mut served = Vec::new();
    let mut longest = Vec::new();
    let mut failed = 0;
    for n in 1..=runs {
        let marker = format!("anchor{n}");
        set_message(&app.join("app.py"), &marker);
        let loop_ = Traffic::start(bench_loop(&ssh.address, host, 3000));
        std::thread::sleep(MARGIN);
        let t0 = Instant::now();
        rsync(n);
        flip(n);
        walls.push(t0.elapsed().as_secs_f64());
        // the slot processes restart after graceful returns: watch a while longer
        std::thread::sleep(Duration::from_secs(3));
        let t1 = Instant::now();
        let seen = loop_.stop();
        let first = seen
            .samples
            .iter()
            .filter(|s| s.sent >= t0)
            .filter(|s| {
                s.outcome
                    .as_ref()
                    .is_ok_and(|(c, b)| *c == 200 && b.contains(&format!("message={marker} ")))
            })
            .map(|s| s.done().duration_since(t0).as_secs_f64())
            .fold(f64::INFINITY, f64::min);
        served.push(first);
        longest.push(
            seen.longest_between(t0, t1)
                .map_or(0.0, |s| s.took.as_secs_f64()),
        );
        failed += seen.failures().len();
        eprintln!(
            "anchor run {n}: wall {:.3} s, served after {first:.3} s, longest request {:.1} ms",
            walls[walls.len() - 1],
            longest[longest.len() - 1] * 1000.0
        );
    }
    Anchor {
        wall: median(walls),
        served: median(served),
        longest: median(longest),
        failed,
    }
}
