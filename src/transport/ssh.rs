//! One multiplexed SSH connection per node, on the openssh crate (native mux).
//!
//! A [`Session`] starts one `ssh` master process and runs every command of a skiff
//! command as a channel over it (about 1 ms each instead of a handshake per command).
//! The master lives in a short control directory (socket paths are limited to about
//! 100 bytes), idles out by itself (`ControlPersist`) if skiff dies, and is stopped by
//! [`Session::close`] (or on drop). Host keys are pinned on first contact in skiff's own
//! `known_hosts` beside cluster.toml and a changed key is refused. The user's
//! `~/.ssh/config` and agent apply as with plain `ssh`; an identity file overrides them.

use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio as StdStdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, SessionBuilder, Stdio};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;

use super::{Output, Target, command_line};
use crate::cluster::{Node, StateFile};
use crate::error::{Error, Result};

/// At most this many channels run at once on one session: sshd's default `MaxSessions`
/// is 10, and a few spare ones keep an interactive `ssh` of the user working.
pub const MAX_CHANNELS: usize = 4;

/// How long the TCP connect to a node may take before skiff calls it unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A master with no channel for this long exits by itself: the safety net for a skiff
/// that was killed before it could close its sessions.
pub const IDLE_EXIT_SECS: usize = 120;

/// Longest control directory we accept: ssh appends `/.ssh-connectionXXXXXX/master` plus
/// a 17-character temporary suffix, and a Unix socket path has at most 107 bytes.
const MAX_CONTROL_DIR_LEN: usize = 40;

/// The file skiff pins host keys in, inside `ssh_dir` (the folder of cluster.toml).
pub fn known_hosts_path(ssh_dir: &Path) -> PathBuf {
    ssh_dir.join("known_hosts")
}

/// A live connection to one node; cheap to share by reference between tasks.
#[derive(Debug)]
pub struct Session {
    node: String,
    user: String,
    inner: openssh::Session,
    permits: Semaphore,
    round_trips: AtomicU64,
}

impl Session {
    /// Opens the master connection to `target`, pinning its host key in
    /// `ssh_dir/known_hosts` on first contact and refusing a changed one.
    ///
    /// Errors say why the node cannot be reached: no `ssh` program, host key changed
    /// (both fingerprints), login refused, no route, refused, timed out.
    pub async fn connect(target: &Target, ssh_dir: &Path) -> Result<Session> {
        if which::which("ssh").is_err() {
            return Err(Error::Unreachable {
                node: target.node.clone(),
                cause: "the `ssh` program was not found on PATH".into(),
                hint: Some(
                    "install the OpenSSH client (Debian/Ubuntu: `apt-get install openssh-client`)"
                        .into(),
                ),
            });
        }
        if let Some(identity) = &target.identity {
            fs::metadata(identity).map_err(|source| Error::Read {
                path: identity.clone(),
                source,
            })?;
        }
        let known_hosts = ensure_known_hosts(ssh_dir)?;
        let control = control_dir(ssh_dir)?;

        let mut builder = SessionBuilder::default();
        builder
            .user(target.user.clone())
            .port(target.port)
            .known_hosts_check(KnownHosts::Add)
            .user_known_hosts_file(ssh_config_path(&known_hosts))
            .connect_timeout(CONNECT_TIMEOUT)
            .server_alive_interval(Duration::from_secs(15))
            .control_directory(&control)
            .control_persist(ControlPersist::IdleFor(
                NonZeroUsize::new(IDLE_EXIT_SECS).expect("non-zero"),
            ));
        if let Some(identity) = &target.identity {
            builder.keyfile(identity);
        }
        match builder.connect_mux(&target.address).await {
            Ok(inner) => Ok(Session {
                node: target.node.clone(),
                user: target.user.clone(),
                inner,
                permits: Semaphore::new(MAX_CHANNELS),
                round_trips: AtomicU64::new(0),
            }),
            Err(err) => Err(connect_error(target, &known_hosts, &err)),
        }
    }

    /// Connects to a node recorded in cluster.toml as its deploy user (see
    /// [`Target::for_node`]), with skiff's known_hosts beside it.
    pub async fn for_node(name: &str, node: &Node, state: &StateFile) -> Result<Session> {
        Session::connect(&Target::for_node(name, node), &state.dir()).await
    }

