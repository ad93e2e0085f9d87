//! Command-line surface: clap types only, no I/O and no validation beyond what clap does.
//!
//! Every verb skiff has is a variant here; global flags live in
//! [`GlobalArgs`] so every verb accepts them in any position.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `skiff`: deploy apps to your own servers over SSH.
#[derive(Debug, Parser)]
#[command(
    name = "skiff",
    version,
    about = "Deploy apps to your own servers over SSH",
    long_about = "skiff provisions Debian and Ubuntu nodes over SSH, ships an app tree with a \
                  delta sync, and switches versions through NGINX with no downtime.",
    after_help = "Common workflows:\n  \
        skiff init blog --runtime python       # scaffold an app in blog/\n  \
        skiff serve blog                       # run it here, reloading on change\n  \
        skiff create-node web1 --host 203.0.113.7\n  \
        skiff setup-node web1                  # nginx, apache and the runtimes\n  \
        skiff update blog                      # deploy (alias: deploy); prints the URLs\n  \
        skiff versions blog                    # then rollback, logs, config, run, status\n\n\
        An app is named by its folder (default: the current one), its name or its host.\n\n\
        Exit codes: 0 success, 1 failure, 2 bad usage or configuration, \
        3 node unreachable, 130 interrupted."
)]
pub struct Cli {
    /// Flags every verb accepts.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// The verb to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The help heading of [`GlobalArgs`], below each verb's own options (as cargo does).
pub const GLOBAL: &str = "Global options";

/// Flags shared by every verb, so scripts can put them anywhere on the line.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Cluster state file [env: SKIFF_STATE] [default: $XDG_CONFIG_HOME/skiff/cluster.toml]
    // SKIFF_STATE is read in `cluster::default_state_path`, not by clap: clap's `env`
    // made usage lines show `--state <FILE>` as if it were required (issue 17).
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    pub state: Option<PathBuf>,

    /// Print machine-readable JSON on stdout
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,

    /// Print more detail (repeat for even more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,

    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    pub quiet: bool,

    /// Answer yes to every question (for scripts; nothing prompts without a TTY anyway)
    #[arg(short = 'y', long, global = true, help_heading = GLOBAL)]
    pub yes: bool,

    /// When to use colour
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = ColorChoice::Auto,
        value_name = "WHEN",
        help_heading = GLOBAL
    )]
    pub color: ColorChoice,
}

