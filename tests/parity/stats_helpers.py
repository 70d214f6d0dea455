"""Helpers for the stats/analyze parity scripts and bench/stats_bench.py: run moeforge, make a tiny
random MoE with a real tokenizer (`moeforge init`), and build domain-tagged JSONL from the Brown
corpus (genre letter = domain)."""
import json
import os
import re
import sys

from moeforge_cli import moeforge  # noqa: F401 (re-exported to the stats scripts)
from shared_data import shared_data_dir

SHARED = shared_data_dir()  # $MOEFORGE_SHARED_DATA, else the in-repo data/testdata.tar.xz


def gpt_oss_streaming_setup(work, layers, text_repeats):
    """A GPT-OSS-20B-width checkpoint of `layers` layers (bench/surgery_bench.py's writer: random weights,
    32 MXFP4 experts, a 32,000-token vocabulary) with the small tokenizer, and a data file of its TEXT
    repeated; returns (model directory, data file, checkpoint bytes)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
    from small_tokenizer import TEXT, save_small_tokenizer
    from surgery_bench import build_model
    model = os.path.join(work, f"gpt_oss_{layers}l")
    size = build_model(model, layers, 32000)
    save_small_tokenizer(model)
    with open(os.path.join(model, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|endoftext|>"}, f)
    data = os.path.join(work, "data.txt")
    with open(data, "w") as f:
        f.write("\n".join([TEXT] * text_repeats) + "\n")
    return model, data, size


def init_moe(out, config, tokenizer="llama2", seed=1):
    """A random MoE checkpoint (family + overrides in `config`) with a shared tokenizer."""
    family = config.pop("model_type", "mixtral")
    moeforge("init", "--family", family, "--config", json.dumps(config), "--seed", seed,
             "--tokenizer", os.path.join(SHARED, "tokenizers", tokenizer), "--out", out, "--overwrite")
    return out


def brown_jsonl(path, genres="abj", files_per_genre=3, max_words=None):
    """Writes Brown corpus text as JSONL records {"text", "domain"}: one record per paragraph."""
    brown = os.path.join(SHARED, "corpus", "brown")
    with open(path, "w") as out:
        for genre in genres:
            names = sorted(n for n in os.listdir(brown) if re.fullmatch("c" + genre + r"\d\d", n))[:files_per_genre]
            for name in names:
                with open(os.path.join(brown, name)) as f:
                    for para in f.read().split("\n\n"):
                        words = [w.rsplit("/", 1)[0] for w in para.split()]
                        if max_words:
                            words = words[:max_words]
                        if len(words) > 5:
                            out.write(json.dumps({"text": " ".join(words), "domain": genre}) + "\n")
    return path


def run_independent_stats(stats_dir):
    """stats.json of a run without what differs between runs of the same work (time, command line, path)."""
    with open(os.path.join(stats_dir, "stats.json")) as f:
        stats = json.load(f)
    for key in ("created", "elapsed_s", "tokens_per_s", "command", "out", "timing"):
        stats.pop(key, None)
    return stats


def run_independent_eval(stdout):
    """An `eval --json` report without its timing and model path."""
    report = json.loads(stdout)
    for key in ("elapsed_s", "tokens_per_s", "model"):
        report.pop(key, None)
    return report
