//! Delta sync (`skiff::sync::push`) against real nodes: after every sync the release on the
//! node equals the local tree byte for byte (content, exec bits, symlink targets, empty
//! files and folders), proven by a manifest computed from scratch on the node.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff::sync::{self, Manifest, PushOptions, Releases, ScanOptions, SyncSummary};
use skiff::transport::{self, Session, Target};

use crate::support::{TestEnv, TestNode, nodes_available};

/// Computes the manifest text of a folder on the node (python3, test tooling only).
const NODE_MANIFEST_PY: &str = include_str!("node_manifest.py");

const RELEASES: &str = "/srv/skiff/apps/demo/releases";

/// Deterministic pseudo-random bytes (xorshift): incompressible test content.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn write(root: &Path, rel: &str, body: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

fn chmod(root: &Path, rel: &str, mode: u32) {
    fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap();
}

/// A node, a local app folder and a manifest cache: one sync world.
struct World<'a> {
    env: &'a TestEnv,
    node: TestNode<'a>,
    app: PathBuf,
    cache: PathBuf,
    releases: Releases,
}

impl<'a> World<'a> {
    fn new(env: &'a TestEnv) -> World<'a> {
        let node = TestNode::launch(env);
        node.exec(&format!(
            "cat > /tmp/node_manifest.py <<'SKIFF_EOF'\n{NODE_MANIFEST_PY}\nSKIFF_EOF"
        ));
        let app = env.root().join("app");
        fs::create_dir_all(&app).unwrap();
        World {
            env,
            node,
            app,
            cache: env.root().join("cache"),
            releases: Releases::new(RELEASES).unwrap(),
        }
    }

    fn scan(&self) -> Manifest {
        sync::scan(&self.app, &ScanOptions::default()).expect("scan")
    }

    fn push(&self, base: Option<u32>, new: u32) -> skiff::Result<(SyncSummary, Manifest)> {
        self.push_with(base, new, &self.options())
    }

    fn options(&self) -> PushOptions {
        PushOptions {
            cache_dir: Some(self.cache.clone()),
            ..PushOptions::default()
        }
    }

    fn push_with(
        &self,
        base: Option<u32>,
        new: u32,
        options: &PushOptions,
    ) -> skiff::Result<(SyncSummary, Manifest)> {
        let local = self.scan();
        let target = self.node.target();
        let state_dir = self.env.state_dir();
        let summary = transport::block_on(async {
            let s = Session::connect(&target, &state_dir).await?;
            let r = sync::push(&s, &local, &self.releases, base, new, options).await;
            s.close().await?;
            r
        })
        .expect("runtime")?;
        Ok((summary, local))
    }

    /// The manifest of release `n` computed on the node from its files.
    fn node_manifest(&self, n: u32) -> String {
        self.node
            .exec(&format!("python3 /tmp/node_manifest.py {RELEASES}/{n}"))
    }

    /// Asserts release `n` on the node equals `local`, its stored manifest is it, and no
    /// staging folder is left.
    fn assert_release_equals(&self, n: u32, local: &Manifest) {
        self.assert_tree_equals(n, local);
        let leftovers = self
            .node
            .exec(&format!("ls -A {RELEASES} | grep '^\\.tmp-' || true"));
        assert_eq!(leftovers.trim(), "", "staging folders left behind");
    }

    /// Asserts release `n` on the node equals `local` and its stored manifest is it.
    fn assert_tree_equals(&self, n: u32, local: &Manifest) {
        let on_node = self.node_manifest(n);
        let want = local.to_text();
        if on_node != want {
            panic!(
                "release {n} differs from the local tree\n--- local\n{want}\n--- node\n{on_node}"
            );
        }
        let stored = self.node.exec(&format!("cat {RELEASES}/{n}.manifest"));
        assert_eq!(stored, want, "stored manifest of release {n}");
    }
}

#[test]
fn every_kind_of_change_leaves_the_release_equal_to_the_local_tree() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let w = World::new(&env);
    let a = &w.app;

