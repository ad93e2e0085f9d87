//! The supervisor of the runtime process: starts it on a free loopback port, tells the
//! front when it answers, restarts it when files change, notices when it dies, and
//! stops it (and everything it started) at the end.
//!
//! Each process runs in its own process group, so stopping it is one `killpg`: the
//! runtime's quiet stop signal first ([`runtime::stop_signal`]), SIGKILL after a grace
//! period, and a last SIGKILL to the group for anything the process left behind. On Linux the process also gets SIGKILL if skiff
//! itself dies (`PR_SET_PDEATHSIG`), so even `kill -9 skiff` leaves no server behind.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::app_config::{AppConfig, Runtime};
use crate::error::{Error, Result};

use super::runtime::{self, CHILD_HOST, Plan};
use super::watcher::Change;
use super::{Event, EventSink, environment};

/// How long a process may take to answer on its port after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the port is tried while the process starts.
const START_POLL: Duration = Duration::from_millis(20);
/// Grace between the stop signal and SIGKILL when restarting after an edit.
const RESTART_GRACE: Duration = Duration::from_millis(1500);
/// Grace between the stop signal and SIGKILL when serve stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long to wait for a dead process's last output lines.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);
/// Output lines kept for the error page.
const TAIL_LINES: usize = 60;

/// What the front can do with a request that `static/` does not answer.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A static app: nothing else answers.
    Static,
    /// The process is starting (or restarting): wait.
    Starting,
    /// The process answers on this loopback port.
    Ready {
        /// Its port.
        port: u16,
    },
    /// The app cannot answer until the next change: show why.
    Down {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
        /// The process's last output lines (a traceback, say).
        output: String,
    },
}

/// What the supervisor is told.
#[derive(Debug)]
pub enum Msg {
    /// Files changed (from the watcher).
    Changed(Vec<(PathBuf, Change)>),
    /// Stop the process and end.
    Shutdown,
}

/// The process currently running.
struct Running {
    child: Child,
    pid: u32,
    command: String,
    runtime: Runtime,
    tail: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// How waiting for a starting process ended.
enum Started {
    Ready,
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Interrupted(Msg),
}

/// Owns the runtime process; see the module docs.
pub struct Supervisor {
    dir: PathBuf,
    runner: PathBuf,
    reload: bool,
    events: EventSink,
    backend: watch::Sender<Backend>,
    rx: mpsc::UnboundedReceiver<Msg>,
    child: Option<Running>,
    runtime: Runtime,
}

impl Supervisor {
    /// A supervisor for the app in `dir` (canonical), with the WSGI runner at `runner`.
    pub fn new(
        dir: &Path,
        runner: &Path,
        reload: bool,
        events: EventSink,
        backend: watch::Sender<Backend>,
        rx: mpsc::UnboundedReceiver<Msg>,
        runtime: Runtime,
    ) -> Self {
        Supervisor {
            dir: dir.to_path_buf(),
            runner: runner.to_path_buf(),
            reload,
            events,
            backend,
            rx,
            child: None,
            runtime,
        }
    }

    /// Runs until told to shut down, then stops the process. `first` is the plan that
    /// serve already checked at startup.
    pub async fn run(mut self, first: Option<Plan>) {
        let mut next = self.start(Ok(first)).await;
        loop {
            let msg = match next.take() {
                Some(msg) => msg,
                None => tokio::select! {
                    msg = self.rx.recv() => msg.unwrap_or(Msg::Shutdown),
                    status = wait(&mut self.child) => {
                        self.exited(status, None).await;
                        continue;
                    }
                },
            };
            match msg {
                Msg::Shutdown => break,
                Msg::Changed(mut changes) => {
                    // Take every batch already queued: one restart for all of them.
                    let mut shutdown = false;
                    while let Ok(more) = self.rx.try_recv() {
                        match more {
                            Msg::Changed(c) => changes.extend(c),
                            Msg::Shutdown => shutdown = true,
                        }
                    }
                    if shutdown {
                        break;
                    }
                    if let Some(path) = self.restart_for(&changes) {
                        let shown = path
                            .strip_prefix(&self.dir)
                            .unwrap_or(&path)
                            .display()
                            .to_string();
                        (self.events)(Event::Reloading { path: shown });
                        // Requests wait for the new process instead of hitting the old.
                        self.backend.send_replace(Backend::Starting);
                        self.stop(RESTART_GRACE).await;
                        let plan = self.fresh_plan();
                        next = self.start(plan).await;
                    }
                }
            }
        }
        self.stop(SHUTDOWN_GRACE).await;
    }

