//! Drives one `skiff::sync::push` from the command line, for bench/sync.sh and manual
//! checks: scan DIR, connect, push into RELEASES/NEW from RELEASES/BASE, print the
//! summary as JSON on stdout.
//!
//! ```text
//! cargo run --release --example sync_push -- \
//!     --host 10.250.0.30 --identity KEY --ssh-dir DIR --releases /srv/skiff/apps/x/releases \
//!     [--base N] --new M [--cache DIR] APP_DIR
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use skiff::sync::{self, Push, PushOptions, Releases, ScanOptions};
use skiff::transport::{Session, Target};

struct Args {
    host: String,
    user: String,
    port: u16,
    identity: Option<PathBuf>,
    ssh_dir: PathBuf,
    releases: String,
    base: Option<u32>,
    new: u32,
    cache: Option<PathBuf>,
    dir: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        host: String::new(),
        user: "root".into(),
        port: 22,
        identity: None,
        ssh_dir: PathBuf::new(),
        releases: String::new(),
        base: None,
        new: 0,
        cache: None,
        dir: PathBuf::new(),
    };
    while let Some(arg) = it.next() {
        let mut val = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--host" => a.host = val()?,
            "--user" => a.user = val()?,
            "--port" => a.port = val()?.parse().map_err(|_| "bad --port")?,
            "--identity" => a.identity = Some(val()?.into()),
            "--ssh-dir" => a.ssh_dir = val()?.into(),
            "--releases" => a.releases = val()?,
            "--base" => a.base = Some(val()?.parse().map_err(|_| "bad --base")?),
            "--new" => a.new = val()?.parse().map_err(|_| "bad --new")?,
            "--cache" => a.cache = Some(val()?.into()),
            _ if !arg.starts_with("--") => a.dir = arg.into(),
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    if a.host.is_empty() || a.releases.is_empty() || a.new == 0 || a.dir.as_os_str().is_empty() {
        return Err("need --host, --releases, --new and APP_DIR".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sync_push: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(run(args)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(d) = e.detail() {
                eprintln!("{d}");
            }
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(a: Args) -> skiff::Result<String> {
    // The local part (scan, plan, streams) runs while the SSH connection is made: what
    // `skiff update` does too.
    let hash_cache = a.cache.as_ref().map(|c| c.join("hashes.json"));
    let dir = a.dir.clone();
    let releases = Releases::new(&a.releases)?;
    let options = PushOptions {
        cache_dir: a.cache.as_ref().map(|c| c.join("manifests")),
        ..PushOptions::default()
    };
    let (base, new) = (a.base, a.new);
    let local = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let manifest = sync::scan(&dir, &ScanOptions { hash_cache })?;
        let scan_secs = t.elapsed().as_secs_f64();
        let push = Push::new(&manifest, "bench", &releases, base, new, &options)?;
        Ok::<_, skiff::Error>((push, scan_secs))
    });
    let target = Target {
        node: "bench".into(),
        address: a.host.clone(),
        user: a.user.clone(),
        port: a.port,
        identity: a.identity.clone(),
    };
    let t = Instant::now();
    let session = Session::connect(&target, &a.ssh_dir).await?;
    let connect_secs = t.elapsed().as_secs_f64();
    let (push, scan_secs) = match local.await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            session.close().await?;
            return Err(e);
        }
        Err(e) => panic!("scan thread: {e}"),
    };
    let result = push.run(&session).await;
    session.close().await?;
    let summary = result?;
    let mut v = serde_json::to_value(&summary).expect("serialisable");
    v["seconds"]["scan"] = scan_secs.into();
    v["seconds"]["connect"] = connect_secs.into();
    Ok(v.to_string())
}
