//! `templates/` and `server-files/` embedded in the binary, so a skiff binary alone can set
//! up a node and the node can say exactly what it was set up with ([`digest`]).
//!
//! The lists below are checked against the folders by a unit test: a file added to either
//! folder and not listed here fails `cargo test`.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Path relative to its folder (`templates/` or `server-files/`), with `/`.
    pub path: &'static str,
    /// The file's bytes.
    pub bytes: &'static [u8],
    /// Whether it is installed executable (server-files only).
    pub executable: bool,
}

impl Asset {
    /// The file as text (every embedded file is UTF-8 text).
    pub fn text(&self) -> &'static str {
        std::str::from_utf8(self.bytes).expect("embedded assets are UTF-8 text")
    }
}

macro_rules! asset {
    ($dir:literal, $path:literal) => {
        asset!($dir, $path, false)
    };
    ($dir:literal, $path:literal, $exec:expr) => {
        Asset {
            path: $path,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $dir, "/", $path)),
            executable: $exec,
        }
    };
}

/// Tera templates rendered by `setup-node` (node configs and the scripts that install them).
pub static TEMPLATES: &[Asset] = &[
    asset!("templates", "apache/mpm_prefork.conf.tera"),
    asset!("templates", "apache/ports.conf.tera"),
    asset!("templates", "apache/skiff-conf.conf.tera"),
    asset!("templates", "apache/skiff-site.conf.tera"),
    asset!("templates", "nginx/acme-relay.conf.tera"),
    asset!("templates", "nginx/skiff-acme.conf.tera"),
    asset!("templates", "nginx/skiff-app.conf.tera"),
    asset!("templates", "nginx/skiff-listen-443.conf.tera"),
    asset!("templates", "nginx/skiff-listen-80.conf.tera"),
    asset!("templates", "nginx/skiff-proxy.conf.tera"),
    asset!("templates", "nginx/skiff-routes.map.tera"),
    asset!("templates", "nginx/skiff-tls.conf.tera"),
    asset!("templates", "nginx/skiff.conf.tera"),
    asset!("templates", "nginx/tls-site.conf.tera"),
    asset!("templates", "setup/apply.sh.tera"),
    asset!("templates", "setup/apt.sh.tera"),
    asset!("templates", "setup/probe.sh.tera"),
    asset!("templates", "setup/ssh.sh.tera"),
    asset!("templates", "system/apt-proxy.conf.tera"),
    asset!("templates", "system/auto-upgrades.tera"),
    asset!("templates", "system/firewall.nft.tera"),
    asset!("templates", "system/setup.toml.tera"),
    asset!("templates", "system/skiff-firewall.service.tera"),
    asset!("templates", "system/sshd-key-only.conf.tera"),
    asset!("templates", "system/state.toml.tera"),
    asset!("templates", "system/sudoers.tera"),
    asset!("templates", "system/upgrades-origins.tera"),
    asset!("templates", "systemd/cron.service.tera"),
    asset!("templates", "systemd/cron.timer.tera"),
    asset!("templates", "systemd/worker.service.tera"),
];

/// Files installed verbatim under `/usr/local/share/skiff/` on every node.
pub static SERVER_FILES: &[Asset] = &[
    asset!("server-files", "apache/slot-python.conf"),
    asset!("server-files", "apache/slot-ruby.conf"),
    asset!("server-files", "bin/skiff-node", true),
    asset!("server-files", "bin/skiff-run", true),
    asset!("server-files", "lib/appuser.sh"),
    asset!("server-files", "lib/envfile.sh"),
    asset!("server-files", "lib/services.sh"),
    asset!("server-files", "php/prepend.php"),
    asset!("server-files", "python/skiff_slot.py"),
    asset!("server-files", "python/slot.wsgi"),
    asset!("server-files", "ruby/config.ru"),
    asset!("server-files", "ruby/ruby", true),
    asset!("server-files", "www/404.html"),
    asset!("server-files", "www/not-running.html"),
];

/// Files in `server-files/` that are not installed on nodes: `skiff serve` embeds them
/// itself (src/dev_server) and runs them on this machine.
pub static LOCAL_ONLY: &[&str] = &["skiff-wsgi-runner.py"];

