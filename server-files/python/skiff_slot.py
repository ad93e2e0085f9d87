"""skiff's loader for one mod_wsgi daemon slot (installed by `skiff setup-node`).

setup-node declares a fixed pool of mod_wsgi daemon process groups (py01, py02, ...),
each with a vhost `pyNN.skiff` whose WSGI script is /srv/skiff/slots/python/pyNN/slot.wsgi.
That script calls `load(slot_dir)` when the daemon process starts (preloaded), so what a
slot runs is decided by files the deploy user owns, never by Apache's config:

  slot_dir/slot.json   {"release": "/srv/skiff/apps/APP/releases/N",   (required)
                        "wsgi": "module:callable",                     (default app:application)
                        "venv": "/srv/skiff/apps/APP/venvs/HASH",      (optional)
                        "env": {"NAME": "value", ...},                 (optional)
                        "env_file": "/path/to/KEY=VALUE file"}         (optional)

No slot.json: the slot is idle and answers 503 with skiff's "not running" page.

The app sees every request as the client made it (`public`): Host, SERVER_NAME and
SERVER_PORT name the host the client asked for (skiff's own warming and health-check
requests: `N.HOST`), never the backend name Apache chose the vhost by.

A process loads its app once: at start when slot.json exists (preload: a live slot that
restarts is ready before its first request), else lazily at its first request after
slot.json appears. So a *fresh* slot (restarted with no slot.json, as `skiff update`
leaves every slot it frees) takes a new release without a restart: write slot.json and
warm it. A process that already runs another release keeps answering with it (its
X-Skiff-Release says so), and `skiff update` then restarts the slot's processes
(`skiff-node wsgi-restart pyNN`); nothing else on the node restarts. Apache respawns a
daemon process only on its once-a-second maintenance tick, so skipping the restart saves
up to a second per deploy.
"""

import glob
import importlib
import json
import os
import re
import sys
import threading

NOT_RUNNING = "/usr/local/share/skiff/www/not-running.html"


def _static(status, body, content_type="text/html; charset=utf-8"):
    def application(environ, start_response):
        start_response(
            status,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    return application


def _idle():
    try:
        with open(NOT_RUNNING, "rb") as f:
            body = f.read()
    except OSError:
        body = b"skiff: this version is kept on the server but not running\n"
    return _static("503 Service Unavailable", body)


def _read_env_file(path):
    # KEY=VALUE lines, values escaped (src/deploy/env_file.rs): \\ \n \r
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            env[key.strip()] = re.sub(
                r"\\([\\nr])", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), "\\"), value)
    return env


def _add_venv(venv):
    # The venv is built from the same system python3 that mod_wsgi embeds, so its
    # site-packages can be added to this interpreter (python-home cannot change per slot).
    for sp in sorted(glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))):
        import site

        site.addsitedir(sp)
        # addsitedir appends; the app's own packages must win over system ones
        sys.path.remove(sp)
        sys.path.insert(0, sp)


def load(slot_dir):
    """Returns the WSGI application of this slot process (see the module docs)."""
    return _Slot(slot_dir)


def _read_slot(slot_dir):
    try:
        with open(os.path.join(slot_dir, "slot.json"), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _load_app(cfg):
    release = os.path.realpath(cfg["release"])
    if cfg.get("venv"):
        _add_venv(cfg["venv"])
    if cfg.get("env_file") and os.path.exists(cfg["env_file"]):
        os.environ.update(_read_env_file(cfg["env_file"]))
    os.environ.update({str(k): str(v) for k, v in (cfg.get("env") or {}).items()})
    os.chdir(release)
    sys.path.insert(0, release)
    module, _, attr = (cfg.get("wsgi") or "app:application").partition(":")
    app = getattr(importlib.import_module(module), attr or "application")
    # the deploy's token (release N and a nonce) when there is one: a process loaded by
    # an earlier, interrupted deploy of the same N never passes for this one
    return _marked(app, str(cfg.get("token") or os.path.basename(release)))


class _Slot:
    """One daemon process's view of its slot: idle until slot.json names a release,
    then that release for the rest of the process's life."""

    def __init__(self, slot_dir):
        self.slot_dir = slot_dir
        self.app = None
        self.lock = threading.Lock()
        self.idle = _idle()
        cfg = _read_slot(slot_dir)
        if cfg is not None:
            self.app = _load_app(cfg)

    def __call__(self, environ, start_response):
        public(environ)
        if self.app is None:
            with self.lock:
                if self.app is None:
                    cfg = _read_slot(self.slot_dir)
                    if cfg is None:
                        return self.idle(environ, start_response)
                    self.app = _load_app(cfg)
        return self.app(environ, start_response)


def public(environ):
    """Makes the WSGI environ say what the client asked for: SERVER_NAME and SERVER_PORT
    from X-Forwarded-Host, wsgi.url_scheme (and HTTPS) from X-Forwarded-Proto.

    Apache chose this slot's vhost by the backend name (`N.APP.pyNN.skiff`), so its
    SERVER_NAME is that name; it restores Host itself. The forwarding headers are trusted
    because Apache listens on 127.0.0.1 only and NGINX (or skiff's warming request) sets
    both on every request, whatever the client sent.
    """
    proto = environ.get("HTTP_X_FORWARDED_PROTO", "").strip().lower()
    if proto in ("http", "https"):
        environ["wsgi.url_scheme"] = proto
        environ["REQUEST_SCHEME"] = proto
        if proto == "https":
            environ["HTTPS"] = "on"
        else:
            environ.pop("HTTPS", None)
    host = (environ.get("HTTP_X_FORWARDED_HOST") or environ.get("HTTP_HOST") or "").split(",")[0].strip()
    if host:
        name, port = host, ""
        if host.startswith("["):
            end = host.find("]")
            if end > 0 and host[end + 1 : end + 2] == ":":
                name, port = host[: end + 1], host[end + 2 :]
        elif ":" in host:
            name, _, port = host.partition(":")
        environ["SERVER_NAME"] = name
        if port.isdigit():
            environ["SERVER_PORT"] = port
        else:
            environ["SERVER_PORT"] = "443" if environ.get("wsgi.url_scheme") == "https" else "80"


def _marked(app, release):
    """Adds X-Skiff-Release and X-Skiff-Pid to every answer, so `skiff update` can warm
    the slot until every process answers the new release (NGINX hides both)."""
    pid = str(os.getpid())

    def application(environ, start_response):
        def start(status, headers, exc_info=None):
            headers = list(headers) + [("X-Skiff-Release", release), ("X-Skiff-Pid", pid)]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return app(environ, start)

    return application
