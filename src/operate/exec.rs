//! `skiff run` and `skiff shell`: a command (or an interactive shell) in a release on one
//! node, as the app's web processes run (as the app's user, in the release folder, with the
//! release's environment). The node's `skiff-run --exec APP N CMD...` reads that
//! environment itself (meta/N.json, env/N.env): no value is ever on a command line.

use std::io::IsTerminal;

use super::app_node;
use crate::cluster::StateFile;
use crate::deploy::{contract, remote};
use crate::error::{Error, Result};
use crate::transport::Session;

/// Which app, node and release a command runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// App name.
    pub app: String,
    /// Node name.
    pub node: String,
    /// Release number.
    pub release: u32,
}

/// What `skiff shell` starts: bash when the node has it, else sh (skiff's own words,
/// quoted like any argv).
const SHELL: &str = "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi";

/// `skiff run HOST [--node N] [--version V] -- ARGV`: runs `argv` on the node with skiff's
/// stdin, stdout and stderr; returns its exit status (`None`: killed by a signal).
pub async fn run(
    state: &StateFile,
    host: &str,
    node: Option<&str>,
    version: Option<u32>,
    argv: &[String],
) -> Result<Option<i32>> {
    if argv.is_empty() {
        return Err(Error::usage(
            "no command to run",
            format!("name one after `--`: `skiff run {host} -- python manage.py shell`"),
        ));
    }
    let (session, place) = locate(state, host, node, version).await?;
    let id = run_id();
    let line = exec_argv(&place, &id, argv.iter().map(String::as_str));
    let argv: Vec<&str> = line.iter().map(String::as_str).collect();
    let argv = session.as_root(&argv);
    let status = forwarding_signals(&session, &id, session.run_inherited(&argv)).await;
    let _ = session.close().await;
    status
}

/// How long a command has after Ctrl-C (or SIGTERM) before it is killed; a second
/// Ctrl-C kills it at once.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for `running` (the remote command) while passing skiff's Ctrl-C and SIGTERM on
/// to it: without a terminal, a closed SSH channel never stops a remote command, so skiff
/// signals its process group through `skiff-run --signal ID`, then kills it after
/// [`GRACE`] or a second Ctrl-C, and still reports its exit status.
async fn forwarding_signals<F>(session: &Session, id: &str, running: F) -> Result<Option<i32>>
where
    F: std::future::Future<Output = Result<Option<i32>>>,
{
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return running.await;
    };
    tokio::pin!(running);
    let sig = tokio::select! {
        status = &mut running => return status,
        _ = int.recv() => "INT",
        _ = term.recv() => "TERM",
    };
    let send = |sig: &'static str| async move {
        let argv = session.as_root(&[contract::RUNNER, "--signal", id, sig]);
        let _ = session.run(&argv).await;
    };
    send(sig).await;
    tokio::select! {
        status = &mut running => return status,
        _ = int.recv() => {}
        _ = tokio::time::sleep(GRACE) => {}
    }
    send("KILL").await;
    running.await
}

/// A fresh id for one `skiff run` (16 hex digits), by which the node finds it again.
fn run_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        bytes = (t ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `skiff shell HOST [--node N]`: an interactive shell in the current release, with a
/// TTY; refuses without a local terminal (`skiff run` is the way for scripts).
pub async fn shell(state: &StateFile, host: &str, node: Option<&str>) -> Result<Option<i32>> {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(Error::usage(
            "`skiff shell` needs a terminal (stdin and stdout), and this has none",
            format!("run a command without one: `skiff run {host} -- CMD ARGS`"),
        ));
    }
    let (session, place) = locate(state, host, node, None).await?;
    let line = exec_argv(&place, &run_id(), ["sh", "-c", SHELL]);
    let argv: Vec<&str> = line.iter().map(String::as_str).collect();
    let argv = session.as_root(&argv);
    let status = tokio::task::block_in_place(|| session.run_tty(&argv));
    let _ = session.close().await;
    status
}

/// `skiff-run --exec APP N ID ARGV...`: the node-side argv (the session runs it as root:
/// `sudo -n` when it logged in as the deploy user, see [`Session::as_root`]).
fn exec_argv<'a>(place: &Place, id: &str, argv: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out = vec![
        contract::RUNNER.to_string(),
        "--exec".into(),
        place.app.clone(),
        place.release.to_string(),
        id.to_string(),
    ];
    out.extend(argv.into_iter().map(str::to_string));
    out
}

/// Connects to the node and picks the release: `version` when it is kept there, else
/// the current one; checks that the node's skiff-run knows `--exec`.
async fn locate(
    state: &StateFile,
    host: &str,
    node: Option<&str>,
    version: Option<u32>,
) -> Result<(Session, Place)> {
    let (app, node, session) = app_node(state, host, node).await?;
    match pick(&session, &app, &node, host, version).await {
        Ok(release) => Ok((session, Place { app, node, release })),
        Err(e) => {
            let _ = session.close().await;
            Err(e)
        }
    }
}

async fn pick(
    session: &Session,
    app: &str,
    node: &str,
    host: &str,
    version: Option<u32>,
) -> Result<u32> {
    let peeked = remote::peek(session, None).await?;
    let entry = peeked.state.apps.get(app).ok_or_else(|| Error::Failed {
        message: format!("app `{app}` is not on node `{node}`"),
        hint: Some("the cluster state is out of date; deploy again with `skiff update`".into()),
    })?;
    let kept: Vec<u32> = entry.releases.iter().map(|r| r.number).collect();
    let release = match version {
        Some(v) if kept.contains(&v) => v,
        Some(v) => {
            return Err(Error::usage(
                format!("version {v} of `{host}` is not kept on node `{node}`"),
                format!(
                    "kept versions: {} (see `skiff versions {host}`)",
                    kept.iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        None => entry.current.ok_or_else(|| Error::Failed {
            message: format!("`{host}` has no current version on node `{node}`"),
            hint: Some("deploy it with `skiff update`, or pass `--version N`".into()),
        })?,
    };
    let probe = session
        .run(&["grep", "-q", "--", "--exec APP N ID", contract::RUNNER])
        .await?;
    if !probe.success() {
        return Err(Error::Failed {
            message: format!("node `{node}` has an older skiff-run that cannot run commands"),
            hint: Some(format!("re-run `skiff setup-node {node}`")),
        });
    }
    Ok(release)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_argv_keeps_every_word_apart() {
        let place = Place {
            app: "blog".into(),
            node: "web1".into(),
            release: 7,
        };
        let argv = exec_argv(
            &place,
            "00ff00ff00ff00ff",
            ["sh", "-c", "echo $HOME; exit 3"],
        );
        assert_eq!(
            argv,
            [
                contract::RUNNER,
                "--exec",
                "blog",
                "7",
                "00ff00ff00ff00ff",
                "sh",
                "-c",
                "echo $HOME; exit 3"
            ]
        );
        let line =
            crate::transport::command_line(&argv.iter().map(String::as_str).collect::<Vec<_>>());
        let tail = format!("sh -c {}", crate::transport::quote("echo $HOME; exit 3"));
        assert!(line.ends_with(&tail), "{line}");
    }

    #[test]
    fn run_ids_are_what_the_node_accepts_and_differ() {
        let (a, b) = (run_id(), run_id());
        assert_eq!(a.len(), 16);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
