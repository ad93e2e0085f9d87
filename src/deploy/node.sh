#!/bin/sh
# skiff's deploy steps on a node, fed to `sh -s -- STEP [CMD...]` by `skiff update`,
# `rollback`, `activate`, `clean` and `destroy-app` (src/deploy/). Inputs arrive as named
# shell variables set by a prelude that skiff prepends to this script (each value quoted
# by skiff's one quoting function), so nothing secret is ever in a process's argv: the
# script and its prelude come on stdin. Nothing here evaluates an input as shell code
# except `build.commands` (the positional CMD words), which are the app owner's own
# commands, run in the new release. Each step prints machine-readable lines
# (`phase NAME SECONDS`, `---section`) for the laptop and errors on stderr.
#
# Two locks, both directories with an owner line (the laptop's `user@host pid=...`):
#   locks/APP.lock    one deploy of APP at a time; held from `begin` to `finish`. Only
#                     its holder writes /srv/skiff/apps/APP.
#   locks/.node.lock  what apps share: the slots, state.toml, the routing table. Taken
#                     (after the app's lock, never before) from `nodelock` to `finish`,
#                     so every slot choice and every state written sees the truth.
# A lock records the session of the step working under it; breaking a stale lock (its
# skiff is gone) stops that session's processes first, so an orphaned build never runs on.
#
#   begin    app owner brk            take APP's lock; print state, setup, the slot pool
#                                     (the slot vhosts), the release numbers found on
#                                     disk (leftovers of a dead run)
#   recover  app owner numbers        drop releases no state names (a dead run's)
#   services app owner services allow make the app's services ready here for the other
#                                     nodes at ALLOW; print their credential files
#                                     (`---file NAME`, base64) for those nodes' prepare
#   prepare  app owner n runtime packages system_site meta venv req reqtext wheels docroot
#            bundle bundle_local composer envlines build_timeout units services
#            service_files allow release backup_first [CMD...]
#                                     env snapshot, [packages] apt (skiff-node
#                                     apt-install), venv, Bundler bundle (bundles/KEY),
#                                     Composer vendor (vendors/KEY, hard-linked into the
#                                     release as vendor/), build commands, release meta,
#                                     the release's systemd units (units/N/, env/N.run),
#                                     the release command; services first (skiff-node
#                                     service-ensure), their credentials in the env
#                                     snapshot; then try the node lock (nodelock, no
#                                     waiting)
#   nodelock app owner brk            take the node lock; print the state and what each
#                                     slot's slot.json names
#   trial    app owner n slot kind want backend vhost health timeout token reset
#                                     idle the slots in `reset` (a dead run's), load N
#                                     into SLOT, warm it until WANT processes answer
#                                     TOKEN, health-check BACKEND through NGINX's loopback
#                                     check port; no route changes. The app sees every
#                                     one of these requests as VHOST (`N.HOST`), never
#                                     as BACKEND
#   grow     app owner kind own_slots APP has no free slot of its own: give it SLOTS (free
#                                     ones no app owns, or new ones; skiff-node
#                                     slots-own: one Apache graceful reload)
#   switch   app owner state routes run
#                                     the app's systemd units become release RUN's (its
#                                     workers must stay up, else the previous ones run
#                                     again), then routes (nginx -t, reload) + state.toml
#   go       TRIAL's inputs, state routes run freed prune
#                                     one node: trial, switch and finish in one round trip
#   finish   app owner freed prune history
#                                     idle freed slots, prune releases, append HISTORY
#                                     (a JSON line) to the deploy log, unlock both
#   abort    app owner n token history
#                                     undo what this run did: every slot it loaded (by
#                                     its token) back, when it holds the node lock; drop
#                                     release N; log the failed run; unlock both
#   unlock   app owner which          release the node lock (which=node) or both
#                                     (which=both), those this owner holds
#   destroy  app owner freed          after a switch without APP: idle its slots, remove
#                                     its folder (but data/) and env file, unlock both
#   history  app                      print the app's deploy log (no lock)
#   probe    host path                HTTP status of HOST at PATH through NGINX here
#   config   app op lines             list, set or unset the app's node-side env file
#   inspect  app                      print the state and the current release's manifest
#                                     and meta (no lock; `skiff diff`)
#   files    app n paths              print release N's files PATHS, base64 (no lock)
#   peek     [app]                    print the node state (no lock); with APP, also its
#                                     releases' units and the current ones' systemd state
#
# shellcheck disable=SC2154 # the inputs are set by skiff's prelude
# shellcheck disable=SC2163 # `export "$line"` exports the KEY=VALUE line itself
set -eu
umask 022
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

# Deploys log in as the node's deploy user (`skiff`); root work goes through skiff-node
# (which validates every argument), by `sudo -n` unless this step runs as root (a node
# whose cluster.toml has no deploy_user yet). Nothing else here runs as root.
# A sudo that refuses (no sudoers rule: a node set up by an older skiff) is named with its fix.
if [ "$(id -u)" = 0 ]; then
  as_root() { "$@"; }
else
  as_root() {
    sudo -n "$@" || {
      _rc=$?
      sudo -n -l "$1" >/dev/null 2>&1 ||
        die "$(id -un) may not run $1 as root (sudo -n): run \`skiff setup-node\` for this node (it writes /etc/sudoers.d/skiff)"
      return "$_rc"
    }
  }
fi

# The node's paths, ports and exit codes come in the prelude too, from one place in Rust
# (src/deploy/contract.rs): APPS LOCKS NODE_LOCK STATE SETUP NODE STAGING SLOTS ENVDIR
# CHECK_PORT APACHE_PORT and EXIT_USAGE EXIT_NGINX EXIT_BUILD EXIT_NOT_WARM EXIT_HEALTH
# EXIT_PACKAGES EXIT_LOCK_HELD EXIT_NOT_SET_UP. Nothing here is a number to keep in step.

die() { echo "skiff: $1" >&2; exit "${2:-1}"; }
now() { date +%s.%N; }
T0=$(now)
phase() { # phase NAME: seconds since the previous phase mark
  _t=$(now)
  echo "phase $1 $(echo "$_t $T0" | awk '{printf "%.3f", $1 - $2}')"
  T0=$_t
}
check_app() { printf '%s' "$1" | grep -Eqx '[a-z][a-z0-9-]{0,31}' || die "bad app name: $1" "$EXIT_USAGE"; }
check_n() { printf '%s' "$1" | grep -Eqx '[0-9]{1,9}' || die "bad release number: $1" "$EXIT_USAGE"; }
check_slot() { [ -z "$1" ] || printf '%s' "$1" | grep -Eqx '(py|rb)[0-9]{2,3}' || die "bad slot: $1" "$EXIT_USAGE"; }
check_token() { printf '%s' "$1" | grep -Eqx '[0-9]{1,9}-[0-9a-f]{8,32}' || die "bad token: $1" "$EXIT_USAGE"; }

# holds LOCKDIR: whether this run's owner line is the lock's
holds() {
  [ -f "$1/owner" ] || return 1
  _o=
  IFS= read -r _o <"$1/owner" || true
  [ "$_o" = "$owner" ]
}

