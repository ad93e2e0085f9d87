#!/usr/bin/env bash
# Benchmark: a one-line-change `skiff update` of the Python fixture on a real, set-up
# local node, under a request loop against HOST from this machine (benches/update.rs).
# Prints, as medians of the runs: the wall time of `skiff update`, its per-phase times,
# the time until HOST answers with the new version (from the start of the update), the
# longest request during the update, and the anchors of issue 6 beside them, plus two
# anchors run side by side on the same node: a fresh `ssh NODE true`, and the longest
# request while `apache2ctl graceful` runs.
# Needs root on Linux and the local node rootfs (.ci/prepare-nodes.sh); uses the frozen
# set-up rootfs when `cargo test --test integration update::` built one (~2 s instead of
# a full setup-node).
#
#   bench/update.sh                      5 runs (SKIFF_BENCH_RUNS to change), release build
#   PROFILE=dev bench/update.sh          the dev profile (no release build of every dependency)
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --profile "${PROFILE:-release}" --bench update -q
