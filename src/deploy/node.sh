#!/bin/sh
# skiff's deploy steps on a node, fed to `sh -s -- STEP ARGS...` by `skiff update`,
# `rollback` and `activate` (src/deploy/). Every argument arrives as one quoted word;
# nothing here evaluates it as shell code except `build.commands`, which are the app
# owner's own commands, run in the new release. Each step prints machine-readable lines
# (`phase NAME SECONDS`, `---section`) for the laptop and errors on stderr.
#
#   begin APP OWNER [break]        take APP's deploy lock (exit 75 + owner when held);
#                                  print the node state and setup record
#   prepare APP N META VENV REQ WHEELS DOCROOT ENVLINES [CMD...]
#                                  env snapshot, venv, build commands, release meta
#   trial APP N SLOT KIND WANT HOST HEALTH TIMEOUT ROUTES
#                                  load N into SLOT (restart only it), warm it, route
#                                  N.HOST, health-check N.HOST through NGINX
#   switch APP STATE ROUTES FREED PRUNE
#                                  routes + state.toml, idle freed slots, prune, unlock
#   abort APP N SLOT KIND ROUTES   undo a trial: idle SLOT, old routes, drop release N, unlock
#   unlock APP                     release the deploy lock
#   peek                           print the node state (no lock)
set -eu
umask 022
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

APPS=/srv/skiff/apps
LOCKS=/var/lib/skiff/locks
STATE=/var/lib/skiff/state.toml
SETUP=/var/lib/skiff/setup.toml
NODE=/usr/local/share/skiff/bin/skiff-node
STAGING=/var/lib/skiff/staging
SLOTS=/srv/skiff/slots
ENVDIR=/etc/skiff/env

die() { echo "skiff: $1" >&2; exit "${2:-1}"; }
now() { date +%s.%N; }
T0=$(now)
phase() { # phase NAME: seconds since the previous phase mark
  _t=$(now)
  echo "phase $1 $(echo "$_t $T0" | awk '{printf "%.3f", $1 - $2}')"
  T0=$_t
}
check_app() { printf '%s' "$1" | grep -Eqx '[a-z][a-z0-9-]{0,31}' || die "bad app name: $1" 2; }
check_n() { printf '%s' "$1" | grep -Eqx '[0-9]{1,9}' || die "bad release number: $1" 2; }
check_slot() { [ -z "$1" ] || printf '%s' "$1" | grep -Eqx '(py|rb)[0-9]{2}' || die "bad slot: $1" 2; }

# install_routes TEXT [nowait]: the routing table through skiff-node (config test, reload,
# restore); `nowait` returns before NGINX's old workers stopped (the caller polls)
install_routes() {
  mkdir -p "$STAGING"
  _f=$(mktemp "$STAGING/routes.XXXXXX")
  printf '%s' "$1" >"$_f"
  if ! SKIFF_NGINX_NOWAIT=$([ "${2:-}" = nowait ] && echo 1 || echo 0) "$NODE" routes "$_f" >/dev/null; then
    rm -f "$_f"
    echo "skiff: NGINX refused the new routing table; the previous one is back in place" >&2
    return 1
  fi
  rm -f "$_f"
}

# slot_dir SLOT KIND
slot_dir() { case $2 in python) echo "$SLOTS/python/$1" ;; ruby) echo "$SLOTS/ruby/$1" ;; *) die "bad kind $2" 2 ;; esac; }

# restart_slot SLOT KIND: only this slot's processes
restart_slot() {
  case $2 in
    python) "$NODE" wsgi-restart "$1" >/dev/null ;;
    ruby) "$NODE" passenger-restart "$1" >/dev/null ;;
  esac
}

# idle_slot SLOT KIND: the slot stops running anything (answers "not running")
idle_slot() {
  _d=$(slot_dir "$1" "$2")
  rm -f "$_d/slot.json"
  restart_slot "$1" "$2" || true
}

drop_release() { # drop_release APP N
  _a=$APPS/$1
  rm -rf "$_a/releases/$2" "$_a/releases/.tmp-$2" "$_a/releases/.spare-$2" "$_a/releases/$2.manifest" \
    "$_a/meta/$2.json" "$_a/docroots/$2" "$_a/docroots/$2.json" "$_a/env/$2.env"
}