/// When output is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal and `NO_COLOR` is unset
    Auto,
    /// Always colour
    Always,
    /// Never colour
    Never,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold an app: app.toml, static/ and the runtime's entry point
    #[command(after_help = "Examples:\n  \
        skiff init                             # this folder, named after it\n  \
        skiff init blog --runtime python       # a new folder blog/")]
    Init(InitArgs),

    /// Run an app on this machine the way a node serves it
    #[command(after_help = "Examples:\n  \
        skiff serve\n  \
        skiff serve blog --port 8000 --listen 0.0.0.0")]
    Serve(ServeArgs),

    /// Make a node known: a server you have (ssh), a Vagrant VM, or a throwaway local node
    #[command(after_help = "Examples:\n  \
        skiff create-node web1 --host 203.0.113.7\n  \
        skiff create-node test1 --provider local")]
    CreateNode(CreateNodeArgs),

    /// Provision a node as a skiff web host (idempotent)
    #[command(after_help = "Examples:\n  \
        skiff setup-node web1\n  \
        skiff setup-node web1 --dry-run")]
    SetupNode(SetupNodeArgs),

    /// List the cluster's nodes
    #[command(after_help = "Example:\n  skiff list-nodes --json")]
    ListNodes,

    /// Choose the node used when a command names none
    #[command(after_help = "Example:\n  skiff default-node web1")]
    DefaultNode(NodeNameArgs),

    /// Forget a node (and destroy it, for local and vagrant nodes)
    #[command(after_help = "Example:\n  skiff destroy-node web1 --yes")]
    DestroyNode(NodeNameArgs),

    /// Deploy a new version of an app
    #[command(
        visible_alias = "deploy",
        after_help = "Examples:\n  \
            skiff update                           # the app in this folder\n  \
            skiff update blog --node web1 --node web2"
    )]
    Update(UpdateArgs),

    /// Point the app back at its previous version
    #[command(after_help = APP_EXAMPLES_ROLLBACK)]
    Rollback(AppArgs),

    /// Point the app at any kept version
    #[command(
        override_usage = "skiff activate [OPTIONS] [APP] <VERSION>",
        after_help = "Examples:\n  \
            skiff activate 3                       # the app in this folder\n  \
            skiff activate blog.example.com 3"
    )]
    Activate(ActivateArgs),

    /// List the kept versions of the app
    #[command(after_help = "Examples:\n  \
        skiff versions                         # the app in this folder\n  \
        skiff versions blog --json")]
    Versions(AppArgs),

    /// Every app (or one) on every node: what serves, whether its host answers, slots,
    /// workers, disk, and drift from cluster.toml; exits 1 when something is wrong
    #[command(after_help = "Examples:\n  \
        skiff status\n  \
        skiff status blog.example.com")]
    Status(StatusArgs),

    /// What `update` would change on a node, changing nothing: files (with a diff of small
    /// text files), `[env]` names, packages to install
    #[command(after_help = "Example:\n  skiff diff ./blog --node web1")]
    Diff(DiffArgs),

    /// The app's deploy log: who deployed, rolled back or activated what, when, and how
    /// it went (failed runs too, with their reason)
    #[command(after_help = "Example:\n  skiff history blog")]
    History(AppArgs),

    /// Drop old releases of the app
    #[command(after_help = "Example:\n  skiff clean blog --keep 3")]
    Clean(CleanArgs),

    /// Remove an app from every node: releases, routes, slots, env (asks first)
    #[command(after_help = "Example:\n  skiff destroy-app blog.example.com --yes")]
    DestroyApp(DestroyAppArgs),

    /// Back up the app's services (databases, folders) into one archive on this machine
    #[command(after_help = "Example:\n  skiff backup blog --to backups/")]
    Backup(BackupArgs),

    /// Put a backup's data back into the app's services (asks first)
    #[command(
        after_help = "Example:\n  skiff restore blog-20260528T202640Z.skiff-backup blog --yes"
    )]
    Restore(RestoreArgs),

    /// Print a shell completion script
    #[command(after_help = "Example:\n  skiff completions bash > /etc/bash_completion.d/skiff")]
    Completions(CompletionsArgs),

    /// Print the man page (roff) on stdout: skiff's, or one verb's
    #[command(after_help = "Examples:\n  \
        skiff man | man -l -\n  \
        skiff man update | man -l -")]
    Man(ManArgs),

    /// The app's node-side environment (secrets): list, get, set, unset; a change is
    /// rolled out as a new version with the same files, and a rollback brings back the
    /// previous environment
    #[command(after_help = "Examples:\n  \
        skiff config list                      # the app in this folder\n  \
        skiff config blog.example.com set API_TOKEN=abc123")]
    Config {
        /// The app: its folder, its name or its host [default: .]
        #[arg(value_name = "APP")]
        app: Option<String>,
        /// What to do
        #[command(subcommand)]
        action: ConfigAction,
    },

    /// Run a command in a release of the app on one node, as the app runs (www-data, the
    /// release folder, its environment); stdin and output pass through, and skiff exits
    /// with the command's code. No shell unless you run one (`-- sh -c '...'`)
    #[command(after_help = "Examples:\n  \
        skiff run -- python manage.py migrate --plan\n  \
        skiff run blog.example.com --node web2 -- printenv")]
    Run {
        /// The app: its folder, its name or its host [default: .]
        #[arg(value_name = "APP")]
        app: Option<String>,
        /// Node to run on [default: the app's first node]
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// Kept version to run in [default: the current one]
        #[arg(long, value_name = "N")]
        version: Option<u32>,
        /// The command and its arguments (after `--`)
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },

    /// Open an interactive shell (bash, else sh) in the app's current release on one
    /// node, as the app runs, with a terminal
    #[command(after_help = "Example:\n  skiff shell blog --node web2")]
    Shell {
        /// The app: its folder, its name or its host [default: .]
        #[arg(value_name = "APP")]
        app: Option<String>,
        /// Node to open it on [default: the app's first node]
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
    },

    /// Show the app's logs from every node, merged by time, each line prefixed by its
    /// node: access and error logs, workers' and cron jobs' journal, skiff's deploys
    #[command(after_help = "Example:
  skiff logs blog -f --kind access --since 10m")]
    Logs {
        /// The app: its folder, its name or its host [default: .]
        #[arg(value_name = "APP")]
        app: Option<String>,
        /// Keep showing new lines until Ctrl-C (which stops everything on the nodes)
        #[arg(short, long)]
        follow: bool,
        /// Only lines this recent (30s, 10m, 2h, 1d)
        #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only this node [default: every node of the app]
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// Only these logs (repeatable) [default: all]
        #[arg(long, value_name = "KIND", value_parser = ["access", "error", "worker", "cron", "deploy"])]
        kind: Vec<String>,
        /// Lines per log and node, without --since (the last ones)
        #[arg(short = 'n', long, default_value_t = 100, value_name = "N")]
        lines: u32,
    },

    /// HTTPS: the ACME account, custom certificates, renewals (`[tls]` in app.toml)
    ///
    /// Example: skiff tls account --email ops@example.com
    Tls {
        /// What to do
        #[command(subcommand)]
        action: TlsAction,
    },
}

