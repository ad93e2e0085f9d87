//! `static/` first, with the precedence a node's NGINX gives it: a file under `static/`
//! wins for the same URL path, a directory answers with its `index.html`, and a
//! directory asked for without its trailing slash gets a 301 to the slash form.
//! Anything else goes to the app.
//!
//! Hidden paths (a segment starting with `.`, except `.well-known`) are never served, by
//! `static/` or by the app: they hold `.env`, `.git` and the like.
//!
//! Symlinks are never followed, as on a node (NGINX's `disable_symlinks on`): a path with a
//! link anywhere from `static/` itself down to the file is not a static file, so the app
//! answers it. A chain of links can lead anywhere on the machine; this way none is served.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The folder under the app that is served before the app.
pub const STATIC_DIR: &str = "static";

/// What the front does with a URL path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Serve this file.
    File(PathBuf),
    /// A directory with an `index.html`, asked for without the trailing slash:
    /// 301 to the given location.
    Redirect(String),
    /// Not under `static/`: the app answers.
    Miss,
    /// A hidden path: 404, whatever the app would say.
    Hidden,
    /// A path that climbs out of the root with `..`: 400, as NGINX answers.
    BadPath,
}

/// Maps a request's path and query onto `static_root`.
///
/// `path` is the raw (percent-encoded) URL path, `query` the raw query if any; the
/// redirect location keeps both as they came.
pub fn lookup(static_root: &Path, path: &str, query: Option<&str>) -> Lookup {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    if decoded.contains(&0) {
        return Lookup::BadPath;
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|b| *b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if segments.pop().is_none() {
                    return Lookup::BadPath;
                }
            }
            s => segments.push(s),
        }
    }
    if segments
        .iter()
        .any(|s| s.starts_with(b".") && *s != b".well-known")
    {
        return Lookup::Hidden;
    }
    let mut target = static_root.to_path_buf();
    for seg in &segments {
        target.push(OsStr::from_bytes(seg));
    }
    if through_link(static_root, &segments) {
        return Lookup::Miss;
    }
    let Ok(meta) = std::fs::symlink_metadata(&target) else {
        return Lookup::Miss;
    };
    let trailing_slash = decoded.ends_with(b"/");
    if meta.is_file() {
        // `/style.css/` is not the file `style.css` (NGINX says so too).
        return if trailing_slash && !segments.is_empty() {
            Lookup::Miss
        } else {
            Lookup::File(target)
        };
    }
    if meta.is_dir() {
        let index = target.join("index.html");
        let index_is_file = std::fs::symlink_metadata(&index).is_ok_and(|m| m.is_file());
        if !index_is_file {
            return Lookup::Miss;
        }
        if trailing_slash || segments.is_empty() {
            return Lookup::File(index);
        }
        let mut location = format!("{path}/");
        if let Some(q) = query {
            location.push('?');
            location.push_str(q);
        }
        return Lookup::Redirect(location);
    }
    Lookup::Miss
}

