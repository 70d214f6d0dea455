"""Layer streaming (issue 13): `stats` on a model over its memory budget, batch by batch against
layer-major groups (each layer read once per group of batches), beside the unstreamed run.

Model: GPT-OSS-20B's widths at --layers layers (hidden 2880, 32 MXFP4 experts top-4, a 32,000-token
vocabulary; random weights written by bench/surgery_bench.py's writer), bf16. Each run: peak RSS (the
kernel's accounting of the child), tokens/s of the stats loop (stats.json timing.loop_seconds).
--drop-caches (root) empties the page cache before each run, so every read of a streamed layer comes
from the disk, as it does for a model larger than RAM; without it the re-reads are page-cache faults.

    .venv/bin/python bench/streaming_bench.py --moeforge build/moeforge [--layers 3] [--tokens 4096] [--budget 1.4]
        [--drop-caches]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "parity"))
from stats_helpers import gpt_oss_streaming_setup  # noqa: E402


def run(args, *extra):
    if args.drop_caches:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stderr.write(r.stderr); sys.exit(r.returncode) if r.returncode else "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)")
    out = subprocess.run([sys.executable, "-c", code, args.moeforge, *map(str, extra)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip()[-500:])
    return int(out.stdout.strip()), out.stderr


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--moeforge", default="build/moeforge")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--budget", type=float, default=1.4, help="--max-memory GB (below the model's size)")
    p.add_argument("--dir", default=None)
    p.add_argument("--drop-caches", action="store_true")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="moeforge_streaming_bench_", dir=args.dir)
    try:
        model, data, size = gpt_oss_streaming_setup(work, args.layers, 400)
        common = ["--no-progress", "stats", model, "--data", data, "--tokens", args.tokens, "--dtype", "bf16",
                  "--block-size", 128, "--batch-size", 2, "--overwrite"]
        print(f"model: GPT-OSS-20B widths, {args.layers} layers, {size / 1e9:.2f} GB; stats of {args.tokens} tokens "
              f"(batches of 2 x 128), bf16; page cache {'dropped before each run' if args.drop_caches else 'warm'}")
        rows = [("not streamed", []), ("streamed, batch by batch", ["--max-memory", args.budget, "--layer-major-mb", 0]),
                ("streamed, layer-major groups", ["--max-memory", args.budget])]
        for label, extra in rows:
            out = os.path.join(work, "stats")
            rss, err = run(args, *common, "--out", out, *extra)
            with open(os.path.join(out, "stats.json")) as f:
                loop = json.load(f)["timing"]["loop_seconds"]
            group = [line for line in err.splitlines() if "layer-major in groups" in line]
            print(f"  {label:<30} {args.tokens / loop:8.0f} tokens/s  peak RSS {rss / 1e9:5.2f} GB"
                  + (f"  ({group[0].split('groups of up to ')[1].split(' (')[0]} per group)" if group else ""))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