    // 1. A new tree: no base, one stream.
    write(
        a,
        "app.py",
        b"def application(env, start):\n    return [b'v1']\n",
    );
    write(a, "static/style.css", b"body { color: red }\n");
    write(a, "static/big.bin", &noise(3_000_000, 1));
    write(a, "data/large.txt", &noise(400_000, 2));
    write(a, "empty.txt", b"");
    write(a, "dir with space/ünïcødé 日本.txt", b"non-ascii\n");
    write(a, "dir with space/100% sure.txt", b"percent\n");
    write(a, "bin/run.sh", b"#!/bin/sh\necho run\n");
    chmod(a, "bin/run.sh", 0o755);
    fs::create_dir_all(a.join("empty-dir")).unwrap();
    symlink("../app.py", a.join("static/app-link.py")).unwrap();
    symlink("static", a.join("assets")).unwrap();
    write(a, ".env", b"SECRET=never shipped\n");
    write(a, "__pycache__/app.cpython-311.pyc", b"cache");
    write(a, ".skiffignore", b"*.log\n");
    write(a, "debug.log", b"not shipped\n");

    let (s1, m1) = w.push(None, 1).unwrap();
    w.assert_release_equals(1, &m1);
    assert!(!m1.entries.contains_key(".env") && !m1.entries.contains_key("debug.log"));
    assert_eq!(
        s1.files.new,
        m1.entries
            .values()
            .filter(|e| !matches!(e.kind, sync::manifest::Kind::Dir))
            .count()
    );
    assert_eq!(s1.round_trips, 1, "{s1:?}");
    assert_eq!(s1.base, None);
    assert_eq!(s1.digest, m1.digest());
    let release1 = w.node_manifest(1);

    // 2. A large file changed in one place: a delta, a tiny fraction on the wire.
    let mut big = noise(3_000_000, 1);
    big[1_500_000..1_500_040].copy_from_slice(b"# a one-line change in a large file....\n");
    write(a, "static/big.bin", &big);
    let (s2, m2) = w.push(Some(1), 2).unwrap();
    w.assert_release_equals(2, &m2);
    assert_eq!(s2.delta_files, 1, "{s2:?}");
    assert_eq!(s2.files.changed, 1);
    assert_eq!(s2.bytes_literal, 0, "{s2:?}");
    assert!(s2.bytes_delta < 20_000, "{s2:?}");
    assert!(
        s2.bytes_sent + s2.bytes_received < 150_000,
        "bytes on the wire {} should be far below the file's 3 MB: {s2:?}",
        s2.bytes_sent + s2.bytes_received
    );
    assert!(s2.round_trips <= 3, "{s2:?}");
    assert!(s2.fallbacks.is_empty(), "{s2:?}");
    assert_eq!(w.node_manifest(1), release1, "base release 1 changed");

    // 3. A small file changed: whole, in the stream.
    write(
        a,
        "app.py",
        b"def application(env, start):\n    return [b'v3']\n",
    );
    let (s3, m3) = w.push(Some(2), 3).unwrap();
    w.assert_release_equals(3, &m3);
    assert_eq!((s3.files.changed, s3.delta_files), (1, 0), "{s3:?}");
    assert_eq!(s3.round_trips, 1, "cached base, no delta: one round trip");
    let release2 = w.node_manifest(2);

    // 4. Deleted and renamed files, a removed folder, a changed symlink, a file that
    // becomes a folder and a folder that becomes a file.
    fs::remove_file(a.join("static/style.css")).unwrap();
    fs::rename(a.join("data/large.txt"), a.join("data/renamed.txt")).unwrap();
    fs::remove_dir_all(a.join("empty-dir")).unwrap();
    fs::remove_file(a.join("assets")).unwrap();
    symlink("bin", a.join("assets")).unwrap();
    fs::remove_file(a.join("empty.txt")).unwrap();
    write(a, "empty.txt/now-a-folder.txt", b"");
    fs::remove_dir_all(a.join("dir with space")).unwrap();
    write(a, "dir with space", b"now a file\n");
    let (s4, m4) = w.push(Some(3), 4).unwrap();
    w.assert_release_equals(4, &m4);
    assert!(s4.files.deleted >= 3, "{s4:?}");
    assert_eq!(w.node_manifest(2), release2, "base release 2 changed");

    // 5. Exec bit changes only: the hard link shared with release 4 must not change mode.
    chmod(a, "bin/run.sh", 0o644);
    chmod(a, "app.py", 0o755);
    let release4 = w.node_manifest(4);
    let (s5, m5) = w.push(Some(4), 5).unwrap();
    w.assert_release_equals(5, &m5);
    assert_eq!(s5.files.mode_changed, 2, "{s5:?}");
    assert_eq!(s5.bytes_literal, 0, "{s5:?}");
    assert_eq!(w.node_manifest(4), release4, "base release 4 changed");

