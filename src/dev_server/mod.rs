//! `skiff serve`: the app on the laptop, served the way a node serves it.
//!
//! A Rust front (axum on hyper) answers every request: files under `static/` first,
//! with NGINX's precedence ([`static_files`]); everything else goes through a reverse
//! proxy ([`proxy`]) to the runtime's process on a free loopback port ([`runtime`],
//! supervised by [`children`]), with the production environment ([`environment`]).
//! A watcher ([`watcher`]) restarts Python and Ruby processes when files change.
//!
//! Nothing here prints: everything worth telling (the address, each request, the
//! process's output, restarts, problems) is an [`Event`] sent to the caller's sink.

#![warn(missing_docs)]

pub mod children;
pub mod environment;
pub mod pages;
pub mod proxy;
pub mod runtime;
pub mod static_files;
pub mod watcher;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::app_config::{self, AppConfig, Runtime};
use crate::error::{Error, Result};

use children::{Backend, Msg, Supervisor};
use static_files::Lookup;

/// What `skiff serve` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The app folder.
    pub dir: PathBuf,
    /// Address to listen on.
    pub host: String,
    /// Port to listen on (0: any free port, reported in [`Event::Listening`]).
    pub port: u16,
    /// Restart the runtime when files change.
    pub reload: bool,
}

/// Who answered a request, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The front, from `static/` (or a redirect, or a refusal).
    Static,
    /// The app's process (or skiff's page saying why it cannot answer).
    App,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Static => "static",
            Source::App => "app",
        })
    }
}

/// Everything `serve` reports while it runs; `--json` prints each as one line.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The front listens.
    Listening {
        /// Where to point a browser.
        url: String,
        /// The app's name.
        app: String,
        /// Its runtime.
        runtime: Runtime,
        /// Whether edits restart the process.
        reload: bool,
    },
    /// The runtime's process was started.
    Started {
        /// Its process id (and process group id).
        pid: u32,
        /// The loopback port it was told to listen on.
        port: u16,
        /// Its command line.
        command: String,
    },
    /// The process answers on its port.
    Ready {
        /// Its process id.
        pid: u32,
        /// How long it took to answer after it was started.
        millis: u64,
    },
    /// A line the process printed (its own request log left out).
    Output {
        /// The process id.
        pid: u32,
        /// The line, without its line break.
        line: String,
    },
    /// Files changed and the process restarts.
    Reloading {
        /// The first changed file, relative to the app folder.
        path: String,
    },
    /// The process ended on its own.
    Exited {
        /// Its process id.
        pid: u32,
        /// How it ended ("status 1", "signal SIGSEGV").
        status: String,
    },
    /// skiff stopped the process (for a restart, or at the end).
    Stopped {
        /// Its process id.
        pid: u32,
    },
    /// Something in app.toml that serve does not do on a laptop (it works on a node).
    Ignored {
        /// The key, e.g. `cron`.
        key: String,
        /// What that means here.
        message: String,
    },
    /// Something keeps the app from answering until the next change (a bad app.toml
    /// after an edit, a process that died); the browser shows it too.
    Problem {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// One request was answered.
    Access {
        /// The HTTP method.
        method: String,
        /// The path and query.
        path: String,
        /// The status code.
        status: u16,
        /// Milliseconds until the response headers.
        millis: f64,
        /// Who answered.
        source: Source,
    },
}

/// Where events go: the command's printer, a test's channel.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// How long a request waits for a (re)starting process before giving up with a page.
const REQUEST_WAIT: Duration = Duration::from_secs(75);
/// How long open connections get to finish once serve stops.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Shared by every request.
struct Front {
    static_root: PathBuf,
    backend: watch::Receiver<Backend>,
    client: proxy::ProxyClient,
    events: EventSink,
}

