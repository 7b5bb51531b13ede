#!/usr/bin/env bash
# A bounded fuzzing run of every target in fuzz/ (cargo-fuzz, libFuzzer), for
# CI: FUZZ_SECONDS (default 20) per target, starting from the committed seeds
# (fuzz/seeds/TARGET) plus what earlier runs on this machine found
# (target/fuzz/corpus/TARGET). Fails on any crash; the input that crashed is
# left in fuzz/artifacts/TARGET/ and printed.
#
# Only the stable toolchain is needed: `--sanitizer none` (our code is safe
# Rust but the pump's waker, which Miri checks; libFuzzer's coverage
# guidance works without a sanitizer), and
# RUSTC_BOOTSTRAP=1 for the few unstable flags cargo-fuzz may still pass.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-20}"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list --fuzz-dir fuzz)
for target in $targets; do
  corpus="$target_dir/corpus/$target"
  mkdir -p "$corpus"
  echo "== cargo fuzz run $target (${seconds} s)"
  # New inputs go to the first corpus directory, never to the seeds.
  status=0
  cargo fuzz run --fuzz-dir fuzz --target-dir "$target_dir" --sanitizer none "$target" \
    "$corpus" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -max_len=70000 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 >"$target_dir/$target.log" 2>&1 || status=$?
  grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::(number_of_executed_units|new_units_added|peak_rss_mb)|Done )' \
    "$target_dir/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$target_dir/$target.log" >&2
    echo "fuzz target $target failed (exit $status)" >&2
    exit 1
  fi
done