    // 6. No change at all.
    let (s6, m6) = w.push(Some(5), 6).unwrap();
    w.assert_release_equals(6, &m6);
    assert_eq!(s6.digest, m5.digest());
    assert!(s6.round_trips <= 3, "{s6:?}");
    assert_eq!(s6.round_trips, 1, "{s6:?}");
    assert_eq!((s6.bytes_literal, s6.bytes_delta), (0, 0));

    // 7. Without the local manifest cache (another laptop): the base manifest comes
    // from the node, still at most three round trips with a delta.
    big[10..20].copy_from_slice(b"0123456789");
    write(a, "static/big.bin", &big);
    let fresh = PushOptions {
        cache_dir: Some(env.root().join("other-cache")),
        ..PushOptions::default()
    };
    let (s7, m7) = w.push_with(Some(6), 7, &fresh).unwrap();
    w.assert_release_equals(7, &m7);
    assert!(!s7.base_manifest_cached, "{s7:?}");
    assert_eq!(s7.delta_files, 1, "{s7:?}");
    assert_eq!(s7.round_trips, 3, "{s7:?}");
    let (s8, _) = w.push_with(Some(7), 8, &fresh).unwrap();
    assert!(s8.base_manifest_cached, "{s8:?}");
    assert_eq!(s8.round_trips, 1, "{s8:?}");

    // Every release is still whole and the releases folder holds only releases.
    let listing = w.node.exec(&format!("ls -A {RELEASES}"));
    // `.spare-N` is the background clone for the next sync.
    let mut names: Vec<&str> = listing
        .split_whitespace()
        .filter(|n| !n.starts_with(".spare-"))
        .collect();
    names.sort();
    let mut want: Vec<String> = (1..=8)
        .flat_map(|n| [n.to_string(), format!("{n}.manifest")])
        .collect();
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn an_escaping_symlink_is_refused_before_anything_is_sent() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "app.py", b"x");
    symlink("../../etc/passwd", t.path().join("evil")).unwrap();
    let err = sync::scan(t.path(), &ScanOptions::default()).unwrap_err();
    assert!(err.to_string().contains("evil"), "{err}");
    assert!(
        err.to_string().contains("leads out of the app folder"),
        "{err}"
    );
    fs::remove_file(t.path().join("evil")).unwrap();
    symlink("/etc/passwd", t.path().join("abs")).unwrap();
    let err = sync::scan(t.path(), &ScanOptions::default()).unwrap_err();
    assert!(err.to_string().contains("abs"), "{err}");
    assert!(err.to_string().contains("absolute"), "{err}");
}

