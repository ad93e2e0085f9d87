//! The one error type of skiff, its hints and its exit codes.
//!
//! Every variant names what it is about (a file and key, a node, a remote command) so the
//! message alone tells the user where to look; [`Error::hint`] says what to do about it.

use std::fmt;
use std::path::{Path, PathBuf};

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code for a command that ran and failed.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for bad usage or bad configuration (nothing was attempted).
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a node that could not be reached.
pub const EXIT_UNREACHABLE: i32 = 3;
/// Exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// A 1-based line and column in a text file, for ` --> file:line:col` pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

/// A bad value in a configuration file (app.toml, cluster.toml): the file, the key, the
/// problem and the fix, so the user never has to guess which line is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The file the value came from.
    pub file: PathBuf,
    /// Dotted key path, e.g. `health.timeout` or `nodes[2].address`; empty for a
    /// syntax error that has no key.
    pub key: String,
    /// What is wrong, including the bad value.
    pub problem: String,
    /// What to write instead.
    pub fix: Option<String>,
    /// Where the value is, when known.
    pub location: Option<Location>,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(
                f,
                "invalid TOML in `{}`: {}",
                self.file.display(),
                self.problem
            )
        } else {
            write!(
                f,
                "invalid `{}` in `{}`: {}",
                self.key,
                self.file.display(),
                self.problem
            )
        }
    }
}

/// Everything that can go wrong in skiff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value in a configuration file is wrong.
    #[error("{0}")]
    Config(Box<ConfigProblem>),

    /// A configuration file (app.toml, cluster.toml) is missing or cannot be read.
    #[error("cannot use `{}`: {problem}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (missing, a folder, permission denied).
        problem: String,
        /// What to do.
        hint: String,
    },

    /// A file could not be read.
    #[error("could not read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A file or folder could not be written.
    #[error("could not write `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A command-line argument is wrong.
    #[error("{message}")]
    Usage {
        /// What is wrong, naming the argument.
        message: String,
        /// What to do instead.
        hint: Option<String>,
    },

    /// A node name that the cluster does not know.
    #[error("unknown node `{name}`")]
    UnknownNode {
        /// The name given.
        name: String,
        /// The names the cluster knows.
        known: Vec<String>,
    },

    /// A command needs a node and none was given or set as default.
    #[error("no node given and no default node set")]
    NoNode,

    /// Another skiff holds a lock for longer than we are willing to wait.
    #[error("gave up after {secs} s waiting for the lock on `{}`", path.display())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        secs: u64,
    },

    /// A configured feature that is not built yet: never silently ignored.
    #[error("{what} is not supported yet")]
    NotSupported {
        /// The feature, naming the key or flag that asked for it.
        what: String,
        /// What to do meanwhile.
        hint: Option<String>,
    },

    /// A node could not be reached.
    #[error("cannot reach node `{node}`: {cause}")]
    Unreachable {
        /// The node.
        node: String,
        /// The useful cause (no route, refused, auth failure, missing ssh).
        cause: String,
        /// What to do.
        hint: Option<String>,
    },

    /// The node presented a host key different from the pinned one.
    #[error("host key of node `{node}` changed\n  pinned: {old}\n  now:    {new}")]
    HostKeyChanged {
        /// The node.
        node: String,
        /// Fingerprint pinned on first contact.
        old: String,
        /// Fingerprint the node presents now.
        new: String,
        /// The deliberate way to re-pin.
        hint: String,
    },

    /// A command on a node ran and failed.
    #[error("`{command}` failed on node `{node}`{}", status.map(|s| format!(" (exit {s})")).unwrap_or_default())]
    Remote {
        /// The node.
        node: String,
        /// The command (or step) that failed.
        command: String,
        /// Its exit status, when it exited.
        status: Option<i32>,
        /// The tail of what it printed.
        output: String,
        /// What to do.
        hint: Option<String>,
    },

    /// Anything else that failed while doing the job.
    #[error("{message}")]
    Failed {
        /// What failed, naming the thing.
        message: String,
        /// What to do.
        hint: Option<String>,
    },

    /// The user pressed Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// A config problem, boxed (it is large and rare).
    pub fn config(problem: ConfigProblem) -> Self {
        Error::Config(Box::new(problem))
    }

    /// A configuration file that could not be read, explained: `missing` is the hint for
    /// a file that does not exist, `elsewhere` (may be empty) a way around the others,
    /// e.g. "pass `--state FILE` to use another state file".
    pub fn config_file(file: &Path, err: &std::io::Error, missing: &str, elsewhere: &str) -> Self {
        use std::io::ErrorKind;
        let shown = file.display();
        let or = if elsewhere.is_empty() {
            String::new()
        } else {
            format!(", or {elsewhere}")
        };
        let (problem, hint) = match err.kind() {
            ErrorKind::NotFound => ("it does not exist".to_string(), missing.to_string()),
            ErrorKind::IsADirectory => (
                "it is a folder, not a file".to_string(),
                format!("move the folder `{shown}` away and put the file in its place{or}"),
            ),
            ErrorKind::PermissionDenied => (
                "permission denied".to_string(),
                format!("make it readable for this user (`chmod u+r {shown}`){or}"),
            ),
            _ => (
                err.to_string(),
                format!("check the file and the disk it is on{or}"),
            ),
        };
        Error::ConfigFile {
            path: file.to_path_buf(),
            problem,
            hint,
        }
    }

    /// A failure with a message and no hint.
    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed {
            message: message.into(),
            hint: None,
        }
    }

    /// A usage error with a hint.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// What the user should do about this error, if skiff knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(p) => p.fix.clone(),
            Error::UnknownNode { known, .. } if known.is_empty() => {
                Some("no nodes yet: add one with `skiff create-node NAME --host HOST`".into())
            }
            Error::UnknownNode { known, .. } => Some(format!(
                "known nodes: {}; see `skiff list-nodes`",
                known.join(", ")
            )),
            Error::NoNode => {
                Some("pass `--node NAME`, or set one with `skiff default-node NAME`".into())
            }
            Error::LockTimeout { .. } => Some(
                "another skiff is still running; wait for it, or check that no skiff is stuck"
                    .into(),
            ),
            Error::HostKeyChanged { hint, .. } | Error::ConfigFile { hint, .. } => {
                Some(hint.clone())
            }
            Error::Usage { hint, .. }
            | Error::NotSupported { hint, .. }
            | Error::Unreachable { hint, .. }
            | Error::Remote { hint, .. }
            | Error::Failed { hint, .. } => hint.clone(),
            Error::Read { .. } | Error::Write { .. } | Error::Interrupted => None,
        }
    }

    /// The process exit code for this error (documented in README.md).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_)
            | Error::ConfigFile { .. }
            | Error::Usage { .. }
            | Error::UnknownNode { .. }
            | Error::NoNode
            | Error::NotSupported { .. } => EXIT_USAGE,
            Error::Unreachable { .. } | Error::HostKeyChanged { .. } => EXIT_UNREACHABLE,
            Error::Interrupted => EXIT_INTERRUPTED,
            _ => EXIT_FAILURE,
        }
    }

    /// Where in a file the error points, for the ` --> file:line:col` line.
    pub fn location(&self) -> Option<(PathBuf, Location)> {
        match self {
            Error::Config(p) => p.location.map(|l| (p.file.clone(), l)),
            _ => None,
        }
    }

    /// Extra lines shown under the message (a remote command's output).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::Remote { output, .. } if !output.trim().is_empty() => Some(output),
            _ => None,
        }
    }
}
