#!/usr/bin/env bash
# Try skiff without a server: builds skiff, creates a throwaway Debian node in a Linux
# network namespace on this machine, sets it up (NGINX, Apache, mod_wsgi...), deploys a
# freshly scaffolded Python app, ships a one-line change, rolls it back, and destroys the
# node again (keep it with KEEP=1). Needs root on Linux; installs what it needs with apt.
#
#   bash scripts/demo.sh            # as root
#   sudo bash scripts/demo.sh       # or through sudo: skiff is built as you, with your cargo
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces): bash $0 as root, or sudo bash $0" >&2; exit 1; }

say() { printf '\n\033[1mdemo: %s\033[0m\n' "$*" >&2; }

# skiff needs Rust 1.85 or newer (edition 2024). Under sudo, root's PATH usually lacks
# the invoking user's rustup cargo: then skiff is built as that user, with their cargo.
# As root: cargo on PATH, else root's ~/.cargo/bin, else rustup is installed (Debian's
# `rustup` package where there is one, else the official installer: Debian 12's own
# `cargo` package is 1.63, too old).
build_as=()
find_cargo() {
  if command -v cargo >/dev/null; then return; fi
  if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    local home
    home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    if [ -x "$home/.cargo/bin/cargo" ]; then
      build_as=(sudo -u "$SUDO_USER" -H env "PATH=$home/.cargo/bin:$PATH")
      return
    fi
  fi
  if [ -x /root/.cargo/bin/cargo ]; then
    export PATH="/root/.cargo/bin:$PATH"
    return
  fi
  say "no cargo found: installing rustup (the Rust toolchain installer) for root"
  if apt-get install -y -q rustup >/dev/null 2>&1; then
    rustup default stable
  else
    command -v curl >/dev/null || apt-get install -y -q curl >/dev/null
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="/root/.cargo/bin:$PATH"
  fi
}

say "preparing this machine (debootstrap rootfs, apt proxy; about a minute the first time)"
bash .ci/prepare-nodes.sh
command -v curl >/dev/null || apt-get install -y -q curl >/dev/null

say "building skiff"
find_cargo
"${build_as[@]}" cargo build --locked -q || {
  echo "demo: the build failed; skiff needs Rust 1.85 or newer (\`rustup update stable\`)" >&2
  exit 1
}
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
address=$("$skiff" --json list-nodes | python3 -c 'import json,sys; print(json.load(sys.stdin)["nodes"][0]["address"])')

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
