#!/usr/bin/env bash
# Runs every built fuzzer for a bounded time: fuzz/run.sh BUILD_DIR SECONDS_PER_FUZZER.
# Seeds come from fuzz/corpus/<name>/ (checked in); new corpus
# entries go to a scratch directory so the tree stays clean. Exits non-zero on any crash/leak/hang.
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for fuzzer in "$build"/fuzz/fuzz_*; do
  name=$(basename "$fuzzer"); name=${name#fuzz_}
  mkdir -p "$scratch/$name"
  seeds=()
  [ -d "$root/fuzz/corpus/$name" ] && seeds+=("$root/fuzz/corpus/$name")
  echo "== fuzz_$name for ${seconds}s"
  if ! "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$scratch/" "$scratch/$name" "${seeds[@]}" 2>"$scratch/$name.log"; then
    echo "fuzz_$name FAILED"; tail -40 "$scratch/$name.log"; status=1
    mkdir -p "$root/out/fuzz-artifacts"; cp "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* "$root/out/fuzz-artifacts/" 2>/dev/null || true
  else
    grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "$scratch/$name.log" | tail -1
  fi
done
exit $status