#[test]
fn node_side_drift_is_repaired_and_an_existing_release_is_refused() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let w = World::new(&env);
    write(&w.app, "app.py", b"v1\n");
    write(&w.app, "lib/util.py", b"util\n");
    write(&w.app, "static/big.bin", &noise(200_000, 5));
    let (_, m1) = w.push(None, 1).unwrap();
    w.assert_release_equals(1, &m1);
    let spare_of = |n: u32| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let probe = format!("test -f {RELEASES}/.spare-{n}.missing && echo yes || echo no");
        while w.node.exec(&probe).trim() != "yes" {
            assert!(
                Instant::now() < deadline,
                "no spare clone of release {n} appeared"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Without a spare clone: someone (an app writing into its release, a person) changed
    // release 1 on the node: an extra file and folder, a deleted file, another mode. The
    // clone made now is checked against the manifest and repaired.
    spare_of(1);
    w.node.exec(&format!(
        "cd {RELEASES} && rm -rf .spare-1 .spare-1.missing && cd 1 && \
         mkdir -p __pycache__ && echo x > __pycache__/app.pyc && \
         echo extra > extra.txt && rm lib/util.py && chmod 600 app.py"
    ));
    write(&w.app, "static/big.bin", &{
        let mut b = noise(200_000, 5);
        b[5] ^= 1;
        b
    });
    let (s2, m2) = w.push(Some(1), 2).unwrap();
    w.assert_release_equals(2, &m2);
    assert_eq!(s2.delta_files, 1, "{s2:?}");
    assert_eq!(s2.round_trips, 3, "prepare, signatures, upload: {s2:?}");

    // With the spare clone made after release 2 was published: files added to or
    // deleted from release 2 since do not reach release 3 (the spare has its own folders).
    spare_of(2);
    w.node.exec(&format!(
        "cd {RELEASES}/2 && rm lib/util.py && echo junk > junk.txt"
    ));
    write(&w.app, "app.py", b"v3\n");
    let (s3, m3) = w.push(Some(2), 3).unwrap();
    w.assert_release_equals(3, &m3);
    assert_eq!(s3.round_trips, 1, "{s3:?}");
    assert_eq!(s3.files.changed, 1, "{s3:?}");
    let spares = w
        .node
        .exec(&format!("ls -A {RELEASES} | grep '^\\.spare-2' || true"));
    assert_eq!(spares.trim(), "", "the spare was used up");

    // The release number taken: refused with the number, nothing changed.
    let err = w.push(Some(2), 3).unwrap_err();
    assert!(err.to_string().contains("release 3"), "{err}");
    assert!(
        err.detail().unwrap_or("").contains("already exists"),
        "{err:?}"
    );
    w.assert_release_equals(3, &m3);

    // A base that does not exist.
    let err = w.push(Some(9), 4).unwrap_err();
    assert!(
        err.detail().unwrap_or("").contains("base release 9"),
        "{err:?}"
    );
}

#[test]
fn a_delta_that_does_not_verify_falls_back_to_the_whole_file() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let w = World::new(&env);
    write(&w.app, "big.bin", &noise(500_000, 7));
    let (_, m1) = w.push(None, 1).unwrap();
    w.assert_release_equals(1, &m1);
    // An rdiff on the node whose patches come out wrong (first in root's PATH).
    w.node.exec(
        "printf '#!/bin/sh\\nif [ \"$1\" = patch ]; then /usr/bin/rdiff \"$@\" && echo corrupt >> \"$4\"; \
         else exec /usr/bin/rdiff \"$@\"; fi\\n' > /usr/local/bin/rdiff && chmod 755 /usr/local/bin/rdiff",
    );
    let mut big = noise(500_000, 7);
    big[250_000] ^= 0xff;
    write(&w.app, "big.bin", &big);
    let (s2, m2) = w.push(Some(1), 2).unwrap();
    w.assert_release_equals(2, &m2);
    // The manifest delta went through the same broken rdiff: resent whole too.
    assert_eq!(s2.fallbacks.len(), 1, "{s2:?}");
    assert_eq!(s2.fallbacks[0].path, "big.bin");
    assert!(s2.fallbacks[0].reason.contains("sha256"), "{s2:?}");
    assert_eq!(s2.bytes_literal, 500_000, "{s2:?}");
}

#[test]
fn a_stale_manifest_cache_is_detected_and_the_sync_still_succeeds() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let w = World::new(&env);
    let other = PushOptions {
        cache_dir: Some(env.root().join("other-laptop")),
        ..PushOptions::default()
    };
    write(&w.app, "app.py", b"v1\n");
    w.push(None, 1).unwrap();
    write(&w.app, "app.py", b"v2 from this laptop\n");
    w.push(Some(1), 2).unwrap();
    // Another laptop replaces release 2 with other content: this laptop's cached
    // manifest of release 2 is now wrong.
    w.node
        .exec(&format!("cd {RELEASES} && rm -rf 2 2.manifest .spare-*"));
    write(&w.app, "app.py", b"v2 from the other laptop\n");
    w.push_with(Some(1), 2, &other).unwrap();
    // A sync planned from the stale cache, with far more data than the pipes hold: the
    // node refuses the stream unread, sends its manifest, and the sync goes on from it.
    write(&w.app, "static/new.bin", &noise(6_000_000, 3));
    write(&w.app, "app.py", b"v3\n");
    let (s3, m3) = w.push(Some(2), 3).unwrap();
    w.assert_release_equals(3, &m3);
    assert!(!s3.base_manifest_cached, "{s3:?}");
    assert_eq!(s3.round_trips, 2, "{s3:?}");
    assert_eq!((s3.files.new, s3.files.changed), (1, 1), "{s3:?}");
}

/// Environment variables of the child process in the SIGKILL test.
const CHILD_VAR: &str = "SKIFF_TEST_SYNC_CHILD";

