//! The manifest: what an app tree holds, entry by entry, in a stable text form.
//!
//! Each release on a node carries the manifest it was made from (beside the release, so the
//! release tree itself equals the local tree byte for byte). `update` compares the local
//! manifest with the base release's stored one on the laptop, so deciding what changed
//! never hashes a file on the node. The manifest's digest (sha256 of its text) names the
//! tree: equal digests mean equal trees.
//!
//! Text form, one entry per line, sorted by path (byte order), after a header line:
//!
//! ```text
//! skiff-manifest 1
//! d 755 0 - static
//! f 644 12 <sha256 hex> static/app.css
//! f 755 80 <sha256 hex> bin/run
//! l 777 9 ../app.py static/link
//! ```
//!
//! Fields: kind (`f` file, `d` directory, `l` symlink), mode (files `644` or `755`,
//! directories `755`, symlinks `777`: only the exec bit of a file is kept, so a laptop's
//! umask never leaks onto a server), size (file bytes, symlink target bytes, `0` for a
//! directory), content (file sha256, symlink target, `-` for a directory), path (the rest
//! of the line, so it may hold spaces). The first four fields are exactly what
//! `find -printf '%y %m %s'` prints on the node for an unmodified release (directory sizes
//! aside), which lets the node check its tree against the manifest without hashing.
//! Paths and targets escape `%` as `%25` and a newline as `%0A`; a target also escapes a
//! space as `%20`, so every field but the path is space-free.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// First line of every manifest; bump the number when the format changes.
pub const HEADER: &str = "skiff-manifest 1";

/// What kind of thing an entry is, with what identifies its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File {
        /// Whether any exec bit is set (shipped as mode 755, else 644).
        exec: bool,
        /// sha256 of the content.
        sha256: [u8; 32],
    },
    /// A directory (shipped as mode 755).
    Dir,
    /// A symbolic link; the target is relative and stays inside the tree.
    Symlink {
        /// The link's target, as stored in the link.
        target: String,
    },
}

/// One path of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it is.
    pub kind: Kind,
    /// File size in bytes; symlink target length; 0 for a directory.
    pub size: u64,
}

impl Entry {
    /// The single-letter kind used in the text form (and by `find -printf %y`).
    pub fn kind_letter(&self) -> char {
        match self.kind {
            Kind::File { .. } => 'f',
            Kind::Dir => 'd',
            Kind::Symlink { .. } => 'l',
        }
    }

    /// The mode written to the node: 644/755 for files, 755 for directories, 777 for links.
    pub fn mode(&self) -> u32 {
        match self.kind {
            Kind::File { exec: true, .. } | Kind::Dir => 0o755,
            Kind::File { exec: false, .. } => 0o644,
            Kind::Symlink { .. } => 0o777,
        }
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        matches!(self.kind, Kind::File { .. })
    }

    /// The sha256 of a file, `None` for other kinds.
    pub fn sha256(&self) -> Option<&[u8; 32]> {
        match &self.kind {
            Kind::File { sha256, .. } => Some(sha256),
            _ => None,
        }
    }
}

/// How a file looked when it was hashed, so the upload can notice a file that changed
/// between the scan and the transfer (and a hash cache can skip unchanged files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
    /// Inode number.
    pub ino: u64,
}

/// An app tree's entries by relative path (`/`-separated, UTF-8, never empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The entries, sorted by path.
    pub entries: BTreeMap<String, Entry>,
    /// Where the tree is on this machine, for a manifest made by scanning (not serialised).
    pub root: Option<PathBuf>,
    /// How each file looked when scanned (not serialised).
    pub stamps: BTreeMap<String, Stamp>,
}

impl Manifest {
    /// The stable text form (see the module docs).
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(64 + self.entries.len() * 100);
        out.push_str(HEADER);
        out.push('\n');
        for (path, entry) in &self.entries {
            let content = match &entry.kind {
                Kind::File { sha256, .. } => hex::encode(sha256),
                Kind::Dir => "-".to_string(),
                Kind::Symlink { target } => escape(target, true),
            };
            let _ = writeln!(
                out,
                "{} {:o} {} {} {}",
                entry.kind_letter(),
                entry.mode(),
                entry.size,
                content,
                escape(path, false)
            );
        }
        out
    }

    /// The digest that identifies the tree: sha256 (hex) of [`Manifest::to_text`].
    pub fn digest(&self) -> String {
        digest_of(self.to_text().as_bytes())
    }

    /// Parses the text form; `origin` names where it came from (a node's file) in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let bad = |line_no: usize, why: &str| Error::Failed {
            message: format!("manifest `{origin}` line {line_no}: {why}"),
            hint: Some(
                "the stored manifest is damaged; deploy without a base release (a full copy)"
                    .into(),
            ),
        };
        let mut lines = text.split_terminator('\n');
        if lines.next() != Some(HEADER) {
            return Err(bad(1, &format!("expected the header `{HEADER}`")));
        }
        let mut entries = BTreeMap::new();
        for (i, line) in lines.enumerate() {
            let line_no = i + 2;
            let mut fields = line.splitn(5, ' ');
            let (Some(kind), Some(mode), Some(size), Some(content), Some(path)) = (
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
            ) else {
                return Err(bad(line_no, "expected 5 fields"));
            };
            let size: u64 = size.parse().map_err(|_| bad(line_no, "bad size"))?;
            let path = unescape(path).ok_or_else(|| bad(line_no, "bad escape in the path"))?;
            check_rel_path(&path).map_err(|why| bad(line_no, &why))?;
            let kind = match (kind, mode) {
                ("f", "644" | "755") => {
                    let mut sha256 = [0u8; 32];
                    hex::decode_to_slice(content, &mut sha256)
                        .map_err(|_| bad(line_no, "bad sha256"))?;
                    Kind::File {
                        exec: mode == "755",
                        sha256,
                    }
                }
                ("d", "755") if content == "-" => Kind::Dir,
                ("l", "777") => Kind::Symlink {
                    target: unescape(content)
                        .ok_or_else(|| bad(line_no, "bad escape in the target"))?,
                },
                _ => return Err(bad(line_no, "bad kind, mode or content")),
            };
            if let Some((prev, _)) = entries.last_key_value()
                && prev >= &path
            {
                return Err(bad(line_no, "paths are not sorted"));
            }
            entries.insert(path, Entry { kind, size });
        }
        Ok(Manifest {
            entries,
            root: None,
            stamps: BTreeMap::new(),
        })
    }

    /// Total bytes of all regular files.
    pub fn total_bytes(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| e.is_file())
            .map(|e| e.size)
            .sum()
    }
}

