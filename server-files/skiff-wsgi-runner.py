#!/usr/bin/env python3
"""skiff's development WSGI runner: serves one WSGI app on loopback for `skiff serve`.

`skiff serve` embeds this file, writes it to a temporary folder and starts it with the
app's own interpreter (its venv's python when there is one), so it uses only the
standard library and runs on any Python 3.8 or newer:

    python skiff-wsgi-runner.py --app-dir DIR --wsgi module:callable --port PORT

The runner imports the app before it listens, so "the port answers" means "the app is
loaded". When the import fails, the traceback goes to stderr (skiff shows it in the
terminal) and the runner still listens, answering every request with an HTTP 500 page
that shows the same traceback, until skiff restarts it after the next file change.

Requests are handled on threads, like mod_wsgi's daemon threads. The runner logs no
requests: skiff writes the access log. The app sees the host the browser asked for as
SERVER_NAME/SERVER_PORT (wsgiref would say the machine's name), as on a node.
"""

import argparse
import html
import importlib
import os
import signal
import socketserver
import sys
import traceback
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer


class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    """A WSGI server that answers each request on its own thread."""

    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(WSGIRequestHandler):
    """The stdlib handler without its access log (skiff writes one)."""

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


def error_app(title, detail):
    """A WSGI app that answers every request with HTTP 500 and `detail` on a page."""
    page = (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>"
        "<style>body{{font-family:sans-serif;margin:2em}}"
        "pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head>\n"
        "<body><h1>{title}</h1>\n<p>skiff serve restarts the app when you save a file.</p>\n"
        "<pre>{detail}</pre></body></html>\n"
    ).format(title=html.escape(title), detail=html.escape(detail))
    body = page.encode("utf-8")

    def app(environ, start_response):
        start_response(
            "500 Internal Server Error",
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    return app


def as_requested(app):
    """Wraps `app` so that SERVER_NAME and SERVER_PORT name the host the browser asked for
    and wsgi.url_scheme its scheme: serve's proxy (the only client of this loopback
    port) always sets Host, X-Forwarded-Host and X-Forwarded-Proto."""

    def wrapped(environ, start_response):
        proto = environ.get("HTTP_X_FORWARDED_PROTO", "")
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
        host = environ.get("HTTP_X_FORWARDED_HOST") or environ.get("HTTP_HOST") or ""
        name, colon, port = host.rpartition(":")
        if not (colon and port.isdigit()):
            name, port = host, ("443" if environ["wsgi.url_scheme"] == "https" else "80")
        if name:
            environ["SERVER_NAME"], environ["SERVER_PORT"] = name, port
        return app(environ, start_response)

    return wrapped


def load_app(spec):
    """Imports `module:callable` and returns the callable."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    try:
        app = getattr(module, attr)
    except AttributeError:
        raise LookupError(
            "module `{}` ({}) has no `{}`; app.toml says [python] wsgi = \"{}\"".format(
                module_name, getattr(module, "__file__", "?"), attr, spec
            )
        ) from None
    if not callable(app):
        raise TypeError(
            "`{}` in module `{}` is a {}, not a WSGI callable".format(
                attr, module_name, type(app).__name__
            )
        )
    return app


def app_traceback():
    """The current exception's traceback without the runner's and importlib's frames."""
    exc_type, exc, tb = sys.exc_info()
    here = os.path.abspath(__file__)
    frames = [
        f
        for f in traceback.extract_tb(tb)
        if os.path.abspath(f.filename) != here
        and not f.filename.startswith("<frozen importlib")
        and not f.filename.endswith(os.path.join("importlib", "__init__.py"))
    ]
    return (
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_list(frames))
        + "".join(traceback.format_exception_only(exc_type, exc))
    )


def main():
    parser = argparse.ArgumentParser(description="skiff's development WSGI runner")
    parser.add_argument("--app-dir", required=True)
    parser.add_argument("--wsgi", required=True, help="module:callable")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    # skiff stops the runner with SIGTERM: end at once and quietly, even in the middle
    # of importing the app (SystemExit there would look like an import failure).
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))

    app_dir = os.path.abspath(args.app_dir)
    os.chdir(app_dir)
    sys.path.insert(0, app_dir)
    sys.argv = [args.wsgi]

    try:
        app = load_app(args.wsgi)
    except KeyboardInterrupt:
        return 0
    except BaseException:  # noqa: BLE001 - any failure must become the error page
        detail = app_traceback()
        sys.stderr.write(
            "skiff-wsgi-runner: could not load `{}` from {}\n{}".format(
                args.wsgi, app_dir, detail
            )
        )
        sys.stderr.flush()
        app = error_app("The app failed to load", detail)

    server = ThreadingServer((args.host, args.port), QuietHandler)
    server.set_app(as_requested(app))
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