/// `skiff tls` subcommands.
#[derive(Debug, Subcommand)]
pub enum TlsAction {
    /// Set the ACME account `[tls] acme = true` apps order certificates with (in
    /// cluster.toml; no key is kept there): Let's Encrypt unless --server says otherwise
    ///
    /// Example: skiff tls account --email ops@example.com --server staging
    Account {
        /// Where the CA sends expiry notices
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
        /// The CA's ACME directory URL, `staging` (Let's Encrypt's test CA) or `production`
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// A PEM file with the CA certificate the nodes' certbot trusts for --server (a
        /// private or test CA only)
        #[arg(long, value_name = "FILE")]
        ca_bundle: Option<PathBuf>,
    },
    /// Install a certificate you have (chain included) on every node of HOST's app,
    /// checked here first: the key matches, the chain is complete, the dates are valid
    /// and the names cover every host and prev.HOST (nothing is uploaded otherwise)
    ///
    /// Example: skiff tls add blog.example.com --cert fullchain.pem --key privkey.pem
    Add {
        /// The app's main host name
        host: String,
        /// The certificate chain (PEM): the server's certificate first, then intermediates
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Its private key (PEM, no passphrase); installed 0600 on the nodes only
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The root certificate the chain ends at, when this machine does not trust it
        /// (a private CA)
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Renew HOST's ACME certificate now on every node of the app (it renews by itself
    /// 30 days before it expires)
    ///
    /// Example: skiff tls renew blog.example.com
    Renew {
        /// The app's main host name
        host: String,
    },
}

/// `rollback`'s examples (a const: `after_help` takes an expression).
const APP_EXAMPLES_ROLLBACK: &str = "Examples:\n  \
    skiff rollback                         # the app in this folder\n  \
    skiff rollback blog                    # by name, host or folder";

/// Runtimes an app can have; mirrors `runtime` in app.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    /// A WSGI app under mod_wsgi
    Python,
    /// PHP under mod_php
    Php,
    /// A Rack app under Passenger
    Ruby,
    /// Files only, served by NGINX
    Static,
}

/// `skiff init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to scaffold (created when missing)
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The app's runtime (asked on a terminal when omitted; required otherwise)
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeArg>,
    /// App name [default: the folder's name]
    #[arg(long)]
    pub name: Option<String>,
    /// Overwrite files that already exist
    #[arg(long)]
    pub force: bool,
}

