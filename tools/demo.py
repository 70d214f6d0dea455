"""`make demo`: the most complete job that exists today, on the embedded corpus (data/corpus).
Trains a tokenizer, makes a small random Llama-style base, upcycles it into an 8-expert top-2
Mixtral (verifying the copy is exact), collects router statistics, analyses them into a plan,
grows the MoE by the plan's clones, adds a shared expert, and evaluates each model against the
dense base per domain. Training (issue 6) and the trained embedded base (issue 7) are not in yet,
so the numbers describe untrained models: the point is that every stage runs end to end.

    .venv/bin/python tools/demo.py --moeforge build/moeforge [--work out/demo]
"""
import argparse
import os
import shutil
import subprocess
import sys
import time


def run(args, label):
    print(f"\n=== {label}\n$ {' '.join(args)}", flush=True)
    start = time.time()
    result = subprocess.run(args)
    if result.returncode != 0:
        sys.exit(f"demo: step '{label}' failed (exit {result.returncode})")
    print(f"({time.time() - start:.1f}s)", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moeforge", default="build/moeforge")
    parser.add_argument("--work", default="out/demo")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    corpus = os.path.join(root, "data", "corpus")
    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    mf = os.path.abspath(args.moeforge)
    p = lambda name: os.path.join(work, name)  # noqa: E731
    run([mf, "tokenizer", "train", "--vocab", "2048", "--data", corpus, "--out", p("tokenizer")], "train a byte-level BPE tokenizer")
    config = '{"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}'
    run([mf, "init", "--family", "llama", "--config", config, "--tokenizer", p("tokenizer"), "--out", p("dense"), "--seed", "1"],
        "make a small dense Llama-style base")
    run([mf, "info", p("dense")], "describe it")
    run([mf, "upcycle", p("dense"), "--experts", "8", "--top-k", "2", "--to", "mixtral", "--out", p("moe"), "--verify"],
        "upcycle into an 8-expert top-2 Mixtral (copy + zero router: exact)")
    run([mf, "stats", p("moe"), "--data", corpus, "--tokens", "8000", "--block-size", "128", "--out", p("stats")],
        "collect router statistics")
    run([mf, "analyze", p("stats"), "--out", p("plan.json"), "--format", "table"], "analyse them into a plan")
    run([mf, "grow", p("moe"), "--plan", p("plan.json"), "--out", p("grown")], "grow by the plan's clones")
    run([mf, "add-shared-expert", p("grown"), "--init", "mean", "--scale", "0.2", "--out", p("final"), "--verify"],
        "add a shared expert")
    run([mf, "eval", p("final"), "--data", corpus, "--baseline", p("dense"), "--block-size", "128", "--max-blocks", "48"],
        "evaluate against the dense base (per domain, expert usage, balance)")
    print(f"\ndemo finished; everything is in {work}")


if __name__ == "__main__":
    main()