# mark LOCKDIR: record this step's session (every process of the step is in it, even
# those `timeout` puts in a process group of their own) and its leader's start time
mark() {
  # /proc/PID/stat: field 6 is the session, 22 the start time (`comm`, field 2, is `sh`)
  read -r _ _ _ _ _ _g _ </proc/$$/stat
  _st=gone
  if [ -r "/proc/$_g/stat" ]; then
    read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _st _ <"/proc/$_g/stat" || _st=gone
  fi
  echo "$_g $_st" >"$1/pgid"
}

# stop_holder LOCKDIR: stop every process of the session recorded in a stale lock, if
# it is not this step's own and its leader (when still there) is the one recorded (not
# a reused number)
stop_holder() {
  [ -f "$1/pgid" ] || return 0
  read -r _g _st <"$1/pgid" || return 0
  printf '%s' "$_g" | grep -Eqx '[0-9]+' || return 0
  read -r _ _ _ _ _ _mine _ </proc/$$/stat
  [ "$_g" != "$_mine" ] || return 0
  if [ -e "/proc/$_g" ] && [ "$(awk '{print $22}' "/proc/$_g/stat" 2>/dev/null)" != "$_st" ]; then
    return 0
  fi
  _me=$(id -u)
  pkill -TERM -U "$_me" -s "$_g" 2>/dev/null || return 0
  _i=0
  while [ "$_i" -lt 20 ] && pgrep -U "$_me" -s "$_g" >/dev/null 2>&1; do sleep 0.1; _i=$((_i + 1)); done
  pkill -KILL -U "$_me" -s "$_g" 2>/dev/null || true
  echo "stopped the dead run's processes (session $_g)"
}

# take LOCKDIR BREAK: mkdir the lock (after stopping and removing a stale one when BREAK
# is 1); prints HELD and the holder's owner line and exits 75 when someone holds it
take() {
  mkdir -p "$LOCKS"
  if [ "$2" = 1 ] && [ -d "$1" ]; then
    stop_holder "$1"
    rm -rf "$1"
  fi
  if ! mkdir "$1" 2>/dev/null; then
    echo "HELD"
    cat "$1/owner" 2>/dev/null || echo "unknown"
    exit "$EXIT_LOCK_HELD"
  fi
  printf '%s\n' "$owner" >"$1/owner"
  mark "$1"
}

# print_state: the node state and what each slot's slot.json names (`SLOT RELEASE-PATH`)
print_state() {
  echo "---state"
  cat "$STATE" 2>/dev/null || true
  echo "---slots"
  # one awk for every slot.json (a fork per slot would cost more than the rest of the step)
  set --
  for _f in "$SLOTS"/python/*/slot.json "$SLOTS"/ruby/*/slot.json; do
    if [ -f "$_f" ]; then set -- "$@" "$_f"; fi
  done
  [ $# -eq 0 ] || awk 'FNR == 1 && match($0, /"release": *"[^"]*"/) {
      r = substr($0, RSTART, RLENGTH); sub(/^"release": *"/, "", r); sub(/"$/, "", r)
      n = split(FILENAME, p, "/"); print p[n - 1], r }' "$@"
}

# install_routes TEXT: the routing table through skiff-node (config test, reload, restore);
# returns once NGINX's old workers stopped taking requests.
install_routes() {
  mkdir -p "$STAGING"
  _f=$(mktemp "$STAGING/routes.XXXXXX")
  printf '%s' "$1" >"$_f"
  if ! as_root "$NODE" routes "$_f" >/dev/null; then
    rm -f "$_f"
    echo "skiff: NGINX refused the new routing table; the previous one is back in place" >&2
    return 1
  fi
  rm -f "$_f"
}

# slot_dir SLOT KIND
slot_dir() { case $2 in python) echo "$SLOTS/python/$1" ;; ruby) echo "$SLOTS/ruby/$1" ;; *) die "bad kind $2" "$EXIT_USAGE" ;; esac; }
kind_of() { case $1 in py*) echo python ;; rb*) echo ruby ;; esac; }

# restart_slot SLOT KIND: only this slot's processes
restart_slot() {
  case $2 in
    python) as_root "$NODE" wsgi-restart "$1" >/dev/null ;;
    ruby) as_root "$NODE" passenger-restart "$1" >/dev/null ;;
  esac
}

# idle_slot SLOT KIND: the slot stops running anything (answers "not running")
idle_slot() {
  _d=$(slot_dir "$1" "$2")
  rm -f "$_d/slot.json" "$_d"/before-*.json
  restart_slot "$1" "$2" || true
}

drop_release() { # drop_release APP N
  _a=$APPS/$1
  rm -rf "$_a/releases/$2" "$_a/releases/.tmp-$2" "$_a/releases/.spare-$2" "$_a/releases/$2.manifest" \
    "$_a/meta/$2.json" "$_a/docroots/$2" "$_a/docroots/$2.json" "$_a/env/$2.env" \
    "$_a/env/$2.run" "$_a/units/$2"
}

# bundle_env DIR: Bundler's settings for the bundle in DIR (exported): gems go to DIR
# (GEM_HOME; the gems Debian installed stay visible), the lock is frozen, development
# and test groups are left out, and a .bundle/config shipped in the release is ignored.
# (BUNDLE_DEPLOYMENT would refuse the system's gems: Bundler has no "path + system".)
bundle_env() {
  GEM_HOME=$1 BUNDLE_GEMFILE=$rel/Gemfile BUNDLE_PATH__SYSTEM=true BUNDLE_FROZEN=true
  BUNDLE_WITHOUT=development:test BUNDLE_APP_CONFIG=$1/.bundle-config
  PATH=$1/bin:$PATH
  export GEM_HOME BUNDLE_GEMFILE BUNDLE_PATH__SYSTEM BUNDLE_FROZEN BUNDLE_WITHOUT BUNDLE_APP_CONFIG PATH
}

