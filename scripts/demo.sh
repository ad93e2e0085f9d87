#!/usr/bin/env bash
# Try skiff without a server: builds skiff, creates a throwaway Debian node in a Linux
# network namespace on this machine, sets it up (NGINX, Apache, mod_wsgi...), deploys a
# freshly scaffolded Python app, ships a one-line change, rolls it back, and destroys the
# node again (keep it with KEEP=1). Needs root on Linux; installs what it needs with apt.
#
#   sudo bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces): sudo bash $0" >&2; exit 1; }

say() { printf '\n\033[1mdemo: %s\033[0m\n' "$*" >&2; }

say "preparing this machine (debootstrap rootfs, apt proxy; about a minute the first time)"
bash .ci/prepare-nodes.sh
command -v curl >/dev/null || apt-get install -y -q curl >/dev/null

say "building skiff"
cargo build --locked -q
skiff=$PWD/target/debug/skiff
work=$(mktemp -d /tmp/skiff-demo.XXXXXX)
export SKIFF_STATE=$work/cluster.toml
node=demo$$

say "creating a throwaway node"
"$skiff" create-node "$node" --provider local --yes
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    echo "demo: keeping node $node; remove it with: SKIFF_STATE=$SKIFF_STATE $skiff destroy-node $node --yes" >&2
  else
    "$skiff" destroy-node "$node" --yes >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT
address=$("$skiff" --json list-nodes | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')

say "setting it up as a web host"
"$skiff" setup-node "$node"

say "scaffolding and deploying an app"
"$skiff" init "$work/blog" --runtime python
"$skiff" update "$work/blog"
curl -s -H "Host: blog.test" "http://$address/"

say "shipping a one-line change"
sed -i 's/Hello from/Bonjour from/' "$work/blog/app.py"
"$skiff" update "$work/blog"
curl -s -H "Host: blog.test" "http://$address/"
curl -s -H "Host: prev.blog.test" "http://$address/"

say "rolling back"
"$skiff" rollback blog.test
curl -s -H "Host: blog.test" "http://$address/"
"$skiff" versions blog.test
