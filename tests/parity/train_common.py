"""Helpers for the training parity scripts: a tiny tokenizer + corpus + model made with moeforge
itself, and a runner for `moeforge train`."""
import json
import os
import random
import sys

from moeforge_cli import BIN, run_moeforge as moeforge  # noqa: F401 (re-exported to the training scripts and bench/)

WORDS = ("the cat sat on a mat dog ran to park and saw bird fly over tree red blue small big").split()


def make_setup(tmp, family="mixtral", config=None):
    """Writes corpus.txt, a 300-token BPE tokenizer and a tiny `family` model; returns (model, corpus)."""
    rng = random.Random(7)
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w") as f:
        for d in range(80):
            f.write(" ".join(rng.choice(WORDS) for _ in range(40)) + "\n\n")
    tok = os.path.join(tmp, "tok")
    moeforge("tokenizer", "train", "--data", corpus, "--vocab", 300, "--out", tok)
    model = os.path.join(tmp, family)
    cfg = {"hidden_size": 32, "intermediate_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2}
    cfg.update(config or {})
    moeforge("init", "--family", family, "--config", json.dumps(cfg), "--tokenizer", tok, "--std", "0.1",
             "--seed", 3, "--out", model)
    return model, corpus


def write_recipe(path, recipe):
    with open(path, "w") as f:
        json.dump(recipe, f)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def fail(failures):
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)
