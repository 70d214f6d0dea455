"""Data-parallel training throughput on this machine: one process against `moeforge train --nproc N`
(c10d Gloo over localhost) on the same global batch, with and without `--expert-parallel` (each rank
computes half of every layer's experts, tokens exchanged by all-to-all), with --zero 2 and --zero 3,
and the share of each step spent in collectives.

Model: the 4-layer Mixtral-like shape of bench/train_bench.py (hidden 256, E8 k2, expert width 512),
every parameter trained with AdamW, fp32. The global batch is BATCH x SEQ x N tokens per step:
  - 1 process: grad_accum N, torch threads = the machine's cores;
  - N ranks: grad_accum 1 each, threads = cores / N (as a launcher shares them).
tokens/s = mean of metrics.jsonl's tokens_per_s after WARMUP steps (rank 0 logs the global batch's
tokens); comm share = metrics.jsonl's comm_s / step time (the gradient all-reduce the backward did not
hide, the step statistics' all-reduce and the experts' exchanges, waiting for the slower rank
included). `--bucket-mb 0` (one all-reduce after the backward) shows what the overlap hides. Both runs must also agree on every loss (the
tests check bitwise equality; here a mismatch is printed). The machine's ceiling for N ranks is N x
the one-process rate at cores / N threads, which is also measured.

  MOEFORGE_BIN=build/moeforge .venv/bin/python bench/distributed_bench.py [--nproc 2] [--steps 10]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from train_common import make_setup, moeforge, write_recipe  # noqa: E402

SHAPE = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
         "intermediate_size": 512, "num_local_experts": 8, "num_experts_per_tok": 2}


def run(tmp, name, model, corpus, args, accum, threads, *extra):
    recipe = {"seed": 0, "threads": threads, "probe": "off", "log_every": 1,
              "phases": [{"steps": args.steps + args.warmup, "batch_size": args.batch, "seq_len": args.seq, "select": "all",
                          "grad_accum": accum, "losses": {"lb_coef": 0.01}, "optimizer": {"lr": 1e-4}}]}
    out = os.path.join(tmp, name)
    moeforge("train", model, "--data", corpus, "--recipe", write_recipe(os.path.join(tmp, name + ".json"), recipe),
             "--out", out, "--no-progress", "--no-tensorboard", *extra)
    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f][args.warmup:]
    tps = statistics.mean(r["tokens_per_s"] for r in records)
    comm = [r["comm_s"] * r["tokens_per_s"] / r["tokens"] for r in records if "comm_s" in r]  # comm_s / step seconds
    rows = [r["expert_exchange"]["token_rows"] / r["expert_exchange"]["picks"] for r in records if "expert_exchange" in r]
    run.rows_per_pick = statistics.mean(rows) if rows else None
    return tps, (statistics.mean(comm) if comm else None), [r["loss"] for r in records]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    n = args.nproc
    with tempfile.TemporaryDirectory() as tmp:
        model, corpus = make_setup(tmp, config=SHAPE)
        one, _, one_losses = run(tmp, "one", model, corpus, args, n, cores)
        share, _, _ = run(tmp, "share", model, corpus, args, 1, max(1, cores // n))
        many, comm, many_losses = run(tmp, "dp", model, corpus, args, 1, max(1, cores // n), "--nproc", str(n))
        after, after_comm, _ = run(tmp, "dp_after", model, corpus, args, 1, max(1, cores // n), "--nproc", str(n), "--bucket-mb", "0")
        ep, ep_comm, ep_losses = run(tmp, "ep", model, corpus, args, 1, max(1, cores // n), "--nproc", str(n), "--expert-parallel")
        rows_per_pick = run.rows_per_pick
        zero2, zero2_comm, zero2_losses = run(tmp, "zero2", model, corpus, args, 1, max(1, cores // n), "--nproc", str(n), "--zero", "2")
        zero3, zero3_comm, zero3_losses = run(tmp, "zero3", model, corpus, args, 1, max(1, cores // n), "--nproc", str(n), "--zero", "3")
    print(f"machine: {cores} cores; global batch {args.batch * n} x {args.seq} tokens; fp32, all parameters, AdamW")
    print(f"1 process, {cores} threads, grad_accum {n}:   {one:9.0f} tokens/s")
    print(f"1 process, {max(1, cores // n)} thread(s), batch {args.batch}:  {share:9.0f} tokens/s "
          f"(ceiling for {n} ranks: {n * share:.0f} tokens/s)")
    print(f"--nproc {n}, {max(1, cores // n)} thread(s) each:      {many:9.0f} tokens/s; {100 * comm:.1f} % of each step in collectives "
          f"not hidden by the backward (25 MB buckets)")
    print(f"--nproc {n} --bucket-mb 0:            {after:9.0f} tokens/s; {100 * after_comm:.1f} % (one all-reduce after the backward)")
    print(f"--nproc {n} --expert-parallel:        {ep:9.0f} tokens/s; {100 * ep_comm:.1f} % of each step in collectives "
          f"(the experts' all-to-alls included)"
          + (f"; {rows_per_pick:.2f} token rows sent per pick (a token goes once to each owner of its picks)"
             if rows_per_pick else ""))
    print(f"--nproc {n} --zero 2:                 {zero2:9.0f} tokens/s; {100 * zero2_comm:.1f} % (gradients reduced to their owners "
          f"after the backward, owners' weights broadcast)")
    print(f"--nproc {n} --zero 3:                 {zero3:9.0f} tokens/s; {100 * zero3_comm:.1f} % (everything trains here, so "
          f"nothing frozen to split: the price of recomputing each layer in the backward)")
    print(f"ratio --nproc {n} / 1 process: {many / one:.2f}; / ceiling: {many / (n * share):.2f}; "
          f"expert parallel / ceiling: {ep / (n * share):.2f}")
    worst = max(abs(a - b) / abs(a) for other in (many_losses, ep_losses, zero2_losses, zero3_losses) for a, b in zip(one_losses, other))
    print(f"losses: max relative difference {worst:.1e} (GEMMs on {cores} vs {max(1, cores // n)} threads round differently; "
          f"at equal threads the tests find them bitwise equal)")


if __name__ == "__main__":
    main()
