//! Benchmark (not a test): what one command costs over skiff's shared SSH session
//! versus a fresh `ssh` process per command, on a real local node.
//!
//! Run with `bench/ssh-session.sh` (root, Linux, the local node rootfs). Prints the
//! medians and their ratio; the fresh `ssh` is the anchor, measured side by side: the
//! samples of both are interleaved, so a burst of load on the machine hits both alike.

use std::time::{Duration, Instant};

use skiff::cluster::{Provider, StateFile};
use skiff::providers::{self, CreateRequest};
use skiff::transport::{self, Session, Target, ssh};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    if let Some(problem) = providers::local::host_problem() {
        eprintln!("ssh-session bench skipped: {problem}");
        std::process::exit(1);
    }
    let runs: usize = std::env::var("SKIFF_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().expect("temp dir");
    let state = StateFile::new(dir.path().join("cluster.toml"));
    let req = CreateRequest {
        name: "bench".into(),
        provider: Provider::Local,
        host: None,
        user: None,
        port: None,
        identity: None,
        force: false,
        repin: false,
        suite: None,
    };
    let result = transport::block_on(async {
        let created = providers::create(&req, &state, &mut |_: &str, _: String| {}).await?;
        let target = Target::for_node("bench", &created.node);
        let measured = measure(&target, &state, runs).await;
        providers::destroy("bench", &state, &mut |_: &str, _: String| {}).await?;
        measured
    })
    .expect("runtime");
    if let Ok(control) = ssh::control_dir(&state.dir()) {
        let _ = std::fs::remove_dir(control); // empty once the session closed
    }
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ssh-session bench failed: {e}");
            std::process::exit(1);
        }
    };
    let ratio = r.fresh.as_secs_f64() / r.shared.as_secs_f64();
    println!("ssh-session benchmark on a local node ({runs} commands each, `true` on the node)");
    println!("  connect (master start, once)    {}", ms(r.connect));
    println!(
        "  shared session, per command     {}  (median)",
        ms(r.shared)
    );
    println!(
        "  shared session, 16 in parallel  {}  (total, 4 channels at a time)",
        ms(r.parallel16)
    );
    println!(
        "  fresh `ssh` per command         {}  (median, anchor)",
        ms(r.fresh)
    );
    println!("  ratio fresh / shared            {ratio:.0}x");
}

struct Figures {
    connect: Duration,
    shared: Duration,
    parallel16: Duration,
    fresh: Duration,
}

async fn measure(target: &Target, state: &StateFile, runs: usize) -> skiff::Result<Figures> {
    let t = Instant::now();
    let session = Session::connect(target, &state.dir()).await?;
    let connect = t.elapsed();
    for _ in 0..5 {
        session.run_ok(&["true"]).await?;
    }
    let known_hosts = ssh::known_hosts_path(&state.dir());
    let identity = target.identity.clone().expect("local nodes have a key");
    let fresh_true = || {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-i")
            .arg(&identity)
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=no"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .arg(format!("{}@{}", target.user, target.address))
            .arg("true")
            .stdin(std::process::Stdio::null());
        cmd
    };
    // Interleaved: one shared-session command, then one fresh `ssh`, in turn (the first
    // of each pair alternating), so both see the same moments of the machine's load.
    let mut shared = Vec::new();
    let mut fresh = Vec::new();
    for i in 0..runs {
        for first_shared in [i % 2 == 0, i % 2 != 0] {
            if first_shared {
                let t = Instant::now();
                session.run_ok(&["true"]).await?;
                shared.push(t.elapsed());
            } else {
                let t = Instant::now();
                let status = fresh_true().status().await.expect("ssh runs");
                assert!(status.success());
                fresh.push(t.elapsed());
            }
        }
    }
    let session = std::sync::Arc::new(session);
    let t = Instant::now();
    let mut batch = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let s = session.clone();
        batch.spawn(async move { s.run_ok(&["true"]).await });
    }
    while let Some(done) = batch.join_next().await {
        done.expect("task")?;
    }
    let parallel16 = t.elapsed();
    let session = std::sync::Arc::try_unwrap(session).expect("tasks are done");
    session.close().await?;
    Ok(Figures {
        connect,
        shared: median(shared),
        parallel16,
        fresh: median(fresh),
    })
}
