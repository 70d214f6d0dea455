"""What `train --zero 3` saves: peak RSS per rank of `train --nproc N --zero 2` against `--zero 3` on the
same run, with the split bytes rank 0 reports and the seconds per run (the recompute costs one more
forward per layer, plus the gathers).

Model: a Mixtral of hidden 1024, 8 layers, 8 experts of width 2048, Mixtral's vocabulary of 32000
(493 M parameters, 2.0 GB of fp32 safetensors; the embedding and LM head are split too), trained in bf16 (every frozen tensor a private bf16 copy: what a GPU or a converted
dtype holds; frozen tensors mapped from the file in the run dtype are page cache, shared by the local
ranks anyway), only the routers trained (every layer's backward runs), one step of 32 tokens.
The peak is the largest rank's, from the kernel's accounting of the launcher's children.

  MOEFORGE_BIN=build/moeforge .venv/bin/python bench/zero3_memory_bench.py [--nproc 2] [--layers 8] [--hidden 1024] [--vocab 32000]
"""
import argparse
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from moeforge_cli import peak_rss  # noqa: E402
from train_common import make_setup, moeforge, write_recipe  # noqa: E402

SPLIT = re.compile(r"ZeRO-3: frozen weights of [^\n]*")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=32000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _, corpus = make_setup(tmp)
        model = os.path.join(tmp, "model")
        config = {"hidden_size": args.hidden, "intermediate_size": 2 * args.hidden, "num_attention_heads": 8,
                  "num_key_value_heads": 4, "num_hidden_layers": args.layers, "num_local_experts": 8, "num_experts_per_tok": 2,
                  "vocab_size": args.vocab}
        moeforge("init", "--family", "mixtral", "--config", json.dumps(config), "--tokenizer", os.path.join(tmp, "tok"),
                 "--std", "0.02", "--seed", 1, "--out", model)
        recipe = write_recipe(os.path.join(tmp, "routers.json"), {
            "seed": 1, "precision": "bf16",
            "phases": [{"name": "routers", "steps": 1, "batch_size": 1, "seq_len": 32, "select": "router", "optimizer": {"lr": 1e-3}}]})
        print(f"model: hidden {args.hidden}, {args.layers} layers, 8 experts, vocabulary {args.vocab}; bf16; {args.nproc} ranks; routers trained")
        peaks = {}
        for zero in ("2", "3"):
            t0 = time.time()
            peaks[zero], note = peak_rss("--no-progress", "train", model, "--data", corpus, "--recipe", recipe, "--out",
                                         os.path.join(tmp, f"zero{zero}"), "--nproc", args.nproc, "--zero", zero)
            split = SPLIT.search(note)
            print(f"  --zero {zero}: peak RSS per rank {peaks[zero] / 1e6:7.0f} MB  {time.time() - t0:5.1f} s"
                  + (f"  ({split.group(0)})" if split else ""))
        print(f"  saved by --zero 3: {(peaks['2'] - peaks['3']) / 1e6:.0f} MB per rank "
              f"({peaks['3'] / peaks['2']:.2f} of --zero 2's peak)")


if __name__ == "__main__":
    sys.exit(main())
