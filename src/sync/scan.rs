//! Walking a local app tree into a [`Manifest`]: ignore rules, symlink checks, hashing.
//!
//! What is shipped: every file, directory and symlink under the app folder except
//! - the built-in excludes ([`BUILTIN_EXCLUDES`]): version-control folders, Python
//!   caches and virtualenvs, editor backups and swap files, and `.env` files (secrets go
//!   into `/etc/skiff/env/APP.env` on the node, never into a release);
//! - whatever `.skiffignore` files say (gitignore syntax, one per folder if wanted). A `!`
//!   line in the top-level `.skiffignore` re-includes a built-in exclude (`!.env.example`).
//!
//! The user's global gitignore, `.gitignore` and `.ignore` files are NOT read: what goes to
//! a server must not depend on settings outside the app folder. `node_modules` is not a
//! built-in exclude: a PHP or static app may ship built JavaScript from it; add
//! `node_modules/` to `.skiffignore` when it is only a build input.
//!
//! Refused (an error naming the path): names that are not UTF-8, sockets, FIFOs and device
//! files, and symlinks that are absolute or lead out of the tree. A link is judged by where
//! it really ends up: every link on its way is followed (so `x -> y/..` with `y -> ..`
//! climbs two levels, not zero), loops are refused, and a dangling link by where it would
//! point. These refusals are bad input: exit code 2.
//!
//! Files are hashed in parallel (rayon). An optional hash cache (a JSON file the caller
//! places, one per app folder) skips re-hashing a file whose size, mtime, ctime and inode
//! are unchanged; files modified within the last two seconds are not cached, so an edit in
//! the same clock tick as a scan is never missed.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ignore::WalkBuilder;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::manifest::{Entry, Kind, Manifest, Stamp};
use crate::error::{Error, Result};

/// The per-folder ignore file (gitignore syntax).
pub const IGNORE_FILE: &str = ".skiffignore";

/// Never shipped unless the top-level `.skiffignore` re-includes them with `!`.
pub const BUILTIN_EXCLUDES: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "__pycache__/",
    "*.pyc",
    "*.pyo",
    ".venv/",
    "venv/",
    "*~",
    ".*.swp",
    ".*.swo",
    ".#*",
    ".DS_Store",
    ".env",
    ".env.*",
];

/// How to scan.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// A JSON file remembering hashes by (size, mtime, ctime, inode); created if missing.
    pub hash_cache: Option<PathBuf>,
}

/// Walks `root` into a manifest (see the module docs for what is shipped and refused).
pub fn scan(root: &Path, options: &ScanOptions) -> Result<Manifest> {
    let root = fs::canonicalize(root).map_err(|source| Error::Read {
        path: root.to_path_buf(),
        source,
    })?;
    if !root.is_dir() {
        return Err(Error::Usage {
            message: format!("`{}` is not a folder", root.display()),
            hint: Some("pass the app's folder (the one holding app.toml)".into()),
        });
    }
    let builtins = builtin_matcher(&root)?;
    let mut walker = WalkBuilder::new(&root);
    walker
        .standard_filters(false)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_ignore(false)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            e.depth() == 0 || !builtins.matched(e.path(), is_dir).is_ignore()
        });

    let mut entries = BTreeMap::new();
    let mut files: Vec<(String, PathBuf, fs::Metadata)> = Vec::new();
    for item in walker.build() {
        let item = item.map_err(|err| walk_error(&root, err))?;
        if item.depth() == 0 {
            continue;
        }
        let path = item.path();
        let rel = rel_path(&root, path)?;
        let meta = fs::symlink_metadata(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let ft = meta.file_type();
        if ft.is_dir() {
            entries.insert(
                rel,
                Entry {
                    kind: Kind::Dir,
                    size: 0,
                },
            );
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let target = check_symlink(&root, &rel, &target)?;
            entries.insert(
                rel,
                Entry {
                    size: target.len() as u64,
                    kind: Kind::Symlink { target },
                },
            );
        } else if ft.is_file() {
            files.push((rel, path.to_path_buf(), meta));
        } else {
            return Err(Error::Usage {
                message: format!(
                    "`{}` is not a file, folder or symlink (a socket, FIFO or device)",
                    path.display()
                ),
                hint: Some(format!("add `{rel}` to {IGNORE_FILE}")),
            });
        }
    }

    let cache = options
        .hash_cache
        .as_deref()
        .map(HashCache::load)
        .unwrap_or_default();
    let hashed: Vec<(String, Stamp, [u8; 32], bool)> = files
        .par_iter()
        .map(|(rel, path, meta)| {
            let stamp = stamp_of(meta);
            if let Some(sha) = cache.get(rel, &stamp) {
                return Ok((rel.clone(), stamp, sha, meta.mode() & 0o111 != 0));
            }
            let sha = hash_file(path, &stamp)?;
            Ok((rel.clone(), stamp, sha, meta.mode() & 0o111 != 0))
        })
        .collect::<Result<_>>()?;

    let mut stamps = BTreeMap::new();
    for (rel, stamp, sha256, exec) in hashed {
        entries.insert(
            rel.clone(),
            Entry {
                kind: Kind::File { exec, sha256 },
                size: stamp.size,
            },
        );
        stamps.insert(rel, stamp);
    }
    let manifest = Manifest {
        entries,
        root: Some(root),
        stamps,
    };
    if let Some(path) = &options.hash_cache {
        let fresh = HashCache::from_manifest(&manifest);
        if fresh.files != cache.files {
            fresh.save(path)?;
        }
    }
    Ok(manifest)
}