/// Whether `static_root` or any of `segments` below it is a symlink (a missing one ends
/// the check: there is nothing to follow).
fn through_link(static_root: &Path, segments: &[&[u8]]) -> bool {
    let mut path = static_root.to_path_buf();
    for i in 0..=segments.len() {
        if i > 0 {
            path.push(OsStr::from_bytes(segments[i - 1]));
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("docs/empty")).unwrap();
        std::fs::create_dir_all(root.join(".well-known")).unwrap();
        std::fs::write(root.join("index.html"), "home").unwrap();
        std::fs::write(root.join("style.css"), "css").unwrap();
        std::fs::write(root.join("a b.txt"), "space").unwrap();
        std::fs::write(root.join("docs/index.html"), "docs").unwrap();
        std::fs::write(root.join(".secret"), "no").unwrap();
        std::fs::write(root.join(".well-known/security.txt"), "yes").unwrap();
        dir
    }

    #[test]
    fn files_index_and_redirects() {
        let dir = tree();
        let root = dir.path();
        assert_eq!(
            lookup(root, "/", None),
            Lookup::File(root.join("index.html"))
        );
        assert_eq!(
            lookup(root, "/style.css", None),
            Lookup::File(root.join("style.css"))
        );
        assert_eq!(
            lookup(root, "/a%20b.txt", None),
            Lookup::File(root.join("a b.txt"))
        );
        assert_eq!(
            lookup(root, "/docs", Some("x=1")),
            Lookup::Redirect("/docs/?x=1".into())
        );
        assert_eq!(
            lookup(root, "/docs/", None),
            Lookup::File(root.join("docs/index.html"))
        );
        assert_eq!(
            lookup(root, "/docs/./../docs/", None),
            Lookup::File(root.join("docs/index.html"))
        );
        assert_eq!(
            lookup(root, "/.well-known/security.txt", None),
            Lookup::File(root.join(".well-known/security.txt"))
        );
    }

    #[test]
    fn misses_go_to_the_app() {
        let dir = tree();
        let root = dir.path();
        assert_eq!(lookup(root, "/nope", None), Lookup::Miss);
        assert_eq!(lookup(root, "/docs/empty", None), Lookup::Miss);
        assert_eq!(lookup(root, "/docs/empty/", None), Lookup::Miss);
        assert_eq!(lookup(root, "/style.css/", None), Lookup::Miss);
        assert_eq!(lookup(&root.join("missing"), "/", None), Lookup::Miss);
    }

    #[test]
    fn hidden_and_climbing_paths_are_refused() {
        let dir = tree();
        let root = dir.path();
        assert_eq!(lookup(root, "/.secret", None), Lookup::Hidden);
        assert_eq!(lookup(root, "/.env", None), Lookup::Hidden);
        assert_eq!(lookup(root, "/x/.git/config", None), Lookup::Hidden);
        assert_eq!(lookup(root, "/%2e%2e/etc/passwd", None), Lookup::BadPath);
        assert_eq!(lookup(root, "/../x", None), Lookup::BadPath);
        assert_eq!(lookup(root, "/a%00b", None), Lookup::BadPath);
    }

    #[test]
    fn links_are_never_followed() {
        use std::os::unix::fs::symlink;
        let app = tempfile::tempdir().unwrap();
        let root = app.path().join("static");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/index.html"), "in").unwrap();
        std::fs::write(app.path().join("app.toml"), "secret").unwrap();
        // the hostile tester's chain: `s` is seven levels up
        for (name, target) in [
            ("y", ".."),
            ("x", "y/.."),
            ("w", "x/.."),
            ("v", "w/.."),
            ("u", "v/.."),
            ("t", "u/.."),
            ("s", "t/.."),
        ] {
            symlink(target, root.join(name)).unwrap();
        }
        assert!(std::fs::metadata(root.join("s/etc/passwd")).is_ok());
        assert_eq!(lookup(&root, "/s/etc/passwd", None), Lookup::Miss);
        assert_eq!(lookup(&root, "/y/app.toml", None), Lookup::Miss);
        // in-tree links are not followed either (a node's NGINX does not follow them)
        symlink("real", root.join("alias")).unwrap();
        symlink("index.html", root.join("real/home.html")).unwrap();
        assert_eq!(lookup(&root, "/alias/", None), Lookup::Miss);
        assert_eq!(lookup(&root, "/alias/index.html", None), Lookup::Miss);
        assert_eq!(lookup(&root, "/real/home.html", None), Lookup::Miss);
        assert_eq!(
            lookup(&root, "/real/", None),
            Lookup::File(root.join("real/index.html"))
        );
        // nor is static/ itself when it is a link
        let other = app.path().join("public");
        symlink("static", &other).unwrap();
        assert_eq!(lookup(&other, "/real/", None), Lookup::Miss);
        // an index.html that is a link is not an index
        std::fs::remove_file(root.join("real/index.html")).unwrap();
        symlink("home.html", root.join("real/index.html")).unwrap();
        assert_eq!(lookup(&root, "/real/", None), Lookup::Miss);
    }
}
