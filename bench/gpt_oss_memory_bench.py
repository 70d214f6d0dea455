#!/usr/bin/env python3
"""GPT-OSS on this machine (issue 13), random weights with the real shapes, written tensor by tensor by
bench/surgery_bench.py's writer (GPT-OSS-20B: hidden 2880, 24 layers, 32 experts top-4, expert width 2880,
64/8 heads of 64, 201,088-token vocabulary, alternating sliding windows, sinks, MXFP4 experts; ~13.8 GB):
1. `stats` and `eval`, MXFP4 experts kept packed (the default); `eval --dequantize` (dense bf16 experts,
   ~38 GB) is refused by the memory plan before loading, which the bench shows. Target: peak RSS <= 16 GB.
2. `stats --max-memory --stream-budget` (below the model's size): layer streaming, the mapped weights
   released after each layer. Target: peak RSS within that budget.
3. Training, bf16, AdamW, 2 steps of --train-tokens, frozen MXFP4 experts packed (the default of `train`):
   new experts (`grow` +4 experts in every layer, as config.json has one expert count; phase new_experts of
   --train-layers + router, tokens forced to the new experts) and a shared expert (`add-shared-expert
   --init random --width W`, phase shared_expert). Peak RSS and tokens/s of each `train` run (load, steps,
   export of trainable.safetensors). Target: <= 20 GB. What trains costs about 18 bytes per trained
   parameter beside the packed model (bf16 copy, fp32 master, gradient, two AdamW moments), printed with
   each run with the peak the run's memory plan predicted before loading (`train --list-params`);
   --train-layers and --shared-width size it (all 96 new experts of GPT-OSS-20B +4 are 2.4 B
   parameters, ~43 GB of training state: not a 24 GB machine's job).
4. GPT-OSS-120B's widths (128 experts top-4, same hidden and vocabulary) at --120b-layers layer counts:
   streamed `stats` peak RSS per count, the fitted per-layer slope and the predicted peak of all 36 layers.
   Target: predicted <= 20 GB.

Usage (from the repository root; needs ~45 GB free disk and the test data unpacked by the build):
    .venv/bin/python bench/gpt_oss_memory_bench.py --moeforge build/moeforge [--layers 24] [--tokens 1024] [--dir /tmp]
        [--train-layers 22-23] [--shared-width 1024] [--train-tokens 256] [--stream-budget 6] [--120b-layers 1,2,3,4] [--120b-budget 4]
        [--skip stats,eval,streamed,grow,shared,120b]
"""
import argparse
import glob
import json
import os
import re
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


def train_run(args, work, model, data, label, select, routing, trained_params):
    """One `moeforge train` of 2 bf16 AdamW steps; prints peak RSS, tokens/s and the per-parameter cost."""
    recipe = {"seed": 0, "precision": "bf16", "probe": "off", "checkpoint_every": 0,
              "phases": [{"name": label, "steps": 2, "batch_size": 1, "seq_len": args.train_tokens, "select": select,
                          "routing": routing, "optimizer": {"type": "adamw", "lr": 1e-5}}]}
    recipe_path = os.path.join(work, f"{label}.json")
    with open(recipe_path, "w") as f:
        json.dump(recipe, f)
    run = os.path.join(work, f"run_{label}")
    # The run's own memory plan (train --list-params reads headers only): predicted beside measured.
    listed = subprocess.run([args.moeforge, "train", model, "--recipe", recipe_path, "--list-params"], check=True,
                            capture_output=True, text=True).stdout
    predicted = float(re.search(r"predicted host peak ([0-9.]+) GB", listed).group(1)) * 1e9
    seconds, rss = timed([args.moeforge, "--no-progress", "train", model, "--data", data, "--recipe", recipe_path, "--out", run])
    with open(os.path.join(run, "metrics.jsonl")) as f:
        steps = [json.loads(line) for line in f]
    step_rate = steps[-1].get("tokens_per_s", 0.0)
    model_bytes = sum(os.path.getsize(os.path.join(model, n)) for n in os.listdir(model) if n.endswith(".safetensors"))
    print(f"train {label:<13} {gb(rss):>10} {rss / model_bytes:>7.2f} {2 * args.train_tokens / seconds:>9.2f}  "
          f"(step 2: {step_rate:.2f} tokens/s; {trained_params / 1e6:.0f}M trained parameters, "
          f"{(rss - model_bytes) / max(trained_params, 1):.1f} bytes each beside the {gb(model_bytes)} file) "
          f"{'meets' if rss <= 20e9 else 'MISSES'} the 20 GB target; memory plan predicted {gb(predicted)} "
          f"(measured / predicted {rss / predicted:.2f})")
    shutil.rmtree(run, ignore_errors=True)


