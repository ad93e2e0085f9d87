//! `skiff serve`: runs the app locally (see [`crate::dev_server`]) and renders its
//! events: status lines and the access log on stderr, or JSON Lines on stdout with
//! `--json`. Ctrl-C (or SIGTERM) stops the app's process and exits 130, as an
//! interrupted skiff does (README, "Exit codes").

use std::sync::Arc;

use crate::cli::ServeArgs;
use crate::dev_server::{self, Event, EventSink, Options};
use crate::error::{Error, Result};
use crate::printer::Printer;

/// Serves the app until Ctrl-C.
pub fn run(args: &ServeArgs, printer: &Printer) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("could not start the async runtime: {e}")))?;
    // One thread on purpose: children are spawned from the thread that lives as long
    // as serve, so their parent-death signal only fires when skiff itself is gone.
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        let options = Options {
            dir: args.dir.clone(),
            host: args.listen.clone(),
            port: args.port,
            reload: !args.no_reload,
        };
        dev_server::serve(options, sink(printer), shutdown).await?;
        if !printer.json() {
            printer.status("Stopped", "the app and every process it started");
        }
        Ok(())
    })?;
    // Only a signal ends serve without an error: exit as interrupted, with no error
    // line (stopping serve is how it is used, not a failure).
    let _ = crate::printer::finish_stdout();
    std::process::exit(crate::error::EXIT_INTERRUPTED)
}

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed now, so a
/// Ctrl-C during startup is not lost.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let install =
        |kind| signal(kind).map_err(|e| Error::failed(format!("could not handle signals: {e}")));
    let mut interrupt = install(SignalKind::interrupt())?;
    let mut terminate = install(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

/// Renders each event through the printer.
fn sink(printer: &Printer) -> EventSink {
    let printer = printer.clone();
    Arc::new(move |event: Event| {
        if printer.json() {
            if let Ok(value) = serde_json::to_value(&event) {
                printer.json_value("serve", &value);
            }
            return;
        }
        match event {
            Event::Listening {
                url,
                app,
                runtime,
                reload,
            } => {
                printer.status(
                    "Serving",
                    format!("{app} ({runtime}) at {url} (Ctrl-C stops)"),
                );
                if !reload {
                    printer.status("Note", "reload is off: restart serve after editing code");
                }
            }
            Event::Started { pid, command, .. } => {
                printer.status("Starting", format!("{command} (pid {pid})"));
            }
            Event::Ready { millis, .. } => {
                printer.detail(format!("the app answers ({millis} ms after start)"));
            }
            Event::Output { line, .. } => printer.log(line),
            Event::Reloading { path } => {
                printer.status("Reloading", format!("{path} changed"));
            }
            // The problem that follows says it, with the hint.
            Event::Exited { pid, status } => {
                printer.detail(format!("process {pid} exited with {status}"));
            }
            Event::Stopped { pid } => printer.detail(format!("stopped process {pid}")),
            Event::Ignored { message, .. } => printer.warn(message),
            Event::Problem { message, hint } => match hint {
                Some(hint) => printer.warn(format!("{message}\n  hint: {hint}")),
                None => printer.warn(message),
            },
            Event::Access {
                method,
                path,
                status,
                millis,
                source,
            } => {
                printer.status(&method, format!("{path} {status} {millis:.1} ms {source}"));
            }
        }
    })
}
