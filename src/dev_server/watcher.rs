//! Watches the app folder for edits (notify, debounced ~200 ms) and tells the
//! supervisor which files changed, leaving out what never needs a restart: `static/`,
//! VCS folders, venvs, caches, editor droppings, logs and databases the app writes.
//!
//! The debounce is done here rather than by `notify-debouncer-mini`: that crate drops
//! the event kind, and inotify reports every *open* of a file; the app reading its own
//! files while it starts would restart it again, forever. Only events that change
//! something (create, modify, remove, rename) count.
//!
//! Only the folders that can hold code are watched: the app folder itself (not
//! recursively) and each of its sub-folders that is not ignored (recursively), so a
//! large `.venv/` or `.git/` costs no inotify watches. A sub-folder created later is
//! picked up when it appears.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::app_config::FILE_NAME as APP_TOML;
use crate::error::{Error, Result};

use super::environment::DOTENV_FILE;
use super::static_files::STATIC_DIR;

/// How long the folder must be quiet before a batch of changes is reported.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Folders (at any depth) whose contents never restart the app.
const IGNORED_DIRS: [&str; 7] = [
    "__pycache__",
    "node_modules",
    "venv",
    "log",
    "logs",
    "tmp",
    STATIC_DIR,
];

/// File name endings that never restart the app: bytecode, editor swap and backup
/// files, logs and database files the app itself writes while it runs.
const IGNORED_SUFFIXES: [&str; 15] = [
    ".pyc", ".pyo", ".swp", ".swx", ".swo", "~", ".tmp", ".log", ".db", ".sqlite", ".sqlite3",
    "-journal", "-wal", "-shm", ".pid",
];

/// What a changed path means for the running app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `app.toml` or `.env`: the configuration or the environment changed.
    Config,
    /// A file that may be code.
    Code,
    /// Nothing the app needs to be restarted for.
    Ignored,
}

/// Classifies a changed `path` under the app folder `root`.
pub fn classify(root: &Path, path: &Path) -> Change {
    let Ok(rel) = path.strip_prefix(root) else {
        return Change::Ignored;
    };
    if rel == Path::new(APP_TOML) || rel == Path::new(DOTENV_FILE) {
        return Change::Config;
    }
    let parts: Vec<&str> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    let Some((name, dirs)) = parts.split_last() else {
        return Change::Ignored;
    };
    if dirs
        .iter()
        .any(|d| d.starts_with('.') || IGNORED_DIRS.contains(d))
    {
        return Change::Ignored;
    }
    // A change of the folder itself (a new sub-folder, a deleted one) is not code.
    if path.is_dir() || IGNORED_DIRS.contains(name) {
        return Change::Ignored;
    }
    if name.starts_with('.')
        || *name == "4913" // vim's write test file
        || IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s))
    {
        return Change::Ignored;
    }
    Change::Code
}

/// Whether a top-level folder of the app gets a (recursive) watch.
fn watched_subdir(name: &str) -> bool {
    !name.starts_with('.') && !IGNORED_DIRS.contains(&name)
}

/// Keeps the watch alive; dropping it stops watching.
pub struct Watch {
    _task: tokio::task::JoinHandle<()>,
}

/// Starts watching `root` (canonical); each debounced batch of relevant changes is sent
/// on `changes` as (path, kind) pairs.
pub fn start(root: &Path, changes: mpsc::UnboundedSender<Vec<(PathBuf, Change)>>) -> Result<Watch> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<notify::Event>();
    let failed = |e: notify::Error| Error::Failed {
        message: format!("could not watch `{}` for changes: {e}", root.display()),
        hint: Some("raise fs.inotify.max_user_watches, or run `skiff serve --no-reload`".into()),
    };
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res
            && changes_something(&event.kind)
        {
            let _ = raw_tx.send(event);
        }
    })
    .map_err(failed)?;
    watcher
        .watch(root, RecursiveMode::NonRecursive)
        .map_err(failed)?;
    let mut watched: HashSet<PathBuf> = HashSet::new();
    add_subdirs(&mut watcher, root, &mut watched);
    let root = root.to_path_buf();
    let task = tokio::spawn(async move {
        while let Some(first) = raw_rx.recv().await {
            // Collect until the folder has been quiet for DEBOUNCE.
            let mut paths: Vec<PathBuf> = first.paths;
            while let Ok(Some(more)) = tokio::time::timeout(DEBOUNCE, raw_rx.recv()).await {
                paths.extend(more.paths);
            }
            let mut batch: Vec<(PathBuf, Change)> = Vec::new();
            // New top-level folders get their watch; vanished ones lose it. What was
            // written into a new folder before its watch began went unseen, so a new
            // folder counts as a code change itself.
            if paths.iter().any(|p| p.parent() == Some(root.as_path())) {
                for dir in add_subdirs(&mut watcher, &root, &mut watched) {
                    batch.push((dir, Change::Code));
                }
            }
            for path in paths {
                let kind = classify(&root, &path);
                if kind != Change::Ignored && !batch.iter().any(|(p, _)| *p == path) {
                    batch.push((path, kind));
                }
            }
            if !batch.is_empty() && changes.send(batch).is_err() {
                break;
            }
        }
    });
    Ok(Watch { _task: task })
}

/// Whether an event changes a file or folder (reads and opens do not).
fn changes_something(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    ) || matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

/// Watches every top-level sub-folder not yet watched, returning those; forgets the
/// ones gone.
fn add_subdirs(
    watcher: &mut RecommendedWatcher,
    root: &Path,
    watched: &mut HashSet<PathBuf>,
) -> Vec<PathBuf> {
    watched.retain(|p| p.is_dir());
    let mut added = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return added;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !path.is_dir() || !watched_subdir(&name) || watched.contains(&path) {
            continue;
        }
        // A folder that vanished in between is not an error worth stopping for.
        if watcher.watch(&path, RecursiveMode::Recursive).is_ok() {
            watched.insert(path.clone());
            added.push(path);
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_changes() {
        let root = Path::new("/nonexistent-skiff-app");
        let c = |rel: &str| classify(root, &root.join(rel));
        assert_eq!(c("app.toml"), Change::Config);
        assert_eq!(c(".env"), Change::Config);
        assert_eq!(c("app.py"), Change::Code);
        assert_eq!(c("pkg/views.py"), Change::Code);
        assert_eq!(c("config.ru"), Change::Code);
        assert_eq!(c("templates/index.html"), Change::Code);
        assert_eq!(c("static/app.css"), Change::Ignored);
        assert_eq!(c("__pycache__/app.cpython-311.pyc"), Change::Ignored);
        assert_eq!(c("pkg/__pycache__/x.pyc"), Change::Ignored);
        assert_eq!(c("x.pyc"), Change::Ignored);
        assert_eq!(c(".git/index"), Change::Ignored);
        assert_eq!(c(".venv/lib/site.py"), Change::Ignored);
        assert_eq!(c("venv/lib/site.py"), Change::Ignored);
        assert_eq!(c(".app.py.swp"), Change::Ignored);
        assert_eq!(c("app.py~"), Change::Ignored);
        assert_eq!(c("4913"), Change::Ignored);
        assert_eq!(c("db.sqlite3"), Change::Ignored);
        assert_eq!(c("log/development.log"), Change::Ignored);
        assert_eq!(c(".gitignore"), Change::Ignored);
        assert_eq!(
            classify(root, Path::new("/elsewhere/app.py")),
            Change::Ignored
        );
    }
}
