"""Overhead of `moeforge stats` over a plain forward pass (target: <= 10 %).

Runs the same forward loop (same model, data, blocks, batches) three ways and compares the loop's
wall time that stats.json reports (timing.loop_seconds; model loading and file writing excluded):
  forward   `moeforge stats --forward-only`  (forward passes only: the peer)
  stats     `moeforge stats`                 (all statistics + moments for PCA)
  dump      `moeforge stats --dump-probs`    (+ fp16 probability dump)
Prints each time (best of --repeat), the ratios stats/forward and dump/forward, and the time spent
inside the collector as a share of the same run's forward time (timing.collect_seconds; exact on CPU
and insensitive to other load on the machine, which makes the ratio noisy on a shared box).

  MOEFORGE_BIN=build/moeforge python bench/stats_bench.py [--tokens 16384] [--device cpu] [--repeat 3] [--dtype fp32,bf16]
Model: a random Mixtral (hidden 256, 4 layers, 8 experts top-2, Llama 2 tokenizer) written by
`moeforge init`; data: Brown corpus paragraphs, genre = domain.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from stats_helpers import brown_jsonl, init_moe, moeforge  # noqa: E402


def loop_seconds(args, model, data, out, *extra):
    """Best (loop_seconds, collect_seconds) of --repeat runs."""
    best = None
    for _ in range(args.repeat):
        moeforge("stats", model, "--data", data, "--tokens", args.tokens, "--block-size", args.block_size,
                 "--batch-size", args.batch_size, "--out", out, "--overwrite", "--quiet", "--device", args.device,
                 "--dtype", args.run_dtype, *extra)
        t = json.load(open(os.path.join(out, "stats.json")))["timing"]
        run = (t["loop_seconds"], t.get("collect_seconds", 0.0))
        best = run if best is None or run[0] < best[0] else best
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=16384)
    p.add_argument("--block-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dtype", default="fp32", help="comma-separated run dtypes: fp32, bf16")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = init_moe(os.path.join(tmp, "model"), {
            "hidden_size": args.hidden, "intermediate_size": 2 * args.hidden, "num_hidden_layers": args.layers,
            "num_attention_heads": 8, "num_key_value_heads": 4, "num_local_experts": args.experts,
            "num_experts_per_tok": 2, "max_position_embeddings": 4096})
        data = brown_jsonl(os.path.join(tmp, "brown.jsonl"), genres="abjn", files_per_genre=6)
        out = os.path.join(tmp, "stats")
        runs = {}
        for dtype in args.dtype.split(","):
            args.run_dtype = dtype
            runs[dtype] = [loop_seconds(args, model, data, out, *extra) for extra in (["--forward-only"], [], ["--dump-probs"])]
    print(f"model: mixtral hidden {args.hidden}, {args.layers} layers, {args.experts} experts top-2; "
          f"{args.tokens} tokens, block {args.block_size}, batch {args.batch_size}, device {args.device}")
    for dtype, (forward, stats, dump) in runs.items():
        f = forward[0]
        print(f"[{dtype}] forward only      {f:8.3f} s  ({args.tokens / f:9.0f} tok/s)")
        for name, (loop, collect) in (("stats", stats), ("stats + dump", dump)):
            # ratio: wall time against the peer run; collection share: time inside the collector over the
            # rest of the same run (robust to machine load on CPU; on a GPU only the ratio is meaningful)
            print(f"[{dtype}] {name:<17} {loop:8.3f} s  ratio {loop / f:.3f}  (overhead {100 * (loop / f - 1):+.1f} %); "
                  f"collection {collect:.3f} s = {100 * collect / max(loop - collect, 1e-9):.1f} % of its own forward time")

if __name__ == "__main__":
    main()