#[test]
fn sigkill_mid_transfer_leaves_the_base_intact_and_the_next_sync_succeeds() {
    let env = TestEnv::new();
    if !nodes_available() {
        return;
    }
    let w = World::new(&env);
    write(&w.app, "app.py", b"v1\n");
    write(&w.app, "static/a.bin", &noise(300_000, 11));
    let (_, m1) = w.push(None, 1).unwrap();
    let release1 = w.node_manifest(1);

    // Release 2 adds 16 MB: the child stalls after sending the first MB, and dies.
    write(&w.app, "static/new.bin", &noise(16_000_000, 12));
    write(&w.app, "app.py", b"v2\n");
    let marker = env.root().join("child-is-mid-transfer");
    let target = w.node.target();
    let mut child = StdCommand::new(std::env::current_exe().unwrap())
        .args(["--exact", "sync::sigkill_child", "--ignored", "--nocapture"])
        .env(CHILD_VAR, "1")
        .env("SKIFF_TEST_SYNC_ADDRESS", &target.address)
        .env(
            "SKIFF_TEST_SYNC_IDENTITY",
            target.identity.as_ref().unwrap(),
        )
        .env("SKIFF_TEST_SYNC_STATE_DIR", env.state_dir())
        .env("SKIFF_TEST_SYNC_APP", &w.app)
        .env("SKIFF_TEST_SYNC_MARKER", &marker)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the child sync ended before it was killed: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the child never got mid-transfer"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    // The killed process's ssh master idles out by itself; stop it now (our own child's).
    for pid in env.ssh_masters() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }

    // The node got part of the stream: a staging folder, no release 2, base untouched.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The node's side notices the dropped stream and stops.
        let busy = w
            .node
            .exec("pgrep -x tar >/dev/null && echo busy || echo idle");
        if busy.trim() == "idle" {
            break;
        }
        assert!(Instant::now() < deadline, "tar on the node never stopped");
        std::thread::sleep(Duration::from_millis(100));
    }
    let listing = w.node.exec(&format!("ls -A {RELEASES}"));
    assert!(listing.contains(".tmp-2"), "no staging folder: {listing}");
    assert!(!listing.split_whitespace().any(|n| n == "2"), "{listing}");
    assert_eq!(w.node_manifest(1), release1, "the base changed");
    w.assert_tree_equals(1, &m1);

    // The next sync clears the leftovers and succeeds.
    let (s2, m2) = w.push(Some(1), 2).unwrap();
    w.assert_release_equals(2, &m2);
    assert_eq!(s2.files.new, 1, "{s2:?}");
    assert_eq!(w.node_manifest(1), release1, "the base changed");
}

/// The process the SIGKILL test kills: only runs when started by it.
#[test]
#[ignore = "started by sigkill_mid_transfer_leaves_the_base_intact_and_the_next_sync_succeeds"]
fn sigkill_child() {
    if std::env::var_os(CHILD_VAR).is_none() {
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap();
    let target = Target {
        node: "child".into(),
        address: var("SKIFF_TEST_SYNC_ADDRESS"),
        user: "root".into(),
        port: 22,
        identity: Some(var("SKIFF_TEST_SYNC_IDENTITY").into()),
    };
    let state_dir = PathBuf::from(var("SKIFF_TEST_SYNC_STATE_DIR"));
    let marker = PathBuf::from(var("SKIFF_TEST_SYNC_MARKER"));
    let local = sync::scan(
        Path::new(&var("SKIFF_TEST_SYNC_APP")),
        &ScanOptions::default(),
    )
    .unwrap();
    let options = PushOptions {
        progress: Some(Arc::new(move |p: sync::Progress| {
            if p.bytes_done >= 1 << 20 {
                fs::write(&marker, b"").unwrap();
                // Stall the stream until the parent kills this process.
                std::thread::sleep(Duration::from_secs(120));
            }
        })),
        ..PushOptions::default()
    };
    transport::block_on(async {
        let s = Session::connect(&target, &state_dir).await.unwrap();
        let r = sync::push(
            &s,
            &local,
            &Releases::new(RELEASES).unwrap(),
            Some(1),
            2,
            &options,
        )
        .await;
        panic!("the push was meant to be killed, it returned {r:?}");
    })
    .unwrap();
}