/// `skiff serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The app's folder
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Port to listen on
    #[arg(long, short, default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on (`0.0.0.0` for every interface)
    #[arg(
        long,
        default_value = "127.0.0.1",
        value_name = "ADDR",
        alias = "host",
        alias = "bind"
    )]
    pub listen: String,
    /// Do not restart the runtime when files change
    #[arg(long)]
    pub no_reload: bool,
}

/// How a node comes to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    /// A server you already have, reached over SSH
    Ssh,
    /// The Ubuntu VM described in vagrant/Vagrantfile
    Vagrant,
    /// A throwaway Debian node in a Linux network namespace (root only)
    Local,
}

/// `skiff create-node`.
#[derive(Debug, Args)]
pub struct CreateNodeArgs {
    /// Name for the node ([a-z][a-z0-9-]*)
    pub name: String,
    /// How the node comes to exist
    #[arg(long, value_enum, default_value_t = ProviderArg::Ssh)]
    pub provider: ProviderArg,
    /// Address or DNS name (ssh provider)
    #[arg(long)]
    pub host: Option<String>,
    /// Login user
    #[arg(long)]
    pub user: Option<String>,
    /// SSH port
    #[arg(long)]
    pub port: Option<u16>,
    /// Private key to log in with (overrides ~/.ssh/config and the agent)
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Accept an operating system skiff does not support
    #[arg(long)]
    pub force: bool,
    /// Re-pin the host key of an existing node after a deliberate key change
    #[arg(long)]
    pub repin: bool,
    /// The release a local node runs (local provider) [default: debian-12]
    #[arg(long, value_enum, value_name = "OS")]
    pub os: Option<LocalOsArg>,
}

/// Releases a local node can run: Debian 12, and Debian 13 (the nearest to Ubuntu 24.04
/// that this project's test network reaches: newer PHP, Python and NGINX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LocalOsArg {
    /// Debian 12 "bookworm"
    #[value(name = "debian-12")]
    Debian12,
    /// Debian 13 "trixie"
    #[value(name = "debian-13")]
    Debian13,
}

/// `skiff setup-node`.
#[derive(Debug, Args)]
pub struct SetupNodeArgs {
    /// Node to set up [default: the default node]
    pub name: Option<String>,
    /// Print the plan (packages, files with diffs, services) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// HTTP proxy for apt on the node, e.g. http://10.0.0.1:3142
    #[arg(long, value_name = "URL")]
    pub apt_proxy: Option<String>,
    /// mod_wsgi daemon slots to declare (two per Python app) [default: 1 per 256 MiB of
    /// memory, 4 to 8]; never fewer than the node has; deploys add more when needed
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=99))]
    pub python_slots: Option<u8>,
    /// Passenger slots to declare (two per Ruby app; idle slots cost nothing) [default: as
    /// for Python]; never fewer than the node has; deploys add more when needed
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=99))]
    pub ruby_slots: Option<u8>,
    /// Leave the node's firewall to you: no nftables table from skiff (a node that has
    /// one loses it). Without it: SSH, HTTP and HTTPS open, database ports only to the
    /// apps' own nodes, everything else dropped
    #[arg(long)]
    pub no_firewall: bool,
}

/// A verb that takes one node name.
#[derive(Debug, Args)]
pub struct NodeNameArgs {
    /// Node name
    pub name: String,
}

/// `skiff update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The app's folder
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Host name to deploy (repeatable; the first is the main one) [default: app.toml's
    /// hostnames]
    #[arg(long = "hostname", value_name = "HOST", alias = "host")]
    pub hosts: Vec<String>,
    /// Node to deploy to (repeatable) [default: the default node]
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Print the /etc/hosts lines for the app's hosts instead of deploying
    #[arg(long)]
    pub etc_hosts: bool,
    /// With --etc-hosts: add the lines to /etc/hosts (through sudo, after asking)
    #[arg(long, requires = "etc_hosts")]
    pub write: bool,
}

