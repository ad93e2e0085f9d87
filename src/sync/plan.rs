//! What a sync has to do, decided on the laptop from two manifests (pure logic).
//!
//! The new release starts as a hard-link clone of the base release, so the plan lists
//! only the differences: entries to send whole (one tar stream), large changed files to
//! send as rsync deltas, files whose exec bit alone changed (copied and chmodded on the
//! node: a hard link is never changed in place), and paths to remove from the clone first.

use std::collections::{BTreeMap, BTreeSet};

use super::manifest::{Entry, Kind, Manifest};

/// Changed files at least this big (old and new) go as rsync deltas; smaller ones whole.
///
/// Below it, a signature round trip plus patching costs more than sending the file.
pub const DELTA_THRESHOLD: u64 = 64 * 1024;

/// The differences between a local manifest and a base release.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Entries sent whole in the tar stream, in manifest order (parents before children):
    /// new entries, small changed files, changed symlinks, entries whose kind changed.
    pub whole: Vec<String>,
    /// Large changed files, sent as deltas against the base release's copy.
    pub delta: Vec<String>,
    /// Files with unchanged content whose exec bit changed.
    pub mode_only: Vec<String>,
    /// Paths removed from the clone before the tar stream is unpacked: deleted entries and
    /// every entry in `whole` that the base has (top-most paths only: `rm -rf` takes the rest).
    pub remove: Vec<String>,
    /// Counts of non-directory entries (files and symlinks).
    pub counts: Counts,
}

/// How many files and symlinks fall in each class (directories are not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Not in the base.
    pub new: usize,
    /// In the base with other content (or another kind).
    pub changed: usize,
    /// Same content, exec bit changed.
    pub mode_changed: usize,
    /// In the base, not in the local tree.
    pub deleted: usize,
    /// Identical.
    pub unchanged: usize,
}

impl Plan {
    /// Compares `local` with `base` (`None`: no base release, everything is new).
    ///
    /// `missing` lists base paths the node reported absent from (or different in) its
    /// copy of the base release; they are treated as not in the base, so they are sent
    /// whole and never used as a delta basis.
    pub fn new(
        local: &Manifest,
        base: Option<&Manifest>,
        missing: &BTreeSet<String>,
        threshold: u64,
    ) -> Plan {
        let empty = BTreeMap::new();
        let base_entries = base.map(|b| &b.entries).unwrap_or(&empty);
        let in_base = |path: &str| -> Option<&Entry> {
            if missing.contains(path) {
                None
            } else {
                base_entries.get(path)
            }
        };
        let mut plan = Plan::default();
        let mut remove = BTreeSet::new();
        for (path, entry) in &local.entries {
            let counted = !matches!(entry.kind, Kind::Dir);
            match in_base(path) {
                None => {
                    plan.whole.push(path.clone());
                    if counted {
                        plan.counts.new += 1;
                    }
                }
                Some(old) => match (&old.kind, &entry.kind) {
                    (Kind::Dir, Kind::Dir) => {}
                    (
                        Kind::File {
                            exec: old_exec,
                            sha256: old_sha,
                        },
                        Kind::File { exec, sha256 },
                    ) => {
                        if old_sha != sha256 {
                            plan.counts.changed += 1;
                            if entry.size >= threshold && old.size >= threshold {
                                plan.delta.push(path.clone());
                            } else {
                                plan.whole.push(path.clone());
                                remove.insert(path.clone());
                            }
                        } else if old_exec != exec {
                            plan.counts.mode_changed += 1;
                            plan.mode_only.push(path.clone());
                        } else {
                            plan.counts.unchanged += 1;
                        }
                    }
                    (Kind::Symlink { target: a }, Kind::Symlink { target: b }) => {
                        if a == b {
                            plan.counts.unchanged += 1;
                        } else {
                            plan.counts.changed += 1;
                            plan.whole.push(path.clone());
                            remove.insert(path.clone());
                        }
                    }
                    (old_kind, _) => {
                        // The kind changed: remove the old entry (a folder with its
                        // contents), send the new one whole.
                        if counted {
                            if matches!(old_kind, Kind::Dir) {
                                plan.counts.new += 1;
                            } else {
                                plan.counts.changed += 1;
                            }
                        } else {
                            plan.counts.deleted += 1;
                        }
                        plan.whole.push(path.clone());
                        remove.insert(path.clone());
                    }
                },
            }
        }
        for (path, old) in base_entries {
            if missing.contains(path) {
                continue;
            }
            if !local.entries.contains_key(path) {
                if !matches!(old.kind, Kind::Dir) {
                    plan.counts.deleted += 1;
                }
                remove.insert(path.clone());
            }
        }
        plan.remove = top_most(&remove);
        plan
    }

    /// Whether the new release equals the base (nothing to send, remove or chmod).
    pub fn is_noop(&self) -> bool {
        self.whole.is_empty()
            && self.delta.is_empty()
            && self.mode_only.is_empty()
            && self.remove.is_empty()
    }
}

