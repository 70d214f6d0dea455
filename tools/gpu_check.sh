#!/usr/bin/env bash
# Device check on a GPU machine without registries: unpack the Debian C++ deps carried in debs/
# (apt-get download), build against the machine's own CUDA libtorch (python3's torch), run ctest,
# then the CUDA comparisons of tests/gpu/cuda_check.py. Logs go to $OUT (or /tmp/gpu-out).
set -uo pipefail
out=${OUT:-/tmp/gpu-out}; mkdir -p "$out"
deps=/tmp/moeforge-deps; mkdir -p "$deps"
for f in debs/*.deb; do dpkg -x "$f" "$deps"; done
command -v pkg-config >/dev/null || ln -sf "$deps/usr/bin/pkgconf" "$deps/usr/bin/pkg-config"
export PATH="$deps/usr/bin:$PATH" LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
export PKG_CONFIG_PATH="$deps/usr/lib/x86_64-linux-gnu/pkgconfig:$deps/usr/share/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$deps"
torch_dir=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')/Torch
shared=(); [ -d shared/data/tokenizers ] && shared=(-DMOEFORGE_SHARED_DATA="$(pwd)/shared/data")  # else data/testdata.tar.xz
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' | tee -a "$out/gpu.txt"
start=$(date +%s)
cmake -S . -B /tmp/mf-build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$torch_dir" \
  -DCMAKE_PREFIX_PATH="$deps/usr" -DMOEFORGE_PYTHON="$(command -v python3)" -DMOEFORGE_BUILD_BENCH=OFF \
  "${shared[@]}" -DTORCH_CUDA_ARCH_LIST=9.0 > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
ninja -C /tmp/mf-build -j16 moeforge > "$out/build.log" 2>&1 || { grep -m5 -A5 "error" "$out/build.log"; tail -20 "$out/build.log"; exit 1; }
echo "build of moeforge: $(( $(date +%s) - start ))s"
MOEFORGE_BIN=/tmp/mf-build/moeforge timeout ${CUDA_CHECK_SECONDS:-200} python3 tests/gpu/cuda_check.py 2>&1 | tee "$out/cuda_check.log"
MOEFORGE_BIN=/tmp/mf-build/moeforge timeout ${CUDA_TRAIN_SECONDS:-120} python3 tests/gpu/cuda_train_check.py 2>&1 | tee "$out/cuda_train_check.log"
# Then the torch unit tests against this libtorch, as far as the time allows: first the collectives
# on the GPU through c10d NCCL (a world of one; it reports SKIPPED if the build found no nccl.h).
timeout ${TESTS_SECONDS:-150} ninja -C /tmp/mf-build -j16 moeforge_torch_tests >> "$out/build.log" 2>&1 &&
  { grep -E "c10d (NCCL|Gloo)|no c10d NCCL" "$out/configure.log";
    timeout 60 /tmp/mf-build/tests/moeforge_torch_tests --gtest_filter='WorldCollectives.*' 2>&1 | tail -8 | tee "$out/nccl_check.log";
    timeout 60 /tmp/mf-build/tests/moeforge_torch_tests 2>&1 | tail -5 | tee "$out/torch_tests.log"; }