/// `skiff config HOST ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Every variable, values masked unless --reveal
    List {
        /// Show the values
        #[arg(long)]
        reveal: bool,
    },
    /// One variable's value, as it is
    Get {
        /// The variable's name
        name: String,
    },
    /// Set variables: NAME=VALUE ..., or NAME with the value from --file or stdin (`-`)
    Set {
        /// NAME=VALUE pairs, or one NAME when the value comes from --file or `-` (stdin)
        #[arg(required = true, value_name = "NAME=VALUE")]
        pairs: Vec<String>,
        /// Read the value of the one NAME from this file (one trailing newline dropped)
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Only store it: the app gets it with the next `skiff update`
        #[arg(long)]
        no_deploy: bool,
    },
    /// Remove variables
    Unset {
        /// Names to remove
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Only store it: the app gets it with the next `skiff update`
        #[arg(long)]
        no_deploy: bool,
    },
}

/// `skiff status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One app: its folder, its name or its host [default: every app in cluster.toml]
    #[arg(value_name = "APP")]
    pub app: Option<String>,
}

/// `skiff diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The app's folder
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Node to compare with [default: the app's first node, else the default node]
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
}

/// A verb that acts on one deployed app (see [`crate::app_ref`]).
#[derive(Debug, Args)]
pub struct AppArgs {
    /// The app: its folder (read from its app.toml), its name or its host [default: .]
    #[arg(value_name = "APP")]
    pub app: Option<String>,
}

/// `skiff destroy-app`: the app is never implied by the current folder.
#[derive(Debug, Args)]
pub struct DestroyAppArgs {
    /// The app: its folder (`.` for this one), its name or its host
    #[arg(value_name = "APP")]
    pub app: String,
}

/// `skiff activate [APP] VERSION`.
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The app (its folder, name or host) [default: .], then the version; a lone number is
    /// the version of the app in this folder
    #[arg(value_name = "APP")]
    pub app: Option<String>,
    /// Version number to make current
    #[arg(value_name = "VERSION")]
    pub version: Option<u32>,
}

impl ActivateArgs {
    /// The app as given (`None`: this folder) and the version: `activate 3` means the
    /// app in this folder, `activate blog 3` names it; no number is a usage error.
    pub fn app_and_version(&self) -> Result<(Option<&str>, u32), String> {
        let app = self.app.as_deref();
        match (app, self.version) {
            (app, Some(v)) => Ok((app, v)),
            (Some(word), None) if word.parse::<u32>().is_ok() => {
                Ok((None, word.parse().expect("checked")))
            }
            (Some(word), None) => Err(format!(
                "no version number given: `skiff activate {word} VERSION` (see `skiff versions {word}`)"
            )),
            (None, None) => Err(
                "no version number given: `skiff activate [APP] VERSION` (see `skiff versions`)"
                    .to_string(),
            ),
        }
    }
}

/// `skiff clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// The app: its folder, its name or its host [default: .]
    #[arg(value_name = "APP")]
    pub app: Option<String>,
    /// How many releases to keep (current and prev are always kept)
    #[arg(long, default_value_t = 5)]
    pub keep: u32,
}

/// `skiff backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The app: its folder, its name or its host [default: .]
    #[arg(value_name = "APP")]
    pub app: Option<String>,
    /// Folder to write the archive in [default: the current folder]
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
}

/// `skiff restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive `skiff backup` wrote
    pub archive: PathBuf,
    /// The app: its folder, its name or its host [default: .]
    #[arg(value_name = "APP")]
    pub app: Option<String>,
}

/// `skiff man [VERB]`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// A verb whose page to print (`skiff-VERB(1)`) [default: skiff's own page]
    #[arg(value_name = "VERB")]
    pub verb: Option<String>,
}

