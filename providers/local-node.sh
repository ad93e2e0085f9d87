#!/bin/bash
# local-node.sh - throwaway Debian nodes for `skiff create-node --provider local`.
# Embedded in the skiff binary (src/providers/local.rs) and run with bash as root.
# Adapted from the verified test-node and systemd-node recipes (Debian 12 host, no Docker).
#
#   local-node.sh up-auto FIRST [ID]  allocate the lowest free node number >= FIRST, bring
#                                 it up, print the number on stdout (ID: an owner token
#                                 kept in the node's folder)
#   local-node.sh up N [ID]       bring node N (2..254) up at 10.250.0.N
#   local-node.sh down N [ID]     destroy node N: processes, mounts, netns, veth, files
#                                 (with ID: only if the node still carries that token, so
#                                 a stale record never destroys a newer node of that number)
#   local-node.sh ensure-rootfs   debootstrap the Debian rootfs if it is missing (~1 min)
#   local-node.sh key             create the login key if missing, print its path
#   local-node.sh list            node numbers of this state dir, one a line
#   local-node.sh init-pid N      PID (on this host) of node N's PID 1
#
# One node = network namespace "nodeN" + veth pair tnNh (host end, port of bridge tnbr0,
# which holds 10.250.0.1/24) <-> eth0 (node end, 10.250.0.N/24) + a root filesystem
# (overlayfs over the read-only cached rootfs, upper layer on a per-node tmpfs) + an init
# in private namespaces, with the node's OWN host keys (generated per node, so pinning is
# real). The init is systemd as PID 1, booted by systemd-nspawn inside netns nodeN (what
# real servers run: units, timers, journald; `systemctl reboot` in the node restarts it),
# or with SKIFF_LOCAL_INIT=none a bash PID 1 that only starts sshd (a container-style
# server without an init system: what skiff must refuse workers and cron on).
# Nodes have no default route and no DNS:
# they reach only 10.250.0.0/24. apt in a node goes through apt-cacher-ng on 10.250.0.1:3142,
# which may fetch only from deb.debian.org.
#
# Shared pieces (the bridge, an apt proxy already listening, other nodeN namespaces made by
# other tools) are tolerated and never torn down while any nodeN namespace exists; an apt
# proxy is only stopped by whoever started it (pid file in this state dir).
#
# Environment:
#   SKIFF_LOCAL_HOME    state dir (default /var/lib/skiff-local): key, nodes/, acng/
#   SKIFF_LOCAL_SUITE   bookworm | trixie: the Debian release of new nodes (default bookworm)
#   SKIFF_LOCAL_ROOTFS  Debian rootfs (default /var/cache/skiff/rootfs-SUITE; only read)
#   SKIFF_LOCAL_TTL     seconds before a forgotten node's PID 1 exits by itself
#                       (default: never; tests set it)
#   SKIFF_LOCAL_INIT    systemd | none: the node's PID 1 (default systemd)
#   SKIFF_LOCAL_POLICY  allow | deny: may apt start services in an init-less node
#                       (default allow, like a systemd server)
#   SKIFF_LOCAL_TMPFS   size of the per-node tmpfs holding the node's files (default 4g)
#
# Never run "apt-cacher-ng --help": it has no --help and starts a daemon on 0.0.0.0:3142.
set -eEuo pipefail
umask 022

H=${SKIFF_LOCAL_HOME:-/var/lib/skiff-local}
SUITE=${SKIFF_LOCAL_SUITE:-bookworm}
case $SUITE in bookworm | trixie) ;; *) echo "local-node: unknown suite $SUITE (bookworm or trixie)" >&2; exit 2 ;; esac
SRC=${SKIFF_LOCAL_ROOTFS:-/var/cache/skiff/rootfs-$SUITE}
TTL=${SKIFF_LOCAL_TTL:-}
POLICY=${SKIFF_LOCAL_POLICY:-allow}
INIT=${SKIFF_LOCAL_INIT:-systemd}
TMPFS=${SKIFF_LOCAL_TMPFS:-4g}
KEY=$H/id_ed25519
ACNG=$H/acng
BR=tnbr0
HOSTIP=10.250.0.1
SELF=$(readlink -f "$0")
PACKAGES=openssh-server,python3,rdiff,sudo,ca-certificates,curl,iproute2,procps,systemd,systemd-sysv,dbus
# the most reboots a node's supervisor performs (each one: the node ran `systemctl reboot`)
MAX_BOOTS=100