# deps_step: Bundler's bundle (bundles/KEY) and Composer's vendor folder (vendors/KEY),
# each made once per key (lock files + node OS, computed by skiff) and marked complete
deps_step() {
  if [ -n "$bundle" ]; then
    b=$a/bundles/$bundle
    if [ ! -f "$b/.skiff-complete" ]; then
      command -v bundle >/dev/null 2>&1 || die "Bundler is not installed on this node (re-run setup-node)"
      rm -rf "$b"
      mkdir -p "$b"
      set -- install
      [ "$bundle_local" = 1 ] && set -- install --local
      _s=0
      (cd "$rel" && bundle_env "$b" && timeout -k 10 "$build_timeout" bundle "$@" >&2) || _s=$?
      if [ "$_s" != 0 ]; then
        rm -rf "$b"
        [ "$bundle_local" = 1 ] && die "bundle install --local failed: every gem of Gemfile.lock must be in vendor/cache or installed by a Debian package (bundle cache, then ship vendor/cache)"
        die "bundle install failed: the node needs the gem index for gems Debian does not install, or ship them (bundle cache, then ship vendor/cache)"
      fi
      touch "$b/.skiff-complete"
      echo "bundle built"
    else
      echo "bundle reused"
    fi
  fi
  if [ -n "$composer" ]; then
    c=$a/vendors/$composer
    if [ ! -f "$c/.skiff-complete" ]; then
      command -v composer >/dev/null 2>&1 || die "Composer is not installed on this node (re-run setup-node)"
      rm -rf "$c" "$c.tmp"
      mkdir -p "$a/vendors"
      # Composer runs in a hard-link clone of the release (its own copies of the two
      # files it reads), so the autoloader it writes finds the app's classes relative to
      # vendor/ (dirname(__DIR__)); path repositories are copied, never linked
      cp -al "$rel" "$c.tmp"
      rm -f "$c.tmp/composer.json" "$c.tmp/composer.lock"
      cp "$rel/composer.json" "$rel/composer.lock" "$c.tmp/"
      _s=0
      (cd "$c.tmp" && COMPOSER_MIRROR_PATH_REPOS=1 COMPOSER_NO_AUDIT=1 timeout -k 10 "$build_timeout" \
        composer install --no-dev --no-interaction --no-progress >&2) || _s=$?
      if [ "$_s" != 0 ] || [ ! -d "$c.tmp/vendor" ]; then
        rm -rf "$c.tmp"
        die "composer install failed: the node needs packagist.org for packages not in the app folder (or use path repositories, or ship vendor/)"
      fi
      mkdir -p "$c"
      mv "$c.tmp/vendor" "$c/vendor"
      rm -rf "$c.tmp"
      touch "$c/.skiff-complete"
      echo "vendor built"
    else
      echo "vendor reused"
    fi
    # the release's own vendor/: hard links to vendors/KEY (never a symlink: PHP resolves
    # __DIR__ through links, which would point the autoloader away from the release)
    rm -rf "$rel/vendor"
    cp -al "$c/vendor" "$rel/vendor"
  fi
}

