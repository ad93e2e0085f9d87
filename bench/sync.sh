#!/bin/bash
# bench/sync.sh - skiff's delta sync against `rsync -az --delete -e ssh`, side by side, in
# one run, to the same real node, on a generated 5,000-file / ~100 MB tree.
#
#   bash bench/sync.sh            (root; makes a throwaway node with skiff create-node)
#   REPS=7 bash bench/sync.sh     repetitions per scenario (default 5; medians are printed)
#
# Scenarios, each run alternately skiff-first and rsync-first:
#   one-line change  one line of one small source file edited, then both tools sync
#   no-op            nothing changed
#   cold copy        into an empty target (skiff: no base release, empty local caches, so
#                    it hashes the whole tree too; rsync: an emptied folder)
# Wall time is the whole process (start, ssh connect, scan, transfer, close). Bytes on the
# wire are the node's veth counters (both directions, SSH and TCP overhead included).
# skiff runs through examples/sync_push.rs, the library call `skiff update` makes.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
[[ $(id -u) == 0 ]] || { echo "bench/sync.sh: run as root (it makes a local node)" >&2; exit 2; }
command -v rsync >/dev/null || { echo "bench/sync.sh: install rsync on this machine" >&2; exit 2; }

echo "building (release)..." >&2
cargo build --release --quiet --bin skiff --example sync_push
SKIFF_BIN=$PWD/target/release/skiff
PUSH=$PWD/target/release/examples/sync_push

