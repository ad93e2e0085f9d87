#!/bin/sh
# skiff's deploy steps on a node, fed to `sh -s -- STEP ARGS...` by `skiff update`,
# `rollback` and `activate` (src/deploy/). Every argument arrives as one quoted word;
# nothing here evaluates it as shell code except `build.commands`, which are the app
# owner's own commands, run in the new release. Each step prints machine-readable lines
# (`phase NAME SECONDS`, `---section`) for the laptop and errors on stderr.
#
#   begin APP OWNER [break]        take APP's deploy lock (exit 75 + owner when held);
#                                  print the node state and setup record
#   ready TRIAL-ARGS PREPARE-ARGS  prepare, then trial, in one round trip (`update`)
#     prepare: APP N META VENV REQ WHEELS DOCROOT ENVLINES [CMD...]
#                                  env snapshot, venv, build commands, release meta
#   trial APP N SLOT KIND WANT BACKEND HEALTH TIMEOUT
#                                  load N into SLOT (restart only it, and a fresh Python
#                                  slot not even that), warm it, health-check it through
#                                  NGINX by its BACKEND name (N.APP.KIND.skiff) on the
#                                  loopback check port; no route changes
#   switch APP STATE ROUTES        routes (nginx -t, reload) + state.toml
#   finish APP FREED PRUNE         idle freed slots, prune releases, unlock
#   abort APP N SLOT KIND          undo a trial: SLOT back, drop release N, unlock
#                                  (a trial never changes routes; a refused switch
#                                  puts its old table back itself)
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
CHECK_PORT=8079   # deploy::CHECK_PORT: NGINX's loopback port where backend names route

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

