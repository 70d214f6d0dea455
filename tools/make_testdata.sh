#!/usr/bin/env bash
# Rebuilds data/testdata.tar.xz, the test data (real tokenizers, Brown corpus) that CMake unpacks into
# BUILD_DIR/testdata, byte for byte: sorted names, mtime 0, owner 0:0, modes 644/755, single-threaded xz -9e.
#   tools/make_testdata.sh [SRC_DIR (default ../shared/data)] [OUT (default data/testdata.tar.xz)]
# SRC_DIR has the layout the tests read: README.md, tokenizers/{gptoss,llama3,qwen3,llama2}/, corpus/brown/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$root/../shared/data}
out=${2:-$root/data/testdata.tar.xz}
for need in README.md tokenizers/gptoss tokenizers/llama3 tokenizers/qwen3 tokenizers/llama2 corpus/brown; do
  [ -e "$src/$need" ] || { echo "$src/$need is missing" >&2; exit 1; }
done
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
LC_ALL=C tar -C "$src" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
  --mode='u+w,go-w,a+rX' -cf - README.md corpus tokenizers | xz -9e -T1 -c > "$tmp"
chmod 644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "$out: $(stat -c %s "$out") bytes, sha256 $(sha256sum "$out" | cut -d' ' -f1)"