    /// The changed path that calls for a restart, if any: app.toml or .env always
    /// (the environment may have changed); code for Python and Ruby (PHP reads its
    /// files on every request); anything when the app is down (a fix, perhaps).
    /// The path shown is one that still exists when there is one (an editor's temp
    /// file renamed over the real one is not worth naming).
    fn restart_for(&self, changes: &[(PathBuf, Change)]) -> Option<PathBuf> {
        let down = matches!(*self.backend.borrow(), Backend::Down { .. });
        let code_restarts = matches!(self.runtime, Runtime::Python | Runtime::Ruby);
        let relevant: Vec<&PathBuf> = changes
            .iter()
            .filter(|(_, c)| *c == Change::Config || down || code_restarts)
            .map(|(p, _)| p)
            .collect();
        relevant
            .iter()
            .find(|p| p.exists())
            .or(relevant.first())
            .map(|p| p.to_path_buf())
    }

    /// Reads app.toml and .env again and plans the process on a new port.
    fn fresh_plan(&mut self) -> Result<Option<Plan>> {
        let config = AppConfig::load(&self.dir)?;
        let dotenv = environment::load_dotenv(&self.dir)?;
        self.runtime = config.runtime;
        let port = free_port()?;
        runtime::plan(&self.dir, &config, &dotenv, &self.runner, port)
    }

    /// Starts the planned process and waits until it answers, dies or times out.
    /// Returns a message that interrupted the wait, for the main loop.
    async fn start(&mut self, plan: Result<Option<Plan>>) -> Option<Msg> {
        let plan = match plan {
            Ok(Some(plan)) => plan,
            Ok(None) => {
                self.backend.send_replace(Backend::Static);
                return None;
            }
            Err(err) => {
                self.down_with(&err, String::new());
                return None;
            }
        };
        self.backend.send_replace(Backend::Starting);
        let port = plan.port;
        let mut running = match spawn(&plan, &self.events) {
            Ok(running) => running,
            Err(err) => {
                self.down_with(&err, String::new());
                return None;
            }
        };
        (self.events)(Event::Started {
            pid: running.pid,
            port,
            command: running.command.clone(),
        });
        let began = Instant::now();
        let outcome = self.wait_ready(&mut running, port).await;
        self.child = Some(running);
        match outcome {
            Started::Ready => {
                let pid = self.child.as_ref().map(|r| r.pid).unwrap_or_default();
                (self.events)(Event::Ready {
                    pid,
                    millis: began.elapsed().as_millis() as u64,
                });
                self.backend.send_replace(Backend::Ready { port });
                None
            }
            Started::Exited(status) => {
                self.exited(status, Some(port)).await;
                None
            }
            Started::TimedOut => {
                let message = format!(
                    "`{}` did not answer on port {port} within {} s",
                    plan.display(),
                    START_TIMEOUT.as_secs()
                );
                self.stop(RESTART_GRACE).await;
                let err = Error::Failed {
                    message,
                    hint: Some("check the output above; save a file to try again".into()),
                };
                self.down_with(&err, String::new());
                None
            }
            Started::Interrupted(msg) => Some(msg),
        }
    }