/// The built-in excludes, overridable by `!` lines of the top-level `.skiffignore`.
fn builtin_matcher(root: &Path) -> Result<Gitignore> {
    let mut b = GitignoreBuilder::new(root);
    for line in BUILTIN_EXCLUDES {
        b.add_line(None, line)
            .map_err(|e| Error::failed(format!("built-in exclude `{line}`: {e}")))?;
    }
    let top = root.join(IGNORE_FILE);
    if top.is_file()
        && let Some(err) = b.add(&top)
    {
        return Err(Error::Usage {
            message: format!("cannot use `{}`: {err}", top.display()),
            hint: Some("fix the line; the syntax is that of .gitignore".into()),
        });
    }
    b.build().map_err(|err| Error::Usage {
        message: format!("cannot use `{}`: {err}", top.display()),
        hint: Some("fix the line; the syntax is that of .gitignore".into()),
    })
}

fn walk_error(root: &Path, err: ignore::Error) -> Error {
    Error::Failed {
        message: format!("cannot walk `{}`: {err}", root.display()),
        hint: Some(format!(
            "check permissions, or add the path to {IGNORE_FILE}"
        )),
    }
}

/// The `/`-separated UTF-8 path of `path` under `root`.
fn rel_path(root: &Path, path: &Path) -> Result<String> {
    let rel = path
        .strip_prefix(root)
        .expect("walker stays under its root");
    let mut parts = Vec::new();
    for c in rel.components() {
        match c.as_os_str().to_str() {
            Some(s) => parts.push(s),
            None => {
                return Err(Error::Usage {
                    message: format!("the name `{}` is not valid UTF-8", path.display()),
                    hint: Some(format!(
                        "rename it, or add it to {IGNORE_FILE}; skiff ships UTF-8 names only"
                    )),
                });
            }
        }
    }
    Ok(parts.join("/"))
}

/// The most links one resolution may follow (Linux's `MAXSYMLINKS`): more is a loop.
pub const MAX_LINK_HOPS: usize = 40;