/// `skiff completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use clap::CommandFactory;

    use super::Cli;

    /// Every text file of the user-facing sources: messages, hints, templates, docs.
    fn texts() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("README.md")];
        for dir in ["src", "templates", "server-files", "docs", "scripts"] {
            for entry in ignore::WalkBuilder::new(root.join(dir)).build().flatten() {
                if entry.file_type().is_some_and(|t| t.is_file()) {
                    files.push(entry.into_path());
                }
            }
        }
        files
    }

    /// Each `skiff VERB ...` the texts show the user: inside backticks anywhere, whole
    /// lines of Markdown (indented examples), and the example lines of help texts in
    /// Rust strings (`after_help`: a piece of a string literal, between `\n`s, that
    /// starts with `skiff `). Rust comments are for developers.
    fn shown_commands(file: &Path, text: &str) -> Vec<String> {
        let markdown = file.extension().is_some_and(|e| e == "md");
        let rust = file.extension().is_some_and(|e| e == "rs");
        let mut out = Vec::new();
        // whether the line before ended in a string continuation (`\n  \`)
        let mut continued = false;
        for line in text.lines() {
            let trimmed = line.trim_start();
            let after_continuation = std::mem::replace(&mut continued, line.ends_with('\\'));
            if rust && trimmed.starts_with("//") {
                continue;
            }
            if markdown && line.starts_with("    ") && trimmed.starts_with("skiff ") {
                out.push(trimmed.split('#').next().unwrap_or("").to_string());
            }
            if rust {
                for (i, piece) in line.split("\\n").enumerate() {
                    let piece = piece.trim_start_matches([' ', '"', '\\']);
                    let example_line = i > 0 || after_continuation;
                    if example_line && piece.starts_with("skiff ") && !piece.contains('`') {
                        let end = piece.find(['#', '"', '\\']).unwrap_or(piece.len());
                        out.push(piece[..end].to_string());
                    }
                }
            }
            for (at, _) in line.match_indices("`skiff ") {
                let rest = &line[at + 1..];
                out.push(rest.split('`').next().unwrap_or(rest).to_string());
            }
        }
        out
    }

    /// No message, hint, template or doc names a verb or flag that `skiff --help` does
    /// not list (issue 10: hints named `skiff config set`, which does not exist).
    #[test]
    fn texts_name_only_real_commands_and_flags() {
        let mut cli = Cli::command();
        cli.build();
        let mut wrong = Vec::new();
        let mut seen = 0;
        for file in texts() {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for shown in shown_commands(&file, &text) {
                seen += 1;
                let words: Vec<&str> = shown.split_whitespace().collect();
                let Some(verb) = words.get(1) else {
                    continue;
                };
                if verb.starts_with('-')
                    || !verb.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                {
                    continue;
                }
                let Some(sub) = cli.find_subcommand(verb) else {
                    wrong.push(format!("{}: `{shown}`: no verb `{verb}`", file.display()));
                    continue;
                };
                // after a bare `--` the words are a command's (`skiff run HOST -- CMD`)
                for word in words[2..].iter().take_while(|w| **w != "--") {
                    let Some(flag) = word.strip_prefix("--") else {
                        continue;
                    };
                    let flag = flag.split(['=', ')', ',', ';']).next().unwrap_or(flag);
                    // the verb's own flags, its subcommands' (`config HOST set NAME --file F`)
                    // and the global ones
                    let known = sub
                        .get_arguments()
                        .chain(sub.get_subcommands().flat_map(|s| s.get_arguments()))
                        .chain(cli.get_arguments())
                        .any(|a| a.get_long() == Some(flag))
                        || flag == "help";
                    if !known {
                        wrong.push(format!(
                            "{}: `{shown}`: `skiff {verb}` has no `--{flag}`",
                            file.display()
                        ));
                    }
                }
            }
        }
        assert!(seen > 50, "the scan found only {seen} commands");
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// A shown command as argv, its placeholders (`HOST`, `NAME`, `{host}`) filled with
    /// values clap accepts; `None` for a grammar (`[--reveal] | get NAME`) or a
    /// fragment (`skiff ... --json`) rather than a command to type.
    fn as_argv(shown: &str) -> Option<Vec<String>> {
        let mut argv = Vec::new();
        for word in shown.split_whitespace() {
            if ["|", "&&", ">", "<", ";", "#"].contains(&word) {
                break;
            }
            if word.contains('[') || word.contains("...") || word.contains('|') {
                return None;
            }
            let word = word.trim_end_matches([',', ')', ':', ';']);
            let placeholder = word.chars().any(|c| c.is_ascii_uppercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let filled = if word.contains('{') {
                // a format argument: a number where the texts put one
                let numeric = ["{}", "{n}", "{version}", "{port}"].contains(&word);
                if numeric { "3" } else { "blog" }.to_string()
            } else if !placeholder {
                word.to_string()
            } else {
                match word {
                    "N" | "V" | "VERSION" => "3",
                    "AGE" => "10m",
                    "RUNTIME" => "python",
                    "WHEN" => "never",
                    "SHELL" => "bash",
                    _ => "x",
                }
                .to_string()
            };
            argv.push(filled);
        }
        Some(argv)
    }

    /// Every command the texts show parses as skiff's CLI would parse it (issue 17:
    /// hints named `skiff setup-node --node NAME` and `skiff create-node NAME`, which
    /// clap or the verb refuse): each is run through `try_get_matches_from`.
    #[test]
    fn texts_show_commands_that_parse() {
        let mut failed = Vec::new();
        let mut parsed = 0;
        for file in texts() {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for shown in shown_commands(&file, &text) {
                let Some(argv) = as_argv(&shown) else {
                    continue;
                };
                // `skiff ...` alone, or prose such as `skiff provisions` in a sentence
                let Some(verb) = argv.get(1) else { continue };
                if Cli::command().find_subcommand(verb).is_none() {
                    continue;
                }
                parsed += 1;
                if let Err(e) = Cli::command().try_get_matches_from(&argv) {
                    use clap::error::ErrorKind;
                    let shows_help = matches!(
                        e.kind(),
                        ErrorKind::DisplayHelp
                            | ErrorKind::DisplayVersion
                            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    );
                    // `skiff run` alone in a sentence names the verb, and `skiff
                    // setup-node --apt-proxy` a flag: mentions, not command lines
                    let mention = (argv.len() == 2
                        && e.kind() == ErrorKind::MissingRequiredArgument)
                        || (argv.last().is_some_and(|w| w.starts_with("--"))
                            && e.kind() == ErrorKind::InvalidValue);
                    if mention {
                        continue;
                    }
                    if !shows_help {
                        failed.push(format!(
                            "{}: `{shown}`: {}",
                            file.display(),
                            e.render().to_string().lines().next().unwrap_or("")
                        ));
                    }
                }
            }
        }
        assert!(parsed > 80, "the scan parsed only {parsed} commands");
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    /// `activate [APP] VERSION`: a lone number is the version of this folder's app.
    #[test]
    fn activate_takes_an_optional_app_before_the_version() {
        use clap::Parser;
        let parsed = |argv: &[&str]| match Cli::try_parse_from(argv).unwrap().command {
            super::Command::Activate(a) => a
                .app_and_version()
                .map(|(app, v)| (app.map(str::to_string), v)),
            _ => unreachable!(),
        };
        assert_eq!(parsed(&["skiff", "activate", "3"]), Ok((None, 3)));
        assert_eq!(
            parsed(&["skiff", "activate", "blog", "3"]),
            Ok((Some("blog".into()), 3))
        );
        assert!(
            parsed(&["skiff", "activate", "blog"])
                .unwrap_err()
                .contains("VERSION")
        );
        assert!(
            parsed(&["skiff", "activate"])
                .unwrap_err()
                .contains("VERSION")
        );
    }

    /// The placeholder filling itself.
    #[test]
    fn shown_commands_become_argv() {
        assert_eq!(
            as_argv("skiff activate HOST N").unwrap(),
            ["skiff", "activate", "x", "3"]
        );
        assert_eq!(
            as_argv("skiff config {host} set A=1 # note").unwrap(),
            ["skiff", "config", "blog", "set", "A=1"]
        );
        assert!(as_argv("skiff logs HOST [-f]").is_none());
        let rust = "after_help = \"Example:\\n  skiff clean blog --keep 3\\n  skiff man\")]";
        assert_eq!(
            shown_commands(Path::new("x.rs"), rust),
            ["skiff clean blog --keep 3", "skiff man"]
        );
    }
}