/// The paths of `set` that have no ancestor in `set`.
fn top_most(set: &BTreeSet<String>) -> Vec<String> {
    set.iter()
        .filter(|p| {
            let mut cur = p.as_str();
            while let Some((parent, _)) = cur.rsplit_once('/') {
                if set.contains(parent) {
                    return false;
                }
                cur = parent;
            }
            true
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, byte: u8, exec: bool) -> Entry {
        Entry {
            kind: Kind::File {
                exec,
                sha256: [byte; 32],
            },
            size,
        }
    }
    fn dir() -> Entry {
        Entry {
            kind: Kind::Dir,
            size: 0,
        }
    }
    fn link(t: &str) -> Entry {
        Entry {
            size: t.len() as u64,
            kind: Kind::Symlink { target: t.into() },
        }
    }
    fn man(entries: &[(&str, Entry)]) -> Manifest {
        let mut m = Manifest::default();
        for (p, e) in entries {
            m.entries.insert(p.to_string(), e.clone());
        }
        m
    }
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    const T: u64 = 100;

    #[test]
    fn no_base_sends_everything() {
        let local = man(&[("a", dir()), ("a/b", file(1, 1, false)), ("l", link("a/b"))]);
        let p = Plan::new(&local, None, &BTreeSet::new(), T);
        assert_eq!(p.whole, s(&["a", "a/b", "l"]));
        assert!(p.remove.is_empty() && p.delta.is_empty());
        assert_eq!(p.counts.new, 2);
    }

    #[test]
    fn identical_trees_are_a_noop() {
        let m = man(&[("a", dir()), ("a/b", file(1, 1, false)), ("l", link("a/b"))]);
        let p = Plan::new(&m, Some(&m), &BTreeSet::new(), T);
        assert!(p.is_noop());
        assert_eq!(p.counts.unchanged, 2);
    }

    #[test]
    fn classifies_each_kind_of_change() {
        let base = man(&[
            ("big", file(1000, 1, false)),
            ("bigtosmall", file(1000, 1, false)),
            ("small", file(10, 1, false)),
            ("modeonly", file(10, 1, false)),
            ("gone", file(10, 1, false)),
            ("olddir", dir()),
            ("olddir/x", file(10, 1, false)),
            ("olddir/sub", dir()),
            ("olddir/sub/y", file(10, 1, false)),
            ("l", link("small")),
            ("ftod", file(10, 1, false)),
            ("dtof", dir()),
            ("dtof/z", file(1, 1, false)),
            ("same", file(10, 1, false)),
        ]);
        let local = man(&[
            ("big", file(1200, 2, false)),
            ("bigtosmall", file(10, 2, false)),
            ("small", file(10, 2, false)),
            ("modeonly", file(10, 1, true)),
            ("new", file(5, 3, false)),
            ("l", link("big")),
            ("ftod", dir()),
            ("ftod/n", file(1, 1, false)),
            ("dtof", file(1, 4, false)),
            ("same", file(10, 1, false)),
        ]);
        let p = Plan::new(&local, Some(&base), &BTreeSet::new(), T);
        assert_eq!(p.delta, s(&["big"]));
        assert_eq!(p.mode_only, s(&["modeonly"]));
        assert_eq!(
            p.whole,
            s(&["bigtosmall", "dtof", "ftod", "ftod/n", "l", "new", "small"])
        );
        assert_eq!(
            p.remove,
            s(&["bigtosmall", "dtof", "ftod", "gone", "l", "olddir", "small"])
        );
        assert_eq!(
            p.counts,
            Counts {
                new: 3,     // new, ftod/n, dtof (was a folder)
                changed: 4, // big, bigtosmall, small, l
                mode_changed: 1,
                deleted: 5, // gone, olddir/x, olddir/sub/y, ftod (now a folder), dtof/z
                unchanged: 1,
            }
        );
    }

    #[test]
    fn missing_base_entries_are_sent_whole_not_as_delta() {
        let base = man(&[("big", file(1000, 1, false)), ("keep", file(1, 1, false))]);
        let local = man(&[("big", file(1000, 2, false)), ("keep", file(1, 1, false))]);
        let missing: BTreeSet<String> = ["big".to_string(), "keep".to_string()].into();
        let p = Plan::new(&local, Some(&base), &missing, T);
        assert!(p.delta.is_empty());
        assert_eq!(p.whole, s(&["big", "keep"]));
        // Missing paths are not in the clone: nothing to remove.
        assert!(p.remove.is_empty());
        assert_eq!(p.counts.new, 2);
    }

    #[test]
    fn renames_are_a_delete_plus_a_new() {
        let base = man(&[("d", dir()), ("d/a.txt", file(10, 1, false))]);
        let local = man(&[("d", dir()), ("d/b.txt", file(10, 1, false))]);
        let p = Plan::new(&local, Some(&base), &BTreeSet::new(), T);
        assert_eq!(p.whole, s(&["d/b.txt"]));
        assert_eq!(p.remove, s(&["d/a.txt"]));
        assert_eq!((p.counts.new, p.counts.deleted), (1, 1));
    }

    #[test]
    fn top_most_keeps_only_roots() {
        let set: BTreeSet<String> = ["a", "a/b", "a/b/c", "ab", "x/y", "x/y/z"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        assert_eq!(top_most(&set), s(&["a", "ab", "x/y"]));
    }
}