# prepare_step [CMD...]: env snapshot, venv, build commands, the release's meta
prepare_step() {
  a=$APPS/$app rel=$APPS/$app/releases/$n
  [ -d "$rel" ] || die "release $n of $app is missing on the node"
  # the app's files that hold its environment (meta, env snapshots, units and job files)
  # are for the deploy user and the app's own user (RUN_USER: a Python or Ruby app's
  # own, else www-data) only: their folders are the deploy user's and RUN_USER's group's,
  # setgid, 2750, so every file made there is that group's; APP/ is 0750 to a group of
  # the app's user and www-data; skiff-node sets them up (and the user) once
  _dirs=$(stat -c '%a %G' "$a/env" "$a/meta" "$a/units" 2>/dev/null | sort -u) || _dirs=
  if [ "$_dirs" != "2750 $run_user" ] || [ "$(stat -c '%a' "$a")" != 750 ]; then
    as_root "$NODE" app-dirs "$app" "$runtime" >/dev/null
  fi
  mkdir -p "$a/venvs"
  # services (`NAME TYPE` lines, the primary database first): made or checked by
  # skiff-node, as root; their credentials join the env snapshot below
  if [ -n "$services" ] && [ -n "$service_files" ]; then
    # another node of the app holds the services: their credentials, as it made them
    # and pointing at it (the `services` step there), installed by skiff-node service-put
    mkdir -p "$STAGING"
    _sf=$(mktemp -d "$STAGING/services.XXXXXX")
    printf '%s\n' "$service_files" | while read -r _name _data; do
      [ -n "$_name" ] || continue
      printf '%s' "$_name" | grep -Eqx '[a-z][a-z0-9-]{0,31}\.(env|json)' || die "bad service file name: $_name" "$EXIT_USAGE"
      (umask 077 && printf '%s' "$_data" | base64 -d >"$_sf/$_name") || die "bad service file: $_name" "$EXIT_USAGE"
    done || { rm -rf "$_sf"; exit "$EXIT_USAGE"; }
    as_root "$NODE" service-put "$app" "$_sf" >&2 || { rm -rf "$_sf"; exit "$EXIT_SERVICE"; }
    rm -rf "$_sf"
    phase services
  elif [ -n "$services" ]; then
    ensure_services
    phase services
  fi
  envfile=
  if [ -f "$ENVDIR/$app.env" ] || [ -n "$services" ]; then
    envfile=$a/env/$n.env
    (
      umask 027
      {
        if [ -f "$ENVDIR/$app.env" ]; then cat "$ENVDIR/$app.env"; fi
        if [ -n "$services" ]; then service_env; fi
      } >"$envfile.tmp"
    )
    mv -f "$envfile.tmp" "$envfile"
  fi
  phase env
  # [packages] apt: installed when missing (skiff-node, as root), before venv and build
  if [ -n "$packages" ]; then
    for p in $packages; do
      printf '%s' "$p" | grep -Eqx '[a-z0-9][a-z0-9+.-]{1,127}' || die "bad package name: $p" "$EXIT_USAGE"
    done
    # shellcheck disable=SC2086 # one word per package, each checked above
    as_root "$NODE" apt-install $packages >&2 || exit "$EXIT_PACKAGES"
    phase packages
  fi
  if [ -n "$venv" ]; then
    v=$a/venvs/$venv
    if [ ! -f "$v/.skiff-complete" ]; then
      rm -rf "$v"
      # With shipped wheels, the distribution's pip wheel (what ensurepip would install)
      # runs from the wheel and installs the requirements and pip itself in one run,
      # instead of ensurepip's own pip run first (~3 s of a ~4.5 s Django venv); no
      # setuptools, as in Python 3.12's venvs. With the index: a plain venv.
      pipwhl=
      _site=
      [ "$system_site" = 1 ] && _site=--system-site-packages
      if [ -n "$wheels" ]; then
        for _w in /usr/share/python-wheels/pip-*.whl; do [ -f "$_w" ] && pipwhl=$_w; done
      fi
      # shellcheck disable=SC2086 # _site is empty or one flag
      if [ -n "$pipwhl" ]; then
        python3 -m venv $_site --without-pip "$v" >&2
      else
        python3 -m venv $_site "$v" >&2
      fi || die "could not create a venv (is python3-venv installed? re-run setup-node)"
      reqf=$rel/$req
      if [ -z "$req" ]; then # pyproject.toml's dependencies, kept with the venv
        reqf=$v/skiff-requirements.txt req="pyproject.toml's dependencies"
        printf '%s' "$reqtext" >"$reqf"
      fi
      if [ -n "$pipwhl" ]; then
        "$v/bin/python" "$pipwhl/pip" install -q --disable-pip-version-check --no-index --find-links "$rel/$wheels" -r "$reqf" "$pipwhl" >&2 ||
          { rm -rf "$v"; die "pip could not install $req from $wheels"; }
      elif [ -n "$wheels" ]; then
        "$v/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$rel/$wheels" -r "$reqf" >&2 ||
          { rm -rf "$v"; die "pip could not install $req from $wheels"; }
      else
        "$v/bin/pip" install -q --disable-pip-version-check -r "$reqf" >&2 ||
          { rm -rf "$v"; die "pip could not install $req (the node needs the package index, or ship wheels)"; }
      fi
      touch "$v/.skiff-complete"
      echo "venv built"
    else
      echo "venv reused"
    fi
  fi
  phase venv
  deps_step
  phase deps
  # Files of a release are hard links shared with older releases: a build command that
  # writes one in place (`>>`, `truncate`, an editor) would change those too. Such
  # writes are found and fail the deploy: a shared file (link count > 1) whose size or
  # modification time differs after the build. (Not `find -newer` a marker file: the
  # kernel's coarse file clock gives a write just after the marker the same time.)
  marker=$(mktemp)
  if [ $# -gt 0 ]; then
    find "$rel" -type f -links +1 -printf '%i %s %T@\n' | sort >"$marker"
  fi
  for c in "$@"; do
    in_release "build command" "$c" "$EXIT_BUILD" || { _s=$?; rm -f "$marker"; exit "$_s"; }
  done
  if [ $# -gt 0 ]; then
    shared=$(find "$rel" -type f -links +1 -printf '%i %s %T@\n' | sort | comm -13 "$marker" - |
      while read -r _i _rest; do find "$rel" -inum "$_i" -print -quit; done | head -n 5)
    if [ -n "$shared" ]; then
      rm -f "$marker"
      echo "skiff: build.commands wrote into shipped files in place; they are hard links shared with older releases:" >&2
      printf '  %s\n' "$shared" >&2
      echo "skiff: the releases sharing them (the live one too) may have changed: fix the build, then deploy again" >&2
      die "write new files (or replace them: write a temp file, then mv) instead of modifying shipped ones" "$EXIT_BUILD"
    fi
  fi
  rm -f "$marker"
  phase build
  # the meta holds the app's environment: readable by the app's group (meta/ is setgid)
  (umask 027 && printf '%s\n' "$meta" >"$a/meta/$n.json.tmp")
  mv -f "$a/meta/$n.json.tmp" "$a/meta/$n.json"
  if [ -n "$docroot" ]; then
    mkdir -p "$a/docroots"
    ln -sfn "../releases/$n/$docroot" "$a/docroots/$n"
    install -m 0640 -g www-data "$a/meta/$n.json" "$a/docroots/$n.json"
  fi
  phase meta
  units_step
  # the release command: once per deploy, on one node, in the new release with its
  # environment, after the build and before any switch
  if [ -n "$release" ]; then
    if [ "${backup_first:-}" = 1 ]; then
      backup_services
      phase backup
    fi
    in_release "the release command" "$release" "$EXIT_RELEASE" || exit $?
    phase release
  fi
}

# backup_services: [deploy] backup_before_release: every service of the app dumped on
# this node (skiff-node backup dump) into BACKUPS_DIR/APP/N/NAME (0600 root), before
# the release command of release N; a failed dump fails the deploy
backup_services() {
  _bd=$BACKUPS_DIR/$app/$n
  (umask 077 && mkdir -p "$_bd")
  printf '%s\n' "$services" | while read -r _sn _st; do
    [ -n "$_sn" ] || continue
    (umask 077 && as_root "$NODE" backup dump "$app" "$_sn" >"$_bd/$_sn.tmp") ||
      { rm -f "$_bd/$_sn.tmp"; die "could not back up service $_sn before the release command" "$EXIT_RELEASE"; }
    mv -f "$_bd/$_sn.tmp" "$_bd/$_sn"
    echo "backed up $_sn to $_bd/$_sn" >&2
  done
}

# in_release WHAT CMD EXIT: CMD with `sh -c` in release N with its environment (a
# subshell), at most build_timeout seconds; a failure or timeout dies naming WHAT with EXIT
in_release() {
  (
    cd "$rel"
    release_env
    _s=0
    timeout -k 10 "$build_timeout" sh -c "$2" >&2 || _s=$?
    if [ "$_s" = 124 ] || [ "$_s" = 137 ]; then
      die "$1 timed out after ${build_timeout}s ([build] timeout in app.toml): $2" "$3"
    fi
    [ "$_s" = 0 ] || die "$1 failed (exit $_s): $2" "$3"
  )
}

# ensure_services: every service of `services` ready on this node (skiff-node, as root),
# reachable from the addresses in `allow` (the app's other nodes)
ensure_services() {
  printf '%s\n' "$services" | while read -r _sn _st; do
    [ -n "$_sn" ] || continue
    # shellcheck disable=SC2086 # addresses: one word each, checked by skiff-node
    as_root "$NODE" service-ensure "$app" "$_sn" "$_st" ${allow:-} >&2 || exit "$EXIT_SERVICE"
  done
}

# service_env: the services' credentials as KEY=VALUE lines: every line of the primary
# database (the first postgresql or mysql in `services`) and DATABASE_URL, each other
# database's NAME_URL, each files service's NAME_DIR (the first one's also as
# SKIFF_FILES_DIR), and SKIFF_SERVICES: all of it as one JSON object
service_env() {
  _sd=$SERVICES_DIR/$app
  _db='' _files='' _json=''
  while read -r _sn _st; do
    [ -n "$_sn" ] || continue
    _f=$_sd/$_sn.env
    [ -f "$_f" ] || die "service $_sn of $app has no credentials on this node ($_f)" "$EXIT_SERVICE"
    case $_st in
      postgresql | mysql)
        if [ -z "$_db" ]; then
          _db=$_sn
          cat "$_f"
          sed -n 's/^[A-Z0-9_]*_URL=/DATABASE_URL=/p' "$_f" | head -n 1
        else
          grep '_URL=' "$_f"
        fi
        ;;
      files)
        cat "$_f"
        if [ -z "$_files" ]; then
          _files=$_sn
          sed -n 's/^[A-Z0-9_]*_DIR=/SKIFF_FILES_DIR=/p' "$_f" | head -n 1
        fi
        ;;
    esac
    _json="$_json${_json:+,}\"$_sn\":$(cat "$_sd/$_sn.json")"
  done <<EOF
$services
EOF
  printf 'SKIFF_SERVICES={%s}\n' "$_json"
}

# release_env: exports release N's environment (call it in a subshell): [env] from the
# prelude (never a file others could read), the node's env snapshot, and the app's own
# tools first on PATH: its venv (python and python3 are the venv's), or, without one,
# `python` as the system python3 (Debian has no plain `python`); Ruby: the bundle's gems
# and executables (`bundle exec rake ...`); PHP: vendor/bin. Build commands, workers and
# cron commands all run with it.
release_env() {
  # shellcheck source=/dev/null # env_export, env_encode (server-files/lib/envfile.sh)
  . "$ENV_LIB"
  while IFS= read -r line; do
    case $line in *=*) env_export "$line" ;; esac
  done <<EOF
