#!/usr/bin/env bash
# Benchmark: median cost of one command over skiff's shared SSH session (openssh
# native-mux) versus a fresh `ssh` per command (the anchor), on a real local node.
# Needs root on Linux and the local node rootfs (.ci/prepare-nodes.sh).
#
#   bench/ssh-session.sh            60 commands each (SKIFF_BENCH_RUNS to change)
#   PROFILE=release bench/ssh-session.sh
#
# The dev profile is the default: the figures are dominated by ssh and the network
# namespace, and it avoids a release build of every dependency on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --profile "${PROFILE:-dev}" --bench ssh_session -q