/// Checks a symlink: relative, UTF-8, and resolving (through every link on its way, as
/// the node's kernel would) to a place inside the app folder; returns its target.
fn check_symlink(root: &Path, rel: &str, target: &Path) -> Result<String> {
    let refuse = |why: String| Error::Usage {
        message: format!("symlink `{rel}` -> `{}` {why}", target.display()),
        hint: Some(format!(
            "make it point inside the app folder, or copy the file in (or add `{rel}` to {IGNORE_FILE})"
        )),
    };
    let Some(text) = target.to_str() else {
        return Err(refuse("has a target that is not valid UTF-8".into()));
    };
    if text.is_empty() || text.contains('\0') {
        return Err(refuse("has an empty target".into()));
    }
    if target.is_absolute() {
        return Err(refuse(
            "is absolute and would point outside the release".into(),
        ));
    }
    match resolve_link(root, rel) {
        Resolved::Inside => Ok(text.to_string()),
        Resolved::Outside { through } if through.is_empty() => {
            Err(refuse("leads out of the app folder".into()))
        }
        Resolved::Outside { through } => Err(refuse(format!(
            "leads out of the app folder (through the link{} `{}`)",
            if through.len() > 1 { "s" } else { "" },
            through.join("`, `")
        ))),
        Resolved::Absolute { via } => Err(refuse(format!(
            "leads out of the app folder (through the absolute link `{via}`)"
        ))),
        Resolved::Loop => Err(refuse(format!(
            "never resolves: a loop of links (or more than {MAX_LINK_HOPS} in a row)"
        ))),
    }
}

/// Where a link in the app folder ends up.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    /// Inside the folder (or missing, at a place inside it).
    Inside,
    /// Climbs above the folder; `through`: the other links followed on the way.
    Outside { through: Vec<String> },
    /// Reaches an absolute link (`via`), which leads out of a release on a node.
    Absolute { via: String },
    /// More than [`MAX_LINK_HOPS`] links: a loop.
    Loop,
}

/// Resolves the link `rel` (a `/`-separated path under `root`) as the kernel would:
/// component by component, following every link met on the way (their `..` climbing
/// from where the link really is), within `root`. A component that does not exist is
/// taken as a plain folder, so a dangling link is judged by where it would point.
fn resolve_link(root: &Path, rel: &str) -> Resolved {
    // `at`: the real folders from `root` to where resolution stands (no links in it);
    // `todo`: the components still to walk, first on top.
    let mut at: Vec<String> = Vec::new();
    let mut todo: Vec<String> = rel.split('/').rev().map(str::to_string).collect();
    let mut hops = 0;
    // The links followed besides `rel` (for the error), and whether the current position
    // exists on disk (below a missing one, nothing is a link).
    let mut through: Vec<String> = Vec::new();
    let mut real = true;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                if at.pop().is_none() {
                    return Resolved::Outside { through };
                }
                continue;
            }
            _ => {}
        }
        at.push(part);
        if !real {
            continue;
        }
        let here = root.join(at.join("/"));
        let Ok(meta) = fs::symlink_metadata(&here) else {
            real = false;
            continue;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        hops += 1;
        if hops > MAX_LINK_HOPS {
            return Resolved::Loop;
        }
        let link = at.join("/");
        at.pop();
        let Ok(target) = fs::read_link(&here) else {
            real = false;
            continue;
        };
        if target.is_absolute() {
            return Resolved::Absolute { via: link };
        }
        let Some(target) = target.to_str() else {
            // Not UTF-8: the scan refuses that link by itself.
            real = false;
            continue;
        };
        todo.extend(target.split('/').rev().map(str::to_string));
        if link != rel && !through.contains(&link) {
            through.push(link);
        }
    }
    Resolved::Inside
}

/// The stamp of a file's metadata.
pub fn stamp_of(meta: &fs::Metadata) -> Stamp {
    Stamp {
        size: meta.len(),
        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        ino: meta.ino(),
    }
}

/// Hashes a file, checking it still has the size it was scanned with.
fn hash_file(path: &Path, stamp: &Stamp) -> Result<[u8; 32]> {
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::File::open(path).map_err(read_err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    if total != stamp.size {
        return Err(changed_during_scan(path));
    }
    Ok(h.finalize().into())
}

/// The error for a file that changed while skiff was reading it.
pub fn changed_during_scan(path: &Path) -> Error {
    Error::Failed {
        message: format!("`{}` changed while skiff was reading it", path.display()),
        hint: Some("run the command again once the file is saved".into()),
    }
}

/// Remembered hashes, so an unchanged file is not read again.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct HashCache {
    version: u32,
    files: HashMap<String, (Stamp, String)>,
}

