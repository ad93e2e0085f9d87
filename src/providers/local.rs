//! Throwaway Debian nodes on this machine: `create-node --provider local`.
//!
//! Each node is a network namespace at 10.250.0.N with an overlay of a cached Debian
//! rootfs, booted with systemd as PID 1 through `systemd-nspawn` (as real servers run:
//! units, timers, journald), sshd with its own host keys: "try skiff without a server",
//! and the nodes skiff's own tests deploy to. `SKIFF_LOCAL_INIT=none` makes an init-less
//! node instead (a bash PID 1 that starts sshd), like a container-style server. The host side is
//! `providers/local-node.sh` (embedded here, written into the state dir and run with
//! bash as root); this module finds its paths, runs it and reads its answers.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The host-side script, run as `bash local-node.sh VERB ...`.
pub const SCRIPT: &str = include_str!("../../providers/local-node.sh");

/// Automatically allocated node numbers start here, away from fixed ranges that other
/// tools (and test recipes) use below it.
pub const FIRST_NUMBER: u8 = 100;

/// Default state dir: login key, per-node files, apt proxy config and cache.
pub const DEFAULT_HOME: &str = "/var/lib/skiff-local";

/// Default cached Debian 12 rootfs (debootstrap, made once).
pub const DEFAULT_ROOTFS: &str = "/var/cache/skiff/rootfs-bookworm";

/// The Debian suites a local node can run.
pub const SUITES: &[&str] = &["bookworm", "trixie"];

/// The state dir in use: `SKIFF_LOCAL_HOME` or [`DEFAULT_HOME`].
pub fn home() -> PathBuf {
    env_path("SKIFF_LOCAL_HOME").unwrap_or_else(|| PathBuf::from(DEFAULT_HOME))
}

/// The suite a new node runs: `chosen` (`create-node --os`), else `SKIFF_LOCAL_SUITE`,
/// else bookworm.
pub fn suite(chosen: Option<&'static str>) -> &'static str {
    chosen
        .or_else(|| {
            let v = std::env::var("SKIFF_LOCAL_SUITE").ok()?;
            SUITES.iter().copied().find(|s| *s == v)
        })
        .unwrap_or("bookworm")
}

/// The rootfs for `suite`: `SKIFF_LOCAL_ROOTFS` (tests point it at a frozen set-up copy)
/// for the default suite, else `/var/cache/skiff/rootfs-SUITE`.
pub fn rootfs(suite: &str) -> PathBuf {
    match env_path("SKIFF_LOCAL_ROOTFS") {
        Some(p) if suite == "bookworm" || p.to_string_lossy().contains(suite) => p,
        _ => PathBuf::from(format!("/var/cache/skiff/rootfs-{suite}")),
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Whether new local nodes boot systemd (the default) rather than an init-less PID 1
/// (`SKIFF_LOCAL_INIT=none`).
pub fn boots_systemd() -> bool {
    std::env::var("SKIFF_LOCAL_INIT").map_or(true, |v| v != "none")
}

/// Whether the cached rootfs is there (with sshd, and systemd when nodes boot it); if
/// not, [`ensure_rootfs`] makes it.
pub fn rootfs_ready(suite: &str) -> bool {
    let root = rootfs(suite);
    root.join("usr/sbin/sshd").exists()
        && (!boots_systemd() || root.join("lib/systemd/systemd").exists())
}

/// A local node that is up: its number, address and the key root logs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNode {
    /// N in 10.250.0.N and `nodeN`.
    pub number: u8,
    /// 10.250.0.N.
    pub address: String,
    /// Private key whose public half is in the node's /root/.ssh/authorized_keys.
    pub identity: PathBuf,
    /// The state dir the node lives in (recorded so destroy works with any env).
    pub home: PathBuf,
    /// Owner token kept in the node's folder: destroy only tears down a node that still
    /// carries it, so a stale record never destroys a newer node with the same number.
    pub id: String,
}

/// A token that tells this node apart from any later node with the same number.
fn new_id() -> String {
    use sha2::{Digest, Sha256};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seed = format!(
        "{}:{}:{:?}",
        std::process::id(),
        now.as_nanos(),
        std::thread::current().id()
    );
    hex::encode(&Sha256::digest(seed.as_bytes())[..8])
}

/// Why local nodes cannot run here, or `None` when they can: Linux, root, and the host
/// tools the script uses.
pub fn host_problem() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("local nodes need Linux network namespaces".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("local nodes need root (network namespaces, mounts)".into());
    }
    for tool in [
        "bash",
        "ip",
        "unshare",
        "mount",
        "flock",
        "ssh-keygen",
        "ss",
    ] {
        if which::which(tool).is_err() {
            return Some(format!("the `{tool}` program is not installed"));
        }
    }
    if boots_systemd() && which::which("systemd-nspawn").is_err() {
        return Some(
            "systemd nodes need `systemd-nspawn` (apt-get install --no-install-recommends \
             systemd-container), or set SKIFF_LOCAL_INIT=none for init-less nodes"
                .into(),
        );
    }
    None
}

/// The hint that goes with [`host_problem`].
pub const HOST_HINT: &str = "run as root on Linux with iproute2, util-linux and openssh-client \
     installed, or add a server you have with `--provider ssh --host HOST`";

/// Writes the script into `home` (if changed) and returns its path; atomic, so
/// concurrent skiffs never run a half-written copy.
fn install_script(home: &Path) -> Result<PathBuf> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    fs::create_dir_all(home).map_err(write_err(home))?;
    fs::set_permissions(home, fs::Permissions::from_mode(0o700)).map_err(write_err(home))?;
    let path = home.join("local-node.sh");
    if fs::read_to_string(&path).is_ok_and(|text| text == SCRIPT) {
        return Ok(path);
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".local-node.")
        .tempfile_in(home)
        .map_err(write_err(home))?;
    tmp.write_all(SCRIPT.as_bytes()).map_err(write_err(&path))?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).map_err(write_err(&path))?;
    tmp.persist(&path).map_err(|e| Error::Write {
        path: path.clone(),
        source: e.error,
    })?;
    Ok(path)
}

