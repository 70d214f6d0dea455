"""Training throughput: moeforge vs transformers in torch eager mode on the same 4-layer MoE.

Both sides train every parameter with AdamW (same lr, betas, weight decay, clip 1.0) on batches of
BATCH x SEQ tokens from the same corpus, with the same torch thread count, on CPU fp32:
  - moeforge: `moeforge train MODEL --recipe (select all)`; tokens/s = mean of metrics.jsonl's
    tokens_per_s over the steps after WARMUP (each step = forward, losses incl. LB + z, backward,
    clip, AdamW).
  - transformers: MixtralForCausalLM.from_pretrained(MODEL, experts_implementation=...) in train mode with
    output_router_logits=True (its LB loss), torch.optim.AdamW, clip_grad_norm_; tokens/s over the
    same number of timed steps.
Both shapes (Mixtral-like E8 k2 F512 and fine-grained E64 k8 F128, equal active FLOPs), against
each of transformers' experts implementations (grouped_mm, its default, and eager). Prints tokens/s
and the ratios (target >= 1.5x).

  MOEFORGE_BIN=build/moeforge .venv/bin/python bench/train_bench.py [--steps 12] [--threads 2] [--shapes mixtral,fine]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch
import transformers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from train_common import make_setup, moeforge, write_recipe  # noqa: E402

transformers.logging.set_verbosity_error()
# Two 4-layer shapes with the same active expert FLOPs per token: Mixtral-like (few wide experts)
# and fine-grained (many narrow experts, as OLMoE / Qwen3-MoE / DeepSeek use).
BASE = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4}
SHAPES = {
    "mixtral": dict(BASE, intermediate_size=512, num_local_experts=8, num_experts_per_tok=2),
    "fine": dict(BASE, intermediate_size=128, num_local_experts=64, num_experts_per_tok=8),
}
PEERS = ("grouped_mm", "eager")  # transformers' experts implementations (grouped_mm is its default)


def ours_tokens_per_s(tmp, model_dir, corpus, args):
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
    recipe = {"seed": 0, "threads": args.threads, "probe": "off",
              "phases": [{"steps": args.steps + args.warmup, "batch_size": args.batch, "seq_len": args.seq, "select": "all",
                          "losses": {"lb_coef": 0.01, "z_coef": 0.0},
                          "optimizer": {"lr": 1e-4, "betas": [0.9, 0.95], "weight_decay": 0.1}}]}
    run = os.path.join(tmp, "run")
    moeforge("train", model_dir, "--data", corpus, "--recipe", write_recipe(os.path.join(tmp, "r.json"), recipe),
             "--out", run, "--no-progress", "--no-tensorboard", env=env)
    with open(os.path.join(run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return statistics.mean(r["tokens_per_s"] for r in records[args.warmup:])


def transformers_tokens_per_s(model_dir, experts_impl, args):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                              experts_implementation=experts_impl)
    model.config.output_router_logits = True
    model.config.router_aux_loss_coef = 0.01
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, foreach=False)
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(args.steps + args.warmup):
        ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq), generator=gen)
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return args.batch * args.seq / statistics.mean(times[args.warmup:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default="mixtral,fine", help="comma list of " + ",".join(SHAPES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"4-layer MoE training, batch {args.batch} x {args.seq}, {args.threads} threads, fp32 CPU, AdamW + clip, "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    for name in args.shapes.split(","):
        shape = SHAPES[name]
        with tempfile.TemporaryDirectory() as tmp:
            model_dir, corpus = make_setup(tmp, family="mixtral", config=shape)
            ours = ours_tokens_per_s(tmp, model_dir, corpus, args)
            peers = {impl: transformers_tokens_per_s(model_dir, impl, args) for impl in PEERS}
        print(f"{name} (H={shape['hidden_size']}, F={shape['intermediate_size']}, E={shape['num_local_experts']}, "
              f"k={shape['num_experts_per_tok']}):")
        print(f"  moeforge train:                        {ours:8.0f} tokens/s")
        for impl, theirs in peers.items():
            print(f"  transformers eager-mode, experts={impl:10s} {theirs:8.0f} tokens/s   ratio {ours / theirs:.2f}x")
        print(f"  ratio vs the fastest peer: {ours / max(peers.values()):.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