/// sha256 (hex) of some bytes: how manifests and files are identified.
pub fn digest_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Escapes `%` and newline (and, in a symlink target, space) for the text form.
pub fn escape(s: &str, target: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\n' => out.push_str("%0A"),
            ' ' if target => out.push_str("%20"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape`]; `None` for an escape it never makes.
pub fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "25" => '%',
            "0A" => '\n',
            "20" => ' ',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Checks a manifest path: relative, `/`-separated, no empty, `.` or `..` component.
///
/// Paths reach file names on the node (always quoted or passed as data), so a damaged
/// manifest must not be able to point outside the release.
pub fn check_rel_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.contains('\0') {
        return Err(format!("path `{path}` contains a NUL byte"));
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "path `{path}` is not a plain relative path (empty, `.` or `..` component, or a leading `/`)"
        ));
    }
    Ok(())
}

/// Joins a relative manifest path onto a local root.
pub fn local_path(root: &Path, rel: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(rel.split('/'));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut m = Manifest::default();
        m.entries.insert(
            "a dir".into(),
            Entry {
                kind: Kind::Dir,
                size: 0,
            },
        );
        m.entries.insert(
            "a dir/ünï 100%\nx.txt".into(),
            Entry {
                kind: Kind::File {
                    exec: false,
                    sha256: [7; 32],
                },
                size: 12,
            },
        );
        m.entries.insert(
            "run".into(),
            Entry {
                kind: Kind::File {
                    exec: true,
                    sha256: [9; 32],
                },
                size: 0,
            },
        );
        m.entries.insert(
            "link".into(),
            Entry {
                kind: Kind::Symlink {
                    target: "a dir/x y".into(),
                },
                size: 9,
            },
        );
        m
    }

    #[test]
    fn text_round_trips() {
        let m = sample();
        let text = m.to_text();
        assert!(
            text.starts_with("skiff-manifest 1\nd 755 0 - a dir\n"),
            "{text}"
        );
        assert!(text.contains("l 777 9 a%20dir/x%20y link\n"), "{text}");
        assert!(text.contains("f 644 12 0707"), "{text}");
        assert!(text.contains(" a dir/ünï 100%25%0Ax.txt\n"), "{text}");
        assert!(text.contains("f 755 0 0909"), "{text}");
        let back = Manifest::parse(&text, "t").unwrap();
        assert_eq!(back.entries, m.entries);
        assert_eq!(back.to_text(), text);
        assert_eq!(back.digest(), m.digest());
    }

    #[test]
    fn digest_changes_with_any_field() {
        let m = sample();
        let mut m2 = m.clone();
        if let Some(Entry {
            kind: Kind::File { exec, .. },
            ..
        }) = m2.entries.get_mut("run")
        {
            *exec = false;
        }
        assert_ne!(m.digest(), m2.digest());
        assert_eq!(m.digest().len(), 64);
    }

    #[test]
    fn parse_refuses_damage() {
        let good = sample().to_text();
        for bad in [
            "",
            "skiff-manifest 2\n",
            "skiff-manifest 1\nf 644 1 zz x\n",
            "skiff-manifest 1\nf 600 1 0707070707070707070707070707070707070707070707070707070707070707 x\n",
            "skiff-manifest 1\nd 755 0 - ../up\n",
            "skiff-manifest 1\nd 755 0 - /abs\n",
            "skiff-manifest 1\nd 755 0 - a//b\n",
            "skiff-manifest 1\nd 755 0 - b\nd 755 0 - a\n",
            "skiff-manifest 1\nd 755 0 - a%zz\n",
            "skiff-manifest 1\nd 755 0\n",
        ] {
            let err = Manifest::parse(bad, "node:/x/1.manifest").unwrap_err();
            assert!(err.to_string().contains("node:/x/1.manifest"), "{err}");
        }
        assert!(Manifest::parse(&good, "ok").is_ok());
    }

    #[test]
    fn escape_round_trips() {
        for s in ["", "plain", "%", "%0A", "a b", "\n\n", "%25%", "日本 %20"] {
            assert_eq!(unescape(&escape(s, true)).unwrap(), s);
            assert_eq!(unescape(&escape(s, false)).unwrap(), s);
        }
        assert!(!escape("a b", true).contains(' '));
    }
}