# install_routes TEXT: the routing table through skiff-node (config test, reload, restore);
# returns once NGINX's old workers stopped taking requests. (Not sooner: during NGINX's
# reload its old workers take requests for another 0.1 s, and where a wildcard host name
# covers N.HOST they would send a health check of N.HOST to the live version, whose 2xx
# must not pass for the new one's.)
install_routes() {
  mkdir -p "$STAGING"
  _f=$(mktemp "$STAGING/routes.XXXXXX")
  printf '%s' "$1" >"$_f"
  if ! "$NODE" routes "$_f" >/dev/null; then
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

# prepare_step APP N META VENV REQ WHEELS DOCROOT ENVLINES [CMD...]
prepare_step() {
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
  # Files of a release are hard links shared with older releases: a build command that
  # writes one in place (`>>`, `truncate`, an editor) would change those too. Such
  # writes are found (link count > 1, modified during the build) and fail the deploy.
  marker=$(mktemp)
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
    ) || { rm -f "$marker"; die "build command failed: $c" 5; }
  done
  if [ $# -gt 0 ]; then
    shared=$(find "$rel" -type f -links +1 -newer "$marker" | head -n 5)
    if [ -n "$shared" ]; then
      rm -f "$marker"
      echo "skiff: build.commands wrote into shipped files in place; they are hard links shared with older releases:" >&2
      printf '  %s\n' "$shared" >&2
      echo "skiff: the releases sharing them (the live one too) may have changed: fix the build, then deploy again" >&2
      die "write new files (or replace them: write a temp file, then mv) instead of modifying shipped ones" 5
    fi
  fi
  rm -f "$marker"
  phase build
  printf '%s\n' "$meta" >"$a/meta/$n.json.tmp"
  mv -f "$a/meta/$n.json.tmp" "$a/meta/$n.json"
  if [ -n "$docroot" ]; then
    mkdir -p "$a/docroots"
    ln -sfn "../releases/$n/$docroot" "$a/docroots/$n"
    install -m 0640 -g www-data "$a/meta/$n.json" "$a/docroots/$n.json"
  fi
  phase meta
}


# trial_step APP N SLOT KIND WANT HOST HEALTH TIMEOUT ROUTES
trial_step() {
  app=$1 n=$2 slot=$3 kind=$4 want=$5 backend=$6 health=$7 timeout=$8
  check_app "$app"; check_n "$n"; check_slot "$slot"
  restarted=0
  if [ -n "$slot" ]; then
    d=$(slot_dir "$slot" "$kind")
    [ -d "$d" ] || die "slot $slot does not exist on this node (re-run setup-node)"
    # keep what the slot ran, so an abort can put it back
    if [ -f "$d/slot.json" ]; then cp -p "$d/slot.json" "$d/slot.json.before"; else rm -f "$d/slot.json.before"; fi
    install -m 0640 -g www-data "$APPS/$app/meta/$n.json" "$d/slot.json.tmp"
    mv -f "$d/slot.json.tmp" "$d/slot.json"
    # A fresh Python slot (freed and restarted by an earlier switch) loads N lazily on its
    # first request (skiff_slot.py): no restart, which Apache would only carry out on its
    # next once-a-second tick. Passenger restarts at once.
    if [ "$kind" = ruby ]; then
      restart_slot "$slot" "$kind" || die "could not restart slot $slot"
      restarted=1
    fi
  fi
  phase load
  printf '%s' "$backend" | grep -Eqx "$n\.$app\.[a-z0-9]+\.skiff" || die "bad backend name: $backend" 2
  if [ -n "$slot" ]; then
    # Warm: at most 2 requests at a time, until WANT distinct processes answer release
    # N. A process still running another release answers with that one, and one that
    # started before this skiff_slot.py (an upgrade) answers with the idle page (503, no
    # X-Skiff-Release): then (once) the slot's processes are restarted.
    # A round is two curls (each its own header file: one response each, no interleaving)
    # and one awk, which adds the PIDs that answered N to the list in $out and prints how
    # many there are and whether another release or the idle page answered.
    out=$(mktemp)
    rounds=$(awk -v t="$timeout" 'BEGIN{print int(t * 50) + 1}')
    ok=0 r=0 got=0
    while [ "$r" -lt "$rounds" ]; do
      r=$((r + 1))
      : >"$out.1"
      : >"$out.2"
      curl -s -o /dev/null -D "$out.1" -m 10 -H "Host: $n.$app.$slot.skiff" "http://127.0.0.1:8080$health" 2>/dev/null &
      c1=$!
      curl -s -o /dev/null -D "$out.2" -m 10 -H "Host: $n.$app.$slot.skiff" "http://127.0.0.1:8080$health" 2>/dev/null &
      c2=$!
      wait "$c1" "$c2" || true
      # shellcheck disable=SC2046
      set -- $(awk -v n="$n" -v list="$out" '
        function judge(f) {
          if (rel[f] == n && pid[f] != "") { if (!(pid[f] in seen)) { seen[pid[f]] = 1; print pid[f] >>list } }
          else if (rel[f] != "") other = 1
          else if (st[f] == 503) other = 1
        }
        BEGIN { while ((getline p <list) > 0) seen[p] = 1; close(list) }
        { sub(/\r$/, "") }
        FNR == 1 { st[FILENAME] = $2 }
        tolower($1) == "x-skiff-release:" { rel[FILENAME] = $2 }
        tolower($1) == "x-skiff-pid:" { pid[FILENAME] = $2 }
        END { for (f in st) judge(f); c = 0; for (p in seen) c++; print c, other + 0 }' "$out.1" "$out.2")
      got=$1
      if [ "$got" -ge "$want" ]; then ok=1; break; fi
      if [ "$2" = 1 ] && [ "$restarted" = 0 ]; then
        restart_slot "$slot" "$kind" || die "could not restart slot $slot"
        restarted=1
        echo "restarted $slot"
      fi
      sleep 0.02
    done
    rm -f "$out" "$out.1" "$out.2"
    if [ "$ok" != 1 ] && [ "$got" -lt 1 ]; then
      echo "skiff: slot $slot did not answer with release $n within ${timeout}s; the app's error log says:" >&2
      tail -n 20 /var/log/apache2/error.log >&2 2>/dev/null || true
      exit 6
    fi
    echo "warm $got $want $r"
    phase warm
  fi
  # The switch reloads NGINX: its config must load now, so that a broken file planted
  # anywhere fails this trial (and every node aborts) rather than one node's switch.
  if ! _t=$(nginx -t 2>&1); then
    printf '%s\n' "$_t" >&2
    die "nginx -t fails on this node, so no version can be switched here; nothing was changed" 4
  fi
  # health: release N by its backend name through NGINX's loopback check port, 2xx or
  # 3xx within the timeout
  body=$(mktemp)
  rounds=$(awk -v t="$timeout" 'BEGIN{print int(t * 50) + 1}')
  r=0 code=000
  while [ "$r" -lt "$rounds" ]; do
    r=$((r + 1))
    code=$(curl -s -o "$body" -w '%{http_code}' -m 10 -H "Host: $backend" "http://127.0.0.1:$CHECK_PORT$health" 2>/dev/null || true)
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

  trial)
    trial_step "$@"
    ;;

  ready)
    # ready TRIAL-ARGS(8) PREPARE-ARGS...: both steps in one round trip; `---trial`
    # tells the laptop that prepare passed and the trial began
    [ $# -ge 16 ] || die "ready needs 8 trial and at least 8 prepare arguments" 2
    t1=$1 t2=$2 t3=$3 t4=$4 t5=$5 t6=$6 t7=$7 t8=$8
    shift 8
    check_app "$t1"; check_n "$t2"
    # No route changes before the switch: the health check reaches release N by its
    # backend name on NGINX's loopback check port (one NGINX reload per deploy).
    # (a subshell, not an `||` list, which would switch `set -e` off inside it)
    set +e
    (
      set -e
      prepare_step "$@"
    )
    _s=$?
    set -e
    if [ "$_s" != 0 ]; then
      exit "$_s"
    fi
    T0=$(now)
    echo "---trial"
    trial_step "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$t7" "$t8"
    ;;

  switch)
    app=$1 state=$2 routes=$3
    check_app "$app"
    printf '%s' "$state" >"$STATE.tmp"
    install_routes "$routes" || { rm -f "$STATE.tmp"; exit 4; }
    mv -f "$STATE.tmp" "$STATE"
    phase switch
    ;;

  finish)
    app=$1 freed=$2 prune=$3
    check_app "$app"
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
    app=$1 n=$2 slot=$3 kind=$4
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