/// Serves the app in `options.dir` until `shutdown` resolves, then stops the runtime's
/// process (and its whole process group) and returns.
///
/// Fails before serving anything for what the user must fix first: no or bad app.toml,
/// a bad .env, a runtime program that is not installed, a port that is taken.
pub async fn serve(
    options: Options,
    events: EventSink,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let dir = app_dir(&options.dir)?;
    let config = AppConfig::load(&dir)?;
    let dotenv = environment::load_dotenv(&dir)?;

    // The WSGI runner and the PHP prepend file live for the session in a folder that is
    // removed at the end.
    let session = tempfile::Builder::new()
        .prefix("skiff-serve-")
        .tempdir()
        .map_err(|source| Error::Write {
            path: std::env::temp_dir(),
            source,
        })?;
    let runner = session.path().join(runtime::WSGI_RUNNER_NAME);
    for (path, text) in [
        (runner.clone(), runtime::WSGI_RUNNER),
        (
            runner.with_file_name(runtime::PHP_PREPEND_NAME),
            runtime::PHP_PREPEND,
        ),
    ] {
        std::fs::write(&path, text).map_err(|source| Error::Write { path, source })?;
    }

    // Checks that the runtime is installed before taking the port.
    let first = runtime::plan(&dir, &config, &dotenv, &runner, children::free_port()?)?;
    let listener = bind(&options.host, options.port).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::failed(e.to_string()))?;

    let (backend_tx, backend_rx) = watch::channel(Backend::Starting);
    let (msg_tx, msg_rx) = mpsc::unbounded_channel();
    // Watch before the process starts: a failure here must leave nothing running.
    let _watch = if options.reload {
        let (change_tx, mut change_rx) = mpsc::unbounded_channel();
        let watch = watcher::start(&dir, change_tx)?;
        let msg_tx = msg_tx.clone();
        tokio::spawn(async move {
            while let Some(batch) = change_rx.recv().await {
                if msg_tx.send(Msg::Changed(batch)).is_err() {
                    break;
                }
            }
        });
        Some(watch)
    } else {
        None
    };

    let supervisor = Supervisor::new(
        &dir,
        &runner,
        options.reload,
        events.clone(),
        backend_tx,
        msg_rx,
        config.runtime,
    );
    events(Event::Listening {
        url: format!("http://{}/", display_addr(addr)),
        app: config.name.clone(),
        runtime: config.runtime,
        reload: options.reload,
    });
    // serve runs the web app only: workers and cron run on nodes, services are not built
    let mut ignored: Vec<String> = config
        .unsupported()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    if !config.processes.is_empty() {
        ignored.push("processes".into());
    }
    if !config.cron.is_empty() {
        ignored.push("cron".into());
    }
    for key in ignored {
        events(Event::Ignored {
            message: format!("`[{key}]` in app.toml is not run by skiff serve"),
            key,
        });
    }
    let supervisor = tokio::spawn(supervisor.run(first));

    let front = Arc::new(Front {
        static_root: dir.join(static_files::STATIC_DIR),
        backend: backend_rx,
        client: proxy::client(),
        events,
    });
    let router = Router::new().fallback(handle).with_state(front);
    let (close_tx, close_rx) = oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = close_rx.await;
    })
    .into_future();
    let mut server = tokio::spawn(server);

    let failure = tokio::select! {
        _ = shutdown => None,
        result = &mut server => Some(match result {
            Ok(Ok(())) => Error::failed("the HTTP server stopped unexpectedly"),
            Ok(Err(e)) => Error::failed(format!("the HTTP server failed: {e}")),
            Err(e) => Error::failed(format!("the HTTP server failed: {e}")),
        }),
    };
    // Stop taking requests, stop the process, then give open connections a moment.
    let _ = close_tx.send(());
    let _ = msg_tx.send(Msg::Shutdown);
    let _ = supervisor.await;
    let _ = tokio::time::timeout(CLOSE_GRACE, server).await;
    drop(session);
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// The app folder, canonical (the watcher compares paths under it), with an app.toml.
fn app_dir(dir: &Path) -> Result<PathBuf> {
    let shown = dir.display();
    let canonical = std::fs::canonicalize(dir).map_err(|_| {
        Error::usage(
            format!("`{shown}` is not a folder"),
            format!("create an app there with `skiff init {shown}`"),
        )
    })?;
    if !canonical.is_dir() {
        return Err(Error::usage(
            format!("`{shown}` is not a folder"),
            "give the app's folder, e.g. `skiff serve blog`",
        ));
    }
    // Only a missing file is explained here; [`AppConfig::load`] explains the rest (a
    // folder in its place, not UTF-8, bad TOML).
    if !canonical.join(app_config::FILE_NAME).exists() {
        return Err(Error::usage(
            format!("`{shown}` has no {}", app_config::FILE_NAME),
            format!("create one with `skiff init {shown}`"),
        ));
    }
    Ok(canonical)
}