step=${1:-}
[ $# -gt 0 ] && shift
case $step in
  begin)
    app=$1 owner=$2
    check_app "$app"
    [ -f "$SETUP" ] || die "this node is not set up for skiff (no $SETUP)" 78
    mkdir -p "$LOCKS"
    lock=$LOCKS/$app.lock
    [ "${3:-}" = break ] && rm -rf "$lock"
    if ! mkdir "$lock" 2>/dev/null; then
      echo "HELD"
      cat "$lock/owner" 2>/dev/null || echo "unknown"
      exit 75
    fi
    printf '%s\n' "$owner" >"$lock/owner"
    echo "---state"
    cat "$STATE" 2>/dev/null || true
    echo "---setup"
    cat "$SETUP"
    echo "---env"
    [ -f "$ENVDIR/$app.env" ] && echo "node-config=yes" || echo "node-config=no"
    ;;

  prepare)
    app=$1 n=$2 meta=$3 venv=$4 req=$5 wheels=$6 docroot=$7 envlines=$8
    shift 8
    check_app "$app"; check_n "$n"
    a=$APPS/$app rel=$APPS/$app/releases/$n
    [ -d "$rel" ] || die "release $n of $app is missing on the node"
    mkdir -p "$a/meta" "$a/env" "$a/venvs"
    envfile=
    if [ -f "$ENVDIR/$app.env" ]; then
      envfile=$a/env/$n.env
      install -m 0640 -g www-data "$ENVDIR/$app.env" "$envfile"
    fi
    phase env
    if [ -n "$venv" ]; then
      v=$a/venvs/$venv
      if [ ! -f "$v/.skiff-complete" ]; then
        rm -rf "$v"
        python3 -m venv "$v" >&2 || die "could not create a venv (is python3-venv installed? re-run setup-node)"
        if [ -n "$wheels" ]; then
          "$v/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$rel/$wheels" -r "$rel/$req" >&2 ||
            { rm -rf "$v"; die "pip could not install $req from $wheels"; }
        else
          "$v/bin/pip" install -q --disable-pip-version-check -r "$rel/$req" >&2 ||
            { rm -rf "$v"; die "pip could not install $req (the node needs the package index, or ship wheels)"; }
        fi
        touch "$v/.skiff-complete"
        echo "venv built"
      else
        echo "venv reused"
      fi
    fi
    phase venv
    for c in "$@"; do
      (
        cd "$rel"
        printf '%s\n' "$envlines" | while IFS= read -r line; do [ -n "$line" ] && echo "$line"; done >"$a/env/.build-$n"
        while IFS= read -r line; do export "$line"; done <"$a/env/.build-$n"
        if [ -n "$envfile" ]; then
          while IFS= read -r line; do
            case $line in '' | '#'*) ;; *=*) export "$line" ;; esac
          done <"$envfile"
        fi
        rm -f "$a/env/.build-$n"
        sh -c "$c" >&2
      ) || die "build command failed: $c" 5
    done
    phase build
    printf '%s\n' "$meta" >"$a/meta/$n.json.tmp"
    mv -f "$a/meta/$n.json.tmp" "$a/meta/$n.json"
    if [ -n "$docroot" ]; then
      mkdir -p "$a/docroots"
      ln -sfn "../releases/$n/$docroot" "$a/docroots/$n"
      install -m 0640 -g www-data "$a/meta/$n.json" "$a/docroots/$n.json"
    fi
    phase meta
    ;;

  trial)
    app=$1 n=$2 slot=$3 kind=$4 want=$5 host=$6 health=$7 timeout=$8 routes=$9
    check_app "$app"; check_n "$n"; check_slot "$slot"
    if [ -n "$slot" ]; then
      d=$(slot_dir "$slot" "$kind")
      [ -d "$d" ] || die "slot $slot does not exist on this node (re-run setup-node)"
      # keep what the slot ran, so an abort can put it back
      if [ -f "$d/slot.json" ]; then cp -p "$d/slot.json" "$d/slot.json.before"; else rm -f "$d/slot.json.before"; fi
      install -m 0640 -g www-data "$APPS/$app/meta/$n.json" "$d/slot.json.tmp"
      mv -f "$d/slot.json.tmp" "$d/slot.json"
      phase load
      # Warm: at most 2 requests at a time, until WANT distinct processes answer release
      # N. A fresh slot (freed and restarted by an earlier switch) loads N lazily on its
      # first request; a process still running another release answers with that one,
      # and then (once) the slot's processes are restarted.
      backend="$n.$app.$slot.skiff"
      out=$(mktemp)
      rounds=$(awk -v t="$timeout" 'BEGIN{print int(t * 50) + 1}')
      ok=0 r=0 got=0 restarted=0
      [ "$kind" = ruby ] && { restart_slot "$slot" "$kind" || die "could not restart slot $slot"; restarted=1; }
      while [ "$r" -lt "$rounds" ]; do
        r=$((r + 1))
        for _j in 1 2; do
          curl -s -o /dev/null -D - -m 10 -H "Host: $backend" "http://127.0.0.1:8080$health" >>"$out" 2>/dev/null &
        done
        wait
        counts=$(tr -d '\r' <"$out" | awk -v n="$n" '
          tolower($1) == "x-skiff-release:" { rel = $2 }
          tolower($1) == "x-skiff-pid:" { if (rel == n) seen[$2] = 1; else if (rel != "") other = 1; rel = "" }
          END { c = 0; for (p in seen) c++; print c, other + 0 }')
        got=${counts% *} other=${counts#* }
        if [ "$got" -ge "$want" ]; then ok=1; break; fi
        if [ "$other" = 1 ] && [ "$restarted" = 0 ]; then
          restart_slot "$slot" "$kind" || die "could not restart slot $slot"
          restarted=1
          : >"$out"
          echo "restarted $slot"
        fi
        sleep 0.02
      done
      rm -f "$out"
      if [ "$ok" != 1 ] && [ "$got" -lt 1 ]; then
        echo "skiff: slot $slot did not answer with release $n within ${timeout}s; the app's error log says:" >&2
        tail -n 20 /var/log/apache2/error.log >&2 2>/dev/null || true
        exit 6
      fi
      echo "warm $got $want $r"
      phase warm
    fi
    install_routes "$routes" nowait || exit 4
    phase route
    # health: N.HOST through NGINX, 2xx or 3xx within the timeout
    body=$(mktemp)
    rounds=$(awk -v t="$timeout" 'BEGIN{print int(t * 50) + 1}')
    r=0 code=000
    while [ "$r" -lt "$rounds" ]; do
      r=$((r + 1))
      code=$(curl -s -o "$body" -w '%{http_code}' -m 10 -H "Host: $n.$host" "http://127.0.0.1$health" 2>/dev/null || true)
      case $code in 2?? | 3??) break ;; esac
      sleep 0.02
    done
    case $code in
      2?? | 3??) echo "health $code"; rm -f "$body" ;;
      *)
        echo "---health"
        echo "status $code"
        head -c 2000 "$body"; echo
        rm -f "$body"
        echo "---errorlog"
        tail -n 15 /var/log/apache2/error.log 2>/dev/null || true
        exit 7
        ;;
    esac
    phase health
    ;;

  switch)
    app=$1 state=$2 routes=$3 freed=$4 prune=$5
    check_app "$app"
    printf '%s' "$state" >"$STATE.tmp"
    install_routes "$routes" || { rm -f "$STATE.tmp"; exit 4; }
    mv -f "$STATE.tmp" "$STATE"
    phase switch
    for s in $freed; do
      check_slot "$s"
      case $s in py*) idle_slot "$s" python ;; rb*) idle_slot "$s" ruby ;; esac
    done
    for p in $prune; do
      check_n "$p"
      drop_release "$app" "$p"
    done
    rm -rf "$LOCKS/$app.lock"
    phase prune
    ;;

  abort)
    app=$1 n=$2 slot=$3 kind=$4 routes=$5
    check_app "$app"; check_slot "$slot"
    if [ -n "$slot" ]; then
      d=$(slot_dir "$slot" "$kind")
      if [ -f "$d/slot.json.before" ]; then
        mv -f "$d/slot.json.before" "$d/slot.json"
        restart_slot "$slot" "$kind" || true
      else
        idle_slot "$slot" "$kind"
      fi
    fi
    if [ -n "$routes" ]; then install_routes "$routes" || echo "skiff: the old routing table could not be reinstalled either" >&2; fi
    [ -n "$n" ] && { check_n "$n"; drop_release "$app" "$n"; }
    rm -rf "$LOCKS/$app.lock"
    ;;

  peek)
    cat "$STATE" 2>/dev/null || true
    ;;

  unlock)
    check_app "$1"
    rm -rf "$LOCKS/$1.lock"
    ;;

  *)
    die "unknown step: $step" 2
    ;;
esac
