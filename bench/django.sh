#!/bin/bash
# bench/django.sh - a cold `skiff update` of the Django site (the `django-admin
# startproject` site of tests/integration/frameworks.rs: DEBUG = False, vendored wheels,
# `python manage.py collectstatic --noinput` as a build command) against the floor any
# Python deploy pays on the same node: `python3 -m venv` + `pip install --no-index
# --find-links` of the same wheels (over a fresh ssh, wheels already on the node).
#
#   bash bench/django.sh            (root; a throwaway local node; goal: within 1.2x)
#   REPS=7 bash bench/django.sh     repetitions (default 5; medians are printed)
#
# Cold: each skiff run starts after `skiff destroy-app` (no release, no venv on the node)
# and ships the whole site (8 MB of wheels), builds the venv, runs collectstatic, loads a
# slot, health-checks and switches; the wall time is the whole `skiff update` process.
# Runs alternate skiff-first and anchor-first. Needs the wheel cache (.ci/fetch-wheels.sh)
# and what local nodes need (.ci/prepare-nodes.sh); uses a frozen set-up rootfs
# (tests/support/setup.rs) when one exists, else runs a full setup-node (~30 s).
# Environment: SKIFF (binary; default: a release build), REPS (5), SKIFF_WHEELS.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
[[ $(id -u) == 0 ]] || { echo "bench/django.sh: run as root (it makes a local node)" >&2; exit 2; }
wheels=${SKIFF_WHEELS:-/var/cache/skiff/wheels}/django
[[ -f $wheels/.complete ]] || { echo "bench/django.sh: no Django wheels at $wheels: run bash .ci/fetch-wheels.sh" >&2; exit 2; }
if [[ -z ${SKIFF:-} ]]; then
  echo "building (release)..." >&2
  cargo build --release --quiet --bin skiff
  SKIFF=target/release/skiff
fi
SKIFF=$(readlink -f "$SKIFF")

tmp=$(mktemp -d /tmp/skiff-bench.XXXXXX)
state=$tmp/state/cluster.toml
export HOME=$tmp NO_COLOR=1 SKIFF_LOCAL_TTL=3600
NODE=django$$
sk() { "$SKIFF" --state "$state" "$@"; }
cleanup() {
  sk destroy-node "$NODE" --yes >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l | xargs printf '%.2f'; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "creating node $NODE..." >&2
# shellcheck disable=SC2012 # newest first; the names are skiff's own
frozen=$(ls -td /var/cache/skiff/rootfs-bookworm-setup-*/ 2>/dev/null | head -n 1 || true)
if [[ -n $frozen && -e $frozen/.skiff-setup-ready ]]; then
  SKIFF_LOCAL_ROOTFS=${frozen%/} sk create-node "$NODE" --provider local --yes >/dev/null
else
  sk create-node "$NODE" --provider local --yes >/dev/null
fi
sk setup-node "$NODE" >/dev/null 2>&1
read -r ADDR KEY < <(python3 - "$state" "$NODE" <<'PY'
import sys, tomllib
n = tomllib.load(open(sys.argv[1], 'rb'))['nodes'][sys.argv[2]]
print(n['address'], n['identity'])
PY
)
on_node() {
  ssh -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o "UserKnownHostsFile=$tmp/state/known_hosts" -o ControlMaster=no -o ControlPath=none \
    "root@$ADDR" "$@"
}

echo "generating the site (django-admin startproject)..." >&2
site=$tmp/mysite
mkdir -p "$tmp/lib" "$site/wheels"
for w in "$wheels"/*.whl; do python3 -m zipfile -e "$w" "$tmp/lib"; done
PYTHONPATH=$tmp/lib python3 -m django startproject mysite "$site"
python3 - "$site/mysite/settings.py" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("DEBUG = True", "DEBUG = False")
s = s.replace("ALLOWED_HOSTS = []", 'ALLOWED_HOSTS = ["site.test", ".site.test"]')
s = s.replace("STATIC_URL = 'static/'", "STATIC_URL = 'static/'\nSTATIC_ROOT = BASE_DIR / 'static' / 'static'")
open(p, "w").write(s)
PY
cp "$wheels"/*.whl "$site/wheels/"
cp "$wheels/requirements.txt" "$site/"
cat >"$site/app.toml" <<'TOML'
name = "mysite"
runtime = "python"
hostnames = ["site.test"]

[python]
wsgi = "mysite.wsgi:application"
requirements = "requirements.txt"
wheels = "wheels"

[health]
path = "/admin/login/"

[build]
commands = ["python manage.py collectstatic --noinput"]
TOML
# the anchor's copy of the same wheels on the node (not timed)
on_node 'rm -rf /root/wheels && mkdir /root/wheels'
tar -C "$site" -cf - wheels requirements.txt | on_node 'tar -C /root -xf -'

skiff_run() {
  sk destroy-app site.test --yes >/dev/null 2>&1 || true
  local t
  t=$(now)
  sk --json update "$site" --node "$NODE" >"$tmp/report.json" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
  since "$t" >>"$tmp/skiff"; echo >>"$tmp/skiff"
  python3 - "$tmp/report.json" >>"$tmp/phases" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["nodes"][0]["phases"]
print(" ".join(f"{k}={v:.2f}" for k, v in sorted(p.items())))
PY
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: site.test' "http://$ADDR/static/admin/css/base.css")
  [[ $code == 200 ]] || { echo "bench/django.sh: the admin CSS answered $code" >&2; exit 1; }
}
anchor_run() {
  local t
  t=$(now)
  on_node 'rm -rf /root/venv && python3 -m venv /root/venv && /root/venv/bin/pip install -q --disable-pip-version-check --no-index --find-links /root/wheels -r /root/requirements.txt'
  since "$t" >>"$tmp/anchor"; echo >>"$tmp/anchor"
}
: >"$tmp/skiff"; : >"$tmp/anchor"; : >"$tmp/phases"
echo "warming up (one run each, not counted)..." >&2
skiff_run; anchor_run
: >"$tmp/skiff"; : >"$tmp/anchor"; : >"$tmp/phases"
for i in $(seq "$REPS"); do
  if (( i % 2 )); then skiff_run; anchor_run; else anchor_run; skiff_run; fi
  echo "run $i: skiff $(tail -n 1 "$tmp/skiff")s, anchor $(tail -n 1 "$tmp/anchor")s" >&2
done
s=$(grep . "$tmp/skiff" | median)
a=$(grep . "$tmp/anchor" | median)
ratio=$(echo "$s / $a" | bc -l)
echo "cold deploy of the Django site (Django 4.2, 3 wheels, 8 MB), medians of $REPS runs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-58s %7ss\n' "skiff update (sync, venv, collectstatic, slot, check, switch)" "$s"
printf '%-58s %7ss\n' "anchor: ssh + python3 -m venv + pip install --no-index" "$a"
printf '%-58s %7.2f  goal <= 1.2x %s\n' "ratio" "$ratio" "$(echo "$ratio <= 1.2" | bc -l | sed 's/1/ok/;s/0/MISSED/')"
echo "skiff's phases (per run):"
sed 's/^/  /' "$tmp/phases"