    /// Polls the port until it accepts a connection. A change that calls for a restart,
    /// or shutdown, ends the wait early.
    async fn wait_ready(&mut self, running: &mut Running, port: u16) -> Started {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    None | Some(Msg::Shutdown) => return Started::Interrupted(Msg::Shutdown),
                    Some(Msg::Changed(changes)) => {
                        if changes.iter().any(|(_, c)| *c == Change::Config)
                            || matches!(self.runtime, Runtime::Python | Runtime::Ruby)
                        {
                            return Started::Interrupted(Msg::Changed(changes));
                        }
                    }
                },
                status = running.child.wait() => return Started::Exited(status),
                _ = tokio::time::sleep(START_POLL) => {
                    if tokio::net::TcpStream::connect((CHILD_HOST, port)).await.is_ok() {
                        return Started::Ready;
                    }
                    if Instant::now() >= deadline {
                        return Started::TimedOut;
                    }
                }
            }
        }
    }

    /// The process ended on its own: show why, keep its output for the error page, and
    /// wait for the next change (or the end).
    async fn exited(&mut self, status: std::io::Result<ExitStatus>, starting_on: Option<u16>) {
        let Some(running) = self.child.take() else {
            return;
        };
        kill_group(running.pid, Signal::SIGKILL);
        drain(running.readers).await;
        let status = match status {
            Ok(s) => describe_status(s),
            Err(e) => format!("an unknown status ({e})"),
        };
        (self.events)(Event::Exited {
            pid: running.pid,
            status: status.clone(),
        });
        let output = tail_text(&running.tail);
        let when = match starting_on {
            Some(port) => format!(" before it answered on port {port}"),
            None => String::new(),
        };
        let retry = if self.reload {
            "fix the problem and save a file: skiff serve starts it again"
        } else {
            "fix the problem and restart `skiff serve` (reload is off)"
        };
        let hint = runtime::diagnose(running.runtime, &output)
            .map(|h| format!("{h}; then save a file"))
            .unwrap_or_else(|| retry.to_string());
        let message = format!("`{}` exited with {status}{when}", running.command);
        (self.events)(Event::Problem {
            message: message.clone(),
            hint: Some(hint.clone()),
        });
        self.backend.send_replace(Backend::Down {
            message,
            hint: Some(hint),
            output,
        });
    }

    /// Marks the app down with `err` and says so.
    fn down_with(&mut self, err: &Error, output: String) {
        let mut message = err.to_string();
        if let Some((file, loc)) = err.location() {
            message.push_str(&format!(
                " ({}:{}:{})",
                file.display(),
                loc.line,
                loc.column
            ));
        }
        (self.events)(Event::Problem {
            message: message.clone(),
            hint: err.hint(),
        });
        self.backend.send_replace(Backend::Down {
            message,
            hint: err.hint(),
            output,
        });
    }

    /// Stops the running process and its whole group.
    async fn stop(&mut self, grace: Duration) {
        let Some(mut running) = self.child.take() else {
            return;
        };
        kill_group(running.pid, runtime::stop_signal(running.runtime));
        if tokio::time::timeout(grace, running.child.wait())
            .await
            .is_err()
        {
            kill_group(running.pid, Signal::SIGKILL);
            let _ = tokio::time::timeout(grace, running.child.wait()).await;
        }
        // Anything the process started and left in its group.
        kill_group(running.pid, Signal::SIGKILL);
        drain(running.readers).await;
        (self.events)(Event::Stopped { pid: running.pid });
    }
}

/// Waits for the running process to exit; never returns when there is none.
async fn wait(child: &mut Option<Running>) -> std::io::Result<ExitStatus> {
    match child {
        Some(running) => running.child.wait().await,
        None => std::future::pending().await,
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind((CHILD_HOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::failed(format!("could not find a free port on {CHILD_HOST}: {e}")))
}

/// Starts the process in its own group, with its output piped to the event sink.
fn spawn(plan: &Plan, events: &EventSink) -> Result<Running> {
    let mut cmd = Command::new(&plan.program);
    cmd.args(&plan.args)
        .current_dir(&plan.cwd)
        .envs(&plan.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            Ok(())
        });
    }
    let command = plan.display();
    let mut child = cmd.spawn().map_err(|e| Error::Failed {
        message: format!("could not start `{command}`: {e}"),
        hint: None,
    })?;
    let pid = child.id().unwrap_or_default();
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(read_lines(
            out,
            pid,
            plan.runtime,
            tail.clone(),
            events.clone(),
        ));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(read_lines(
            err,
            pid,
            plan.runtime,
            tail.clone(),
            events.clone(),
        ));
    }
    Ok(Running {
        child,
        pid,
        command,
        runtime: plan.runtime,
        tail,
        readers,
    })
}

/// Forwards each output line (except the runtime's own request log) to the event sink
/// and keeps the last lines for the error page.
fn read_lines<R: AsyncRead + Unpin + Send + 'static>(
    stream: R,
    pid: u32,
    runtime: Runtime,
    tail: Arc<Mutex<VecDeque<String>>>,
    events: EventSink,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            if runtime::is_noise(runtime, &line) {
                continue;
            }
            if let Ok(mut tail) = tail.lock() {
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
            }
            events(Event::Output { pid, line });
        }
    })
}

/// Waits (briefly) for the output readers to reach the end of the pipes.
async fn drain(readers: Vec<JoinHandle<()>>) {
    let all = async {
        for reader in readers {
            let _ = reader.await;
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, all).await;
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    tail.lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// Sends `signal` to the process group led by `pid`; a group already gone is fine.
fn kill_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("status {code}")
    } else if let Some(signal) = status.signal() {
        let name = Signal::try_from(signal)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| signal.to_string());
        format!("signal {name}")
    } else {
        status.to_string()
    }
}
