# skiff: start, reload and test NGINX and Apache on any node (POSIX sh, sourced).
# shellcheck shell=sh
#
# Used by `skiff setup-node`'s scripts and by /usr/local/share/skiff/bin/skiff-node.
# With systemd as PID 1 (/run/systemd/system exists) services go through systemctl;
# otherwise (containers, the test nodes) through `service`, `apache2ctl` and `nginx -s`,
# waiting for the pid files, because `apache2ctl graceful` right after `start` is lost
# when the pid file is not written yet. Every wait is bounded.

skiff_has_systemd() { [ -d /run/systemd/system ]; }

skiff_pidfile() {
  case $1 in
    nginx) echo /run/nginx.pid ;;
    apache2) echo /run/apache2/apache2.pid ;;
  esac
}

# skiff_running SERVICE: its pid file names a live process
skiff_running() {
  _f=$(skiff_pidfile "$1")
  [ -s "$_f" ] && kill -0 "$(cat "$_f" 2>/dev/null)" 2>/dev/null
}

# skiff_wait up|down SERVICE: at most 15 s
skiff_wait() {
  _i=0
  while [ "$_i" -lt 150 ]; do
    if [ "$1" = up ]; then skiff_running "$2" && return 0
    else skiff_running "$2" || return 0; fi
    sleep 0.1
    _i=$((_i + 1))
  done
  echo "skiff: $2 did not come $1 within 15 s (pid file $(skiff_pidfile "$2"))" >&2
  return 1
}

# skiff_test nginx|apache2: the service's own config test, output on stdout
skiff_test() {
  case $1 in
    nginx) nginx -t 2>&1 ;;
    apache2) apache2ctl configtest 2>&1 ;;
  esac
}

# Passenger's instance registry (skiff.conf): /run is emptied at boot
skiff_instreg() { if [ "$1" = apache2 ]; then mkdir -p /run/passenger-instreg; fi; }

skiff_start() {
  skiff_instreg "$1"
  skiff_running "$1" && return 0
  if skiff_has_systemd; then
    systemctl enable --quiet "$1" 2>/dev/null || true
    systemctl start "$1"
  else
    case $1 in
      nginx) if [ -x /etc/init.d/nginx ]; then service nginx start >/dev/null; else nginx; fi ;;
      apache2) apache2ctl start ;;
    esac
  fi
  skiff_wait up "$1"
}

# skiff_gone NAME: no process called NAME is left (children can outlive the pid file and
# keep the listening socket: a start right after would fail with "Address already in use")
skiff_gone() {
  command -v pgrep >/dev/null 2>&1 || { sleep 1; return 0; }
  _i=0
  while pgrep -x "$1" >/dev/null 2>&1; do
    [ "$_i" -lt 150 ] || { echo "skiff: $1 processes still running after 15 s" >&2; return 1; }
    sleep 0.1
    _i=$((_i + 1))
  done
}

skiff_stop() {
  skiff_running "$1" || return 0
  if skiff_has_systemd; then
    systemctl stop "$1"
  else
    case $1 in
      nginx) nginx -s quit ;;
      apache2) apache2ctl stop ;;
    esac
  fi
  skiff_wait down "$1" && skiff_gone "$1"
}

# skiff_nginx_workers: pids of NGINX's current worker processes
skiff_nginx_workers() {
  _m=$(cat /run/nginx.pid 2>/dev/null) || return 0
  # one `ps`, not a fork per process: this runs on every version switch
  ps -o pid= --ppid "$_m" 2>/dev/null || true
}

# skiff_nginx_settled OLD_PIDS: `nginx -s reload` only signals the master, which starts new
# workers and then asks the old ones to stop accepting; wait (at most 10 s) until every old
# worker is gone or shutting down, so the next request surely sees the new config.
skiff_nginx_settled() {
  _i=0
  while [ "$_i" -lt 1000 ]; do
    _busy=0
    for _p in $1; do
      if [ -r "/proc/$_p/cmdline" ] && ! grep -qa 'shutting down' "/proc/$_p/cmdline" 2>/dev/null; then
        _busy=1
      fi
    done
    [ "$_busy" = 0 ] && return 0
    sleep 0.01
    _i=$((_i + 1))
  done
  echo "skiff: NGINX's old workers still serve after 10 s (did the reload fail? see /var/log/nginx/error.log)" >&2
  return 1
}

# skiff_reload SERVICE: re-read the config without dropping connections (starts it if down).
# NGINX: returns once the old workers stopped taking requests. Apache: a graceful restart,
# which restarts every mod_wsgi daemon and Passenger app, so `skiff update` never uses it
# to switch a version.
skiff_reload() {
  skiff_instreg "$1"
  skiff_running "$1" || { skiff_start "$1"; return; }
  case $1 in
    nginx)
      _old=$(skiff_nginx_workers)
      if skiff_has_systemd; then systemctl reload nginx; else nginx -s reload; fi
      skiff_nginx_settled "$_old"
      ;;
    apache2)
      if skiff_has_systemd; then systemctl reload apache2; else apache2ctl graceful; fi
      ;;
  esac
}

# skiff_restart SERVICE: stop and start (Apache needs it when the MPM changes)
skiff_restart() {
  if skiff_has_systemd; then
    systemctl restart "$1"
    skiff_wait up "$1"
  else
    skiff_stop "$1"
    # one more try if the first start loses a race for its port
    skiff_start "$1" || { sleep 1; skiff_start "$1"; }
  fi
}