    /// Connects to a node as its admin login user (`user`): setup-node only.
    pub async fn admin_for_node(name: &str, node: &Node, state: &StateFile) -> Result<Session> {
        Session::connect(&Target::admin_for_node(name, node), &state.dir()).await
    }

    /// `argv` as root: through `sudo -n` unless the session logged in as root. For the
    /// commands the deploy user's sudoers rule allows (skiff-node, skiff-run).
    pub fn as_root<'a>(&self, argv: &[&'a str]) -> Vec<&'a str> {
        let sudo: &[&str] = if self.user == "root" {
            &[]
        } else {
            &["sudo", "-n"]
        };
        sudo.iter().chain(argv).copied().collect()
    }

    /// The node's name, for messages.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How many commands ran over this session so far (benchmarks and tests count them).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Runs `argv` on the node; a non-zero exit is a normal [`Output`], not an error.
    pub async fn run(&self, argv: &[&str]) -> Result<Output> {
        self.exec(
            &command_line(argv),
            None::<&[u8]>,
            None::<&mut tokio::io::Sink>,
        )
        .await
    }

    /// Runs `argv` and returns its stdout; a non-zero exit is [`Error::Remote`].
    pub async fn run_ok(&self, argv: &[&str]) -> Result<Vec<u8>> {
        let out = self.run(argv).await?;
        self.check(&command_line(argv), out)
    }

    /// Runs a shell script on the node as `sh -s -- ARGS`, the script fed on stdin, so
    /// many steps cost one round trip and the arguments arrive as `$1`, `$2`...
    pub async fn script(&self, script: &str, args: &[&str]) -> Result<Output> {
        let argv = script_argv(args);
        self.run_with_input(&argv, script.as_bytes()).await
    }

    /// Runs `script` with named inputs: each `(NAME, VALUE)` becomes a `NAME='VALUE'` line
    /// (quoted by [`crate::transport::quote`]) of a prelude put before the script on
    /// stdin, so values (secrets among them) never appear in a process's argv on the node
    /// (`ps`), have no size limit of a command-line argument, and are never part of the
    /// command line an error prints. `args` still arrive as `$1`, `$2`...
    pub async fn script_with(
        &self,
        script: &str,
        vars: &[(&str, &str)],
        args: &[&str],
    ) -> Result<Output> {
        let argv = script_argv(args);
        self.run_with_input(&argv, with_prelude(script, vars).as_bytes())
            .await
    }

    /// [`Session::script`], with a non-zero exit turned into [`Error::Remote`].
    pub async fn script_ok(&self, script: &str, args: &[&str]) -> Result<Vec<u8>> {
        let out = self.script(script, args).await?;
        self.check(&script_label(script, args), out)
    }

    /// Runs `argv` with `input` streamed to its stdin (a tar stream, a file, a patch).
    pub async fn run_with_input<R: AsyncRead + Unpin + Send>(
        &self,
        argv: &[&str],
        input: R,
    ) -> Result<Output> {
        self.exec(
            &command_line(argv),
            Some(input),
            None::<&mut tokio::io::Sink>,
        )
        .await
    }

    /// Runs `argv` with its stdout streamed into `sink` as it arrives (downloads, logs)
    /// instead of being collected; the returned [`Output`] has an empty `stdout`.
    pub async fn run_to_writer<W: AsyncWrite + Unpin + Send>(
        &self,
        argv: &[&str],
        sink: &mut W,
    ) -> Result<Output> {
        self.exec(&command_line(argv), None::<&[u8]>, Some(sink))
            .await
    }

    /// Runs `argv` with its input streamed from `input` and its stdout streamed into
    /// `sink` as both flow (a follow that ends when `input` ends: `logs -f` closes it).
    pub async fn run_streaming<R, W>(&self, argv: &[&str], input: R, sink: &mut W) -> Result<Output>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        self.exec(&command_line(argv), Some(input), Some(sink))
            .await
    }

    /// Runs `argv` with skiff's own stdin, stdout and stderr handed to the channel (no
    /// TTY: bytes pass as they are, `skiff run`), through the shared master; returns its
    /// exit status (`None`: killed by a signal, or the link dropped).
    pub async fn run_inherited(&self, argv: &[&str]) -> Result<Option<i32>> {
        let line = command_line(argv);
        let _permit = self.permits.acquire().await.expect("never closed");
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut cmd = self.inner.raw_command(&line);
        cmd.stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        match cmd.status().await {
            Ok(status) => Ok(status.code()),
            // openssh reports exit 127 as an error of its own: it is the command's code
            Err(openssh::Error::Remote(e)) if e.kind() == io::ErrorKind::NotFound => Ok(Some(127)),
            Err(openssh::Error::RemoteProcessTerminated) => {
                if self.inner.check().await.is_err() {
                    return Err(self.lost(&line, &openssh::Error::Disconnected));
                }
                Ok(None)
            }
            Err(e) => Err(self.lost(&line, &e)),
        }
    }

    /// Runs `argv` on the node with a TTY (`ssh -t` through this session's master, so no
    /// new login), skiff's terminal as its terminal: interactive programs (`skiff shell`).
    /// Blocks until it ends; returns its exit status (`None`: killed by a signal).
    pub fn run_tty(&self, argv: &[&str]) -> Result<Option<i32>> {
        let line = command_line(argv);
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let status = std::process::Command::new("ssh")
            .arg("-S")
            .arg(self.inner.control_socket())
            .args(["-o", "BatchMode=yes", "-q", "-t", "none", "--"])
            .arg(&line)
            .status()
            .map_err(|e| Error::Unreachable {
                node: self.node.clone(),
                cause: format!("could not start `ssh -t`: {e}"),
                hint: None,
            })?;
        // ssh exits 255 for its own errors (the master gone): say so, not "exit 255".
        if status.code() == Some(255) && std::fs::metadata(self.inner.control_socket()).is_err() {
            return Err(self.lost(&line, &openssh::Error::Disconnected));
        }
        Ok(status.code())
    }

    /// Stops the master connection now (also done on drop, without waiting).
    pub async fn close(self) -> Result<()> {
        let node = self.node.clone();
        match self.inner.close().await {
            Ok(()) | Err(openssh::Error::Disconnected) => Ok(()),
            Err(err) => Err(Error::Unreachable {
                node,
                cause: format!("could not close the connection: {}", chain(&err)),
                hint: None,
            }),
        }
    }

    fn check(&self, command: &str, out: Output) -> Result<Vec<u8>> {
        if out.success() {
            return Ok(out.stdout);
        }
        Err(Error::Remote {
            node: self.node.clone(),
            command: shorten(command),
            status: out.status,
            output: out.tail(20),
            hint: None,
        })
    }

    /// The one place a channel is opened: a permit, a counted round trip, the command
    /// line, optional stdin streamed up and optional stdout streamed down.
    async fn exec<R, W>(&self, line: &str, input: Option<R>, sink: Option<&mut W>) -> Result<Output>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let _permit = self.permits.acquire().await.expect("never closed");
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut cmd = self.inner.raw_command(line);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().await.map_err(|e| self.lost(line, &e))?;

        let stdin = child.stdin().take();
        let stdout = if sink.is_some() {
            child.stdout().take()
        } else {
            None
        };
        let feed = async {
            match (input, stdin) {
                (Some(mut input), Some(mut stdin)) => {
                    let res = tokio::io::copy(&mut input, &mut stdin).await;
                    let res = match res {
                        Ok(_) => stdin.shutdown().await,
                        Err(e) => Err(e),
                    };
                    drop(stdin);
                    res
                }
                _ => Ok(()),
            }
        };
        let drain = async {
            match (sink, stdout) {
                (Some(sink), Some(mut stdout)) => {
                    let res = tokio::io::copy(&mut stdout, sink).await;
                    match res {
                        Ok(_) => sink.flush().await,
                        Err(e) => Err(e),
                    }
                }
                _ => Ok(()),
            }
        };
        let (fed, drained, waited) = tokio::join!(feed, drain, child.wait_with_output());
        let out = match waited {
            Ok(out) => Output {
                status: out.status.code(),
                stdout: out.stdout,
                stderr: out.stderr,
            },
            Err(openssh::Error::RemoteProcessTerminated) => {
                // Killed by a signal, or the link dropped: the protocol cannot tell,
                // so ask the master whether it is still there.
                if self.inner.check().await.is_err() {
                    return Err(self.lost(line, &openssh::Error::Disconnected));
                }
                Output {
                    status: None,
                    stdout: Vec::new(),
                    stderr: b"killed by a signal".to_vec(),
                }
            }
            Err(e) => return Err(self.lost(line, &e)),
        };
        // A stream error only matters when the command itself claims success.
        if out.success() {
            for (what, res) in [("sending input to", fed), ("reading output of", drained)] {
                if let Err(e) = res {
                    return Err(Error::Failed {
                        message: format!(
                            "{what} `{}` on node `{}` failed: {e}",
                            shorten(line),
                            self.node
                        ),
                        hint: None,
                    });
                }
            }
        }
        Ok(out)
    }

    fn lost(&self, line: &str, err: &openssh::Error) -> Error {
        Error::Unreachable {
            node: self.node.clone(),
            cause: format!(
                "lost the connection running `{}`: {}",
                shorten(line),
                chain(err)
            ),
            hint: Some("check that the node is up, then run the command again".into()),
        }
    }
}

