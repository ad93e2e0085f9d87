//! Set-up nodes, fast: a Debian rootfs frozen right after a real `skiff setup-node`, used
//! as the read-only base of later nodes, so a test that needs a set-up node pays ~2 s
//! (boot + a setup-node re-run) instead of ~20-30 s of apt.
//!
//! ```ignore
//! let env = TestEnv::new();
//! if !nodes_available() { return; }
//! let node = TestNode::launch_set_up(&env);   // set up, recorded in env's cluster.toml
//! ```
//!
//! The frozen rootfs lives beside the base one, named by a digest of the assets and of the
//! local provider's script (`/var/cache/skiff/rootfs-bookworm-setup-<12 hex>`), so a
//! change to any template, server-file or node image makes a new one; building it takes
//! one full setup-node (~30 s) under a lock.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use super::{TestEnv, TestNode};

/// Where the frozen rootfs for this build's assets lives.
pub fn set_up_rootfs_path() -> PathBuf {
    let base = skiff::providers::local::rootfs("bookworm");
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(skiff::assets::digest().as_bytes());
    hash.update(skiff::providers::local::SCRIPT.as_bytes());
    let digest = hex::encode(hash.finalize());
    let name = format!(
        "{}-setup-{}",
        base.file_name().unwrap().to_string_lossy(),
        &digest[..12]
    );
    base.with_file_name(name)
}

/// The frozen set-up rootfs, built now if missing (one real setup-node, under a lock so
/// parallel tests build it once).
pub fn set_up_rootfs() -> PathBuf {
    let dest = set_up_rootfs_path();
    let ready = dest.join(".skiff-setup-ready");
    if ready.exists() {
        mark_used(&dest);
        return dest;
    }
    let parent = dest.parent().unwrap();
    fs::create_dir_all(parent).unwrap();
    let lock = File::create(parent.join(".skiff-setup-rootfs.lock")).unwrap();
    lock.lock().unwrap();
    if ready.exists() {
        mark_used(&dest);
        return dest;
    }
    eprintln!(
        "building the set-up rootfs {} (one full setup-node, about 30 s)",
        dest.display()
    );
    let env = TestEnv::new();
    let node = TestNode::launch_named(&env, "freeze");
    env.skiff()
        .args(["setup-node", &node.name])
        .assert()
        .success();
    // quiesce: no daemon writes while the tree is copied (their pid files are on /run)
    node.exec(". /usr/local/share/skiff/lib/services.sh; skiff_stop nginx; skiff_stop apache2");
    let root = skiff::providers::local::home()
        .join("nodes")
        .join(node.number.to_string())
        .join("root");
    let tmp = dest.with_extension("tmp");
    let _ = fs::remove_dir_all(&tmp);
    let status = StdCommand::new("cp")
        .args(["-a", "--one-file-system"])
        .arg(format!("{}/.", root.display()))
        .arg(&tmp)
        .status()
        .expect("cp runs");
    assert!(status.success(), "copying {} failed", root.display());
    // per-node pieces the provider writes anew anyway, and the boot's own identity
    for f in [
        "etc/ssh/ssh_host_ed25519_key",
        "etc/ssh/ssh_host_ed25519_key.pub",
    ] {
        let _ = fs::remove_file(tmp.join(f));
    }
    fs::write(tmp.join("etc/machine-id"), "").unwrap();
    let journal = tmp.join("var/log/journal");
    let _ = fs::remove_dir_all(&journal);
    fs::create_dir_all(&journal).unwrap();
    node.destroy();
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&tmp, &dest).unwrap();
    File::create(&ready).unwrap();
    remove_stale_siblings(&dest);
    dest
}

/// Records that a test is about to use `rootfs` (stale ones are found by this time).
fn mark_used(rootfs: &Path) {
    let _ = File::create(rootfs.join(".skiff-setup-used"));
}

/// Frozen rootfs of other digests that no mounted node uses and no test used for two
/// hours (another checkout's suite may be about to start a node on one).
fn remove_stale_siblings(keep: &Path) {
    let Some(parent) = keep.parent() else { return };
    let prefix = format!(
        "{}-setup-",
        skiff::providers::local::rootfs("bookworm")
            .file_name()
            .unwrap()
            .to_string_lossy()
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path == keep
            || !name.starts_with(&prefix)
            || name.ends_with(".tmp")
            || mounts.contains(&*path.to_string_lossy())
        {
            continue;
        }
        let last_use = [".skiff-setup-used", ".skiff-setup-ready"]
            .iter()
            .filter_map(|f| fs::metadata(path.join(f)).and_then(|m| m.modified()).ok())
            .max();
        if last_use
            .is_some_and(|t| t.elapsed().unwrap_or_default() < std::time::Duration::from_secs(7200))
        {
            continue;
        }
        let _ = fs::remove_dir_all(&path);
    }
}

impl<'a> TestNode<'a> {
    /// A node started from the frozen set-up rootfs, then `skiff setup-node` (a re-run:
    /// it records the stamp in `env`'s cluster.toml and starts NGINX and Apache).
    pub fn launch_set_up(env: &'a TestEnv) -> TestNode<'a> {
        let rootfs = set_up_rootfs();
        let name = format!(
            "s{}",
            super::NEXT_NAME.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let out = env
            .skiff()
            .env("SKIFF_LOCAL_ROOTFS", &rootfs)
            .args(["create-node", &name, "--provider", "local", "--yes"])
            .output()
            .expect("skiff runs");
        assert!(
            out.status.success(),
            "create-node {name} on {} failed:\n{}",
            rootfs.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let node = TestNode::adopt(env, &name);
        env.skiff().args(["setup-node", &name]).assert().success();
        node
    }
}