def bench_training(args, work, model, data, size, skip):
    H = F = 2880
    print(f"{'run':<19} {'peak RSS':>10} {'/ file':>7} {'tokens/s':>9}  (bf16, AdamW, MXFP4 experts packed; target <= 20 GB)")
    if "grow" not in skip:
        first, _, last = args.train_layers.partition("-")
        trained_layers = int(last or first) - int(first) + 1
        grown = os.path.join(work, "grown")
        t0 = time.perf_counter()
        subprocess.run([args.moeforge, "grow", model, "--clone", "*:0,*:1,*:2,*:3", "--no-verify", "--out", grown], check=True,
                       capture_output=True)
        print(f"grow +4 experts per layer: {time.perf_counter() - t0:.0f}s")
        per_expert = 2 * F * H + 2 * F + H * F + H  # weights and biases
        routers = args.layers * (32 + 4) * (H + 1)
        train_run(args, work, grown, data, "new_experts", [f"new_experts & layers={args.train_layers}", "router"],
                  {"force_route": "selected"}, 4 * trained_layers * per_expert + routers)
        shutil.rmtree(grown, ignore_errors=True)
    if "shared" not in skip:
        shared = os.path.join(work, "shared")
        t0 = time.perf_counter()
        subprocess.run([args.moeforge, "add-shared-expert", model, "--init", "random", "--width", str(args.shared_width), "--out",
                        shared], check=True, capture_output=True)
        print(f"add-shared-expert (width {args.shared_width}): {time.perf_counter() - t0:.0f}s")
        train_run(args, work, shared, data, "shared_expert", "shared_expert", {}, args.layers * 3 * H * args.shared_width)
        shutil.rmtree(shared, ignore_errors=True)


def bench_120b(args, work, data):
    """Streamed stats on GPT-OSS-120B widths: peak RSS per layer count, the slope, the 36-layer prediction."""
    counts = [int(x) for x in args.layers_120b.split(",") if x]
    tok = os.path.join(shared_data_dir(), "tokenizers", "gptoss")
    points = []
    print(f"GPT-OSS-120B widths (128 experts top-4), stats --max-memory {args.budget_120b} (streamed), bf16:")
    for layers in counts:
        model = os.path.join(work, f"gpt_oss_120b_{layers}l")
        size = build_model(model, layers, VOCAB, experts=128)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tok, name), model)
        cmd = [args.moeforge, "--no-progress", "stats", model, "--data", data, "--tokens", str(args.tokens), "--out",
               os.path.join(work, f"stats_120b_{layers}"), "--max-memory", str(args.budget_120b), "--dtype", "bf16",
               "--block-size", "256", "--batch-size", "2"]
        seconds, rss = timed(cmd)
        points.append((layers, rss))
        print(f"  {layers:>2} layers ({gb(size)} file): peak RSS {gb(rss)}, {args.tokens / seconds:.1f} tokens/s")
        shutil.rmtree(model, ignore_errors=True)
    if len(points) >= 2:
        n = len(points)
        mean_l = sum(l for l, _ in points) / n
        mean_r = sum(r for _, r in points) / n
        slope = sum((l - mean_l) * (r - mean_r) for l, r in points) / sum((l - mean_l) ** 2 for l, _ in points)
        predicted = mean_r + slope * (36 - mean_l)
        print(f"  slope {slope / 1e6:.0f} MB per layer; predicted 36-layer streamed stats peak {gb(predicted)} "
              f"({'meets' if predicted <= 20e9 else 'MISSES'} the 20 GB target; the 36-layer file is ~65 GB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moeforge", default="build/moeforge")
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=1024, help="tokens for stats and eval")
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--train-layers", default="22-23", help="layers whose new experts train (a-b)")
    parser.add_argument("--shared-width", type=int, default=1024, help="width of the added shared expert")
    parser.add_argument("--train-tokens", type=int, default=256, help="tokens per training step (one sequence)")
    parser.add_argument("--stream-budget", type=float, default=6.0, help="--max-memory GB of the streamed stats run")
    parser.add_argument("--120b-layers", dest="layers_120b", default="1,2,3,4", help="layer counts of the 120B-width checkpoints")
    parser.add_argument("--120b-budget", dest="budget_120b", type=float, default=4.0,
                        help="--max-memory GB of the 120B-width runs (below even one layer's unstreamed need, so each streams)")
    parser.add_argument("--skip", default="", help="comma-separated runs to leave out: stats, eval, streamed, grow, shared, 120b")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    need = 2 * (args.layers * 0.48e9 + 2 * VOCAB * 2880 * 2 + 1e9)  # the model and one grown/shared copy at a time
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
            ("streamed", [args.moeforge, "--no-progress", "stats", model, "--data", data, "--tokens", str(args.tokens), "--out",
                          os.path.join(work, "stats_streamed"), "--max-memory", str(args.stream_budget)] + common),
        ]
        print(f"{'run':<8} {'peak RSS':>10} {'/ file':>7} {'tokens/s':>9}  (target peak RSS <= 16 GB)")
        for label, cmd in runs:
            if label in skip:
                continue
            seconds, rss = timed(cmd)
            target = args.stream_budget * 1e9 if label == "streamed" else 16e9
            print(f"{label:<8} {gb(rss):>10} {rss / size:>7.2f} {args.tokens / seconds:>9.1f}  "
                  f"{'meets' if rss <= target else 'MISSES'} the target"
                  + (f" (stats, layer streaming under --max-memory {args.stream_budget})" if label == "streamed" else ""))
        if "eval" not in skip:
            refused = subprocess.run(runs[1][1] + ["--dequantize"], capture_output=True, text=True)
            print(f"eval --dequantize (dense bf16 experts): exit {refused.returncode}: {refused.stderr.strip()[:300]}")
        bench_training(args, work, model, data, size, skip)
        shutil.rmtree(model, ignore_errors=True)
        if "120b" not in skip:
            bench_120b(args, work, data)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