/// Takes the port, explaining the usual reasons it cannot be had.
async fn bind(host: &str, port: u16) -> Result<tokio::net::TcpListener> {
    use std::io::ErrorKind;
    tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::AddrInUse => Error::Failed {
                message: format!("port {port} on {host} is already in use"),
                hint: Some(format!(
                    "stop the program that listens there, or pick another port: `skiff serve --port {}`",
                    port.wrapping_add(1).max(1024)
                )),
            },
            ErrorKind::PermissionDenied => Error::Failed {
                message: format!("not allowed to listen on port {port} of {host}"),
                hint: Some("ports below 1024 need root; use e.g. `--port 8000`".into()),
            },
            ErrorKind::AddrNotAvailable => Error::Failed {
                message: format!("`{host}` is not an address of this machine"),
                hint: Some("use `--host 127.0.0.1` (or `--host 0.0.0.0` for every address)".into()),
            },
            _ => Error::Failed {
                message: format!("could not listen on {host} port {port}: {e}"),
                hint: Some("check `--host` and `--port`".into()),
            },
        })
}

/// `127.0.0.1:8000`, or `[::1]:8000`.
fn display_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// Every request: answer it, then log it.
async fn handle(
    State(front): State<Arc<Front>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response<Body> {
    let began = Instant::now();
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let (response, source) = route(&front, peer, req).await;
    (front.events)(Event::Access {
        method,
        path,
        status: response.status().as_u16(),
        millis: (began.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
        source,
    });
    response
}

/// `static/` first, then the app.
async fn route(front: &Front, peer: SocketAddr, req: Request) -> (Response<Body>, Source) {
    let lookup = static_files::lookup(&front.static_root, req.uri().path(), req.uri().query());
    let response = match lookup {
        Lookup::File(file) => serve_file(file, req).await,
        Lookup::Redirect(location) => pages::redirect(&location),
        Lookup::Hidden => pages::page(
            StatusCode::NOT_FOUND,
            "Not found",
            "Paths starting with a dot (.env, .git, ...) are never served.",
            None,
        ),
        Lookup::BadPath => pages::page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The path climbs above the site's root or contains a NUL byte.",
            None,
        ),
        Lookup::Miss => return app(front, peer, req).await,
    };
    (response, Source::Static)
}

/// A file from `static/`, revalidated on every request (edits show at once).
async fn serve_file(file: PathBuf, req: Request) -> Response<Body> {
    let mut service = tower_http::services::ServeFile::new(&file);
    match service.try_call(req).await {
        Ok(response) => {
            let mut response = response.map(Body::new);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(e) => pages::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not read a static file",
            &format!("{}: {e}", file.display()),
            None,
        ),
    }
}

/// Hands the request to the runtime's process, or says why it cannot answer.
async fn app(front: &Front, peer: SocketAddr, req: Request) -> (Response<Body>, Source) {
    let mut backend = front.backend.clone();
    // The borrowed state must not live across an await (it holds a lock): clone it.
    let state: Option<Result<Backend, ()>> = tokio::time::timeout(
        REQUEST_WAIT,
        backend.wait_for(|b| !matches!(b, Backend::Starting)),
    )
    .await
    .ok()
    .map(|r| r.map(|s| s.clone()).map_err(|_| ()));
    let state = match state {
        Some(Ok(state)) => state,
        Some(Err(())) => {
            return (
                pages::page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Stopping",
                    "skiff serve is stopping.",
                    None,
                ),
                Source::App,
            );
        }
        None => {
            return (
                pages::page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The app is still starting",
                    &format!(
                        "It did not answer within {} s; see the terminal.",
                        REQUEST_WAIT.as_secs()
                    ),
                    None,
                ),
                Source::App,
            );
        }
    };
    match state {
        Backend::Static => (
            pages::page(
                StatusCode::NOT_FOUND,
                "Not found",
                &format!(
                    "There is no file for {} under static/, and this app's runtime is \
                     \"static\": only files under static/ are served.",
                    req.uri().path()
                ),
                None,
            ),
            Source::Static,
        ),
        // wait_for returned a state that was not starting; it cannot be starting here.
        Backend::Starting => (
            pages::page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The app is starting",
                "Try again in a moment.",
                None,
            ),
            Source::App,
        ),
        Backend::Down {
            message,
            hint,
            output,
        } => {
            let text = match hint {
                Some(hint) => format!("{message}. Hint: {hint}."),
                None => format!("{message}."),
            };
            (
                pages::page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The app is not running",
                    &text,
                    Some(&output),
                ),
                Source::App,
            )
        }
        Backend::Ready { port } => match proxy::forward(&front.client, port, peer, req).await {
            Ok(response) => (response, Source::App),
            Err(proxy::ProxyError(e)) => (
                pages::page(
                    StatusCode::BAD_GATEWAY,
                    "The app did not answer",
                    &format!("skiff could not get a response from the app on port {port}: {e}"),
                    None,
                ),
                Source::App,
            ),
        },
    }
}
