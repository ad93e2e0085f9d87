#!/bin/bash
# bench/setup-node.sh - how long `skiff setup-node` takes, side by side with anchors.
#
#   first run : skiff setup-node on a fresh local node
#       anchor: `apt-get update && apt-get install` of the same packages over plain ssh on
#               another fresh node (the floor: what any provisioning must at least do)
#   re-run    : skiff setup-node on the set-up node (median of $RERUNS; goal < 5 s)
#       anchor: `ssh root@node true` with a fresh connection (median of $RERUNS)
#   set-up node from the frozen rootfs (tests/support/setup.rs), when one exists:
#               create-node + setup-node
#
# Needs root and what local nodes need (see .ci/run). Both use the same apt proxy cache,
# one after the other (never at once), in alternating order.
# Environment: SKIFF (binary; default target/release/skiff if built, else target/debug/skiff:
# the time is spent on the node, not in skiff), RERUNS (5), ROUNDS (2: first runs, each
# round on two fresh nodes, alternating which of skiff and the anchor goes first).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${SKIFF:-} ]]; then
  if [[ -x target/release/skiff ]]; then SKIFF=target/release/skiff
  else cargo build --quiet; SKIFF=target/debug/skiff; fi
fi
SKIFF=$(readlink -f "$SKIFF")
RERUNS=${RERUNS:-5}
ROUNDS=${ROUNDS:-2}
PACKAGES="nginx apache2 libapache2-mod-wsgi-py3 libapache2-mod-php libapache2-mod-passenger python3-venv rdiff curl ca-certificates sudo tar gzip"

tmp=$(mktemp -d /tmp/skiff-bench.XXXXXX)
state=$tmp/cluster.toml
export HOME=$tmp NO_COLOR=1 SKIFF_LOCAL_TTL=3600
nodes=()
cleanup() {
  for n in "${nodes[@]}"; do "$SKIFF" --state "$state" destroy-node "$n" --yes >/dev/null 2>&1 || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

sk() { "$SKIFF" --state "$state" "$@"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l | xargs printf '%.2f'; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
address() { sk --json list-nodes | python3 -c "import json,sys; print([n['address'] for n in json.load(sys.stdin)['nodes'] if n['name'] == '$1'][0])"; }
KEY=${SKIFF_LOCAL_HOME:-/var/lib/skiff-local}/id_ed25519
ssh_node() {
  local a=$1; shift
  ssh -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
      -o "UserKnownHostsFile=$tmp/known_hosts" -o ControlMaster=no -o ControlPath=none "root@$a" "$@"
}

make_node() { sk create-node "$1" --provider local --yes >/dev/null 2>&1; nodes+=("$1"); }

echo "skiff setup-node benchmark ($("$SKIFF" --version), $(nproc) cores)" >&2

# First runs, ROUNDS times on fresh nodes, alternating which goes first (round 1: the
# anchor first; round 2: skiff first; ...), so neither always gets the warmer apt proxy.
anchor_first() {
  make_node "anchor$1"
  local a t
  a=$(address "anchor$1")
  t=$(now)
  ssh_node "$a" "export DEBIAN_FRONTEND=noninteractive; apt-get -q update >/dev/null && apt-get install -q -y $PACKAGES >/dev/null" 2>/dev/null
  since "$t" >>"$tmp/anchor_first"; echo >>"$tmp/anchor_first"
}
skiff_first() {
  make_node "bench$1"
  local t
  t=$(now)
  sk setup-node "bench$1" >/dev/null 2>&1
  since "$t" >>"$tmp/skiff_first"; echo >>"$tmp/skiff_first"
}
for r in $(seq "$ROUNDS"); do
  if (( r % 2 )); then anchor_first "$r"; skiff_first "$r"; else skiff_first "$r"; anchor_first "$r"; fi
done
anchor_first=$(median <"$tmp/anchor_first")
skiff_first=$(median <"$tmp/skiff_first")

# Re-runs on the first set-up node, interleaved with the anchor (skiff, ssh, skiff, ...).
a_bench=$(address bench1)
: >"$tmp/skiff_rerun"; : >"$tmp/anchor_rerun"
for _ in $(seq "$RERUNS"); do
  t=$(now); sk setup-node bench1 >/dev/null 2>&1; since "$t" >>"$tmp/skiff_rerun"; echo >>"$tmp/skiff_rerun"
  t=$(now); ssh_node "$a_bench" true; since "$t" >>"$tmp/anchor_rerun"; echo >>"$tmp/anchor_rerun"
done
skiff_rerun=$(median <"$tmp/skiff_rerun")
anchor_rerun=$(median <"$tmp/anchor_rerun")

printf '%-44s %8s %8s %7s\n' "case" "skiff" "anchor" "ratio"
printf '%-44s %7ss %7ss %7.2f\n' "first run, median of $ROUNDS (anchor: apt-get)" "$skiff_first" "$anchor_first" "$(echo "$skiff_first / $anchor_first" | bc -l)"
printf '%-44s %7ss %7ss %7.2f\n' "re-run, median of $RERUNS (anchor: ssh true)" "$skiff_rerun" "$anchor_rerun" "$(echo "$skiff_rerun / $anchor_rerun" | bc -l)"

frozen=''
for d in /var/cache/skiff/rootfs-bookworm-setup-*/; do
  if [[ -e $d/.skiff-setup-ready && ( -z $frozen || $d -nt $frozen ) ]]; then frozen=$d; fi
done
if [[ -n $frozen ]]; then
  t=$(now)
  SKIFF_LOCAL_ROOTFS=${frozen%/} sk create-node frozen --provider local --yes >/dev/null 2>&1
  nodes+=(frozen)
  sk setup-node frozen >/dev/null 2>&1
  printf '%-44s %7ss\n' "set-up node from the frozen rootfs" "$(since "$t")"
fi
