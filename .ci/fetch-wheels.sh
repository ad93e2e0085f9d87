#!/usr/bin/env bash
# Downloads, once, the wheels of the framework apps the real-node tests deploy (Django and
# Flask, tests/integration/frameworks.rs; bench/django.sh) into a cache folder outside the
# repo: test nodes reach only Debian's mirror, never PyPI, and the wheels are not
# committed. Skipped when the cache already holds this exact set. Safe to re-run.
#
#   ${SKIFF_WHEELS:-/var/cache/skiff/wheels}/django/  *.whl + requirements.txt (the pins)
#   ${SKIFF_WHEELS:-/var/cache/skiff/wheels}/flask/   same
#
# The wheels fit a Debian 12 node's python3 (3.11, x86_64 glibc): pip picks them for that
# interpreter whatever Python runs this script.
set -euo pipefail
cache=${SKIFF_WHEELS:-/var/cache/skiff/wheels}
say() { printf 'fetch-wheels: %s\n' "$*" >&2; }

fetch() { # fetch NAME PIN...
  name=$1; shift
  dir=$cache/$name
  want=$(printf '%s\n' "$@")
  if [ -f "$dir/requirements.txt" ] && [ "$(cat "$dir/requirements.txt")" = "$want" ] &&
    [ -f "$dir/.complete" ]; then
    say "$name wheels ready at $dir"
    return
  fi
  say "downloading $name wheels into $dir"
  tmp=$cache/.tmp-$name
  rm -rf "$tmp"
  mkdir -p "$tmp"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp --platform manylinux2014_x86_64 -d "$tmp" "$@"
  printf '%s\n' "$want" >"$tmp/requirements.txt"
  touch "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

python3 -m pip --version >/dev/null 2>&1 || { say "needs pip (apt-get install python3-pip)"; exit 1; }
# Every pin, dependencies included (--no-deps): the same files on every run.
fetch django Django==4.2.30 asgiref==3.13.0 sqlparse==0.6.1
fetch flask Flask==3.1.3 Werkzeug==3.1.9 Jinja2==3.1.6 MarkupSafe==3.0.4 \
  itsdangerous==2.2.0 click==8.5.1 blinker==1.9.0