/// Runs `bash local-node.sh ARGS` from `home`; stdout on success, else an error with
/// the script's last words.
async fn run_script(home: &Path, suite: &str, args: &[&str], what: &str) -> Result<String> {
    let script = install_script(home)?;
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .args(args)
        .env("SKIFF_LOCAL_HOME", home)
        .env("SKIFF_LOCAL_SUITE", suite)
        .env("SKIFF_LOCAL_ROOTFS", rootfs(suite))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::failed(format!("could not run `bash {}`: {e}", script.display())))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.trim_end().lines().collect();
    let tail = tail[tail.len().saturating_sub(6)..].join("\n  ");
    Err(Error::Failed {
        message: format!("{what} failed:\n  {tail}"),
        hint: Some(format!(
            "the host side is `{}`; run it by hand with the same arguments ({}) to see more",
            script.display(),
            args.join(" ")
        )),
    })
}

/// Creates the cached Debian rootfs with debootstrap when it is missing (about a
/// minute, once per machine).
pub async fn ensure_rootfs(suite: &str) -> Result<()> {
    run_script(
        &home(),
        suite,
        &["ensure-rootfs"],
        "creating the Debian rootfs",
    )
    .await?;
    Ok(())
}

/// Brings up a new node with the lowest free number from [`FIRST_NUMBER`] on.
pub async fn create(suite: &str) -> Result<LocalNode> {
    let home = home();
    let id = new_id();
    let out = run_script(
        &home,
        suite,
        &["up-auto", &FIRST_NUMBER.to_string(), &id],
        "starting a local node",
    )
    .await?;
    let number: u8 = out
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| {
            Error::failed(format!(
                "the local node script printed no node number (it printed `{}`)",
                out.trim()
            ))
        })?;
    Ok(LocalNode {
        number,
        address: address(number),
        identity: home.join("id_ed25519"),
        home,
        id,
    })
}

/// Stops node `number` of state dir `home` and removes everything of it: processes,
/// mounts, netns, veth, files. Idempotent; with `id`, a node of that number that does
/// not carry the token (a newer one) is left alone.
pub async fn destroy(home: &Path, number: u8, id: Option<&str>) -> Result<()> {
    let number_text = number.to_string();
    let mut args = vec!["down", number_text.as_str()];
    args.extend(id);
    run_script(
        home,
        suite(None),
        &args,
        &format!("destroying local node {number}"),
    )
    .await?;
    Ok(())
}

/// 10.250.0.N: where local node N answers.
pub fn address(number: u8) -> String {
    format!("10.250.0.{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_is_embedded_and_knows_its_verbs() {
        for verb in ["up-auto)", "down)", "ensure-rootfs)", "_init)", "_boot)"] {
            assert!(SCRIPT.contains(verb), "{verb}");
        }
        assert!(!SCRIPT.contains("StrictHostKeyChecking=no"));
    }

    #[test]
    fn script_is_valid_bash() {
        let status = std::process::Command::new("bash")
            .arg("-n")
            .arg("-c")
            .arg(SCRIPT)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