impl HashCache {
    const VERSION: u32 = 1;

    /// Loads the cache; a missing or unreadable one is simply empty (it only saves time).
    fn load(path: &Path) -> HashCache {
        fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<HashCache>(&b).ok())
            .filter(|c| c.version == Self::VERSION)
            .unwrap_or_default()
    }

    fn get(&self, rel: &str, stamp: &Stamp) -> Option<[u8; 32]> {
        let (s, hex) = self.files.get(rel)?;
        if s != stamp {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).ok()?;
        Some(out)
    }

    fn from_manifest(m: &Manifest) -> HashCache {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos() as i128;
        let racy = 2_000_000_000i128;
        let files = m
            .stamps
            .iter()
            .filter(|(_, s)| s.mtime_ns < now - racy && s.ctime_ns < now - racy)
            .filter_map(|(rel, s)| {
                let sha = m.entries.get(rel)?.sha256()?;
                Some((rel.clone(), (*s, hex::encode(sha))))
            })
            .collect();
        HashCache {
            version: Self::VERSION,
            files,
        }
    }

    fn save(&self, path: &Path) -> Result<()> {
        let write_err = |source| Error::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(write_err)?;
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
        let mut out = std::io::BufWriter::new(tmp);
        serde_json::to_writer(&mut out, self).map_err(|e| write_err(e.into()))?;
        let tmp = out.into_inner().map_err(|e| write_err(e.into_error()))?;
        tmp.persist(path).map_err(|e| write_err(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn write(root: &Path, rel: &str, body: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }

    fn paths(m: &Manifest) -> Vec<&str> {
        m.entries.keys().map(|s| s.as_str()).collect()
    }

    #[test]
    fn builtins_and_skiffignore_apply() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "app.py", b"print(1)\n");
        write(r, ".git/HEAD", b"ref");
        write(r, "pkg/__pycache__/x.cpython-311.pyc", b"x");
        write(r, "pkg/mod.pyc", b"x");
        write(r, "pkg/mod.py", b"x");
        write(r, "notes.txt~", b"x");
        write(r, ".app.py.swp", b"x");
        write(r, ".env", b"SECRET=1");
        write(r, ".env.example", b"SECRET=");
        write(r, ".env.local", b"SECRET=2");
        write(r, "venv/bin/python", b"x");
        write(r, "node_modules/x/index.js", b"x");
        write(r, "logs/today.log", b"x");
        write(r, "static/keep.log", b"x");
        write(r, "static/big.bin", b"x");
        write(
            r,
            ".skiffignore",
            b"*.log\n!static/keep.log\n!.env.example\n",
        );
        write(r, "static/.skiffignore", b"big.bin\n");
        let m = scan(r, &ScanOptions::default()).unwrap();
        assert_eq!(
            paths(&m),
            vec![
                ".env.example",
                ".skiffignore",
                "app.py",
                "logs",
                "node_modules",
                "node_modules/x",
                "node_modules/x/index.js",
                "pkg",
                "pkg/mod.py",
                "static",
                "static/.skiffignore",
                "static/keep.log",
            ]
        );
    }

    #[test]
    fn global_gitignore_and_gitignore_are_not_read() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, ".gitignore", b"*.txt\n");
        write(r, ".ignore", b"*.txt\n");
        write(r, "a.txt", b"x");
        let m = scan(r, &ScanOptions::default()).unwrap();
        assert!(m.entries.contains_key("a.txt"));
    }

    #[test]
    fn entries_carry_kind_mode_size_and_hash() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "empty", b"");
        write(r, "run.sh", b"#!/bin/sh\n");
        fs::set_permissions(r.join("run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
        write(r, "dir with space/ünï.txt", b"hello");
        fs::create_dir(r.join("emptydir")).unwrap();
        symlink("dir with space/ünï.txt", r.join("link")).unwrap();
        symlink("../link", r.join("emptydir/up")).unwrap();
        let m = scan(r, &ScanOptions::default()).unwrap();
        let e = &m.entries["empty"];
        assert_eq!(e.size, 0);
        assert_eq!(
            hex::encode(e.sha256().unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(m.entries["run.sh"].mode(), 0o755);
        assert_eq!(m.entries["empty"].mode(), 0o644);
        assert_eq!(m.entries["dir with space/ünï.txt"].size, 5);
        assert_eq!(m.entries["emptydir"].kind, Kind::Dir);
        assert_eq!(
            m.entries["link"].kind,
            Kind::Symlink {
                target: "dir with space/ünï.txt".into()
            }
        );
        assert_eq!(m.entries["emptydir/up"].size, 7);
    }

    #[test]
    fn escaping_symlinks_are_refused_naming_them() {
        for target in ["/etc/passwd", "../../outside", "../a/../../x", "../.."] {
            let t = tempfile::tempdir().unwrap();
            let r = t.path();
            fs::create_dir(r.join("sub")).unwrap();
            symlink(target, r.join("sub/bad")).unwrap();
            let err = scan(r, &ScanOptions::default()).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("sub/bad"), "{target}: {text}");
            assert!(err.hint().unwrap().contains(".skiffignore"));
        }
    }

    #[test]
    fn inside_symlinks_are_kept() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir(r.join("sub")).unwrap();
        symlink("a/../../x", r.join("sub/ok")).unwrap();
        symlink("./missing", r.join("dangling")).unwrap();
        symlink("..", r.join("sub/root")).unwrap();
        let m = scan(r, &ScanOptions::default()).unwrap();
        assert!(m.entries.contains_key("sub/ok"));
        assert!(m.entries.contains_key("dangling"));
        assert!(m.entries.contains_key("sub/root"));
    }

    /// The refusal of the link `rel` in a scan of `root`: its text and exit code.
    fn refusal(root: &Path, rel: &str) -> (String, i32) {
        let err = scan(root, &ScanOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("`{rel}`")), "{text}");
        assert!(
            err.hint().unwrap().contains("point inside the app folder"),
            "{err:?}"
        );
        (text, err.exit_code())
    }

    #[test]
    fn a_chain_of_links_each_inside_is_refused_when_it_leads_out() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "static/index.html", b"x");
        for (name, target) in [
            ("y", ".."),
            ("x", "y/.."),
            ("w", "x/.."),
            ("v", "w/.."),
            ("u", "v/.."),
            ("t", "u/.."),
            ("s", "t/.."),
        ] {
            symlink(target, r.join("static").join(name)).unwrap();
        }
        // `s` sorts first: it is the one named, with the link that climbed out.
        let (text, code) = refusal(r, "static/s");
        assert!(text.contains("`t/..`"), "{text}");
        assert!(text.contains("leads out of the app folder"), "{text}");
        assert_eq!(code, crate::error::EXIT_USAGE);
        // `x -> y/..` alone (y -> ..) climbs two levels from static/: out.
        for name in ["s", "t", "u", "v", "w"] {
            fs::remove_file(r.join("static").join(name)).unwrap();
        }
        let (text, _) = refusal(r, "static/x");
        assert!(text.contains("through the link `static/y`"), "{text}");
        // y alone is the app folder itself: fine.
        fs::remove_file(r.join("static/x")).unwrap();
        assert!(scan(r, &ScanOptions::default()).is_ok());
    }

    #[test]
    fn plain_absolute_and_dangling_links_out_are_refused() {
        for (target, why) in [
            ("../../etc", "leads out of the app folder"),
            ("../../etc/missing/file", "leads out of the app folder"),
            ("/etc/passwd", "is absolute"),
        ] {
            let t = tempfile::tempdir().unwrap();
            let r = t.path();
            fs::create_dir(r.join("static")).unwrap();
            symlink(target, r.join("static/bad")).unwrap();
            let (text, code) = refusal(r, "static/bad");
            assert!(text.contains(why), "{target}: {text}");
            assert!(text.contains(target), "{text}");
            assert_eq!(code, 2);
        }
        // An in-tree link that lands on an absolute one is refused too.
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        symlink("/etc", r.join("abs")).unwrap();
        symlink("abs/passwd", r.join("via")).unwrap();
        fs::write(r.join(IGNORE_FILE), "abs\n").unwrap();
        let (text, _) = refusal(r, "via");
        assert!(text.contains("absolute link `abs`"), "{text}");
    }

    #[test]
    fn link_loops_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        symlink("b", r.join("a")).unwrap();
        symlink("a", r.join("b")).unwrap();
        let (text, code) = refusal(r, "a");
        assert!(text.contains("loop"), "{text}");
        assert_eq!(code, 2);
        let t = tempfile::tempdir().unwrap();
        symlink("self/x", t.path().join("self")).unwrap();
        let (text, _) = refusal(t.path(), "self");
        assert!(text.contains("loop"), "{text}");
    }

    #[test]
    fn links_that_stay_inside_through_other_links_are_kept() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "assets/img/logo.png", b"png");
        write(r, "static/css/site.css", b"css");
        symlink("../assets/img", r.join("static/img")).unwrap();
        symlink("img/logo.png", r.join("static/logo.png")).unwrap();
        // through a link and back up: static/img/.. is assets/, so this is assets/img
        symlink("img/../img", r.join("static/again")).unwrap();
        symlink("css/../css/site.css", r.join("static/site.css")).unwrap();
        symlink(".", r.join("static/here")).unwrap();
        symlink("here/here/css", r.join("static/deep")).unwrap();
        symlink("img/missing.png", r.join("static/gone.png")).unwrap();
        let m = scan(r, &ScanOptions::default()).unwrap();
        for rel in [
            "static/img",
            "static/logo.png",
            "static/again",
            "static/site.css",
            "static/here",
            "static/deep",
            "static/gone.png",
        ] {
            assert!(matches!(m.entries[rel].kind, Kind::Symlink { .. }), "{rel}");
        }
    }

    #[test]
    fn non_utf8_names_are_refused() {
        use std::os::unix::ffi::OsStrExt;
        let t = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
        fs::write(t.path().join(name), b"x").unwrap();
        let err = scan(t.path(), &ScanOptions::default()).unwrap_err();
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
        assert!(err.to_string().contains("bad"), "{err}");
    }

    #[test]
    fn fifos_are_refused() {
        let t = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&t.path().join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = scan(t.path(), &ScanOptions::default()).unwrap_err();
        assert!(err.to_string().contains("pipe"), "{err}");
    }

    #[test]
    fn hash_cache_skips_unchanged_files_and_sees_changes() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("app");
        write(&r, "a.txt", b"one");
        // Old enough to be cached.
        let old = SystemTime::now() - Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(r.join("a.txt"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let cache = t.path().join("cache/hashes.json");
        let opts = ScanOptions {
            hash_cache: Some(cache.clone()),
        };
        let m1 = scan(&r, &opts).unwrap();
        let c = HashCache::load(&cache);
        // ctime is fresh (set_modified changes it), so nothing is cached yet: racy rule.
        assert!(c.files.is_empty());
        // Plant a cache entry with the real stamp but a wrong hash: proves the cache is used.
        let mut c = HashCache::from_manifest(&m1);
        c.files
            .insert("a.txt".into(), (m1.stamps["a.txt"], hex::encode([1u8; 32])));
        c.save(&cache).unwrap();
        let m2 = scan(&r, &opts).unwrap();
        assert_eq!(m2.entries["a.txt"].sha256(), Some(&[1u8; 32]));
        // Any change of the stamp re-hashes.
        write(&r, "a.txt", b"two");
        let m3 = scan(&r, &opts).unwrap();
        assert_eq!(
            hex::encode(m3.entries["a.txt"].sha256().unwrap()),
            super::super::manifest::digest_of(b"two")
        );
    }
}