/// A template by its path under `templates/`.
pub fn template(path: &str) -> &'static Asset {
    TEMPLATES
        .iter()
        .find(|a| a.path == path)
        .unwrap_or_else(|| panic!("no embedded template `{path}`"))
}

/// A server-file by its path under `server-files/`.
pub fn server_file(path: &str) -> &'static Asset {
    SERVER_FILES
        .iter()
        .find(|a| a.path == path)
        .unwrap_or_else(|| panic!("no embedded server-file `{path}`"))
}

/// `sha256:<hex>` over every embedded file (folder, path, length, bytes, in order): equal
/// digests mean a node got exactly the same templates and server-files.
pub fn digest() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| {
        digest_of(
            [("templates", TEMPLATES), ("server-files", SERVER_FILES)]
                .into_iter()
                .flat_map(|(dir, list)| {
                    list.iter()
                        .map(move |a| (dir, a.path, a.bytes, a.executable))
                }),
        )
    })
}

/// The digest of (folder, path, bytes, executable) items: every field counts, each
/// delimited, so no two different sets of files hash alike by shifting bytes around.
fn digest_of<'a>(items: impl Iterator<Item = (&'a str, &'a str, &'a [u8], bool)>) -> String {
    let mut h = Sha256::new();
    for (dir, path, bytes, executable) in items {
        h.update(dir.as_bytes());
        h.update([0]);
        h.update(path.as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
        h.update([executable as u8]);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files_under(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                files_under(&p, base, out);
            } else {
                out.push(
                    p.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }

    #[test]
    fn lists_match_the_folders() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (dir, list) in [("templates", TEMPLATES), ("server-files", SERVER_FILES)] {
            let mut on_disk = Vec::new();
            files_under(&root.join(dir), &root.join(dir), &mut on_disk);
            on_disk.retain(|p| dir != "server-files" || !LOCAL_ONLY.contains(&p.as_str()));
            on_disk.sort();
            let mut listed: Vec<String> = list.iter().map(|a| a.path.to_string()).collect();
            listed.sort();
            assert_eq!(
                listed, on_disk,
                "src/assets.rs must list every file of {dir}/"
            );
        }
    }

    /// The digest names the set-up a node has: any change to any file's bytes, name or
    /// executable bit must change it (or a node would keep stale files), and the digest
    /// of the embedded files is the digest of the files on disk.
    #[test]
    fn the_digest_covers_every_byte_name_and_mode_and_text_is_utf8() {
        let items: Vec<(&str, &str, Vec<u8>, bool)> =
            [("templates", TEMPLATES), ("server-files", SERVER_FILES)]
                .into_iter()
                .flat_map(|(dir, list)| {
                    list.iter()
                        .map(move |a| (dir, a.path, a.bytes.to_vec(), a.executable))
                })
                .collect();
        let of = |items: &[(&str, &str, Vec<u8>, bool)]| {
            digest_of(items.iter().map(|(d, p, b, x)| (*d, *p, b.as_slice(), *x)))
        };
        assert_eq!(of(&items), digest());
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let on_disk: Vec<(&str, &str, Vec<u8>, bool)> = items
            .iter()
            .map(|(d, p, _, x)| (*d, *p, std::fs::read(root.join(d).join(p)).unwrap(), *x))
            .collect();
        assert_eq!(
            of(&on_disk),
            digest(),
            "the embedded files differ from the files on disk"
        );
        let mut byte = items.clone();
        byte[0].2.push(b'\n');
        let mut mode = items.clone();
        mode[0].3 = !mode[0].3;
        let mut moved = items.clone();
        let half = moved[0].2.len() / 2;
        let tail = moved[0].2.split_off(half);
        moved[1].2.splice(0..0, tail);
        for (what, changed) in [
            ("a byte", byte),
            ("a mode", mode),
            ("bytes moved between files", moved),
        ] {
            assert_ne!(of(&changed), digest(), "{what} did not change the digest");
        }
        assert!(digest().starts_with("sha256:"));
        for a in TEMPLATES.iter().chain(SERVER_FILES) {
            let _ = a.text();
        }
    }
}
