#!/usr/bin/env python3
"""GPT-OSS-20B on this machine (issue 13): peak RSS and tokens/s of `stats` and `eval` on a checkpoint with
GPT-OSS-20B's real shapes (hidden 2880, 24 layers, 32 experts top-4, expert width 2880, 64/8 heads of 64,
201,088-token vocabulary, alternating sliding windows, sinks, MXFP4 experts; random weights, written tensor
by tensor by bench/surgery_bench.py's writer, ~13.8 GB), MXFP4 experts kept packed (the default) against
`--dequantize` (their dense bf16 stacks, ~38 GB: the memory plan refuses it before loading on a 24 GB
machine, which the bench shows). Target (issue 13): stats and eval at peak RSS <= 16 GB.

Usage (from the repository root; needs ~15 GB free disk and the test data unpacked by the build):
    .venv/bin/python bench/gpt_oss_memory_bench.py --moeforge build/moeforge [--layers 24] [--tokens 1024] [--dir /tmp]
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from shared_data import shared_data_dir  # noqa: E402
from surgery_bench import build_model, gb, timed  # noqa: E402

VOCAB = 201088


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moeforge", default="build/moeforge")
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=1024, help="tokens for stats and eval")
    parser.add_argument("--dir", default="/tmp")
    args = parser.parse_args()
    need = args.layers * 0.48e9 + 2 * VOCAB * 2880 * 2 + 1e9
    if shutil.disk_usage(args.dir).free < need:
        print(f"not enough free disk in {args.dir}: need about {gb(need)}")
        return 1
    work = tempfile.mkdtemp(prefix="gpt_oss_memory_bench_", dir=args.dir)
    try:
        model = os.path.join(work, "gpt_oss_20b_shape")
        t0 = time.perf_counter()
        size = build_model(model, args.layers, VOCAB)
        tok = os.path.join(shared_data_dir(), "tokenizers", "gptoss")
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tok, name), model)
        print(f"wrote {gb(size)} ({args.layers} layers, GPT-OSS-20B shapes, MXFP4 experts) in {time.perf_counter() - t0:.0f}s; "
              f"machine: {gb(meminfo('MemTotal'))} RAM, {gb(meminfo('MemAvailable'))} available")
        data = os.path.join(work, "brown.txt")
        with open(data, "w") as out:
            for path in sorted(glob.glob(os.path.join(shared_data_dir(), "corpus", "brown", "c[a-r][0-9]*")))[:40]:
                out.write(open(path, errors="replace").read() + "\n")
        common = ["--dtype", "bf16", "--block-size", "256", "--batch-size", "2"]
        block_count = max(1, args.tokens // 256)
        runs = [
            ("stats", [args.moeforge, "--no-progress", "stats", model, "--data", data, "--tokens", str(args.tokens), "--out",
                       os.path.join(work, "stats")] + common),
            ("eval", [args.moeforge, "--no-progress", "eval", model, "--data", data, "--max-blocks", str(block_count)] + common),
        ]
        print(f"{'run':<8} {'peak RSS':>10} {'/ file':>7} {'tokens/s':>9}  (target peak RSS <= 16 GB)")
        for label, cmd in runs:
            seconds, rss = timed(cmd)
            print(f"{label:<8} {gb(rss):>10} {rss / size:>7.2f} {args.tokens / seconds:>9.1f}  "
                  f"{'meets' if rss <= 16e9 else 'MISSES'} the target")
        refused = subprocess.run(runs[1][1] + ["--dequantize"], capture_output=True, text=True)
        print(f"eval --dequantize (dense bf16 experts): exit {refused.returncode}: {refused.stderr.strip()[:300]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