/// `sh -s -- ARGS`: the argv that runs a script fed on stdin.
/// `script` with a prelude of `NAME='VALUE'` lines for `vars` after its first line (the
/// `#!` line stays first). Names must be shell identifiers (skiff's own, never input).
pub(crate) fn with_prelude(script: &str, vars: &[(&str, &str)]) -> String {
    let mut prelude = String::new();
    for (name, value) in vars {
        debug_assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "prelude names are skiff's own identifiers"
        );
        prelude.push_str(name);
        prelude.push('=');
        prelude.push_str(&crate::transport::quote(value));
        prelude.push('\n');
    }
    match script.split_once('\n') {
        Some((first, rest)) if first.starts_with("#!") => format!("{first}\n{prelude}{rest}"),
        _ => format!("{prelude}{script}"),
    }
}

fn script_argv<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["sh", "-s", "--"];
    argv.extend_from_slice(args);
    argv
}

/// How a failed script is named in errors: its first meaningful line.
fn script_label(script: &str, args: &[&str]) -> String {
    let first = script
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("set "))
        .unwrap_or("");
    format!("{} (script: {first})", command_line(&script_argv(args)))
}

/// Keeps error messages readable when a command line is long.
fn shorten(line: &str) -> String {
    const MAX: usize = 160;
    let line = line.replace('\n', "\\n");
    if line.chars().count() <= MAX {
        line
    } else {
        let cut: String = line.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

/// An error and its sources on one line (the openssh crate keeps the useful part, the
/// text ssh printed, in the source).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Whether `user` logs in to `target`'s node with a key and nothing else: a fresh
/// connection (no master), `PreferredAuthentications=publickey`, `BatchMode=yes` (no
/// password or keyboard-interactive prompt), the pinned host key, the node's identity
/// file when it has one (else the agent and `~/.ssh/config`), running `true`. `Err` says
/// why not, in ssh's own words. setup-node asks this before it turns passwords off.
pub async fn key_login(
    target: &Target,
    ssh_dir: &Path,
    user: &str,
) -> std::result::Result<(), String> {
    crate::names::check_login_user(user)?;
    let known_hosts = known_hosts_path(ssh_dir);
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args([
        "-o",
        "BatchMode=yes",
        "-o",
        "PreferredAuthentications=publickey",
    ])
    .args(["-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=no"])
    .args(["-o", "ControlPath=none", "-o", "ConnectTimeout=10"])
    .arg("-o")
    .arg(format!(
        "UserKnownHostsFile={}",
        ssh_config_path(&known_hosts)
    ))
    .arg("-p")
    .arg(target.port.to_string())
    .arg("-l")
    .arg(user);
    if let Some(identity) = &target.identity {
        cmd.arg("-i")
            .arg(identity)
            .args(["-o", "IdentitiesOnly=yes"]);
    }
    cmd.arg("--")
        .arg(&target.address)
        .arg("true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let run = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await;
    match run {
        Err(_) => Err("no answer within 30 s".into()),
        Ok(Err(e)) => Err(format!("could not start `ssh`: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let said = String::from_utf8_lossy(&out.stderr);
            let line = said
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .unwrap_or("ssh failed with no message");
            Err(line.to_string())
        }
    }
}

/// Creates `ssh_dir` (0700) and an empty `known_hosts` (0600) in it when missing.
fn ensure_known_hosts(ssh_dir: &Path) -> Result<PathBuf> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(ssh_dir)
        .map_err(|source| Error::Write {
            path: ssh_dir.to_path_buf(),
            source,
        })?;
    let path = known_hosts_path(ssh_dir);
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// A path as ssh's config parser reads it back: `%` escaped (it expands `%d`, `%u`...)
/// and double quotes around paths with spaces (otherwise they split into several files).
fn ssh_config_path(path: &Path) -> String {
    let text = path.to_string_lossy().replace('%', "%%");
    if text.contains(char::is_whitespace) {
        format!("\"{text}\"")
    } else {
        text
    }
}

/// The control directory for sessions of the state in `ssh_dir`: short enough for a
/// Unix socket path, private (0700, ours), and distinct per state folder so tests and
/// users can tell whose masters are whose.
///
/// `$XDG_RUNTIME_DIR/skiff/<hash>` when that is short, else `/tmp/skiff-<uid>/<hash>`.
pub fn control_dir(ssh_dir: &Path) -> Result<PathBuf> {
    let canonical = fs::canonicalize(ssh_dir).unwrap_or_else(|_| ssh_dir.to_path_buf());
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    let tag = hex::encode(&digest[..4]);
    let uid = nix::unistd::geteuid().as_raw();
    let mut bases = Vec::new();
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        bases.push(PathBuf::from(run).join("skiff"));
    }
    bases.push(PathBuf::from(format!("/tmp/skiff-{uid}")));
    let base = bases
        .into_iter()
        .find(|b| b.join(&tag).as_os_str().len() <= MAX_CONTROL_DIR_LEN)
        .expect("/tmp/skiff-UID/TAG is always short enough");
    private_dir(&base, uid)?;
    let dir = base.join(tag);
    private_dir(&dir, uid)?;
    Ok(dir)
}

/// Makes `dir` a directory only we can use, refusing one someone else owns (in /tmp,
/// another user could have created it first to watch or hijack our sockets).
fn private_dir(dir: &Path, uid: u32) -> Result<()> {
    let write_err = |source| Error::Write {
        path: dir.to_path_buf(),
        source,
    };
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(write_err(e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(write_err)?;
    if !meta.is_dir() || meta.uid() != uid {
        return Err(Error::Failed {
            message: format!(
                "`{}` is not a folder owned by you; refusing to put ssh sockets there",
                dir.display()
            ),
            hint: Some(format!("remove `{}` and run again", dir.display())),
        });
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(write_err)?;
    }
    Ok(())
}

/// The SHA256 fingerprint pinned for `target` in `ssh_dir/known_hosts`, if any (the
/// first, when several key types are pinned).
pub fn pinned_fingerprint(ssh_dir: &Path, target: &Target) -> Result<Option<String>> {
    Ok(pinned_keys(&known_hosts_path(ssh_dir), target)?
        .into_iter()
        .next()
        .map(|(_, fp)| fp))
}

/// `(key type, fingerprint)` of every key pinned for `target` in `known_hosts`.
fn pinned_keys(known_hosts: &Path, target: &Target) -> Result<Vec<(String, String)>> {
    if !known_hosts.exists() {
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    for name in key_names(target) {
        let out = keygen(&["-l", "-F", &name], known_hosts)?;
        keys.extend(parse_keygen_list(&String::from_utf8_lossy(&out.stdout)));
    }
    Ok(keys)
}

/// Runs `ssh-keygen ARGS -f known_hosts`.
fn keygen(args: &[&str], known_hosts: &Path) -> Result<std::process::Output> {
    std::process::Command::new("ssh-keygen")
        .args(args)
        .arg("-f")
        .arg(known_hosts)
        .stdin(StdStdio::null())
        .output()
        .map_err(|e| Error::Failed {
            message: format!(
                "could not run `ssh-keygen {}` on `{}`: {e}",
                args.join(" "),
                known_hosts.display()
            ),
            hint: Some("install the OpenSSH client (it provides ssh-keygen)".into()),
        })
}

/// The names ssh files `target`'s key under: the address as given and, when
/// `~/.ssh/config` maps it elsewhere (`HostName`, `HostKeyAlias`), that name too.
fn key_names(target: &Target) -> Vec<String> {
    let mut names = vec![target.known_hosts_name()];
    let resolved = std::process::Command::new("ssh")
        .arg("-G")
        .arg("-p")
        .arg(target.port.to_string())
        .arg("--")
        .arg(&target.address)
        .stdin(StdStdio::null())
        .output();
    if let Some(out) = resolved.ok().filter(|o| o.status.success()) {
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        };
        let name = value("hostkeyalias ").or_else(|| value("hostname "));
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            let name = if target.port == 22 {
                name
            } else {
                format!("[{name}]:{}", target.port)
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Parses `ssh-keygen -l -F` output: `host TYPE SHA256:...` lines after `# Host` comments.
pub(crate) fn parse_keygen_list(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let _host = words.next()?;
            let kind = words.next()?;
            let fp = words.next()?;
            fp.starts_with("SHA256:")
                .then(|| (kind.to_string(), fp.to_string()))
        })
        .collect()
}

/// Removes every key pinned for `target` from `ssh_dir/known_hosts` (used when a node
/// is destroyed, or deliberately re-pinned). Missing file or entry is fine.
pub fn forget_host_key(ssh_dir: &Path, target: &Target) -> Result<()> {
    let known_hosts = known_hosts_path(ssh_dir);
    if !known_hosts.exists() {
        return Ok(());
    }
    for name in key_names(target) {
        let out = keygen(&["-R", &name], &known_hosts)?;
        let _ = fs::remove_file(known_hosts.with_file_name("known_hosts.old"));
        if !out.status.success() {
            return Err(Error::Failed {
                message: format!(
                    "could not remove the key of `{name}` from `{}`: {}",
                    known_hosts.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                hint: None,
            });
        }
    }
    Ok(())
}

/// Turns a failed master start into an error that says why, from what ssh printed.
fn connect_error(target: &Target, known_hosts: &Path, err: &openssh::Error) -> Error {
    let text = match err {
        openssh::Error::Connect(io) | openssh::Error::Master(io) => io.to_string(),
        other => chain(other),
    };
    let where_ = format!("{}:{}", target.address, target.port);
    let unreachable = |cause: String, hint: &str| Error::Unreachable {
        node: target.node.clone(),
        cause,
        hint: Some(hint.to_string()),
    };
    if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || text.contains("Host key verification failed")
    {
        let (kind, new) = presented_fingerprint(&text);
        let pinned = pinned_keys(known_hosts, target).unwrap_or_default();
        let old = pinned
            .iter()
            .find(|(k, _)| Some(k.as_str()) == kind.as_deref())
            .or(pinned.first())
            .map(|(k, fp)| format!("{fp} ({k})"))
            .unwrap_or_else(|| "unknown".into());
        let new = match (new, kind) {
            (Some(fp), Some(k)) => format!("{fp} ({k})"),
            (Some(fp), None) => fp,
            _ => "unknown (ssh did not print it)".into(),
        };
        return Error::HostKeyChanged {
            node: target.node.clone(),
            old,
            new,
            hint: format!(
                "this can mean someone is intercepting the connection; if the node was \
                 reinstalled or its key rotated on purpose, compare the new fingerprint \
                 with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the node's \
                 console, then re-pin with `skiff create-node {} --repin`",
                target.node
            ),
        };
    }
    let last = last_ssh_line(&text);
    if text.contains("Permission denied") || text.contains("Too many authentication failures") {
        return unreachable(
            format!("login as `{}` refused ({last})", target.user),
            "check that your public key is in ~/.ssh/authorized_keys of that user on the node, \
             that your agent holds the key (`ssh-add -l`), or pass `--identity FILE`",
        );
    }
    if text.contains("Connection refused") {
        return unreachable(
            format!("connection to {where_} refused"),
            "check the port and that sshd runs on the node",
        );
    }
    if text.contains("No route to host") || text.contains("Network is unreachable") {
        return unreachable(
            format!("no route to {where_}"),
            "check the address and that the node is up",
        );
    }
    if text.contains("timed out") {
        return unreachable(
            format!(
                "connecting to {where_} timed out after {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
            "check the address, that the node is up, and firewalls on the way",
        );
    }
    if text.contains("Could not resolve hostname") {
        return unreachable(
            format!("cannot resolve the host name `{}`", target.address),
            "check the spelling, or use the IP address",
        );
    }
    if text.contains("Connection closed") || text.contains("kex_exchange_identification") {
        return unreachable(
            format!("{where_} closed the connection during the handshake ({last})"),
            "check that sshd on the node accepts connections from here (MaxStartups, fail2ban)",
        );
    }
    unreachable(
        if last.is_empty() {
            chain(err)
        } else {
            format!("ssh failed: {last}")
        },
        "try `ssh -v` with the same user, port and key to see more",
    )
}

/// The last line ssh printed that is not a notice about adding a host key.
fn last_ssh_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .unwrap_or("")
        .trim_start_matches("ssh: ")
        .to_string()
}

/// The key type and fingerprint ssh says the host presented, from its warning:
/// "The fingerprint for the ED25519 key sent by the remote host is\nSHA256:...".
fn presented_fingerprint(text: &str) -> (Option<String>, Option<String>) {
    let kind = text
        .split("The fingerprint for the ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string);
    let fp = text
        .split("sent by the remote host is")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|fp| fp.trim_end_matches('.').to_string())
        .filter(|fp| fp.starts_with("SHA256:"));
    (kind, fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelude_sets_quoted_variables_after_the_shebang() {
        let script = "#!/bin/sh\necho \"$x\"\n";
        let out = with_prelude(script, &[("x", "a'b $(rm -rf /)\nline2"), ("y", "")]);
        assert!(out.starts_with("#!/bin/sh\nx="), "{out}");
        let run = std::process::Command::new("sh")
            .args(["-c", &out])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&run.stdout),
            "a'b $(rm -rf /)\nline2\n"
        );
        assert_eq!(with_prelude("echo", &[("z", "1")]), "z=1\necho");
    }

    #[test]
    fn control_dir_is_short_private_and_per_state() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let da = control_dir(a.path()).unwrap();
        let db = control_dir(b.path()).unwrap();
        assert_ne!(da, db);
        assert!(da.as_os_str().len() <= MAX_CONTROL_DIR_LEN, "{da:?}");
        let mode = fs::metadata(&da).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(control_dir(a.path()).unwrap(), da);
        // socket path ssh will use: DIR/.ssh-connectionXXXXXX/master.XXXXXXXXXXXXXXXXX
        assert!(da.as_os_str().len() + "/.ssh-connectionXXXXXX/master".len() + 17 < 108);
        let _ = fs::remove_dir(&da);
        let _ = fs::remove_dir(&db);
    }

    #[test]
    fn host_key_warning_is_parsed() {
        let text = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
            @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n\
            IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n\
            The fingerprint for the ED25519 key sent by the remote host is\r\n\
            SHA256:Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE.\r\n\
            Host key verification failed.";
        let (kind, fp) = presented_fingerprint(text);
        assert_eq!(kind.as_deref(), Some("ED25519"));
        assert_eq!(
            fp.as_deref(),
            Some("SHA256:Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE")
        );
    }

    #[test]
    fn keygen_list_is_parsed() {
        let text = "# Host 10.9.9.9 found: line 1 \n10.9.9.9 ED25519 SHA256:abc\n";
        assert_eq!(
            parse_keygen_list(text),
            vec![("ED25519".to_string(), "SHA256:abc".to_string())]
        );
    }

    #[test]
    fn ssh_config_paths_survive_the_config_parser() {
        assert_eq!(ssh_config_path(Path::new("/a/b")), "/a/b");
        assert_eq!(ssh_config_path(Path::new("/a b/%d")), "\"/a b/%%d\"");
    }

    fn target() -> Target {
        Target {
            node: "web1".into(),
            address: "10.250.0.9".into(),
            user: "root".into(),
            port: 22,
            identity: None,
        }
    }

    #[test]
    fn connect_errors_name_the_cause() {
        let kh = Path::new("/nonexistent/known_hosts");
        let cases = [
            (
                "root@10.250.0.9: Permission denied (publickey).",
                "login as `root` refused",
            ),
            (
                "connect to host 10.250.0.9 port 22: Connection refused",
                "refused",
            ),
            (
                "connect to host 10.250.0.9 port 22: No route to host",
                "no route",
            ),
            (
                "connect to host 10.250.0.9 port 22: Connection timed out",
                "timed out",
            ),
        ];
        for (stderr, want) in cases {
            let err = openssh::Error::Connect(io::Error::other(stderr));
            let msg = connect_error(&target(), kh, &err).to_string();
            assert!(msg.contains(want), "{msg}");
            assert!(msg.contains("web1"), "{msg}");
        }
        let err = openssh::Error::Connect(io::Error::other(
            "The fingerprint for the ED25519 key sent by the remote host is\nSHA256:new.\nHost key verification failed.",
        ));
        match connect_error(&target(), kh, &err) {
            Error::HostKeyChanged { new, hint, .. } => {
                assert_eq!(new, "SHA256:new (ED25519)");
                assert!(hint.contains("--repin"));
            }
            other => panic!("{other:?}"),
        }
    }
}