W=$(mktemp -d /tmp/skiff-bench.XXXXXX)
STATE=$W/state/cluster.toml
NODE=bench$$
sk() { "$SKIFF_BIN" --state "$STATE" "$@"; }
cleanup() {
  sk destroy-node "$NODE" --yes >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

echo "creating node $NODE..." >&2
sk create-node "$NODE" --provider local --yes >/dev/null
read -r ADDR NUM KEY < <(python3 - "$STATE" "$NODE" <<'EOF'
import sys, tomllib
c = tomllib.load(open(sys.argv[1], 'rb'))
n = c['nodes'][sys.argv[2]]
print(n['address'], n['provider_data']['number'], n['identity'])
EOF
)
SSH_OPTS="-i $KEY -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$W/state/known_hosts"
on_node() { ssh $SSH_OPTS "root@$ADDR" "$@"; }
echo "installing rsync on the node (apt proxy)..." >&2
on_node 'apt-get -qq update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y rsync >/dev/null'
on_node 'rsync --version | head -1; rdiff --version | head -1' >&2
rsync --version | sed -n 1p >&2

TREE=$W/tree
echo "generating the tree..." >&2
python3 - "$TREE" <<'EOF'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(42)
words = ("def class return import from self value items for while if else elif try except "
         "print data result config request response user name path file open close read "
         "write list dict set int str None True False lambda yield with as pass break").split()
n_large, n_small = 10, 4990
for i in range(n_small):
    d = os.path.join(root, "src", "mod%02d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    target = rnd.randint(2_000, 18_000)
    lines, size = [], 0
    while size < target:
        line = "    " * rnd.randint(0, 3) + " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 12))) + "\n"
        lines.append(line); size += len(line)
    with open(os.path.join(d, "file%03d.py" % (i % 100)), "w") as f:
        f.write("".join(lines))
os.makedirs(os.path.join(root, "static"), exist_ok=True)
for i in range(n_large):
    with open(os.path.join(root, "static", "asset%02d.bin" % i), "wb") as f:
        f.write(rnd.randbytes(5_000_000))
EOF
echo "tree: $(find "$TREE" -type f | wc -l) files, $(du -sm "$TREE" | cut -f1) MB" >&2

R=/srv/skiff/apps/bench/releases
RS=/srv/rsync/tree
on_node "mkdir -p $RS $R"
wire() { echo $(( $(cat /sys/class/net/tn${NUM}h/statistics/rx_bytes) + $(cat /sys/class/net/tn${NUM}h/statistics/tx_bytes) )); }
now() { date +%s.%N; }
REL=0
RESULTS=$W/results
: >"$RESULTS"

# run_skiff SCENARIO BASE CACHE_DIR: pushes release REL+1, records wall, bytes, round trips
run_skiff() {
  local scen=$1 base=$2 cache=$3 t0 t1 b0 b1 json
  REL=$((REL + 1))
  b0=$(wire); t0=$(now)
  json=$("$PUSH" --host "$ADDR" --identity "$KEY" --ssh-dir "$W/state" --releases "$R" \
    --cache "$cache" ${base:+--base "$base"} --new "$REL" "$TREE")
  t1=$(now); b1=$(wire)
  local rt; rt=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["round_trips"])' "$json")
  echo "$scen skiff $(echo "$t1 - $t0" | bc -l) $((b1 - b0)) $rt" >>"$RESULTS"
  # untimed: wait for the node's background spare clone of this release (it holds the
  # lock of R) so that it neither slows the rsync run next nor the next skiff run
  on_node "cd $R && flock -w 120 . true"
}
run_rsync() {
  local scen=$1 t0 t1 b0 b1
  b0=$(wire); t0=$(now)
  rsync -az --delete -e "ssh $SSH_OPTS" "$TREE/" "root@$ADDR:$RS/"
  t1=$(now); b1=$(wire)
  echo "$scen rsync $(echo "$t1 - $t0" | bc -l) $((b1 - b0)) 1" >>"$RESULTS"
}
both() {  # both SCENARIO REP BASE CACHE
  if (( $2 % 2 )); then run_skiff "$1" "$3" "$4"; run_rsync "$1"
  else run_rsync "$1"; run_skiff "$1" "$3" "$4"; fi
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "cold copy x$REPS..." >&2
for i in $(seq "$REPS"); do
  on_node "rm -rf $R/* $R/.tmp-* $RS && mkdir -p $RS"
  both cold "$i" "" "$W/cold-cache-$i"
done
# Warm state for the incremental scenarios: release REL is complete and cached.
CACHE=$W/cache
REL=$((REL + 1)); "$PUSH" --host "$ADDR" --identity "$KEY" --ssh-dir "$W/state" --releases "$R" \
  --cache "$CACHE" --new "$REL" "$TREE" >/dev/null
run_rsync warmup >/dev/null

echo "no-op x$REPS..." >&2
for i in $(seq "$REPS"); do both noop "$i" "$REL" "$CACHE"; done

echo "one-line change x$REPS..." >&2
F=$TREE/src/mod17/file042.py
for i in $(seq "$REPS"); do
  sed -i "3s/.*/    value = $i  # the one-line change/" "$F"
  both oneline "$i" "$REL" "$CACHE"
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$RESULTS" "$REPS" "$LOAD_BEFORE" "$LOAD_AFTER" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def med(scen, tool, col):
    v = [float(r[col]) for r in rows if r[0] == scen and r[1] == tool]
    return statistics.median(v)
print(f"skiff sync vs rsync -az --delete -e ssh, 5,000 files / ~100 MB, medians of {sys.argv[2]} runs")
print(f"{'scenario':<16} {'metric':<12} {'skiff':>12} {'rsync':>12} {'ratio':>7}  goal")
def line(scen, label, metric, col, goal, fmt):
    s, r = med(scen, "skiff", col), med(scen, "rsync", col)
    ratio = s / r if r else float('nan')
    ok = "" if goal is None else ("ok" if ratio <= goal else "MISSED")
    print(f"{label:<16} {metric:<12} {fmt(s):>12} {fmt(r):>12} {ratio:>7.2f}  {'' if goal is None else '<= %.1fx %s' % (goal, ok)}")
secs = lambda v: f"{v:.3f} s"
byt = lambda v: f"{int(v):,}"
line("oneline", "one-line change", "wall", 2, 1.0, secs)
line("oneline", "one-line change", "bytes", 3, 1.1, byt)
line("noop", "no-op", "wall", 2, None, secs)
line("noop", "no-op", "bytes", 3, None, byt)
rt = med("noop", "skiff", 4)
print(f"{'no-op':<16} {'round trips':<12} {int(rt):>12} {'(1 ssh cmd)':>12} {'':>7}  <= 3 {'ok' if rt <= 3 else 'MISSED'}")
rt1 = med("oneline", "skiff", 4)
print(f"{'one-line change':<16} {'round trips':<12} {int(rt1):>12}")
line("cold", "cold copy", "wall", 2, 1.2, secs)
line("cold", "cold copy", "bytes", 3, None, byt)
print(f"machine load average (1, 5, 15 min): {sys.argv[3]} before, {sys.argv[4]} after")
EOF