$envlines
EOF
  if [ -n "$envfile" ]; then
    while IFS= read -r line; do
      case $line in '' | '#'*) ;; *=*) env_export "$line" ;; esac
    done <"$envfile"
  fi
  if [ -n "$bundle" ]; then bundle_env "$a/bundles/$bundle"; fi
  if [ -d "$rel/vendor/bin" ]; then PATH=$rel/vendor/bin:$PATH; export PATH; fi
  if [ -n "$venv" ]; then
    VIRTUAL_ENV=$a/venvs/$venv
    PATH=$VIRTUAL_ENV/bin:$PATH
    export VIRTUAL_ENV PATH
  elif [ "$runtime" = python ]; then
    mkdir -p "$a/.bin" && chmod 0755 "$a/.bin" # the app's user runs it
    ln -sfn "$(command -v python3)" "$a/.bin/python"
    PATH=$a/.bin:$PATH
    export PATH
  fi
}

# units_step: release N's systemd units and job files (from `units`, `NAME BASE64` lines)
# into units/N/, and env/N.run: the environment release_env makes, as KEY=VALUE lines
# for skiff-run. Calendar expressions are checked here, before any switch.
units_step() {
  [ -n "$units" ] || return 0
  [ -d /run/systemd/system ] || die "workers and cron need systemd as the node's PID 1; this node has none" "$EXIT_NO_SYSTEMD"
  _u=$a/units/$n
  rm -rf "$_u"
  # 0750, and setgid from units/ (no chmod: the kernel drops a folder's setgid bit when
  # its owner, the deploy user, is not in the folder's group)
  (umask 027 && mkdir -p "$_u")
  printf '%s\n' "$units" | while read -r _name _data; do
    [ -n "$_name" ] || continue
    printf '%s' "$_name" | grep -Eqx '[A-Za-z0-9_.@-]{1,200}' || die "bad unit file name: $_name" "$EXIT_USAGE"
    printf '%s' "$_data" | base64 -d >"$_u/$_name.tmp" || die "bad unit file data: $_name" "$EXIT_USAGE"
    chmod 0640 "$_u/$_name.tmp"
    mv -f "$_u/$_name.tmp" "$_u/$_name"
  done
  for _t in "$_u"/*.timer; do
    [ -e "$_t" ] || continue
    sed -n 's/^OnCalendar=//p' "$_t" | while IFS= read -r _c; do
      systemd-analyze calendar "$_c" >/dev/null 2>&1 ||
        die "the schedule '$_c' is not a calendar expression systemd knows (systemd-analyze calendar)" "$EXIT_USAGE"
    done
  done
  (
    umask 027 # env/ is setgid: N.run is the app's group's
    release_env
    {
      printf '%s\n' "$envlines" | grep '=' || true
      if [ -n "$envfile" ]; then grep -v '^#' "$envfile" | grep '=' || true; fi
      for _k in PATH VIRTUAL_ENV GEM_HOME BUNDLE_GEMFILE BUNDLE_PATH__SYSTEM BUNDLE_FROZEN BUNDLE_WITHOUT BUNDLE_APP_CONFIG; do
        if _v=$(printenv "$_k"); then printf '%s=%s\n' "$_k" "$(printf '%s' "$_v" | env_encode)"; fi
      done
    } >"$a/env/$n.run.tmp"
  )
  mv -f "$a/env/$n.run.tmp" "$a/env/$n.run"
  phase units
}

# units_to APP N: the app's systemd units (workers, cron timers) become release N's (""
# = none). The current ones stop (each with its stop signal, then its stop timeout,
# then SIGKILL: systemd's), N's are installed, enabled (they come back after a reboot)
# and started, and N's workers must stay up, unrestarted, for WORKER_GRACE seconds.
# Returns 1 (their journal tails under `---workers`) when one did not, 2 when skiff-node
# refused N's unit files (its reason on stderr).
units_to() {
  _ua=$APPS/$1 _un=$2
  _cur=$(cat "$_ua/units/current" 2>/dev/null || true)
  _old='' _new=''
  if [ -n "$_cur" ] && [ -f "$_ua/units/$_cur/enable" ]; then _old=$(cat "$_ua/units/$_cur/enable"); fi
  if [ -n "$_un" ] && [ -f "$_ua/units/$_un/enable" ]; then _new=$(cat "$_ua/units/$_un/enable"); fi
  if [ -z "$_old" ] && [ -z "$_new" ] && [ -z "$_cur" ] && [ ! -d "$_ua/units/$_un" ]; then return 0; fi
  if [ ! -d /run/systemd/system ]; then
    echo "skiff: the app has workers or cron and this node has no systemd as PID 1" >&2
    return 1
  fi
  # (systemd's side through skiff-node units: it checks the names and the unit files)
  if [ "$_cur" = "$_un" ]; then
    # shellcheck disable=SC2086 # unit names: one word each, checked when written
    [ -z "$_new" ] || as_root "$NODE" units "$1" start $_new
    return 0
  fi
  # shellcheck disable=SC2086
  [ -z "$_old" ] || as_root "$NODE" units "$1" stop $_old || true
  if [ -n "$_un" ] && [ -d "$_ua/units/$_un" ]; then
    as_root "$NODE" units "$1" install "$_un" || return 2
    echo "$_un" >"$_ua/units/current"
  else
    as_root "$NODE" units "$1" install none || return 2
    rm -f "$_ua/units/current"
  fi
  [ -n "$_new" ] || return 0
  # shellcheck disable=SC2086
  as_root "$NODE" units "$1" enable $_new || true
  _workers=$(printf '%s\n' "$_new" | grep '\.service$' || true)
  [ -n "$_workers" ] || return 0
  sleep "$WORKER_GRACE"
  _bad=''
  for _w in $_workers; do
    _st=$(systemctl show -p ActiveState --value "$_w" 2>/dev/null || echo unknown)
    _nr=$(systemctl show -p NRestarts --value "$_w" 2>/dev/null || echo 0)
    if [ "$_st" != active ] || [ "${_nr:-0}" != 0 ]; then _bad="$_bad $_w"; fi
  done
  [ -n "$_bad" ] || return 0
  echo "---workers"
  for _w in $_bad; do
    echo "$_w: $(systemctl show -p ActiveState --value "$_w" 2>/dev/null), restarted $(systemctl show -p NRestarts --value "$_w" 2>/dev/null) times"
    journalctl -u "$_w" -n 12 --no-pager -o cat 2>/dev/null | sed 's/^/  /' || true
  done
  return 1
}

# cron_secret: the node's web-cron secret and NGINX's map entry for it, made once by
# skiff-node (NGINX reloaded then); a node that has both is left alone.
cron_secret() { as_root "$NODE" cron-secret; }

# deadline_in SECONDS: the epoch time (ms) SECONDS from now; left_until DEADLINE: the
# seconds left until then (0.000 once past). Warming and the health check each get the
# release's [health] timeout as a deadline, and a request may only take what is left of
# it: a slow answer after the deadline is a failure, never a late pass.
deadline_in() { awk -v t="$1" -v now="$(date +%s.%N)" 'BEGIN { printf "%.3f", now + t }'; }
left_until() { awk -v d="$1" -v now="$(date +%s.%N)" 'BEGIN { l = d - now; if (l < 0) l = 0; printf "%.3f", l }'; }

# trial_step: load N into SLOT, warm it, health-check it by its backend name
trial_step() {
  check_slot "$slot"; check_token "$token"
  printf '%s' "$backend" | grep -Eqx "$n\.$app\.[a-z0-9]+\.skiff" || die "bad backend name for version $n" "$EXIT_USAGE"
  # the version host N.HOST: what the app sees as its host on skiff's own requests
  printf '%s' "$vhost" | grep -Eqx "$n(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?){2,}" || die "bad version host: $vhost" "$EXIT_USAGE"
  # SLOT (idle it) or SLOT:APP:N (load release N of APP again, as the state says)
  for r in $reset; do
    s=${r%%:*}
    check_slot "$s"
    case $r in
      *:*:*)
        _ra=${r#*:}; _rn=${_ra#*:}; _ra=${_ra%%:*}
        check_app "$_ra"; check_n "$_rn"
        _d=$(slot_dir "$s" "$(kind_of "$s")")
        rm -f "$_d"/before-*.json
        if [ -f "$APPS/$_ra/meta/$_rn.json" ]; then
          # (the slot's folder is setgid: slot.json is its owner app's group's)
          rm -f "$_d/slot.json"
          install -m 0640 "$APPS/$_ra/meta/$_rn.json" "$_d/slot.json"
          restart_slot "$s" "$(kind_of "$s")" || true
        else
          idle_slot "$s" "$(kind_of "$s")"
        fi
        ;;
      *) idle_slot "$s" "$(kind_of "$s")" ;;
    esac
    echo "reset slot $s"
  done
  restarted=0
  if [ -n "$slot" ]; then
    d=$(slot_dir "$slot" "$kind")
    [ -d "$d" ] || die "slot $slot does not exist on this node (re-run setup-node)"
    # keep what the slot ran, so an abort of this run (by its token) can put it back
    rm -f "$d"/before-*.json
    if [ -f "$d/slot.json" ]; then cp -p "$d/slot.json" "$d/before-$token.json"; fi
    sed "s/^{/{\"token\":\"$token\",/" "$APPS/$app/meta/$n.json" >"$d/slot.json.tmp"
    chmod 0640 "$d/slot.json.tmp"
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
  if [ -n "$slot" ]; then
    # Warm: at most 2 requests at a time, until WANT distinct processes answer this run's
    # TOKEN (release N and a nonce: a process an interrupted run loaded with another
    # release N never passes). A process still running another release answers with
    # that one, and one that started before this skiff_slot.py (an upgrade) answers with
    # the idle page (503, no X-Skiff-Release): then (once) the slot's processes are
    # restarted. Straight to Apache (the slot's vhost by its backend name), with the
    # forwarding headers NGINX would send, so the app sees N.HOST, loopback and http.
    out=$(mktemp)
    rounds=$(awk -v t="$timeout" 'BEGIN{print int(t * 50) + 1}')
    deadline=$(deadline_in "$timeout")
    ok=0 r=0 got=0
    while [ "$r" -lt "$rounds" ]; do
      r=$((r + 1))
      left=$(left_until "$deadline")
      [ "$left" != 0.000 ] || break
      : >"$out.1"
      : >"$out.2"
      curl -s -o /dev/null -D "$out.1" -m "$left" -H "Host: $n.$app.$slot.skiff" -H "X-Forwarded-Host: $vhost" \
        -H "X-Forwarded-Proto: http" "http://127.0.0.1:$APACHE_PORT$health" 2>/dev/null &
      c1=$!
      curl -s -o /dev/null -D "$out.2" -m "$left" -H "Host: $n.$app.$slot.skiff" -H "X-Forwarded-Host: $vhost" \
        -H "X-Forwarded-Proto: http" "http://127.0.0.1:$APACHE_PORT$health" 2>/dev/null &
      c2=$!
      wait "$c1" "$c2" || true
      # shellcheck disable=SC2046
      set -- $(awk -v n="$token" -v list="$out" '
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
      echo "skiff: slot $slot did not answer $health with release $n within ${timeout}s (app.toml [health] path and timeout); the app's error log says:" >&2
      tail -n 20 /var/log/apache2/error.log >&2 2>/dev/null || true
      exit "$EXIT_NOT_WARM"
    fi
    echo "warm $got $want $r"
    phase warm
  fi
  # The switch reloads NGINX: its config must load now, so that a broken file planted
  # anywhere fails this trial (and every node aborts) rather than one node's switch.
  if ! _t=$(as_root "$NODE" check nginx 2>&1); then
    printf '%s\n' "$_t" >&2
    die "nginx -t fails on this node, so no version can be switched here; nothing was changed" "$EXIT_NGINX"
  fi
  # health: release N through NGINX's loopback check port, 2xx or 3xx within the
  # timeout. The request asks for N.HOST (what the app sees, as for any request) and
  # names the backend in X-Skiff-Backend, which routes only on that port: a wildcard
  # host can never answer for a version no route points at yet.
  body=$(mktemp)
  rounds=$(awk -v t="$timeout" 'BEGIN{print int(t * 50) + 1}')
  deadline=$(deadline_in "$timeout")
  r=0 code=000
  while [ "$r" -lt "$rounds" ]; do
    r=$((r + 1))
    left=$(left_until "$deadline")
    [ "$left" != 0.000 ] || break
    code=$(curl -s -o "$body" -w '%{http_code}' -m "$left" -H "Host: $vhost" -H "X-Skiff-Backend: $backend" \
      "http://127.0.0.1:$CHECK_PORT$health" 2>/dev/null || true)
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
      exit "$EXIT_HEALTH"
      ;;
  esac
  phase health
}

# switch_step: the routing table (nginx -t, reload), then state.toml
switch_step() {
  [ -z "$run" ] || check_n "$run"
  # state.toml's folder is root's: the new state goes in through skiff-node (state)
  mkdir -p "$STAGING"
  _state_file=$(mktemp "$STAGING/state.XXXXXX")
  printf '%s' "$state" >"$_state_file"
  chmod 0644 "$_state_file"
  _prev=$(cat "$APPS/$app/units/current" 2>/dev/null || true)
  if [ -n "$run" ] && grep -qs -e ' --web ' "$APPS/$app/units/$run"/*.service &&
    grep -qs '\.timer$' "$APPS/$app/units/$run/enable"; then
    cron_secret
  fi
  _u=0
  units_to "$app" "$run" || _u=$?
  if [ "$_u" != 0 ]; then
    rm -f "$_state_file"
    units_to "$app" "$_prev" >/dev/null || true
    if [ "$_u" = 2 ]; then
      echo "skiff: skiff-node refused the units of version $run (above); version ${_prev:-(none)}'s workers and timers run again" >&2
    else
      echo "skiff: a worker of version $run did not stay up; version ${_prev:-(none)}'s workers and timers run again" >&2
    fi
    exit "$EXIT_WORKERS"
  fi
  phase units
  if ! install_routes "$routes"; then
    rm -f "$_state_file"
    units_to "$app" "$_prev" >/dev/null || true
    exit "$EXIT_NGINX"
  fi
  as_root "$NODE" state "$_state_file" || { rm -f "$_state_file"; die "could not write $STATE"; }
  rm -f "$_state_file"
  phase switch
}

# log_run: the run's line (`history`, one JSON line from skiff) appended to the app's
# deploy log
log_run() {
  [ -n "${history:-}" ] || return 0
  case $history in *'
'*) die "bad history line" "$EXIT_USAGE" ;; esac
  mkdir -p "$HISTORY_DIR"
  printf '%s\n' "$history" >>"$HISTORY_DIR/$app.jsonl"
}

# finish_step: idle the freed slots, prune, log the run, release both locks
finish_step() {
  for s in $freed; do
    check_slot "$s"
    idle_slot "$s" "$(kind_of "$s")"
  done
  for p in $prune; do
    check_n "$p"
    drop_release "$app" "$p"
  done
  log_run
  rm -rf "$NODE_LOCK"
  if holds "$LOCKS/$app.lock"; then rm -rf "$LOCKS/$app.lock"; fi
  phase prune
}

step=${1:-}
[ $# -gt 0 ] && shift
case $step in
  begin)
    check_app "$app"
    [ -f "$SETUP" ] || die "this node is not set up for skiff (no $SETUP)" "$EXIT_NOT_SET_UP"
    take "$LOCKS/$app.lock" "$brk"
    echo "---state"
    cat "$STATE" 2>/dev/null || true
    echo "---setup"
    cat "$SETUP"
    # the pool: one vhost file per slot (nodes set up before that: setup.toml's counts)
    if [ -d /etc/apache2/skiff-slots ]; then
      echo "---pool"
      # `SLOT USER`: the slot vhosts, each with the user its owner file names (www-data:
      # no app owns it yet)
      for f in /etc/apache2/skiff-slots/*.conf; do
        [ -e "$f" ] || continue
        f=${f##*/}
        f=${f%.conf}
        _ow=www-data
        if [ -f "/etc/apache2/skiff-slot-users/$f.conf" ]; then
          read -r _ _ _ow <"/etc/apache2/skiff-slot-users/$f.conf" || _ow=www-data
        fi
        echo "$f $_ow"
      done
    fi
    echo "---env"
    [ -f "$ENVDIR/$app.env" ] && echo "node-config=yes" || echo "node-config=no"
    if [ -d /run/systemd/system ]; then echo "init=systemd"; else echo "init=none"; fi
    # every release number published on disk: a dead run's leftovers never get their
    # number again (.tmp-N and .spare-N are the sync's own, which it tidies itself)
    echo "---found"
    for d in releases meta docroots env; do
      if [ -d "$APPS/$app/$d" ]; then ls "$APPS/$app/$d"; fi
    done | sed -nE 's/^([0-9]+)(\..*)?$/\1/p' | sort -un
    ;;

  services)
    # the node that holds the app's services, before the other nodes prepare: make them
    # ready for the addresses in `allow`, and print their credential files for those nodes
    check_app "$app"
    holds "$LOCKS/$app.lock" || die "this run does not hold the deploy lock of $app" "$EXIT_LOCK_HELD"
    ensure_services
    for _f in "$SERVICES_DIR/$app"/*.env "$SERVICES_DIR/$app"/*.json; do
      [ -f "$_f" ] || continue
      echo "---file ${_f##*/}"
      base64 -w0 "$_f"
      echo
    done
    ;;

  recover)
    check_app "$app"
    holds "$LOCKS/$app.lock" || die "this run does not hold the deploy lock of $app" "$EXIT_LOCK_HELD"
    for p in $numbers; do
      check_n "$p"
      drop_release "$app" "$p"
    done
    ;;

  prepare)
    check_app "$app"; check_n "$n"
    holds "$LOCKS/$app.lock" || die "this run does not hold the deploy lock of $app" "$EXIT_LOCK_HELD"
    mark "$LOCKS/$app.lock"
    printf '%s' "$build_timeout" | grep -Eqx '[0-9]{1,6}' || die "bad build timeout: $build_timeout" "$EXIT_USAGE"
    case $runtime in python | ruby | php | static) ;; *) die "bad runtime: $runtime" "$EXIT_USAGE" ;; esac
    for k in "$bundle" "$composer"; do
      [ -z "$k" ] || printf '%s' "$k" | grep -Eqx '[0-9a-f]{16}' || die "bad dependency key: $k" "$EXIT_USAGE"
    done
    case $bundle_local in '' | 1) ;; *) die "bad bundle_local: $bundle_local" "$EXIT_USAGE" ;; esac
    # (a subshell, not an `||` list, which would switch `set -e` off inside it)
    set +e
    (
      set -e
      prepare_step "$@"
    )
    _s=$?
    set -e
    [ "$_s" = 0 ] || exit "$_s"
    T0=$(now)
    echo "---prepared"
    brk=0
    take "$NODE_LOCK" 0
    print_state
    ;;

  nodelock)
    check_app "$app"
    holds "$LOCKS/$app.lock" || die "this run does not hold the deploy lock of $app" "$EXIT_LOCK_HELD"
    take "$NODE_LOCK" "$brk"
    print_state
    ;;

  trial)
    check_app "$app"; check_n "$n"
    holds "$NODE_LOCK" || die "this run does not hold the node lock" "$EXIT_LOCK_HELD"
    mark "$NODE_LOCK"
    trial_step
    ;;

  grow)
    check_app "$app"
    holds "$NODE_LOCK" || die "this run does not hold the node lock" "$EXIT_LOCK_HELD"
    mark "$NODE_LOCK"
    case $kind in python | ruby) ;; *) die "bad slot kind: $kind" "$EXIT_USAGE" ;; esac
    for s in $own_slots; do check_slot "$s"; done
    [ -n "$own_slots" ] || die "no slots to own" "$EXIT_USAGE"
    # shellcheck disable=SC2086 # one word per slot, each checked above
    as_root "$NODE" slots-own "$kind" "$app" $own_slots
    phase grow
    ;;

  switch)
    check_app "$app"
    holds "$NODE_LOCK" || die "this run does not hold the node lock" "$EXIT_LOCK_HELD"
    switch_step
    ;;

  finish)
    check_app "$app"
    holds "$NODE_LOCK" || die "this run does not hold the node lock" "$EXIT_LOCK_HELD"
    finish_step
    ;;

  go)
    # a deploy to one node: trial, switch and finish in one round trip (no other node
    # has to agree first). After `---switched` the new version is live: nothing may
    # fail the step any more, so the finish is best effort.
    check_app "$app"; check_n "$n"
    holds "$NODE_LOCK" || die "this run does not hold the node lock" "$EXIT_LOCK_HELD"
    mark "$NODE_LOCK"
    trial_step
    switch_step
    echo "---switched"
    set +e
    finish_step
    exit 0
    ;;

  destroy)
    check_app "$app"
    holds "$NODE_LOCK" || die "this run does not hold the node lock" "$EXIT_LOCK_HELD"
    holds "$LOCKS/$app.lock" || die "this run does not hold the deploy lock of $app" "$EXIT_LOCK_HELD"
    for s in $freed; do
      check_slot "$s"
      idle_slot "$s" "$(kind_of "$s")"
    done
    if [ -d "$APPS/$app" ]; then
      for f in "$APPS/$app"/* "$APPS/$app"/.[!.]*; do
        [ -e "$f" ] || continue
        [ "$(basename "$f")" = data ] || rm -rf "$f"
      done
      rmdir "$APPS/$app" 2>/dev/null || true
    fi
    rm -f "$ENVDIR/$app.env"
    rm -rf "$NODE_LOCK" "$LOCKS/$app.lock"
    ;;

  abort)
    check_app "$app"
    if holds "$NODE_LOCK"; then
      # every slot this run loaded (by its token) goes back to what it ran
      if [ -n "$token" ]; then
        check_token "$token"
        for d in "$SLOTS"/python/* "$SLOTS"/ruby/*; do
          [ -d "$d" ] || continue
          s=$(basename "$d")
          if [ -f "$d/before-$token.json" ]; then
            mv -f "$d/before-$token.json" "$d/slot.json"
            restart_slot "$s" "$(kind_of "$s")" || true
          elif [ -f "$d/slot.json" ] && grep -q "\"token\":\"$token\"" "$d/slot.json"; then
            idle_slot "$s" "$(kind_of "$s")"
          fi
        done
      fi
      rm -rf "$NODE_LOCK"
    fi
    if holds "$LOCKS/$app.lock"; then
      [ -n "$n" ] && { check_n "$n"; drop_release "$app" "$n"; }
      log_run
      rm -rf "$LOCKS/$app.lock"
    fi
    ;;

  inspect)
    # for `skiff diff`: the state, and the current release's number, manifest and meta
    check_app "$app"
    echo "---state"
    cat "$STATE" 2>/dev/null || true
    _cur=$(awk -v s="[apps.$app]" '$0 == s { f = 1; next } /^\[/ { f = 0 } f && $1 == "current" { print $3; exit }' "$STATE" 2>/dev/null || true)
    if [ -n "$_cur" ]; then
      check_n "$_cur"
      echo "---release"
      echo "$_cur"
      echo "---manifest"
      cat "$APPS/$app/releases/$_cur.manifest" 2>/dev/null || true
      echo "---meta"
      cat "$APPS/$app/meta/$_cur.json" 2>/dev/null || true
      echo
    fi
    ;;

  files)
    # for `skiff diff`: the content of regular files of release N (`paths`, one a line)
    check_app "$app"
    check_n "$n"
    printf '%s\n' "$paths" | while IFS= read -r _p; do
      [ -n "$_p" ] || continue
      case /$_p/ in */../* | *//*) die "bad path: $_p" "$EXIT_USAGE" ;; esac
      _f=$APPS/$app/releases/$n/$_p
      if [ -f "$_f" ] && [ ! -L "$_f" ]; then
        echo "---file $_p"
        base64 -w0 "$_f"
        echo
      fi
    done
    ;;

  config)
    # `skiff config`: the app's node-side env file (ENVDIR/APP.env, 0600): list it, or set
    # (`lines`: KEY=VALUE lines) or unset (`lines`: KEY lines) names, atomically
    check_app "$app"
    _ef=$ENVDIR/$app.env
    case $op in
      list) cat "$_ef" 2>/dev/null || true ;;
      set | unset)
        _keys=$(printf '%s\n' "$lines" | sed -n 's/=.*//p; /=/!p' | sort -u)
        for _k in $_keys; do
          printf '%s' "$_k" | grep -Eqx '[A-Za-z_][A-Za-z0-9_]{0,127}' || die "bad variable name: $_k" "$EXIT_USAGE"
        done
        mkdir -p "$ENVDIR"
        (
          umask 077
          {
            if [ -f "$_ef" ]; then
              awk -v keys="$(printf '%s\n' "$_keys" | tr '\n' ' ')" 'BEGIN { n = split(keys, a, " "); for (i = 1; i <= n; i++) k[a[i]] = 1 }
                { split($0, p, "="); if (!(p[1] in k)) print }' "$_ef"
            fi
            if [ "$op" = set ]; then printf '%s\n' "$lines" | grep '='; fi
          } >"$_ef.tmp"
        )
        chmod 0600 "$_ef.tmp"
        mv -f "$_ef.tmp" "$_ef"
        ;;
      *) die "bad config operation: $op" "$EXIT_USAGE" ;;
    esac
    ;;

  probe)
    # for `skiff status`: HOST's answer through NGINX on this node, at PATH
    printf '%s' "$host" | grep -Eqx '[a-z0-9]([a-z0-9.-]{0,252})' || die "bad host: $host" "$EXIT_USAGE"
    printf '%s' "$path" | grep -Eqx '/[A-Za-z0-9/._~?=&+,:@%-]{0,1023}' || die "bad path: $path" "$EXIT_USAGE"
    curl -s -o /dev/null -w '%{http_code}' -m 10 -H "Host: $host" "http://127.0.0.1$path" || true
    echo
    ;;

  history)
    check_app "$app"
    cat "$HISTORY_DIR/$app.jsonl" 2>/dev/null || true
    ;;

  peek)
    echo "---state"
    cat "$STATE" 2>/dev/null || true
    # with an app: its releases' units (`N UNIT`), and what systemd says of the current ones
    if [ -n "${app:-}" ]; then
      check_app "$app"
      echo "---disk"
      if [ -d "$APPS/$app" ]; then du -sk "$APPS/$app" | cut -f1; else echo 0; fi
      _ua=$APPS/$app/units
      echo "---units"
      for _e in "$_ua"/*/enable; do
        [ -f "$_e" ] || continue
        _n=${_e%/enable}
        _n=${_n##*/}
        sed "s/^/$_n /" "$_e"
      done
      _cur=$(cat "$_ua/current" 2>/dev/null || true)
      if [ -n "$_cur" ] && [ -s "$_ua/$_cur/enable" ] && [ -d /run/systemd/system ]; then
        set --
        while read -r _u; do
          set -- "$@" "$_u"
          case $_u in *.timer) set -- "$@" "${_u%.timer}.service" ;; esac
        done <"$_ua/$_cur/enable"
        echo "---unitstate"
        systemctl show -p Id -p ActiveState -p SubState -p NRestarts -p Result -p ExecMainStatus \
          -p LastTriggerUSec -p NextElapseUSecRealtime -p ExecMainExitTimestamp "$@" 2>/dev/null || true
      fi
    fi
    ;;

  unlock)
    check_app "$app"
    if holds "$NODE_LOCK"; then rm -rf "$NODE_LOCK"; fi
    if [ "$which" = both ] && holds "$LOCKS/$app.lock"; then rm -rf "$LOCKS/$app.lock"; fi
    ;;

  *)
    die "unknown step: $step" "$EXIT_USAGE"
    ;;
esac
