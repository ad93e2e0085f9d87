#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time: FUZZ_SECONDS each (default
# 45), starting from a copy of its committed corpus (fuzz/corpus/TARGET stays as it is).
# Exits non-zero on the first crash, panic, out-of-memory or hang (an input taking more
# than 10 s), printing the path of the input that did it (fuzz/artifacts/TARGET/...).
#
# Works on the stable toolchain: `--sanitizer none` passes no nightly-only flag (the
# coverage instrumentation cargo-fuzz adds, -Cpasses=sancov-module and friends, is
# stable), and the build keeps debug assertions and overflow checks on.
# FUZZ_TARGET_DIR, if set, is the fuzz build's target folder (to keep it between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-45}
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '==> fuzz: %s\n' "$*" >&2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (once; it stays in ~/.cargo/bin)"
  cargo install cargo-fuzz --locked
fi

build=(--sanitizer none)
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
  build+=(--target-dir "$FUZZ_TARGET_DIR")
fi

say "building the targets"
cargo fuzz build "${build[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for target in $(cargo fuzz list); do
  corpus="$work/corpus/$target"
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  cp -R "fuzz/corpus/$target/." "$corpus/"
  log="$work/$target.log"
  say "$target for ${seconds}s"
  if cargo fuzz run "${build[@]}" "$target" "$corpus" -- \
    -max_total_time="$seconds" -timeout=10 \
    -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1; then
    tail -n 1 "$log" >&2
  else
    tail -n 60 "$log" >&2
    input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    say "$target FAILED; the input that did it: ${input:-(none written; see the log above)}"
    say "reproduce: cargo fuzz run --sanitizer none $target ${input:-}"
    exit 1
  fi
done
say "every target ran ${seconds}s without a crash or a hang"
