#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine (as root) for skiff's real-node tests; safe to re-run.
#
# - host packages: debootstrap (the node rootfs), apt-cacher-ng (the nodes' only way to
#   Debian's mirror), openssh-client, iproute2/util-linux/procps (namespaces, mounts),
#   vagrant (only for `vagrant validate` of vagrant/Vagrantfile), systemd-container
#   (systemd-nspawn boots the nodes with systemd as PID 1; --no-install-recommends keeps
#   libnss-mymachines from editing /etc/nsswitch.conf), pebble (a real ACME server and
#   its test DNS, pebble-challtestsrv, for the TLS tests: started and stopped by them)
# - the cached Debian 12 rootfs at ${SKIFF_LOCAL_ROOTFS:-/var/cache/skiff/rootfs-bookworm}
#   (debootstrap minbase + systemd, dbus, openssh-server python3 rdiff sudo ca-certificates
#   curl iproute2 procps; about a minute, once), made by the same script skiff embeds for
#   local nodes; an older rootfs without systemd is rebuilt.
# - python3-pip, and the Django and Flask wheels the framework tests deploy, downloaded
#   from PyPI once into /var/cache/skiff/wheels (.ci/fetch-wheels.sh; the nodes cannot
#   reach PyPI, and the wheels are not committed)
#
# Packaged daemons must not start on install: apt-cacher-ng's would listen on 0.0.0.0:3142.
# Docker-style hosts already have a /usr/sbin/policy-rc.d that says "exit 101"; elsewhere
# one is put in place for the install only. Never run "apt-cacher-ng --help" (it has no
# such flag and starts a daemon on all addresses).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

say() { printf 'prepare-nodes: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (network namespaces, mounts, apt)"; exit 1; }

need=()
for pkg in debootstrap apt-cacher-ng openssh-client iproute2 util-linux procps vagrant python3-pip systemd-container pebble openssl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  temp_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    temp_policy=1
  fi
  trap 'if [ -n "$temp_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  if [ -n "$temp_policy" ]; then rm -f /usr/sbin/policy-rc.d; temp_policy=; fi
fi

# The kernel must allow network namespaces and overlayfs (a probe, undone at once).
modprobe overlay 2>/dev/null || true
grep -qw overlay /proc/filesystems || { say "the kernel has no overlayfs"; exit 1; }
probe=skiff-probe-$$
ip netns add "$probe" && ip netns del "$probe" || { say "cannot create network namespaces"; exit 1; }

rootfs=${SKIFF_LOCAL_ROOTFS:-/var/cache/skiff/rootfs-bookworm}
if [ -x "$rootfs/usr/sbin/sshd" ] && [ -x "$rootfs/lib/systemd/systemd" ]; then
  say "rootfs ready at $rootfs"
else
  say "creating the Debian 12 rootfs at $rootfs (about a minute, once)"
  SKIFF_LOCAL_ROOTFS=$rootfs bash providers/local-node.sh ensure-rootfs
fi
# The Debian 13 rootfs for the second-release suite (tests/integration/debian13.rs).
if [ -x /var/cache/skiff/rootfs-trixie/usr/sbin/sshd ] && [ -x /var/cache/skiff/rootfs-trixie/lib/systemd/systemd ]; then
  say "Debian 13 rootfs ready"
else
  say "creating the Debian 13 rootfs (about a minute and a half, once)"
  SKIFF_LOCAL_SUITE=trixie SKIFF_LOCAL_ROOTFS=/var/cache/skiff/rootfs-trixie bash providers/local-node.sh ensure-rootfs
fi
bash .ci/fetch-wheels.sh
say "ready"