log()   { echo "local-node: $*" >&2; }
die()   { log "$*"; exit 1; }
checkn(){ [[ ${1:-} =~ ^[0-9]+$ ]] && (( $1 >= 2 && $1 <= 254 )) || die "node number must be 2..254 (got '${1:-}')"; }
ndir()  { echo "$H/nodes/$1"; }
alive() { [[ -n ${1:-} && -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# bounded wait: waitfor TENTHS CMD... polls CMD every 0.1 s, at most TENTHS times
waitfor() { local n=$1 i; shift; for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }
lock()  { mkdir -p "$H"; chmod 700 "$H"; exec 9>"$H/.lock"; flock -w 300 9 || die "could not lock $H/.lock"; }
netns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
any_node_netns() { ip netns list | awk '{print $1}' | grep -qE '^node[0-9]+$'; }

# ---------------------------------------------------------------- shared host pieces
has_systemd() { [[ -x $1/lib/systemd/systemd ]]; }
rootfs_ok() { [[ -x $SRC/usr/sbin/sshd ]] && { [[ $INIT == none ]] || has_systemd "$SRC"; }; }

cmd_ensure_rootfs() {
  rootfs_ok && return 0
  command -v debootstrap >/dev/null || die "no rootfs at $SRC and no debootstrap to make one (apt-get install debootstrap)"
  local mirror
  mirror=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  log "creating the Debian $SUITE rootfs at $SRC with debootstrap from $mirror (about 1 minute, once)"
  rm -rf "$SRC.tmp"; mkdir -p "$(dirname "$SRC")"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$SRC.tmp" "$mirror" >"$SRC.log" 2>&1 \
    || { tail -n 20 "$SRC.log" >&2; rm -rf "$SRC.tmp"; die "debootstrap failed; full log in $SRC.log"; }
  rm -f "$SRC.tmp"/etc/ssh/ssh_host_*     # every node makes its own
  # a clean image: each boot makes its own machine id; no journal, no console login
  : >"$SRC.tmp/etc/machine-id"
  ln -sf /etc/machine-id "$SRC.tmp/var/lib/dbus/machine-id"
  rm -rf "$SRC.tmp/var/log/journal"; mkdir -p "$SRC.tmp/var/log/journal"
  local unit
  for unit in console-getty.service getty@.service systemd-networkd.service systemd-resolved.service \
      systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$SRC.tmp/etc/systemd/system/$unit"
  done
  # an older rootfs (one without systemd) is replaced only once the new one is complete
  if [[ -e $SRC ]]; then rm -rf "$SRC.old"; mv "$SRC" "$SRC.old"; fi
  mv "$SRC.tmp" "$SRC"
  rm -rf "$SRC.old"
}

cmd_key() { mkdir -p "$H"; chmod 700 "$H"; [[ -f $KEY ]] || ssh-keygen -q -t ed25519 -N '' -C skiff-local -f "$KEY"; echo "$KEY"; }

ensure_bridge() {
  ip link show "$BR" &>/dev/null && return
  # Fixed MAC: a bridge otherwise takes the lowest port MAC, which changes as nodes come
  # and go, leaving stale ARP entries for 10.250.0.1 in the nodes that stay up.
  ip link add "$BR" address 02:54:0a:fa:00:01 type bridge
  sysctl -qw "net.ipv6.conf.$BR.disable_ipv6=1"
  ip addr add "$HOSTIP/24" dev "$BR"
  ip link set "$BR" up
}

acng_pid() {    # pid of the apt-cacher-ng *this state dir* started, fails if not running
  local p; p=$(cat "$ACNG/acng.pid" 2>/dev/null) || return 1
  alive "$p" && [[ $(readlink "/proc/$p/exe") == /usr/sbin/apt-cacher-ng ]] && echo "$p"
}
acng_listening() { ss -Hltn "sport = :3142" | grep -q "$HOSTIP:3142"; }

ensure_acng() {
  acng_pid >/dev/null && return
  acng_listening && return 0      # someone else's proxy on the shared bridge: use it
  [[ -x /usr/sbin/apt-cacher-ng ]] || { log "no apt-cacher-ng on the host: apt in nodes will not work"; return 0; }
  mkdir -p "$ACNG/conf" "$ACNG/cache" "$ACNG/log"
  # Own config: ForceManaged = only the two remaps below are served (other hosts get 403
  # without any connection), and their only backend is deb.debian.org.
  cat >"$ACNG/conf/acng.conf" <<EOF
CacheDir: $ACNG/cache
LogDir: $ACNG/log
SupportDir: /usr/lib/apt-cacher-ng
SocketPath: $ACNG/socket
PidFile: $ACNG/acng.pid.daemon
BindAddress: $HOSTIP
Port: 3142
ForceManaged: 1
Remap-debrep: deb.debian.org/debian ; http://deb.debian.org/debian/
Remap-secdeb: deb.debian.org/debian-security ; http://deb.debian.org/debian-security/
PassThroughPattern: ^$
ForwardBtsSoap: 0
RedirMax: 0
ConnectProto: v4
ExThreshold: 4
ReportPage: acng-report.html
EOF
  # 9>&- : do not leak the lock fd into a long-lived daemon
  setsid /usr/sbin/apt-cacher-ng -c "$ACNG/conf" ForeGround=1 </dev/null >>"$ACNG/acng.out" 2>&1 9>&- &
  echo $! >"$ACNG/acng.pid"
  waitfor 50 acng_listening || die "apt-cacher-ng did not start; see $ACNG/acng.out"
}

stop_acng() {
  local p; p=$(acng_pid) || { rm -f "$ACNG/acng.pid" "$ACNG/socket"; return 0; }
  kill -TERM "$p"; waitfor 30 eval '! alive '"$p" || kill -KILL "$p" 2>/dev/null || true
  rm -f "$ACNG/acng.pid" "$ACNG/socket"
}

# ---------------------------------------------------------------- per-node pieces
customize() {   # files written into the node's root (they land in the overlay's upper/)
  local n=$1 R=$2
  echo "node$n" >"$R/etc/hostname"
  cat >"$R/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	node$n
$HOSTIP	skiff-host
::1	localhost ip6-localhost ip6-loopback
EOF
  # No DNS in nodes: loopback gives a fast "connection refused" instead of timeouts.
  printf '# skiff local node: no DNS\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$R/etc/resolv.conf"
  rm -f "$R/etc/apt/sources.list.d/debian.sources"
  # the release the rootfs holds (a frozen copy may come from either suite)
  local codename
  codename=$(sed -n 's/^VERSION_CODENAME=//p' "$R/etc/os-release" | tr -d '"')
  codename=${codename:-bookworm}
  cat >"$R/etc/apt/sources.list" <<EOF
deb http://deb.debian.org/debian $codename main
deb http://deb.debian.org/debian $codename-updates main
deb http://deb.debian.org/debian-security $codename-security main
EOF
  echo "Acquire::http::Proxy \"http://$HOSTIP:3142\";" >"$R/etc/apt/apt.conf.d/01skiff-local-proxy"
  install -d -m 700 "$R/root/.ssh"
  install -m 600 "$KEY.pub" "$R/root/.ssh/authorized_keys"
  # Host keys of this node alone (the rootfs's would make every node look the same).
  rm -f "$R"/etc/ssh/ssh_host_*
  ssh-keygen -q -t ed25519 -N '' -C "root@node$n" -f "$R/etc/ssh/ssh_host_ed25519_key"
  ssh-keygen -q -t ecdsa -N '' -C "root@node$n" -f "$R/etc/ssh/ssh_host_ecdsa_key"
  printf '%s\n' "$INIT" >"$(ndir "$n")/init"
  # With systemd, apt starts and enables services as on any server. Without an init,
  # invoke-rc.d with no policy-rc.d prints "No init system and policy-rc.d missing!
  # Defaulting to block."; exit 0 = postinst starts services like systemd would.
  [[ $INIT == systemd ]] && return 0
  if [[ $POLICY == allow ]]; then printf '#!/bin/sh\nexit 0\n' >"$R/usr/sbin/policy-rc.d"
  else printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"; fi
  chmod 755 "$R/usr/sbin/policy-rc.d"
}

# ---------------------------------------------------------------- systemd nodes
# The node's own cgroup folders, made before nspawn starts: with --keep-unit nspawn nests
# its cgroups under the caller's, and two nodes in the root cgroup would collide.
cgroup_dirs() {
  local cg=skiff-node$1
  if [[ -d /sys/fs/cgroup/unified ]]; then    # hybrid: v1 name=systemd + v2 "unified"
    echo "/sys/fs/cgroup/systemd/$cg /sys/fs/cgroup/unified/$cg"
  elif [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then   # pure v2 (reasoned, not run here)
    echo "/sys/fs/cgroup/$cg"
  else
    echo "/sys/fs/cgroup/systemd/$cg"
  fi
}

# The supervisor of a systemd node (run detached by up_node): joins the node's cgroups,
# boots the node with systemd-nspawn in netns nodeN, and boots it again when the node
# asked for a reboot (nspawn exits 133), at most MAX_BOOTS times; exits when the node
# halts, is killed or its TTL runs out.
cmd_boot() {
  local n=$1 d R c boots=0 rc ttl_args=() deadline=""; d=$(ndir "$n"); R=$d/root
  for c in $(cgroup_dirs "$n"); do mkdir -p "$c"; echo $$ >"$c/cgroup.procs"; done
  [[ -n $TTL ]] && deadline=$(( $(date +%s) + TTL ))
  trap 'kill -TERM "$(cat "$d/nspawn.pid" 2>/dev/null)" 2>/dev/null' TERM INT
  while (( boots < MAX_BOOTS )); do
    boots=$((boots + 1))
    if [[ -n $deadline ]]; then
      (( $(date +%s) < deadline )) || break
      ttl_args=(timeout --foreground -s TERM $((deadline - $(date +%s))))
    fi
    # --register=no --keep-unit: the host may have no systemd/machined bus.
    # CAP_NET_ADMIN: nspawn drops it unless it makes the network itself, so nftables
    # (skiff's firewall) could not run; the node has its own network namespace, so it
    # only ever changes the node's own interfaces, routes and rules, never the host's.
    "${ttl_args[@]}" systemd-nspawn -q -D "$R" -M "node$n" --register=no --keep-unit \
      --capability=CAP_NET_ADMIN \
      --network-namespace-path="/run/netns/node$n" --resolv-conf=off --timezone=off \
      --link-journal=no --console=pipe -b </dev/null &
    echo $! >"$d/nspawn.pid"
    rc=0; wait $! || rc=$?
    echo "local-node: boot $boots of node $n ended (rc=$rc)"
    [[ $rc == 133 ]] || break    # 133: the node ran `systemctl reboot`
  done
  rm -f "$d/nspawn.pid"
}

# PID (on this host) of the node's PID 1: nspawn's child for a systemd node.
init_pid() {
  local d ns p; d=$(ndir "$1")
  if ns=$(cat "$d/nspawn.pid" 2>/dev/null) && alive "$ns"; then
    p=$(awk '{print $1}' "/proc/$ns/task/$ns/children" 2>/dev/null || true)
    # `timeout` may sit between the supervisor and nspawn
    if [[ -n $p && $(cat "/proc/$p/comm" 2>/dev/null) == systemd-nspawn ]]; then
      p=$(awk '{print $1}' "/proc/$p/task/$p/children" 2>/dev/null || true)
    fi
    [[ -n $p ]] && { echo "$p"; return 0; }
  fi
  cat "$d/init.pid" 2>/dev/null
}

# Runs as PID 1 of the node's new pid/mount/uts/ipc namespaces (already inside netns
# nodeN), still seeing the host's filesystem. Mounts made here are private to the node.
cmd_init() {
  local n=$1 R; R=$(ndir "$n")/root
  mount --bind "$R" "$R"
  mount -t proc  -o nosuid,nodev,noexec        proc   "$R/proc"
  mount -t sysfs -o ro,nosuid,nodev,noexec     sysfs  "$R/sys"
  mount -t tmpfs -o nosuid,nodev,mode=755,size=64m tmpfs "$R/run"
  mkdir -p "$R/run/lock" "$R/run/sshd"; chmod 1777 "$R/run/lock"
  mount -t tmpfs -o nosuid,mode=755,size=1m   tmpfs  "$R/dev"
  local d name maj min
  for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    IFS=: read -r name maj min <<<"$d"; mknod -m 666 "$R/dev/$name" c "$maj" "$min"
  done
  ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"
  ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
  mkdir "$R/dev/pts" "$R/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
  ln -s pts/ptmx "$R/dev/ptmx"
  mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$R/dev/shm"
  hostname "node$n"
  cd "$R"; pivot_root . .; umount -l .; cd /
  # PID 1: bash reaps orphaned daemons and exits on TERM (the kernel then kills the rest
  # of the pid namespace) or after the TTL. sshd is an ordinary daemon (/run/sshd.pid),
  # so "service ssh restart" inside the node works.
  local sleep_for=${TTL:-infinity}
  exec /bin/bash -c "trap 'exit 0' TERM INT; /usr/sbin/sshd -E /var/log/sshd.log || exit 1; sleep $sleep_for & wait \$!"
}

node_listening() { ip netns exec "node$1" ss -Hltn "sport = :22" | grep -q .; }
boot_failed() { ! alive "$(cat "$(ndir "$1")/supervisor.pid" 2>/dev/null)"; }
booted_or_failed() { node_listening "$1" || boot_failed "$1"; }
cgroup_pids() { find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null; }
cgroup_empty() { [[ -z $(cgroup_pids "$1") ]]; }

# free: no state dir, no netns, no veth of that number (other tools' nodes included)
is_free() { [[ ! -e $(ndir "$1") ]] && ! netns_exists "node$1" && ! ip link show "tn${1}h" &>/dev/null; }

up_node() {
  local n=$1 id=${2:-} d R u; d=$(ndir "$n"); R=$d/root
  [[ -x $SRC/usr/sbin/sshd ]] || die "no Debian rootfs with openssh-server at $SRC (run: $0 ensure-rootfs)"
  if [[ $INIT == systemd ]]; then
    has_systemd "$SRC" || die "the rootfs at $SRC has no systemd (run: $0 ensure-rootfs, or set SKIFF_LOCAL_INIT=none)"
    command -v systemd-nspawn >/dev/null || die "systemd nodes need systemd-nspawn on this host (apt-get install --no-install-recommends systemd-container), or set SKIFF_LOCAL_INIT=none"
  fi
  is_free "$n" || die "node number $n is in use"
  # shellcheck disable=SC2154 # rc is set inside the trap itself
  trap 'rc=$?; trap - ERR; log "bringing node $n up failed (rc=$rc), tearing it down"; down_node '"$n"'; exit $rc' ERR
  cmd_key >/dev/null; ensure_bridge; ensure_acng
  mkdir -p "$d"
  mount -t tmpfs -o "size=$TMPFS,mode=755" "skiff-node$n" "$d"
  mkdir -p "$R" "$d/upper" "$d/work"
  printf '%s\n' "$id" >"$d/id"
  mount -t overlay "skiff-node$n" -o "lowerdir=$SRC,upperdir=$d/upper,workdir=$d/work" "$R"
  customize "$n" "$R"
  # network: veth host end -> bridge, node end -> netns as eth0; IPv6 off before link up.
  # The node MAC derives from N, so a re-created node matches ARP entries others hold.
  ip netns add "node$n"
  ip link add "tn${n}h" type veth peer name "tn${n}n"
  sysctl -qw "net.ipv6.conf.tn${n}h.disable_ipv6=1"
  ip link set "tn${n}h" master "$BR" up
  ip link set "tn${n}n" netns "node$n"
  ip netns exec "node$n" sh -ec "
    sysctl -qw net.ipv6.conf.tn${n}n.disable_ipv6=1
    ip link set tn${n}n name eth0
    ip link set eth0 address $(printf '02:54:0a:fa:00:%02x' "$n")
    ip addr add 10.250.0.$n/24 dev eth0
    ip link set eth0 up
    ip link set lo up"
  if [[ $INIT == systemd ]]; then
    setsid "$SELF" _boot "$n" </dev/null >>"$d/console.log" 2>&1 9>&- &
    u=$!; echo "$u" >"$d/supervisor.pid"
    # systemd boots in 0.4-1 s here; sshd listens once ssh.service is up
    waitfor 300 booted_or_failed "$n" || true
    if boot_failed "$n" || ! node_listening "$n"; then tail -n 30 "$d/console.log" >&2; false; fi
    init_pid "$n" >"$d/init.pid"
  else
    # unshare forks; its child becomes PID 1 of the new pid ns and runs cmd_init.
    setsid ip netns exec "node$n" unshare --pid --fork --kill-child --mount --uts --ipc \
        --propagation private "$SELF" _init "$n" </dev/null >>"$d/console.log" 2>&1 9>&- &
    u=$!; echo "$u" >"$d/supervisor.pid"
    waitfor 100 node_listening "$n" || { cat "$d/console.log" >&2; false; }
    awk '{print $1}' "/proc/$u/task/$u/children" >"$d/init.pid"
  fi
  trap - ERR
}

down_node() {   # idempotent; also cleans up half-built nodes
  local n=$1 d p u ns c; d=$(ndir "$n")
  u=$(cat "$d/supervisor.pid" 2>/dev/null || true)
  # 1. processes. A systemd node: TERM to nspawn = a clean halt (bounded), then KILL to
  # its PID 1. An init-less node: TERM to its bash PID 1. Either way the kernel then
  # kills the rest of the node's pid namespace.
  if ns=$(cat "$d/nspawn.pid" 2>/dev/null) && alive "$ns" \
      && [[ $(cat "/proc/$ns/comm" 2>/dev/null) =~ ^(systemd-nspawn|timeout)$ ]]; then
    p=$(init_pid "$n")
    kill -TERM "$ns" 2>/dev/null || true
    if ! waitfor 100 eval '! alive '"$ns"; then
      log "node $n did not halt within 10 s; killing it"
      if alive "$p" && [[ $(ip netns identify "$p" 2>/dev/null) == "node$n" ]]; then kill -KILL "$p" 2>/dev/null || true; fi
      waitfor 30 eval '! alive '"$ns" || kill -KILL "$ns" 2>/dev/null || true
    fi
  else
    p=$(cat "$d/init.pid" 2>/dev/null || true)
    if [[ -z $p ]] && alive "$u"; then
      p=$(awk '{print $1}' "/proc/$u/task/$u/children" 2>/dev/null || true)
    fi
    if alive "$p" && [[ $(ip netns identify "$p" 2>/dev/null) == "node$n" ]]; then
      kill -TERM "$p" 2>/dev/null || true
    fi
  fi
  if [[ -e $d ]] && netns_exists "node$n"; then
    waitfor 30 eval '[[ -z $(ip netns pids node'"$n"') ]]' || true
    # 2. anything else still inside the netns (a stray "ip netns exec"): SIGKILL by PID
    for p in $(ip netns pids "node$n"); do kill -KILL "$p" 2>/dev/null || true; done
    waitfor 30 eval '[[ -z $(ip netns pids node'"$n"') ]]' || log "WARNING: pids left in node$n: $(ip netns pids "node$n" | xargs)"
    ip netns del "node$n"
  fi
  # the supervisor exits once its node is down; then the node's cgroups are empty
  if alive "$u" && [[ $(cat "/proc/$u/comm" 2>/dev/null) == local-node.sh ]]; then
    waitfor 30 eval '! alive '"$u" || kill -KILL "$u" 2>/dev/null || true
  fi
  for c in $(cgroup_dirs "$n"); do
    [[ -d $c ]] || continue
    for p in $(cgroup_pids "$c"); do kill -KILL "$p" 2>/dev/null || true; done
    waitfor 30 cgroup_empty "$c" || true
    find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || log "WARNING: cgroup $c left behind"
  done
  if [[ -e $d ]]; then
    # 3. veth: netns deletion frees it asynchronously; delete explicitly to be deterministic
    ip link del "tn${n}h" 2>/dev/null || true
    ip neigh del "10.250.0.$n" dev "$BR" 2>/dev/null || true
    # 4. filesystem: overlay first, then the node's tmpfs
    local m
    for m in "$d/root" "$d"; do
      if mountpoint -q "$m" 2>/dev/null; then
        waitfor 20 umount "$m" 2>/dev/null || umount -l "$m"
      fi
    done
    rm -rf --one-file-system "$d"
  fi
  # 5. nothing of anyone's left: stop our apt proxy, remove the bridge (cache is kept)
  if ! compgen -G "$H/nodes/*" >/dev/null && ! any_node_netns; then
    stop_acng
    if [[ -z $(ip link show master "$BR" 2>/dev/null) ]]; then ip link del "$BR" 2>/dev/null || true; fi
  fi
}

# Under the lock no node is half-made, so a node whose PID 1 is gone (its TTL ran out,
# the machine rebooted, a create was killed) is garbage: clear it so its number frees up.
reap_dead() {
  local d n p u
  for d in "$H"/nodes/*; do
    [[ -d $d ]] || continue; n=${d##*/}
    p=$(init_pid "$n" || true); u=$(cat "$d/supervisor.pid" 2>/dev/null || true)
    if ! alive "$p" && ! alive "$u"; then log "clearing dead node $n"; down_node "$n"; fi
  done
}

cmd_up_auto() {
  local first=$1 id=${2:-} n; checkn "$first"
  reap_dead
  for ((n = first; n <= 254; n++)); do
    if is_free "$n"; then up_node "$n" "$id"; echo "$n"; return 0; fi
  done
  die "no free node number between $first and 254"
}

cmd_down() {
  local n=$1 id=${2:-} have
  if [[ -n $id && -e $(ndir "$n") ]]; then
    have=$(cat "$(ndir "$n")/id" 2>/dev/null || true)
    if [[ $have != "$id" ]]; then
      log "node $n is not the one recorded (it was destroyed and its number reused); leaving it alone"
      return 0
    fi
  fi
  [[ -n $id && ! -e $(ndir "$n") ]] && return 0   # already gone; never touch another tool's node$n
  down_node "$n"
}

cmd_list() { local d; for d in "$H"/nodes/*; do [[ -d $d ]] && echo "${d##*/}"; done; return 0; }

case ${1:-} in
  up-auto) lock; cmd_up_auto "${2:-100}" "${3:-}" ;;
  up)      checkn "${2:-}"; lock; up_node "$2" "${3:-}"; echo "$2" ;;
  down)    checkn "${2:-}"; lock; cmd_down "$2" "${3:-}" ;;
  ensure-rootfs) mkdir -p "$H"; exec 8>"$H/.rootfs.lock"; flock -w 900 8 || die "could not lock the rootfs"; cmd_ensure_rootfs ;;
  key)     cmd_key ;;
  list)    cmd_list ;;
  _init)   cmd_init "$2" ;;
  _boot)   cmd_boot "$2" ;;
  init-pid) checkn "${2:-}"; init_pid "$2" ;;
  *) sed -n '2,13p' "$SELF" >&2; exit 2 ;;
esac
